#pragma once

// A deployer wired to the real container engine, registry, PowerDNS and
// Caddy that tools/test starts, with its gRPC service on a free port, a
// project, a service, and (unless asked not to) its workers and reconciler
// in this process. Test images are the static stack plus a version file,
// built and pushed on demand.

#include <grpcpp/grpcpp.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "libs/cloud/local_provider.h"
#include "libs/engine/engine.h"
#include "libs/ingress/upstreams.h"
#include "libs/jobs/leader.h"
#include "libs/jobs/worker.h"
#include "libs/oci/registry.h"
#include "libs/rpc/server.h"
#include "proto/c2d/v1/deployer.grpc.pb.h"
#include "services/builder/config.h"
#include "services/deployer/deploy_job.h"
#include "services/deployer/deployer_service.h"
#include "services/deployer/reconciler.h"
#include "services/deployer/runtime.h"
#include "tests/support/delegating_provider.h"
#include "tests/support/dns_server.h"
#include "tests/support/pg_fixture.h"

namespace c2d::testing {

// The local provider as one whose instances terminate TLS themselves (as
// OpenStack servers' Caddies do): what each instance was given to serve is
// recorded, nothing else changes.
class TlsInstances final : public DelegatingProvider {
 public:
  using DelegatingProvider::DelegatingProvider;
  // Instance ref -> the certificates it serves; every call counted.
  std::map<std::string, std::vector<cloud::ServedCertificate>> Served() const;
  int calls() const;

  absl::Status ServeCertificates(const std::string& ref,
                                 const std::vector<cloud::ServedCertificate>& certs) override;

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, std::vector<cloud::ServedCertificate>> served_ ABSL_GUARDED_BY(mu_);
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
};

// The local provider with Cinder's rule (OpenStack): a volume attaches to
// one instance at a time, so Create refuses (FailedPrecondition, as Nova
// answers 400) an instance whose volume another instance still holds.
class AttachOnceVolumes final : public DelegatingProvider {
 public:
  using DelegatingProvider::DelegatingProvider;
  // Creates refused because a volume was held.
  int refused() const;

  bool VolumesAttachOnce() const override { return true; }
  absl::StatusOr<cloud::Instance> Create(const cloud::InstanceSpec& spec) override;
  absl::Status Remove(const std::string& ref) override;

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, std::string> holder_ ABSL_GUARDED_BY(mu_);  // volume -> instance ref
  int refused_ ABSL_GUARDED_BY(mu_) = 0;
};

struct DeployerOptions {
  // false: only the gRPC service runs here; jobs and the reconciler are left
  // to a c2d-deployer process (ProcessEnv).
  bool in_process = true;
  // The provider's engine socket; default: the real engine's.
  std::string engine_socket;
  // Apps answer at web.<project>.<base_domain>; with a dot, the DNS service
  // serves it as a zone and each hostname gets an A record of 127.0.0.1.
  std::string base_domain = "localhost";
  // Where instances run; default: the local provider on the real engine.
  cloud::Provider* provider = nullptr;
  // DNS round-robin over instances instead of the ingress (OpenStack). With
  // the default provider, its instances then terminate TLS (tls()).
  bool dns_routing = false;
  // Where the certificates instances serve come from (dns_routing).
  deployer::CertLookup certificates;
  // The default provider's volumes attach to one instance at a time
  // (attach_once()), as on OpenStack.
  bool volumes_attach_once = false;
  // How often the reconciler looks at every instance (a cloud's listing
  // costs more than the engine's).
  std::chrono::milliseconds reconcile_interval{300};
};

class DeployerFixture {
 public:
  explicit DeployerFixture(DeployerOptions options = {});
  ~DeployerFixture();

  v1::DeployerService::Stub& stub() { return *stub_; }
  TestDatabase& db() { return db_; }
  pg::Pool& pool() { return *pool_; }
  // The gRPC address of the fixture's DeployerService.
  std::string address() const { return server_->address(); }
  deployer::Config& config() { return config_; }
  cloud::LocalProvider& provider() { return *provider_; }
  // The provider's instances as ones terminating TLS (dns_routing with the
  // default provider; null otherwise).
  TlsInstances* tls() { return tls_.get(); }
  // The provider as one whose volumes attach once (volumes_attach_once;
  // null otherwise).
  AttachOnceVolumes* attach_once() { return attach_once_.get(); }
  deployer::Runtime& runtime() { return *runtime_; }
  ingress::Upstreams& upstreams() { return *upstreams_; }
  DnsServer& dns() { return *dns_; }
  const std::string& service_id() const { return service_id_; }
  const std::string& project_id() const { return project_id_; }
  const std::string& project_name() const { return project_name_; }
  // <registry>/<project>/web
  std::string repository() const;
  std::string hostname() const;

