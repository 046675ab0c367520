// dbprov against the real container engine and registry that tools/test
// starts: a PostgreSQL database made from the postgres stack image, used
// through its login role, kept across a server restart, and deleted; and
// requests that must change nothing.

#include <catch2/catch.hpp>
#include <csignal>
#include <filesystem>
#include <functional>
#include <pqxx/pqxx>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "libs/common/command.h"
#include "libs/common/ids.h"
#include "libs/jobs/worker.h"
#include "services/dbprov/backup_job.h"
#include "services/dbprov/database_service.h"
#include "services/dbprov/provision_job.h"
#include "services/dbprov/reconciler.h"
#include "services/dbprov/rotation.h"
#include "services/dbprov/schedule.h"
#include "tests/support/pg_fixture.h"
#include "tests/support/subprocess.h"

namespace c2d {
namespace {

using namespace std::chrono_literals;
using testing::RequireEnv;
using testing::TestDatabase;
using testing::WaitFor;
namespace fs = std::filesystem;

class DbprovFixture {
 public:
  // `in_process`: a job worker of its own runs dbprov's jobs; otherwise a
  // c2d-dbprov process does (ProcessEnv).
  explicit DbprovFixture(bool in_process = true) : pool_(db_.NewPool()) {
    cloud::LocalEnv& l = config_.local;
    l.registry = {.url = RequireEnv("C2D_TEST_REGISTRY_URL"),
                  .username = RequireEnv("C2D_TEST_REGISTRY_USER"),
                  .password = RequireEnv("C2D_TEST_REGISTRY_PASSWORD")};
    l.registry_host = cloud::RegistryHost(l.registry.url);
    l.local.engine_socket = RequireEnv("C2D_TEST_ENGINE_SOCKET");
    l.local.registry = {l.registry.username, l.registry.password, l.registry_host};
    l.local.volumes_dir = (fs::path(RequireEnv("C2D_TEST_TMP")) / "volumes").string();
    config_.ready_timeout = 60s;
    master_key_ = crypto::MasterKeys::Generate("mk1");
    config_.master_keys = *crypto::MasterKeys::Parse(master_key_);
    provider_ = std::make_unique<cloud::LocalProvider>(l.local);
    config_.backup_dir =
        (fs::path(RequireEnv("C2D_TEST_TMP")) / ("backups-" + ids::New("t"))).string();
    store_ = std::make_unique<objstore::LocalObjectStore>(config_.backup_dir);
    registry_ = std::make_unique<oci::Registry>(l.registry);
    service_ = std::make_unique<dbprov::DatabaseServiceImpl>(*pool_, config_, *provider_, *store_);
    servers_ = std::make_unique<dbprov::Servers>(*pool_, config_, *provider_, *registry_);
    project_id_ = ids::New("prj");
    db_.Exec(absl::StrCat("INSERT INTO projects (id, name) VALUES ('", project_id_, "', 'p",
                          absl::AsciiStrToLower(project_id_.substr(20)), "')"));
    worker_ = std::make_unique<jobs::Worker>(
        *pool_, db_.connect(),
        jobs::WorkerOptions{.queue = "dbprov", .poll_interval = 200ms, .backoff_base = 200ms});
    servers_->RegisterJobs(*worker_);
    backups_ = std::make_unique<dbprov::Backups>(*pool_, config_, *servers_, *provider_, *store_);
    backups_->RegisterJobs(*worker_);
    rotations_ = std::make_unique<dbprov::Rotations>(*pool_, config_, *servers_, nullptr);
    rotations_->RegisterJobs(*worker_);
    if (in_process) REQUIRE(worker_->Start().ok());
  }
  ~DbprovFixture() { worker_->Shutdown(); }

  std::map<std::string, std::string> ProcessEnv() const {
    const cloud::LocalEnv& l = config_.local;
    return {{"C2D_DATABASE_URL", db_.url()},
            {"C2D_GRPC_ADDR", "127.0.0.1:0"},
            {"C2D_METRICS_ADDR", "127.0.0.1:0"},
            {"C2D_ENGINE_SOCKET", l.local.engine_socket},
            {"C2D_REGISTRY_URL", l.registry.url},
            {"C2D_REGISTRY_USER", l.registry.username},
            {"C2D_REGISTRY_PASSWORD", l.registry.password},
            {"C2D_VOLUMES_DIR", l.local.volumes_dir},
            {"C2D_BACKUP_DIR", config_.backup_dir},
            {"C2D_MASTER_KEY", master_key_},
            {"C2D_RECONCILE_INTERVAL", "300ms"},
            {"C2D_JOB_LEASE", "3s"},
            {"C2D_JOB_POLL_INTERVAL", "200ms"},
            {"C2D_SHUTDOWN_GRACE", "2s"}};
  }

