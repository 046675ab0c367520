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

TEST_CASE(
    "deployer on OpenStack: releases go live on Nova servers, replace each other and roll back",
    "[openstack]") {
  // Warnings only: a failure's report must not drown in the deployer's log.
  log::Init("c2d", log::Level::kWarn);
  PrepareCloud();
  Session session(User());
  MemoryLedger ledger;
  OpenStackProvider provider(session, ledger, TestProviderOptions());
  DeployerFixture f({.base_domain = "c2d-os.test",
                     .provider = &provider,
                     .dns_routing = true,
                     .reconcile_interval = 2s});
  ServerStandIns standins(provider, f.project_id());
  const std::string v1_digest = f.Image("v1"), v2_digest = f.Image("v2");
  // Where the time goes, on stderr (a slow cloud shows in a failed run).
  const auto start = std::chrono::steady_clock::now();
  auto mark = [&](const char* what) {
    const auto s =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - start);
    std::cerr << "deployer_ostest: " << s.count() << " s: " << what << "\n";
  };

  v1::Deployment first = f.Deploy(f.Request(v1_digest, 2));
  standins.Serve(first.id(), "v1");
  first = f.WaitSettled(first.id(), 180s);
  INFO(first.failure_reason());
  REQUIRE(first.state() == v1::DEPLOYMENT_STATE_LIVE);
  mark("first release live");
  std::vector<v1::Instance> instances = f.Instances();
  REQUIRE(instances.size() == 2);
  for (const v1::Instance& i : instances) {
    CHECK(i.state() == v1::INSTANCE_STATE_HEALTHY);
    CHECK(absl::StartsWith(i.host(), "203.0.113."));  // its floating IP
    CHECK(i.port() == 80);
  }
  CHECK(Servers(provider, first.id()) == 2);
  // By name: the two floating IPs, each answering; and on the project's network.
  CHECK(WaitFor(10s, [&] { return PublicAddresses(f) == FloatingIps(f); }));
  CHECK(PublicAddresses(f).size() == 2);
  CHECK(Answers(f) == std::set<std::string>{"v1"});
  // An instance failing its health checks loses its record, and gets it
  // back once healthy.
  const std::string sick = *FloatingIps(f).begin();
  standins.FailHealth(sick, true);
  CHECK(WaitFor(60s, [&] {
    auto a = PublicAddresses(f);
    return a.size() == 1 && !a.count(sick);
  }));
  standins.FailHealth(sick, false);
  CHECK(WaitFor(120s, [&] { return PublicAddresses(f).size() == 2; }));
  mark("a sick instance's record gone and back");
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
  v1::Deployment second = f.Deploy(f.Request(v2_digest, 3));
  standins.Serve(second.id(), "v2");
  second = f.WaitSettled(second.id(), 180s);
  INFO(second.failure_reason());
  REQUIRE(second.state() == v1::DEPLOYMENT_STATE_LIVE);
  mark("second release live");
  CHECK(WaitFor(10s, [&] { return Answers(f) == std::set<std::string>{"v2"}; }));
  CHECK(PublicAddresses(f) == FloatingIps(f));
  CHECK(PublicAddresses(f).size() == 3);
  CHECK(WaitFor(120s, [&] { return Servers(provider, first.id()) == 0; }));
  auto [policy, members] = ServerGroup(session, f);
  CHECK(policy == "soft-anti-affinity");
  CHECK(members == Refs(f));
  mark("the first release's servers gone");
  // A server lost in Nova is replaced by the reconciler, and DNS follows.
  const std::string lost = *members.begin();
  REQUIRE(Nova(session).DeleteServer(lost).ok());
  CHECK(WaitFor(180s, [&] {
    std::set<std::string> now = Refs(f);
    return now.size() == 3 && !now.count(lost) && FloatingIps(f).size() == 3 &&
           PublicAddresses(f) == FloatingIps(f);
  }));
  CHECK(Answers(f) == std::set<std::string>{"v2"});
  mark("a lost server replaced");

  // Rolled back to the first release: new servers of v1, v2's gone.
  v1::Deployment back = testing::RollBackTo(f, first.id());
  standins.Serve(back.id(), "v1");
  back = f.WaitSettled(back.id(), 180s);
  INFO(back.failure_reason());
  REQUIRE(back.state() == v1::DEPLOYMENT_STATE_LIVE);
  mark("rolled back");
  CHECK(WaitFor(10s, [&] { return Answers(f) == std::set<std::string>{"v1"}; }));
  CHECK(WaitFor(120s, [&] { return Servers(provider, second.id()) == 0; }));
  CHECK(standins.served() > 0);
  mark("the second release's servers gone");

  // Releases with a volume: a Cinder volume attaches to one server at a
  // time, so each stops the release before it first, and the volume moves
  // to the new server.
  const v1::Volume volume = testing::CreateVolume(f);
  const std::string volume_name = ResourceName(volume.id());
  v1::Deployment third = f.Deploy(testing::WithVolume(f.Request(v1_digest), volume));
  standins.Serve(third.id(), "v3");
  third = f.WaitSettled(third.id(), 240s);
  INFO(third.failure_reason());
  REQUIRE(third.state() == v1::DEPLOYMENT_STATE_LIVE);
  CHECK(testing::HasEvent(f.Events(third.id()), "deployment.stopping_previous"));
  CHECK(f.Get(back.id()).state() == v1::DEPLOYMENT_STATE_SUPERSEDED);
  CHECK(Servers(provider, back.id()) == 0);
  REQUIRE(f.Instances().size() == 1);
  CHECK(WaitFor(60s, [&] {
    return AttachedTo(session, volume_name) == std::vector{f.Instances()[0].provider_ref()};
  }));
  mark("a release with a volume live");
  v1::Deployment fourth = f.Deploy(testing::WithVolume(f.Request(v2_digest), volume));
  standins.Serve(fourth.id(), "v4");
  fourth = f.WaitSettled(fourth.id(), 240s);
  INFO(fourth.failure_reason());
  REQUIRE(fourth.state() == v1::DEPLOYMENT_STATE_LIVE);
  CHECK(f.Get(third.id()).state() == v1::DEPLOYMENT_STATE_SUPERSEDED);
  CHECK(Servers(provider, third.id()) == 0);
  REQUIRE(f.Instances().size() == 1);
  CHECK(WaitFor(60s, [&] {
    return AttachedTo(session, volume_name) == std::vector{f.Instances()[0].provider_ref()};
  }));
  CHECK(WaitFor(30s, [&] { return Answers(f) == std::set<std::string>{"v4"}; }));
  mark("the next release has the volume");

  // Stopped, the volume deleted: no server, and the project's network can
  // go, leaving nothing.
  grpc::ClientContext sc;
  v1::StopServiceRequest stop;
  stop.set_service_id(f.service_id());
  stop.set_delete_volumes(true);
  v1::StopServiceResponse sr;
  REQUIRE(f.stub().StopService(&sc, stop, &sr).ok());
  CHECK(WaitFor(120s, [&] { return Servers(provider, fourth.id()) == 0; }));
  CHECK(WaitFor(120s, [&] { return !Cinder(session).FindVolume(volume_name)->has_value(); }));
  CHECK(WaitFor(10s, [&] { return PublicAddresses(f).empty(); }));
  mark("stopped");
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

}  // namespace
}  // namespace c2d::cloud::openstack
