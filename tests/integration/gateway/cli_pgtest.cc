// The `c2d` command line against the real REST API: a user's whole path
// from login to rollback, and its errors.

#include <catch2/catch.hpp>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "libs/http/client.h"
#include "tests/integration/gateway/api_fixture.h"
#include "tests/support/subprocess.h"

namespace c2d {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using nlohmann::json;
using testing::Api;
using testing::WaitFor;

struct Run {
  int code = -1;
  std::string output;  // stdout and stderr
};

// The id of `project`/`service` as Alice sees them.
std::string Find(Api& api, const std::string& project, const std::string& service) {
  const json projects = api.Call("GET", "/v1/projects", api.alice()).body["projects"];
  for (const json& p : projects) {
    if (p["name"] != project) continue;
    const std::string path = "/v1/projects/" + p["id"].get<std::string>() + "/services";
    const json services = api.Call("GET", path, api.alice()).body["services"];
    for (const json& s : services) {
      if (s["name"] == service) return s["id"];
    }
  }
  return "";
}

class Cli {
 public:
  explicit Cli(const Api& api)
      : dir_(fs::temp_directory_path() / ("c2d-cli-" + std::to_string(getpid()))),
        env_{{"C2D_URL", "http://" + api.address()}, {"XDG_CONFIG_HOME", dir_.string()}} {
    fs::create_directories(dir_);
  }
  ~Cli() { fs::remove_all(dir_); }

  Run operator()(std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
    args.insert(args.begin(), C2D_BIN_CLI);
    env.insert(env_.begin(), env_.end());
    testing::Subprocess p(std::move(args), env, (dir_ / "out").string());
    auto code = p.Wait(240s);
    Run r{code.value_or(-1), p.Output()};
    UNSCOPED_INFO("c2d exited " << r.code << ":\n" << r.output);
    return r;
  }
  // A command left running (logs -f), stopped when the result is destroyed.
  std::unique_ptr<testing::Subprocess> Start(std::vector<std::string> args,
                                             const std::string& log) {
    args.insert(args.begin(), C2D_BIN_CLI);
    return std::make_unique<testing::Subprocess>(std::move(args), env_, (dir_ / log).string());
  }
  fs::path dir() const { return dir_; }

