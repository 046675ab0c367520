#pragma once

// The REST API against real services, for the gateway's tests: the
// gateway's HTTP server in this process, with the builder, the deployer,
// dbprov and the certs service (their gRPC services, workers and
// reconciler; the certs leader's sweep when a test calls CertsSweep) on the
// same test database, the real engine, registry, PowerDNS and Caddy.

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "libs/common/command.h"
#include "libs/httpd/server.h"
#include "nlohmann/json.hpp"
#include "services/builder/build_job.h"
#include "services/builder/builder_service.h"
#include "services/certs/cert_service.h"
#include "services/certs/domains.h"
#include "services/certs/internal_ca.h"
#include "services/certs/issuance.h"
#include "services/dbprov/backup_job.h"
#include "services/dbprov/database_service.h"
#include "services/dbprov/provision_job.h"
#include "services/dbprov/rotation.h"
#include "services/gateway/gateway.h"
#include "tests/integration/builder/builder_fixture.h"
#include "tests/integration/deployer/deployer_fixture.h"

namespace c2d::testing {

class Api {
 public:
  // `tweak` may change the gateway's and the builder's configuration before
  // they start (limits, timeouts). Per-user request limits are generous
  // unless a test sets them.
  using Tweak = std::function<void(gateway::Config&, builder::Config&)>;
  explicit Api(const Tweak& tweak = nullptr);
  ~Api();

  // A new token for `email` (the user is made if needed).
  std::string Token(const std::string& email);

  struct Reply {
    long status = 0;
    nlohmann::json body;
    std::string raw;
    std::multimap<std::string, std::string> headers;  // names in lower case
    std::string Error() const;
    std::string Header(const std::string& name) const {
      auto it = headers.find(name);
      return it == headers.end() ? "" : it->second;
    }
    std::string Field() const;
  };
  Reply Call(const std::string& method, const std::string& path, const std::string& token,
             const std::string& body = "",
             std::vector<std::pair<std::string, std::string>> headers = {});
  Reply Call(const std::string& method, const std::string& path, const std::string& token,
             const nlohmann::json& body) {
    return Call(method, path, token, body.dump());
  }

  struct Event {
    std::string event, id;
    nlohmann::json data;
  };
  // Server-Sent Events of `path` until an "end" event (or the stream's end).
  std::vector<Event> Events(const std::string& path, const std::string& token,
                            const std::string& last_event_id = "");
  // The same over a WebSocket: its messages until the server closes it.
  std::vector<Event> WebSocketEvents(const std::string& path, const std::string& token);

  // Every row of every table, by table (api_tokens aside: using a token
  // stamps it), to show that a refused request changed nothing.
  std::map<std::string, std::string> Snapshot();

  DeployerFixture& deployer() { return d_; }
  // A libpq URL of a managed database as its administrator, over the
  // server's published port.
  std::string DatabaseAdminUrl(const std::string& database_id);
  // Where dbprov keeps backups (tests corrupt them).
  objstore::LocalObjectStore& backups() { return *store_; }
  const httpd::Router& router() const { return gateway_->router(); }
  const std::string& address() const { return http_->address(); }
  const std::string& alice() const { return alice_; }
  const std::string& bob() const { return bob_; }
  int64_t Rows(const std::string& table) { return d_.db().Count("SELECT count(*) FROM " + table); }
  // One pass of the certs leader: custom domains' DNS checks, default
  // domains, certificates due. Its DNS checks ask the test PowerDNS; a
  // service has at most 3 custom domains here.
  void CertsSweep();

 private:
  // dbprov's service and jobs, on the deployer's engine and registry.
  void StartDbprov();
  // The certs service and its worker (c2d's own CA issues every name).
  void StartCerts();

  DeployerFixture d_;
  builder::Config builder_config_;
  std::unique_ptr<builder::BuilderServiceImpl> builds_;
  std::unique_ptr<rpc::Server> builder_server_;
  std::unique_ptr<builder::BuildJob> job_;
  std::unique_ptr<jobs::Worker> worker_;
  dbprov::Config dbprov_config_;
  std::unique_ptr<oci::Registry> dbprov_registry_;
  std::unique_ptr<dbprov::DatabaseServiceImpl> databases_;
  std::unique_ptr<objstore::LocalObjectStore> store_;
  std::unique_ptr<dbprov::Servers> servers_;
  std::unique_ptr<dbprov::Backups> backups_;
  std::unique_ptr<dbprov::Rotations> rotations_;
  std::unique_ptr<rpc::Server> dbprov_server_;
  std::unique_ptr<jobs::Worker> dbprov_worker_;
  certs::Config certs_config_;
  std::unique_ptr<certs::InternalCa> ca_;
  std::unique_ptr<certs::Issuance> issuance_;
  std::unique_ptr<certs::Verifier> verifier_;
  std::unique_ptr<certs::CertServiceImpl> cert_service_;
  std::unique_ptr<rpc::Server> certs_server_;
  std::unique_ptr<jobs::Worker> certs_worker_;
  gateway::Config config_;
  std::unique_ptr<gateway::Gateway> gateway_;
  std::unique_ptr<httpd::Server> http_;
  std::string alice_, bob_;
};

// A service body with a fast health check.
nlohmann::json ServiceBody(const std::string& name, const std::string& repo);

// `podman --remote` against the app engine (runs something in a container,
// inspects one); its exit code and output.
CommandResult RunPodman(const std::vector<std::string>& args);
// The same, for its output alone, trimmed.
std::string Podman(const std::vector<std::string>& args);
// The id and address of the running container of a project's service.
std::pair<std::string, std::string> AppContainer(const std::string& project_id,
                                                 const std::string& service_id);

}  // namespace c2d::testing
