// Each of the six service processes starts, reports SERVING on gRPC health,
// serves /metrics, and stops cleanly on SIGTERM; each refuses to start on an
// old schema or bad configuration, saying why.

#include <curl/curl.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "libs/common/ids.h"
#include "libs/crypto/seal.h"
#include "nlohmann/json.hpp"
#include "proto/grpc/health/v1/health.grpc.pb.h"
#include "tests/support/pg_fixture.h"
#include "tests/support/subprocess.h"

namespace c2d {
namespace {

using namespace std::chrono_literals;
using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

struct ServiceBinary {
  const char* name;
  const char* path;
  const char* grpc_service;  // "" for the gateway, which serves only health
  bool implemented;          // false: its RPCs do not exist yet, nor does its health
};

const ServiceBinary kServices[] = {
    {"gateway", C2D_BIN_GATEWAY, "", true},
    {"builder", C2D_BIN_BUILDER, "c2d.v1.BuilderService", true},
    {"deployer", C2D_BIN_DEPLOYER, "c2d.v1.DeployerService", true},
    {"dbprov", C2D_BIN_DBPROV, "c2d.v1.DatabaseService", true},
    {"dns", C2D_BIN_DNS, "c2d.v1.DnsService", true},
    {"certs", C2D_BIN_CERTS, "c2d.v1.CertService", true},
};

std::string TempPath(const std::string& name) {
  const char* tmp = std::getenv("C2D_TEST_TMP");
  return absl::StrCat(tmp ? tmp : "/tmp", "/", name);
}

size_t Append(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

std::string HttpGet(const std::string& url) {
  std::string body;
  CURL* curl = curl_easy_init();
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Append);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 5000L);
  CURLcode rc = curl_easy_perform(curl);
  curl_easy_cleanup(curl);
  return rc == CURLE_OK ? body : "";
}

HealthCheckResponse::ServingStatus Health(const std::string& address, const std::string& service) {
  auto stub = grpc::health::v1::Health::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 5s);
  HealthCheckRequest req;
  req.set_service(service);
  HealthCheckResponse resp;
  grpc::Status s = stub->Check(&ctx, req, &resp);
  return s.ok() ? resp.status() : HealthCheckResponse::UNKNOWN;
}

// What every service needs to start. The engine and registry are not
// contacted until work arrives, so placeholders do here; PowerDNS is real.
std::map<std::string, std::string> BaseEnv(const testing::TestDatabase& db) {
  return {{"C2D_DATABASE_URL", db.url()},
          {"C2D_GRPC_ADDR", "127.0.0.1:0"},
          {"C2D_METRICS_ADDR", "127.0.0.1:0"},
          {"C2D_ENGINE_SOCKET", TempPath("no-engine.sock")},
          {"C2D_BUILD_ENGINE_SOCKET", TempPath("no-build-engine.sock")},
          {"C2D_REGISTRY_URL", "http://127.0.0.1:1"},
          {"C2D_HTTP_ADDR", "127.0.0.1:0"},
          {"C2D_BUILDER_ADDR", "127.0.0.1:1"},
          {"C2D_DEPLOYER_ADDR", "127.0.0.1:1"},
          {"C2D_DNS_ADDR", "127.0.0.1:1"},
          {"C2D_CERTS_HTTP_ADDR", "127.0.0.1:0"},
          // The deployer checks its ingress zone at start-up; the DNS
          // service creates its zones there.
          {"C2D_PDNS_API_URL", testing::RequireEnv("C2D_TEST_PDNS_API_URL")},
          {"C2D_PDNS_API_KEY", testing::RequireEnv("C2D_TEST_PDNS_API_KEY")},
          {"C2D_INGRESS_ZONE", testing::RequireEnv("C2D_TEST_INGRESS_ZONE")},
          {"C2D_MASTER_KEY", crypto::MasterKeys::Generate("mk1")}};
}

TEST_CASE("every service starts, serves health and metrics, and stops on SIGTERM", "[services]") {
  testing::TestDatabase db;
  for (const ServiceBinary& svc : kServices) {
    DYNAMIC_SECTION(svc.name) {
      const std::string ready = TempPath(absl::StrCat(svc.name, "-", ids::New("r"), ".json"));
      std::map<std::string, std::string> env = BaseEnv(db);
      env["C2D_READY_FILE"] = ready;
      env["C2D_SHUTDOWN_GRACE"] = "2s";
      testing::Subprocess p({svc.path}, env, TempPath(absl::StrCat(svc.name, ".log")));
      bool up = testing::WaitFor(30s, [&] { return std::filesystem::exists(ready); });
      INFO(p.Output());
      REQUIRE(up);
      nlohmann::json addresses = nlohmann::json::parse(std::ifstream(ready));
      const std::string grpc_address = addresses["grpc"];
      const std::string metrics_address = addresses["metrics"];
      CHECK(addresses["service"] == svc.name);

      CHECK(Health(grpc_address, "") == HealthCheckResponse::SERVING);
      // A service whose RPCs all answer UNIMPLEMENTED must not look healthy.
      if (*svc.grpc_service) {
        CHECK((Health(grpc_address, svc.grpc_service) == HealthCheckResponse::SERVING) ==
              svc.implemented);
      }
      // The gRPC metrics interceptor counted the health calls.
      const std::string metrics = HttpGet(absl::StrCat("http://", metrics_address, "/metrics"));
      CHECK(metrics.find("c2d_db_pool_connections") != std::string::npos);
      CHECK(metrics.find("c2d_grpc_server_handled_total{code=\"OK\",method=\"/"
                         "grpc.health.v1.Health/Check\"}") != std::string::npos);

      p.Signal(SIGTERM);
      CHECK(p.Wait(20s) == 0);
      CHECK(p.Output().find("\"msg\":\"stopped\"") != std::string::npos);
    }
  }
}

TEST_CASE("a service refuses to start on an unmigrated database, naming both versions",
          "[services]") {
  testing::TestDatabase db(/*migrate=*/false);
  testing::Subprocess p({C2D_BIN_BUILDER}, BaseEnv(db), TempPath("builder-unmigrated.log"));
  REQUIRE(p.Wait(20s) == 1);
  CHECK(p.Output().find("schema is at version 0 but this build needs") != std::string::npos);
}

TEST_CASE("a service refuses bad configuration, naming the variable and value", "[services]") {
  testing::TestDatabase db;
  std::map<std::string, std::string> env = BaseEnv(db);
  env["C2D_WORKERS"] = "lots";
  testing::Subprocess p({C2D_BIN_DEPLOYER}, env, TempPath("deployer-badconfig.log"));
  REQUIRE(p.Wait(20s) == 1);
  CHECK(p.Output().find("C2D_WORKERS=\\\"lots\\\" is not valid") != std::string::npos);

  testing::Subprocess q({C2D_BIN_DNS}, {{"C2D_DATABASE_URL", ""}}, TempPath("dns-nourl.log"));
  REQUIRE(q.Wait(20s) == 1);
  CHECK(q.Output().find("C2D_DATABASE_URL is not set") != std::string::npos);

  env = BaseEnv(db);
  env["C2D_MASTER_KEY"] = "mk1:tooshort";
  testing::Subprocess r({C2D_BIN_BUILDER}, env, TempPath("builder-badkey.log"));
  REQUIRE(r.Wait(20s) == 1);
  CHECK(r.Output().find("C2D_MASTER_KEY: key mk1 is not the base64 of 32 bytes") !=
        std::string::npos);
}

}  // namespace
}  // namespace c2d
