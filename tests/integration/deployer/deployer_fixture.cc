#include "tests/integration/deployer/deployer_fixture.h"

#include <catch2/catch.hpp>
#include <filesystem>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "libs/common/ids.h"
#include "libs/crypto/hash.h"
#include "libs/engine/tar.h"
#include "libs/http/client.h"
#include "libs/oci/access.h"
#include "tests/support/leftovers.h"
#include "tests/support/sealed.h"

namespace c2d::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// CGI scripts of busybox httpd: one shows the env the instance got, one
// writes its query string to the instance's output.
constexpr char kEnvCgi[] =
    "#!/bin/sh\necho 'Content-Type: text/plain'\necho\necho \"greeting=$GREETING\"\n";
constexpr char kLogCgi[] =
    "#!/bin/sh\necho \"logged: $QUERY_STRING\" >&2\necho 'Content-Type: text/plain'\necho\necho "
    "ok\n";

}  // namespace

std::map<std::string, std::vector<cloud::ServedCertificate>> TlsInstances::Served() const {
  absl::MutexLock lock(&mu_);
  return served_;
}

int TlsInstances::calls() const {
  absl::MutexLock lock(&mu_);
  return calls_;
}

absl::Status TlsInstances::ServeCertificates(const std::string& ref,
                                             const std::vector<cloud::ServedCertificate>& certs) {
  absl::MutexLock lock(&mu_);
  ++calls_;
  served_[ref] = certs;
  return absl::OkStatus();
}

int AttachOnceVolumes::refused() const {
  absl::MutexLock lock(&mu_);
  return refused_;
}

absl::StatusOr<cloud::Instance> AttachOnceVolumes::Create(const cloud::InstanceSpec& spec) {
  absl::MutexLock lock(&mu_);
  for (const cloud::VolumeMount& v : spec.volumes) {
    auto held = holder_.find(v.volume);
    if (held == holder_.end()) continue;
    if (absl::IsNotFound(inner().Inspect(held->second).status())) continue;  // removed behind us
    ++refused_;
    return absl::FailedPreconditionError(
        absl::StrCat("volume ", v.volume, " is attached to instance ", held->second));
  }
  auto made = inner().Create(spec);
  if (!made.ok()) return made;
  for (const cloud::VolumeMount& v : spec.volumes) holder_[v.volume] = made->ref;
  return made;
}

absl::Status AttachOnceVolumes::Remove(const std::string& ref) {
  absl::Status s = inner().Remove(ref);
  if (!s.ok() && !absl::IsNotFound(s)) return s;
  absl::MutexLock lock(&mu_);
  std::erase_if(holder_, [&](const auto& held) { return held.second == ref; });
  return s;
}

