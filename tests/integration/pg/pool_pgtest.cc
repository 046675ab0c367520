// The connection pool: bounds, checkout deadline, error mapping, and healing
// after a connection is killed under it.

#include <catch2/catch.hpp>

#include "tests/support/pg_fixture.h"

namespace c2d {
namespace {

using namespace std::chrono_literals;

TEST_CASE("the pool is bounded and a checkout times out with a clear error", "[pg]") {
  testing::TestDatabase db;
  pg::PoolOptions o;
  o.connect = db.connect();
  o.size = 2;
  o.checkout_timeout = 200ms;
  pg::Pool pool(o);
  auto a = pool.Acquire();
  auto b = pool.Acquire();
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  auto c = pool.Acquire();
  REQUIRE(absl::IsDeadlineExceeded(c.status()));
  CHECK(std::string(c.status().message()).find("C2D_DB_POOL_SIZE") != std::string::npos);
  { auto released = std::move(*a); }  // returned to the pool
  CHECK(pool.Acquire().ok());
}

TEST_CASE("database errors map to status codes with context", "[pg]") {
  testing::TestDatabase db;
  db.Exec("CREATE TABLE t (id int PRIMARY KEY, n int CHECK (n > 0))");
  auto pool = db.NewPool();
  static constexpr pg::Statement kInsert{"pool_test_insert", "INSERT INTO t VALUES ($1, $2)"};
  auto insert = [&](int id, int n) {
    return pool->Transact("insert into t", [&](pg::Tx& tx) {
      tx.Exec(kInsert, id, n);
      return absl::OkStatus();
    });
  };
  REQUIRE(insert(1, 1).ok());
  absl::Status dup = insert(1, 1);
  CHECK(absl::IsAlreadyExists(dup));
  CHECK(std::string(dup.message()).rfind("insert into t: ", 0) == 0);
  CHECK(absl::IsFailedPrecondition(insert(2, -1)));
  absl::Status syntax = pool->Transact("bad sql", [](pg::Tx& tx) {
    tx.work().exec("SELEC 1");
    return absl::OkStatus();
  });
  CHECK(absl::IsInternal(syntax));
  CHECK(std::string(syntax.message()).find("42601") != std::string::npos);
  // A failed transaction rolled back: only the first row exists.
  CHECK(db.Count("SELECT count(*) FROM t") == 1);
}

TEST_CASE("Read runs each statement in a transaction of its own", "[pg]") {
  testing::TestDatabase db;
  pg::PoolOptions o;
  o.connect = db.connect();
  o.size = 1;
  pg::Pool pool(o);
  // Two statements that each take a transaction id: the same id inside
  // Transact, two ids under Read (no BEGIN, each statement commits).
  auto ids = [](pg::Tx& tx) -> absl::StatusOr<std::pair<int64_t, int64_t>> {
    auto id = [&] {
      return tx.work().exec1("SELECT pg_current_xact_id()::text::bigint")[0].as<int64_t>();
    };
    const int64_t first = id();
    return std::make_pair(first, id());
  };
  auto in_tx = pool.Transact("ids", ids);
  REQUIRE(in_tx.ok());
  CHECK(in_tx->first == in_tx->second);
  auto read = pool.Read("ids", ids);
  REQUIRE(read.ok());
  CHECK(read->first != read->second);
  // Errors map as under Transact.
  absl::Status bad = pool.Read("bad sql", [](pg::Tx& tx) {
    tx.work().exec("SELEC 1");
    return absl::OkStatus();
  });
  CHECK(absl::IsInternal(bad));
}

TEST_CASE("two statements under one name are caught", "[pg]") {
  testing::TestDatabase db;
  auto pool = db.NewPool(2);
  constexpr pg::Statement kOne{"test_same_name", "SELECT 1"};
  constexpr pg::Statement kTwo{"test_same_name", "SELECT 2"};
  auto run = [&](const pg::Statement& st) {
    return pool->Read("same name", [&](pg::Tx& tx) -> absl::StatusOr<int> {
      return tx.Exec(st)[0][0].as<int>();
    });
  };
  REQUIRE(run(kOne).ok());
  auto second = run(kTwo);
  CHECK(absl::IsInternal(second.status()));
  CHECK_THAT(std::string(second.status().message()),
             Catch::Contains("two SQL statements are named test_same_name"));
}

TEST_CASE("a killed connection is replaced", "[pg]") {
  testing::TestDatabase db;
  pg::PoolOptions o;
  o.connect = db.connect();
  o.size = 1;
  pg::Pool pool(o);
  auto pid = pool.Transact("pid", [](pg::Tx& tx) -> absl::StatusOr<int> {
    return tx.work().exec1("SELECT pg_backend_pid()")[0].as<int>();
  });
  REQUIRE(pid.ok());
  db.Exec("SELECT pg_terminate_backend(" + std::to_string(*pid) + ")");
  // The first use of the dead connection fails as Unavailable; the next
  // one gets a fresh connection.
  auto first = pool.Transact("after kill", [](pg::Tx& tx) -> absl::StatusOr<int> {
    return tx.work().exec1("SELECT pg_backend_pid()")[0].as<int>();
  });
  if (!first.ok()) {
    CHECK(absl::IsUnavailable(first.status()));
    first = pool.Transact("after kill", [](pg::Tx& tx) -> absl::StatusOr<int> {
      return tx.work().exec1("SELECT pg_backend_pid()")[0].as<int>();
    });
  }
  REQUIRE(first.ok());
  CHECK(*first != *pid);
}

}  // namespace
}  // namespace c2d
