// The deployer on the OpenStack provider: the real all-in-one OpenStack for
// the servers, the platform tools/test starts (PostgreSQL, registry,
// PowerDNS, the ingress Caddy) for the rest.
//
// Routing is DNS round-robin (DESIGN §1 point 1): the service's hostname has
// one A record per healthy instance, its floating IP, where the instance's
// own Caddy answers. Nova's fake virt driver runs nothing inside a server,
// so this test plays each server's Caddy: every floating IP the project's
// servers get is put on the loopback interface with an HTTP server on its
// port 80 answering as the instance's release would (its version at /, "ok"
// at /health). Health checks and DNS then see what they would in a cloud.

#include <catch2/catch.hpp>
#include <chrono>
#include <iostream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "libs/cloud/openstack/cinder.h"
#include "libs/cloud/openstack/provider.h"
#include "libs/common/command.h"
#include "libs/common/log.h"
#include "libs/http/client.h"
#include "libs/httpd/server.h"
#include "tests/integration/deployer/deployer_fixture.h"
#include "tests/integration/openstack/os_env.h"

namespace c2d::cloud::openstack {
namespace {

using namespace std::chrono_literals;
using testing::DeployerFixture;
using testing::WaitFor;

class ServerStandIns {
 public:
  ServerStandIns(Provider& provider, std::string project)
      : provider_(provider), project_(std::move(project)), thread_([this] { Loop(); }) {}
  ~ServerStandIns() {
    stop_ = true;
    thread_.join();
    for (auto& [ip, server] : servers_) Drop(ip);
  }
  // What the servers of deployment `id` answer at /.
  void Serve(const std::string& id, const std::string& version) {
    absl::MutexLock lock(&mu_);
    versions_[id] = version;
  }
  // The server at `ip` fails its health checks (503) while `failing`.
  void FailHealth(const std::string& ip, bool failing) {
    absl::MutexLock lock(&mu_);
    if (failing) {
      sick_.insert(ip);
    } else {
      sick_.erase(ip);
    }
  }
  int served() const { return served_.load(); }

 private:
  void Loop() {
    while (!stop_) {
      auto live = provider_.List({{"c2d.project", project_}});
      if (live.ok()) Sync(*live);
      // Not faster: every listing is two calls to OpenStack, which shares
      // the machine with the rest of the suite.
      std::this_thread::sleep_for(1s);
    }
  }
  void Sync(const std::vector<Instance>& live) {
    std::set<std::string> seen;
    for (const Instance& i : live) {
      absl::string_view ip = i.address;
      if (!absl::ConsumeSuffix(&ip, ":80")) continue;
      seen.insert(std::string(ip));
      if (!servers_.count(std::string(ip))) Add(std::string(ip), i.labels.at("c2d.deployment"));
    }
    for (auto it = servers_.begin(); it != servers_.end();) {
      if (seen.count(it->first)) {
        ++it;
      } else {
        Drop(it->first);
        it = servers_.erase(it);
      }
    }
  }
  void Add(const std::string& ip, const std::string& deployment) {
    (void)RunCommand({.argv = {"ip", "addr", "add", ip + "/32", "dev", "lo"}});
    auto server = httpd::Server::Start(
        {.address = ip + ":80", .workers = 4}, [this, deployment, ip](httpd::Request& req) {
          ++served_;
          absl::MutexLock lock(&mu_);
          if (req.path == "/health") {
            return sick_.count(ip) ? httpd::Response{.status = 503}
                                   : httpd::Response{.status = 200, .body = "ok"};
          }
          auto v = versions_.find(deployment);
          if (v == versions_.end()) {
            return httpd::Response{.status = 503};
          }
          return httpd::Response{.status = 200, .body = v->second};
        });
    if (server.ok()) servers_[ip] = std::move(*server);
  }
  void Drop(const std::string& ip) {
    if (auto it = servers_.find(ip); it != servers_.end() && it->second) it->second->Shutdown(0ms);
    (void)RunCommand({.argv = {"ip", "addr", "del", ip + "/32", "dev", "lo"}});
  }

