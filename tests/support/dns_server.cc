#include "tests/support/dns_server.h"

#include <catch2/catch.hpp>

#include "absl/strings/strip.h"
#include "services/dns/store.h"

namespace c2d::testing {

using namespace std::chrono_literals;

dns::PdnsOptions TestPdns() {
  return {.api_url = RequireEnv("C2D_TEST_PDNS_API_URL"),
          .api_key = RequireEnv("C2D_TEST_PDNS_API_KEY")};
}

DnsServer::DnsServer(TestDatabase& db, pg::Pool& pool, const std::string& base_domain) {
  config_.pdns = TestPdns();
  config_.base_domain = base_domain;
  config_.ingress_zone = std::string(absl::StripSuffix(RequireEnv("C2D_TEST_INGRESS_ZONE"), "."));
  pdns_ = std::make_unique<dns::Pdns>(config_.pdns);
  auto tag = pool.Read("installation", [](pg::Tx& tx) { return dns::InstallationTag(tx); });
  REQUIRE(tag.ok());
  syncer_ = std::make_unique<dns::Syncer>(pool, *pdns_, *tag);
  absl::Status zones = syncer_->EnsureZones(config_.Zones());
  INFO(zones.ToString());
  REQUIRE(zones.ok());
  service_ = std::make_unique<dns::DnsServiceImpl>(pool, *syncer_);
  auto server = rpc::Server::Start("127.0.0.1:0", {{"c2d.v1.DnsService", service_.get()}});
  REQUIRE(server.ok());
  server_ = std::move(*server);
  stub_ = v1::DnsService::NewStub(channel());
  worker_ = std::make_unique<jobs::Worker>(
      pool, db.connect(),
      jobs::WorkerOptions{.queue = "dns", .poll_interval = 200ms, .backoff_base = 200ms});
  syncer_->RegisterJobs(*worker_);
  REQUIRE(worker_->Start().ok());
}

DnsServer::~DnsServer() {
  worker_->Shutdown();
  server_->Shutdown(absl::Seconds(1));
}

std::shared_ptr<grpc::Channel> DnsServer::channel() const {
  return grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials());
}

}  // namespace c2d::testing
