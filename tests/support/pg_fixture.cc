#include "tests/support/pg_fixture.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "libs/common/ids.h"
#include "libs/pg/migrate.h"
#include "migrations/embedded.h"

namespace c2d::testing {

std::string AdminUrl() {
  const char* url = std::getenv("C2D_TEST_PG_URL");
  if (url == nullptr || *url == '\0') {
    FAIL("C2D_TEST_PG_URL is not set: run the suite through tools/test, which starts PostgreSQL");
  }
  return url;
}

TestDatabase::TestDatabase(bool migrate) : admin_url_(AdminUrl()) {
  name_ = "t_" + absl::AsciiStrToLower(ids::New("db").substr(3));
  url_ = admin_url_.substr(0, admin_url_.rfind('/') + 1) + name_;
  pqxx::connection admin(admin_url_);
  pqxx::nontransaction nt(admin);
  nt.exec0("CREATE DATABASE " + nt.quote_name(name_));
  if (migrate) {
    auto result = pg::Migrate(connect(), migrations::All(), std::chrono::seconds(30));
    if (!result.ok()) FAIL("migrating the test database: " << result.status().ToString());
  }
}

TestDatabase::~TestDatabase() {
  try {
    pqxx::connection admin(admin_url_);
    pqxx::nontransaction nt(admin);
    nt.exec0("DROP DATABASE IF EXISTS " + nt.quote_name(name_) + " WITH (FORCE)");
  } catch (const std::exception&) {
    // The server may be down after a failed restart test; the temp dir goes anyway.
  }
}

pg::ConnectOptions TestDatabase::connect() const {
  pg::ConnectOptions o;
  o.url = url_;
  o.application_name = "c2d-test";
  return o;
}

std::unique_ptr<pg::Pool> TestDatabase::NewPool(int size) const {
  pg::PoolOptions o;
  o.connect = connect();
  o.size = size;
  return std::make_unique<pg::Pool>(o);
}

void TestDatabase::Exec(const std::string& sql) const {
  pqxx::connection c(url_);
  pqxx::nontransaction nt(c);
  nt.exec(sql);
}

std::string TestDatabase::Scalar(const std::string& sql) const {
  pqxx::connection c(url_);
  pqxx::nontransaction nt(c);
  pqxx::result r = nt.exec(sql);
  if (r.empty() || r[0][0].is_null()) return "";
  return r[0][0].as<std::string>();
}

std::string RequireEnv(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') {
    FAIL(name << " is not set: run the suite through tools/test, which starts the platform");
  }
  return v;
}

std::string LocalRepoRoot() {
  const std::string root = RequireEnv("C2D_LOCAL_REPO_ROOT");
  std::filesystem::create_directories(root);
  return root;
}

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

int64_t TerminateLockHolders(const TestDatabase& db, int64_t key) {
  const auto k = static_cast<uint64_t>(key);
  return db.Count(absl::StrCat(
      "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' AND "
      "granted AND objsubid = 1 AND classid = ",
      k >> 32, " AND objid = ", k & 0xffffffffu,
      " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"));
}

bool WaitFor(std::chrono::milliseconds timeout, const std::function<bool()>& done) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (done()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace c2d::testing
