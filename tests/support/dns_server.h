#pragma once

// The DNS service in the test's process, on a test database, against the
// PowerDNS that tools/test starts: its gRPC service on a free port, its
// `dns_sync` worker, and the sweep on demand. Tests that run the deployer
// need it, since the ingress's records go through it.

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "libs/dns/pdns.h"
#include "libs/jobs/worker.h"
#include "libs/rpc/server.h"
#include "proto/c2d/v1/dns.grpc.pb.h"
#include "services/dns/config.h"
#include "services/dns/dns_service.h"
#include "services/dns/sync.h"
#include "tests/support/pg_fixture.h"

namespace c2d::testing {

class DnsServer {
 public:
  // `base_domain` names the public and internal zones (Config::Zones).
  DnsServer(TestDatabase& db, pg::Pool& pool, const std::string& base_domain = "localhost");
  ~DnsServer();

  std::string address() const { return server_->address(); }
  std::shared_ptr<grpc::Channel> channel() const;
  v1::DnsService::Stub& stub() { return *stub_; }
  dns::Syncer& syncer() { return *syncer_; }
  const dns::Config& config() const { return config_; }
  // The tests' PowerDNS, to look behind the service's back.
  dns::Pdns& pdns() { return *pdns_; }

 private:
  dns::Config config_;
  std::unique_ptr<dns::Pdns> pdns_;
  std::unique_ptr<dns::Syncer> syncer_;
  std::unique_ptr<dns::DnsServiceImpl> service_;
  std::unique_ptr<rpc::Server> server_;
  std::unique_ptr<jobs::Worker> worker_;
  std::unique_ptr<v1::DnsService::Stub> stub_;
};

// The PowerDNS options of the tests' PowerDNS (C2D_TEST_PDNS_*).
dns::PdnsOptions TestPdns();

}  // namespace c2d::testing
