// c2d dns: serves c2d.v1.DnsService and works the "dns" job queue
// (`dns_sync`); its leader sweeps every zone, putting back records changed
// or deleted in the backend behind c2d's back. The backend is PowerDNS
// Authoritative (its HTTP API) or, on OpenStack, Designate (C2D_DNS_BACKEND).

#include <memory>

#include "libs/cloud/openstack/cloud.h"
#include "libs/cloud/openstack/designate.h"
#include "libs/common/status.h"
#include "libs/rpc/process.h"
#include "services/dns/config.h"
#include "services/dns/dns_service.h"
#include "services/dns/store.h"
#include "services/dns/sync.h"

int main() {
  using namespace c2d;
  auto process = rpc::Process::Init("dns");
  if (!process.ok()) return rpc::Process::Fail(process.status());
  auto config = dns::Config::FromEnv();
  if (!config.ok()) return rpc::Process::Fail(config.status());
  auto tag =
      (*process)->pool().Read("installation", [](pg::Tx& tx) { return dns::InstallationTag(tx); });
  if (!tag.ok()) return rpc::Process::Fail(tag.status());
  std::unique_ptr<cloud::openstack::Session> openstack;  // outlives the backend
  std::unique_ptr<dns::Backend> backend;
  if (config->backend == "designate") {
    auto credentials = cloud::openstack::CredentialsFromEnv();
    if (!credentials.ok()) return rpc::Process::Fail(credentials.status());
    openstack = std::make_unique<cloud::openstack::Session>(std::move(*credentials));
    backend = std::make_unique<cloud::openstack::Designate>(*openstack);
  } else {
    backend = std::make_unique<dns::Pdns>(config->pdns);
  }
  dns::Syncer syncer((*process)->pool(), *backend, *tag);
  if (absl::Status s = syncer.EnsureZones(config->Zones()); !s.ok()) return rpc::Process::Fail(s);
  dns::DnsServiceImpl service((*process)->pool(), syncer);
  syncer.RegisterJobs((*process)->AddWorker("dns"));
  (*process)->AddLeader("dns.sweep", config->sweep_interval, [&] { syncer.Sweep(); });
  return (*process)->Serve({{v1::DnsService::service_full_name(), &service}});
}
