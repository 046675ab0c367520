// The OpenStack provider against a real OpenStack (tools/openstack-up) and a
// real PostgreSQL for its ledger: an instance's whole life, a failure
// injected at every step (before a call is sent, and after it was made with
// its answer lost) leaving nothing behind, the sweep after a crash, a
// revoked token, the quota, and anti-affinity.

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "libs/cloud/openstack/provider.h"
#include "libs/common/command.h"
#include "libs/common/ids.h"
#include "libs/crypto/hash.h"
#include "libs/http/client.h"
#include "tests/integration/openstack/instance_caddy.h"
#include "tests/integration/openstack/os_env.h"
#include "tests/support/pg_fixture.h"

namespace c2d::cloud::openstack {
namespace {

using json = nlohmann::json;
using testing::RequireEnv;

// Fails the n-th call that changes something (not GET), before it is sent
// or after it was made (its answer lost).
struct Injector {
  absl::Mutex mu;
  int calls = 0;
  int fail_at = 0;  // 0: never
  bool after = false;
  bool fail_deletes = false;
  std::string failed;  // what the failed call was

  absl::Status Check(const std::string& service, const CallRequest& r, bool sent) {
    if (r.method == "GET") return absl::OkStatus();
    absl::MutexLock lock(&mu);
    if (fail_deletes && r.method == "DELETE" && !sent) {
      return absl::UnavailableError("injected: deletes fail");
    }
    if (sent != after) return absl::OkStatus();
    if (++calls != fail_at) return absl::OkStatus();
    failed = absl::StrCat(service, " ", r.method, " ", r.path);
    return absl::UnavailableError(absl::StrCat("injected at call ", calls, ": ", failed));
  }
  // What failed, if anything; nothing fails from now on.
  std::string Disarm() {
    absl::MutexLock lock(&mu);
    fail_at = 0;
    fail_deletes = false;
    return failed;
  }
  void Arm(int n, bool after_sent) {
    absl::MutexLock lock(&mu);
    calls = 0;
    fail_at = n;
    after = after_sent;
    failed.clear();
  }
};

Options Hooked(Injector& in) {
  return {.timeout = std::chrono::milliseconds(30'000),
          .before_call = [&in](const std::string& s,
                               const CallRequest& r) { return in.Check(s, r, false); },
          .after_call = [&in](const std::string& s,
                              const CallRequest& r) { return in.Check(s, r, true); }};
}

struct Fixture {
  Fixture() : session(User(), Hooked(injector)), provider(session, ledger, TestProviderOptions()) {
    PrepareCloud();
  }
  InstanceSpec Web(const std::string& service) const { return Web(service, network); }
  InstanceSpec Web(const std::string& service, const std::string& on) const {
    const std::string id = absl::AsciiStrToLower(ids::New("ins"));
    return {.name = "c2d-" + id,
            .image = "registry.example:5000/prj/web@sha256:" + std::string(64, 'b'),
            .env = {{"GREETING", "it's fine"}},
            .port = 8080,
            .memory_bytes = 128 << 20,
            .labels = {{"c2d.project", "prj"}, {"c2d.service", service}, {"c2d.instance", id}},
            .network = on};
  }
  // What the cloud still holds of the network `name`.
  std::vector<std::string> NetworkRemains(const std::string& name) {
    Session s(User());
    Neutron neutron(s);
    std::vector<std::string> left;
    for (const char* kind : {"networks", "subnets", "routers"}) {
      if (neutron.FindByName(kind, name)->has_value()) left.push_back(kind);
    }
    for (const char* group : {"-app", "-db"}) {
      if (neutron.FindByName("security-groups", name + group)->has_value()) {
        left.push_back(name + group);
      }
    }
    if (!ledger.Owned("network:" + name)->empty()) left.push_back("ledger rows");
    return left;
  }
  // What the cloud still holds of the instance `name`.
  std::vector<std::string> Remains(const std::string& name) {
    Session s(User());
    Nova nova(s);
    Neutron neutron(s);
    std::vector<std::string> left;
    if (!nova.ListServers({{"c2d.server", name}})->empty()) left.push_back("server");
    if (neutron.FindByName("ports", name)->has_value()) left.push_back("port");
    if (neutron.FindFloatingIp(name)->has_value()) left.push_back("floating IP");
    if (!ledger.Owned(name)->empty()) left.push_back("ledger rows");
    return left;
  }

  testing::TestDatabase db;
  std::unique_ptr<pg::Pool> pool = db.NewPool(4);
  PgLedger ledger{*pool, "openstack"};
  Injector injector;
  Session session;
  OpenStackProvider provider;
  const std::string network = "c2d-" + absl::AsciiStrToLower(ids::New("prj"));
};

std::vector<std::string> Rules(Session& s, const std::string& group) {
  auto r = s.Call("network", {.path = "/v2.0/security-group-rules?security_group_id=" + group});
  REQUIRE(r.ok());
  std::vector<std::string> out;
  for (const json& rule : r->body["security_group_rules"]) {
    if (rule.value("direction", "") != "ingress") continue;
    out.push_back(absl::StrCat(rule.value("port_range_min", json(0)).dump(), " ",
                               rule.value("remote_ip_prefix", json("")).dump(), " ",
                               rule.value("remote_group_id", json("")).is_null() ? "" : "group"));
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST_CASE("openstack provider: an instance's whole life on its project's network", "[openstack]") {
  Fixture f;
  REQUIRE(f.provider.EnsureNetwork(f.network).ok());
  const size_t rows = f.ledger.All()->size();
  CHECK(rows == 10);  // network, subnet, router, its interface, 2 security groups, 4 rules
  REQUIRE(f.provider.EnsureNetwork(f.network).ok());
  CHECK(f.ledger.All()->size() == rows);

  InstanceSpec web = f.Web("svc-1");
  auto made = f.provider.Create(web);
  INFO(made.status().ToString());
  REQUIRE(made.ok());
  CHECK(made->state == InstanceState::kRunning);
  CHECK(made->name == web.name);
  CHECK(made->labels == web.labels);  // c2d's own labels are not shown
  CHECK(absl::StartsWith(made->private_address, "10.42.0."));
  CHECK(absl::StartsWith(made->address, "203.0.113."));  // its floating IP, port 80
  CHECK(absl::EndsWith(made->address, ":80"));

  // Its user data, as Nova keeps it: the instance's own admin CA, the one
  // c2d makes again from its client key and the instance's name.
  Session admin(Admin());
  auto shown = admin.Call("compute", {.path = "/servers/" + made->ref,
                                      .headers = {{"OpenStack-API-Version", "compute 2.3"}}});
  REQUIRE(shown.ok());
  std::string user_data;
  REQUIRE(absl::Base64Unescape(
      shown->body["/server/OS-EXT-SRV-ATTR:user_data"_json_pointer].get<std::string>(),
      &user_data));
  const json doc = json::parse(user_data.substr(user_data.find('\n') + 1));
  std::map<std::string, std::string> files;
  for (const json& file : doc["write_files"]) files[file["path"]] = file["content"];
  auto ca = InstanceAdminCa(TestAdminClient().key_pem, web.name);
  REQUIRE(ca.ok());
  CHECK(files[kAdminCaKeyPath] == *ca->key.ToPem());
  CHECK(crypto::ParseCertificateChain(files[kAdminCaCertPath])->issuer ==
        absl::StrCat("CN=", AdminName(web.name), " admin"));

  // Its Caddy, played here on its floating IP from that user data: c2d
  // loads a certificate into it, which it then serves; c2d holding another
  // identity cannot (it derives another CA: the handshake fails).
  {
    const std::string ip = made->address.substr(0, made->address.rfind(':'));
    (void)RunCommand({.argv = {"ip", "addr", "add", ip + "/32", "dev", "lo"}});
    {
      testing::InstanceCaddy caddy(files, ip, 443);
      CHECK(caddy.admin_port() == 2021);
      const testing::Site site = testing::NewSite("app.example.test");
      absl::Status served;
      CHECK(testing::WaitFor(std::chrono::seconds(20), [&] {
        served = f.provider.ServeCertificates(made->ref, {site.served});
        return served.ok();
      }));
      INFO(served.ToString() << "\n" << caddy.Output());
      CHECK(caddy.Visit("app.example.test", site.ca_pem).ok());
      ProviderOptions other = TestProviderOptions();
      other.admin_client = testing::NewClient("not c2d");
      OpenStackProvider stranger(f.session, f.ledger, other);
      const testing::Site forged = testing::NewSite("app.example.test");
      CHECK(absl::IsUnavailable(stranger.ServeCertificates(made->ref, {forged.served})));
      CHECK(caddy.Visit("app.example.test", site.ca_pem).ok());
      CHECK_FALSE(caddy.Visit("app.example.test", forged.ca_pem).ok());
    }
    (void)RunCommand({.argv = {"ip", "addr", "del", ip + "/32", "dev", "lo"}});
  }

  auto listed = f.provider.List({{"c2d.instance", web.labels["c2d.instance"]}});
  REQUIRE(listed.ok());
  REQUIRE(listed->size() == 1);
  CHECK(listed->front().ref == made->ref);
  CHECK(listed->front().address == made->address);

  InstanceSpec db = f.Web("unused");
  db.labels = {{"c2d.project", "prj"}, {"c2d.database", "db-1"}};
  db.port = 5432;
  auto server = f.provider.Create(db);
  REQUIRE(server.ok());
  CHECK(server->address == server->private_address + ":5432");  // no floating IP
  CHECK(f.Remains(db.name) == std::vector<std::string>{"server", "port", "ledger rows"});

  // The groups: the web from anywhere to apps; a database's port from apps
  // only (and every port from c2d), opened with its first server.
  Session s(User());
  Neutron neutron(s);
  CHECK(Rules(s, **neutron.FindByName("security-groups", f.network + "-app")) ==
        std::vector<std::string>{"443 \"0.0.0.0/0\" ", "80 \"0.0.0.0/0\" ",
                                 "null \"192.0.2.0/24\" "});
  CHECK(Rules(s, **neutron.FindByName("security-groups", f.network + "-db")) ==
        std::vector<std::string>{"5432 null group", "null \"192.0.2.0/24\" "});

  REQUIRE(f.provider.Stop(made->ref, std::chrono::seconds(10)).ok());
  CHECK(f.provider.Inspect(made->ref)->state == InstanceState::kExited);
  REQUIRE(f.provider.Start(made->ref).ok());
  CHECK(f.provider.Inspect(made->ref)->state == InstanceState::kRunning);

  // A network in use stays.
  CHECK_FALSE(f.provider.RemoveNetwork(f.network).ok());
  for (const Instance& i : {*made, *server}) {
    REQUIRE(f.provider.Remove(i.ref).ok());
    CHECK(absl::IsNotFound(f.provider.Inspect(i.ref).status()));
    CHECK(absl::IsNotFound(f.provider.Remove(i.ref)));
    CHECK(f.Remains(i.name).empty());
  }
  REQUIRE(f.provider.RemoveNetwork(f.network).ok());
  CHECK(f.ledger.All()->empty());
  for (const char* kind : {"networks", "subnets", "routers"}) {
    CHECK_FALSE(neutron.FindByName(kind, f.network)->has_value());
  }
  CHECK_FALSE(neutron.FindByName("security-groups", f.network + "-app")->has_value());
}

// Fails the k-th call that changes something, for k = 1, 2, ... until
// `run` succeeds, before the call is sent and then after it was made with
// its answer lost; `check` runs after each failure. The calls that failed.
std::vector<std::string> FailEachStep(Fixture& f, bool after,
                                      const std::function<absl::Status(int k)>& run,
                                      const std::function<void(int k)>& check) {
  std::vector<std::string> failed;
  for (int k = 1; k < 30; ++k) {
    f.injector.Arm(k, after);
    absl::Status s = run(k);
    const std::string what = f.injector.Disarm();
    if (s.ok()) return failed;
    failed.push_back(what);
    INFO((after ? "answer lost: " : "not sent: ") << what << ": " << s);
    CHECK(absl::IsUnavailable(s));
    check(k);
  }
  FAIL("still failing after 30 steps");
  return failed;
}

// Create, failing at each step (FailEachStep), of a new spec(k) each try:
// nothing of a failed try stays. The calls that failed, and what was made.
std::pair<std::vector<std::string>, Instance> CreateFailingEachStep(
    Fixture& f, bool after, const std::function<InstanceSpec(int k)>& spec) {
  std::string name;
  Instance made;
  auto failed = FailEachStep(
      f, after,
      [&](int k) {
        const InstanceSpec s = spec(k);
        name = s.name;
        auto m = f.provider.Create(s);
        if (m.ok()) made = *m;
        return m.status();
      },
      [&](int) { CHECK(f.Remains(name).empty()); });
  return {failed, made};
}

// `failed` is `count` calls, among them each of `steps`.
void CheckSteps(const std::vector<std::string>& failed, size_t count,
                const std::vector<std::string>& steps) {
  const std::string all = absl::StrJoin(failed, "\n");
  INFO(all);
  CHECK(failed.size() == count);
  for (const std::string& step : steps) CHECK_THAT(all, Catch::Contains(step));
}

void CheckNetworkSteps(const std::vector<std::string>& failed) {
  // 6 resources, 4 rules (2 control CIDR rules)
  CheckSteps(
      failed, 10,
      {"POST /v2.0/networks", "POST /v2.0/subnets", "POST /v2.0/routers", "/add_router_interface",
       "POST /v2.0/security-groups", "POST /v2.0/security-group-rules"});
}

// Tries to make `network` until it is made, failing one step per try: the
// call is not sent (the first try's first call, then each try's second, its
// first being the step that failed before), or it is made and its answer
// lost (each try's first). The calls that failed.
std::vector<std::string> FailNetworkSteps(Fixture& f, const std::string& network, bool after) {
  std::vector<std::string> failed;
  for (int attempt = 0; attempt < 20; ++attempt) {
    f.injector.Arm(after || attempt == 0 ? 1 : 2, after);
    absl::Status s = f.provider.EnsureNetwork(network);
    const std::string what = f.injector.Disarm();
    if (s.ok()) return failed;
    INFO((after ? "answer lost: " : "not sent: ") << what << ": " << s);
    CHECK(absl::IsUnavailable(s));
    failed.push_back(what);
  }
  FAIL("still failing after 20 tries");
  return failed;
}

TEST_CASE("openstack provider: a failure at any step of a project network leaves nothing",
          "[openstack]") {
  Fixture f;
  for (bool after : {false, true}) {
    // Each step fails once and the next try goes on from there: nothing is
    // made twice (a second one would outlive RemoveNetwork).
    const std::string network = absl::StrCat(f.network, "-", after);
    CheckNetworkSteps(FailNetworkSteps(f, network, after));
    REQUIRE(f.provider.RemoveNetwork(network).ok());
    CHECK(f.NetworkRemains(network).empty());
  }
  // Given up half-way, answers lost (the router interface's last): removed
  // all the same, each resource found by its name.
  f.injector.Arm(4, true);
  CHECK(absl::IsUnavailable(f.provider.EnsureNetwork(f.network)));
  CHECK_THAT(f.injector.Disarm(), Catch::Contains("/add_router_interface"));
  REQUIRE(f.provider.RemoveNetwork(f.network).ok());
  CHECK(f.NetworkRemains(f.network).empty());
  CHECK(f.ledger.All()->empty());
}

TEST_CASE("openstack provider: a failure at any step of Create leaves nothing of the instance",
          "[openstack]") {
  Fixture f;
  REQUIRE(f.provider.EnsureNetwork(f.network).ok());
  for (bool after : {false, true}) {
    // A new service each round, so its server group is a step too.
    auto [failed, made] = CreateFailingEachStep(
        f, after, [&](int k) { return f.Web(absl::StrCat("svc-", after, "-", k)); });
    CheckSteps(
        failed, 4,
        {"POST /v2.0/ports", "POST /os-server-groups", "POST /servers", "POST /v2.0/floatingips"});
    REQUIRE(f.provider.Remove(made.ref).ok());
    CHECK(f.Remains(made.name).empty());
  }
  // A group whose answer was lost was found again, not made twice.
  Session s(User());
  auto groups = s.Call("compute", {.path = "/os-server-groups"});
  REQUIRE(groups.ok());
  std::vector<std::string> names;
  for (const json& g : groups->body["server_groups"]) {
    if (absl::StartsWith(g.value("name", ""), f.network)) names.push_back(g["name"]);
  }
  std::sort(names.begin(), names.end());
  CHECK(std::adjacent_find(names.begin(), names.end()) == names.end());
  REQUIRE(f.provider.RemoveNetwork(f.network).ok());
  CHECK(f.ledger.All()->empty());
  CHECK(f.NetworkRemains(f.network).empty());
  CHECK_FALSE(Nova(s).FindServerGroup(f.network + "-svc-1-2")->has_value());
}

TEST_CASE("openstack provider: the any-port database rule of earlier releases goes",
          "[openstack]") {
  Fixture f;
  REQUIRE(f.provider.EnsureNetwork(f.network).ok());
  // What an earlier release made: every port of the databases open to the apps.
  Session s(User());
  Neutron neutron(s);
  const std::string db_group = **neutron.FindByName("security-groups", f.network + "-db");
  const std::string app_group = **neutron.FindByName("security-groups", f.network + "-app");
  const std::string legacy = f.network + "-db:apps";
  REQUIRE(f.ledger.Record(kRule, legacy, "network:" + f.network).ok());
  auto rule = neutron.EnsureRule(db_group,
                                 {.port_min = 1, .port_max = 65535, .remote_group_id = app_group});
  REQUIRE(rule.ok());
  REQUIRE(f.ledger.Bind(kRule, legacy, *rule).ok());
  // (Neutron shows 1-65535 as no range.)
  CHECK(Rules(s, db_group) ==
        std::vector<std::string>{"null \"192.0.2.0/24\" ", "null null group"});
  // The next process to ensure the network removes it.
  Session other_session(User());
  OpenStackProvider upgraded(other_session, f.ledger, TestProviderOptions());
  REQUIRE(upgraded.EnsureNetwork(f.network).ok());
  CHECK(Rules(s, db_group) == std::vector<std::string>{"null \"192.0.2.0/24\" "});
  auto rows = f.ledger.All();  // held: a range over *All() would outlive its StatusOr
  REQUIRE(rows.ok());
  for (const Resource& r : *rows) CHECK(r.name != legacy);
  REQUIRE(upgraded.RemoveNetwork(f.network).ok());
  CHECK(f.NetworkRemains(f.network).empty());
}

TEST_CASE("openstack provider: two replicas sharing the ledger make a project network once",
          "[openstack]") {
  Fixture f;
  Session other_session(User());
  OpenStackProvider other(other_session, f.ledger, TestProviderOptions());
  absl::Status a, b;
  std::thread first([&] { a = f.provider.EnsureNetwork(f.network); });
  std::thread second([&] { b = other.EnsureNetwork(f.network); });
  first.join();
  second.join();
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  Session s(User());
  for (const char* kind : {"networks", "subnets", "routers", "security-groups"}) {
    INFO(kind);
    auto listed = s.Call(
        "network", {.path = absl::StrCat("/v2.0/", kind, "?name=", f.network,
                                         std::string(kind) == "security-groups" ? "-app" : "")});
    REQUIRE(listed.ok());
    std::string key = kind;
    for (char& c : key) c = c == '-' ? '_' : c;
    CHECK(listed->body[key].size() == 1);
  }
  REQUIRE(other.RemoveNetwork(f.network).ok());
  CHECK(f.NetworkRemains(f.network).empty());
}

TEST_CASE("openstack provider: the sweep deletes what a crashed Create left", "[openstack]") {
  Fixture f;
  InstanceSpec web = f.Web("svc-3");
  // The floating IP's answer is lost and the clean-up cannot delete
  // anything: as if the process had died there.
  REQUIRE(f.provider.EnsureNetwork(f.network).ok());
  f.injector.Arm(4, true);  // port, server group, server, floating IP
  f.injector.fail_deletes = true;
  auto made = f.provider.Create(web);
  INFO(f.injector.Disarm());
  INFO(made.status().ToString());
  REQUIRE_FALSE(made.ok());
  CHECK(f.Remains(web.name) ==
        std::vector<std::string>{"server", "port", "floating IP", "ledger rows"});

  // A new process, the same ledger.
  Session fresh(User());
  OpenStackProvider restarted(fresh, f.ledger, TestProviderOptions());
  CHECK(restarted.Sweep(absl::Hours(1)).value_or(-1) == 0);  // too recent to judge
  // The server exists: an instance with a server is not the sweep's.
  CHECK(restarted.Sweep(absl::ZeroDuration()).value_or(-1) == 0);
  Nova nova(fresh);
  auto servers = nova.ListServers({{"c2d.server", web.name}});
  REQUIRE(servers.ok());
  REQUIRE(servers->size() == 1);
  const std::string server = servers->front().id;
  REQUIRE(nova.DeleteServer(server).ok());
  REQUIRE(nova.WaitGone(server, absl::Now() + absl::Seconds(60)).ok());
  auto swept = restarted.Sweep(absl::ZeroDuration());
  INFO(swept.status().ToString());
  REQUIRE(swept.ok());
  CHECK(*swept == 3);
  CHECK(f.Remains(web.name).empty());
  REQUIRE(restarted.RemoveNetwork(f.network).ok());
}

TEST_CASE("openstack provider: a token revoked mid-deploy and an exhausted quota", "[openstack]") {
  Fixture f;
  InstanceSpec web = f.Web("svc-4");
  auto made = f.provider.Create(web);
  REQUIRE(made.ok());
  // Keystone revokes the provider's token (as at an early expiry). Nova and
  // Neutron keep a token they validated in their cache for minutes, but a
  // service that has not seen it yet asks Keystone, and answers 401: the
  // session gets one new token and the call goes through.
  Session admin(Admin());
  const std::string token = *f.session.Token();
  auto revoked =
      http::Send({.method = "DELETE",
                  .url = RequireEnv("C2D_TEST_OS_AUTH_URL") + "/auth/tokens",
                  .headers = {{"X-Auth-Token", *admin.Token()}, {"X-Subject-Token", token}}});
  REQUIRE(revoked.ok());
  REQUIRE(revoked->status == 204);
  const int before = f.session.authentications();
  auto containers = f.session.Call("object-store", {.path = "?format=json"});
  INFO(containers.status().ToString());
  CHECK(containers.ok());
  CHECK(f.session.authentications() == before + 1);
  CHECK(*f.session.Token() != token);
  REQUIRE(f.provider.Remove(made->ref).ok());
  CHECK(f.Remains(web.name).empty());

  // No server allowed: the user sees the quota's name, nothing stays.
  const std::string project = *f.session.ProjectId();
  auto quota = [&](int n) {
    return admin.Call("compute", {.method = "PUT",
                                  .path = "/os-quota-sets/" + project,
                                  .body = json{{"quota_set", {{"instances", n}}}}});
  };
  REQUIRE(quota(0).ok());
  InstanceSpec over = f.Web("svc-4");
  auto refused = f.provider.Create(over);
  REQUIRE(quota(-1).ok());
  CHECK(absl::IsResourceExhausted(refused.status()));
  CHECK_THAT(std::string(refused.status().message()), Catch::Contains("instances"));
  CHECK(f.Remains(over.name).empty());
  REQUIRE(f.provider.RemoveNetwork(f.network).ok());
}

TEST_CASE("openstack provider: three instances of a service share an anti-affinity group",
          "[openstack]") {
  Fixture f;
  std::vector<Instance> made;
  for (int i = 0; i < 3; ++i) {
    auto m = f.provider.Create(f.Web("svc-5"));
    REQUIRE(m.ok());
    made.push_back(*m);
  }
  Session s(User());
  Nova nova(s);
  auto group = nova.FindServerGroup(f.network + "-svc-5");
  REQUIRE(group.ok());
  REQUIRE(group->has_value());
  auto g = s.Call("compute", {.path = "/os-server-groups/" + **group,
                              .headers = {{"OpenStack-API-Version", "compute 2.67"}}});
  REQUIRE(g.ok());
  CHECK(g->body["/server_group/policy"_json_pointer] == "soft-anti-affinity");
  std::vector<std::string> members = g->body["/server_group/members"_json_pointer];
  std::vector<std::string> refs;
  for (const Instance& i : made) refs.push_back(i.ref);
  std::sort(members.begin(), members.end());
  std::sort(refs.begin(), refs.end());
  CHECK(members == refs);
  for (const Instance& i : made) REQUIRE(f.provider.Remove(i.ref).ok());
  REQUIRE(f.provider.RemoveNetwork(f.network).ok());
  CHECK_FALSE(nova.FindServerGroup(f.network + "-svc-5")->has_value());
}

// The volume (Cinder's view), once it is `status`.
Volume WaitVolume(Cinder& cinder, const std::string& name, const std::string& status) {
  auto found = cinder.FindVolume(name);
  REQUIRE(found.ok());
  REQUIRE(found->has_value());
  auto v = cinder.WaitFor((*found)->id, status, absl::Now() + absl::Seconds(60),
                          absl::Milliseconds(250));
  INFO(v.status().ToString());
  REQUIRE(v.ok());
  return *v;
}

// Whether Cinder has none of `volumes` any more (deleting takes a moment).
bool Gone(Cinder& cinder, const std::vector<std::string>& volumes) {
  return testing::WaitFor(std::chrono::seconds(60), [&] {
    for (const std::string& v : volumes) {
      if (cinder.FindVolume(v)->has_value()) return false;
    }
    return true;
  });
}

TEST_CASE("openstack provider: a database server's volume outlives it, takes a file, then goes",
          "[openstack]") {
  Fixture f;
  REQUIRE(f.provider.EnsureNetwork(f.network).ok());
  const std::string volume = "c2d-" + absl::AsciiStrToLower(ids::New("vol"));
  InstanceSpec db = f.Web("unused");
  db.labels = {{"c2d.project", "prj"}, {"c2d.database", "db-1"}};
  db.port = 6379;
  db.volumes = {{volume, "/data"}};
  db.stable_address = true;
  auto server = f.provider.Create(db);
  INFO(server.status().ToString());
  REQUIRE(server.ok());
  Session s(User());
  Cinder cinder(s);
  Nova nova(s);
  // Made, and attached at boot.
  Volume v = WaitVolume(cinder, volume, "in-use");
  CHECK(v.attached_to == std::vector<std::string>{server->ref});
  CHECK(v.metadata.at("c2d.volume") == volume);

  // A file into it: to Swift, linked from the metadata of the volume and of
  // its server, and the link opens the file for anyone.
  const std::string file =
      (std::filesystem::temp_directory_path() / (volume + "-restore.rdb")).string();
  const std::string dump = "REDIS0011" + std::string(10'000, 'x');
  std::ofstream(file) << dump;
  REQUIRE(f.provider.WriteVolumeFile(volume, "restore.rdb", file).ok());
  auto meta = nova.GetServer(server->ref);
  REQUIRE(meta.ok());
  const std::string value = meta->labels[FileMetaKey(volume, "restore.rdb")];
  std::vector<std::string> parts = absl::StrSplit(value, ' ');
  REQUIRE(parts.size() == 3);
  CHECK(parts[2] == crypto::Sha256Hex(dump));
  SwiftObjectStore files(s, {.container = "c2d-volume-files"});
  const std::string link =
      absl::StrCat(*files.ContainerUrl(), "/", volume, "/restore.rdb?temp_url_sig=", parts[1],
                   "&temp_url_expires=", parts[0]);
  auto got = http::Send({.url = link});
  REQUIRE(got.ok());
  CHECK(got->status == 200);
  CHECK(got->body == dump);
  // Not a label of c2d's callers.
  CHECK_FALSE(f.provider.Inspect(server->ref)->labels.count(FileMetaKey(volume, "restore.rdb")));
  CHECK(absl::IsInvalidArgument(f.provider.WriteVolumeFile(volume, "../x", file)));

  // The server goes, the volume and its file stay; the next server made to
  // mount it has the link from the start.
  REQUIRE(f.provider.Remove(server->ref).ok());
  CHECK(WaitVolume(cinder, volume, "available").attached_to.empty());
  CHECK(f.Remains(db.name).empty());
  db.name = "c2d-" + absl::AsciiStrToLower(ids::New("ins"));
  auto again = f.provider.Create(db);
  REQUIRE(again.ok());
  CHECK(WaitVolume(cinder, volume, "in-use").attached_to == std::vector<std::string>{again->ref});
  CHECK(nova.GetServer(again->ref)->labels[FileMetaKey(volume, "restore.rdb")] == value);
  // Its port alone is open to the project's apps, by one rule for both.
  CHECK(Rules(s, **Neutron(s).FindByName("security-groups", f.network + "-db")) ==
        std::vector<std::string>{"6379 null group", "null \"192.0.2.0/24\" "});
  // Another server for it is refused while this one holds it, and leaves nothing.
  InstanceSpec other = db;
  other.name = "c2d-" + absl::AsciiStrToLower(ids::New("ins"));
  auto held = f.provider.Create(other);
  CHECK(absl::IsFailedPrecondition(held.status()));
  CHECK_THAT(std::string(held.status().message()), Catch::Contains(db.name));
  CHECK(f.Remains(other.name).empty());
  REQUIRE(f.provider.Remove(again->ref).ok());

  // Deleting the volume deletes its file too.
  REQUIRE(f.provider.DeleteVolume(volume).ok());
  CHECK(Gone(cinder, {volume}));
  CHECK(absl::IsNotFound(files.Stat(volume + "/restore.rdb").status()));

  // A failure at any step of making a server with a volume (a new one each
  // try) leaves nothing of the server, and a volume made (its answer lost or
  // not) once: found again by its name.
  for (bool after : {false, true}) {
    std::vector<std::string> volumes;
    auto [failed, made] = CreateFailingEachStep(f, after, [&](int) {
      db.name = "c2d-" + absl::AsciiStrToLower(ids::New("ins"));
      volumes.push_back("c2d-" + absl::AsciiStrToLower(ids::New("vol")));
      db.volumes = {{volumes.back(), "/data"}};
      return db;
    });
    // The volume is attached at boot (block device mapping): no step of its own.
    CheckSteps(failed, 3, {"POST /volumes", "POST /v2.0/ports", "POST /servers"});
    REQUIRE(f.provider.Remove(made.ref).ok());
    CHECK(f.Remains(made.name).empty());
    for (const std::string& v : volumes) {
      auto named = s.Call("volumev3", {.path = "/volumes?name=" + v});
      REQUIRE(named.ok());
      CHECK(named->body["volumes"].size() <= 1);
      REQUIRE(f.provider.DeleteVolume(v).ok());
    }
    CHECK(Gone(cinder, volumes));
  }
  REQUIRE(f.provider.RemoveNetwork(f.network).ok());
  CHECK(f.ledger.All()->empty());
  std::filesystem::remove(file);
}

}  // namespace
}  // namespace c2d::cloud::openstack
