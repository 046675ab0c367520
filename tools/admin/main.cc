// c2d-admin: operator tasks done straight on c2d's database
// (C2D_DATABASE_URL), for when no one can log in yet.
//
//   c2d-admin token --email EMAIL [--name NAME]
//       creates the user if needed and prints a new API token for them (once;
//       only its SHA-256 is stored). tools/c2d-up uses it for the first admin.

#include <cstdio>
#include <cstring>
#include <string>

#include "libs/pg/pool.h"
#include "services/gateway/store.h"

int main(int argc, char** argv) {
  using namespace c2d;
  std::string command = argc > 1 ? argv[1] : "", email, name = "c2d-admin";
  for (int i = 2; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--email") == 0) email = argv[i + 1];
    if (std::strcmp(argv[i], "--name") == 0) name = argv[i + 1];
  }
  if (command != "token" || email.empty()) {
    std::fputs("usage: c2d-admin token --email EMAIL [--name NAME]\n", stderr);
    return 2;
  }
  auto options = pg::PoolOptions::FromEnv("c2d-admin");
  if (!options.ok()) {
    std::fprintf(stderr, "c2d-admin: %s\n", std::string(options.status().message()).c_str());
    return 2;
  }
  options->size = 1;
  pg::Pool pool(*options);
  auto token = pool.Transact("create token", [&](pg::Tx& tx) -> absl::StatusOr<gateway::NewToken> {
    auto user = gateway::UpsertUser(tx, email, "");
    if (!user.ok()) return user.status();
    return gateway::CreateToken(tx, user->id, name);
  });
  if (!token.ok()) {
    std::fprintf(stderr, "c2d-admin: %s\n", std::string(token.status().message()).c_str());
    return 1;
  }
  std::printf("%s\n", token->token.c_str());
  return 0;
}
