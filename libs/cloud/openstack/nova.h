#pragma once

// Nova (Compute v2.1) as c2d uses it: servers made from an image and a
// flavor with cloud-init user data, found again by their tags, started,
// stopped and deleted; server groups for anti-affinity; console output.
//
// Every call sends microversion kMicroversion (2.67: tags at create, block
// device mappings with a volume type), which Nova 26 (Zed, Debian 12) and
// later serve. c2d's labels become both metadata (read back as they are)
// and tags "key=value" (what ListServers filters on: Nova filters on tags,
// not metadata).
//
// Creating is a POST and is never sent twice (libs/cloud/openstack/session.h):
// callers name servers uniquely and look for one by its tags before making
// it again. Thread-safe.

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "libs/cloud/openstack/session.h"

namespace c2d::cloud::openstack {

struct ServerSpec {
  std::string name;
  std::string flavor_id;
  std::string image_id;
  std::string user_data;                     // cloud-init's, as is (base64-encoded here)
  std::vector<std::string> network_ids;      // one NIC on each
  std::vector<std::string> port_ids;         // NICs on ports made beforehand
  std::vector<std::string> security_groups;  // names; empty: the project's default
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> metadata;  // metadata only, not tags
  std::string key_name;
  std::string server_group_id;  // placed by the group's policy (anti-affinity)
  // Cinder volumes attached at boot, in this order, by block device mapping
  // (the image stays the boot disk); the server goes ACTIVE only with them
  // attached, or ERROR with the reason. Each must be available.
  std::vector<std::string> volume_ids;
};

struct Server {
  std::string id;
  std::string name;
  // BUILD, ACTIVE, SHUTOFF, ERROR, REBOOT, DELETED, ... (Nova's words)
  std::string status;
  std::string task_state;                     // "" when none
  std::string fault;                          // an ERROR server's reason, from its fault
  std::map<std::string, std::string> labels;  // from metadata
  std::map<std::string, std::vector<std::string>> addresses;  // network name -> IPs
  std::vector<std::string> fixed_ips;                         // every network's, in Nova's order
  std::vector<std::string> floating_ips;                      // bound to one of its ports
  std::optional<absl::Time> launched_at;
};

class Nova {
 public:
  static constexpr char kMicroversion[] = "2.67";

  explicit Nova(Session& session) : session_(session) {}

  // The new server's id; it is BUILD until WaitFor says otherwise.
  absl::StatusOr<std::string> CreateServer(const ServerSpec& spec);
  // NotFound when there is no such server (any more).
  absl::StatusOr<Server> GetServer(const std::string& id);
  // Every server carrying all of `labels`, across pages.
  absl::StatusOr<std::vector<Server>> ListServers(const std::map<std::string, std::string>& labels);
  // OK when it is gone already. Deletion finishes later: WaitGone.
  absl::Status DeleteServer(const std::string& id);
  // Adds `metadata` to the server's (what its metadata service serves the
  // guest at its next read); a key it has already takes the new value.
  absl::Status SetMetadata(const std::string& id,
                           const std::map<std::string, std::string>& metadata);
  // os-start / os-stop; Nova's 409 for a server already in that state is OK.
  absl::Status StartServer(const std::string& id);
  absl::Status StopServer(const std::string& id);
  absl::Status RebootServer(const std::string& id, bool hard);

  // Polls until the server's status is `status` with no task under way.
  // FailedPrecondition with the fault when it goes to ERROR, NotFound when
  // it disappears, DeadlineExceeded at `deadline` (naming the last status).
  absl::StatusOr<Server> WaitFor(const std::string& id, const std::string& status,
                                 absl::Time deadline, absl::Duration poll = absl::Seconds(1));
  // Polls until GET answers 404; DeadlineExceeded at `deadline`.
  absl::Status WaitGone(const std::string& id, absl::Time deadline,
                        absl::Duration poll = absl::Seconds(1));

  // The id of the flavor or image named `name` (or `name` itself when it is an id).
  absl::StatusOr<std::string> FlavorId(const std::string& name);

  // A server group with `policy` ("anti-affinity", "soft-anti-affinity").
  absl::StatusOr<std::string> CreateServerGroup(const std::string& name, const std::string& policy);
  absl::Status DeleteServerGroup(const std::string& id);  // OK when gone
  // The id of the project's server group named `name`, if any.
  absl::StatusOr<std::optional<std::string>> FindServerGroup(const std::string& name);

  // Attaches the Cinder volume (os-volume_attachments); OK when it is
  // attached to this server already. Detach: OK when it is not attached.
  absl::Status AttachVolume(const std::string& server_id, const std::string& volume_id);
  absl::Status DetachVolume(const std::string& server_id, const std::string& volume_id);

  // The last `lines` lines of the server's console.
  absl::StatusOr<std::string> ConsoleOutput(const std::string& id, int lines);

 private:
  absl::StatusOr<Reply> Call(CallRequest request);
  absl::Status Action(const std::string& id, const nlohmann::json& action);

  Session& session_;
};

// The server of one Nova answer ({"id", "status", ...}).
Server ParseServer(const nlohmann::json& server);

}  // namespace c2d::cloud::openstack
