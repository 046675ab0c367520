#pragma once

// gRPC server scaffolding shared by every c2d service: the standard health
// service (SERVING per registered service and overall), reflection, the
// request-id convention, a metrics interceptor, and credentials: mutual TLS
// when C2D_TLS_CERT/C2D_TLS_KEY/C2D_TLS_CA are set, otherwise plaintext bound
// to loopback only (C2D_GRPC_INSECURE=1 allows plaintext elsewhere, for
// private networks such as a compose project).

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace c2d::rpc {

// Metadata key carrying a request id from the gateway through every call.
inline constexpr char kRequestIdKey[] = "x-request-id";

// The caller's request id, or a new one when the caller sent none.
std::string RequestId(const grpc::ServerContext& context);

// Server credentials per the C2D_TLS_* variables; an error when plaintext
// would be served on a non-loopback address.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentialsFor(
    const std::string& address);
// Channel credentials per the same variables (the client side of mTLS).
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentialsFromEnv();

// A channel to a c2d service at `target`, which may name several replicas
// ("ipv4:A,B", or a DNS name with one address per pod): calls are spread
// over them (round robin) and go only to replicas whose health service says
// SERVING, so one that is shutting down (Server::Shutdown turns it
// NOT_SERVING first) gets no new call while its twin is there. A replica
// that went away is tried again at most 1 s apart.
std::shared_ptr<grpc::Channel> Channel(const std::string& target,
                                       const std::shared_ptr<grpc::ChannelCredentials>& creds);

class Server {
 public:
  // A service to serve under its full name (e.g. "c2d.v1.BuilderService",
  // from the generated `service_full_name()`), for the health service. Only
  // services that implement their RPCs are registered: health reports each
  // registered one SERVING.
  struct Registration {
    std::string name;
    grpc::Service* service;  // owned by the caller; outlives the server
  };

  // Binds `address` (port 0 picks a free port), registers `services` and
  // starts serving with health status SERVING overall and for each of them.
  static absl::StatusOr<std::unique_ptr<Server>> Start(const std::string& address,
                                                       const std::vector<Registration>& services);
  ~Server();

  // host:port actually bound.
  const std::string& address() const { return address_; }

  // Health turns NOT_SERVING at once (so balancers stop sending), then
  // in-flight calls get up to `grace` to finish before being cancelled.
  void Shutdown(absl::Duration grace);

 private:
  Server(std::unique_ptr<grpc::Server> server, std::string address)
      : server_(std::move(server)), address_(std::move(address)) {}

  std::unique_ptr<grpc::Server> server_;
  std::string address_;
  bool shut_down_ = false;
};

// A client context with a deadline and the request id attached.
std::unique_ptr<grpc::ClientContext> NewClientContext(absl::Duration timeout,
                                                      const std::string& request_id);

}  // namespace c2d::rpc