  Provider& provider_;
  const std::string project_;
  absl::Mutex mu_;
  std::map<std::string, std::string> versions_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> sick_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::unique_ptr<httpd::Server>> servers_;  // the loop's
  std::atomic<bool> stop_{false};
  std::atomic<int> served_{0};
  std::thread thread_;
};

// The hostname's A records in the public zone.
std::set<std::string> PublicAddresses(DeployerFixture& f) {
  auto rr = f.dns().pdns().Get(f.config().base_domain + ".", f.hostname() + ".", "A");
  if (!rr.ok()) return {};
  return std::set<std::string>(rr->records.begin(), rr->records.end());
}

// What each of the hostname's addresses answers at /, as a client sent
// there by DNS would ask.
std::set<std::string> Answers(DeployerFixture& f) {
  std::set<std::string> out;
  for (const std::string& ip : PublicAddresses(f)) {
    auto r = http::Send({.url = absl::StrCat("http://", ip, "/"),
                         .headers = {{"Host", f.hostname()}},
                         .timeout = 2s});
    out.insert(r.ok() && r->status == 200 ? r->body : "(failed)");
  }
  return out;
}

std::set<std::string> FloatingIps(DeployerFixture& f) {
  std::set<std::string> out;
  for (const v1::Instance& i : f.Instances()) {
    if (i.state() == v1::INSTANCE_STATE_HEALTHY) out.insert(i.host());
  }
  return out;
}

size_t Servers(Provider& p, const std::string& deployment) {
  auto listed = p.List({{"c2d.deployment", deployment}});
  REQUIRE(listed.ok());
  return listed->size();
}

// The members of the service's server group and its policy, as Nova has them.
std::pair<std::string, std::set<std::string>> ServerGroup(Session& s, DeployerFixture& f) {
  Nova nova(s);
  auto group = nova.FindServerGroup(ProjectNetwork(f.project_id()) + "-" + f.service_id());
  REQUIRE(group.ok());
  REQUIRE(group->has_value());
  auto g = s.Call("compute", {.path = "/os-server-groups/" + **group,
                              .headers = {{"OpenStack-API-Version", "compute 2.67"}}});
  REQUIRE(g.ok());
  std::vector<std::string> members = g->body["/server_group/members"_json_pointer];
  return {g->body["/server_group/policy"_json_pointer], {members.begin(), members.end()}};
}

std::set<std::string> Refs(DeployerFixture& f) {
  std::set<std::string> out;
  for (const v1::Instance& i : f.Instances()) out.insert(i.provider_ref());
  return out;
}

// The servers the Cinder volume `name` is attached to (none unless in-use).
std::vector<std::string> AttachedTo(Session& s, const std::string& name) {
  auto v = Cinder(s).FindVolume(name);
  if (!v.ok() || !v->has_value() || (*v)->status != "in-use") return {};
  return (*v)->attached_to;
}

// One service of a fresh project on the real OpenStack, with its servers
// played on loopback, and a clock for the report.
struct OsDeployer {
  OsDeployer()
      : session(User()),
        provider(session, ledger, TestProviderOptions()),
        f({.base_domain = "c2d-os.test",
           .provider = &provider,
           .dns_routing = true,
           .reconcile_interval = 2s}),
        standins(provider, f.project_id()) {}
  // Where the time goes, on stderr (a slow cloud shows in a failed run).
  void Mark(const char* what) const {
    const auto s =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - start);
    std::cerr << "deployer_ostest: " << s.count() << " s: " << what << "\n";
  }
  v1::Deployment GoLive(const v1::DeployRequest& request, const std::string& answer,
                        std::chrono::seconds within) {
    v1::Deployment d = f.Deploy(request);
    standins.Serve(d.id(), answer);
    d = f.WaitSettled(d.id(), within);
    INFO(d.failure_reason());
    REQUIRE(d.state() == v1::DEPLOYMENT_STATE_LIVE);
    return d;
  }

