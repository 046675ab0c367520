// Redis and MariaDB databases through their own clients: used by the login
// role, backed up and restored, killed, rotated.

#include <functional>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tests/integration/dbprov/dbprov_fixture.h"

namespace c2d {
namespace {

// The fixture and its helpers (Postgres, Scalar, Podman, WaitBackup, …).
using namespace testing;

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

CommandResult MariadbAs(DbprovFixture& f, const v1::Database& d, const char* role,
                        const std::string& password, const std::string& command) {
  return Client(
      {"mariadb", "--protocol=TCP", "-h", Host(f.Address(d.id())), "-P", Port(f.Address(d.id())),
       "-u", dbprov::RoleBase(d.name()) + "_" + role, "-N", "-B", d.name(), "-e", command},
      {{"MYSQL_PWD", password}});
}

void EngineLifecycle(v1::DatabaseEngine engine, const std::string& name, const EngineClient& c) {
  DbprovFixture f;
  v1::Database d = f.CreateAvailable(engine, name);
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
  const v1::Backup b = BackupNow(f, d.id());
  REQUIRE(b.state() == v1::BACKUP_STATE_SUCCEEDED);
  CHECK(b.size_bytes() > 0);
  CHECK_THAT(b.verification(), Catch::Contains("3 ") && Catch::Contains("as at dump time"));
  as_a(c.change);
  CHECK(as_a(c.list) != c.three);
  d = RestoreNow(f, b.id(), d.id());
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
  const v1::Database d = f.CreateAvailable(v1::DATABASE_ENGINE_REDIS, "locked");
  const std::string a = f.Password(d.id(), "a");
  for (const char* cmd : {"CONFIG SET dir /tmp", "ACL SETUSER x on", "SHUTDOWN",
                          "REPLICAOF 127.0.0.1 1", "BGSAVE", "CLIENT KILL TYPE normal"}) {
    INFO(cmd);
    CommandResult out = RedisAs(f, d, "a", a, cmd);
    CHECK_THAT(out.output, Catch::Contains("NOPERM"));
  }
  CHECK(RedisAs(f, d, "a", a, "PING").output.find("PONG") != std::string::npos);
}

}  // namespace
}  // namespace c2d
