// The certs service on the real ingress: a routed service gets a
// certificate from c2d's own CA within a sweep, the ingress serves it over
// HTTPS (asking the certs endpoint at each handshake), a renewal is served
// from the next handshake on while a request loop over HTTPS sees no error,
// plain HTTP is redirected only for publicly trusted certificates, and the
// CA is made once with its key sealed. These tests bind the endpoint the
// test ingress asks (C2D_TEST_CERTS_HTTP_ADDR): they share a RESOURCE_LOCK.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "libs/common/command.h"
#include "libs/common/ids.h"
#include "libs/dns/pdns.h"
#include "libs/http/client.h"
#include "libs/jobs/worker.h"
#include "services/certs/acme_issuer.h"
#include "services/certs/cert_server.h"
#include "services/certs/cert_service.h"
#include "services/certs/config.h"
#include "services/certs/domains.h"
#include "services/certs/internal_ca.h"
#include "services/certs/issuance.h"
#include "services/certs/store.h"
#include "tests/integration/deployer/deployer_fixture.h"

namespace c2d {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::DeployerFixture;
using testing::RequireEnv;
using testing::WaitFor;

// The certs service in this process, on the deployer fixture's database,
// serving the test ingress.
struct Certs {
  // `acme`: public names get certificates from the test platform's Pebble.
  explicit Certs(DeployerFixture& f, bool acme = false) : f(f) {
    config.master_keys = f.config().master_keys;
    config.internal_lifetime = std::chrono::hours(1);
    config.base_domain = f.config().base_domain;
    if (acme) {
      config.acme_directory = RequireEnv("C2D_TEST_PEBBLE_DIRECTORY");
      config.acme_ca_file = RequireEnv("C2D_TEST_PEBBLE_CA_FILE");
      config.acme_timeout = std::chrono::seconds(60);
      dns = std::make_unique<dns::Client>(f.dns().channel());
      acme_issuer = std::make_unique<certs::AcmeIssuer>(f.pool(), config, dns.get());
    }
    auto loaded = certs::InternalCa::LoadOrCreate(f.pool(), *config.master_keys);
    REQUIRE(loaded.ok());
    ca = std::make_unique<certs::InternalCa>(std::move(*loaded));
    ca_file = (fs::path(RequireEnv("C2D_TEST_TMP")) / (ids::New("ca") + ".pem")).string();
    std::ofstream(ca_file) << ca->certificate_pem();
    auto server = certs::CertServer::Start(RequireEnv("C2D_TEST_CERTS_HTTP_ADDR"), f.pool(),
                                           *config.master_keys);
    INFO(server.status().ToString());
    REQUIRE(server.ok());
    http = std::move(*server);
    issuance = std::make_unique<certs::Issuance>(f.pool(), config, *ca, acme_issuer.get());
    config.dns_resolver = RequireEnv("C2D_TEST_PDNS_DNS_ADDR");
    verifier = std::make_unique<certs::Verifier>(
        f.pool(), config, [this](const std::string& h) { return issuance->IssuerOf(h); });
    worker = std::make_unique<jobs::Worker>(
        f.pool(), f.db().connect(),
        jobs::WorkerOptions{.queue = "certs", .poll_interval = 200ms, .backoff_base = 200ms});
    issuance->RegisterJobs(*worker);
    REQUIRE(worker->Start().ok());
  }
  ~Certs() {
    worker->Shutdown();
    http->Shutdown();
  }
  // The certificate of `hostname` once issued (the sweep makes it).
  std::string WaitIssued(const std::string& hostname) {
    std::string id;
    REQUIRE(WaitFor(60s, [&] {
      issuance->Sweep();
      id = f.db().Scalar(
          "SELECT coalesce(max(c.id), '') FROM certificates c JOIN domains d ON "
          "d.id = c.domain_id WHERE d.hostname = '" +
          hostname + "' AND c.state = 'issued'");
      return !id.empty();
    }));
    return id;
  }

