// c2d dbprov: serves c2d.v1.DatabaseService and works the "dbprov" job queue
// (`provision_db`, `delete_db`, `backup_db`, `restore_db`, `rotate_db`); its
// leader keeps every database's server running and starts scheduled backups
// and rotations. Each managed database is a server of its own: a container
// of the engine's stack image on its project's network, or under
// C2D_PROVIDER=openstack a Nova server on it with a Cinder volume
// (libs/cloud/openstack/cloud.h lists the variables).

#include <memory>

#include "libs/cloud/local_provider.h"
#include "libs/cloud/openstack/cloud.h"
#include "libs/cloud/openstack/swift.h"
#include "libs/common/env.h"
#include "libs/oci/registry.h"
#include "libs/rpc/process.h"
#include "libs/rpc/server.h"
#include "services/dbprov/backup_job.h"
#include "services/dbprov/config.h"
#include "services/dbprov/database_service.h"
#include "services/dbprov/provision_job.h"
#include "services/dbprov/reconciler.h"
#include "services/dbprov/rotation.h"
#include "services/dbprov/schedule.h"

int main() {
  using namespace c2d;
  auto process = rpc::Process::Init("dbprov");
  if (!process.ok()) return rpc::Process::Fail(process.status());
  auto config = dbprov::Config::FromEnv();
  if (!config.ok()) return rpc::Process::Fail(config.status());
  auto providers =
      cloud::openstack::ProviderChoice::FromEnv(config->local.local, (*process)->pool());
  if (!providers.ok()) return rpc::Process::Fail(providers.status());
  cloud::Provider& provider = (*providers)->provider();
  cloud::openstack::Cloud* cloud = (*providers)->openstack();
  oci::Registry registry(config->local.registry);
  // Backups go to a local folder, or to Swift (C2D_BACKUP_STORE=swift, with
  // the C2D_OS_* credentials of libs/cloud/openstack/cloud.h): the default
  // under C2D_PROVIDER=openstack.
  std::unique_ptr<cloud::openstack::Session> own_session;  // outlives the store
  std::unique_ptr<objstore::ObjectStore> backup_store;
  const std::string store_kind = env::GetString("C2D_BACKUP_STORE", cloud ? "swift" : "local");
  if (store_kind == "swift") {
    if (cloud == nullptr) {
      auto os = cloud::openstack::CredentialsFromEnv();
      if (!os.ok()) return rpc::Process::Fail(os.status());
      own_session = std::make_unique<cloud::openstack::Session>(std::move(*os));
    }
    backup_store = std::make_unique<cloud::openstack::SwiftObjectStore>(
        cloud ? cloud->session() : *own_session,
        cloud::openstack::SwiftOptions{.container =
                                           env::GetString("C2D_SWIFT_CONTAINER", "c2d-backups")});
  } else if (store_kind == "local") {
    backup_store = std::make_unique<objstore::LocalObjectStore>(config->backup_dir);
  } else {
    return rpc::Process::Fail(absl::InvalidArgumentError(
        absl::StrCat("C2D_BACKUP_STORE: \"", store_kind, "\" is neither local nor swift")));
  }
  objstore::ObjectStore& store = *backup_store;
  dbprov::DatabaseServiceImpl service((*process)->pool(), *config, provider, store);
  dbprov::Servers servers((*process)->pool(), *config, provider, registry);
  dbprov::Backups backups((*process)->pool(), *config, servers, provider, store);
  auto credentials = rpc::ChannelCredentialsFromEnv();
  if (!credentials.ok()) return rpc::Process::Fail(credentials.status());
  if (!config->dns_addr.empty()) {
    servers.UseDns(rpc::Channel(config->dns_addr, *credentials));
  }
  jobs::Worker& worker = (*process)->AddWorker("dbprov");
  servers.RegisterJobs(worker);
  backups.RegisterJobs(worker);
  dbprov::Reconciler reconciler((*process)->pool(), *config, servers, provider);
  (*process)->AddLeader("dbprov.reconcile", config->reconcile_interval,
                        [&] { reconciler.RunOnce(); });
  dbprov::Rotations rotations(
      (*process)->pool(), *config, servers,
      config->deployer_addr.empty() ? nullptr : rpc::Channel(config->deployer_addr, *credentials));
  rotations.RegisterJobs(worker);
  // Schedules name minutes: a pass every 10 s starts a backup within 10 s
  // of its time; rotation_days are days.
  dbprov::BackupScheduler scheduler((*process)->pool(), store);
  (*process)->AddLeader("dbprov.schedule", std::chrono::seconds(10), [&] {
    scheduler.RunOnce();
    rotations.StartDue();
  });
  (*process)->AddCollectable(std::make_shared<dbprov::BackupFreshnessMetric>((*process)->pool()));
  return (*process)->Serve({{v1::DatabaseService::service_full_name(), &service}});
}
