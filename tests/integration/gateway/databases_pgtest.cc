// Managed databases over REST: the gateway in front of a real dbprov, whose
// PostgreSQL servers run on the test engine.

#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <pqxx/pqxx>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "libs/http/client.h"
#include "tests/integration/gateway/api_fixture.h"

namespace c2d {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::Api;
using testing::AppContainer;
using testing::Podman;
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
           {{{"name", "pg"}, {"engine", "mariadb"}, {"version", "10.6"}},
            "version",
            "must be 10.11"},
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

  auto bad = api.Call("DELETE", "/v1/databases/" + id + "?final_backup=no", alice);
  CHECK(bad.status == 400);
  CHECK_THAT(bad.body.dump(), Catch::Contains("final_backup: must be true or false"));
  auto deleted = api.Call("DELETE", "/v1/databases/" + id, alice);
  REQUIRE(deleted.status == 202);
  CHECK(deleted.body["state"] == "deleting");
  // A final backup first; it outlives the database, visible to its project only.
  REQUIRE(deleted.body["final_backup_id"].is_string());
  const std::string final_backup = deleted.body["final_backup_id"];
  CHECK_THAT(std::string(deleted.body["note"]), Catch::Contains("final backup (" + final_backup));
  CHECK(WaitFor(90s, [&] { return api.Call("GET", "/v1/databases/" + id, alice).status == 404; }));
  CHECK(api.Call("GET", databases, alice).body["databases"].empty());
  auto kept = api.Call("GET", "/v1/backups/" + final_backup, alice);
  REQUIRE(kept.status == 200);
  CHECK(kept.body["state"] == "succeeded");
  CHECK(kept.body["kind"] == "final");
  auto listed = api.Call("GET", "/v1/databases/" + id + "/backups", alice);
  REQUIRE(listed.status == 200);
  CHECK(listed.body["backups"].size() == 1);
  CHECK(api.Call("GET", "/v1/backups/" + final_backup, api.bob()).status == 404);
  CHECK(api.Call("GET", "/v1/databases/" + id + "/backups", api.bob()).status == 404);
}

// The first column of the first row of `sql` on the database at `url`.
std::string Scalar(const std::string& url, const std::string& sql) {
  pqxx::connection c(url);
  pqxx::nontransaction w(c);
  return w.exec1(sql)[0].as<std::string>();
}

void Exec(const std::string& url, const std::string& sql) {
  pqxx::connection c(url);
  pqxx::nontransaction w(c);
  w.exec(sql);
}

