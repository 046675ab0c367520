#pragma once

// The ledger of what the OpenStack provider made in the cloud. Every
// resource is recorded (kind, c2d's name of it, its owner) before the call
// that makes it and bound to the cloud's id once that call answers, so that
// a failed step, a cancelled deploy or a crash can find and delete all of
// it: by id, or by name when the id never came back. A row is forgotten
// once the resource is gone.
//
// PgLedger keeps it in PostgreSQL (table cloud_resources), MemoryLedger in
// memory for fast tests.

#include <functional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/pg/pool.h"

namespace c2d::cloud::openstack {

// Kinds, as Neutron names its collections where there is one.
inline constexpr char kServer[] = "server";
inline constexpr char kServerGroup[] = "server-group";
inline constexpr char kVolume[] = "volume";
inline constexpr char kNetwork[] = "networks";
inline constexpr char kSubnet[] = "subnets";
inline constexpr char kRouter[] = "routers";
inline constexpr char kRouterInterface[] = "router-interface";  // cloud_id "router/subnet"
inline constexpr char kSecurityGroup[] = "security-groups";
inline constexpr char kRule[] = "security-group-rules";
inline constexpr char kPort[] = "ports";
inline constexpr char kFloatingIp[] = "floatingips";
inline constexpr char kObject[] = "object";  // a Swift object; its name is its key

struct Resource {
  std::string kind;
  std::string name;
  std::string owner;
  std::string cloud_id;  // empty until bound
  absl::Time recorded_at;
};

class Ledger {
 public:
  virtual ~Ledger() = default;
  // Records the resource (kind, name) for `owner`; recording it again keeps
  // its row (and id) as it is. Its id when it has one already, else "".
  virtual absl::StatusOr<std::string> Record(const std::string& kind, const std::string& name,
                                             const std::string& owner) = 0;
  virtual absl::Status Bind(const std::string& kind, const std::string& name,
                            const std::string& cloud_id) = 0;
  virtual absl::Status Forget(const std::string& kind, const std::string& name) = 0;
  // The owner's resources, oldest first.
  virtual absl::StatusOr<std::vector<Resource>> Owned(const std::string& owner) = 0;
  // Every resource, oldest first.
  virtual absl::StatusOr<std::vector<Resource>> All() = 0;
  // Runs `fn` while no other holder of `key` runs, in any process sharing
  // the ledger (two deployer replicas must not both make one network).
  virtual absl::Status Exclusive(const std::string& key,
                                 const std::function<absl::Status()>& fn) = 0;
};

class MemoryLedger final : public Ledger {
 public:
  absl::StatusOr<std::string> Record(const std::string& kind, const std::string& name,
                                     const std::string& owner) override;
  absl::Status Bind(const std::string& kind, const std::string& name,
                    const std::string& cloud_id) override;
  absl::Status Forget(const std::string& kind, const std::string& name) override;
  absl::StatusOr<std::vector<Resource>> Owned(const std::string& owner) override;
  absl::StatusOr<std::vector<Resource>> All() override;
  absl::Status Exclusive(const std::string& key, const std::function<absl::Status()>& fn) override;

 private:
  absl::Mutex mu_;
  std::vector<Resource> rows_ ABSL_GUARDED_BY(mu_);
  absl::Mutex exclusive_mu_;  // one key at a time: enough for tests
};

class PgLedger final : public Ledger {
 public:
  // `provider` tells the ledgers of several clouds apart ("openstack").
  PgLedger(pg::Pool& pool, std::string provider) : pool_(pool), provider_(std::move(provider)) {}
  absl::StatusOr<std::string> Record(const std::string& kind, const std::string& name,
                                     const std::string& owner) override;
  absl::Status Bind(const std::string& kind, const std::string& name,
                    const std::string& cloud_id) override;
  absl::Status Forget(const std::string& kind, const std::string& name) override;
  absl::StatusOr<std::vector<Resource>> Owned(const std::string& owner) override;
  absl::StatusOr<std::vector<Resource>> All() override;
  // A transaction-scoped advisory lock on the key, held on one of the
  // pool's connections while `fn` runs (it uses others).
  absl::Status Exclusive(const std::string& key, const std::function<absl::Status()>& fn) override;

 private:
  pg::Pool& pool_;
  const std::string provider_;
};

}  // namespace c2d::cloud::openstack