  grpc::Status Create(v1::CreateDatabaseRequest r, v1::Database* out) {
    if (r.project_id().empty()) r.set_project_id(project_id_);
    return service_->CreateDatabase(nullptr, &r, out);
  }
  v1::Database Get(const std::string& id) {
    v1::GetDatabaseRequest r;
    r.set_id(id);
    v1::Database d;
    REQUIRE(service_->GetDatabase(nullptr, &r, &d).ok());
    return d;
  }
  v1::Database WaitState(const std::string& id, v1::DatabaseState state) {
    v1::Database d;
    WaitFor(90s, [&] {
      d = Get(id);
      return d.state() == state || d.state() == v1::DATABASE_STATE_FAILED;
    });
    INFO(d.failure_reason());
    REQUIRE(v1::DatabaseState_Name(d.state()) == v1::DatabaseState_Name(state));
    return d;
  }
  dbprov::DatabaseRow Row(const std::string& id) {
    auto row = pool_->Read("row", [&](pg::Tx& tx) { return dbprov::GetDatabase(tx, id); });
    REQUIRE(row.ok());
    return *row;
  }
  std::string Password(const std::string& id, const char* role) {
    dbprov::DatabaseRow row = Row(id);
    const crypto::Sealed& s = std::string(role) == "a"   ? row.password_a
                              : std::string(role) == "b" ? row.password_b
                                                         : row.admin_password;
    auto p = config_.master_keys->Open(s, dbprov::PasswordAad(id, role));
    REQUIRE(p.ok());
    return *p;
  }
  // The server's published address (host:port).
  std::string Address(const std::string& id) {
    auto found = provider_->List({{dbprov::kDatabaseLabel, id}});
    REQUIRE(found.ok());
    REQUIRE(found->size() == 1);
    return found->front().address;
  }
  std::string RoleUrl(const v1::Database& d, const char* role, const std::string& password) {
    return absl::StrCat("postgresql://", dbprov::RoleBase(d.name()), "_", role, ":", password, "@",
                        Address(d.id()), "/", d.name(), "?connect_timeout=5");
  }

