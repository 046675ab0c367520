#pragma once

// What the deploy job, the stop job and the reconciler share: starting and
// stopping one instance on the provider with its rows and events kept in
// step, resolving a release's environment, and pointing the ingress at a
// service's healthy instances. Every operation is idempotent, so a job re-run
// after a crash or a new leader simply carries on. Thread-safe.

#include <grpcpp/grpcpp.h>

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "libs/cloud/provider.h"
#include "libs/dns/client.h"
#include "libs/ingress/upstreams.h"
#include "libs/pg/pool.h"
#include "proto/c2d/v1/dbprov.grpc.pb.h"
#include "proto/c2d/v1/deployer.pb.h"
#include "services/deployer/cert_push.h"
#include "services/deployer/config.h"
#include "services/deployer/store.h"

namespace c2d::deployer {

// Labels on every instance c2d runs (besides project, service, deployment).
inline constexpr char kInstallationLabel[] = "c2d.installation";
inline constexpr char kInstanceLabel[] = "c2d.instance";

// What a release's instances get besides their image and spec.
struct ReleaseEnv {
  std::map<std::string, std::string> env;
  // /etc/hosts lines: the linked databases' names and addresses.
  std::map<std::string, std::string> hosts;
};

// The environment of a release: its env vars (decrypted) over the variables
// of its database links, and each `${{ db.<name>.<VARIABLE> }}` in a value
// replaced by that variable of the linked database <name> (VARIABLE is one of
// the link's variables, e.g. DATABASE_URL, or just URL, HOST, PORT, USER,
// PASSWORD or NAME). InvalidArgument for a reference to anything else.
absl::StatusOr<std::map<std::string, std::string>> ApplyLinks(
    std::map<std::string, std::string> env, const v1::ResolveLinksResponse& links);

class Runtime {
 public:
  Runtime(pg::Pool& pool, const Config& config, cloud::Provider& provider,
          ingress::Upstreams& upstreams);

  // Reads this installation's id; before anything else.
  absl::Status Init();
  // The labels that select every instance of this installation.
  std::map<std::string, std::string> OwnLabels() const {
    return {{kInstallationLabel, installation_}};
  }

  // Links resolve through dbprov at this address; without it a release with
  // database links fails. Before any deployment runs.
  void UseDatabases(const std::shared_ptr<grpc::Channel>& dbprov);
  // The DNS service, for the service names beside the ingress's routes:
  // "<service>.<project>.internal.<base>" (one A record per healthy
  // instance's private address) and, with a public zone and
  // C2D_PUBLIC_IPV4, the hostname's A record. Without it no names are
  // published.
  void UseDns(const std::shared_ptr<grpc::Channel>& dns);
  // Where the certificates of services' names come from, for instances that
  // terminate TLS themselves (cert_push.h); without it they get none. Before
  // any deployment runs.
  void UseCertificates(CertLookup lookup) { certs_.emplace(provider_, std::move(lookup)); }
  // Whether instances are given certificates (DNS routing and a lookup).
  bool GivesCertificates() const { return config_.dns_routing && certs_.has_value(); }
  // Gives each instance of `refs` the certificates of `names` it does not
  // have yet (CertPusher::Push); OK when certificates are not given.
  absl::Status GiveCertificates(const std::vector<std::string>& refs,
                                const std::vector<std::string>& names);
  // The same for the instances of release `d`, with the names its service
  // has now (hostname, verified custom domains): before they take traffic.
  absl::Status GiveCertificates(const v1::Deployment& d, const std::vector<std::string>& refs);
  // Forgets what instances not in `refs` (gone) were given, unless they
  // were given it in the last minute (too new for `refs`).
  void RetainCertificates(const std::set<std::string>& refs);

  // The environment of a release's instances (ApplyLinks), its links
  // resolved by dbprov now, so credentials are current. InvalidArgument or
  // FailedPrecondition (the deployment must fail) when a value cannot be
  // decrypted or names something that cannot be resolved; Unavailable
  // when dbprov did not answer (try again).
  absl::StatusOr<ReleaseEnv> ResolveEnv(const v1::ServiceSpec& spec) const;

  // Makes sure instance `row` has a running container: adopts the one that
  // carries its label, starts a stopped one, or creates a new one (pulling
  // the image, attaching volumes). Records the provider ref and address.
  absl::Status EnsureRunning(const InstanceRow& row, const v1::Deployment& d,
                             const ReleaseEnv& env);
  // Stops (SIGTERM, then SIGKILL after the stop grace) and removes the
  // instance's container, detaches its volumes, marks it STOPPED.
  absl::Status StopInstance(const InstanceRow& row, const std::string& reason);

  // Destroys the volume's data and marks it DELETED.
  absl::Status DeleteVolume(const v1::Volume& volume);

  // Points the service's hostname, and its verified custom domains, at the
  // healthy instances of its live deployment (503 when there are none; 404 again once it has no
  // live deployment). Serialized per service across processes by an advisory lock.
  absl::Status SyncIngress(const std::string& service_id);
  // The same inside the caller's transaction, which sees its own changes:
  // the ingress serves them before they commit (and the lock is held until
  // they do).
  absl::Status SyncIngress(pg::Tx& tx, const std::string& service_id);
  // Forgets what SyncIngress last wrote, so the next call writes again.
  void ForgetIngress();

  // A system line in the service's runtime log.
  void SystemLog(const std::string& service_id, const std::string& instance_id,
                 const std::string& text);
  // The last `n` lines the instance's container wrote (for failure reasons).
  std::vector<std::string> LastOutput(const std::string& ref, int n);

  cloud::Provider& provider() { return provider_; }
  pg::Pool& pool() { return pool_; }
  const Config& config() const { return config_; }

 private:
  // Routes the verified custom domains `customs` to `addresses` and
  // unroutes the service's others; false when one is still routed to
  // another service (the next sync retries).
  absl::StatusOr<bool> RouteCustomDomains(pg::Tx& tx, const std::string& service_id,
                                          const std::vector<std::string>& customs,
                                          const std::vector<std::string>& addresses);
  // Removes a project's network once no instance of the project is left.
  void ReleaseNetwork(const std::string& project_id);

  pg::Pool& pool_;
  const Config& config_;
  cloud::Provider& provider_;
  // The A records a routed service should have now, by name.
  // `addresses`: the healthy instances' host:port (DNS routing only).
  std::map<std::string, std::vector<std::string>> Names(
      const std::string& hostname, const std::string& internal_name,
      const std::vector<std::string>& privates, const std::vector<std::string>& addresses) const;
  // Makes the service's A records exactly `names` (through the DNS service).
  absl::Status PublishNames(const std::string& service_id,
                            const std::map<std::string, std::vector<std::string>>& names);

  ingress::Upstreams& upstreams_;
  std::unique_ptr<v1::DatabaseService::Stub> databases_;  // null without dbprov
  std::unique_ptr<dns::Client> dns_;                      // null without UseDns
  std::optional<CertPusher> certs_;                       // none without UseCertificates
  std::string installation_;
  absl::Mutex mu_;
  // hostname -> what SyncIngress last wrote for it, to skip writes that
  // change nothing.
  std::map<std::string, std::string> written_ ABSL_GUARDED_BY(mu_);
};

}  // namespace c2d::deployer
