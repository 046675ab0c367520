#include "services/builder/detect.h"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "libs/common/ids.h"

namespace c2d {
namespace {

namespace fs = std::filesystem;

struct App {
  App() : dir(fs::temp_directory_path() / ids::New("app")) { fs::create_directories(dir); }
  ~App() { fs::remove_all(dir); }
  App& With(const std::string& name, const std::string& content = "") {
    std::ofstream(dir / name) << content;
    return *this;
  }
  absl::StatusOr<builder::Plan> Plan(builder::PlanRequest r = {}) {
    r.app_dir = dir.string();
    builder::Stacks stacks;
    stacks.images = {{"static", "reg/static:1"},
                     {"python", "reg/python:3.11"},
                     {"node", "reg/node:18"},
                     {"go", "reg/go:1.19"}};
    return builder::PlanBuild(r, stacks);
  }
  fs::path dir;
};

TEST_CASE("an app's own Dockerfile wins", "[detect]") {
  App app;
  app.With("Dockerfile", "FROM x").With("index.html");
  auto p = app.Plan();
  REQUIRE(p.ok());
  CHECK(p->language == "dockerfile");
  CHECK(p->dockerfile == "Dockerfile");
  CHECK(p->generated.empty());
}

TEST_CASE("a static site gets the static stack", "[detect]") {
  App app;
  app.With("index.html", "<h1>hi</h1>");
  auto p = app.Plan({.build_command = "sh build.sh"});
  REQUIRE(p.ok());
  CHECK(p->language == "static");
  CHECK(p->generated == "FROM reg/static:1\nCOPY . /srv\nRUN sh build.sh\n");
}

TEST_CASE("a Python app starts from its Procfile, run.start_command, or app.py", "[detect]") {
  App procfile;
  procfile.With("requirements.txt", "# none\n")
      .With("Procfile", "web: python3 app.py --port $PORT\n");
  auto p = procfile.Plan();
  REQUIRE(p.ok());
  CHECK(p->language == "python");
  CHECK(p->generated ==
        "FROM reg/python:3.11\nWORKDIR /app\nCOPY . /app\n"
        "CMD [\"/bin/sh\",\"-c\",\"python3 app.py --port $PORT\"]\n");

  // A worker's Procfile line, when there is no web line; the web line wins.
  App worker;
  worker.With("requirements.txt", "# none\n").With("Procfile", "worker: exec python3 main.py\n");
  auto w = worker.Plan();
  REQUIRE(w.ok());
  CHECK(w->generated.find("\"exec python3 main.py\"") != std::string::npos);
  App both;
  both.With("requirements.txt", "# none\n")
      .With("Procfile", "worker: python3 jobs.py\nweb: python3 app.py\n");
  auto b = both.Plan();
  REQUIRE(b.ok());
  CHECK(b->generated.find("\"python3 app.py\"") != std::string::npos);

  App plain;
  plain.With("requirements.txt", "flask==2.2\n").With("app.py");
  auto q = plain.Plan();
  REQUIRE(q.ok());
  CHECK(q->generated.find("pip install --no-cache-dir -r requirements.txt") != std::string::npos);
  CHECK(q->generated.find("exec python3 app.py") != std::string::npos);

  auto r = plain.Plan({.start_command = "gunicorn app:app"});
  CHECK(r->generated.find("\"gunicorn app:app\"") != std::string::npos);
}

TEST_CASE("Node.js, Go and pyproject apps get their stack, install step and start command",
          "[detect]") {
  App locked;
  locked.With("package.json", "{}").With("package-lock.json", "{}");
  auto n = locked.Plan({.build_command = "npm run build"});
  REQUIRE(n.ok());
  CHECK(n->language == "node");
  CHECK(n->dockerfile == "Dockerfile.c2d");
  CHECK(n->generated ==
        "FROM reg/node:18\nWORKDIR /app\nCOPY . /app\nRUN npm ci --omit=dev\n"
        "RUN npm run build\nCMD [\"/bin/sh\",\"-c\",\"exec npm start\"]\n");
  App unlocked;
  unlocked.With("package.json", "{}").With("Procfile", "web: node server.js\n");
  auto u = unlocked.Plan();
  REQUIRE(u.ok());
  CHECK(u->generated ==
        "FROM reg/node:18\nWORKDIR /app\nCOPY . /app\nRUN npm install --omit=dev\n"
        "CMD [\"/bin/sh\",\"-c\",\"node server.js\"]\n");

  App go;
  go.With("go.mod", "module x\n");
  auto g = go.Plan();
  REQUIRE(g.ok());
  CHECK(g->language == "go");
  CHECK(g->reason == "found go.mod: a Go app");
  CHECK(g->generated ==
        "FROM reg/go:1.19\nWORKDIR /src\nCOPY . /src\nRUN go build -o /app/server .\n"
        "CMD [\"/bin/sh\",\"-c\",\"exec /app/server\"]\n");

  App pyproject;
  pyproject.With("pyproject.toml").With("main.py").With("package.json", "{}");
  auto p = pyproject.Plan();
  REQUIRE(p.ok());
  CHECK(p->language == "python");  // before Node.js
  CHECK(p->reason == "found pyproject.toml: a Python app");
  CHECK(p->generated ==
        "FROM reg/python:3.11\nWORKDIR /app\nCOPY . /app\n"
        "RUN python3 -m pip install --no-cache-dir .\n"
        "CMD [\"/bin/sh\",\"-c\",\"exec python3 main.py\"]\n");

  // A Procfile and app.py alone make a Python app.
  App bare;
  bare.With("Procfile", "web: python3 app.py\n").With("app.py");
  auto b = bare.Plan();
  REQUIRE(b.ok());
  CHECK(b->reason == "found a Procfile and app.py: a Python app");
  CHECK(b->generated.find("pip install") == std::string::npos);
}

TEST_CASE("apps that cannot be built say what to add", "[detect]") {
  App empty;
  empty.With("README.md");
  auto p = empty.Plan();
  REQUIRE(absl::IsFailedPrecondition(p.status()));
  CHECK(std::string(p.status().message()).find("add a Dockerfile") != std::string::npos);

  App no_start;
  no_start.With("requirements.txt", "x\n");
  auto q = no_start.Plan();
  REQUIRE(absl::IsFailedPrecondition(q.status()));
  CHECK(std::string(q.status().message()).find("Procfile") != std::string::npos);

  App missing;
  missing.With("index.html");
  auto r = missing.Plan({.auto_strategy = false, .dockerfile_path = "deploy/Dockerfile"});
  REQUIRE(absl::IsFailedPrecondition(r.status()));
  CHECK(std::string(r.status().message()) ==
        "dockerfile_path \"deploy/Dockerfile\" does not exist in the repository");
}

}  // namespace
}  // namespace c2d