TEST_CASE(
    "backups over REST: restore-verified, restored in place and into a new database, a "
    "corrupted one refused",
    "[gateway][dbprov]") {
  Api api;
  const std::string& alice = api.alice();
  const std::string project =
      api.Call("POST", "/v1/projects", alice, json{{"name", "ledger"}}).body["id"];
  auto made = api.Call("POST", "/v1/projects/" + project + "/databases", alice,
                       json{{"name", "orders"}, {"engine", "postgres"}});
  REQUIRE(made.status == 202);
  const std::string db = made.body["id"];
  auto wait_state = [&](const std::string& id, const std::string& state) {
    json d;
    CHECK(WaitFor(120s, [&] {
      d = api.Call("GET", "/v1/databases/" + id, alice).body;
      return d["state"] == state || d["state"] == "failed";
    }));
    INFO(d.dump());
    REQUIRE(d["state"] == state);
  };
  wait_state(db, "available");
  const std::string url = api.DatabaseAdminUrl(db);
  Exec(url,
       "SET ROLE orders_owner; CREATE TABLE items AS SELECT g AS n FROM generate_series(1, 1000) g;"
       "CREATE TABLE notes (t text); INSERT INTO notes VALUES ('a'), ('b'), ('c')");

  auto backup = api.Call("POST", "/v1/databases/" + db + "/backups", alice, std::string("{}"));
  REQUIRE(backup.status == 202);
  CHECK(backup.body["state"] == "pending");
  const std::string id = backup.body["id"];
  json b;
  CHECK(WaitFor(120s, [&] {
    b = api.Call("GET", "/v1/backups/" + id, alice).body;
    return b["state"] == "succeeded" || b["state"] == "failed";
  }));
  INFO(b.dump());
  REQUIRE(b["state"] == "succeeded");
  CHECK(b["verified"] == true);
  CHECK(b["verification"] == "2 tables, 1003 rows: as at dump time");
  CHECK(b["size_bytes"].get<int64_t>() > 1000);
  CHECK(b["sha256"].get<std::string>().size() == 64);
  auto list = api.Call("GET", "/v1/databases/" + db + "/backups", alice);
  REQUIRE(list.body["backups"].size() == 1);
  CHECK(list.body["backups"][0]["id"] == id);
  CHECK_FALSE(api.Call("GET", "/v1/databases/" + db, alice).body["last_backup_at"].is_null());
  // No scratch server is left behind.
  CHECK(api.deployer().provider().List({{"c2d.verify", id}})->empty());

  // Another tenant sees none of it; bad restores change nothing.
  CHECK(api.Call("GET", "/v1/backups/" + id, api.bob()).status == 404);
  CHECK(api.Call("GET", "/v1/databases/" + db + "/backups", api.bob()).status == 404);
  CHECK(api.Call("POST", "/v1/backups/" + id + "/restore", api.bob(), std::string("{}")).status ==
        404);
  CHECK(api.Call("POST", "/v1/databases/" + db + "/backups", api.bob(), std::string("{}")).status ==
        404);
  CHECK(api.Call("GET", "/v1/backups/bak_nope", alice).status == 404);
  auto bad_name =
      api.Call("POST", "/v1/backups/" + id + "/restore", alice, json{{"new_database_name", "Bad"}});
  CHECK(bad_name.status == 400);
  CHECK(bad_name.Field() == "new_database_name");
  CHECK(api.Call("POST", "/v1/backups/" + id + "/restore", alice, json{{"into", "x"}}).status ==
        400);
  CHECK(api.Call("POST", "/v1/backups/" + id + "/restore", alice,
                 json{{"new_database_name", "orders"}})
            .status == 409);

  // Restored in place: the data as it was, owned as before.
  Exec(url, "DELETE FROM items; DROP TABLE notes; CREATE TABLE later (x int)");
  auto in_place = api.Call("POST", "/v1/backups/" + id + "/restore", alice, std::string("{}"));
  REQUIRE(in_place.status == 202);
  CHECK(in_place.body["state"] == "restoring");
  wait_state(db, "available");
  CHECK(Scalar(url, "SELECT count(*) FROM items") == "1000");
  CHECK(Scalar(url, "SELECT string_agg(t, '' ORDER BY t) FROM notes") == "abc");
  CHECK(Scalar(url, "SELECT count(*) FROM pg_tables WHERE tablename = 'later'") == "0");
  CHECK(Scalar(url, "SELECT tableowner FROM pg_tables WHERE tablename = 'items'") ==
        "orders_owner");

  // Into a new database of the project.
  auto copy = api.Call("POST", "/v1/backups/" + id + "/restore", alice,
                       json{{"new_database_name", "orders-copy"}});
  REQUIRE(copy.status == 202);
  const std::string copy_id = copy.body["id"];
  CHECK(copy.body["name"] == "orders-copy");
  wait_state(copy_id, "available");
  const std::string copy_url = api.DatabaseAdminUrl(copy_id);
  CHECK(Scalar(copy_url, "SELECT count(*) FROM items") == "1000");
  CHECK(Scalar(copy_url, "SELECT tableowner FROM pg_tables WHERE tablename = 'items'") ==
        "orders-copy_owner");

  // A backup whose stored bytes changed is refused, and nothing changes.
  auto path = api.backups().PathOf(dbprov::BackupKey(db, id));
  REQUIRE(path.ok());
  {
    std::fstream f(*path, std::ios::in | std::ios::out | std::ios::binary);
    REQUIRE(f.good());
    f.seekp(200);
    f.put('\x5a');
  }
  auto corrupted = api.Call("POST", "/v1/backups/" + id + "/restore", alice, std::string("{}"));
  CHECK(corrupted.status == 409);
  CHECK_THAT(corrupted.Error(), Catch::Contains("is corrupted and cannot be restored"));
  CHECK(api.Call("GET", "/v1/databases/" + db, alice).body["state"] == "available");
  CHECK(Scalar(url, "SELECT count(*) FROM items") == "1000");
}

