// dbprov's scheduled backups, retention and the final backup of a delete.

#include <cmath>
#include <optional>

#include "services/dbprov/schedule.h"
#include "tests/integration/dbprov/dbprov_fixture.h"

namespace c2d {
namespace {

// The fixture and its helpers (Postgres, Scalar, Podman, WaitBackup, …).
using namespace testing;

TEST_CASE("scheduled backups start when due, once, and retention keeps the newest per day",
          "[dbprov]") {
  DbprovFixture f;
  v1::CreateDatabaseRequest r = Postgres("sched");
  r.set_backup_schedule("0  3 * * *");  // stored with single spaces
  r.set_retention_daily(1);
  r.set_retention_weekly(0);
  v1::Database d;
  REQUIRE(f.Create(r, &d).ok());
  CHECK(d.backup_schedule() == "0 3 * * *");
  d = f.WaitState(d.id(), v1::DATABASE_STATE_AVAILABLE);
  dbprov::BackupScheduler scheduler(*f.pool_, *f.store_);
  const std::string match = absl::StrCat(" WHERE id = '", d.id(), "'");
  const std::string where = " FROM databases" + match;

  // First pass: the next time is set (the next 03:00 UTC), nothing is backed up.
  CHECK(scheduler.RunOnce() == 0);
  CHECK(f.db_.Scalar("SELECT to_char(next_backup_at AT TIME ZONE 'UTC', 'HH24:MI:SS')" + where) ==
        "03:00:00");
  CHECK(
      f.db_.Scalar("SELECT next_backup_at > now() AND next_backup_at <= now() + interval '1 day'" +
                   where) == "t");
  CHECK(f.db_.Count("SELECT count(*) FROM backups WHERE database_id = '" + d.id() + "'") == 0);

  // Older backups: two scheduled ones (pruned), a manual one (kept).
  const std::string old1 = FakeBackup(f, d.id(), "scheduled", 2);
  const std::string old2 = FakeBackup(f, d.id(), "scheduled", 3);
  const std::string manual = FakeBackup(f, d.id(), "manual", 9);

  // Due: one backup, and the time moves on, so the next pass makes none.
  f.db_.Exec("UPDATE databases SET next_backup_at = now() - interval '1 hour'" + match);
  CHECK(scheduler.RunOnce() == 1);
  CHECK(scheduler.RunOnce() == 0);
  const std::string made = f.db_.Scalar(
      "SELECT id FROM backups WHERE kind = 'scheduled' AND state IN ('pending', 'running') AND "
      "database_id = '" +
      d.id() + "'");
  CHECK(WaitBackup(f, made).state() == v1::BACKUP_STATE_SUCCEEDED);
  CHECK(f.db_.Scalar("SELECT next_backup_at > now()" + where) == "t");

  // Retention ran after it: of the scheduled ones only today's is left.
  WaitFor(30s, [&] {
    return f.db_.Count("SELECT count(*) FROM backups WHERE database_id = '" + d.id() + "'") == 2;
  });
  CHECK(f.db_.Scalar("SELECT string_agg(id, ',' ORDER BY id) FROM backups WHERE database_id = '" +
                     d.id() + "'") == std::min(made, manual) + "," + std::max(made, manual));
  CHECK_FALSE(Stored(f, d.id(), old1));
  CHECK_FALSE(Stored(f, d.id(), old2));
  CHECK(Stored(f, d.id(), manual));
  CHECK(Stored(f, d.id(), made));

  // Its newest verified backup, as every replica reports it at a scrape.
  dbprov::BackupFreshnessMetric freshness(*f.pool_);
  auto newest = [&]() -> std::optional<double> {
    for (const auto& family : freshness.Collect()) {
      if (family.name != "c2d_database_last_verified_backup_timestamp_seconds") continue;
      for (const auto& m : family.metric) {
        if (m.label.size() == 1 && m.label[0].value == d.id()) return m.gauge.value;
      }
    }
    return std::nullopt;
  };
  const double verified = std::stod(f.db_.Scalar(
      "SELECT extract(epoch FROM max(verified_at)) FROM backups WHERE id = '" + made + "'"));
  REQUIRE(newest().has_value());
  CHECK(std::abs(*newest() - verified) < 1);
  CHECK(std::abs(*newest() - static_cast<double>(absl::ToUnixSeconds(absl::Now()))) < 300);

  // No schedule: never due, and no freshness to watch.
  f.db_.Exec(
      "UPDATE databases SET backup_schedule = '', next_backup_at = now() - interval '1 day'" +
      match);
  CHECK(scheduler.RunOnce() == 0);
  CHECK_FALSE(newest().has_value());
}

TEST_CASE("deleting a database takes a final backup first, and without it nothing is removed",
          "[dbprov]") {
  DbprovFixture f;
  v1::Database d;
  REQUIRE(f.Create(Postgres("last"), &d).ok());
  d = f.WaitState(d.id(), v1::DATABASE_STATE_AVAILABLE);
  {
    pqxx::connection c(f.RoleUrl(d, "a", f.Password(d.id(), "a")));
    pqxx::nontransaction w(c);
    w.exec0("CREATE TABLE kept (n integer)");
    w.exec0("INSERT INTO kept SELECT generate_series(1, 100)");
  }

  // The final backup cannot be taken (the server is stopped and nothing
  // restarts it here): the database is not removed and serves again.
  const std::string ref = f.Row(d.id()).provider_ref;
  REQUIRE(f.provider_->Stop(ref, 2s).ok());
  v1::DeleteDatabaseRequest del;
  del.set_id(d.id());
  v1::Database deleting;
  REQUIRE(f.service_->DeleteDatabase(nullptr, &del, &deleting).ok());
  CHECK(deleting.state() == v1::DATABASE_STATE_DELETING);
  REQUIRE(!deleting.final_backup_id().empty());
  CHECK(WaitBackup(f, deleting.final_backup_id()).state() == v1::BACKUP_STATE_FAILED);
  v1::Database back = f.WaitState(d.id(), v1::DATABASE_STATE_AVAILABLE);
  CHECK(back.failure_reason().find("not deleted: its final backup " + deleting.final_backup_id() +
                                   " failed") != std::string::npos);
  auto servers = f.provider_->List({{dbprov::kDatabaseLabel, d.id()}});
  REQUIRE(servers.ok());
  CHECK(servers->size() == 1);

  // With its server up, the final backup is verified, then the server goes;
  // the backup stays.
  REQUIRE(f.servers_->EnsureServer(f.Row(d.id()), f.Password(d.id(), "admin")).ok());
  REQUIRE(f.service_->DeleteDatabase(nullptr, &del, &deleting).ok());
  const v1::Backup final_backup = WaitBackup(f, deleting.final_backup_id());
  CHECK(final_backup.state() == v1::BACKUP_STATE_SUCCEEDED);
  CHECK(final_backup.kind() == v1::BACKUP_KIND_FINAL);
  CHECK(final_backup.verification() == "1 table, 100 rows: as at dump time");
  f.WaitState(d.id(), v1::DATABASE_STATE_DELETED);
  servers = f.provider_->List({{dbprov::kDatabaseLabel, d.id()}});
  REQUIRE(servers.ok());
  CHECK(servers->empty());
  CHECK(Stored(f, d.id(), final_backup.id()));

  // Asked to skip it: no backup, deleted at once.
  v1::Database quick;
  REQUIRE(f.Create(Postgres("quick"), &quick).ok());
  quick = f.WaitState(quick.id(), v1::DATABASE_STATE_AVAILABLE);
  del.set_id(quick.id());
  del.set_skip_final_backup(true);
  REQUIRE(f.service_->DeleteDatabase(nullptr, &del, &deleting).ok());
  CHECK(deleting.final_backup_id().empty());
  f.WaitState(quick.id(), v1::DATABASE_STATE_DELETED);
  CHECK(f.db_.Count("SELECT count(*) FROM backups WHERE database_id = '" + quick.id() + "'") == 0);
}

}  // namespace
}  // namespace c2d
