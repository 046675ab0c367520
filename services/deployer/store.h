#pragma once

// The deployer's tables (deployments, instances, volumes, deployment_events,
// runtime_log_tail): every statement the deployer runs against them, and the
// mapping between rows and c2d.v1 messages. store.cc holds deployments,
// instances and events, which change together; volume_store.cc and
// runtime_log_store.cc the two tables that stand apart.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "libs/pg/pool.h"
#include "proto/c2d/v1/deployer.pb.h"

namespace c2d::deployer {

// LISTEN/NOTIFY channels; the payload is the service id.
inline constexpr char kEventsChannel[] = "c2d_deployer_events";
inline constexpr char kRuntimeLogChannel[] = "c2d_runtime_logs";

// "live", "starting", …: the SQL spelling of an enum value.
std::string StateName(v1::DeploymentState s);
std::string StateName(v1::InstanceState s);
std::string StateName(v1::VolumeState s);

// This installation's id (migration 0002).
absl::StatusOr<std::string> InstallationId(pg::Tx& tx);

// ---- deployments

struct NewDeployment {
  std::string id;
  std::string build_id;
  std::string request_id;  // may be empty
  std::string image_repository;
  std::string image_digest;
  v1::ServiceSpec spec;
  std::string rollback_of;  // may be empty
};

struct InsertResult {
  v1::Deployment deployment;
  bool created = false;
};

// A new deployment of `target`'s release again (its image and its settings),
// as a rollback to it.
NewDeployment RollbackTo(const v1::Deployment& target, const std::string& request_id);

// Records a PENDING deployment and enqueues its `deploy` job, in `tx`. Every
// other pending or deploying deployment of the service is superseded (its
// job cancelled). With a request_id already used for the service, returns
// that deployment and changes nothing.
absl::StatusOr<InsertResult> InsertDeployment(pg::Tx& tx, const NewDeployment& d);

absl::StatusOr<v1::Deployment> GetDeployment(pg::Tx& tx, const std::string& id);
// Locks the row until the transaction ends.
absl::StatusOr<v1::Deployment> LockDeployment(pg::Tx& tx, const std::string& id);
// The service's LIVE deployment; NotFound when none is.
absl::StatusOr<v1::Deployment> LiveDeployment(pg::Tx& tx, const std::string& service_id);
// Every LIVE deployment (one per service at most): the reconciler's one read
// of the releases it checks.
absl::StatusOr<std::vector<v1::Deployment>> LiveDeployments(pg::Tx& tx);
// Services of the project with a live release or a route (to move or remove).
absl::StatusOr<std::vector<std::string>> RoutedServices(pg::Tx& tx, const std::string& project_id);
// The newest release of the service that went live before the live one (or
// the newest that was ever live, when none is); NotFound when there is none.
absl::StatusOr<v1::Deployment> PreviousLive(pg::Tx& tx, const std::string& service_id);
// Newest first; `page_token` is the last id of the previous page.
absl::StatusOr<v1::ListDeploymentsResponse> ListDeployments(pg::Tx& tx,
                                                            const std::string& service_id,
                                                            int page_size,
                                                            const std::string& page_token);

// pending -> deploying; false when the deployment is not pending/deploying.
absl::StatusOr<bool> MarkDeploying(pg::Tx& tx, const std::string& id);
// pending|deploying -> failed; false when it was already final or live.
absl::StatusOr<bool> MarkDeploymentFailed(pg::Tx& tx, const std::string& id,
                                          const std::string& reason);
// The service's live deployment, unless it is `d`, becomes SUPERSEDED
// (ROLLED_BACK when `d` is a rollback) and replaced by `d`, its instances
// DRAINING, with `why` as its event. False when none was live.
absl::StatusOr<bool> RetireLive(pg::Tx& tx, const v1::Deployment& d, const std::string& why);
// With nothing live: the deployment an earlier release retired, which
// never went live itself (superseded or failed), now counts as retired by
// `d`. False when there is none.
absl::StatusOr<bool> InheritRetired(pg::Tx& tx, const v1::Deployment& d);
// The deployment `id` retired (RetireLive, InheritRetired), if any.
absl::StatusOr<std::optional<v1::Deployment>> RetiredFor(pg::Tx& tx, const std::string& id);
// The switch, in one transaction: RetireLive, then `d` becomes LIVE. False
// when `d` is no longer deploying.
absl::StatusOr<bool> SwitchLive(pg::Tx& tx, const v1::Deployment& d);
// live -> stopped, pending|deploying -> superseded, for a whole service; its
// running instances become DRAINING. Returns the deployments changed.
absl::StatusOr<std::vector<std::string>> StopDeployments(pg::Tx& tx, const std::string& service_id,
                                                         const std::string& reason);

// ---- instances

// An instance row with what the deployer needs beyond v1::Instance.
struct InstanceRow {
  v1::Instance instance;
  v1::DeploymentState deployment_state = v1::DEPLOYMENT_STATE_UNSPECIFIED;
  int consecutive_passes = 0;
  int consecutive_failures = 0;
  std::optional<absl::Time> last_restart_at;
  std::optional<absl::Time> next_restart_at;
  absl::Time updated_at;
  // On the project's network (no port), for the internal DNS name; "" until known.
  std::string private_address;
};

absl::Status InsertInstance(pg::Tx& tx, const std::string& id, const v1::Deployment& d);
absl::Status SetInstanceRef(pg::Tx& tx, const std::string& id, const std::string& ref,
                            const std::string& host, int port, const std::string& private_address);
absl::Status SetInstanceState(pg::Tx& tx, const std::string& id, v1::InstanceState state);
struct HealthUpdate {
  bool ok = false;
  std::string detail;
  int consecutive_passes = 0;
  int consecutive_failures = 0;
};
absl::Status RecordHealth(pg::Tx& tx, const std::string& id, const HealthUpdate& h);
// The same for many instances in one statement (instance id -> update).
absl::Status RecordHealths(pg::Tx& tx, const std::vector<std::pair<std::string, HealthUpdate>>& h);
// A restart: restarts+1, the next one not before `next`; state STARTING (or
// CRASH_LOOP when `crash_loop`), health counters reset.
absl::Status RecordRestart(pg::Tx& tx, const std::string& id, absl::Time next, bool crash_loop);
absl::StatusOr<std::vector<InstanceRow>> InstancesOfDeployment(pg::Tx& tx,
                                                               const std::string& deployment_id);
// Every instance not stopped, of any service (the reconciler's working set),
// or of `service_id` only.
absl::StatusOr<std::vector<InstanceRow>> ActiveInstances(pg::Tx& tx,
                                                         const std::string& service_id = "");
// Each routed service's names that certificates are for: the hostname it is
// routed at, then its verified custom domains.
absl::StatusOr<std::map<std::string, std::vector<std::string>>> ServedNames(pg::Tx& tx);
// Up to `limit` services whose custom-domain routes (custom_routes) differ
// from their verified custom domains: a routed service with a verified
// domain not routed to it, or a route whose domain is gone.
absl::StatusOr<std::vector<std::string>> ServicesWithStaleCustomRoutes(pg::Tx& tx, int limit);
absl::StatusOr<InstanceRow> GetInstance(pg::Tx& tx, const std::string& id);
absl::StatusOr<v1::ListInstancesResponse> ListInstances(pg::Tx& tx,
                                                        const v1::ListInstancesRequest& request,
                                                        int page_size);
// Restarts recorded for the instance since `since` (crash-loop detection).
absl::StatusOr<int> RestartsSince(pg::Tx& tx, const std::string& instance_id, absl::Time since);

// ---- events

absl::Status AddEvent(pg::Tx& tx, const std::string& deployment_id, const std::string& service_id,
                      const std::string& instance_id, const std::string& kind,
                      const std::string& message);
absl::StatusOr<std::vector<v1::DeploymentEvent>> ReadEvents(pg::Tx& tx,
                                                            const std::string& deployment_id,
                                                            const std::string& service_id,
                                                            int64_t after_seq, int limit);

// ---- runtime logs

struct RuntimeLine {
  std::string stream;  // stdout, stderr, system
  std::string text;
  std::optional<absl::Time> at;  // default: now
};
absl::Status AppendRuntimeLogs(pg::Tx& tx, const std::string& service_id,
                               const std::string& instance_id,
                               const std::vector<RuntimeLine>& lines);
// The seq after which the last `n` lines of the service (or one instance) start.
absl::StatusOr<int64_t> TailStart(pg::Tx& tx, const std::string& service_id,
                                  const std::string& instance_id, int n);
absl::StatusOr<std::vector<v1::LogLine>> ReadRuntimeLogs(pg::Tx& tx, const std::string& service_id,
                                                         const std::string& instance_id,
                                                         int64_t after_seq, int limit);
// Keeps the newest `keep` lines of each instance.
absl::Status TrimRuntimeLogs(pg::Tx& tx, const std::vector<std::string>& instance_ids, int keep);
// The engine's time of each instance's newest stored output line (system
// lines, timed by c2d, do not count); instances without one are left out.
absl::StatusOr<std::map<std::string, absl::Time>> LastRuntimeLogTimes(
    pg::Tx& tx, const std::vector<std::string>& instance_ids);

// ---- volumes

absl::StatusOr<v1::Volume> InsertVolume(pg::Tx& tx, const std::string& id,
                                        const v1::CreateVolumeRequest& r);
absl::StatusOr<v1::Volume> GetVolume(pg::Tx& tx, const std::string& id);
absl::StatusOr<v1::ListVolumesResponse> ListVolumes(pg::Tx& tx, const std::string& service_id,
                                                    int page_size, const std::string& page_token);
absl::Status AttachVolume(pg::Tx& tx, const std::string& id, const std::string& provider_ref,
                          const std::string& instance_id);
// -> available (detached), unless deleting or deleted.
absl::Status DetachVolumes(pg::Tx& tx, const std::string& instance_id);
absl::Status MarkVolumeDeleting(pg::Tx& tx, const std::string& id);
absl::Status MarkVolumeDeleted(pg::Tx& tx, const std::string& id);
// Every volume in state DELETING, of any service.
absl::StatusOr<std::vector<v1::Volume>> DeletingVolumes(pg::Tx& tx);
// The live or in-progress deployment whose spec mounts `volume`, if any.
absl::StatusOr<std::optional<v1::Deployment>> DeploymentMounting(pg::Tx& tx,
                                                                 const v1::Volume& volume);
// Volumes of the service in state DELETING, or not deleted when `all`.
absl::StatusOr<std::vector<v1::Volume>> VolumesToDelete(pg::Tx& tx, const std::string& service_id,
                                                        bool all);

}  // namespace c2d::deployer
