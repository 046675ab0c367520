// The migration runner: ordering, concurrency, checksums, version checks.

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <thread>

#include "libs/common/ids.h"
#include "libs/pg/migrate.h"
#include "migrations/embedded.h"
#include "tests/support/pg_fixture.h"
#include "tests/support/subprocess.h"

namespace c2d {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

struct TempDir {
  TempDir() : path(fs::temp_directory_path() / ids::New("migrations")) {
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  void Write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name) << text;
  }
  fs::path path;
};

TEST_CASE("the embedded schema applies to an empty database, once", "[migrate]") {
  testing::TestDatabase db(/*migrate=*/false);
  auto first = pg::Migrate(db.connect(), migrations::All(), 10s);
  REQUIRE(first.ok());
  CHECK(first->applied.size() == migrations::All().size());
  CHECK(first->version == migrations::Latest());
  auto second = pg::Migrate(db.connect(), migrations::All(), 10s);
  REQUIRE(second.ok());
  CHECK(second->applied.empty());
  auto pool = db.NewPool();
  CHECK(*pg::SchemaVersion(*pool) == migrations::Latest());
  CHECK(pg::RequireSchema(*pool, migrations::Latest()).ok());
  CHECK(db.Count("SELECT count(*) FROM information_schema.tables WHERE table_name = 'jobs'") == 1);
}

TEST_CASE("two runners at once apply each migration exactly once", "[migrate]") {
  testing::TestDatabase db(/*migrate=*/false);
  TempDir dir;
  // Plain CREATE TABLE fails if run twice; the sleep widens the race window.
  dir.Write("0001_first.sql", "CREATE TABLE first (id int); SELECT pg_sleep(0.5);");
  dir.Write("0002_second.sql", "CREATE TABLE second (id int);");
  auto migrations = pg::LoadMigrationsDir(dir.path.string());
  REQUIRE(migrations.ok());
  REQUIRE(migrations->size() == 2);

  absl::StatusOr<pg::MigrateResult> a, b;
  std::thread ta([&] { a = pg::Migrate(db.connect(), *migrations, 30s); });
  std::thread tb([&] { b = pg::Migrate(db.connect(), *migrations, 30s); });
  ta.join();
  tb.join();
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(a->applied.size() + b->applied.size() == 2);
  CHECK(a->version == 2);
  CHECK(b->version == 2);
  CHECK(db.Count("SELECT count(*) FROM schema_migrations") == 2);
}

TEST_CASE("a migration changed after it was applied is refused with a clear error", "[migrate]") {
  testing::TestDatabase db(/*migrate=*/false);
  TempDir dir;
  dir.Write("0001_first.sql", "CREATE TABLE first (id int);");
  REQUIRE(pg::Migrate(db.connect(), *pg::LoadMigrationsDir(dir.path.string()), 10s).ok());

  dir.Write("0001_first.sql", "CREATE TABLE first (id bigint);");
  dir.Write("0002_second.sql", "CREATE TABLE second (id int);");
  auto result = pg::Migrate(db.connect(), *pg::LoadMigrationsDir(dir.path.string()), 10s);
  REQUIRE_FALSE(result.ok());
  CHECK(absl::IsFailedPrecondition(result.status()));
  const std::string message(result.status().message());
  CHECK(message.find("0001_first.sql was changed after it was applied") != std::string::npos);
  // Nothing after the refusal was applied.
  CHECK(db.Count("SELECT count(*) FROM schema_migrations") == 1);
  CHECK(db.Scalar("SELECT to_regclass('second')::text").empty());
}