DeployerFixture::DeployerFixture(DeployerOptions options) {
  pool_ = db_.NewPool();
  config_.registry = {.url = RequireEnv("C2D_TEST_REGISTRY_URL"),
                      .username = RequireEnv("C2D_TEST_REGISTRY_USER"),
                      .password = RequireEnv("C2D_TEST_REGISTRY_PASSWORD")};
  config_.local.engine_socket =
      options.engine_socket.empty() ? RequireEnv("C2D_TEST_ENGINE_SOCKET") : options.engine_socket;
  config_.local.registry = {config_.registry.username, config_.registry.password,
                            config_.RegistryHost()};
  config_.local.grant_key = oci::GrantKey(config_.registry.password);
  config_.local.volumes_dir = (fs::path(RequireEnv("C2D_TEST_TMP")) / "volumes").string();
  config_.ingress = {.pdns = {.api_url = RequireEnv("C2D_TEST_PDNS_API_URL"),
                              .api_key = RequireEnv("C2D_TEST_PDNS_API_KEY")},
                     .zone = RequireEnv("C2D_TEST_INGRESS_ZONE"),
                     .unavailable_addr = RequireEnv("C2D_TEST_INGRESS_UNAVAILABLE_ADDR")};
  config_.reconcile_interval = options.reconcile_interval;
  config_.drain_grace = 2s;
  config_.stop_grace = 2s;
  config_.restart_backoff = 100ms;
  master_key_ = crypto::MasterKeys::Generate("mk1");
  config_.master_keys = *crypto::MasterKeys::Parse(master_key_);

  project_id_ = ids::New("prj");
  project_name_ = "p" + absl::AsciiStrToLower(ids::New("x").substr(20));
  service_id_ = ids::New("svc");
  db_.Exec(absl::StrCat("INSERT INTO projects (id, name) VALUES ('", project_id_, "', '",
                        project_name_, "')"));
  db_.Exec(
      absl::StrCat("INSERT INTO services (id, project_id, name, type, repo_url, port) VALUES ('",
                   service_id_, "', '", project_id_, "', 'web', 'web', '/unused', 8080)"));

  provider_ = std::make_unique<cloud::LocalProvider>(config_.local);
  config_.base_domain = options.base_domain;
  config_.dns_routing = options.dns_routing;
  if (config_.HasPublicZone()) config_.public_ipv4 = "127.0.0.1";
  dns_ = std::make_unique<DnsServer>(db_, *pool_, options.base_domain);
  config_.dns_addr = dns_->address();
  upstreams_ = std::make_unique<ingress::Upstreams>(config_.ingress, dns_->channel());
  if (options.dns_routing && options.provider == nullptr) {
    tls_ = std::make_unique<TlsInstances>(*provider_);
  }
  if (options.volumes_attach_once) {
    attach_once_ = std::make_unique<AttachOnceVolumes>(*provider_);
  }
  cloud::Provider* provider = provider_.get();
  if (tls_) provider = tls_.get();
  if (attach_once_) provider = attach_once_.get();
  if (options.provider != nullptr) provider = options.provider;
  runtime_ = std::make_unique<deployer::Runtime>(*pool_, config_, *provider, *upstreams_);
  REQUIRE(runtime_->Init().ok());
  runtime_->UseDns(dns_->channel());
  if (options.certificates) runtime_->UseCertificates(options.certificates);
  service_ = std::make_unique<deployer::DeployerServiceImpl>(*runtime_);
  auto server = rpc::Server::Start("127.0.0.1:0", {{"c2d.v1.DeployerService", service_.get()}});
  REQUIRE(server.ok());
  server_ = std::move(*server);
  stub_ = v1::DeployerService::NewStub(
      grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials()));

  if (options.in_process) {
    deploy_ = std::make_unique<deployer::DeployJob>(*runtime_);
    stop_ = std::make_unique<deployer::StopJob>(*runtime_);
    reconciler_ = std::make_unique<deployer::Reconciler>(*runtime_);
    jobs::WorkerOptions w;
    w.queue = "deployer";
    w.concurrency = 4;
    w.lease = 6s;
    w.poll_interval = 200ms;
    w.shutdown_grace = 5s;
    w.backoff_base = 50ms;
    w.backoff_max = 200ms;
    worker_ = std::make_unique<jobs::Worker>(*pool_, db_.connect(), w);
    worker_->Register("deploy", [this](jobs::JobContext& ctx) { return deploy_->Run(ctx); });
    worker_->Register("stop", [this](jobs::JobContext& ctx) { return stop_->Run(ctx); });
    REQUIRE(worker_->Start().ok());
    leader_ = std::make_unique<jobs::Leader>(
        db_.connect(), "deployer.reconcile", config_.reconcile_interval,
        [this] { reconciler_->RunOnce(); }, [this] { reconciler_->LostLeadership(); });
    leader_->Start();
  }
  engine_ = std::make_unique<engine::Engine>(RequireEnv("C2D_TEST_ENGINE_SOCKET"));
  registry_ = std::make_unique<oci::Registry>(config_.registry);
}

DeployerFixture::~DeployerFixture() {
  if (leader_) leader_->Stop();
  if (reconciler_) reconciler_->Stop();
  if (worker_) worker_->Shutdown();
  server_->Shutdown(absl::Seconds(1));
  // Leave nothing behind: the projects' containers and networks, the route.
  RemoveProjectLeftovers(db_, *provider_);
  (void)upstreams_->Remove(absl::StrCat("service:", service_id_), hostname());
}

std::string DeployerFixture::repository() const {
  return absl::StrCat(config_.RegistryHost(), "/", project_name_, "/web");
}

