#include "libs/rpc/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/support/server_interceptor.h>

#include <chrono>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/common/env.h"
#include "libs/common/ids.h"
#include "libs/common/log.h"
#include "libs/metrics/metrics.h"
#include "prometheus/counter.h"
#include "prometheus/histogram.h"

namespace c2d::rpc {
namespace {

using grpc::experimental::InterceptionHookPoints;

struct RpcMetrics {
  prometheus::Family<prometheus::Counter>& handled;
  prometheus::Family<prometheus::Histogram>& seconds;
};

RpcMetrics& Metrics() {
  static RpcMetrics* m = new RpcMetrics{
      prometheus::BuildCounter()
          .Name("c2d_grpc_server_handled_total")
          .Help("gRPC calls completed, by method and status code")
          .Register(metrics::Registry()),
      prometheus::BuildHistogram()
          .Name("c2d_grpc_server_handling_seconds")
          .Help("gRPC call duration, by method")
          .Register(metrics::Registry()),
  };
  return *m;
}

const char* CodeName(grpc::StatusCode code) {
  static constexpr const char* kNames[] = {"OK",
                                           "CANCELLED",
                                           "UNKNOWN",
                                           "INVALID_ARGUMENT",
                                           "DEADLINE_EXCEEDED",
                                           "NOT_FOUND",
                                           "ALREADY_EXISTS",
                                           "PERMISSION_DENIED",
                                           "RESOURCE_EXHAUSTED",
                                           "FAILED_PRECONDITION",
                                           "ABORTED",
                                           "OUT_OF_RANGE",
                                           "UNIMPLEMENTED",
                                           "INTERNAL",
                                           "UNAVAILABLE",
                                           "DATA_LOSS",
                                           "UNAUTHENTICATED"};
  int i = static_cast<int>(code);
  return i >= 0 && i <= 16 ? kNames[i] : "UNKNOWN";
}

// Counts and times every call, and echoes the caller's request id.
class ObservingInterceptor : public grpc::experimental::Interceptor {
 public:
  explicit ObservingInterceptor(grpc::experimental::ServerRpcInfo* info)
      : method_(info->method()), start_(absl::Now()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_INITIAL_METADATA)) {
      auto* md = methods->GetRecvInitialMetadata();
      auto it = md->find(kRequestIdKey);
      if (it != md->end()) request_id_.assign(it->second.data(), it->second.size());
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_INITIAL_METADATA) &&
        !request_id_.empty()) {
      methods->GetSendInitialMetadata()->emplace(kRequestIdKey, request_id_);
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      grpc::Status status = methods->GetSendStatus();
      Metrics()
          .handled.Add({{"method", method_}, {"code", CodeName(status.error_code())}})
          .Increment();
      Metrics()
          .seconds.Add({{"method", method_}}, metrics::DurationBuckets())
          .Observe(absl::ToDoubleSeconds(absl::Now() - start_));
    }
    methods->Proceed();
  }

 private:
  std::string method_;
  absl::Time start_;
  std::string request_id_;
};

class ObservingInterceptorFactory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    // gRPC takes ownership of the returned interceptor.
    return new ObservingInterceptor(info);
  }
};

absl::StatusOr<std::string> ReadFile(const std::string& var) {
  std::string path = env::GetString(var, "");
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  if (!in) return absl::InvalidArgumentError(absl::StrCat(var, "=", path, ": cannot read file"));
  return text.str();
}

bool TlsConfigured() { return !env::GetString("C2D_TLS_CERT", "").empty(); }

bool IsLoopback(const std::string& address) {
  std::string host = address.substr(0, address.rfind(':'));
  return host == "127.0.0.1" || host == "localhost" || host == "[::1]" ||
         host.rfind("127.", 0) == 0;
}

}  // namespace

