// c2d-admin: operator tasks done straight on c2d's database
// (C2D_DATABASE_URL), for when no one can log in yet.
//
//   c2d-admin token --email EMAIL [--name NAME]
//       creates the user if needed and prints a new API token for them (once;
//       only its SHA-256 is stored). tools/c2d-up uses it for the first admin.
//   c2d-admin rotate-master-key
//       moves every sealed value under the first key of C2D_MASTER_KEY
//       (tools/admin/rewrap.h), printing how many values moved where; exit
//       status 1 if any could not be (its key missing from C2D_MASTER_KEY,
//       or damaged). README "Rotating the master key" has the whole procedure.

#include <cstdio>
#include <cstring>
#include <string>

#include "libs/pg/pool.h"
#include "services/gateway/store.h"
#include "tools/admin/rewrap.h"

namespace {

using namespace c2d;

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "c2d-admin: %s\n", std::string(s.message()).c_str());
  return 1;
}

int Token(pg::Pool& pool, const std::string& email, const std::string& name) {
  auto token = pool.Transact("create token", [&](pg::Tx& tx) -> absl::StatusOr<gateway::NewToken> {
    auto user = gateway::UpsertUser(tx, email, "");
    if (!user.ok()) return user.status();
    return gateway::CreateToken(tx, user->id, name);
  });
  if (!token.ok()) return Fail(token.status());
  std::printf("%s\n", token->token.c_str());
  return 0;
}

int RotateMasterKey(pg::Pool& pool) {
  auto keys = crypto::MasterKeys::FromEnv();
  if (!keys.ok()) return Fail(keys.status());
  auto report = admin::RewrapAll(pool, *keys);
  if (!report.ok()) return Fail(report.status());
  for (const auto& [where, n] : report->rewrapped) {
    std::printf("%-32s %lld moved to %s\n", where.c_str(), static_cast<long long>(n),
                keys->current_id().c_str());
  }
  for (const auto& [where, n] : report->failed) {
    std::printf("%-32s %lld could not be moved (key missing from C2D_MASTER_KEY, or damaged)\n",
                where.c_str(), static_cast<long long>(n));
  }
  if (!report->failed.empty()) return 1;
  std::printf(
      "every sealed value is under master key %s; the others can leave C2D_MASTER_KEY once "
      "every c2d process runs with %s first\n",
      keys->current_id().c_str(), keys->current_id().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string command = argc > 1 ? argv[1] : "", email, name = "c2d-admin";
  for (int i = 2; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--email") == 0) email = argv[i + 1];
    if (std::strcmp(argv[i], "--name") == 0) name = argv[i + 1];
  }
  if (!(command == "token" && !email.empty()) && command != "rotate-master-key") {
    std::fputs(
        "usage: c2d-admin token --email EMAIL [--name NAME]\n"
        "       c2d-admin rotate-master-key\n",
        stderr);
    return 2;
  }
  auto options = pg::PoolOptions::FromEnv("c2d-admin");
  if (!options.ok()) {
    std::fprintf(stderr, "c2d-admin: %s\n", std::string(options.status().message()).c_str());
    return 2;
  }
  options->size = 1;
  pg::Pool pool(*options);
  return command == "token" ? Token(pool, email, name) : RotateMasterKey(pool);
}