std::string DeployerFixture::hostname() const { return config_.Hostname("web", project_name_); }

std::string DeployerFixture::Image(const std::string& version) {
  const std::string stack = absl::StrCat(config_.RegistryHost(), "/c2d/stacks/static:1");
  engine::TarWriter tar;
  tar.AddFile("Dockerfile", absl::StrCat("FROM ", stack, "\nCOPY srv/ /srv/\n"));
  tar.AddDirectory("srv");
  tar.AddFile("srv/index.html", version);
  tar.AddFile("srv/health", "ok\n");
  tar.AddDirectory("srv/cgi-bin");
  tar.AddFile("srv/cgi-bin/env", kEnvCgi, 0755);
  tar.AddFile("srv/cgi-bin/log", kLogCgi, 0755);
  const engine::RegistryAuth auth{config_.registry.username, config_.registry.password,
                                  config_.RegistryHost()};
  auto built = engine_->Build(
      tar.Finish(),
      {.tag = absl::StrCat(repository(), ":", version), .registries = {auth}, .timeout = 120s});
  INFO(built.status().ToString());
  REQUIRE(built.ok());
  REQUIRE(engine_->Push(repository(), version, auth, nullptr, 120s, nullptr).ok());
  auto digest = registry_->ResolveDigest(project_name_ + "/web", version);
  REQUIRE(digest.ok());
  return *digest;
}

std::string DeployerFixture::Build(const std::string& digest) {
  const std::string id = ids::New("bld");
  const std::string sha = crypto::Sha256Hex(id).substr(0, 40);  // any distinct commit
  db_.Exec(absl::StrCat(
      "INSERT INTO builds (id, service_id, project_id, state, trigger, repo_url, branch, "
      "commit_sha, build_strategy, spec, image_repository, image_digest, image_size_bytes, "
      "started_at, finished_at) VALUES ('",
      id, "', '", service_id_, "', '", project_id_, "', 'succeeded', 'api', '/unused', 'main', '",
      sha, "', 'auto', '{}', '", repository(), "', '", digest, "', 1, now(), now())"));
  return id;
}

v1::ServiceSpec DeployerFixture::Spec(int instances) const {
  v1::ServiceSpec spec;
  spec.set_service_id(service_id_);
  spec.set_project_id(project_id_);
  spec.set_project_name(project_name_);
  spec.set_service_name("web");
  spec.set_type(v1::SERVICE_TYPE_WEB);
  spec.set_revision(1);
  spec.mutable_run()->set_port(8080);
  spec.mutable_run()->set_instance_count(instances);
  spec.mutable_run()->set_memory_mb(128);
  spec.mutable_run()->set_cpu_millis(250);
  v1::HealthCheck* hc = spec.mutable_health_check();
  hc->set_path("/health");
  hc->set_interval_s(1);
  hc->set_timeout_s(1);
  hc->set_healthy_threshold(1);
  hc->set_unhealthy_threshold(2);
  hc->set_start_period_s(10);
  return spec;
}

v1::DeployRequest DeployerFixture::Request(const std::string& digest, int instances) {
  v1::DeployRequest r;
  r.set_service_id(service_id_);
  r.set_build_id(Build(digest));
  r.set_image_repository(repository());
  r.set_image_digest(digest);
  *r.mutable_spec() = Spec(instances);
  return r;
}

void DeployerFixture::AddEnv(v1::DeployRequest& request, const std::string& key,
                             const std::string& value) {
  *request.mutable_spec()->add_env() = SealedEnvVar(*config_.master_keys, key, value);
}

grpc::Status DeployerFixture::TryDeploy(const v1::DeployRequest& request, v1::Deployment* out) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 30s);
  return stub_->Deploy(&ctx, request, out);
}

v1::Deployment DeployerFixture::Deploy(const v1::DeployRequest& request) {
  v1::Deployment d;
  grpc::Status s = TryDeploy(request, &d);
  INFO(s.error_message());
  REQUIRE(s.ok());
  return d;
}

v1::Deployment DeployerFixture::Get(const std::string& id) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 10s);
  v1::GetDeploymentRequest req;
  req.set_id(id);
  v1::Deployment d;
  grpc::Status s = stub_->GetDeployment(&ctx, req, &d);
  INFO(s.error_message());
  REQUIRE(s.ok());
  return d;
}

