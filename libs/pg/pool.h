#pragma once

// PostgreSQL access for every c2d process: one bounded connection pool, named
// parameterised statements, and a transaction helper that turns libpqxx
// exceptions into absl::Status at this edge.
//
//   constexpr pg::Statement kGetProject{"get_project",
//       "SELECT name FROM projects WHERE id = $1"};
//   absl::StatusOr<std::string> name = pool.Transact("get project", [&](pg::Tx& tx)
//       -> absl::StatusOr<std::string> {
//     pqxx::result r = tx.Exec(kGetProject, id);
//     if (r.empty()) return absl::NotFoundError("no such project");
//     return r[0][0].as<std::string>();
//   });

#include <chrono>
#include <memory>
#include <pqxx/pqxx>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "libs/pg/errors.h"

namespace c2d::pg {

// A named SQL statement, prepared once per connection on first use. Names are
// global to a process: two statements must never share a name.
struct Statement {
  const char* name;
  const char* sql;
};

struct ConnectOptions {
  // libpq connection URI or keyword string, e.g. postgresql://c2d@127.0.0.1:5432/c2d.
  std::string url;
  std::string application_name = "c2d";
  std::chrono::milliseconds connect_timeout{5000};
  // Server-side limit on any one statement (0 = none).
  std::chrono::milliseconds statement_timeout{30000};
};

// One server connection and the statements prepared on it.
class Connection {
 public:
  explicit Connection(std::unique_ptr<pqxx::connection> conn) : conn_(std::move(conn)) {}

  pqxx::connection& raw() { return *conn_; }
  void EnsurePrepared(const Statement& statement);

 private:
  std::unique_ptr<pqxx::connection> conn_;
  std::unordered_map<std::string, const char*> prepared_;  // name -> its SQL
};

// Opens a connection with c2d's session settings. Unavailable when the server
// cannot be reached within connect_timeout.
absl::StatusOr<std::unique_ptr<Connection>> Connect(const ConnectOptions& options);

// A transaction in progress (or, under Pool::Read, a connection whose each
// statement commits on its own). Only valid inside the callback.
class Tx {
 public:
  Tx(pqxx::transaction_base& work, Connection& conn) : work_(work), conn_(conn) {}

  template <typename... Args>
  pqxx::result Exec(const Statement& statement, Args&&... args) {
    conn_.EnsurePrepared(statement);
    return work_.exec_prepared(statement.name, std::forward<Args>(args)...);
  }

  // For statements that are not known ahead (DDL in migrations, test set-up).
  pqxx::transaction_base& work() { return work_; }

 private:
  pqxx::transaction_base& work_;
  Connection& conn_;
};

struct PoolOptions {
  ConnectOptions connect;
  int size = 8;
  // How long Acquire waits for a free connection before DeadlineExceeded.
  std::chrono::milliseconds checkout_timeout{5000};

  // C2D_DATABASE_URL (required), C2D_DB_POOL_SIZE (8), C2D_DB_CHECKOUT_TIMEOUT (5s),
  // C2D_DB_CONNECT_TIMEOUT (5s), C2D_DB_STATEMENT_TIMEOUT (30s).
  static absl::StatusOr<PoolOptions> FromEnv(absl::string_view application_name);
};

namespace internal {
inline const absl::Status& StatusOf(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& StatusOf(const absl::StatusOr<T>& s) {
  return s.status();
}
}  // namespace internal

// A bounded pool. Connections open lazily up to `size`; a connection that
// fails with a connection error is discarded and replaced on a later Acquire,
// so a restarted PostgreSQL heals the pool without a process restart.
// Thread-safe.
class Pool {
 public:
  explicit Pool(PoolOptions options);
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // A checked-out connection, returned to the pool when destroyed.
  class Lease {
   public:
    Lease(Lease&& other) noexcept
        : pool_(std::exchange(other.pool_, nullptr)),
          conn_(std::move(other.conn_)),
          broken_(other.broken_) {}
    Lease& operator=(Lease&&) = delete;
    ~Lease();

    Connection& conn() { return *conn_; }
    // The connection is discarded instead of returned.
    void MarkBroken() { broken_ = true; }

   private:
    friend class Pool;
    Lease(Pool* pool, std::unique_ptr<Connection> conn) : pool_(pool), conn_(std::move(conn)) {}
    Pool* pool_;
    std::unique_ptr<Connection> conn_;
    bool broken_ = false;
  };

  // Waits up to checkout_timeout for a connection.
  absl::StatusOr<Lease> Acquire();

  // Runs fn(Tx&) in a transaction and commits when it returns OK; rolls back on
  // an error status or an exception. `what` prefixes error messages. fn returns
  // absl::Status or absl::StatusOr<T>, and so does Transact.
  template <typename F>
  std::invoke_result_t<F, Tx&> Transact(absl::string_view what, F&& fn) {
    return Run<pqxx::work>(what, std::forward<F>(fn));
  }

  // Like Transact, without BEGIN and COMMIT: each statement is its own
  // transaction, so a single read costs one round trip instead of three.
  // For callbacks that run one read-only statement (or reads that need not
  // be consistent with each other).
  template <typename F>
  std::invoke_result_t<F, Tx&> Read(absl::string_view what, F&& fn) {
    return Run<pqxx::nontransaction>(what, std::forward<F>(fn));
  }

  const PoolOptions& options() const { return options_; }

 private:
  template <typename Transaction, typename F>
  std::invoke_result_t<F, Tx&> Run(absl::string_view what, F&& fn) {
    using R = std::invoke_result_t<F, Tx&>;
    auto lease = Acquire();
    if (!lease.ok()) return R(lease.status());
    try {
      Transaction work(lease->conn().raw());
      Tx tx(work, lease->conn());
      R result = fn(tx);
      if (internal::StatusOf(result).ok()) work.commit();
      return result;
    } catch (const std::exception& e) {
      absl::Status status = ToStatus(e, what);
      if (IsConnectionError(status)) lease->MarkBroken();
      return R(status);
    }
  }
  void Release(std::unique_ptr<Connection> conn, bool broken);

  const PoolOptions options_;
  absl::Mutex mu_;
  std::vector<std::unique_ptr<Connection>> idle_ ABSL_GUARDED_BY(mu_);
  int open_ ABSL_GUARDED_BY(mu_) = 0;  // idle + checked out + being opened
};

}  // namespace c2d::pg
