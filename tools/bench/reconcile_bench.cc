// c2d-bench-reconcile DATABASE_URL: the deployer leader's reconcile pass at
// scale, against a migrated, otherwise empty database whose server loads
// pg_stat_statements (tools/bench/reconcile starts one), with an in-process
// provider behind cloud::Provider that runs every instance (no engine), and
// one in-process HTTP server answering every health check.
//
// For 1,000, 5,000 and 10,000 live, healthy instances over 200, 1,000 and
// 2,000 services, one line each:
//
//   c2d reconcile-pass [instances=N]: T ms        a pass with no health check due:
//                                                 the median of 5
//   c2d reconcile-statements [instances=N]: S     statements PostgreSQL ran in it
//   c2d reconcile-rows [instances=N]: R           rows those statements read
//                                                 (returned, or scanned by the
//                                                 server: pg_stat_database)
//   c2d reconcile-probe-pass [instances=N]: T ms  a pass with every instance's
//                                                 health check due (each probed
//                                                 over HTTP, each result stored)
//   c2d reconcile-probe-statements [instances=N]: S
//
// then the cost's growth: the 10k pass over the 1k pass, for both passes
// (linear growth: about 10).
// Targets: a pass over 10,000 instances < 1 s, statements per pass not
// growing with the instances.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/create_channel.h"
#include "libs/cloud/provider.h"
#include "libs/common/ids.h"
#include "libs/ingress/upstreams.h"
#include "libs/pg/pool.h"
#include "services/deployer/reconciler.h"
#include "services/deployer/runtime.h"
#include "tools/bench/must.h"

namespace {

using namespace c2d;
using bench::Die;
using bench::Must;

// Answers every request with 200 and closes: what a healthy app's
// /health does, for every instance at once.
class HealthServer {
 public:
  HealthServer() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind(fd_, reinterpret_cast<sockaddr*>(&a), len) != 0 || listen(fd_, 1024) != 0 ||
        getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      Die("health server: cannot listen");
    }
    port_ = ntohs(a.sin_port);
    // Serving until the process exits.
    for (int i = 0; i < 4; ++i) std::thread([this] { Serve(); }).detach();
  }
  int port() const { return port_; }

 private:
  void Serve() {
    static constexpr char kOk[] =
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
    char buf[4096];
    for (;;) {
      int c = accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      // One read holds a probe's whole request (a GET with two headers).
      if (read(c, buf, sizeof buf) > 0) (void)!write(c, kOk, sizeof kOk - 1);
      close(c);
    }
  }
  int fd_ = -1;
  int port_ = 0;
};

// Every instance runs, at the health server's address; nothing else
// happens. Created from the seeded rows, so List finds each one.
class RunningProvider : public cloud::Provider {
 public:
  void Add(cloud::Instance i) {
    absl::MutexLock lock(&mu_);
    instances_[i.ref] = std::move(i);
  }
  absl::StatusOr<cloud::Instance> Create(const cloud::InstanceSpec&) override {
    return absl::UnimplementedError("the bench creates no instance");
  }
  absl::Status Start(const std::string&) override { return absl::OkStatus(); }
  absl::Status Stop(const std::string&, std::chrono::seconds) override { return absl::OkStatus(); }
  absl::Status Remove(const std::string& ref) override {
    absl::MutexLock lock(&mu_);
    instances_.erase(ref);
    return absl::OkStatus();
  }
  absl::StatusOr<cloud::Instance> Inspect(const std::string& ref) override {
    absl::MutexLock lock(&mu_);
    auto it = instances_.find(ref);
    if (it == instances_.end()) return absl::NotFoundError(ref);
    return it->second;
  }
  absl::StatusOr<std::vector<cloud::Instance>> List(
      const std::map<std::string, std::string>&) override {
    absl::MutexLock lock(&mu_);
    std::vector<cloud::Instance> out;
    out.reserve(instances_.size());
    for (const auto& [ref, i] : instances_) out.push_back(i);
    return out;
  }
  absl::Status DeleteVolume(const std::string&) override { return absl::OkStatus(); }
  absl::Status WriteVolumeFile(const std::string&, const std::string&,
                               const std::string&) override {
    return absl::OkStatus();
  }
  absl::Status EnsureNetwork(const std::string&) override { return absl::OkStatus(); }
  absl::Status RemoveNetwork(const std::string&) override { return absl::OkStatus(); }
  absl::Status FollowLogs(const std::string&, std::optional<absl::Time>,
                          const std::function<bool(const cloud::LogLine&)>&,
                          const std::atomic<bool>* cancel) override {
    // A quiet app: blocks like a log stream with nothing to say, without
    // waking thousands of threads every few milliseconds.
    std::unique_lock<std::mutex> lock(quiet_mu_);
    while (!*cancel && !quiet_over_) quiet_.wait_for(lock, std::chrono::seconds(30));
    return absl::OkStatus();
  }
  // Ends every FollowLogs now (before the reconciler stops its followers).
  void EndLogs() {
    std::lock_guard<std::mutex> lock(quiet_mu_);
    quiet_over_ = true;
    quiet_.notify_all();
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, cloud::Instance> instances_ ABSL_GUARDED_BY(mu_);
  std::mutex quiet_mu_;
  std::condition_variable quiet_;
  bool quiet_over_ = false;
};

void Exec(pg::Pool& pool, const std::string& sql) {
  Must(pool.Transact("bench sql",
                     [&](pg::Tx& tx) {
                       tx.work().exec0(sql);
                       return absl::OkStatus();
                     }),
       sql.substr(0, 60).c_str());
}

int64_t Scalar(pg::Pool& pool, const std::string& sql) {
  return Must(pool.Read("bench figure",
                        [&](pg::Tx& tx) -> absl::StatusOr<int64_t> {
                          return tx.work().exec1(sql)[0].as<int64_t>(0);
                        }),
              "read a figure");
}

std::string DeploymentSpec(const std::string& project, const std::string& service, int n) {
  v1::ServiceSpec spec;
  spec.set_service_id(service);
  spec.set_project_id(project);
  spec.set_project_name("bench");
  spec.set_service_name(absl::StrCat("s", n));
  spec.set_type(v1::SERVICE_TYPE_WEB);
  spec.set_revision(1);
  spec.mutable_run()->set_port(8080);
  spec.mutable_run()->set_instance_count(5);
  v1::HealthCheck* hc = spec.mutable_health_check();
  hc->set_path("/health");
  hc->set_interval_s(60);  // none due in a steady pass; the probe pass makes them due
  hc->set_timeout_s(2);
  hc->set_healthy_threshold(1);
  hc->set_unhealthy_threshold(3);
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(spec, &json).ok()) Die("spec to JSON");
  return json;
}

