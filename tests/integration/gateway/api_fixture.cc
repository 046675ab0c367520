#include "tests/integration/gateway/api_fixture.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <catch2/catch.hpp>
#include <fstream>
#include <functional>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "libs/common/ids.h"
#include "libs/http/client.h"

namespace c2d::testing {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using nlohmann::json;

Api::Api(const Tweak& tweak) {
  builder_config_ = d_.BuilderConfig();
  config_.user_rps = 10'000;
  config_.user_burst = 10'000;
  if (tweak) tweak(config_, builder_config_);
  const builder::Config& bc = builder_config_;
  builds_ = std::make_unique<builder::BuilderServiceImpl>(d_.pool(), bc);
  auto server = rpc::Server::Start("127.0.0.1:0", {{"c2d.v1.BuilderService", builds_.get()}});
  REQUIRE(server.ok());
  builder_server_ = std::move(*server);
  job_ = std::make_unique<builder::BuildJob>(d_.pool(), bc);
  jobs::WorkerOptions w;
  w.queue = "builder";
  w.lease = 10s;
  w.poll_interval = 200ms;
  worker_ = std::make_unique<jobs::Worker>(d_.pool(), d_.db().connect(), w);
  worker_->Register("build", [this](jobs::JobContext& ctx) { return job_->Run(ctx); });
  REQUIRE(worker_->Start().ok());

  StartDbprov();
  StartCerts();
  config_.base_domain = "localhost";
  config_.ingress_http_addr = RequireEnv("C2D_TEST_CADDY_HTTP");
  config_.master_keys = d_.config().master_keys;
  config_.local_repo_root = LocalRepoRoot();
  gateway_ = std::make_unique<gateway::Gateway>(
      d_.pool(), config_,
      grpc::CreateChannel(builder_server_->address(), grpc::InsecureChannelCredentials()),
      grpc::CreateChannel(d_.address(), grpc::InsecureChannelCredentials()),
      grpc::CreateChannel(dbprov_server_->address(), grpc::InsecureChannelCredentials()),
      grpc::CreateChannel(certs_server_->address(), grpc::InsecureChannelCredentials()));
  auto http = httpd::Server::Start({.address = "127.0.0.1:0"},
                                   [this](httpd::Request& r) { return gateway_->Handle(r); });
  REQUIRE(http.ok());
  http_ = std::move(*http);
  alice_ = Token("alice@example.com");
  bob_ = Token("bob@example.com");
}

void Api::StartCerts() {
  certs::Config& c = certs_config_;
  c.master_keys = d_.config().master_keys;
  c.base_domain = "localhost";
  c.dns_resolver = RequireEnv("C2D_TEST_PDNS_DNS_ADDR");
  c.max_custom_domains = 3;
  auto ca = certs::InternalCa::LoadOrCreate(d_.pool(), *c.master_keys);
  REQUIRE(ca.ok());
  ca_ = std::make_unique<certs::InternalCa>(std::move(*ca));
  issuance_ = std::make_unique<certs::Issuance>(d_.pool(), c, *ca_);
  verifier_ = std::make_unique<certs::Verifier>(
      d_.pool(), c, [this](const std::string& h) { return issuance_->IssuerOf(h); });
  cert_service_ = std::make_unique<certs::CertServiceImpl>(d_.pool(), c);
  auto server = rpc::Server::Start("127.0.0.1:0", {{"c2d.v1.CertService", cert_service_.get()}});
  REQUIRE(server.ok());
  certs_server_ = std::move(*server);
  certs_worker_ = std::make_unique<jobs::Worker>(
      d_.pool(), d_.db().connect(),
      jobs::WorkerOptions{.queue = "certs", .poll_interval = 200ms, .backoff_base = 200ms});
  issuance_->RegisterJobs(*certs_worker_);
  REQUIRE(certs_worker_->Start().ok());
}

void Api::CertsSweep() {
  verifier_->Sweep();
  issuance_->Sweep();
}

void Api::StartDbprov() {
  dbprov::Config& c = dbprov_config_;
  c.local.local = d_.config().local;
  c.local.registry = d_.config().registry;
  c.local.registry_host = d_.config().RegistryHost();
  c.master_keys = d_.config().master_keys;
  c.ready_timeout = 60s;
  c.backup_dir = (fs::path(RequireEnv("C2D_TEST_TMP")) / ("backups-" + ids::New("t"))).string();
  store_ = std::make_unique<objstore::LocalObjectStore>(c.backup_dir);
  dbprov_registry_ = std::make_unique<oci::Registry>(c.local.registry);
  databases_ = std::make_unique<dbprov::DatabaseServiceImpl>(d_.pool(), c, d_.provider(), *store_);
  servers_ = std::make_unique<dbprov::Servers>(d_.pool(), c, d_.provider(), *dbprov_registry_);
  auto server = rpc::Server::Start("127.0.0.1:0", {{"c2d.v1.DatabaseService", databases_.get()}});
  REQUIRE(server.ok());
  dbprov_server_ = std::move(*server);
  d_.runtime().UseDatabases(
      grpc::CreateChannel(dbprov_server_->address(), grpc::InsecureChannelCredentials()));
  dbprov_worker_ = std::make_unique<jobs::Worker>(
      d_.pool(), d_.db().connect(),
      jobs::WorkerOptions{.queue = "dbprov", .poll_interval = 200ms, .backoff_base = 200ms});
  servers_->UseDns(d_.dns().channel());
  servers_->RegisterJobs(*dbprov_worker_);
  backups_ = std::make_unique<dbprov::Backups>(d_.pool(), c, *servers_, d_.provider(), *store_);
  backups_->RegisterJobs(*dbprov_worker_);
  c.rotation_timeout = 180s;
  rotations_ = std::make_unique<dbprov::Rotations>(
      d_.pool(), c, *servers_,
      grpc::CreateChannel(d_.address(), grpc::InsecureChannelCredentials()));
  rotations_->RegisterJobs(*dbprov_worker_);
  REQUIRE(dbprov_worker_->Start().ok());
}

std::string Api::DatabaseAdminUrl(const std::string& database_id) {
  auto row =
      d_.pool().Read("database", [&](pg::Tx& tx) { return dbprov::GetDatabase(tx, database_id); });
  REQUIRE(row.ok());
  auto admin = dbprov::OpenPassword(*dbprov_config_.master_keys, *row, "admin");
  REQUIRE(admin.ok());
  auto servers = d_.provider().List({{dbprov::kDatabaseLabel, database_id}});
  REQUIRE(servers.ok());
  REQUIRE(servers->size() == 1);
  return absl::StrCat("postgresql://postgres:", *admin, "@", servers->front().address, "/",
                      row->db.name(), "?connect_timeout=5");
}

Api::~Api() {
  http_->Shutdown(1s);
  worker_->Shutdown();
  dbprov_worker_->Shutdown();
  dbprov_server_->Shutdown(absl::Seconds(1));
  certs_worker_->Shutdown();
  certs_server_->Shutdown(absl::Seconds(1));
  builder_server_->Shutdown(absl::Seconds(1));
}

std::string Api::Token(const std::string& email) {
  auto t = d_.pool().Transact("token", [&](pg::Tx& tx) -> absl::StatusOr<gateway::NewToken> {
    auto u = gateway::UpsertUser(tx, email, "");
    if (!u.ok()) return u.status();
    return gateway::CreateToken(tx, u->id, "test");
  });
  REQUIRE(t.ok());
  return t->token;
}

std::string Api::Reply::Error() const {
  return body.is_object() && body.contains("error") ? body["error"].value("message", "") : "";
}

std::string Api::Reply::Field() const {
  return body.is_object() && body.contains("error") ? body["error"].value("field", "") : "";
}

Api::Reply Api::Call(const std::string& method, const std::string& path, const std::string& token,
                     const std::string& body,
                     std::vector<std::pair<std::string, std::string>> headers) {
  http::Request req{.method = method,
                    .url = absl::StrCat("http://", http_->address(), path),
                    .headers = std::move(headers),
                    .body = body,
                    .timeout = 90s};
  if (!token.empty()) req.headers.emplace_back("Authorization", "Bearer " + token);
  if (!body.empty()) req.headers.emplace_back("Content-Type", "application/json");
  auto r = http::Send(req);
  REQUIRE(r.ok());
  Reply out{r->status, json::parse(r->body, nullptr, false), r->body, r->headers};
  UNSCOPED_INFO(method << " " << path << " -> " << r->status << " " << r->body.substr(0, 500));
  return out;
}

std::vector<Api::Event> Api::Events(const std::string& path, const std::string& token,
                                    const std::string& last_event_id) {
  std::vector<Event> out;
  Event e;
  std::string data;
  bool ended = false;
  http::LineSplitter lines([&](absl::string_view line) {
    if (line.empty()) {
      if (!e.event.empty()) {
        e.data = json::parse(data, nullptr, false);
        out.push_back(e);
      }
      ended |= e.event == "end";
      e = Event();
      data.clear();
      return !ended;
    }
    if (absl::StartsWith(line, "event: ")) e.event = std::string(line.substr(7));
    if (absl::StartsWith(line, "id: ")) e.id = std::string(line.substr(4));
    if (absl::StartsWith(line, "data: ")) data += std::string(line.substr(6));
    return true;
  });
  http::Request req{.url = absl::StrCat("http://", http_->address(), path),
                    .headers = {{"Authorization", "Bearer " + token}},
                    .timeout = 240s,
                    .on_body = [&](absl::string_view chunk) { return lines.Feed(chunk); }};
  if (!last_event_id.empty()) req.headers.emplace_back("Last-Event-ID", last_event_id);
  auto r = http::Send(req);
  if (!r.ok() || r->status != 200) {
    UNSCOPED_INFO(
        "GET " << path << " -> "
               << (r.ok() ? absl::StrCat(r->status, " ", r->body) : r.status().ToString()));
  }
  return out;
}

std::vector<Api::Event> Api::WebSocketEvents(const std::string& path, const std::string& token) {
  namespace beast = boost::beast;
  namespace websocket = beast::websocket;
  using tcp = boost::asio::ip::tcp;
  boost::asio::io_context ioc;
  tcp::socket socket(ioc);
  socket.connect(tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"),
                               static_cast<unsigned short>(http_->port())));
  websocket::stream<tcp::socket> ws(std::move(socket));
  ws.set_option(websocket::stream_base::decorator([&](websocket::request_type& r) {
    r.set(beast::http::field::authorization, "Bearer " + token);
  }));
  websocket::response_type handshake;
  ws.handshake(handshake, "127.0.0.1", path);
  REQUIRE(handshake.result_int() == 101);
  std::vector<Event> out;
  beast::flat_buffer buffer;
  std::function<void(beast::error_code, size_t)> on_read = [&](beast::error_code ec, size_t) {
    if (ec) return;  // closed by the server (or broken): the run below ends
    json m = json::parse(beast::buffers_to_string(buffer.data()), nullptr, false);
    buffer.consume(buffer.size());
    out.push_back({m.value("event", ""), m.value("id", ""), m.value("data", json())});
    ws.async_read(buffer, on_read);
  };
  ws.async_read(buffer, on_read);
  ioc.run_for(240s);
  return out;
}

