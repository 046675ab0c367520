// c2d-probe: asks a c2d process's gRPC health service whether it serves.
//
//   c2d-probe [ADDRESS [SERVICE]] [--wait DURATION]
//
// ADDRESS defaults to the process's own C2D_GRPC_ADDR (a wildcard host such
// as 0.0.0.0 asked on loopback), so an image's HEALTHCHECK needs no port.
// Exits 0 when the status is SERVING, 1 otherwise (printing what it saw).
// With --wait it keeps asking until SERVING or the duration ends. Credentials
// follow the C2D_TLS_* variables, as for the services themselves.

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include "libs/common/env.h"
#include "libs/rpc/server.h"
#include "proto/grpc/health/v1/health.grpc.pb.h"

namespace {

// C2D_GRPC_ADDR as a client dials it: a wildcard host means loopback.
std::string OwnAddress() {
  std::string address = c2d::env::GetString("C2D_GRPC_ADDR", "");
  for (const auto& [any, loopback] :
       {std::pair<std::string, std::string>{"0.0.0.0:", "127.0.0.1:"}, {"[::]:", "[::1]:"}}) {
    if (address.rfind(any, 0) == 0) return loopback + address.substr(any.size());
  }
  return address;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace c2d;
  std::string address, service;
  std::chrono::milliseconds wait{0};
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--wait") == 0 && i + 1 < argc) {
      auto d = env::ParseDuration(argv[++i]);
      if (!d.ok()) {
        std::fprintf(stderr, "c2d-probe: %s\n", d.status().ToString().c_str());
        return 2;
      }
      wait = *d;
    } else if (address.empty()) {
      address = argv[i];
    } else if (service.empty()) {
      service = argv[i];
    } else {
      address.clear();
      break;
    }
  }
  if (address.empty()) address = OwnAddress();
  if (address.empty()) {
    std::fprintf(stderr,
                 "usage: c2d-probe [ADDRESS [SERVICE]] [--wait DURATION] (ADDRESS defaults to "
                 "C2D_GRPC_ADDR, which is not set)\n");
    return 2;
  }
  auto creds = rpc::ChannelCredentialsFromEnv();
  if (!creds.ok()) {
    std::fprintf(stderr, "c2d-probe: %s\n", creds.status().ToString().c_str());
    return 2;
  }
  auto stub = grpc::health::v1::Health::NewStub(grpc::CreateChannel(address, *creds));
  const auto deadline = std::chrono::steady_clock::now() + wait;
  std::string last;
  while (true) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    grpc::health::v1::HealthCheckRequest req;
    req.set_service(service);
    grpc::health::v1::HealthCheckResponse resp;
    grpc::Status s = stub->Check(&ctx, req, &resp);
    if (s.ok() && resp.status() == grpc::health::v1::HealthCheckResponse::SERVING) {
      std::printf("%s%s%s: SERVING\n", address.c_str(), service.empty() ? "" : " ",
                  service.c_str());
      return 0;
    }
    last = s.ok() ? grpc::health::v1::HealthCheckResponse::ServingStatus_Name(resp.status())
                  : s.error_message();
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::fprintf(stderr, "%s%s%s: %s\n", address.c_str(), service.empty() ? "" : " ", service.c_str(),
               last.c_str());
  return 1;
}
