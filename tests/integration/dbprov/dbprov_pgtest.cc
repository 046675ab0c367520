// dbprov provisioning a PostgreSQL database from the postgres stack image:
// used through its login role, kept across a server restart, brought back
// by the leader, deleted; requests that must change nothing; and a
// c2d-dbprov process killed in the middle of its jobs.

#include <csignal>

#include "libs/cloud/local_provider.h"
#include "services/dbprov/reconciler.h"
#include "tests/integration/dbprov/dbprov_fixture.h"
#include "tests/support/subprocess.h"

namespace c2d {
namespace {

// The fixture and its helpers (Postgres, Scalar, Podman, WaitBackup, …).
using namespace testing;

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