  // Stopped (its volumes deleted): no server of `last`, no Cinder volume
  // `volume` (if named), no record, and the project's network can go,
  // leaving nothing in the ledger.
  void StopAndCheckNothingLeft(const std::string& last, const std::string& volume = "") {
    grpc::ClientContext sc;
    v1::StopServiceRequest stop;
    stop.set_service_id(f.service_id());
    stop.set_delete_volumes(true);
    v1::StopServiceResponse sr;
    REQUIRE(f.stub().StopService(&sc, stop, &sr).ok());
    CHECK(WaitFor(120s, [&] { return Servers(provider, last) == 0; }));
    if (!volume.empty()) {
      CHECK(WaitFor(120s, [&] { return !Cinder(session).FindVolume(volume)->has_value(); }));
    }
    CHECK(WaitFor(10s, [&] { return PublicAddresses(f).empty(); }));
    Mark("stopped");
    // (Once the deployer's removals have finished: a server being deleted is
    // listed no more, but its port goes after it.)
    absl::Status removed;
    CHECK(WaitFor(60s, [&] {
      removed = provider.RemoveNetwork(ProjectNetwork(f.project_id()));
      return removed.ok();
    }));
    INFO(removed.ToString());
    std::vector<std::string> left;
    auto all = ledger.All();
    REQUIRE(all.ok());
    for (const Resource& r : *all) left.push_back(r.kind + " " + r.name);
    CHECK(left.empty());
  }