v1::Deployment DeployerFixture::WaitSettled(const std::string& id,
                                            std::chrono::milliseconds timeout) {
  v1::Deployment d;
  bool settled = WaitFor(timeout, [&] {
    d = Get(id);
    return d.state() != v1::DEPLOYMENT_STATE_PENDING && d.state() != v1::DEPLOYMENT_STATE_DEPLOYING;
  });
  INFO("deployment " << id << " is " << v1::DeploymentState_Name(d.state()));
  REQUIRE(settled);
  return d;
}

std::vector<v1::Instance> DeployerFixture::Instances(bool include_stopped,
                                                     const std::string& deployment_id) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 10s);
  v1::ListInstancesRequest req;
  req.set_service_id(service_id_);
  req.set_deployment_id(deployment_id);
  req.set_include_stopped(include_stopped);
  v1::ListInstancesResponse resp;
  grpc::Status s = stub_->ListInstances(&ctx, req, &resp);
  INFO(s.error_message());
  REQUIRE(s.ok());
  return {resp.instances().begin(), resp.instances().end()};
}

std::vector<v1::DeploymentEvent> DeployerFixture::Events(const std::string& deployment_id) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 10s);
  v1::StreamDeploymentEventsRequest req;
  req.set_deployment_id(deployment_id);
  auto reader = stub_->StreamDeploymentEvents(&ctx, req);
  std::vector<v1::DeploymentEvent> out;
  v1::DeploymentEvent e;
  while (reader->Read(&e)) out.push_back(e);
  REQUIRE(reader->Finish().ok());
  return out;
}

long DeployerFixture::ViaIngress(const std::string& path, std::string* body) {
  auto r = http::Send({.url = absl::StrCat("http://", RequireEnv("C2D_TEST_CADDY_HTTP"), path),
                       .headers = {{"Host", hostname()}},
                       .timeout = 5s});
  if (!r.ok()) {
    UNSCOPED_INFO("ingress request failed: " << r.status().ToString());
    return 0;
  }
  if (body != nullptr) *body = r->body;
  return r->status;
}

builder::Config DeployerFixture::BuilderConfig() const {
  builder::Config bc;
  bc.engine_socket = RequireEnv("C2D_TEST_BUILD_ENGINE_SOCKET");
  bc.engine_cgroup = RequireEnv("C2D_TEST_BUILD_ENGINE_CGROUP");
  bc.registry_url = config_.registry.url;
  bc.registry_user = config_.registry.username;
  bc.registry_password = config_.registry.password;
  bc.work_dir = (fs::path(RequireEnv("C2D_TEST_TMP")) / "builds").string();
  bc.local_repo_root = LocalRepoRoot();
  bc.build_timeout = 120s;
  bc.build_memory_bytes = int64_t{512} << 20;
  bc.master_keys = config_.master_keys;
  bc.stacks = builder::Stacks::FromEnv(bc.RegistryHost());
  bc.deployer_addr = address();
  return bc;
}

std::map<std::string, std::string> DeployerFixture::ProcessEnv() const {
  return {{"C2D_DATABASE_URL", db_.url()},
          {"C2D_GRPC_ADDR", "127.0.0.1:0"},
          {"C2D_METRICS_ADDR", "127.0.0.1:0"},
          {"C2D_ENGINE_SOCKET", config_.local.engine_socket},
          {"C2D_REGISTRY_URL", config_.registry.url},
          {"C2D_REGISTRY_USER", config_.registry.username},
          {"C2D_REGISTRY_PASSWORD", config_.registry.password},
          {"C2D_VOLUMES_DIR", config_.local.volumes_dir},
          {"C2D_PDNS_API_URL", config_.ingress.pdns.api_url},
          {"C2D_PDNS_API_KEY", config_.ingress.pdns.api_key},
          {"C2D_INGRESS_ZONE", config_.ingress.zone},
          {"C2D_DNS_ADDR", config_.dns_addr},
          {"C2D_INGRESS_UNAVAILABLE_ADDR", config_.ingress.unavailable_addr},
          {"C2D_MASTER_KEY", master_key_},
          {"C2D_RECONCILE_INTERVAL", "300ms"},
          {"C2D_DRAIN_GRACE", "2s"},
          {"C2D_STOP_GRACE", "2s"},
          {"C2D_RESTART_BACKOFF_BASE", "100ms"},
          {"C2D_JOB_LEASE", "3s"},
          {"C2D_JOB_POLL_INTERVAL", "200ms"},
          {"C2D_SHUTDOWN_GRACE", "2s"}};
}