// examples/notes-python as a repository of its own.
std::unique_ptr<testing::GitRepo> NotesRepo() {
  const std::filesystem::path dir = std::filesystem::path(C2D_SOURCE_DIR) / "examples/notes-python";
  auto read = [&](const char* name) {
    std::ifstream in(dir / name);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  };
  return std::make_unique<testing::GitRepo>(
      std::initializer_list<std::pair<std::string, std::string>>{
          {"app.py", read("app.py")},
          {"Procfile", read("Procfile")},
          {"requirements.txt", read("requirements.txt")}});
}

// A request to an app through the ingress: status and body.
std::pair<long, std::string> ViaIngress(const std::string& method, const std::string& host,
                                        const std::string& path, const std::string& body = "") {
  auto r =
      http::Send({.method = method,
                  .url = absl::StrCat("http://", testing::RequireEnv("C2D_TEST_CADDY_HTTP"), path),
                  .headers = {{"Host", host}},
                  .body = body,
                  .timeout = 10s});
  REQUIRE(r.ok());
  return {r->status, r->body};
}

class Project {
 public:
  Project(Api& api, const std::string& name, const std::string& token) : api_(api), token_(token) {
    auto p = api.Call("POST", "/v1/projects", token, json{{"name", name}});
    REQUIRE(p.status == 201);
    id_ = p.body["id"];
  }
  const std::string& id() const { return id_; }

  std::string Service(const std::string& name, const std::string& repo, json env = nullptr) {
    json body = testing::ServiceBody(name, repo);
    if (!env.is_null()) body["env"] = env;
    auto s = api_.Call("POST", "/v1/projects/" + id_ + "/services", token_, body);
    REQUIRE(s.status == 201);
    return s.body["id"];
  }
  std::string Database(const std::string& name, const std::string& engine = "postgres") {
    auto d = api_.Call("POST", "/v1/projects/" + id_ + "/databases", token_,
                       json{{"name", name}, {"engine", engine}});
    REQUIRE(d.status == 202);
    return d.body["id"];
  }
  void WaitAvailable(const std::string& db) {
    json d;
    CHECK(WaitFor(90s, [&] {
      d = api_.Call("GET", "/v1/databases/" + db, token_).body;
      return d["state"] == "available" || d["state"] == "failed";
    }));
    INFO(d.dump());
    REQUIRE(d["state"] == "available");
  }
  // The deployment's last state and failure reason, once it settled.
  std::pair<std::string, std::string> Settled(const std::string& deployment) {
    auto events = api_.Events("/v1/deployments/" + deployment + "/logs", token_);
    REQUIRE(!events.empty());
    const json view = api_.Call("GET", "/v1/deployments/" + deployment, token_).body;
    // A build's view holds its deployment, if it got one.
    const json& d = view["deployment"].is_object() ? view["deployment"] : view["build"];
    return {events.back().data.value("state", ""),
            d.is_object() && d["failure_reason"].is_string() ? d["failure_reason"] : ""};
  }
  std::pair<std::string, std::string> Deploy(const std::string& service) {
    auto d = api_.Call("POST", "/v1/services/" + service + "/deployments", token_, json::object());
    REQUIRE(d.status == 202);
    return Settled(d.body["id"]);
  }

 private:
  Api& api_;
  std::string token_, id_;
};

