#pragma once

// Cinder (Block Storage v3) as c2d uses it: a volume per c2d volume
// (DESIGN §1 point 13), made once (found again by name after a crash),
// waited for until available, deleted when c2d deletes its volume.
// Attaching goes through Nova (Nova::AttachVolume). Thread-safe.

#include <map>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "libs/cloud/openstack/session.h"

namespace c2d::cloud::openstack {

struct Volume {
  std::string id;
  std::string name;
  // creating, available, reserved, attaching, in-use, detaching, deleting,
  // error, error_deleting, ... (Cinder's words)
  std::string status;
  int size_gb = 0;
  std::vector<std::string> attached_to;  // server ids
  std::map<std::string, std::string> metadata;
};

class Cinder {
 public:
  static constexpr char kMicroversion[] = "3.67";

  explicit Cinder(Session& session) : session_(session) {}

  // The volume named `name`, made (size_gb, labels as metadata) when there
  // is none; it may still be "creating".
  absl::StatusOr<Volume> EnsureVolume(const std::string& name, int size_gb,
                                      const std::map<std::string, std::string>& labels);
  // NotFound when there is no such volume (any more).
  absl::StatusOr<Volume> GetVolume(const std::string& id);
  absl::StatusOr<std::optional<Volume>> FindVolume(const std::string& name);
  // Polls until the volume is `status`. FailedPrecondition when it goes to
  // error, DeadlineExceeded at `deadline`.
  absl::StatusOr<Volume> WaitFor(const std::string& id, const std::string& status,
                                 absl::Time deadline, absl::Duration poll = absl::Seconds(1));
  // Adds `metadata` to the volume's (a key it has already takes the new value).
  absl::Status SetMetadata(const std::string& id,
                           const std::map<std::string, std::string>& metadata);
  // OK when it is gone already; Cinder refuses (InvalidArgument) while attached.
  absl::Status DeleteVolume(const std::string& id);

 private:
  absl::StatusOr<Reply> Call(CallRequest request);

  Session& session_;
};

Volume ParseVolume(const nlohmann::json& volume);

}  // namespace c2d::cloud::openstack