std::map<std::string, std::string> Api::Snapshot() {
  std::map<std::string, std::string> out;
  const std::string tables = d_.db().Scalar(
      "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables "
      "WHERE schemaname = 'public' AND tablename NOT IN ('api_tokens', 'schema_migrations')");
  for (absl::string_view table : absl::StrSplit(tables, ',')) {
    out[std::string(table)] = d_.db().Scalar(absl::StrCat(
        "SELECT coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') FROM ", table, " t"));
  }
  return out;
}

json ServiceBody(const std::string& name, const std::string& repo) {
  return {{"name", name},
          {"source", {{"repo_url", repo}, {"branch", "main"}}},
          {"run", {{"port", 8080}}},
          {"health_check", {{"interval_s", 1}, {"timeout_s", 1}, {"start_period_s", 20}}}};
}

CommandResult RunPodman(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"podman", "--remote", "--url",
                                   "unix://" + RequireEnv("C2D_TEST_ENGINE_SOCKET")};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = RunCommand({.argv = argv, .timeout = 30s});
  REQUIRE(r.ok());
  return *r;
}

std::string Podman(const std::vector<std::string>& args) {
  return std::string(absl::StripAsciiWhitespace(RunPodman(args).output));
}

std::pair<std::string, std::string> AppContainer(const std::string& project_id,
                                                 const std::string& service_id) {
  std::string id = Podman({"ps", "-q", "--filter", "label=c2d.project=" + project_id, "--filter",
                           "label=c2d.service=" + service_id});
  id = id.substr(0, id.find('\n'));
  REQUIRE(!id.empty());
  const std::string ip = Podman(
      {"inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", id});
  REQUIRE(!ip.empty());
  return {id, ip};
}

}  // namespace c2d::testing
