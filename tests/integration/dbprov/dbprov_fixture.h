#pragma once

// dbprov against the real container engine and registry that tools/test
// starts: a fixture with dbprov's RPCs and jobs in process (or, for crash
// tests, a c2d-dbprov process), and the helpers its tests share.

#include <catch2/catch.hpp>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "libs/common/command.h"
#include "libs/common/ids.h"
#include "libs/jobs/worker.h"
#include "services/dbprov/backup_job.h"
#include "services/dbprov/database_service.h"
#include "services/dbprov/provision_job.h"
#include "services/dbprov/rotation.h"
#include "tests/support/leftovers.h"
#include "tests/support/pg_fixture.h"

namespace c2d::testing {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

// Where database servers run and backups go, when not the test engine and
// a local folder: made from the fixture's pool and its local provider.
struct DbprovWorld {
  std::function<std::unique_ptr<cloud::Provider>(pg::Pool&, cloud::LocalProvider&)> provider;
  std::function<std::unique_ptr<objstore::ObjectStore>()> store;
};

class DbprovFixture {
 public:
  // `in_process`: a job worker of its own runs dbprov's jobs; otherwise a
  // c2d-dbprov process does (ProcessEnv).
  explicit DbprovFixture(bool in_process = true, const DbprovWorld& world = {})
      : pool_(db_.NewPool()) {
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
    local_ = std::make_unique<cloud::LocalProvider>(l.local);
    provider_ = world.provider ? world.provider(*pool_, *local_) : nullptr;
    if (provider_ == nullptr) provider_ = std::make_unique<cloud::LocalProvider>(l.local);
    config_.backup_dir =
        (fs::path(RequireEnv("C2D_TEST_TMP")) / ("backups-" + ids::New("t"))).string();
    store_ = world.store ? world.store()
                         : std::make_unique<objstore::LocalObjectStore>(config_.backup_dir);
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
  ~DbprovFixture() {
    worker_->Shutdown();
    RemoveProjectLeftovers(db_, *provider_);
  }

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
  // A new database of `engine`, once it is available.
  v1::Database CreateAvailable(v1::DatabaseEngine engine, const std::string& name) {
    v1::CreateDatabaseRequest r;
    r.set_name(name);
    r.set_engine(engine);
    v1::Database d;
    REQUIRE(Create(r, &d).ok());
    return WaitState(d.id(), v1::DATABASE_STATE_AVAILABLE);
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
  std::unique_ptr<cloud::LocalProvider> local_;  // the test engine
  std::unique_ptr<cloud::Provider> provider_;    // where servers run: local_'s engine by default
  std::unique_ptr<oci::Registry> registry_;
  std::unique_ptr<objstore::ObjectStore> store_;
  std::unique_ptr<dbprov::DatabaseServiceImpl> service_;
  std::unique_ptr<dbprov::Servers> servers_;
  std::unique_ptr<dbprov::Backups> backups_;
  std::unique_ptr<dbprov::Rotations> rotations_;
  std::unique_ptr<jobs::Worker> worker_;
  std::string project_id_;
  std::string master_key_;
};

// A client tool (redis-cli, mariadb) against a database server: exit code
// and output.
inline CommandResult Client(std::vector<std::string> argv, std::map<std::string, std::string> env) {
  auto r = RunCommand({.argv = std::move(argv), .env = std::move(env), .timeout = 30s});
  REQUIRE(r.ok());
  return *r;
}

inline std::string Host(const std::string& address) {
  return address.substr(0, address.rfind(':'));
}
inline std::string Port(const std::string& address) {
  return address.substr(address.rfind(':') + 1);
}

// redis-cli as login role `role` of the Redis database `d`.
inline CommandResult RedisAs(DbprovFixture& f, const v1::Database& d, const char* role,
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

inline v1::CreateDatabaseRequest Postgres(const std::string& name) {
  v1::CreateDatabaseRequest r;
  r.set_name(name);
  r.set_engine(v1::DATABASE_ENGINE_POSTGRES);
  return r;
}

inline std::string Scalar(const std::string& url, const std::string& sql) {
  pqxx::connection c(url);
  pqxx::nontransaction w(c);
  return w.exec1(sql)[0].as<std::string>();
}

// `podman --remote` on the test engine; its output.
inline std::string Podman(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"podman", "--remote", "--url",
                                   "unix://" + RequireEnv("C2D_TEST_ENGINE_SOCKET")};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = RunCommand({.argv = argv, .timeout = 60s});
  REQUIRE(r.ok());
  INFO(r->output);
  REQUIRE(r->exit_code == 0);
  return r->output;
}

// A succeeded backup row with an object in the store, as if made `days_ago`.
inline std::string FakeBackup(DbprovFixture& f, const std::string& db, const char* kind,
                              int days_ago) {
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

inline bool Stored(DbprovFixture& f, const std::string& db, const std::string& backup) {
  return fs::exists(fs::path(f.config_.backup_dir) / dbprov::BackupKey(db, backup));
}

inline v1::Backup WaitBackup(DbprovFixture& f, const std::string& id) {
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

// A backup of `db` made now, once it finished (succeeded or failed).
inline v1::Backup BackupNow(DbprovFixture& f, const std::string& db) {
  v1::CreateBackupRequest cb;
  cb.set_database_id(db);
  v1::Backup b;
  REQUIRE(f.service_->CreateBackup(nullptr, &cb, &b).ok());
  return WaitBackup(f, b.id());
}

// `backup` restored into `db`, once the database is available again.
inline v1::Database RestoreNow(DbprovFixture& f, const std::string& backup, const std::string& db) {
  v1::RestoreBackupRequest rb;
  rb.set_backup_id(backup);
  rb.set_database_id(db);
  v1::Database restoring;
  REQUIRE(f.service_->RestoreBackup(nullptr, &rb, &restoring).ok());
  return f.WaitState(db, v1::DATABASE_STATE_AVAILABLE);
}

}  // namespace c2d::testing