std::string Quoted(const std::string& s) { return absl::StrCat("'", s, "'"); }

// `services` services of 5 instances each, each service with one live
// deployment; the provider gets a running instance for each row.
void Seed(pg::Pool& pool, RunningProvider& provider, const std::string& installation, int services,
          int health_port) {
  Exec(pool, "TRUNCATE projects, services, builds, deployments, instances CASCADE");
  const std::string project = ids::New("prj");
  Exec(pool, absl::StrCat("INSERT INTO projects (id, name) VALUES ('", project, "', 'bench')"));
  const std::string digest = absl::StrCat("sha256:", std::string(64, 'a'));
  for (int first = 0; first < services; first += 500) {
    std::vector<std::string> svc, bld, dep, ins;
    for (int n = first; n < std::min(services, first + 500); ++n) {
      const std::string s = ids::New("svc"), b = ids::New("bld"), d = ids::New("dep");
      svc.push_back(
          absl::StrCat("(", Quoted(s), ",", Quoted(project), ",'s", n, "','web','-',8080)"));
      bld.push_back(absl::StrCat("(", Quoted(b), ",", Quoted(s), ",", Quoted(project),
                                 ",'succeeded','api','-','main','", std::string(40, 'b'),
                                 "','auto','{}','bench/app','", digest, "',1,now(),now())"));
      dep.push_back(absl::StrCat(
          "(", Quoted(d), ",", Quoted(s), ",", Quoted(project), ",", Quoted(b), ",'bench/app','",
          digest, "',", Quoted(DeploymentSpec(project, s, n)), ",'live',now(),now(),now())"));
      for (int k = 0; k < 5; ++k) {
        const std::string i = ids::New("ins"), ref = absl::StrCat("ref-", i);
        ins.push_back(absl::StrCat("(", Quoted(i), ",", Quoted(d), ",", Quoted(s),
                                   ",'healthy','local',", Quoted(ref), ",'127.0.0.1',", health_port,
                                   ",1,now(),true,'HTTP 200')"));
        cloud::Instance c;
        c.ref = ref;
        c.name = absl::StrCat("c2d-", i);
        c.state = cloud::InstanceState::kRunning;
        c.address = absl::StrCat("127.0.0.1:", health_port);
        c.private_address = "10.0.0.1";
        c.labels = {{deployer::kInstallationLabel, installation},
                    {deployer::kInstanceLabel, i},
                    {"c2d.service", s},
                    {"c2d.deployment", d}};
        c.started_at = absl::Now() - absl::Hours(1);
        provider.Add(std::move(c));
      }
    }
    Exec(pool, absl::StrCat("INSERT INTO services (id, project_id, name, type, repo_url, port) "
                            "VALUES ",
                            absl::StrJoin(svc, ",")));
    Exec(pool,
         absl::StrCat("INSERT INTO builds (id, service_id, project_id, state, trigger, repo_url, "
                      "branch, commit_sha, build_strategy, spec, image_repository, image_digest, "
                      "image_size_bytes, started_at, finished_at) VALUES ",
                      absl::StrJoin(bld, ",")));
    Exec(pool, absl::StrCat("INSERT INTO deployments (id, service_id, project_id, build_id, "
                            "image_repository, image_digest, spec, state, started_at, live_at, "
                            "created_at) VALUES ",
                            absl::StrJoin(dep, ",")));
    Exec(pool, absl::StrCat("INSERT INTO instances (id, deployment_id, service_id, state, "
                            "provider, provider_ref, host, port, consecutive_passes, "
                            "last_health_check_at, last_health_ok, last_health_detail) VALUES ",
                            absl::StrJoin(ins, ",")));
  }
  Exec(pool, "ANALYZE");
}

