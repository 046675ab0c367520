// A hostile tenant against the REST API: each test reproduces an attack on
// the machine that builds and runs tenants' code, and shows it failing with
// a clear message, while the legitimate use next to it still works.

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "libs/common/command.h"
#include "libs/common/ids.h"
#include "libs/http/client.h"
#include "tests/integration/gateway/api_fixture.h"

namespace c2d {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using nlohmann::json;
using testing::Api;
using testing::AppContainer;
using testing::Podman;
using testing::RunPodman;
using testing::ServiceBody;

// What became of one deployment request.
struct Result {
  std::string id;              // the deployment request's (the build's) id
  std::string state;           // the build's or the release's final state
  std::string failure_reason;  // the build's
  std::string log;             // every build log line, one per line
};

class Tenant {
 public:
  explicit Tenant(Api& api, const std::string& project = "") : api_(api), t_(api.alice()) {
    project_ =
        api_.Call("POST", "/v1/projects", t_, json{{"name", project.empty() ? "evil" : project}})
            .body["id"];
  }

  // POST /services; returns the reply (201 or the refusal).
  Api::Reply Create(json body) {
    return api_.Call("POST", absl::StrCat("/v1/projects/", project_, "/services"), t_, body);
  }

  // Creates the service and deploys it; follows the logs to the end.
  Result Deploy(json body) {
    auto created = Create(std::move(body));
    REQUIRE(created.status == 201);
    const std::string service = created.body["id"];
    auto started =
        api_.Call("POST", "/v1/services/" + service + "/deployments", t_, json::object());
    REQUIRE(started.status == 202);
    const std::string id = started.body["id"];
    Result r;
    r.id = id;
    for (const auto& e : api_.Events("/v1/deployments/" + id + "/logs", t_)) {
      if (e.event == "build") absl::StrAppend(&r.log, e.data.value("text", ""), "\n");
      if (e.event == "end") r.state = e.data.value("state", "");
    }
    auto view = api_.Call("GET", "/v1/deployments/" + id, t_);
    if (view.body["build"].is_object() && view.body["build"]["failure_reason"].is_string()) {
      r.failure_reason = view.body["build"]["failure_reason"];
    }
    UNSCOPED_INFO("build log:\n" << r.log);
    return r;
  }

  const std::string& token() const { return t_; }
  const std::string& project() const { return project_; }

