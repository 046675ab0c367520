#include "services/dbprov/config.h"

#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "libs/common/env.h"
#include "libs/common/status.h"

namespace c2d::dbprov {
namespace {

using std::chrono::milliseconds;

constexpr Plan kPlans[] = {
    {"small", int64_t{256} << 20, int64_t{1} << 30, 50, "64MB"},
    {"medium", int64_t{1} << 30, int64_t{10} << 30, 100, "256MB"},
    {"large", int64_t{4} << 30, int64_t{50} << 30, 200, "1GB"},
};

// Connections kept out of the login roles' limits.
constexpr int kReservedConnections = 5;

}  // namespace

std::string Config::Host(const std::string& engine, const std::string& database_id) const {
  return absl::AsciiStrToLower(absl::StrCat(engine, database_id, ".internal.", base_domain));
}

absl::StatusOr<Config> Config::FromEnv() {
  Config c;
  C2D_ASSIGN_OR_RETURN(c.local, cloud::LocalEnv::FromEnv());
  c.base_domain = env::GetString("C2D_BASE_DOMAIN", c.base_domain);
  C2D_ASSIGN_OR_RETURN(c.ready_timeout,
                       env::GetDuration("C2D_DB_READY_TIMEOUT", c.ready_timeout,
                                        milliseconds(5'000), std::chrono::minutes(30)));
  C2D_ASSIGN_OR_RETURN(c.reconcile_interval,
                       env::GetDuration("C2D_RECONCILE_INTERVAL", c.reconcile_interval,
                                        milliseconds(200), std::chrono::minutes(5)));
  C2D_ASSIGN_OR_RETURN(c.restart_backoff,
                       env::GetDuration("C2D_RESTART_BACKOFF_BASE", c.restart_backoff,
                                        milliseconds(10), std::chrono::minutes(5)));
  C2D_ASSIGN_OR_RETURN(c.rotation_timeout,
                       env::GetDuration("C2D_ROTATION_TIMEOUT", c.rotation_timeout,
                                        milliseconds(10'000), std::chrono::hours(6)));
  c.deployer_addr = env::GetString("C2D_DEPLOYER_ADDR", "");
  c.dns_addr = env::GetString("C2D_DNS_ADDR", "");
  c.backup_dir = env::GetString("C2D_BACKUP_DIR",
                                (std::filesystem::temp_directory_path() / "c2d-backups").string());
  C2D_ASSIGN_OR_RETURN(crypto::MasterKeys keys, crypto::MasterKeys::FromEnv());
  c.master_keys = std::move(keys);
  return c;
}

absl::StatusOr<Plan> FindPlan(const std::string& name) {
  std::string names;
  for (const Plan& p : kPlans) {
    if (name == p.name) return p;
    absl::StrAppend(&names, names.empty() ? "" : ", ", p.name);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("plan \"", name, "\" does not exist; the plans are ", names));
}

int RoleConnectionLimit(const Plan& plan) { return plan.max_connections - kReservedConnections; }

absl::StatusOr<EngineSpec> FindEngine(v1::DatabaseEngine engine) {
  switch (engine) {
    case v1::DATABASE_ENGINE_POSTGRES:
      return EngineSpec{engine, "postgres",         "15", "c2d/stacks/postgres", "15",
                        5432,   "/var/lib/c2d/data"};
    case v1::DATABASE_ENGINE_MARIADB:
      return EngineSpec{engine, "mariadb",          "10.11", "c2d/stacks/mariadb", "10.11",
                        3306,   "/var/lib/c2d/data"};
    case v1::DATABASE_ENGINE_REDIS:
      return EngineSpec{engine, "redis", "7", "c2d/stacks/redis", "7", 6379, "/var/lib/c2d/data"};
    default:
      return absl::InvalidArgumentError("engine is required (postgres, mariadb or redis)");
  }
}

}  // namespace c2d::dbprov