 private:
  fs::path dir_;
  std::map<std::string, std::string> env_;
};

TEST_CASE("the CLI: login, create, deploy, follow logs, env, redeploy, roll back",
          "[gateway][cli]") {
  Api api;
  Cli c2d(api);
  auto sample = testing::SampleRepo("3.1.4");
  const testing::GitRepo& repo = *sample;
  auto app = [&](const std::string& path) {
    auto r = http::Send(
        {.url = absl::StrCat("http://", testing::RequireEnv("C2D_TEST_CADDY_HTTP"), path),
         .headers = {{"Host", "hello.shop.localhost"}},
         .timeout = 5s});
    return r.ok() ? r->body : std::string();
  };

  // Not logged in yet: one clear line, and nothing else works.
  Run anonymous = c2d({"projects"});
  CHECK(anonymous.code == 2);
  CHECK_THAT(anonymous.output, Catch::StartsWith("c2d: not logged in"));
  Run forged = c2d({"login", "--token", "c2d_forged"});
  CHECK(forged.code == 2);
  CHECK_THAT(forged.output, Catch::Contains("unknown, revoked or expired"));
  CHECK(!fs::exists(c2d.dir() / "c2d/cli.json"));

  Run login = c2d({"login", "--token", api.alice()});
  REQUIRE(login.code == 0);
  CHECK((fs::status(c2d.dir() / "c2d/cli.json").permissions() & fs::perms::group_read) ==
        fs::perms::none);
  REQUIRE(c2d({"projects", "create", "shop"}).code == 0);
  Run created = c2d({"services", "create", "hello", "--project", "shop", "--repo", repo.path(),
                     "--port", "8080"});
  REQUIRE(created.code == 0);
  CHECK_THAT(created.output, Catch::Contains("created service hello (svc_"));
  Run show = c2d({"services", "show", "shop/hello"});
  CHECK(show.code == 0);
  CHECK_THAT(show.output, Catch::Contains("hello (web, svc_"));
  CHECK_THAT(show.output, Catch::Contains("1 instance(s), port 8080"));
  CHECK_THAT(show.output, Catch::Contains("health    GET /health every"));
  REQUIRE(c2d({"env", "set", "shop/hello", "GREETING=Howdy", "--plain"}).code == 0);

  // Deploy: the build's and the release's progress, then the URL.
  Run deploy = c2d({"deploy", "shop/hello"});
  REQUIRE(deploy.code == 0);
  CHECK_THAT(deploy.output, Catch::Contains("build succeeded"));
  CHECK_THAT(deploy.output, Catch::Contains("--> deployment.live"));
  CHECK_THAT(deploy.output,
             Catch::Contains("deployed: the release is live at http://hello.shop.localhost"));
  CHECK(WaitFor(5s, [&] { return absl::StrContains(app("/"), "Howdy from c2d! version 3.1.4"); }));
  Run open = c2d({"open", "shop/hello"});
  CHECK(open.code == 0);
  CHECK_THAT(open.output, Catch::StartsWith("http://hello.shop.localhost:"));

  // logs -f shows a request made after it started.
  auto follower = c2d.Start({"logs", "shop/hello", "-f", "--tail", "5"}, "follow");
  CHECK(WaitFor(20s, [&] { return absl::StrContains(follower->Output(), "listening on 8080"); }));
  app("/seen-by-the-cli");
  CHECK(WaitFor(20s, [&] {
    return absl::StrContains(follower->Output(), "GET /seen-by-the-cli HTTP/1.1\" 404");
  }));
  follower.reset();

  // An env change and a redeploy of the same commit (no new build).
  REQUIRE(c2d({"env", "set", "shop/hello", "GREETING=Bonjour", "--plain"}).code == 0);
  Run listed = c2d({"env", "list", "shop/hello"});
  CHECK_THAT(listed.output, Catch::Contains("GREETING=Bonjour"));
  REQUIRE(c2d({"deploy", "shop/hello"}).code == 0);
  CHECK(WaitFor(5s, [&] { return absl::StrContains(app("/"), "Bonjour from c2d!"); }));

  // Roll back: the first release and its env again.
  Run back = c2d({"rollback", "shop/hello"});
  REQUIRE(back.code == 0);
  CHECK_THAT(back.output, Catch::Contains("rolling back to dep_"));
  CHECK(WaitFor(5s, [&] { return absl::StrContains(app("/"), "Howdy from c2d!"); }));
  Run status = c2d({"status", "shop/hello"});
  CHECK(status.code == 0);
  CHECK_THAT(status.output, Catch::Contains("live"));
  CHECK_THAT(status.output, Catch::Contains("rolled_back"));

  // A re-release whose app crashes: the CLI follows that release, not an
  // earlier one, exits 1, and the live release keeps serving.
  const std::string hello = Find(api, "shop", "hello");
  REQUIRE(api.Call("PATCH", "/v1/services/" + hello, api.alice(),
                   json{{"run", {{"start_command", "sh -c 'exit 3'"}}}})
              .status == 200);
  Run crashed = c2d({"deploy", "shop/hello"});
  CHECK(crashed.code == 1);
  CHECK_THAT(crashed.output, Catch::Contains("c2d: the deploy ended failed"));
  CHECK(absl::StrContains(app("/"), "Howdy from c2d!"));

  // --json is the API's JSON.
  Run as_json = c2d({"projects", "--json"});
  REQUIRE(as_json.code == 0);
  json projects = json::parse(as_json.output, nullptr, false);
  REQUIRE(projects.is_object());
  CHECK(projects["projects"][0]["name"] == "shop");

  // A deploy that fails ends with exit code 1 and says how it ended.
  REQUIRE(c2d({"services", "create", "broken", "--project", "shop", "--repo", repo.path(), "--port",
               "8080", "--start", "sh -c 'exit 3'"})
              .code == 0);
  Run failed = c2d({"deploy", "shop/broken"});
  CHECK(failed.code == 1);
  CHECK_THAT(failed.output, Catch::Contains("c2d: the deploy ended failed"));
}

TEST_CASE("the CLI's databases: create, link with a redeploy, show, unlink, delete",
          "[gateway][cli][dbprov]") {
  Api api;
  Cli c2d(api);
  auto sample = testing::SampleRepo("2.0.0");
  // (Its own project name: apps' hostnames share the test ingress.)
  REQUIRE(c2d({"login", "--token", api.alice()}).code == 0);
  REQUIRE(c2d({"projects", "create", "dbcli"}).code == 0);
  REQUIRE(c2d({"services", "create", "hello", "--project", "dbcli", "--repo", sample->path(),
               "--port", "8080"})
              .code == 0);
  REQUIRE(c2d({"deploy", "dbcli/hello"}).code == 0);

  Run bad = c2d({"db", "create", "dbcli/pg", "--engine", "oracle"});
  CHECK(bad.code == 2);
  CHECK_THAT(bad.output, Catch::Contains("c2d: engine: must be postgres, mariadb or redis"));
  Run created = c2d({"db", "create", "dbcli/pg", "--engine", "postgres"});
  REQUIRE(created.code == 0);
  CHECK_THAT(created.output, Catch::Contains("provisioning pg (db_"));
  CHECK_THAT(created.output, Catch::Contains("pg (postgres 15, plan small, db_"));
  CHECK_THAT(created.output, Catch::Contains(")  available"));
  CHECK_THAT(c2d({"db", "list", "dbcli"}).output, Catch::Contains("available"));

  // Linking a running service redeploys it, with its logs followed.
  Run linked = c2d({"db", "link", "dbcli/pg", "dbcli/hello"});
  REQUIRE(linked.code == 0);
  CHECK_THAT(linked.output, Catch::Contains("a new release with DATABASE_URL is deploying"));
  CHECK_THAT(linked.output, Catch::Contains("deployed: the release is live"));
  Run show = c2d({"db", "show", "dbcli/pg"});
  CHECK(show.code == 0);
  CHECK_THAT(show.output, Catch::Contains("linked    " + Find(api, "dbcli", "hello")));
  CHECK_THAT(show.output, Catch::Contains("cron 0 3 * * * (UTC)"));
  Run in_use = c2d({"db", "delete", "dbcli/pg"});
  CHECK(in_use.code == 2);
  CHECK_THAT(in_use.output, Catch::Contains("unlink it first"));
  // Rotation redeploys hello onto the other login role and waits.
  Run rotated = c2d({"db", "rotate", "dbcli/pg"});
  INFO(rotated.output);
  CHECK(rotated.code == 0);
  CHECK_THAT(rotated.output, Catch::Contains("rotating pg: a new password on the idle login role"));
  CHECK_THAT(rotated.output, Catch::Contains("rotated: links now use login role b"));
  REQUIRE(c2d({"db", "unlink", "dbcli/pg", "dbcli/hello"}).code == 0);

  // A backup, listed, then restored into a new database.
  Run backup = c2d({"db", "backup", "dbcli/pg"});
  REQUIRE(backup.code == 0);
  CHECK_THAT(backup.output, Catch::Contains("backing up as bak_"));
  CHECK_THAT(backup.output, Catch::Contains("succeeded"));
  CHECK_THAT(backup.output, Catch::Contains("verified: 0 tables, 0 rows: as at dump time"));
  Run backups = c2d({"db", "backups", "dbcli/pg", "--json"});
  REQUIRE(backups.code == 0);
  const json list = json::parse(backups.output, nullptr, false);
  REQUIRE(list["backups"].size() == 1);
  Run restored =
      c2d({"db", "restore", "dbcli/pg", "--backup", list["backups"][0]["id"], "--into", "pg-copy"});
  CHECK(restored.code == 0);
  CHECK_THAT(restored.output, Catch::Contains("pg-copy (postgres 15"));
  CHECK_THAT(restored.output, Catch::Contains("  available"));
  Run deleted = c2d({"db", "delete", "dbcli/pg"});
  CHECK(deleted.code == 0);
  CHECK_THAT(deleted.output, Catch::Contains("deleting pg: a final backup (bak_"));
  Run quick = c2d({"db", "delete", "dbcli/pg-copy", "--no-final-backup"});
  CHECK(quick.code == 0);
  CHECK_THAT(quick.output, Catch::Contains("deleting pg-copy: its server and data are being"));
  CHECK_THAT(c2d({"db", "show", "dbcli/nope"}).output,
             Catch::Contains("project dbcli has no database named nope"));
}

TEST_CASE("the CLI's usage errors are one clear line", "[gateway][cli]") {
  Api api;
  Cli c2d(api);
  REQUIRE(c2d({"login", "--token", api.alice()}).code == 0);
  Run help = c2d({"--help"});
  CHECK(help.code == 0);
  CHECK_THAT(help.output, Catch::Contains("rollback S [--to DEPLOYMENT]"));
  for (const auto& [args, message] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"frobnicate"}, "c2d: unknown command frobnicate"},
           {{"deploy"}, "c2d: deploy: missing SERVICE"},
           {{"deploy", "nowhere/web"}, "c2d: no project named nowhere"},
           {{"deploy", "svc_01ABCDEFGHJKMNPQRSTVWXYZ00"}, "does not exist"},
           {{"services", "create", "x", "--project", "p", "--port", "eighty"},
            "c2d: --port must be a whole number"},
           {{"env", "set", "svc_01ABCDEFGHJKMNPQRSTVWXYZ00", "NOEQUALS"},
            "c2d: env set: write KEY=VALUE"},
           {{"projects", "create", "Not A Name"}, "c2d: name:"},
       }) {
    Run r = c2d(args);
    INFO(args[0]);
    CHECK(r.code == 2);
    CHECK_THAT(r.output, Catch::Contains(message));
    CHECK(std::count(r.output.begin(), r.output.end(), '\n') == 1);
  }
  // An API that cannot be reached.
  Run unreachable = c2d({"projects"}, {{"C2D_URL", "http://127.0.0.1:1"}});
  CHECK(unreachable.code == 2);
  CHECK_THAT(unreachable.output, Catch::StartsWith("c2d: cannot reach c2d at http://127.0.0.1:1"));
}