  const std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  Session session;
  MemoryLedger ledger;
  OpenStackProvider provider;
  DeployerFixture f;
  ServerStandIns standins;
};

TEST_CASE("deployer on OpenStack: releases on Nova servers replace each other and roll back",
          "[openstack]") {
  // Warnings only: a failure's report must not drown in the deployer's log.
  log::Init("c2d", log::Level::kWarn);
  PrepareCloud();
  OsDeployer os;
  DeployerFixture& f = os.f;
  const std::string v1_digest = f.Image("v1"), v2_digest = f.Image("v2");

  const v1::Deployment first = os.GoLive(f.Request(v1_digest, 2), "v1", 180s);
  os.Mark("first release live");
  std::vector<v1::Instance> instances = f.Instances();
  REQUIRE(instances.size() == 2);
  for (const v1::Instance& i : instances) {
    CHECK(i.state() == v1::INSTANCE_STATE_HEALTHY);
    CHECK(absl::StartsWith(i.host(), "203.0.113."));  // its floating IP
    CHECK(i.port() == 80);
  }
  CHECK(Servers(os.provider, first.id()) == 2);
  // By name: the two floating IPs, each answering; and on the project's network.
  CHECK(WaitFor(10s, [&] { return PublicAddresses(f) == FloatingIps(f); }));
  CHECK(PublicAddresses(f).size() == 2);
  CHECK(Answers(f) == std::set<std::string>{"v1"});
  // An instance failing its health checks loses its record, and gets it
  // back once healthy.
  const std::string sick = *FloatingIps(f).begin();
  os.standins.FailHealth(sick, true);
  CHECK(WaitFor(60s, [&] {
    auto a = PublicAddresses(f);
    return a.size() == 1 && !a.count(sick);
  }));
  os.standins.FailHealth(sick, false);
  CHECK(WaitFor(120s, [&] { return PublicAddresses(f).size() == 2; }));
  os.Mark("a sick instance's record gone and back");
  // The internal name follows too (its records are synced apart from the
  // public ones).
  std::set<std::string> privates;
  CHECK(WaitFor(60s, [&] {
    privates = testing::InternalAddresses(f);
    return privates.size() == 2;
  }));
  for (const std::string& a : privates) CHECK(absl::StartsWith(a, "10.42.0."));

  // A new release of three instances: health-gated switch, then the old
  // servers are deleted; the three are spread by a soft-anti-affinity group.
  const v1::Deployment second = os.GoLive(f.Request(v2_digest, 3), "v2", 180s);
  os.Mark("second release live");
  CHECK(WaitFor(10s, [&] { return Answers(f) == std::set<std::string>{"v2"}; }));
  CHECK(PublicAddresses(f) == FloatingIps(f));
  CHECK(PublicAddresses(f).size() == 3);
  CHECK(WaitFor(120s, [&] { return Servers(os.provider, first.id()) == 0; }));
  auto [policy, members] = ServerGroup(os.session, f);
  CHECK(policy == "soft-anti-affinity");
  CHECK(members == Refs(f));
  os.Mark("the first release's servers gone");
  // A server lost in Nova is replaced by the reconciler, and DNS follows.
  const std::string lost = *members.begin();
  REQUIRE(Nova(os.session).DeleteServer(lost).ok());
  CHECK(WaitFor(180s, [&] {
    std::set<std::string> now = Refs(f);
    return now.size() == 3 && !now.count(lost) && FloatingIps(f).size() == 3 &&
           PublicAddresses(f) == FloatingIps(f);
  }));
  CHECK(Answers(f) == std::set<std::string>{"v2"});
  os.Mark("a lost server replaced");

  // Rolled back to the first release: new servers of v1, v2's gone.
  v1::Deployment back = testing::RollBackTo(f, first.id());
  os.standins.Serve(back.id(), "v1");
  back = f.WaitSettled(back.id(), 180s);
  INFO(back.failure_reason());
  REQUIRE(back.state() == v1::DEPLOYMENT_STATE_LIVE);
  os.Mark("rolled back");
  CHECK(WaitFor(10s, [&] { return Answers(f) == std::set<std::string>{"v1"}; }));
  CHECK(WaitFor(120s, [&] { return Servers(os.provider, second.id()) == 0; }));
  CHECK(os.standins.served() > 0);
  os.Mark("the second release's servers gone");
  os.StopAndCheckNothingLeft(back.id());
}

TEST_CASE("deployer on OpenStack: a Cinder volume moves from release to release", "[openstack]") {
  log::Init("c2d", log::Level::kWarn);
  PrepareCloud();
  OsDeployer os;
  DeployerFixture& f = os.f;
  const std::string v1_digest = f.Image("v1"), v2_digest = f.Image("v2");
  // A Cinder volume attaches to one server at a time, so each release
  // stops the one before it first, and the volume moves to the new server.
  const v1::Volume volume = testing::CreateVolume(f);
  const std::string volume_name = ResourceName(volume.id());
  const v1::Deployment first =
      os.GoLive(testing::WithVolume(f.Request(v1_digest), volume), "v3", 240s);
  REQUIRE(f.Instances().size() == 1);
  CHECK(WaitFor(60s, [&] {
    return AttachedTo(os.session, volume_name) == std::vector{f.Instances()[0].provider_ref()};
  }));
  os.Mark("a release with a volume live");
  const v1::Deployment next =
      os.GoLive(testing::WithVolume(f.Request(v2_digest), volume), "v4", 240s);
  CHECK(testing::HasEvent(f.Events(next.id()), "deployment.stopping_previous"));
  CHECK(f.Get(first.id()).state() == v1::DEPLOYMENT_STATE_SUPERSEDED);
  CHECK(Servers(os.provider, first.id()) == 0);
  REQUIRE(f.Instances().size() == 1);
  CHECK(WaitFor(60s, [&] {
    return AttachedTo(os.session, volume_name) == std::vector{f.Instances()[0].provider_ref()};
  }));
  CHECK(WaitFor(30s, [&] { return Answers(f) == std::set<std::string>{"v4"}; }));
  os.Mark("the next release has the volume");
  os.StopAndCheckNothingLeft(next.id(), volume_name);
}

}  // namespace
}  // namespace c2d::cloud::openstack