TEST_CASE("a linked database reaches its app as DATABASE_URL and by name, and only its project's",
          "[gateway][dbprov]") {
  Api api;
  const std::string& alice = api.alice();
  auto repo = NotesRepo();
  Project shop(api, "linkshop", alice), other(api, "other", alice);
  const std::string db = shop.Database("notes-db");
  const std::string notes = shop.Service("notes", repo->path());
  // Another service reads the same database through a reference in its env,
  // its link under a prefix of its own.
  const std::string copy = shop.Service(
      "copy", repo->path(),
      json{{"DATABASE_URL", {{"value", "${{ db.notes-db.URL }}"}, {"secret", false}}}});
  const std::string elsewhere = other.Service("elsewhere", repo->path());
  shop.WaitAvailable(db);
  const std::string links = "/v1/databases/" + db + "/links";
  // Its name on the project's network, published before it showed available.
  auto servers = api.deployer().provider().List({{"c2d.database", db}});
  REQUIRE(servers.ok());
  REQUIRE(servers->size() == 1);
  auto named = api.deployer().dns().pdns().Get("internal.localhost.",
                                               "notes-db.linkshop.internal.localhost.", "A");
  REQUIRE(named.ok());
  CHECK(named->records == std::vector<std::string>{servers->front().private_address});

  // Bad links change nothing.
  struct Bad {
    json body;
    int status;
    std::string field, text;
  };
  const int64_t before = api.Rows("database_links");
  for (const Bad& bad : std::vector<Bad>{
           {json::object(), 400, "service_id", "is required"},
           {{{"service_id", notes}, {"env_prefix", "lower"}}, 400, "env_prefix", "A-Z"},
           {{{"service_id", notes}, {"extra", 1}}, 400, "extra", ""},
           {{{"service_id", 5}}, 400, "service_id", ""},
           {{{"service_id", elsewhere}}, 400, "service_id", "the database's project"},
           {{{"service_id", "svc_nope"}}, 404, "", "does not exist"}}) {
    INFO(bad.body.dump());
    auto r = api.Call("POST", links, alice, bad.body);
    CHECK(r.status == bad.status);
    CHECK(r.Field() == bad.field);
    CHECK_THAT(r.Error(), Catch::Contains(bad.text));
  }
  CHECK(api.Call("POST", links, api.bob(), json{{"service_id", notes}}).status == 404);
  CHECK(api.Rows("database_links") == before);

  // Linked before its first deployment: nothing to redeploy yet.
  auto linked = api.Call("POST", links, alice, json{{"service_id", notes}});
  REQUIRE(linked.status == 201);
  CHECK(linked.body["env_prefix"] == "DATABASE");
  CHECK(linked.body["deployment_id"].is_null());
  CHECK(api.Call("POST", links, alice, json{{"service_id", notes}}).status == 409);
  auto prefixed =
      api.Call("POST", links, alice, json{{"service_id", copy}, {"env_prefix", "NOTES"}});
  REQUIRE(prefixed.status == 201);
  CHECK(api.Call("GET", links, alice).body["links"].size() == 2);

  auto live = shop.Deploy(notes);
  INFO(live.second);
  REQUIRE(live.first == "live");
  REQUIRE(shop.Deploy(copy).first == "live");
  const std::string host = "notes.linkshop.localhost";
  CHECK(ViaIngress("POST", host, "/notes", "first note").first == 201);
  CHECK(ViaIngress("GET", host, "/").second == "1 notes\nfirst note\n");
  CHECK(ViaIngress("GET", "copy.linkshop.localhost", "/").second == "1 notes\nfirst note\n");

  // The app reaches the server by its name (/etc/hosts) on the project's
  // network; the app of another project cannot connect at all.
  auto [app, app_ip] = AppContainer(shop.id(), notes);
  const std::string db_host = api.Call("GET", "/v1/databases/" + db, alice).body["host"];
  const std::string hosts = Podman({"exec", app, "cat", "/etc/hosts"});
  CHECK_THAT(hosts, Catch::Contains(db_host));
  const std::string db_ip =
      Podman({"exec", app, "python3", "-c",
              "import socket,sys; print(socket.gethostbyname(sys.argv[1]))", db_host});
  auto connects = [&](const std::string& container) {
    return Podman({"exec", container, "python3", "-c",
                   "import socket,sys; socket.create_connection((sys.argv[1], 5432), 3); "
                   "print('connected')",
                   db_ip});
  };
  CHECK(connects(app) == "connected");
  // An instance of the same image on the other project's network.
  const std::string network = cloud::ProjectNetwork(other.id());
  REQUIRE(api.deployer().provider().EnsureNetwork(network).ok());
  const std::string stranger =
      Podman({"run", "-d", "--network", network,
              Podman({"inspect", "--format", "{{.ImageName}}", app}), "sleep", "120"});
  const std::string refused_here = connects(stranger);
  CHECK(refused_here != "connected");
  CHECK_THAT(refused_here, Catch::Contains("Error"));  // timed out, unreachable
  Podman({"rm", "-f", "-t", "0", stranger});
  CHECK(api.deployer().provider().RemoveNetwork(network).ok());

  // A linked database cannot be deleted; unlinking redeploys, and a release
  // that needs a database it no longer has never replaces the live one.
  auto refused = api.Call("DELETE", "/v1/databases/" + db, alice);
  CHECK(refused.status == 409);
  CHECK_THAT(refused.Error(), Catch::Contains("unlink it first"));
  auto unlinked = api.Call("DELETE", links + "/" + notes, alice);
  REQUIRE(unlinked.status == 200);
  REQUIRE(unlinked.body["deployment_id"].is_string());
  CHECK(shop.Settled(unlinked.body["deployment_id"]).first == "failed");
  CHECK(ViaIngress("GET", host, "/").second == "1 notes\nfirst note\n");
  CHECK(api.Call("DELETE", links + "/" + notes, alice).status == 404);
  // A reference to a database the service is not linked to fails the release.
  REQUIRE(api.Call("PATCH", "/v1/services/" + copy + "/env", alice,
                   json{{"env", {{"DATABASE_URL", {{"value", "${{ db.nope.URL }}"}}}}}})
              .status == 200);
  auto broken = shop.Deploy(copy);
  CHECK(broken.first == "failed");
  CHECK_THAT(broken.second, Catch::Contains("database nope, which is not linked"));
}

