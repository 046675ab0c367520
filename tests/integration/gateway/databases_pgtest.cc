// Managed databases over REST: the gateway in front of a real dbprov, whose
// PostgreSQL servers run on the test engine.

#include <catch2/catch.hpp>

#include "absl/strings/str_cat.h"
#include "tests/integration/gateway/api_fixture.h"

namespace c2d {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::Api;
using testing::WaitFor;

TEST_CASE("a database over REST: created, read, listed, hidden from other tenants, deleted",
          "[gateway][dbprov]") {
  Api api;
  const std::string& alice = api.alice();
  const std::string project =
      api.Call("POST", "/v1/projects", alice, json{{"name", "shop"}}).body["id"];
  const std::string databases = absl::StrCat("/v1/projects/", project, "/databases");
  const int64_t before = api.Rows("databases");

  // Bad bodies name the field at fault and make nothing.
  struct Bad {
    json body;
    std::string field, text;
  };
  for (const Bad& bad : std::vector<Bad>{
           {{{"name", "pg"}}, "engine", "must be postgres, mariadb or redis"},
           {{{"name", "pg"}, {"engine", "oracle"}}, "engine", "must be postgres"},
           {{{"name", "pg"}, {"engine", "redis"}}, "engine", "not offered yet"},
           {{{"name", "Bad Name"}, {"engine", "postgres"}}, "name", "lower-case"},
           {{{"engine", "postgres"}}, "name", "is required"},
           {{{"name", "pg"}, {"engine", "postgres"}, {"plan", "huge"}}, "plan", "small, medium"},
           {{{"name", "pg"}, {"engine", "postgres"}, {"retention_daily", 999}},
            "retention_daily",
            ""},
           {{{"name", "pg"}, {"engine", "postgres"}, {"backup_schedule", "nightly"}},
            "backup_schedule",
            "cron"},
           {{{"name", "pg"}, {"engine", "postgres"}, {"size", 3}}, "size", ""},
           {{{"name", 7}, {"engine", "postgres"}}, "name", ""}}) {
    INFO(bad.body.dump());
    auto r = api.Call("POST", databases, alice, bad.body);
    CHECK(r.status == 400);
    CHECK(r.Field() == bad.field);
    CHECK_THAT(r.Error(), Catch::Contains(bad.text));
  }
  CHECK(api.Call("POST", databases, alice, std::string("{not json")).status == 400);
  CHECK(api.Rows("databases") == before);

  auto created = api.Call("POST", databases, alice, json{{"name", "pg"}, {"engine", "postgres"}});
  REQUIRE(created.status == 202);
  CHECK(created.body["state"] == "provisioning");
  CHECK(created.body["engine"] == "postgres");
  CHECK(created.body["plan"] == "small");
  const std::string id = created.body["id"];
  CHECK(created.Header("location") == "/v1/databases/" + id);
  CHECK(api.Call("POST", databases, alice, json{{"name", "pg"}, {"engine", "postgres"}}).status ==
        409);

  json db;
  CHECK(WaitFor(90s, [&] {
    db = api.Call("GET", "/v1/databases/" + id, alice).body;
    return db["state"] == "available" || db["state"] == "failed";
  }));
  INFO(db.dump());
  REQUIRE(db["state"] == "available");
  CHECK(db["port"] == 5432);
  CHECK(db["host"].get<std::string>().find(".internal.") != std::string::npos);
  CHECK_FALSE(db.dump().find("password") != std::string::npos);
  auto list = api.Call("GET", databases, alice);
  REQUIRE(list.status == 200);
  REQUIRE(list.body["databases"].size() == 1);
  CHECK(list.body["databases"][0]["id"] == id);

  // Bob sees none of it, and cannot delete it.
  CHECK(api.Call("GET", "/v1/databases/" + id, api.bob()).status == 404);
  CHECK(api.Call("DELETE", "/v1/databases/" + id, api.bob()).status == 404);
  CHECK(api.Call("GET", databases, api.bob()).status == 404);
  CHECK(
      api.Call("POST", databases, api.bob(), json{{"name", "x"}, {"engine", "postgres"}}).status ==
      404);
  CHECK(api.Call("GET", "/v1/databases/db_nope", alice).status == 404);

  auto deleted = api.Call("DELETE", "/v1/databases/" + id, alice);
  REQUIRE(deleted.status == 202);
  CHECK(deleted.body["state"] == "deleting");
  CHECK(WaitFor(60s, [&] { return api.Call("GET", "/v1/databases/" + id, alice).status == 404; }));
  CHECK(api.Call("GET", databases, alice).body["databases"].empty());
}

}  // namespace
}  // namespace c2d
