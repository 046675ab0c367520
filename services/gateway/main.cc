// c2d gateway: the REST API (DESIGN §5) on C2D_HTTP_ADDR, in front of the
// builder and the deployer; users, tokens, projects, members, services, env
// vars and the audit log are its tables. Its gRPC port serves health only.

#include "libs/httpd/server.h"
#include "libs/rpc/process.h"
#include "libs/rpc/server.h"
#include "services/gateway/config.h"
#include "services/gateway/gateway.h"

int main() {
  using namespace c2d;
  auto process = rpc::Process::Init("gateway");
  if (!process.ok()) return rpc::Process::Fail(process.status());
  auto config = gateway::Config::FromEnv();
  if (!config.ok()) return rpc::Process::Fail(config.status());
  auto credentials = rpc::ChannelCredentialsFromEnv();
  if (!credentials.ok()) return rpc::Process::Fail(credentials.status());
  gateway::Gateway api(
      (*process)->pool(), *config, rpc::Channel(config->builder_addr, *credentials),
      rpc::Channel(config->deployer_addr, *credentials),
      config->dbprov_addr.empty() ? nullptr : rpc::Channel(config->dbprov_addr, *credentials),
      config->certs_addr.empty() ? nullptr : rpc::Channel(config->certs_addr, *credentials));
  auto http = httpd::Server::Start({.address = config->http_addr, .workers = config->http_workers},
                                   [&](httpd::Request& req) { return api.Handle(req); });
  if (!http.ok()) return rpc::Process::Fail(http.status());
  (*process)->AddReadyAddress("http", (*http)->address());
  // On SIGTERM the REST API drains first: its requests call the others.
  (*process)->OnShutdown([&](std::chrono::milliseconds grace) { (*http)->Shutdown(grace); });
  return (*process)->Serve({});
}