v1::CreateVolumeRequest VolumeRequest(DeployerFixture& f, const std::string& name,
                                      const std::string& mount_path) {
  v1::CreateVolumeRequest cv;
  cv.set_service_id(f.service_id());
  cv.set_project_id(f.project_id());
  cv.set_name(name);
  cv.set_size_gb(1);
  cv.set_mount_path(mount_path);
  return cv;
}

v1::Volume CreateVolume(DeployerFixture& f) {
  grpc::ClientContext ctx;
  v1::Volume volume;
  grpc::Status s = f.stub().CreateVolume(&ctx, VolumeRequest(f), &volume);
  INFO(s.error_message());
  REQUIRE(s.ok());
  return volume;
}

v1::DeployRequest WithVolume(v1::DeployRequest r, const v1::Volume& volume) {
  v1::VolumeMount* m = r.mutable_spec()->add_volumes();
  m->set_volume_id(volume.id());
  m->set_name(volume.name());
  m->set_mount_path(volume.mount_path());
  m->set_size_gb(volume.size_gb());
  return r;
}

v1::Deployment RollBackTo(DeployerFixture& f, const std::string& to) {
  grpc::ClientContext ctx;
  v1::RollbackRequest rb;
  rb.set_service_id(f.service_id());
  rb.set_to_deployment_id(to);
  v1::Deployment back;
  REQUIRE(f.stub().Rollback(&ctx, rb, &back).ok());
  return back;
}

std::string Body(DeployerFixture& f, const std::string& path) {
  std::string body;
  return f.ViaIngress(path, &body) == 200 ? body : "";
}

std::multiset<std::string> Kinds(const std::vector<v1::DeploymentEvent>& events) {
  std::multiset<std::string> out;
  for (const auto& e : events) out.insert(e.kind());
  return out;
}

bool HasEvent(const std::vector<v1::DeploymentEvent>& events, const std::string& kind) {
  return Kinds(events).count(kind) > 0;
}

std::vector<v1::DeploymentEvent> ServiceEvents(DeployerFixture& f) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 10s);
  v1::StreamDeploymentEventsRequest req;
  req.set_service_id(f.service_id());
  auto reader = f.stub().StreamDeploymentEvents(&ctx, req);
  std::vector<v1::DeploymentEvent> out;
  v1::DeploymentEvent e;
  while (reader->Read(&e)) out.push_back(e);
  REQUIRE(reader->Finish().ok());
  return out;
}

std::set<std::string> InternalAddresses(DeployerFixture& f) {
  const std::string zone = absl::StrCat("internal.", f.config().base_domain, ".");
  auto rr = f.dns().pdns().Get(zone, absl::StrCat("web.", f.project_name(), ".", zone), "A");
  if (!rr.ok()) return {};
  return std::set<std::string>(rr->records.begin(), rr->records.end());
}

void CheckIngressMatches(DeployerFixture& f, const std::string& live_id) {
  std::set<std::string> healthy;
  for (const v1::Instance& i : f.Instances(false, live_id)) {
    if (i.state() == v1::INSTANCE_STATE_HEALTHY)
      healthy.insert(absl::StrCat(i.host(), ":", i.port()));
  }
  // (The read itself may meet a PowerDNS busy with the other tests' writes.)
  auto listed = f.upstreams().Get(f.hostname());
  for (int i = 0; i < 10 && !listed.ok() && !absl::IsNotFound(listed.status()); ++i) {
    std::this_thread::sleep_for(500ms);
    listed = f.upstreams().Get(f.hostname());
  }
  INFO(listed.status().ToString());
  REQUIRE(listed.ok());
  CHECK(std::set<std::string>(listed->begin(), listed->end()) == healthy);
}

}  // namespace c2d::testing
