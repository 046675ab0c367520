#pragma once

// Test support for tests that need a live PostgreSQL (files named *_pgtest.cc).
// tools/test starts a throwaway server and exports C2D_TEST_PG_URL; each
// TestDatabase is a fresh database on it, migrated to this build's schema and
// dropped afterwards, so tests never see each other's rows.

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "libs/pg/pool.h"

namespace c2d::testing {

class TestDatabase {
 public:
  // migrate=false leaves the database empty (for migration tests).
  explicit TestDatabase(bool migrate = true);
  ~TestDatabase();
  TestDatabase(const TestDatabase&) = delete;
  TestDatabase& operator=(const TestDatabase&) = delete;

  const std::string& url() const { return url_; }
  const std::string& name() const { return name_; }
  pg::ConnectOptions connect() const;
  std::unique_ptr<pg::Pool> NewPool(int size = 8) const;

  // Runs SQL on a fresh connection (set-up and assertions).
  void Exec(const std::string& sql) const;
  // The first column of the first row as text ("" for NULL).
  std::string Scalar(const std::string& sql) const;
  int64_t Count(const std::string& sql) const { return std::stoll(Scalar(sql)); }

 private:
  std::string admin_url_;
  std::string name_;
  std::string url_;
};

// The admin URL from C2D_TEST_PG_URL; fails the test with a clear message
// when it is unset (run through tools/test).
std::string AdminUrl();

// The value of a variable tools/test exports; fails the test with a clear
// message when it is unset.
std::string RequireEnv(const char* name);

// The folder whose git repositories builds may use as local sources
// (C2D_LOCAL_REPO_ROOT, which tools/test sets to a folder of its own). Tests
// keep their repositories there and nothing else.
std::string LocalRepoRoot();

// A free TCP port on 127.0.0.1 (the kernel's choice).
int FreePort();

// Ends the sessions of `db` holding the session advisory lock `key` (as
// pg_try_advisory_lock(key) takes it; jobs::Leader::LockKey), as a lost
// connection would. How many it ended.
int64_t TerminateLockHolders(const TestDatabase& db, int64_t key);

// Polls `done` every 20 ms until it is true or `timeout` passes.
bool WaitFor(std::chrono::milliseconds timeout, const std::function<bool()>& done);

}  // namespace c2d::testing
