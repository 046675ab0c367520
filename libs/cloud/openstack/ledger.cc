#include "libs/cloud/openstack/ledger.h"

#include <algorithm>

#include "absl/time/clock.h"

namespace c2d::cloud::openstack {
namespace {

constexpr pg::Statement kRecord{"cloud_record", R"sql(
  INSERT INTO cloud_resources (provider, kind, name, owner) VALUES ($1, $2, $3, $4)
  ON CONFLICT (provider, kind, name) DO UPDATE SET kind = EXCLUDED.kind
  RETURNING coalesce(cloud_id, ''))sql"};
constexpr pg::Statement kBind{"cloud_bind", R"sql(
  UPDATE cloud_resources SET cloud_id = $4 WHERE provider = $1 AND kind = $2 AND name = $3)sql"};
constexpr pg::Statement kForget{"cloud_forget", R"sql(
  DELETE FROM cloud_resources WHERE provider = $1 AND kind = $2 AND name = $3)sql"};
constexpr pg::Statement kOwned{"cloud_owned", R"sql(
  SELECT kind, name, owner, coalesce(cloud_id, ''), extract(epoch FROM recorded_at)::float8
  FROM cloud_resources WHERE provider = $1 AND owner = $2 ORDER BY recorded_at, kind, name)sql"};
constexpr pg::Statement kAll{"cloud_all", R"sql(
  SELECT kind, name, owner, coalesce(cloud_id, ''), extract(epoch FROM recorded_at)::float8
  FROM cloud_resources WHERE provider = $1 ORDER BY recorded_at, kind, name)sql"};

constexpr pg::Statement kLock{"cloud_lock", R"sql(
  SELECT pg_advisory_xact_lock(hashtext('c2d.cloud:' || $1 || ':' || $2)))sql"};

std::vector<Resource> Rows(const pqxx::result& r) {
  std::vector<Resource> out;
  for (const auto& row : r) {
    out.push_back(
        {.kind = row[0].as<std::string>(),
         .name = row[1].as<std::string>(),
         .owner = row[2].as<std::string>(),
         .cloud_id = row[3].as<std::string>(),
         .recorded_at = absl::FromUnixMicros(static_cast<int64_t>(row[4].as<double>() * 1e6))});
  }
  return out;
}

}  // namespace

absl::StatusOr<std::string> MemoryLedger::Record(const std::string& kind, const std::string& name,
                                                 const std::string& owner) {
  absl::MutexLock lock(&mu_);
  for (const Resource& r : rows_) {
    if (r.kind == kind && r.name == name) return r.cloud_id;
  }
  rows_.push_back({.kind = kind, .name = name, .owner = owner, .recorded_at = absl::Now()});
  return std::string();
}

absl::Status MemoryLedger::Bind(const std::string& kind, const std::string& name,
                                const std::string& cloud_id) {
  absl::MutexLock lock(&mu_);
  for (Resource& r : rows_) {
    if (r.kind == kind && r.name == name) r.cloud_id = cloud_id;
  }
  return absl::OkStatus();
}

absl::Status MemoryLedger::Forget(const std::string& kind, const std::string& name) {
  absl::MutexLock lock(&mu_);
  std::erase_if(rows_, [&](const Resource& r) { return r.kind == kind && r.name == name; });
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Resource>> MemoryLedger::Owned(const std::string& owner) {
  absl::MutexLock lock(&mu_);
  std::vector<Resource> out;
  std::copy_if(rows_.begin(), rows_.end(), std::back_inserter(out),
               [&](const Resource& r) { return r.owner == owner; });
  return out;
}

absl::StatusOr<std::vector<Resource>> MemoryLedger::All() {
  absl::MutexLock lock(&mu_);
  return rows_;
}

absl::Status MemoryLedger::Exclusive(const std::string&, const std::function<absl::Status()>& fn) {
  absl::MutexLock lock(&exclusive_mu_);
  return fn();
}

absl::Status PgLedger::Exclusive(const std::string& key, const std::function<absl::Status()>& fn) {
  return pool_.Transact("lock a cloud resource", [&](pg::Tx& tx) -> absl::Status {
    tx.Exec(kLock, provider_, key);
    return fn();
  });
}

absl::StatusOr<std::string> PgLedger::Record(const std::string& kind, const std::string& name,
                                             const std::string& owner) {
  return pool_.Read("record a cloud resource", [&](pg::Tx& tx) -> absl::StatusOr<std::string> {
    return tx.Exec(kRecord, provider_, kind, name, owner)[0][0].as<std::string>();
  });
}

absl::Status PgLedger::Bind(const std::string& kind, const std::string& name,
                            const std::string& cloud_id) {
  return pool_.Read("bind a cloud resource", [&](pg::Tx& tx) -> absl::Status {
    tx.Exec(kBind, provider_, kind, name, cloud_id);
    return absl::OkStatus();
  });
}

absl::Status PgLedger::Forget(const std::string& kind, const std::string& name) {
  return pool_.Read("forget a cloud resource", [&](pg::Tx& tx) -> absl::Status {
    tx.Exec(kForget, provider_, kind, name);
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<Resource>> PgLedger::Owned(const std::string& owner) {
  return pool_.Read("list cloud resources",
                    [&](pg::Tx& tx) -> absl::StatusOr<std::vector<Resource>> {
                      return Rows(tx.Exec(kOwned, provider_, owner));
                    });
}

absl::StatusOr<std::vector<Resource>> PgLedger::All() {
  return pool_.Read("list cloud resources",
                    [&](pg::Tx& tx) -> absl::StatusOr<std::vector<Resource>> {
                      return Rows(tx.Exec(kAll, provider_));
                    });
}

}  // namespace c2d::cloud::openstack
