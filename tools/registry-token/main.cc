// c2d-registry-token: the image registry's token service (see
// token_service.h), next to the registry: C2D_REGISTRY_TOKEN_ADDR, signing
// with C2D_REGISTRY_TOKEN_KEY whose certificate (C2D_REGISTRY_TOKEN_CERT)
// the registry trusts (its rootcertbundle). Stops on SIGTERM.

#include <cstdio>

#include "libs/httpd/server.h"
#include "libs/rpc/signals.h"
#include "tools/registry-token/token_service.h"

int main() {
  using namespace c2d;
  rpc::BlockTerminationSignals();
  auto config = registry_token::Config::FromEnv();
  if (!config.ok()) {
    std::fprintf(stderr, "c2d-registry-token: %s\n", config.status().ToString().c_str());
    return 2;
  }
  auto http = httpd::Server::Start({.address = config->address, .workers = 4},
                                   [&](httpd::Request& r) { return HandleToken(*config, r); });
  if (!http.ok()) {
    std::fprintf(stderr, "c2d-registry-token: %s\n", http.status().ToString().c_str());
    return 1;
  }
  std::fprintf(stderr, "c2d-registry-token: serving on %s\n", (*http)->address().c_str());
  rpc::WaitForTerminationSignal();
  (*http)->Shutdown(std::chrono::seconds(2));
  return 0;
}