std::string RequestId(const grpc::ServerContext& context) {
  const auto& md = context.client_metadata();
  auto it = md.find(kRequestIdKey);
  if (it != md.end()) return std::string(it->second.data(), it->second.size());
  return ids::New("req");
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentialsFor(
    const std::string& address) {
  if (!TlsConfigured()) {
    auto insecure = env::GetBool("C2D_GRPC_INSECURE", false);
    if (!insecure.ok()) return insecure.status();
    if (!IsLoopback(address) && !*insecure) {
      return absl::InvalidArgumentError(absl::StrCat(
          "refusing plaintext gRPC on non-loopback address ", address,
          ": set C2D_TLS_CERT, C2D_TLS_KEY and C2D_TLS_CA for mutual TLS, or C2D_GRPC_INSECURE=1"));
    }
    return grpc::InsecureServerCredentials();
  }
  grpc::SslServerCredentialsOptions opts(
      GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  auto cert = ReadFile("C2D_TLS_CERT");
  auto key = ReadFile("C2D_TLS_KEY");
  auto ca = ReadFile("C2D_TLS_CA");
  for (const auto* s : {&cert, &key, &ca}) {
    if (!s->ok()) return s->status();
  }
  opts.pem_root_certs = *ca;
  opts.pem_key_cert_pairs.push_back({*key, *cert});
  return grpc::SslServerCredentials(opts);
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentialsFromEnv() {
  if (!TlsConfigured()) return grpc::InsecureChannelCredentials();
  auto cert = ReadFile("C2D_TLS_CERT");
  auto key = ReadFile("C2D_TLS_KEY");
  auto ca = ReadFile("C2D_TLS_CA");
  for (const auto* s : {&cert, &key, &ca}) {
    if (!s->ok()) return s->status();
  }
  grpc::SslCredentialsOptions opts;
  opts.pem_root_certs = *ca;
  opts.pem_private_key = *key;
  opts.pem_cert_chain = *cert;
  return grpc::SslCredentials(opts);
}

std::shared_ptr<grpc::Channel> Channel(const std::string& target,
                                       const std::shared_ptr<grpc::ChannelCredentials>& creds) {
  grpc::ChannelArguments args;
  // The default service config: the resolver offers none (DNS TXT lookups
  // are off in gRPC by default).
  args.SetServiceConfigJSON(R"({"loadBalancingConfig": [{"round_robin": {}}],)"
                            R"( "healthCheckConfig": {"serviceName": ""}})");
  // A replica that went away is tried again at most 1 s apart (gRPC's
  // default backs off to 120 s), so a restarted one takes calls within a
  // second of serving and a rolling restart can move on to its twin.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  return grpc::CreateCustomChannel(target, creds, args);
}

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const std::string& address,
                                                      const std::vector<Registration>& services) {
  auto creds = ServerCredentialsFor(address);
  if (!creds.ok()) return creds.status();
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(address, *creds, &port);
  for (const Registration& r : services) builder.RegisterService(r.service);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
  creators.push_back(std::make_unique<ObservingInterceptorFactory>());
  builder.experimental().SetInterceptorCreators(std::move(creators));
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot serve gRPC on ", address));
  }
  std::string bound = absl::StrCat(address.substr(0, address.rfind(':')), ":", port);
  auto* health = server->GetHealthCheckService();
  for (const Registration& r : services) health->SetServingStatus(r.name, true);
  health->SetServingStatus("", true);
  return std::unique_ptr<Server>(new Server(std::move(server), std::move(bound)));
}

Server::~Server() { Shutdown(absl::ZeroDuration()); }

void Server::Shutdown(absl::Duration grace) {
  if (shut_down_) return;
  shut_down_ = true;
  server_->GetHealthCheckService()->SetServingStatus(false);
  server_->Shutdown(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(grace));
  server_->Wait();
}

std::unique_ptr<grpc::ClientContext> NewClientContext(absl::Duration timeout,
                                                      const std::string& request_id) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(timeout));
  if (!request_id.empty()) ctx->AddMetadata(kRequestIdKey, request_id);
  return ctx;
}

}  // namespace c2d::rpc