TEST_CASE("credentials rotate while the linked app serves: every request answers 200",
          "[gateway][dbprov]") {
  Api api;
  const std::string& alice = api.alice();
  auto repo = NotesRepo();
  Project shop(api, "rotshop", alice);
  const std::string db = shop.Database("rot-db");
  const std::string notes = shop.Service("rnotes", repo->path());
  shop.WaitAvailable(db);
  REQUIRE(api.Call("POST", "/v1/databases/" + db + "/links", alice, json{{"service_id", notes}})
              .status == 201);
  auto live = shop.Deploy(notes);
  INFO(live.second);
  REQUIRE(live.first == "live");
  const std::string host = "rnotes.rotshop.localhost";
  // A new hostname routes once Caddy's upstream table refreshes (250 ms).
  REQUIRE(WaitFor(5s, [&] { return ViaIngress("GET", host, "/health").first == 200; }));
  REQUIRE(ViaIngress("POST", host, "/notes", "before").first == 201);
  auto live_release = [&] {
    const json list = api.Call("GET", "/v1/services/" + notes + "/deployments", alice).body;
    for (const json& d : list["deployments"]) {
      if (d["state"] == "live") return std::string(d["id"]);
    }
    return std::string();
  };
  const std::string first_release = live_release();
  REQUIRE(!first_release.empty());

  // A client keeps reading through the ingress for the whole rotation.
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0};
  std::mutex mu;
  std::vector<std::string> failures;
  std::thread client([&] {
    while (!stop) {
      auto r = http::Send(
          {.url = absl::StrCat("http://", testing::RequireEnv("C2D_TEST_CADDY_HTTP"), "/"),
           .headers = {{"Host", host}},
           .timeout = 10s});
      if (r.ok() && r->status == 200 && absl::StartsWith(r->body, "1 notes")) {
        ++ok;
      } else {
        std::lock_guard<std::mutex> l(mu);
        failures.push_back(r.ok() ? absl::StrCat(r->status, " ", r->body) : r.status().ToString());
      }
      std::this_thread::sleep_for(50ms);
    }
  });

  const std::string rotate = "/v1/databases/" + db + "/rotate-credentials";
  CHECK(api.Call("POST", rotate, api.bob(), json::object()).status == 404);
  auto started = api.Call("POST", rotate, alice, json::object());
  REQUIRE(started.status == 202);
  CHECK(started.body["state"] == "rotating");
  CHECK(started.body["retiring_role"] == "a");
  auto busy = api.Call("POST", rotate, alice, json::object());
  CHECK(busy.status == 409);
  CHECK_THAT(busy.Error(), Catch::Contains("is rotating"));
  json d;
  CHECK(WaitFor(180s, [&] {
    d = api.Call("GET", "/v1/databases/" + db, alice).body;
    return d["state"] != "rotating";
  }));
  std::this_thread::sleep_for(1s);
  stop = true;
  client.join();
  INFO(d.dump());
  CHECK(d["state"] == "available");
  CHECK(d["failure_reason"].is_null());
  CHECK(d["active_role"] == "b");
  CHECK(d["retiring_role"].is_null());
  CHECK(d["last_rotated_at"].is_string());
  {
    std::lock_guard<std::mutex> l(mu);
    INFO(absl::StrJoin(failures, "\n"));
    CHECK(failures.empty());
  }
  CHECK(ok > 20);

  // The app runs a new release, on role b; role a can no longer log in.
  const std::string now_live = live_release();
  CHECK(!now_live.empty());
  CHECK(now_live != first_release);
  const std::string admin = api.DatabaseAdminUrl(db);
  pqxx::connection c(admin);
  pqxx::nontransaction w(c);
  CHECK(w.exec1("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'rot-db_a'")[0].as<bool>() ==
        false);
  CHECK(w.exec1("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'rot-db_b'")[0].as<bool>());
  CHECK(w.exec1("SELECT count(*) FROM pg_stat_activity WHERE usename = 'rot-db_a'")[0].as<int>() ==
        0);
  CHECK(ViaIngress("POST", host, "/notes", "after").first == 201);
  CHECK(ViaIngress("GET", host, "/").second == "2 notes\nafter\nbefore\n");
}