  TestDatabase db_;
  std::unique_ptr<pg::Pool> pool_;
  dbprov::Config config_;
  std::unique_ptr<cloud::LocalProvider> provider_;
  std::unique_ptr<oci::Registry> registry_;
  std::unique_ptr<objstore::LocalObjectStore> store_;
  std::unique_ptr<dbprov::DatabaseServiceImpl> service_;
  std::unique_ptr<dbprov::Servers> servers_;
  std::unique_ptr<dbprov::Backups> backups_;
  std::unique_ptr<dbprov::Rotations> rotations_;
  std::unique_ptr<jobs::Worker> worker_;
  std::string project_id_;
  std::string master_key_;
};

v1::CreateDatabaseRequest Postgres(const std::string& name) {
  v1::CreateDatabaseRequest r;
  r.set_name(name);
  r.set_engine(v1::DATABASE_ENGINE_POSTGRES);
  return r;
}

std::string Scalar(const std::string& url, const std::string& sql) {
  pqxx::connection c(url);
  pqxx::nontransaction w(c);
  return w.exec1(sql)[0].as<std::string>();
}

TEST_CASE("a PostgreSQL database is provisioned, used, kept across a restart and deleted",
          "[dbprov]") {
  DbprovFixture f;
  v1::Database d;
  REQUIRE(f.Create(Postgres("orders"), &d).ok());
  CHECK(d.state() == v1::DATABASE_STATE_PROVISIONING);
  CHECK(d.version() == "15");
  CHECK(d.plan() == "small");
  CHECK(d.backup_schedule() == "0 3 * * *");
  d = f.WaitState(d.id(), v1::DATABASE_STATE_AVAILABLE);
  CHECK(d.port() == 5432);
  CHECK(d.host() == absl::AsciiStrToLower(absl::StrCat("postgres", d.id(), ".internal.localhost")));
  CHECK(d.active_role() == "a");

  // The active login role owns the database's objects (through the group)
  // within its connection limit; the idle one cannot log in, nor can a
  // wrong password.
  const std::string a = f.Password(d.id(), "a");
  const std::string url_a = f.RoleUrl(d, "a", a);
  {
    pqxx::connection c(url_a);
    pqxx::nontransaction w(c);
    w.exec0("CREATE TABLE items (n integer)");
    w.exec0("INSERT INTO items VALUES (42)");
    CHECK(w.exec1("SELECT tableowner FROM pg_tables WHERE tablename = 'items'")[0]
              .as<std::string>() == "orders_owner");
  }
  CHECK_THROWS(Scalar(f.RoleUrl(d, "b", f.Password(d.id(), "b")), "SELECT 1"));
  CHECK_THROWS(Scalar(f.RoleUrl(d, "a", "wrong"), "SELECT 1"));
  const std::string admin =
      dbprov::Servers::AdminUrl(f.Address(d.id()), f.Password(d.id(), "admin"));
  CHECK(Scalar(admin, "SELECT rolconnlimit FROM pg_roles WHERE rolname = 'orders_a'") == "45");
  CHECK(Scalar(admin, "SHOW max_connections") == "50");

  // The server stopped (and its process gone): made to run again, on its
  // data, at the same private address (linked apps name it in /etc/hosts).
  const std::string ref = f.Row(d.id()).provider_ref;
  auto before = f.provider_->Inspect(ref);
  REQUIRE(before.ok());
  CHECK(before->private_address.rfind(".") != std::string::npos);
  REQUIRE(f.provider_->Stop(ref, 2s).ok());
  auto again = f.servers_->EnsureServer(f.Row(d.id()), f.Password(d.id(), "admin"));
  REQUIRE(again.ok());
  CHECK(again->ref == ref);
  CHECK(again->private_address == before->private_address);
  auto engine = engine::Engine(testing::RequireEnv("C2D_TEST_ENGINE_SOCKET")).InspectContainer(ref);
  REQUIRE(engine.ok());
  CHECK(engine->addresses.at(cloud::ProjectNetwork(d.project_id())) == before->private_address);
  REQUIRE(f.servers_
              ->WaitReady(v1::DATABASE_ENGINE_POSTGRES, again->address, f.Password(d.id(), "admin"),
                          nullptr)
              .ok());
  CHECK(Scalar(f.RoleUrl(d, "a", a), "SELECT n FROM items") == "42");
  // Running the set-up again changes nothing that works.
  REQUIRE(f.servers_->EnsureRoles(again->address, f.Row(d.id()), f.Password(d.id(), "admin")).ok());
  CHECK(Scalar(f.RoleUrl(d, "a", a), "SELECT n FROM items") == "42");

  // Deleted: the server and its data go, the name is free again.
  v1::DeleteDatabaseRequest del;
  del.set_id(d.id());
  v1::Database deleting;
  REQUIRE(f.service_->DeleteDatabase(nullptr, &del, &deleting).ok());
  CHECK(deleting.state() == v1::DATABASE_STATE_DELETING);
  f.WaitState(d.id(), v1::DATABASE_STATE_DELETED);
  auto left = f.provider_->List({{dbprov::kDatabaseLabel, d.id()}});
  REQUIRE(left.ok());
  CHECK(left->empty());
  CHECK_FALSE(fs::exists(fs::path(f.config_.local.local.volumes_dir) / dbprov::ServerName(d.id())));
  v1::Database reused;
  CHECK(f.Create(Postgres("orders"), &reused).ok());
  CHECK(f.service_->DeleteDatabase(nullptr, &del, &deleting).error_code() ==
        grpc::StatusCode::NOT_FOUND);
}

// `podman --remote` on the test engine; its output.
std::string Podman(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"podman", "--remote", "--url",
                                   "unix://" + RequireEnv("C2D_TEST_ENGINE_SOCKET")};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = RunCommand({.argv = argv, .timeout = 60s});
  REQUIRE(r.ok());
  INFO(r->output);
  REQUIRE(r->exit_code == 0);
  return r->output;
}

TEST_CASE("the leader brings back a database server that died or was lost, with its data",
          "[dbprov]") {
  DbprovFixture f;
  f.config_.restart_backoff = 300ms;
  dbprov::Reconciler reconciler(*f.pool_, f.config_, *f.servers_, *f.provider_);
  v1::Database d;
  REQUIRE(f.Create(Postgres("ledger"), &d).ok());
  d = f.WaitState(d.id(), v1::DATABASE_STATE_AVAILABLE);
  const std::string a = f.Password(d.id(), "a");
  {
    pqxx::connection c(f.RoleUrl(d, "a", a));
    pqxx::nontransaction w(c);
    w.exec0("CREATE TABLE t AS SELECT 7 AS n");
  }
  auto server = [&] {
    auto found = f.provider_->List({{dbprov::kDatabaseLabel, d.id()}});
    REQUIRE(found.ok());
    REQUIRE(found->size() == 1);
    return found->front();
  };
  const cloud::Instance first = server();
  reconciler.RunOnce();  // all is well: nothing changes
  CHECK(server().started_at == first.started_at);

  // Killed (SIGKILL): started again after the backoff, on its data.
  Podman({"kill", "--signal", "KILL", first.ref});
  CHECK(WaitFor(30s, [&] {
    reconciler.RunOnce();
    return server().state == cloud::InstanceState::kRunning;
  }));
  CHECK(server().ref == first.ref);
  CHECK(server().started_at != first.started_at);
  CHECK(WaitFor(30s, [&] {
    try {
      return Scalar(f.RoleUrl(d, "a", a), "SELECT n FROM t") == "7";
    } catch (const std::exception&) {
      return false;
    }
  }));

  // Removed altogether: made again on its volume, at its address.
  Podman({"rm", "--force", "--time", "0", first.ref});
  CHECK(WaitFor(60s, [&] {
    reconciler.RunOnce();
    auto found = f.provider_->List({{dbprov::kDatabaseLabel, d.id()}});
    return found.ok() && found->size() == 1 &&
           found->front().state == cloud::InstanceState::kRunning;
  }));
  const cloud::Instance remade = server();
  CHECK(remade.ref != first.ref);
  CHECK(remade.private_address == first.private_address);
  CHECK(WaitFor(60s, [&] {
    try {
      return Scalar(f.RoleUrl(d, "a", a), "SELECT n FROM t") == "7";
    } catch (const std::exception&) {
      return false;
    }
  }));
}

TEST_CASE("bad database requests are refused with the field at fault and change nothing",
          "[dbprov]") {
  DbprovFixture f;
  auto refused = [&](v1::CreateDatabaseRequest r, grpc::StatusCode code, const std::string& text) {
    v1::Database d;
    grpc::Status s = f.Create(std::move(r), &d);
    INFO(s.error_message());
    CHECK(s.error_code() == code);
    CHECK(s.error_message().find(text) != std::string::npos);
  };
  v1::CreateDatabaseRequest r = Postgres("Bad_Name");
  refused(r, grpc::StatusCode::INVALID_ARGUMENT, "name");
  r = Postgres("cache");
  r.set_engine(v1::DATABASE_ENGINE_UNSPECIFIED);
  refused(r, grpc::StatusCode::INVALID_ARGUMENT, "engine is required");
  r.set_engine(v1::DATABASE_ENGINE_REDIS);
  r.set_version("6");
  refused(r, grpc::StatusCode::INVALID_ARGUMENT, "must be 7 for redis");
  r = Postgres("big");
  r.set_plan("huge");
  refused(r, grpc::StatusCode::INVALID_ARGUMENT, "the plans are small, medium, large");
  r = Postgres("old");
  r.set_version("9.6");
  refused(r, grpc::StatusCode::INVALID_ARGUMENT, "version");
  r = Postgres("nightly");
  r.set_backup_schedule("every night");
  refused(r, grpc::StatusCode::INVALID_ARGUMENT, "backup_schedule");
  r.set_backup_schedule("0 25 * * *");
  refused(r, grpc::StatusCode::INVALID_ARGUMENT, "the hour field \"25\" has 25, out of 0-23");
  r.set_backup_schedule("0 0 31 4 *");
  refused(r, grpc::StatusCode::INVALID_ARGUMENT, "names no day that exists");
  r = Postgres("keep");
  r.set_retention_daily(400);
  refused(r, grpc::StatusCode::INVALID_ARGUMENT, "retention_daily");
  r = Postgres("elsewhere");
  r.set_project_id(ids::New("prj"));
  refused(r, grpc::StatusCode::NOT_FOUND, "does not exist");
  CHECK(f.db_.Count("SELECT count(*) FROM databases") == 0);
  CHECK(f.db_.Count("SELECT count(*) FROM jobs") == 0);

  // A name taken by a live database of the project.
  f.worker_->Shutdown();  // nothing needs to run for this
  v1::Database first;
  REQUIRE(f.Create(Postgres("main"), &first).ok());
  refused(Postgres("main"), grpc::StatusCode::ALREADY_EXISTS, "already has a database named main");
  CHECK(f.db_.Count("SELECT count(*) FROM databases") == 1);
  CHECK(f.db_.Count("SELECT count(*) FROM jobs") == 1);

  // Another tenant's project id or a malformed id reads nothing.
  v1::GetDatabaseRequest get;
  get.set_id("db_nope");
  v1::Database out;
  CHECK(f.service_->GetDatabase(nullptr, &get, &out).error_code() ==
        grpc::StatusCode::INVALID_ARGUMENT);
  v1::ListDatabasesRequest list;
  list.set_project_id(ids::New("prj"));
  v1::ListDatabasesResponse none;
  REQUIRE(f.service_->ListDatabases(nullptr, &list, &none).ok());
  CHECK(none.databases_size() == 0);
  list.set_project_id(f.project_id_);
  REQUIRE(f.service_->ListDatabases(nullptr, &list, &none).ok());
  CHECK(none.databases_size() == 1);
}

// A succeeded backup row with an object in the store, as if made `days_ago`.
std::string FakeBackup(DbprovFixture& f, const std::string& db, const char* kind, int days_ago) {
  const std::string id = ids::New("bak");
  const std::string key = dbprov::BackupKey(db, id);
  auto w = f.store_->Create(key);
  REQUIRE(w.ok());
  REQUIRE((*w)->Write("dump").ok());
  auto info = (*w)->Commit();
  REQUIRE(info.ok());
  f.db_.Exec(absl::StrCat(
      "INSERT INTO backups (id, database_id, state, kind, object_key, size_bytes, sha256, "
      "created_at, started_at, finished_at, verified_at, verification) VALUES ('",
      id, "', '", db, "', 'succeeded', '", kind, "', '", key, "', 4, '", info->sha256,
      "', now() - interval '", days_ago, " days', now(), now(), now(), 'fake')"));
  return id;
}

bool Stored(DbprovFixture& f, const std::string& db, const std::string& backup) {
  return fs::exists(fs::path(f.config_.backup_dir) / dbprov::BackupKey(db, backup));
}

v1::Backup WaitBackup(DbprovFixture& f, const std::string& id) {
  v1::Backup b;
  WaitFor(120s, [&] {
    auto got = f.pool_->Read("backup", [&](pg::Tx& tx) { return dbprov::GetBackup(tx, id); });
    REQUIRE(got.ok());
    b = *got;
    return b.state() == v1::BACKUP_STATE_SUCCEEDED || b.state() == v1::BACKUP_STATE_FAILED;
  });
  INFO(b.failure_reason());
  return b;
}

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