TEST_CASE("c2d-migrate --status: pending, ahead of the build, changed, a runner at work",
          "[migrate]") {
  testing::TestDatabase db(/*migrate=*/false);
  TempDir dir;
  dir.Write("0001_first.sql", "CREATE TABLE first (id int);");
  dir.Write("0002_second.sql", "CREATE TABLE second (id int);");
  auto all = *pg::LoadMigrationsDir(dir.path.string());
  auto pool = db.NewPool();
  auto fresh = pg::GetMigrationStatus(*pool, all);
  REQUIRE(fresh.ok());
  CHECK(fresh->version == 0);
  CHECK(fresh->latest == 2);
  CHECK(fresh->pending == std::vector<std::string>{"0001_first.sql", "0002_second.sql"});
  CHECK(fresh->applied.empty());
  CHECK_FALSE(fresh->running);

  // A newer release applied 0002 and 0003; this build knows 0001 and a 0002
  // of another text.
  dir.Write("0003_third.sql", "CREATE TABLE third (id int);");
  REQUIRE(pg::Migrate(db.connect(), *pg::LoadMigrationsDir(dir.path.string()), 10s).ok());
  TempDir old;
  old.Write("0001_first.sql", "CREATE TABLE first (id int);");
  old.Write("0002_second.sql", "CREATE TABLE second (id bigint);");
  auto ahead = pg::GetMigrationStatus(*pool, *pg::LoadMigrationsDir(old.path.string()));
  REQUIRE(ahead.ok());
  CHECK(ahead->version == 3);
  CHECK(ahead->latest == 2);
  CHECK(ahead->pending.empty());
  REQUIRE(ahead->applied.size() == 3);
  CHECK_FALSE(ahead->applied[0].changed);
  CHECK(ahead->applied[1].changed);
  CHECK(ahead->applied[2].unknown);
  CHECK(ahead->applied[2].name == "0003_third.sql");

  // The command says the same, in its exit status too.
  auto status_of = [&](const std::string& migrations_dir) {
    testing::Subprocess p({C2D_BIN_MIGRATE, "--status", "--dir", migrations_dir},
                          {{"C2D_DATABASE_URL", db.url()}, {"C2D_LOG_LEVEL", "warn"}},
                          (dir.path / ids::New("log")).string());
    auto code = p.Wait(30s);
    return std::make_pair(code.value_or(-1), p.Output());
  };
  auto [changed_code, changed_out] = status_of(old.path.string());
  CHECK(changed_code == 4);
  CHECK(changed_out.find("changed since applied: 0002_second.sql") != std::string::npos);
  CHECK(changed_out.find("ahead of this build: 0003_third.sql") != std::string::npos);
  dir.Write("0004_fourth.sql", "CREATE TABLE fourth (id int);");
  auto [pending_code, pending_out] = status_of(dir.path.string());
  CHECK(pending_code == 3);
  CHECK(pending_out.find("pending: 0004_fourth.sql") != std::string::npos);

  // A runner holding the lock (here: a slow migration) shows.
  dir.Write("0005_slow.sql", "SELECT pg_sleep(3);");
  std::thread runner(
      [&] { (void)pg::Migrate(db.connect(), *pg::LoadMigrationsDir(dir.path.string()), 10s); });
  bool seen = false;
  for (int i = 0; i < 50 && !seen; ++i) {
    std::this_thread::sleep_for(50ms);
    auto s = pg::GetMigrationStatus(*pool, all);
    seen = s.ok() && s->running;
  }
  runner.join();
  CHECK(seen);
  auto after = pg::GetMigrationStatus(*pool, *pg::LoadMigrationsDir(dir.path.string()));
  REQUIRE(after.ok());
  CHECK_FALSE(after->running);
  CHECK(after->pending.empty());
  CHECK(after->version == 5);
}

TEST_CASE("a failing migration leaves nothing of itself behind", "[migrate]") {
  testing::TestDatabase db(/*migrate=*/false);
  TempDir dir;
  dir.Write("0001_first.sql", "CREATE TABLE first (id int);");
  dir.Write("0002_broken.sql", "CREATE TABLE half (id int); SELECT no_such_function();");
  auto result = pg::Migrate(db.connect(), *pg::LoadMigrationsDir(dir.path.string()), 10s);
  REQUIRE_FALSE(result.ok());
  CHECK(std::string(result.status().message()).find("0002_broken.sql") != std::string::npos);
  CHECK(db.Count("SELECT count(*) FROM schema_migrations") == 1);
  CHECK(db.Scalar("SELECT to_regclass('half')::text").empty());
}

TEST_CASE("malformed migration directories are refused", "[migrate]") {
  TempDir dir;
  dir.Write("1_bad.sql", "SELECT 1;");
  auto bad_name = pg::LoadMigrationsDir(dir.path.string());
  REQUIRE_FALSE(bad_name.ok());
  CHECK(std::string(bad_name.status().message()).find("1_bad.sql") != std::string::npos);

  TempDir dup;
  dup.Write("0001_a.sql", "SELECT 1;");
  dup.Write("0001_b.sql", "SELECT 1;");
  auto duplicate = pg::LoadMigrationsDir(dup.path.string());
  REQUIRE_FALSE(duplicate.ok());
  CHECK(std::string(duplicate.status().message()).find("share version 1") != std::string::npos);

  CHECK(absl::IsNotFound(pg::LoadMigrationsDir("/nonexistent/c2d").status()));
}

TEST_CASE("RequireSchema names both versions when the database is behind", "[migrate]") {
  testing::TestDatabase db(/*migrate=*/false);
  auto pool = db.NewPool();
  absl::Status s = pg::RequireSchema(*pool, migrations::Latest());
  REQUIRE(absl::IsFailedPrecondition(s));
  CHECK(std::string(s.message()).find("at version 0") != std::string::npos);
  CHECK(std::string(s.message()).find("c2d-migrate") != std::string::npos);
}

}  // namespace
}  // namespace c2d