TEST_CASE("the notes app runs on a linked MariaDB and on a linked Redis", "[gateway][dbprov]") {
  Api api;
  const std::string& alice = api.alice();
  auto repo = NotesRepo();
  Project shop(api, "engshop", alice);
  struct Case {
    std::string engine, prefix;
  };
  for (const Case& c : {Case{"mariadb", "MYSQL"}, Case{"redis", "REDIS"}}) {
    INFO(c.engine);
    const std::string db = shop.Database(c.engine + "-db", c.engine);
    const std::string svc = shop.Service("on-" + c.engine, repo->path());
    shop.WaitAvailable(db);
    auto linked =
        api.Call("POST", "/v1/databases/" + db + "/links", alice, json{{"service_id", svc}});
    REQUIRE(linked.status == 201);
    CHECK(linked.body["env_prefix"] == c.prefix);
    auto live = shop.Deploy(svc);
    INFO(live.second);
    REQUIRE(live.first == "live");
    const std::string host = "on-" + c.engine + ".engshop.localhost";
    // A new hostname routes once Caddy's upstream table refreshes (250 ms).
    CHECK(WaitFor(5s, [&] { return ViaIngress("GET", host, "/health").first == 200; }));
    CHECK(ViaIngress("POST", host, "/notes", "first").first == 201);
    CHECK(ViaIngress("POST", host, "/notes", "second é").first == 201);
    CHECK(ViaIngress("GET", host, "/").second == "2 notes\nsecond é\nfirst\n");
    // The app got <PREFIX>_URL of the engine's scheme, and reaches the
    // server by name.
    auto [app, unused] = AppContainer(shop.id(), svc);
    const std::string url =
        Podman({"exec", app, "python3", "-c", "import os, sys; print(os.environ[sys.argv[1]])",
                c.prefix + "_URL"});
    CHECK(absl::StartsWith(url,
                           (c.engine == "redis" ? "redis://" : "mysql://") + c.engine + "-db_a:"));
    const std::string db_host = api.Call("GET", "/v1/databases/" + db, alice).body["host"];
    CHECK_THAT(url, Catch::Contains("@" + db_host + ":"));
  }
}

}  // namespace
}  // namespace c2d