 private:
  Api& api_;
  std::string t_;
  std::string project_;
};

// Runs git in `dir`; the test fails if it does.
void Git(const std::string& dir, std::vector<std::string> args) {
  args.insert(args.begin(), {"git", "-c", "user.name=e", "-c", "user.email=e@x"});
  auto r = RunCommand({.argv = args, .cwd = dir});
  REQUIRE(r.ok());
  INFO(r->output);
  REQUIRE(r->exit_code == 0);
}

// Commits everything in the repository at `dir`.
void CommitAll(const std::string& dir, const std::string& message) {
  Git(dir, {"add", "-A"});
  Git(dir, {"commit", "-q", "-m", message});
}

// A git repository made by a test: files, and symlinks (path → target).
std::string HostileRepo(const std::map<std::string, std::string>& files,
                        const std::map<std::string, std::string>& links = {}) {
  const fs::path dir = fs::path(testing::LocalRepoRoot()) / ids::New("evil");
  fs::create_directories(dir);
  for (const auto& [path, content] : files) {
    fs::create_directories((dir / path).parent_path());
    std::ofstream(dir / path) << content;
  }
  for (const auto& [path, target] : links) fs::create_symlink(target, dir / path);
  Git(dir.string(), {"init", "-q", "-b", "main"});
  CommitAll(dir.string(), "evil");
  return dir.string();
}

// The static stack image (busybox; serves /srv on $PORT).
std::string Stack() {
  std::string url = testing::RequireEnv("C2D_TEST_REGISTRY_URL");
  return builder::Stacks::FromEnv(url.substr(url.find("://") + 3)).images.at("static");
}

json WithDockerfile(json body, const std::string& path) {
  body["build"] = {{"strategy", "dockerfile"}, {"dockerfile_path", path}};
  return body;
}

// The port of an http://host:port URL from the environment.
std::string PortOf(const char* var) {
  const std::string url = testing::RequireEnv(var);
  return url.substr(url.rfind(':') + 1);
}

TEST_CASE("attack: build steps reach none of this machine's loopback services",
          "[gateway][isolation]") {
  Api api;
  Tenant evil(api);
  const std::string caddy = PortOf("C2D_TEST_CADDY_ADMIN");
  std::string pg = testing::RequireEnv("C2D_TEST_PG_URL");
  pg = pg.substr(pg.rfind(':') + 1, pg.rfind('/') - pg.rfind(':') - 1);
  // Every target answers a plain TCP client on this machine (checked below);
  // from a build step each must be unreachable. (The words are split in the
  // step's text, which the log shows too.)
  std::string probe = "RUN cat /proc/self/uid_map; for t in";
  for (const std::string& t :
       {"127.0.0.1:" + caddy, "10.0.2.2:" + caddy, "127.0.0.1:" + pg, "10.0.2.2:" + pg}) {
    absl::StrAppend(&probe, " ", t);
  }
  absl::StrAppend(&probe,
                  "; do if printf 'GET /config/ HTTP/1.0\\r\\n\\r\\n' | timeout 4 nc "
                  "${t%:*} ${t#*:} 2>/dev/null | grep -q .; then echo \"rea\"\"ched $t\"; "
                  "else echo \"blo\"\"cked $t\"; fi; done\n");
  const std::string repo = HostileRepo(
      {{"Dockerfile", absl::StrCat("FROM ", Stack(), "\n", probe, "COPY health /srv/health\n")},
       {"health", "ok\n"}});
  Result r = evil.Deploy(ServiceBody("web", repo));
  CHECK(r.state == "live");
  CHECK_FALSE(absl::StrContains(r.log, "reached"));
  CHECK(absl::StrContains(r.log, "blocked 127.0.0.1:" + caddy));
  CHECK(absl::StrContains(r.log, "blocked 10.0.2.2:" + pg));
  // uid 0 of the step is the unprivileged build user, not the host's root.
  CHECK_FALSE(absl::StrContains(r.log, "4294967295"));
  // The same targets do answer here, so "blocked" means the sandbox.
  auto admin = http::Send({.url = testing::RequireEnv("C2D_TEST_CADDY_ADMIN") + "/config/"});
  REQUIRE(admin.ok());
  CHECK(admin->status == 200);

  // ADD <url> is fetched by the engine on the host's network: refused.
  const std::string add =
      HostileRepo({{"Dockerfile", absl::StrCat("FROM ", Stack(), "\nADD http://127.0.0.1:", caddy,
                                               "/config/ /caddy.json\nRUN cat /caddy.json\n")}});
  Result refused = evil.Deploy(ServiceBody("add", add));
  CHECK(refused.state == "build_failed");
  CHECK(absl::StrContains(refused.failure_reason, "ADD from a URL is not allowed"));
  CHECK_FALSE(absl::StrContains(refused.log, "\"admin\""));
}

TEST_CASE("attack: a bind mount from a stage cannot open the host's filesystem",
          "[gateway][isolation]") {
  Api api;
  Tenant evil(api);
  const fs::path marker = fs::path(testing::RequireEnv("C2D_TEST_TMP")) / ids::New("pwned");
  // CVE-2024-1753, unfixed in Debian 12's podman: a symlink to / in one
  // stage, bind-mounted read-write into a step of the next.
  const std::string repo =
      HostileRepo({{"Dockerfile", absl::StrCat("FROM ", Stack(), " AS base\n",
                                               "RUN ln -s / /rootdir\n", "FROM ", Stack(),
                                               "\nRUN --mount=type=bind,from=base,source=/"
                                               "rootdir,target=/host,rw touch /host",
                                               marker.string(), "\n")}});
  Result r = evil.Deploy(ServiceBody("web", repo));
  CHECK(r.state == "build_failed");
  CHECK(absl::StrContains(r.failure_reason, "RUN --mount=type=bind is not allowed"));
  CHECK_FALSE(fs::exists(marker));

  // A legitimate multi-stage build still builds and runs.
  const std::string ok = HostileRepo(
      {{"Dockerfile", absl::StrCat("FROM ", Stack(), " AS build\n",
                                   "RUN mkdir -p /tmp/out && echo ok > /tmp/out/health\n",
                                   "RUN --mount=type=tmpfs,target=/tmp/s touch /tmp/s/x\n", "FROM ",
                                   Stack(), "\nCOPY --from=build /tmp/out/health /srv/health\n")}});
  CHECK(evil.Deploy(ServiceBody("multi", ok)).state == "live");
}

// Whether an HTTP request from container `from` to ip:8080 gets an answer.
bool Reaches(const std::string& from, const std::string& ip) {
  const std::string out =
      Podman({"exec", from, "/bin/sh", "-c",
              absl::StrCat("printf 'GET /health HTTP/1.0\\r\\n\\r\\n' | timeout 4 nc ", ip,
                           " 8080 2>&1 | head -n 1")});
  return absl::StartsWith(out, "HTTP/");
}

TEST_CASE("attack: an app cannot connect to another project's app, only to its own project's",
          "[gateway][isolation]") {
  Api api;
  Tenant victim(api, "victim"), evil(api, "evil");
  const std::string repo = HostileRepo({{"index.html", "private\n"}, {"health", "ok\n"}});
  REQUIRE(victim.Deploy(ServiceBody("db", repo)).state == "live");
  REQUIRE(evil.Deploy(ServiceBody("web", repo)).state == "live");
  REQUIRE(evil.Deploy(ServiceBody("api", repo)).state == "live");
  auto service_id = [&](Tenant& t, const std::string& name) {
    auto list = api.Call("GET", "/v1/projects/" + t.project() + "/services", t.token());
    for (const auto& s : list.body["services"]) {
      if (s["name"] == name) return s["id"].get<std::string>();
    }
    FAIL("no service " << name);
    return std::string();
  };
  auto [db, db_ip] = AppContainer(victim.project(), service_id(victim, "db"));
  auto [web, web_ip] = AppContainer(evil.project(), service_id(evil, "web"));
  auto [api_ctr, api_ip] = AppContainer(evil.project(), service_id(evil, "api"));
  INFO("victim db " << db_ip << ", evil web " << web_ip << ", evil api " << api_ip);
  CHECK(Reaches(web, api_ip));  // the same project: by address
  CHECK(Reaches(api_ctr, web_ip));
  CHECK_FALSE(Reaches(web, db_ip));  // another project's: nothing answers
  CHECK_FALSE(Reaches(db, web_ip));
  // Published ports stay on the host's loopback.
  const std::string ports = Podman({"port", db});
  CHECK(absl::StartsWith(ports, "8080/tcp -> 127.0.0.1:"));

  // The network goes with the project's last instance.
  const std::string network = "c2d-" + absl::AsciiStrToLower(victim.project());
  auto network_exists = [&] { return RunPodman({"network", "exists", network}).exit_code == 0; };
  CHECK(network_exists());
  const std::string svc = service_id(victim, "db");
  REQUIRE(api.Call("DELETE", "/v1/services/" + svc, victim.token()).status == 204);
  REQUIRE(api.Call("DELETE", "/v1/projects/" + victim.project(), victim.token()).status == 204);
  CHECK(testing::WaitFor(30s, [&] { return !network_exists(); }));
}

// The commit at the head of a test repository.
std::string Head(const std::string& repo) {
  auto r = RunCommand({.argv = {"git", "rev-parse", "HEAD"}, .cwd = repo});
  REQUIRE(r.ok());
  return std::string(absl::StripAsciiWhitespace(r->output));
}

TEST_CASE("attack: a build cannot pull another project's image, only its own project's",
          "[gateway][isolation]") {
  Api api;
  Tenant victim(api, "victim"), evil(api, "evil");
  std::string registry = testing::RequireEnv("C2D_TEST_REGISTRY_URL");
  registry = registry.substr(registry.find("://") + 3);
  const std::string secret_repo =
      HostileRepo({{"index.html", "victim's code\n"}, {"health", "ok\n"}});
  Result built = victim.Deploy(ServiceBody("db", secret_repo));
  REQUIRE(built.state == "live");
  // By its commit tag (in the registry only), and by its build tag, under
  // which the build engine also holds a copy.
  int n = 0;
  for (const std::string& tag : {Head(secret_repo), built.id}) {
    INFO(tag);
    const std::string steal =
        HostileRepo({{"Dockerfile", absl::StrCat("FROM ", registry, "/victim/db:", tag,
                                                 "\nRUN cat /srv/index.html\n")}});
    Result r = evil.Deploy(ServiceBody(absl::StrCat("thief", ++n), steal));
    CHECK(r.state == "build_failed");
    CHECK_FALSE(absl::StrContains(r.log, "victim's code"));
    CHECK((absl::StrContains(r.failure_reason, "denied") ||
           absl::StrContains(r.failure_reason, "unauthorized") ||
           absl::StrContains(r.failure_reason, "authentication required")));
  }

  // Its own project's earlier image is fine.
  const std::string own = HostileRepo({{"index.html", "evil's own\n"}, {"health", "ok\n"}});
  REQUIRE(evil.Deploy(ServiceBody("base", own)).state == "live");
  const std::string reuse =
      HostileRepo({{"Dockerfile", absl::StrCat("FROM ", registry, "/evil/base:", Head(own),
                                               "\nRUN cat /srv/index.html\n")}});
  Result ok = evil.Deploy(ServiceBody("reuse", reuse));
  CHECK(ok.state == "live");
  CHECK(absl::StrContains(ok.log, "evil's own"));
}

TEST_CASE("attack: a Dockerfile path that makes the engine read host files is refused",
          "[gateway][isolation]") {
  Api api;
  Tenant evil(api);
  const std::string repo = HostileRepo({{"index.html", "hi\n"}});
  const auto before = api.Snapshot();
  // The engine runs cpp over *.in Containerfiles: #include reads the host.
  for (const char* path : {"Dockerfile.in", "/etc/passwd", "../../etc/passwd", "./Dockerfile"}) {
    INFO(path);
    auto r = evil.Create(WithDockerfile(ServiceBody("web", repo), path));
    CHECK(r.status == 400);
    CHECK(r.Field() == "build.dockerfile_path");
  }
  CHECK(api.Snapshot() == before);

  // A Dockerfile that is a symlink to a host file is not followed.
  const std::string host_file = testing::RequireEnv("C2D_TEST_TMP") + "/host-secret.txt";
  std::ofstream(host_file) << "FROM " << Stack() << "\nLABEL secret=host-secret-7f3a\n";
  const std::string linked = HostileRepo({{"index.html", "hi\n"}}, {{"Dockerfile", host_file}});
  Result r = evil.Deploy(ServiceBody("linked", linked));
  CHECK(r.state == "build_failed");
  CHECK(absl::StrContains(r.failure_reason, "leads outside the repository"));
  CHECK_FALSE(absl::StrContains(r.log, "host-secret-7f3a"));
}

TEST_CASE("attack: a root_dir symlink to a host directory is not built or served",
          "[gateway][isolation]") {
  Api api;
  Tenant evil(api);
  const fs::path host_dir = fs::path(testing::RequireEnv("C2D_TEST_TMP")) / ids::New("hostdir");
  fs::create_directories(host_dir);
  std::ofstream(host_dir / "index.html") << "host data\n";
  const std::string repo = HostileRepo({{"README", "x\n"}}, {{"app", host_dir.string()}});
  json body = ServiceBody("web", repo);
  body["source"]["root_dir"] = "app";
  Result r = evil.Deploy(body);
  CHECK(r.state == "build_failed");
  CHECK(absl::StrContains(r.failure_reason,
                          "root_dir \"app\" is a symlink that leads outside the repository"));
  CHECK_FALSE(fs::exists(host_dir / "Dockerfile.c2d"));

  // The generated Dockerfile is never written through a symlink of its name.
  const fs::path target = host_dir / "overwritten";
  const std::string trap = HostileRepo({{"index.html", "<h1>ok</h1>\n"}, {"health", "ok\n"}},
                                       {{"Dockerfile.c2d", target.string()}});
  Result ok = evil.Deploy(ServiceBody("trap", trap));
  CHECK(ok.state == "live");
  CHECK_FALSE(fs::exists(target));
}

TEST_CASE("attack: repository URLs that reach this machine are refused", "[gateway][isolation]") {
  Api api;
  Tenant evil(api);
  const std::string tmp = testing::RequireEnv("C2D_TEST_TMP");
  const std::string pg = testing::RequireEnv("C2D_TEST_PG_URL");
  const std::string pg_port = pg.substr(pg.rfind(':') + 1, pg.rfind('/') - pg.rfind(':') - 1);
  const auto before = api.Snapshot();
  struct Case {
    std::string url, says;
  };
  for (const Case& c : std::vector<Case>{
           {tmp + "/builds", "outside C2D_LOCAL_REPO_ROOT"},
           {"file://" + tmp + "/builds", "outside C2D_LOCAL_REPO_ROOT"},
           {testing::LocalRepoRoot() + "/../builds", "must not contain \"..\""},
           {absl::StrCat("http://127.0.0.1:", pg_port, "/postgres"), "loopback"},
           {"http://localhost:2019/config/", "this machine"},
           {"http://[::1]:5000/v2/", "loopback"},
           {"http://169.254.169.254/latest/meta-data/", "link-local"},
           {"ext::sh", "must be a remote git URL"},
           {"fd::17", "must be a remote git URL"},
       }) {
    INFO(c.url);
    auto r = evil.Create(ServiceBody("web", c.url));
    CHECK(r.status == 400);
    CHECK(r.Field() == "source.repo_url");
    CHECK(absl::StrContains(r.Error(), c.says));
  }
  CHECK(api.Snapshot() == before);

  // A symlink inside the local root to a checkout elsewhere: the gateway
  // cannot see it, the builder refuses it.
  auto victim = testing::SampleRepo("victim");
  const fs::path outside = fs::path(tmp) / ids::New("checkout");
  fs::copy(victim->path(), outside, fs::copy_options::recursive);
  const fs::path link = fs::path(testing::LocalRepoRoot()) / ids::New("link");
  fs::create_directory_symlink(outside, link);
  Result r = evil.Deploy(ServiceBody("linked", link.string()));
  CHECK(r.state == "build_failed");
  CHECK(absl::StrContains(r.failure_reason, "leads outside C2D_LOCAL_REPO_ROOT"));
}

TEST_CASE("attack: a secret printed in pieces is still redacted from the build log",
          "[gateway][isolation]") {
  Api api;
  Tenant evil(api);
  const std::string repo = HostileRepo(
      {{"Dockerfile",
        absl::StrCat("FROM ", Stack(), "\n",
                     // The step's own text, echoed in the log, holds no secret.
                     "RUN a=Super; b=Secret; printf \"leak: $a\"; sleep 1; ",
                     "printf \"$b-9d2c\\n\"\n",
                     "RUN a=Super; b=Secret; printf $a; printf $b-9d2c; sleep 1; echo\n",
                     "COPY health /srv/health\n")},
       {"health", "ok\n"}});
  json body = ServiceBody("web", repo);
  body["env"] = {{"TOKEN", {{"value", "SuperSecret-9d2c"}, {"secret", true}}}};
  Result r = evil.Deploy(body);
  CHECK(r.state == "live");
  CHECK(absl::StrContains(r.log, "leak: [redacted]"));
  CHECK_FALSE(absl::StrContains(r.log, "Secret-9d2c"));
  CHECK_FALSE(absl::StrContains(r.log, "SuperSecret"));
}

// Peak resident memory of this process (the builder runs in it), in bytes.
int64_t PeakRss() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, "VmHWM:")) return std::stoll(line.substr(6)) * 1024;
  }
  return -1;
}

TEST_CASE("attack: a huge build context streams without filling the builder's memory",
          "[gateway][isolation]") {
  Api api;
  Tenant evil(api);
  // 400 MB of zeros: a few hundred KB in git, the whole size in the checkout.
  const std::string repo =
      HostileRepo({{"Dockerfile", absl::StrCat("FROM ", Stack(), "\nCOPY health /srv/health\n")},
                   {"health", "ok\n"}});
  {
    std::ofstream zeros(fs::path(repo) / "zeros.bin", std::ios::binary);
    const std::string mb(1 << 20, '\0');
    for (int i = 0; i < 400; ++i) zeros << mb;
  }
  CommitAll(repo, "zeros");
  fs::remove(fs::path(repo) / "zeros.bin");
  const int64_t before = PeakRss();
  Result r = evil.Deploy(ServiceBody("web", repo));
  CHECK(absl::StrContains(r.log, "context: 400.0 MiB"));
  CHECK(r.state == "live");
  const int64_t growth = PeakRss() - before;
  INFO("peak RSS grew by " << growth / (1 << 20) << " MiB");
  CHECK(growth < int64_t{100} << 20);
}

}  // namespace
}  // namespace c2d
