// Database links as an app sees them: the variables a link gives, and env
// values that refer to a linked database.

#include <catch2/catch.hpp>

#include "services/dbprov/database_service.h"
#include "services/deployer/runtime.h"

namespace c2d {
namespace {

using Env = std::map<std::string, std::string>;

v1::ResolvedLink Link(const std::string& name, const std::string& prefix, v1::DatabaseEngine e) {
  v1::ResolvedLink l;
  l.set_database_name(name);
  l.set_env_prefix(prefix);
  for (const auto& [k, v] : dbprov::LinkEnv(prefix, {.engine = e,
                                                    .host = name + ".internal.localhost",
                                                    .port = 5432,
                                                    .user = name + "_a",
                                                    .password = "pw-" + name,
                                                    .name = name})) {
    (*l.mutable_env())[k] = v;
  }
  return l;
}

TEST_CASE("a link gives URL, HOST, PORT, USER, PASSWORD and NAME under its prefix", "[links]") {
  const Env env = dbprov::LinkEnv("DATABASE", {.engine = v1::DATABASE_ENGINE_POSTGRES,
                                               .host = "postgresdb_1.internal.example.com",
                                               .port = 5432,
                                               .user = "orders_b",
                                               .password = "s3cr-t_",
                                               .name = "orders"});
  CHECK(env == Env{{"DATABASE_URL",
                    "postgresql://orders_b:s3cr-t_@postgresdb_1.internal.example.com:5432/orders"},
                   {"DATABASE_HOST", "postgresdb_1.internal.example.com"},
                   {"DATABASE_PORT", "5432"},
                   {"DATABASE_USER", "orders_b"},
                   {"DATABASE_PASSWORD", "s3cr-t_"},
                   {"DATABASE_NAME", "orders"}});
  CHECK(dbprov::LinkEnv("CACHE", {.engine = v1::DATABASE_ENGINE_REDIS,
                                  .host = "r",
                                  .port = 6379,
                                  .user = "u",
                                  .password = "p",
                                  .name = "0"})
            .at("CACHE_URL") == "redis://u:p@r:6379/0");
  CHECK(dbprov::DefaultEnvPrefix(v1::DATABASE_ENGINE_POSTGRES) == "DATABASE");
  CHECK(dbprov::DefaultEnvPrefix(v1::DATABASE_ENGINE_REDIS) == "REDIS");
  CHECK(dbprov::DefaultEnvPrefix(v1::DATABASE_ENGINE_MARIADB) == "MYSQL");
}

TEST_CASE("env values refer to linked databases and explicit values win", "[links]") {
  v1::ResolveLinksResponse links;
  *links.add_links() = Link("orders", "DATABASE", v1::DATABASE_ENGINE_POSTGRES);
  *links.add_links() = Link("stats", "STATS", v1::DATABASE_ENGINE_POSTGRES);
  auto env = deployer::ApplyLinks(
      {{"A", "${{ db.orders.DATABASE_URL }}"},
       {"B", "host=${{db.stats.HOST}} port=${{ db.stats.PORT }}"},
       {"C", "${{ db.stats.DATABASE_URL }}"},  // another prefix's name: STATS_URL
       {"D", "${{ db.orders.PASSWORD }}"},
       {"DATABASE_NAME", "mine"},
       {"PLAIN", "$HOME {not} ${ref}"}},
      links);
  REQUIRE(env.ok());
  CHECK(env->at("A") == "postgresql://orders_a:pw-orders@orders.internal.localhost:5432/orders");
  CHECK(env->at("B") == "host=stats.internal.localhost port=5432");
  CHECK(env->at("C") == env->at("STATS_URL"));
  CHECK(env->at("D") == "pw-orders");
  CHECK(env->at("PLAIN") == "$HOME {not} ${ref}");
  CHECK(env->at("DATABASE_NAME") == "mine");  // set by the user: kept
  CHECK(env->at("DATABASE_USER") == "orders_a");
  CHECK(env->at("STATS_PASSWORD") == "pw-stats");
}

TEST_CASE("env values that refer to nothing linked are refused, naming the variable", "[links]") {
  v1::ResolveLinksResponse links;
  *links.add_links() = Link("orders", "DATABASE", v1::DATABASE_ENGINE_POSTGRES);
  struct Bad {
    std::string value, why;
  };
  for (const Bad& bad :
       std::vector<Bad>{{"${{ db.other.DATABASE_URL }}", "database other, which is not linked"},
                        {"${{ db.orders.SECRET }}", "has no such variable"},
                        {"${{ secrets.TOKEN }}", "not a database reference"},
                        {"x ${{ db.orders.URL }} ${{ db.orders.url }}", "not a database reference"},
                        {"${{ db.orders.URL", "not a database reference"}}) {
    INFO(bad.value);
    auto env = deployer::ApplyLinks({{"MY_VAR", bad.value}}, links);
    REQUIRE_FALSE(env.ok());
    CHECK(env.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK_THAT(std::string(env.status().message()),
               Catch::Contains("MY_VAR") && Catch::Contains(bad.why));
  }
  // Without links, a reference names what to do.
  auto none = deployer::ApplyLinks({{"URL", "${{ db.orders.URL }}"}}, {});
  REQUIRE_FALSE(none.ok());
  CHECK_THAT(std::string(none.status().message()), Catch::Contains("c2d db link"));
}

}  // namespace
}  // namespace c2d