  // No schedule: never due.
  f.db_.Exec(
      "UPDATE databases SET backup_schedule = '', next_backup_at = now() - interval '1 day'" +
      match);
  CHECK(scheduler.RunOnce() == 0);
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

TEST_CASE("credentials rotate: the idle role gets a new password, then the old role is disabled",
          "[dbprov]") {
  DbprovFixture f;
  v1::Database d;
  REQUIRE(f.Create(Postgres("turn"), &d).ok());
  d = f.WaitState(d.id(), v1::DATABASE_STATE_AVAILABLE);
  const std::string a = f.Password(d.id(), "a"), b = f.Password(d.id(), "b");
  {
    pqxx::connection c(f.RoleUrl(d, "a", a));
    pqxx::nontransaction w(c);
    w.exec0("CREATE TABLE kept (n integer)");
    w.exec0("INSERT INTO kept VALUES (7)");
  }
  // A session of the old role, open across the rotation.
  pqxx::connection held(f.RoleUrl(d, "a", a));

  v1::RotateCredentialsRequest rotate;
  rotate.set_database_id(d.id());
  v1::Database rotating;
  REQUIRE(f.service_->RotateCredentials(nullptr, &rotate, &rotating).ok());
  CHECK(rotating.state() == v1::DATABASE_STATE_ROTATING);
  CHECK(rotating.retiring_role() == "a");
  // Once is enough: a second request while it runs is refused.
  v1::Database again;
  grpc::Status busy = f.service_->RotateCredentials(nullptr, &rotate, &again);
  CHECK(busy.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
  CHECK_THAT(busy.error_message(), Catch::Contains("is rotating"));

  d = f.WaitState(d.id(), v1::DATABASE_STATE_AVAILABLE);
  CHECK(d.active_role() == "b");
  CHECK(d.retiring_role().empty());
  CHECK(d.failure_reason().empty());
  CHECK(d.has_last_rotated_at());
  // The new role has a new password and sees the same data; the old one
  // can log in with neither its old password nor its new one, and its
  // session is gone.
  const std::string new_b = f.Password(d.id(), "b");
  CHECK(new_b != b);
  CHECK(Scalar(f.RoleUrl(d, "b", new_b), "SELECT n FROM kept") == "7");
  CHECK_THROWS(Scalar(f.RoleUrl(d, "b", b), "SELECT 1"));
  CHECK_THROWS(Scalar(f.RoleUrl(d, "a", a), "SELECT 1"));
  CHECK(f.Password(d.id(), "a") != a);
  CHECK_THROWS(Scalar(f.RoleUrl(d, "a", f.Password(d.id(), "a")), "SELECT 1"));
  CHECK_THROWS([&] {
    pqxx::nontransaction w(held);
    w.exec1("SELECT 1");
  }());
  // Both still own what either made.
  {
    pqxx::connection c(f.RoleUrl(d, "b", new_b));
    pqxx::nontransaction w(c);
    w.exec0("INSERT INTO kept VALUES (8)");
  }

  // And back again, to role a with yet another password.
  REQUIRE(f.service_->RotateCredentials(nullptr, &rotate, &rotating).ok());
  d = f.WaitState(d.id(), v1::DATABASE_STATE_AVAILABLE);
  CHECK(d.active_role() == "a");
  CHECK(Scalar(f.RoleUrl(d, "a", f.Password(d.id(), "a")), "SELECT count(*) FROM kept") == "2");
  CHECK_THROWS(Scalar(f.RoleUrl(d, "b", new_b), "SELECT 1"));

  // Every rotation_days, the leader starts one by itself.
  f.db_.Exec(
      "UPDATE databases SET rotation_days = 1, last_rotated_at = now() - interval '2 days' "
      "WHERE id = '" +
      d.id() + "'");
  CHECK(f.rotations_->StartDue() == 1);
  CHECK(f.rotations_->StartDue() == 0);  // once
  d = f.WaitState(d.id(), v1::DATABASE_STATE_AVAILABLE);
  CHECK(d.active_role() == "b");
  CHECK(f.rotations_->StartDue() == 0);  // rotated just now

  // Bad requests change nothing.
  rotate.set_database_id("db_nope");
  CHECK(f.service_->RotateCredentials(nullptr, &rotate, &again).error_code() ==
        grpc::StatusCode::INVALID_ARGUMENT);
  rotate.set_database_id(ids::New("db"));
  CHECK(f.service_->RotateCredentials(nullptr, &rotate, &again).error_code() ==
        grpc::StatusCode::NOT_FOUND);
}

// A client tool (redis-cli, mariadb) against a database server: exit code
// and output.
CommandResult Client(std::vector<std::string> argv, std::map<std::string, std::string> env) {
  auto r = RunCommand({.argv = std::move(argv), .env = std::move(env), .timeout = 30s});
  REQUIRE(r.ok());
  return *r;
}

std::string Host(const std::string& address) { return address.substr(0, address.rfind(':')); }
std::string Port(const std::string& address) { return address.substr(address.rfind(':') + 1); }

// Runs the engine's client as login role `role` of the database.
struct EngineClient {
  std::function<CommandResult(DbprovFixture&, const v1::Database&, const char* role,
                              const std::string& password, const std::string& command)>
      run;
  // Commands that make 3 items, that remove one and add another, and that
  // list the items.
  std::string fill, change, list;
  std::string three;  // what `list` prints after `fill`
};

CommandResult RedisAs(DbprovFixture& f, const v1::Database& d, const char* role,
                      const std::string& password, const std::string& command) {
  std::vector<std::string> argv = {"redis-cli",
                                   "-h",
                                   Host(f.Address(d.id())),
                                   "-p",
                                   Port(f.Address(d.id())),
                                   "--user",
                                   dbprov::RoleBase(d.name()) + "_" + role,
                                   "--no-auth-warning"};
  for (absl::string_view w : absl::StrSplit(command, ' ')) argv.emplace_back(w);
  CommandResult r = Client(argv, {{"REDISCLI_AUTH", password}});
  // redis-cli exits 0 on a server error: an error reply is a failure.
  if (absl::StrContains(r.output, "ERR") || absl::StrContains(r.output, "WRONGPASS") ||
      absl::StrContains(r.output, "NOPERM")) {
    r.exit_code = 1;
  }
  return r;
}

CommandResult MariadbAs(DbprovFixture& f, const v1::Database& d, const char* role,
                        const std::string& password, const std::string& command) {
  return Client(
      {"mariadb", "--protocol=TCP", "-h", Host(f.Address(d.id())), "-P", Port(f.Address(d.id())),
       "-u", dbprov::RoleBase(d.name()) + "_" + role, "-N", "-B", d.name(), "-e", command},
      {{"MYSQL_PWD", password}});
}

void EngineLifecycle(v1::DatabaseEngine engine, const std::string& name, const EngineClient& c) {
  DbprovFixture f;
  v1::CreateDatabaseRequest r;
  r.set_name(name);
  r.set_engine(engine);
  v1::Database d;
  REQUIRE(f.Create(r, &d).ok());
  d = f.WaitState(d.id(), v1::DATABASE_STATE_AVAILABLE);
  const std::string a = f.Password(d.id(), "a");
  auto as_a = [&](const std::string& cmd) {
    CommandResult out = c.run(f, d, "a", a, cmd);
    INFO(cmd << ": " << out.output);
    REQUIRE(out.exit_code == 0);
    return std::string(absl::StripAsciiWhitespace(out.output));
  };
  as_a(c.fill);
  CHECK(as_a(c.list) == c.three);
  // The idle role cannot log in, nor a wrong password.
  CHECK(c.run(f, d, "b", f.Password(d.id(), "b"), c.list).exit_code != 0);
  CHECK(c.run(f, d, "a", "wrong", c.list).exit_code != 0);

  // A backup, restore-verified; the data changed; restored in place.
  v1::CreateBackupRequest cb;
  cb.set_database_id(d.id());
  v1::Backup b;
  REQUIRE(f.service_->CreateBackup(nullptr, &cb, &b).ok());
  b = WaitBackup(f, b.id());
  REQUIRE(b.state() == v1::BACKUP_STATE_SUCCEEDED);
  CHECK(b.size_bytes() > 0);
  CHECK_THAT(b.verification(), Catch::Contains("3 ") && Catch::Contains("as at dump time"));
  as_a(c.change);
  CHECK(as_a(c.list) != c.three);
  v1::RestoreBackupRequest rb;
  rb.set_backup_id(b.id());
  rb.set_database_id(d.id());
  v1::Database restoring;
  REQUIRE(f.service_->RestoreBackup(nullptr, &rb, &restoring).ok());
  d = f.WaitState(d.id(), v1::DATABASE_STATE_AVAILABLE);
  CHECK(as_a(c.list) == c.three);

  // Killed (SIGKILL): started again on its volume, the data kept.
  std::this_thread::sleep_for(1500ms);  // Redis fsyncs its append-only file each second
  Podman({"kill", "--signal", "KILL", f.Row(d.id()).provider_ref});
  auto again = f.servers_->EnsureServer(f.Row(d.id()), f.Password(d.id(), "admin"));
  REQUIRE(again.ok());
  REQUIRE(f.servers_->WaitReady(engine, again->address, f.Password(d.id(), "admin"), nullptr).ok());
  CHECK(as_a(c.list) == c.three);

  // Rotated: role b with a new password, role a shut out.
  v1::RotateCredentialsRequest rot;
  rot.set_database_id(d.id());
  v1::Database rotating;
  REQUIRE(f.service_->RotateCredentials(nullptr, &rot, &rotating).ok());
  d = f.WaitState(d.id(), v1::DATABASE_STATE_AVAILABLE);
  CHECK(d.active_role() == "b");
  CommandResult as_b = c.run(f, d, "b", f.Password(d.id(), "b"), c.list);
  INFO(as_b.output);
  CHECK(as_b.exit_code == 0);
  CHECK(absl::StripAsciiWhitespace(as_b.output) == c.three);
  CHECK(c.run(f, d, "a", a, c.list).exit_code != 0);
  CHECK(c.run(f, d, "a", f.Password(d.id(), "a"), c.list).exit_code != 0);
}

TEST_CASE("a Redis database: used by its ACL user, backed up, restored, killed, rotated",
          "[dbprov]") {
  EngineLifecycle(v1::DATABASE_ENGINE_REDIS, "cache",
                  {.run = RedisAs,
                   .fill = "MSET k1 one k2 two k3 three",
                   .change = "DEL k1",
                   .list = "DBSIZE",
                   .three = "3"});
}

TEST_CASE("a MariaDB database: used by its user, backed up, restored, killed, rotated",
          "[dbprov]") {
  EngineLifecycle(v1::DATABASE_ENGINE_MARIADB, "shop",
                  {.run = MariadbAs,
                   .fill = "CREATE TABLE items (n INT PRIMARY KEY); "
                           "INSERT INTO items VALUES (1), (2), (3)",
                   .change = "DELETE FROM items WHERE n = 1; INSERT INTO items VALUES (4)",
                   .list = "SELECT GROUP_CONCAT(n ORDER BY n) FROM items",
                   .three = "1,2,3"});
}

TEST_CASE("a Redis user cannot administer its server", "[dbprov]") {
  DbprovFixture f;
  v1::CreateDatabaseRequest r;
  r.set_name("locked");
  r.set_engine(v1::DATABASE_ENGINE_REDIS);
  v1::Database d;
  REQUIRE(f.Create(r, &d).ok());
  d = f.WaitState(d.id(), v1::DATABASE_STATE_AVAILABLE);
  const std::string a = f.Password(d.id(), "a");
  for (const char* cmd : {"CONFIG SET dir /tmp", "ACL SETUSER x on", "SHUTDOWN",
                          "REPLICAOF 127.0.0.1 1", "BGSAVE", "CLIENT KILL TYPE normal"}) {
    INFO(cmd);
    CommandResult out = RedisAs(f, d, "a", a, cmd);
    CHECK_THAT(out.output, Catch::Contains("NOPERM"));
  }
  CHECK(RedisAs(f, d, "a", a, "PING").output.find("PONG") != std::string::npos);
}

TEST_CASE("dbprov killed with SIGKILL mid-provision and mid-backup finishes each job once",
          "[dbprov]") {
  DbprovFixture f(/*in_process=*/false);
  const std::string log = absl::StrCat(RequireEnv("C2D_TEST_TMP"), "/", ids::New("dbp"), ".log");
  auto dbprov = std::make_unique<testing::Subprocess>(std::vector<std::string>{C2D_BIN_DBPROV},
                                                      f.ProcessEnv(), log);
  auto restart = [&] {
    dbprov->Signal(SIGKILL);
    REQUIRE(dbprov->Wait(10s).has_value());
    dbprov = std::make_unique<testing::Subprocess>(std::vector<std::string>{C2D_BIN_DBPROV},
                                                   f.ProcessEnv(), log);
  };
  auto servers = [&](const std::string& label, const std::string& id) {
    auto found = f.provider_->List({{label, id}});
    REQUIRE(found.ok());
    return found->size();
  };

  // Killed once its server exists, before the database is available.
  v1::Database d;
  REQUIRE(f.Create(Postgres("survivor"), &d).ok());
  REQUIRE(WaitFor(60s, [&] { return servers(dbprov::kDatabaseLabel, d.id()) > 0; }));
  CHECK(f.Get(d.id()).state() == v1::DATABASE_STATE_PROVISIONING);
  restart();
  d = f.WaitState(d.id(), v1::DATABASE_STATE_AVAILABLE);
  INFO(dbprov->Output());
  // One server, one volume, the roles made once; the job ended once.
  CHECK(servers(dbprov::kDatabaseLabel, d.id()) == 1);
  CHECK(Scalar(f.RoleUrl(d, "a", f.Password(d.id(), "a")), "SELECT 1") == "1");
  CHECK(f.db_.Count("SELECT count(*) FROM jobs WHERE unique_key = 'provision_db:" + d.id() +
                    "' AND state = 'succeeded'") == 1);
  {
    pqxx::connection c(f.RoleUrl(d, "a", f.Password(d.id(), "a")));
    pqxx::nontransaction w(c);
    w.exec0("CREATE TABLE kept AS SELECT generate_series(1, 5000) AS n");
  }

  // Killed while the backup is being verified (its scratch server runs).
  v1::CreateBackupRequest cb;
  cb.set_database_id(d.id());
  v1::Backup b;
  REQUIRE(f.service_->CreateBackup(nullptr, &cb, &b).ok());
  REQUIRE(WaitFor(60s, [&] { return servers("c2d.verify", b.id()) > 0; }));
  restart();
  b = WaitBackup(f, b.id());
  CHECK(b.state() == v1::BACKUP_STATE_SUCCEEDED);
  CHECK(b.verification() == "1 table, 5000 rows: as at dump time");
  // The one backup, its object, and nothing of the first run left over.
  CHECK(f.db_.Count("SELECT count(*) FROM backups WHERE database_id = '" + d.id() + "'") == 1);
  CHECK(Stored(f, d.id(), b.id()));
  CHECK(WaitFor(20s, [&] { return servers("c2d.verify", b.id()) == 0; }));
  CHECK_FALSE(fs::exists(fs::path(f.config_.local.local.volumes_dir) /
                         ("c2d-verify-" + cloud::ResourceName(b.id()))));
  CHECK(f.db_.Count("SELECT count(*) FROM jobs WHERE unique_key = 'backup_db:" + b.id() +
                    "' AND state = 'succeeded'") == 1);
  dbprov->Signal(SIGTERM);
  CHECK(dbprov->Wait(20s) == 0);
}

}  // namespace
}  // namespace c2d