  DeployerFixture& f;
  certs::Config config;
  std::unique_ptr<certs::InternalCa> ca;
  std::string ca_file;
  std::unique_ptr<certs::CertServer> http;
  std::unique_ptr<dns::Client> dns;
  std::unique_ptr<certs::AcmeIssuer> acme_issuer;
  std::unique_ptr<certs::Issuance> issuance;
  std::unique_ptr<certs::Verifier> verifier;
  std::unique_ptr<jobs::Worker> worker;
};

std::string HttpsPort() {
  std::string addr = RequireEnv("C2D_TEST_CADDY_HTTPS");
  return addr.substr(addr.rfind(':') + 1);
}

// curl over HTTPS through the ingress, trusting only `ca_file`: the body, or
// "" with `error` set.
std::string Curl(const std::string& host, const std::string& ca_file, std::string* error) {
  const std::string port = HttpsPort();
  auto r = RunCommand({.argv = {"curl", "-sS", "--fail", "--max-time", "5", "--cacert", ca_file,
                                "--resolve", absl::StrCat(host, ":", port, ":127.0.0.1"),
                                absl::StrCat("https://", host, ":", port, "/")},
                       .timeout = 10s});
  if (!r.ok() || r->exit_code != 0) {
    if (error) *error = r.ok() ? r->output : r.status().ToString();
    return "";
  }
  return r->output;
}

// New HTTPS connections to `host` one after another (a pause between
// them), counting those that did not answer `want`.
struct HttpsLoop {
  HttpsLoop(std::string host, std::string ca_file, std::string want,
            std::chrono::milliseconds pause = 0ms)
      : thread([=, this] {
          while (!stop) {
            std::string e;
            ++sent;
            if (Curl(host, ca_file, &e) != want) {
              ++failed;
              absl::MutexLock lock(&mu);
              last_error = e;
            }
            std::this_thread::sleep_for(pause);
          }
        }) {}
  ~HttpsLoop() { Stop(); }
  void Stop() {
    stop = true;
    if (thread.joinable()) thread.join();
  }
  std::atomic<bool> stop{false};
  std::atomic<int> sent{0}, failed{0};
  absl::Mutex mu;
  std::string last_error;  // read after Stop()
  std::thread thread;      // last: starts once the rest exists
};

// The serial of the certificate the ingress presents for `host` now.
std::string ServedSerial(const std::string& host) {
  auto r = RunCommand(
      {.argv = {"sh", "-c",
                absl::StrCat("openssl s_client -connect 127.0.0.1:", HttpsPort(), " -servername ",
                             host, " </dev/null 2>/dev/null | openssl x509 -noout -serial")},
       .timeout = 10s});
  if (!r.ok() || r->exit_code != 0) return "";
  return absl::AsciiStrToLower(absl::StripAsciiWhitespace(absl::StripPrefix(r->output, "serial=")));
}

TEST_CASE("a routed service is served over HTTPS with c2d's CA and a renewal fails no request",
          "[certs]") {
  DeployerFixture f;
  Certs certs(f);
  v1::Deployment d = f.WaitSettled(f.Deploy(f.Request(f.Image("v1"))).id());
  REQUIRE(d.state() == v1::DEPLOYMENT_STATE_LIVE);
  const std::string host = f.hostname();
  const std::string cert_id = certs.WaitIssued(host);
  const std::string first =
      f.db().Scalar("SELECT serial FROM certificates WHERE id = '" + cert_id + "'");

  std::string error;
  REQUIRE(WaitFor(5s, [&] { return Curl(host, certs.ca_file, &error) == "v1"; }));
  CHECK(ServedSerial(host) == first);
  // The key is sealed at rest, bound to its certificate: it opens under
  // this certificate's aad (and matches the chain), under no other.
  auto sealed = f.pool().Read("sealed key", [&](pg::Tx& tx) -> absl::StatusOr<crypto::Sealed> {
    pqxx::result r = tx.work().exec(
        "SELECT private_key_key_id, private_key_wrapped_key, private_key_nonce, "
        "private_key_ciphertext, certificate_chain_pem FROM certificates WHERE id = " +
        tx.work().quote(cert_id));
    return crypto::Sealed{r[0][0].as<std::string>(), pqxx::binarystring(r[0][1]).str(),
                          pqxx::binarystring(r[0][2]).str(), pqxx::binarystring(r[0][3]).str()};
  });
  REQUIRE(sealed.ok());
  auto der = certs.config.master_keys->Open(*sealed, certs::KeyAad(cert_id));
  REQUIRE(der.ok());
  auto key = crypto::EcKey::FromPkcs8Der(*der);
  REQUIRE(key.ok());
  auto matches = crypto::KeyMatchesCertificate(
      *key,
      f.db().Scalar("SELECT certificate_chain_pem FROM certificates WHERE id = '" + cert_id + "'"));
  CHECK((matches.ok() && *matches));
  CHECK_FALSE(certs.config.master_keys->Open(*sealed, certs::KeyAad("crt_other")).ok());
  // Another name gets no certificate: the handshake fails.
  CHECK(Curl("nobody." + host, certs.ca_file, &error).empty());

  // Renewal under a request loop: every handshake is new (one curl each).
  HttpsLoop loop(host, certs.ca_file, "v1");
  std::this_thread::sleep_for(500ms);
  grpc::ServerContext ctx;
  certs::CertServiceImpl service(f.pool(), certs.config);
  v1::RenewNowRequest renew;
  renew.set_certificate_id(cert_id);
  v1::Certificate out;
  REQUIRE(service.RenewNow(&ctx, &renew, &out).ok());
  std::string second;
  CHECK(WaitFor(20s, [&] {
    second = ServedSerial(host);
    return !second.empty() && second != first;
  }));
  std::this_thread::sleep_for(1s);
  loop.Stop();
  INFO(loop.last_error);
  CHECK(loop.sent > 5);
  CHECK(loop.failed == 0);
  CHECK(second == f.db().Scalar("SELECT serial FROM certificates WHERE id = '" + cert_id + "'"));

  // Plain HTTP is served as it is for c2d's own CA; a publicly trusted
  // certificate (issuer acme) makes it a redirect to https.
  std::string body;
  CHECK(f.ViaIngress("/", &body) == 200);
  f.db().Exec("UPDATE certificates SET issuer_kind = 'acme', updated_at = now() WHERE id = '" +
              cert_id + "'");
  http::Response redirected;
  CHECK(WaitFor(5s, [&] {
    auto r =
        http::Send({.url = absl::StrCat("http://", RequireEnv("C2D_TEST_CADDY_HTTP"), "/a?b=1"),
                    .headers = {{"Host", host}}});
    if (r.ok()) redirected = *r;
    return r.ok() && r->status == 308;
  }));
  CHECK(redirected.Header("location") == absl::StrCat("https://", host, "/a?b=1"));

  // A stopped service's certificate is not renewed while nothing routes it.
  grpc::ClientContext sc;
  v1::StopServiceRequest stop;
  stop.set_service_id(f.service_id());
  v1::StopServiceResponse sr;
  REQUIRE(f.stub().StopService(&sc, stop, &sr).ok());
  REQUIRE(WaitFor(20s, [&] { return f.db().Count("SELECT count(*) FROM service_routes") == 0; }));
  const int64_t jobs = f.db().Count("SELECT count(*) FROM jobs WHERE kind = 'issue_cert'");
  f.db().Exec("UPDATE certificates SET next_renewal_at = now() WHERE id = '" + cert_id + "'");
  certs.issuance->Sweep();
  CHECK(f.db().Count("SELECT count(*) FROM jobs WHERE kind = 'issue_cert'") == jobs);
}

// The test Pebble's issuing root, to trust what it signs.
std::string PebbleRoot() {
  auto r = http::Send({.url = RequireEnv("C2D_TEST_PEBBLE_MANAGEMENT") + "/roots/0",
                       .ca_file = RequireEnv("C2D_TEST_PEBBLE_CA_FILE")});
  REQUIRE(r.ok());
  REQUIRE(r->status == 200);
  const std::string path =
      (fs::path(RequireEnv("C2D_TEST_TMP")) / (ids::New("root") + ".pem")).string();
  std::ofstream(path) << r->body;
  return path;
}

TEST_CASE("a public name gets an ACME certificate by HTTP-01 through the ingress and renews it",
          "[certs][acme]") {
  DeployerFixture f(
      {.base_domain = absl::StrCat("t", absl::AsciiStrToLower(ids::New("x").substr(20)), ".test")});
  Certs certs(f, /*acme=*/true);
  v1::Deployment d = f.WaitSettled(f.Deploy(f.Request(f.Image("v1"))).id());
  REQUIRE(d.state() == v1::DEPLOYMENT_STATE_LIVE);
  const std::string host = f.hostname();
  const std::string cert_id = certs.WaitIssued(host);
  CHECK(f.db().Scalar("SELECT issuer_kind FROM certificates WHERE id = '" + cert_id + "'") ==
        "acme");
  CHECK_THAT(f.db().Scalar("SELECT issuer FROM certificates WHERE id = '" + cert_id + "'"),
             Catch::Contains("Pebble"));
  // The challenge answers are gone once issued.
  CHECK(f.db().Count("SELECT count(*) FROM acme_http_challenges") == 0);
  const std::string root = PebbleRoot();
  std::string error;
  REQUIRE(WaitFor(5s, [&] { return Curl(host, root, &error) == "v1"; }));
  INFO(error);
  // Plain HTTP now redirects.
  auto plain = http::Send({.url = absl::StrCat("http://", RequireEnv("C2D_TEST_CADDY_HTTP"), "/x"),
                           .headers = {{"Host", host}}});
  REQUIRE(plain.ok());
  CHECK(plain->status == 308);
  CHECK(plain->Header("location") == absl::StrCat("https://", host, "/x"));

  // Pebble's certificates live 60 s: the sweep renews with 20 s left, under
  // a loop of new HTTPS connections that must all succeed.
  const std::string first = ServedSerial(host);
  HttpsLoop loop(host, root, "v1", 50ms);
  std::string second;
  CHECK(WaitFor(90s, [&] {
    certs.issuance->Sweep();
    second = ServedSerial(host);
    return !second.empty() && second != first;
  }));
  loop.Stop();
  INFO(loop.last_error);
  CHECK(loop.sent > 20);
  CHECK(loop.failed == 0);
}

TEST_CASE("a custom domain CNAMEd to a service gets an ACME certificate and is served over HTTPS",
          "[certs][acme]") {
  const std::string suffix = absl::AsciiStrToLower(ids::New("x").substr(20));
  DeployerFixture f({.base_domain = absl::StrCat("t", suffix, ".test")});
  Certs certs(f, /*acme=*/true);
  v1::Deployment d = f.WaitSettled(f.Deploy(f.Request(f.Image("v1"))).id());
  REQUIRE(d.state() == v1::DEPLOYMENT_STATE_LIVE);
  // The customer's zone, at "their" DNS provider (the test PowerDNS).
  const std::string zone = absl::StrCat("c", suffix, ".test."), host = "shop." + zone;
  dns::Pdns pdns({.api_url = RequireEnv("C2D_TEST_PDNS_API_URL"),
                  .api_key = RequireEnv("C2D_TEST_PDNS_API_KEY")});
  REQUIRE(pdns.EnsureZone(zone).ok());
  REQUIRE(
      pdns.Replace(zone, {.name = host, .type = "CNAME", .ttl = 1, .records = {f.hostname() + "."}})
          .ok());
  const std::string name(absl::StripSuffix(host, "."));
  certs::CertServiceImpl service(f.pool(), certs.config);
  grpc::ServerContext ctx;
  v1::AddDomainRequest add;
  add.set_service_id(f.service_id());
  add.set_project_id(f.project_id());
  add.set_hostname(name);
  add.set_kind(v1::DOMAIN_KIND_CUSTOM);
  add.set_cname_target(f.hostname());
  v1::Domain domain;
  REQUIRE(service.AddDomain(&ctx, &add, &domain).ok());
  CHECK(domain.state() == v1::DOMAIN_STATE_PENDING_DNS);
  CHECK(domain.required_record().type() == "CNAME");
  // Verified by its CNAME, then issued by the CA through the ingress (HTTP-01
  // for a name the deployer routes once it is verified).
  REQUIRE(WaitFor(90s, [&] {
    certs.verifier->Sweep();
    certs.issuance->Sweep();
    grpc::ServerContext get_ctx;
    v1::GetDomainRequest get;
    get.set_id(domain.id());
    return service.GetDomain(&get_ctx, &get, &domain).ok() &&
           domain.state() == v1::DOMAIN_STATE_ACTIVE;
  }));
  CHECK(f.db().Scalar("SELECT issuer_kind FROM certificates WHERE id = '" +
                      domain.certificate_id() + "'") == "acme");
  std::string error;
  CHECK(WaitFor(15s, [&] { return Curl(name, PebbleRoot(), &error) == "v1"; }));
  INFO(error);
  auto plain = http::Send({.url = absl::StrCat("http://", RequireEnv("C2D_TEST_CADDY_HTTP"), "/"),
                           .headers = {{"Host", name}}});
  REQUIRE(plain.ok());
  CHECK(plain->status == 308);
}

// A certificate row of the fixture's service for `names`, issued by ACME.
std::string AcmeCertificate(DeployerFixture& f, const std::string& domain,
                            const std::vector<std::string>& names) {
  const std::string dom = ids::New("dom"), crt = ids::New("crt");
  f.db().Exec(
      absl::StrCat("INSERT INTO domains (id, service_id, project_id, hostname, kind, "
                   "verification_state, verified_at, cname_target) VALUES ('",
                   dom, "', '", f.service_id(), "', '", f.project_id(), "', '", domain,
                   "', 'custom', 'verified', now(), '", f.hostname(), "')"));
  std::string array;
  for (const auto& n : names) absl::StrAppend(&array, array.empty() ? "" : ",", "'", n, "'");
  f.db().Exec(
      absl::StrCat("INSERT INTO certificates (id, domain_id, hostnames, issuer_kind) VALUES ('",
                   crt, "', '", dom, "', ARRAY[", array, "], 'acme')"));
  return crt;
}

TEST_CASE("a wildcard by DNS-01 and a name the CA refuses failing with the CA's reason",
          "[certs][acme]") {
  const std::string base =
      absl::StrCat("t", absl::AsciiStrToLower(ids::New("x").substr(20)), ".test");
  DeployerFixture f({.base_domain = base});
  Certs certs(f, /*acme=*/true);
  const std::string wild = AcmeCertificate(f, "w." + base, {"*.w." + base});
  REQUIRE(WaitFor(60s, [&] {
    certs.issuance->Sweep();
    return f.db().Scalar("SELECT state FROM certificates WHERE id = '" + wild + "'") == "issued";
  }));
  // Any name below it is served that certificate; the TXT record is gone.
  const std::string serial =
      f.db().Scalar("SELECT serial FROM certificates WHERE id = '" + wild + "'");
  CHECK(ServedSerial("anything.w." + base) == serial);
  CHECK(f.db().Count("SELECT count(*) FROM dns_records WHERE owner = 'certificate:" + wild + "'") ==
        0);

  // blocked.c2d.test is refused by the test CA's policy.
  const std::string refused = AcmeCertificate(f, "blocked.c2d.test", {"blocked.c2d.test"});
  REQUIRE(WaitFor(30s, [&] {
    certs.issuance->Sweep();
    return f.db().Count("SELECT renewal_attempts FROM certificates WHERE id = '" + refused + "'") >
           0;
  }));
  const std::string why =
      f.db().Scalar("SELECT last_error FROM certificates WHERE id = '" + refused + "'");
  CHECK_THAT(why, Catch::Contains("blocked.c2d.test"));
  CHECK_THAT(why, Catch::Contains("rejectedIdentifier") || Catch::Contains("policy"));
  CHECK(f.db().Scalar("SELECT state FROM certificates WHERE id = '" + refused + "'") == "pending");
  // Retried with backoff, not at once.
  CHECK(f.db().Count("SELECT count(*) FROM certificates WHERE id = '" + refused +
                     "' AND next_renewal_at > now() + interval '50 minutes'") == 1);
}

// Runs a function of tools/lib/pebble.sh on the test platform's Pebble.
void Pebble(const std::string& call) {
  auto r = RunCommand({.argv = {"bash", "-c",
                                absl::StrCat("source ", C2D_SOURCE_DIR, "/tools/lib/pebble.sh && ",
                                             call, " ", RequireEnv("C2D_TEST_TMP"), "/pebble ",
                                             RequireEnv("C2D_TEST_PDNS_DNS_ADDR"))},
                       .timeout = 60s});
  REQUIRE(r.ok());
  INFO(r->output);
  REQUIRE(r->exit_code == 0);
}

TEST_CASE("a CA outage during renewal leaves the certificate served and recovers by itself",
          "[certs][acme]") {
  const std::string base =
      absl::StrCat("t", absl::AsciiStrToLower(ids::New("x").substr(20)), ".test");
  DeployerFixture f({.base_domain = base});
  Certs certs(f, /*acme=*/true);
  REQUIRE(f.WaitSettled(f.Deploy(f.Request(f.Image("v1"))).id()).state() ==
          v1::DEPLOYMENT_STATE_LIVE);
  const std::string host = f.hostname();
  const std::string id = certs.WaitIssued(host);
  const std::string first =
      f.db().Scalar("SELECT serial FROM certificates WHERE id = '" + id + "'");
  auto renew_now = [&] {
    f.db().Exec("UPDATE certificates SET next_renewal_at = now() WHERE id = '" + id + "'");
  };

  // The CA goes away; the renewal fails, the certificate keeps serving.
  Pebble("c2d::pebble_stop");
  renew_now();
  REQUIRE(WaitFor(60s, [&] {
    certs.issuance->Sweep();
    return f.db().Scalar("SELECT state FROM certificates WHERE id = '" + id + "'") ==
           "renewal_failing";
  }));
  CHECK_FALSE(f.db().Scalar("SELECT last_error FROM certificates WHERE id = '" + id + "'").empty());
  CHECK(f.db().Count("SELECT count(*) FROM certificates WHERE id = '" + id +
                     "' AND next_renewal_at > now() + interval '50 minutes'") == 1);
  CHECK(ServedSerial(host) == first);
  // Users see it on the domain, with the reason.
  {
    certs::CertServiceImpl service(f.pool(), certs.config);
    grpc::ServerContext ctx;
    v1::ListDomainsRequest list;
    list.set_service_id(f.service_id());
    v1::ListDomainsResponse domains;
    REQUIRE(service.ListDomains(&ctx, &list, &domains).ok());
    REQUIRE(domains.domains_size() == 1);
    CHECK(domains.domains(0).state() == v1::DOMAIN_STATE_RENEWAL_FAILING);
    CHECK_FALSE(domains.domains(0).error().empty());
  }

  // The CA is back (a new instance: it forgot c2d's account). When the
  // backoff has passed (moved to now here), the sweep renews it.
  Pebble("c2d::pebble_restart");
  renew_now();
  std::string second;
  REQUIRE(WaitFor(60s, [&] {
    certs.issuance->Sweep();
    second =
        f.db().Scalar("SELECT state || ' ' || serial FROM certificates WHERE id = '" + id + "'");
    return absl::StartsWith(second, "issued ");
  }));
  CHECK(second != "issued " + first);
  CHECK(f.db().Scalar("SELECT renewal_attempts FROM certificates WHERE id = '" + id + "'") == "0");
  CHECK(WaitFor(5s, [&] { return ServedSerial(host) != first; }));
}

TEST_CASE("plain HTTP does not wait on a certs endpoint that accepts and never answers",
          "[certs]") {
  DeployerFixture f;
  REQUIRE(f.WaitSettled(f.Deploy(f.Request(f.Image("v1"))).id()).state() ==
          v1::DEPLOYMENT_STATE_LIVE);
  // A listener where the ingress asks /http-check, which never answers.
  const std::string addr = RequireEnv("C2D_TEST_CERTS_HTTP_ADDR");
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(std::stoi(addr.substr(addr.rfind(':') + 1))));
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0);
  REQUIRE(listen(fd, 64) == 0);  // the kernel accepts; nobody reads
  // Each request still reaches the app (the client gives up after 5 s).
  for (int i = 0; i < 3; ++i) {
    std::string body;
    CHECK(f.ViaIngress("/", &body) == 200);
    CHECK(body == "v1");
  }
  close(fd);
}

