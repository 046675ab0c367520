// The DNS service against the real PowerDNS that tools/test starts, queried
// with dig: records of every type are served as written, a record changed
// or deleted behind c2d's back is put back by the sweep (and what others
// keep in the zone is left alone), bad requests change nothing, and a
// record written while PowerDNS is unreachable reaches it through the
// zone's dns_sync job.

#include <algorithm>
#include <catch2/catch.hpp>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "libs/common/command.h"
#include "libs/common/ids.h"
#include "libs/dns/resolver.h"
#include "libs/rpc/status.h"
#include "services/dns/records.h"
#include "tests/support/dns_server.h"

namespace c2d {
namespace {

using namespace std::chrono_literals;
using testing::DnsServer;
using testing::RequireEnv;

// What PowerDNS answers for (name, type): dig +short lines, sorted.
std::set<std::string> Dig(const std::string& name, const std::string& type) {
  const std::string addr = RequireEnv("C2D_TEST_PDNS_DNS_ADDR");
  std::pair<std::string, std::string> hp = absl::StrSplit(addr, ':');
  auto r = RunCommand({.argv = {"dig", "@" + hp.first, "-p", hp.second, "+short", "+time=2",
                                "+tries=2", name, type},
                       .timeout = 10s});
  REQUIRE(r.ok());
  INFO(r->output);
  REQUIRE(r->exit_code == 0);
  std::set<std::string> out;
  for (absl::string_view line : absl::StrSplit(r->output, '\n', absl::SkipWhitespace())) {
    out.insert(std::string(absl::StripAsciiWhitespace(line)));
  }
  return out;
}

// A base domain of the test's own, so parallel tests never share a zone.
std::string Base() {
  return absl::StrCat("t", absl::AsciiStrToLower(ids::New("x").substr(20)), ".test");
}

v1::Record Rec(const std::string& name, v1::RecordType type, std::vector<std::string> values,
               const std::string& owner = "service:svc_test") {
  v1::Record r;
  r.set_name(name);
  r.set_type(type);
  r.set_owner(owner);
  for (auto& v : values) r.add_values(v);
  return r;
}

grpc::Status Upsert(DnsServer& dns, std::vector<v1::Record> records,
                    v1::UpsertRecordsResponse* out = nullptr) {
  v1::UpsertRecordsRequest req;
  for (auto& r : records) *req.add_records() = r;
  grpc::ClientContext ctx;
  v1::UpsertRecordsResponse resp;
  grpc::Status s = dns.stub().UpsertRecords(&ctx, req, &resp);
  if (out) *out = resp;
  return s;
}

struct Env {
  Env() : base(Base()), pool(db.NewPool()), dns(db, *pool, base) {}
  std::string base;
  testing::TestDatabase db;
  std::unique_ptr<pg::Pool> pool;
  DnsServer dns;
};

TEST_CASE("records of every type written through the DNS service are served by PowerDNS", "[dns]") {
  Env e;
  const std::string app = "web.shop." + e.base, internal = "web.shop.internal." + e.base;
  v1::UpsertRecordsResponse resp;
  grpc::Status s =
      Upsert(e.dns,
             {Rec(app, v1::RECORD_TYPE_A, {"127.0.0.1", "127.0.0.2"}),
              Rec(app, v1::RECORD_TYPE_AAAA, {"2001:DB8:0:0::1"}),
              Rec("_acme-challenge.web.shop." + e.base, v1::RECORD_TYPE_TXT, {"token-value_1"}),
              Rec("www.shop." + e.base, v1::RECORD_TYPE_CNAME, {app}),
              Rec(internal, v1::RECORD_TYPE_SRV, {"0 1 8080 " + app})},
             &resp);
  INFO(s.error_message());
  REQUIRE(s.ok());
  CHECK(resp.synced());
  REQUIRE(resp.records_size() == 5);
  CHECK(resp.records(1).values(0) == "2001:db8::1");  // canonical form
  CHECK(Dig(app, "A") == std::set<std::string>{"127.0.0.1", "127.0.0.2"});
  CHECK(Dig(app, "AAAA") == std::set<std::string>{"2001:db8::1"});
  CHECK(Dig("_acme-challenge.web.shop." + e.base, "TXT") ==
        std::set<std::string>{"\"token-value_1\""});
  CHECK(Dig("www.shop." + e.base, "CNAME") == std::set<std::string>{app + "."});
  CHECK(Dig(internal, "SRV") == std::set<std::string>{"0 1 8080 " + app + "."});

  // A change replaces the set; the zone's sync job records the serial.
  REQUIRE(Upsert(e.dns, {Rec(app, v1::RECORD_TYPE_A, {"127.0.0.3"})}).ok());
  CHECK(Dig(app, "A") == std::set<std::string>{"127.0.0.3"});
  CHECK(testing::WaitFor(10s, [&] {
    return e.db.Count("SELECT count(*) FROM dns_zones WHERE name = '" + e.base +
                      "' AND serial = synced_serial AND serial > 1") == 1;
  }));
  // Deleting the owner's A set leaves its other records.
  v1::DeleteRecordsRequest del;
  del.set_owner("service:svc_test");
  del.set_name(app);
  del.set_type(v1::RECORD_TYPE_A);
  grpc::ClientContext ctx;
  v1::DeleteRecordsResponse deleted;
  REQUIRE(e.dns.stub().DeleteRecords(&ctx, del, &deleted).ok());
  CHECK(deleted.deleted() == 1);
  CHECK(deleted.synced());
  CHECK(Dig(app, "A").empty());
  CHECK(Dig(app, "AAAA") == std::set<std::string>{"2001:db8::1"});
}

TEST_CASE("c2d's resolver asks one DNS server for a name's records", "[dns]") {
  Env e;
  const std::string app = "web.r." + e.base, alias = "www.r." + e.base;
  REQUIRE(Upsert(e.dns, {Rec(app, v1::RECORD_TYPE_A, {"127.0.0.1", "127.0.0.2"}),
                         Rec(alias, v1::RECORD_TYPE_CNAME, {app}),
                         Rec("_acme-challenge.r." + e.base, v1::RECORD_TYPE_TXT, {"tok"})})
              .ok());
  dns::Resolver resolver(RequireEnv("C2D_TEST_PDNS_DNS_ADDR"));
  auto a = resolver.Lookup(app, "A");
  REQUIRE(a.ok());
  CHECK(std::set<std::string>(a->begin(), a->end()) ==
        std::set<std::string>{"127.0.0.1", "127.0.0.2"});
  auto cname = resolver.Lookup(alias, "CNAME");
  REQUIRE(cname.ok());
  CHECK(*cname == std::vector<std::string>{app});
  auto txt = resolver.Lookup("_acme-challenge.r." + e.base, "TXT");
  REQUIRE(txt.ok());
  CHECK(*txt == std::vector<std::string>{"tok"});
  auto none = resolver.Lookup(app, "AAAA");  // the name exists without AAAA
  REQUIRE(none.ok());
  CHECK(none->empty());
  CHECK(absl::IsNotFound(resolver.Lookup("nothing.r." + e.base, "A").status()));
  CHECK(absl::IsInvalidArgument(resolver.Lookup(app, "MX").status()));
  CHECK(absl::IsInvalidArgument(dns::Resolver("localhost").Lookup(app, "A").status()));
  // A server that does not answer.
  auto silent = dns::Resolver(absl::StrCat("127.0.0.1:", testing::FreePort()),
                              std::chrono::milliseconds(1000))
                    .Lookup(app, "A");
  CHECK(absl::IsUnavailable(silent.status()));
}

TEST_CASE("the sweep puts back records changed or deleted behind c2d's back", "[dns]") {
  Env e;
  const std::string a = "a.p." + e.base, b = "b.p." + e.base, zone = e.base + ".";
  REQUIRE(Upsert(e.dns, {Rec(a, v1::RECORD_TYPE_A, {"127.0.0.1"}),
                         Rec(b, v1::RECORD_TYPE_TXT, {"keep-me"})})
              .ok());
  // The zone's own sync job, done first (it would repair the drift itself).
  REQUIRE(testing::WaitFor(10s, [&] {
    return e.db.Count(
               "SELECT count(*) FROM jobs WHERE queue = 'dns' AND state IN "
               "('available', 'running')") == 0;
  }));
  // Behind c2d's back: a changed, b deleted, a foreign record added, and a
  // stale record carrying c2d's tag (as a failed delete would leave).
  REQUIRE(e.dns.pdns().Replace(zone, {a + ".", "A", 60, {"10.9.9.9"}, ""}).ok());
  REQUIRE(e.dns.pdns().Delete(zone, b + ".", "TXT").ok());
  REQUIRE(e.dns.pdns().Replace(zone, {"theirs.p." + zone, "A", 60, {"10.1.1.1"}, ""}).ok());
  REQUIRE(e.dns.pdns()
              .Replace(zone, {"stale.p." + zone, "A", 60, {"10.2.2.2"}, e.dns.syncer().tag()})
              .ok());
  REQUIRE(Dig(a, "A") == std::set<std::string>{"10.9.9.9"});

  e.dns.syncer().Sweep();
  CHECK(Dig(a, "A") == std::set<std::string>{"127.0.0.1"});
  CHECK(Dig(b, "TXT") == std::set<std::string>{"\"keep-me\""});
  CHECK(Dig("theirs.p." + e.base, "A") == std::set<std::string>{"10.1.1.1"});
  CHECK(Dig("stale.p." + e.base, "A").empty());
  // A second pass finds nothing to do.
  auto changed = e.dns.syncer().SyncZone(
      e.db.Scalar("SELECT id FROM dns_zones WHERE name = '" + e.base + "'"));
  REQUIRE(changed.ok());
  CHECK(*changed == 0);
}

TEST_CASE("bad DNS requests are refused with the reason and change nothing", "[dns]") {
  Env e;
  const std::string app = "web.p." + e.base;
  REQUIRE(Upsert(e.dns, {Rec(app, v1::RECORD_TYPE_A, {"127.0.0.1"})}).ok());
  const int64_t before = e.db.Count("SELECT count(*) FROM dns_records");
  const std::string serial =
      e.db.Scalar("SELECT string_agg(serial::text, ',' ORDER BY name) FROM dns_zones");
  struct Case {
    std::vector<v1::Record> records;
    grpc::StatusCode code;
    std::string says;
  };
  v1::Record long_ttl = Rec("x.p." + e.base, v1::RECORD_TYPE_A, {"127.0.0.1"});
  long_ttl.set_ttl(86401);
  std::vector<Case> cases = {
      {{}, grpc::INVALID_ARGUMENT, "records"},
      {{Rec("web.example.org", v1::RECORD_TYPE_A, {"127.0.0.1"})},
       grpc::INVALID_ARGUMENT,
       "no zone"},
      {{Rec("x.p." + e.base, v1::RECORD_TYPE_A, {"300.1.1.1"})}, grpc::INVALID_ARGUMENT, "IPv4"},
      {{Rec("x.p." + e.base, v1::RECORD_TYPE_AAAA, {"127.0.0.1"})}, grpc::INVALID_ARGUMENT, "IPv6"},
      {{Rec("x.p." + e.base, v1::RECORD_TYPE_CNAME, {"a." + e.base, "b." + e.base})},
       grpc::INVALID_ARGUMENT,
       "exactly one"},
      {{Rec("x.p." + e.base, v1::RECORD_TYPE_TXT, {"say \"hi\""})},
       grpc::INVALID_ARGUMENT,
       "quotes"},
      {{Rec("x.p." + e.base, v1::RECORD_TYPE_SRV, {"0 1 70000 a." + e.base})},
       grpc::INVALID_ARGUMENT,
       "<priority>"},
      {{Rec("Bad Name." + e.base, v1::RECORD_TYPE_A, {"127.0.0.1"})},
       grpc::INVALID_ARGUMENT,
       "name"},
      {{long_ttl}, grpc::INVALID_ARGUMENT, "ttl"},
      {{Rec("x.p." + e.base, v1::RECORD_TYPE_A, {"127.0.0.1"}, "tenant:evil")},
       grpc::INVALID_ARGUMENT,
       "owner"},
      {{Rec("x.p." + e.base, v1::RECORD_TYPE_A, {"127.0.0.1"}),
        Rec("x.p." + e.base, v1::RECORD_TYPE_A, {"127.0.0.2"})},
       grpc::INVALID_ARGUMENT,
       "repeats"},
      // Another owner's set, and a CNAME beside an A, fail the whole call:
      // the valid record before them is not written either.
      {{Rec("y.p." + e.base, v1::RECORD_TYPE_A, {"127.0.0.1"}),
        Rec(app, v1::RECORD_TYPE_A, {"10.0.0.1"}, "service:svc_other")},
       grpc::FAILED_PRECONDITION,
       "belongs to service:svc_test"},
      {{Rec(app, v1::RECORD_TYPE_CNAME, {"other." + e.base})}, grpc::FAILED_PRECONDITION, "CNAME"},
  };
  for (const Case& c : cases) {
    grpc::Status s = Upsert(e.dns, c.records);
    INFO(s.error_message());
    CHECK(s.error_code() == c.code);
    CHECK(absl::StrContains(s.error_message(), c.says));
  }
  CHECK(e.db.Count("SELECT count(*) FROM dns_records") == before);
  CHECK(e.db.Scalar("SELECT string_agg(serial::text, ',' ORDER BY name) FROM dns_zones") == serial);
  CHECK(Dig(app, "A") == std::set<std::string>{"127.0.0.1"});
  CHECK(Dig("y.p." + e.base, "A").empty());
  // Another owner cannot delete it either.
  v1::DeleteRecordsRequest del;
  del.set_owner("service:svc_other");
  grpc::ClientContext ctx;
  v1::DeleteRecordsResponse deleted;
  REQUIRE(e.dns.stub().DeleteRecords(&ctx, del, &deleted).ok());
  CHECK(deleted.deleted() == 0);
  CHECK(Dig(app, "A") == std::set<std::string>{"127.0.0.1"});
}

TEST_CASE("a record written while PowerDNS is unreachable reaches it through dns_sync", "[dns]") {
  Env e;
  // A second DNS service on the same database whose PowerDNS is a closed port.
  dns::Pdns down({.api_url = absl::StrCat("http://127.0.0.1:", testing::FreePort()),
                  .api_key = "x",
                  .timeout = 1000ms});
  dns::Syncer syncer(*e.pool, down, e.dns.syncer().tag());
  dns::DnsServiceImpl service(*e.pool, syncer);
  const std::string name = "late.p." + e.base;
  v1::UpsertRecordsRequest req;
  *req.add_records() = Rec(name, v1::RECORD_TYPE_A, {"127.0.0.9"});
  v1::UpsertRecordsResponse resp;
  grpc::ServerContext ctx;
  REQUIRE(service.UpsertRecords(&ctx, &req, &resp).ok());
  CHECK_FALSE(resp.synced());
  CHECK(e.db.Count("SELECT count(*) FROM dns_records WHERE name = '" + name + "'") == 1);
  // The job (claimed by the fixture's worker, whose PowerDNS answers) pushes it.
  CHECK(
      testing::WaitFor(15s, [&] { return Dig(name, "A") == std::set<std::string>{"127.0.0.9"}; }));
}

}  // namespace
}  // namespace c2d