TEST_CASE("the CLI's domains: add prints the record to create, list says why it waits, remove",
          "[gateway][cli]") {
  Api api;
  Cli c2d(api);
  REQUIRE(c2d({"login", "--token", api.alice()}).code == 0);
  REQUIRE(c2d({"projects", "create", "shop"}).code == 0);
  REQUIRE(c2d({"services", "create", "web", "--project", "shop", "--repo",
               "https://git.example.com/o/web.git"})
              .code == 0);
  Run added = c2d({"domains", "add", "shop/web", "www.example.com"});
  CHECK(added.code == 0);
  CHECK_THAT(added.output, Catch::Contains("www.example.com.  CNAME  web.shop.localhost."));
  api.CertsSweep();
  Run list = c2d({"domains", "list", "shop/web"});
  CHECK(list.code == 0);
  CHECK_THAT(list.output, Catch::Contains("pending_dns"));
  CHECK_THAT(list.output, Catch::Contains("create    CNAME www.example.com -> web.shop.localhost"));
  CHECK_THAT(list.output, Catch::Contains("why"));
  Run bad = c2d({"domains", "add", "shop/web", "10.1.2.3"});
  CHECK(bad.code == 2);
  CHECK_THAT(bad.output, Catch::Contains("is an IP address"));
  CHECK(std::count(bad.output.begin(), bad.output.end(), '\n') == 1);
  Run removed = c2d({"domains", "remove", "shop/web", "WWW.example.com"});
  CHECK(removed.code == 0);
  CHECK_THAT(removed.output, Catch::Contains("removed www.example.com"));
  CHECK(api.Rows("domains") == 0);
}

}  // namespace
}  // namespace c2d