TEST_CASE("the certs endpoint refuses what is not a name it serves", "[certs]") {
  DeployerFixture f;
  Certs certs(f);
  const std::string base = absl::StrCat("http://", certs.http->address());
  for (const char* q : {"server_name=..%2Fetc", "server_name=", "server_name=UNKNOWN.localhost",
                        "server_name=a%20b", "x=1"}) {
    auto r = http::Send({.url = absl::StrCat(base, "/certificate?", q)});
    REQUIRE(r.ok());
    INFO(q);
    CHECK(r->status == 404);
    CHECK_FALSE(absl::StrContains(r->body, "PRIVATE KEY"));
  }
  auto token = http::Send({.url = base + "/.well-known/acme-challenge/nope"});
  REQUIRE(token.ok());
  CHECK(token->status == 404);
  // No certificate: no redirect, whatever the Host.
  auto check = http::Send({.url = base + "/http-check", .headers = {{"Host", "evil.example"}}});
  REQUIRE(check.ok());
  CHECK(check->status == 204);
}

TEST_CASE("the internal CA is made once and its key is stored sealed", "[certs]") {
  testing::TestDatabase db;
  auto pool = db.NewPool();
  auto keys = crypto::MasterKeys::Parse(crypto::MasterKeys::Generate("mk1"));
  REQUIRE(keys.ok());
  auto a = certs::InternalCa::LoadOrCreate(*pool, *keys);
  auto b = certs::InternalCa::LoadOrCreate(*pool, *keys);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(a->certificate_pem() == b->certificate_pem());
  CHECK(db.Count("SELECT count(*) FROM cert_authorities") == 1);
  // Issued leaves chain to it and name only what was asked.
  auto issued = a->Issue({"web.shop.localhost"}, absl::Hours(1));
  REQUIRE(issued.ok());
  CHECK(issued->info.dns_names == std::vector<std::string>{"web.shop.localhost"});
  CHECK(issued->info.not_after - issued->info.not_before <= absl::Hours(1) + absl::Minutes(2));
  CHECK(certs::RenewalTime(issued->info.not_before, issued->info.not_after) <
        issued->info.not_after);
  // Another master key cannot open it.
  auto other = crypto::MasterKeys::Parse(crypto::MasterKeys::Generate("mk1"));
  CHECK_FALSE(certs::InternalCa::LoadOrCreate(*pool, *other).ok());
}

}  // namespace
}  // namespace c2d