struct PassCost {
  double ms = 0;
  int64_t statements = 0;
  int64_t rows = 0;
};

// What PostgreSQL did for the bench's database: statements, and rows read
// (returned to clients or scanned). pg_stat_database's figures arrive within
// a second of a backend going idle.
struct DbCounters {
  int64_t statements = 0, rows = 0;
};

DbCounters ReadCounters(pg::Pool& pool) {
  absl::SleepFor(absl::Milliseconds(1500));
  DbCounters c;
  c.statements = Scalar(pool,
                        "SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements "
                        "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = "
                        "current_database()) AND query NOT LIKE '%pg_stat%'");
  c.rows = Scalar(pool,
                  "SELECT (tup_returned + tup_fetched)::bigint FROM pg_stat_database "
                  "WHERE datname = current_database()");
  return c;
}

PassCost MeasurePass(pg::Pool& pool, deployer::Reconciler& reconciler) {
  // The reading of the counters itself costs rows: measured with no pass.
  DbCounters idle0 = ReadCounters(pool);
  DbCounters idle1 = ReadCounters(pool);
  const int64_t own_rows = idle1.rows - idle0.rows;
  const absl::Time start = absl::Now();
  reconciler.RunOnce();
  PassCost cost;
  cost.ms = absl::ToDoubleMilliseconds(absl::Now() - start);
  DbCounters after = ReadCounters(pool);
  cost.statements = after.statements - idle1.statements;
  cost.rows = after.rows - idle1.rows - own_rows;
  return cost;
}

struct SizeResult {
  PassCost steady, probe;
};

SizeResult RunSize(pg::Pool& pool, const std::string& installation, int services, int health_port) {
  RunningProvider provider;
  Seed(pool, provider, installation, services, health_port);
  deployer::Config config;
  // The log followers stop when no pass came for 3 intervals: the bench's
  // passes are seconds apart (it waits for PostgreSQL's statistics).
  config.reconcile_interval = std::chrono::minutes(1);
  config.ingress.unavailable_addr = "127.0.0.1:1";
  // Never called: no pass here changes a service's rotation.
  ingress::Upstreams upstreams(
      config.ingress, grpc::CreateChannel("127.0.0.1:1", grpc::InsecureChannelCredentials()));
  deployer::Runtime runtime(pool, config, provider, upstreams);
  Must(runtime.Init(), "runtime init");
  deployer::Reconciler reconciler(runtime);
  reconciler.RunOnce();  // warm-up: starts the log followers, fills caches
  std::vector<PassCost> steady;
  for (int i = 0; i < 5; ++i) steady.push_back(MeasurePass(pool, reconciler));
  std::sort(steady.begin(), steady.end(),
            [](const PassCost& a, const PassCost& b) { return a.ms < b.ms; });
  SizeResult r;
  r.steady = steady[steady.size() / 2];
  Exec(pool, "UPDATE instances SET last_health_check_at = now() - interval '1 hour'");
  r.probe = MeasurePass(pool, reconciler);
  const int64_t unhealthy = Scalar(pool, "SELECT count(*) FROM instances WHERE state <> 'healthy'");
  if (unhealthy != 0) Die(absl::StrCat(unhealthy, " instances left rotation in the bench"));
  provider.EndLogs();
  reconciler.Stop();
  return r;
}

void Print(const char* figure, int instances, double value, const char* unit) {
  std::printf("c2d %s [instances=%d]: %.*f%s\n", figure, instances, value < 100 ? 1 : 0, value,
              unit);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) Die("usage: c2d-bench-reconcile DATABASE_URL");
  pg::PoolOptions options;
  options.connect.url = argv[1];
  options.size = 8;
  pg::Pool pool(options);
  Exec(pool, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
  const std::string installation =
      Must(pool.Transact("installation", [](pg::Tx& tx) { return deployer::InstallationId(tx); }),
           "installation id");
  HealthServer health;
  std::map<int, SizeResult> results;
  for (int services : {200, 1000, 2000}) {
    const int instances = services * 5;
    SizeResult r = RunSize(pool, installation, services, health.port());
    Print("reconcile-pass", instances, r.steady.ms, " ms");
    Print("reconcile-statements", instances, r.steady.statements, "");
    Print("reconcile-rows", instances, r.steady.rows, "");
    Print("reconcile-probe-pass", instances, r.probe.ms, " ms");
    Print("reconcile-probe-statements", instances, r.probe.statements, "");
    Print("reconcile-probe-rows", instances, r.probe.rows, "");
    results[instances] = r;
  }
  std::printf("c2d reconcile-pass 10k/1k: %.1f (10 = linear)\n",
              results[10000].steady.ms / results[1000].steady.ms);
  std::printf("c2d reconcile-probe-pass 10k/1k: %.1f (10 = linear)\n",
              results[10000].probe.ms / results[1000].probe.ms);
  return 0;
}
