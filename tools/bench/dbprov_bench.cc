// c2d-bench-dbprov: managed databases against a running c2d-dbprov
// (tools/bench/dbprov starts one). Prints create-to-ready seconds of Redis,
// MariaDB and PostgreSQL databases (PostgreSQL's target < 5 s), then fills
// a PostgreSQL one with C2D_BENCH_DB_MB
// MiB (default 1024) and times a backup: dump and verification (targets:
// dump >= 50 MB/s, verification no slower than 2x the dump), as dbprov logs
// them ("backup verified": dump_s, verify_s), read by the script.
//
//   C2D_DBPROV_ADDR, C2D_BENCH_PROJECT_ID, C2D_DATABASE_URL, C2D_MASTER_KEY,
//   C2D_ENGINE_SOCKET (for the server's address) must be set.

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <pqxx/pqxx>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "libs/cloud/local_provider.h"
#include "libs/common/env.h"
#include "libs/crypto/seal.h"
#include "libs/pg/pool.h"
#include "proto/c2d/v1/dbprov.grpc.pb.h"
#include "services/dbprov/provision_job.h"
#include "services/dbprov/store.h"

namespace {

using namespace c2d;
using Clock = std::chrono::steady_clock;

[[noreturn]] void Die(const std::string& why) {
  std::fprintf(stderr, "bench: %s\n", why.c_str());
  std::exit(1);
}

std::string Need(const char* name) {
  auto v = env::GetRequired(name);
  if (!v.ok()) Die(std::string(v.status().message()));
  return *v;
}

v1::Database Get(v1::DatabaseService::Stub& stub, const std::string& id) {
  grpc::ClientContext ctx;
  v1::GetDatabaseRequest req;
  req.set_id(id);
  v1::Database d;
  if (!stub.GetDatabase(&ctx, req, &d).ok()) Die("GetDatabase failed");
  return d;
}

// Seconds from CreateDatabase to AVAILABLE.
double CreateToReady(v1::DatabaseService::Stub& stub, const std::string& project,
                     v1::DatabaseEngine engine, const std::string& name, std::string* id) {
  const auto t0 = Clock::now();
  grpc::ClientContext ctx;
  v1::CreateDatabaseRequest req;
  req.set_project_id(project);
  req.set_name(name);
  req.set_engine(engine);
  v1::Database d;
  if (auto s = stub.CreateDatabase(&ctx, req, &d); !s.ok()) Die("create: " + s.error_message());
  *id = d.id();
  while (d.state() == v1::DATABASE_STATE_PROVISIONING) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    d = Get(stub, d.id());
  }
  if (d.state() != v1::DATABASE_STATE_AVAILABLE) Die("provisioning failed: " + d.failure_reason());
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Fills the database with about `mib` MiB of rows (500-byte rows, 4 tables).
void Fill(const std::string& id, int mib) {
  pg::Pool pool({.connect = {.url = Need("C2D_DATABASE_URL")}, .size = 1});
  auto row = pool.Read("db", [&](pg::Tx& tx) { return dbprov::GetDatabase(tx, id); });
  if (!row.ok()) Die("row");
  auto keys = crypto::MasterKeys::FromEnv();
  if (!keys.ok()) Die("master key");
  auto admin = dbprov::OpenPassword(*keys, *row, "admin");
  cloud::LocalProvider provider({.engine_socket = Need("C2D_ENGINE_SOCKET")});
  auto servers = provider.List({{dbprov::kDatabaseLabel, id}});
  if (!servers.ok() || servers->empty()) Die("no server");
  pqxx::connection c(absl::StrCat("postgresql://postgres:", *admin, "@", servers->front().address,
                                  "/", row->db.name()));
  pqxx::nontransaction w(c);
  w.exec0("SET statement_timeout = 0");
  const int64_t rows = int64_t{mib} * 1024 * 1024 / 4 / 560;
  const auto t0 = Clock::now();
  for (int t = 0; t < 4; ++t) {
    w.exec0(absl::StrCat("CREATE TABLE t", t,
                         " AS SELECT g AS id, now() AS at, "
                         "repeat(md5(g::text), 15) AS body FROM generate_series(1, ",
                         rows, ") g"));
  }
  const int64_t size = w.exec1("SELECT pg_database_size(current_database())")[0].as<int64_t>();
  std::printf("filled: %lld rows in 4 tables in %.1f s; database_bytes %lld\n",
              static_cast<long long>(rows * 4),
              std::chrono::duration<double>(Clock::now() - t0).count(),
              static_cast<long long>(size));
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::max(1, std::atoi(argv[1])) : 3;
  auto stub = v1::DatabaseService::NewStub(
      grpc::CreateChannel(Need("C2D_DBPROV_ADDR"), grpc::InsecureChannelCredentials()));
  const std::string project = Need("C2D_BENCH_PROJECT_ID");
  std::string id;
  const std::pair<v1::DatabaseEngine, const char*> engines[] = {
      {v1::DATABASE_ENGINE_REDIS, "redis"},
      {v1::DATABASE_ENGINE_MARIADB, "mariadb"},
      {v1::DATABASE_ENGINE_POSTGRES, "postgres"}};  // last: the one filled below
  for (const auto& [engine, name] : engines) {
    std::vector<double> ready;
    for (int i = 0; i < rounds; ++i) {
      ready.push_back(CreateToReady(*stub, project, engine, absl::StrCat("bench-", name, i), &id));
      std::printf("%s create-to-ready %d: %.2f s\n", name, i + 1, ready.back());
      std::fflush(stdout);
    }
    std::sort(ready.begin(), ready.end());
    std::printf("%s create-to-ready: median %.2f s, min %.2f s, max %.2f s%s\n", name,
                ready[ready.size() / 2], ready.front(), ready.back(),
                engine == v1::DATABASE_ENGINE_POSTGRES ? " (target < 5 s)" : "");
  }
  const char* mib_env = std::getenv("C2D_BENCH_DB_MB");
  Fill(id, mib_env ? std::atoi(mib_env) : 1024);
  grpc::ClientContext ctx;
  v1::CreateBackupRequest req;
  req.set_database_id(id);
  v1::Backup b;
  if (auto s = stub->CreateBackup(&ctx, req, &b); !s.ok()) Die("backup: " + s.error_message());
  const auto t0 = Clock::now();
  for (;;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    grpc::ClientContext g;
    v1::GetBackupRequest get;
    get.set_id(b.id());
    if (!stub->GetBackup(&g, get, &b).ok()) Die("GetBackup failed");
    if (b.state() == v1::BACKUP_STATE_SUCCEEDED || b.state() == v1::BACKUP_STATE_FAILED) break;
  }
  if (b.state() != v1::BACKUP_STATE_SUCCEEDED) Die("backup failed: " + b.failure_reason());
  std::printf("backup %s: %.1f MB stored, sha256 %s, %s, %.1f s in all\n", b.id().c_str(),
              b.size_bytes() / 1e6, b.sha256().substr(0, 12).c_str(), b.verification().c_str(),
              std::chrono::duration<double>(Clock::now() - t0).count());
  return 0;
}
