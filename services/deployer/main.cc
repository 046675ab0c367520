// c2d deployer: serves c2d.v1.DeployerService, works the "deployer" queue
// (`deploy`, `stop`), and its leader reconciles what runs with what should.

#include "libs/cloud/local_provider.h"
#include "libs/ingress/upstreams.h"
#include "libs/rpc/process.h"
#include "libs/rpc/server.h"
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
  ingress::Upstreams upstreams(config->ingress,
                               grpc::CreateChannel(config->dns_addr, *credentials));
  if (auto s = upstreams.Check(); !s.ok()) return rpc::Process::Fail(s);
  cloud::LocalProvider provider(config->local);

  deployer::Runtime runtime((*process)->pool(), *config, provider, upstreams);
  if (auto s = runtime.Init(); !s.ok()) return rpc::Process::Fail(s);
  runtime.UseDns(grpc::CreateChannel(config->dns_addr, *credentials));
  if (!config->dbprov_addr.empty()) {
    runtime.UseDatabases(grpc::CreateChannel(config->dbprov_addr, *credentials));
  }
  deployer::DeployerServiceImpl service(runtime);
  deployer::DeployJob deploy(runtime);
  deployer::StopJob stop(runtime);
  deployer::Reconciler reconciler(runtime);
  jobs::Worker& worker = (*process)->AddWorker("deployer");
  worker.Register("deploy", [&](jobs::JobContext& ctx) { return deploy.Run(ctx); });
  worker.Register("stop", [&](jobs::JobContext& ctx) { return stop.Run(ctx); });
  (*process)->AddLeader("deployer.reconcile", config->reconcile_interval,
                        [&] { reconciler.RunOnce(); });
  int rc = (*process)->Serve({{v1::DeployerService::service_full_name(), &service}});
  reconciler.Stop();
  return rc;
}