  // Builds and pushes an image that serves `version` at / and "ok" at
  // /health, plus /cgi-bin/env printing $GREETING and /cgi-bin/log?TEXT
  // writing TEXT to stderr; returns its digest.
  std::string Image(const std::string& version);
  // A succeeded build of `digest` (deployments reference their build).
  std::string Build(const std::string& digest);
  // The fixture's service's spec, with quick health checks.
  v1::ServiceSpec Spec(int instances = 1) const;
  // A DeployRequest of `digest` with Spec(instances).
  v1::DeployRequest Request(const std::string& digest, int instances = 1);
  void AddEnv(v1::DeployRequest& request, const std::string& key, const std::string& value);

  grpc::Status TryDeploy(const v1::DeployRequest& request, v1::Deployment* out);
  v1::Deployment Deploy(const v1::DeployRequest& request);
  v1::Deployment Get(const std::string& id);
  // Waits until the deployment is LIVE or final; returns it.
  v1::Deployment WaitSettled(const std::string& id,
                             std::chrono::milliseconds timeout = std::chrono::seconds(60));
  std::vector<v1::Instance> Instances(bool include_stopped = false,
                                      const std::string& deployment_id = "");
  std::vector<v1::DeploymentEvent> Events(const std::string& deployment_id);

  // GET path through the ingress for the service's hostname.
  long ViaIngress(const std::string& path, std::string* body);

  // The configuration of a builder that uses the same engine, registry and
  // master key, and deploys through this fixture's deployer.
  builder::Config BuilderConfig() const;

  // Environment for a c2d-deployer process sharing this fixture's database.
  std::map<std::string, std::string> ProcessEnv() const;

 private:
  TestDatabase db_;
  std::unique_ptr<pg::Pool> pool_;
  deployer::Config config_;
  std::string project_id_, project_name_, service_id_;
  std::unique_ptr<cloud::LocalProvider> provider_;
  std::unique_ptr<TlsInstances> tls_;
  std::unique_ptr<AttachOnceVolumes> attach_once_;
  std::unique_ptr<DnsServer> dns_;
  std::unique_ptr<ingress::Upstreams> upstreams_;
  std::unique_ptr<deployer::Runtime> runtime_;
  std::unique_ptr<deployer::DeployerServiceImpl> service_;
  std::unique_ptr<rpc::Server> server_;
  std::unique_ptr<v1::DeployerService::Stub> stub_;
  std::unique_ptr<deployer::DeployJob> deploy_;
  std::unique_ptr<deployer::StopJob> stop_;
  std::unique_ptr<deployer::Reconciler> reconciler_;
  std::unique_ptr<jobs::Worker> worker_;
  std::unique_ptr<jobs::Leader> leader_;
  std::unique_ptr<engine::Engine> engine_;
  std::unique_ptr<oci::Registry> registry_;
  std::string master_key_;
};

// A request for a 1 GB volume `name` of the fixture's service at `mount_path`.
v1::CreateVolumeRequest VolumeRequest(DeployerFixture& f, const std::string& name = "data",
                                      const std::string& mount_path = "/data");
// Creates VolumeRequest(f), which must succeed.
v1::Volume CreateVolume(DeployerFixture& f);
// `r` with `volume` mounted at its mount path.
v1::DeployRequest WithVolume(v1::DeployRequest r, const v1::Volume& volume);
// Asks for a rollback to `to`: the new release (not yet settled).
v1::Deployment RollBackTo(DeployerFixture& f, const std::string& to);
// What the fixture's ingress serves at `path` of its hostname ("" unless 200).
std::string Body(DeployerFixture& f, const std::string& path = "/");
// The kinds of `events`, and whether one of them is `kind`.
std::multiset<std::string> Kinds(const std::vector<v1::DeploymentEvent>& events);
bool HasEvent(const std::vector<v1::DeploymentEvent>& events, const std::string& kind);
// Every event of the fixture's service, oldest first.
std::vector<v1::DeploymentEvent> ServiceEvents(DeployerFixture& f);
// What PowerDNS serves for the service's internal name (A records).
std::set<std::string> InternalAddresses(DeployerFixture& f);
// Checks that the ingress lists exactly the healthy instances of the live
// deployment `live_id`.
void CheckIngressMatches(DeployerFixture& f, const std::string& live_id);

}  // namespace c2d::testing
