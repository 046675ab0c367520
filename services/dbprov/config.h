#pragma once

// dbprov's configuration, from C2D_* variables (README lists them), and the
// plans and engines it offers.

#include <chrono>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "libs/cloud/local_provider.h"
#include "libs/crypto/seal.h"
#include "proto/c2d/v1/common.pb.h"

namespace c2d::dbprov {

struct Config {
  cloud::LocalEnv local;                  // C2D_ENGINE_SOCKET, C2D_REGISTRY_*, C2D_VOLUMES_DIR
  std::string base_domain = "localhost";  // C2D_BASE_DOMAIN
  // How long a new database server may take to accept connections.
  std::chrono::milliseconds ready_timeout{120'000};  // C2D_DB_READY_TIMEOUT
  std::optional<crypto::MasterKeys> master_keys;     // C2D_MASTER_KEY
  // How often the leader checks that every database's server runs.
  std::chrono::milliseconds reconcile_interval{2000};  // C2D_RECONCILE_INTERVAL
  // First restart delay of a server that exited; it doubles with each exit
  // within a minute of its start, up to 5 min (as for app instances).
  std::chrono::milliseconds restart_backoff{1000};  // C2D_RESTART_BACKOFF_BASE
  // How long a rotation waits for the linked services' new releases.
  std::chrono::milliseconds rotation_timeout{900'000};  // C2D_ROTATION_TIMEOUT
  // The deployer, which redeploys linked services when credentials rotate;
  // without it a linked database cannot rotate.
  std::string deployer_addr;  // C2D_DEPLOYER_ADDR
  // The DNS service, which publishes each database's name; empty = none.
  std::string dns_addr;  // C2D_DNS_ADDR
  // The local object store of backups (one file per backup).
  std::string backup_dir;  // C2D_BACKUP_DIR, default $TMPDIR/c2d-backups

  // <engine><id>.internal.<base domain> (DESIGN point 12), lower case.
  std::string Host(const std::string& engine, const std::string& database_id) const;

  static absl::StatusOr<Config> FromEnv();
};

// What a plan gives a database (DESIGN point 19).
struct Plan {
  const char* name;
  int64_t memory_bytes;
  int64_t storage_bytes;  // recorded; enforced by volume providers that size volumes
  int max_connections;
  const char* shared_buffers;
};

// InvalidArgument naming the plans there are when `name` is none of them.
absl::StatusOr<Plan> FindPlan(const std::string& name);
// Each login role's CONNECTION LIMIT: all of the server's connections but a
// few kept for dbprov's own (backups, rotation) and the superuser.
int RoleConnectionLimit(const Plan& plan);

// An engine dbprov runs: its image in the platform's registry and defaults.
struct EngineSpec {
  v1::DatabaseEngine engine;
  const char* name;     // "postgres"
  const char* version;  // the one version offered, e.g. "15"
  const char* repository;
  const char* tag;
  int port;
  const char* data_path;  // where its volume is mounted
};

// InvalidArgument for an engine c2d does not run (yet).
absl::StatusOr<EngineSpec> FindEngine(v1::DatabaseEngine engine);

}  // namespace c2d::dbprov
