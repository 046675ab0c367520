// c2d deployer: serves c2d.v1.DeployerService, works the "deployer" queue
// (`deploy`, `stop`), and its leader reconciles what runs with what should.
// C2D_PROVIDER says where instances run: "local" (the default: containers
// on the engine) or "openstack" (Nova servers; libs/cloud/openstack/cloud.h
// lists its variables).

#include <memory>
#include <optional>

#include "libs/cloud/local_provider.h"
#include "libs/cloud/openstack/cloud.h"
#include "libs/common/env.h"
#include "libs/common/log.h"
#include "libs/ingress/upstreams.h"
#include "libs/rpc/process.h"
#include "libs/rpc/server.h"
#include "services/certs/cert_server.h"
#include "services/deployer/access_log.h"
#include "services/deployer/config.h"
#include "services/deployer/deploy_job.h"
#include "services/deployer/deployer_service.h"
#include "services/deployer/reconciler.h"
#include "services/deployer/runtime.h"

int main() {
  using namespace c2d;
  auto process = rpc::Process::Init("deployer");
  if (!process.ok()) return rpc::Process::Fail(process.status());
  auto config = deployer::Config::FromEnv();
  if (!config.ok()) return rpc::Process::Fail(config.status());
  auto credentials = rpc::ChannelCredentialsFromEnv();
  if (!credentials.ok()) return rpc::Process::Fail(credentials.status());
  ingress::Upstreams upstreams(config->ingress, rpc::Channel(config->dns_addr, *credentials));
  if (auto s = upstreams.Check(); !s.ok()) return rpc::Process::Fail(s);
  auto providers = cloud::openstack::ProviderChoice::FromEnv(config->local, (*process)->pool());
  if (!providers.ok()) return rpc::Process::Fail(providers.status());
  cloud::Provider* provider = &(*providers)->provider();
  bool instances_take_certificates = false;  // openstack with remote admin to its Caddies
  if (cloud::openstack::Cloud* openstack = (*providers)->openstack()) {
    instances_take_certificates = openstack->provider().remote_admin();
    config->dns_routing = true;  // each instance's Caddy serves it: no host ingress
  }

  deployer::Runtime runtime((*process)->pool(), *config, *provider, upstreams);
  if (auto s = runtime.Init(); !s.ok()) return rpc::Process::Fail(s);
  runtime.UseDns(rpc::Channel(config->dns_addr, *credentials));
  if (!config->dbprov_addr.empty()) {
    runtime.UseDatabases(rpc::Channel(config->dbprov_addr, *credentials));
  }
  // Under DNS routing each instance serves HTTPS itself, with the
  // certificates of the certs service (read from PostgreSQL, unsealed).
  std::optional<certs::CertCache> certificates;
  if (instances_take_certificates && config->master_keys) {
    certificates.emplace((*process)->pool(), *config->master_keys);
    runtime.UseCertificates([&](const std::string& name) -> absl::StatusOr<std::string> {
      auto entry = certificates->Lookup(name);
      if (!entry.ok()) return entry.status();
      return entry->bundle;
    });
  } else if (config->dns_routing) {
    log::Warn(
        "instances get no certificates and serve plain HTTP only: that needs C2D_MASTER_KEY, "
        "C2D_OS_ADMIN_CLIENT_CERT and C2D_OS_ADMIN_CLIENT_KEY");
  }
  // Per-app request metrics from the ingress's access log.
  deployer::HostIndex hosts((*process)->pool(), absl::Seconds(10));
  deployer::AccessCounter access_counter([&](const std::string& h) { return hosts.ServiceOf(h); });
  std::unique_ptr<deployer::AccessLogReceiver> access_log;
  if (!config->ingress_log_addr.empty()) {
    auto receiver = deployer::AccessLogReceiver::Start(config->ingress_log_addr, access_counter);
    if (!receiver.ok()) return rpc::Process::Fail(receiver.status());
    access_log = std::move(*receiver);
  }
  deployer::DeployerServiceImpl service(runtime);
  deployer::DeployJob deploy(runtime);
  deployer::StopJob stop(runtime);
  deployer::Reconciler reconciler(runtime);
  jobs::Worker& worker = (*process)->AddWorker("deployer");
  worker.Register("deploy", [&](jobs::JobContext& ctx) { return deploy.Run(ctx); });
  worker.Register("stop", [&](jobs::JobContext& ctx) { return stop.Run(ctx); });
  (*process)->AddLeader(
      "deployer.reconcile", config->reconcile_interval, [&] { reconciler.RunOnce(); },
      [&] { reconciler.LostLeadership(); });
  if (cloud::openstack::Cloud* openstack = (*providers)->openstack()) {
    // What a crash mid-deploy left in the cloud (libs/cloud/openstack/ledger.h),
    // dbprov's servers' included (one ledger).
    (*process)->AddLeader("deployer.cloud-sweep", std::chrono::minutes(5), [openstack] {
      auto swept = openstack->provider().Sweep(absl::Minutes(15));
      if (!swept.ok()) {
        c2d::log::Warn("cloud sweep failed", {{"error", swept.status().ToString()}});
      } else if (*swept > 0) {
        c2d::log::Info("cloud sweep deleted what crashed deploys left", {{"resources", *swept}});
      }
    });
  }
  int rc = (*process)->Serve({{v1::DeployerService::service_full_name(), &service}});
  reconciler.Stop();
  return rc;
}
