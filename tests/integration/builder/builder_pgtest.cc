// The builder against the real container engine and registry: an app in a
// git repository becomes an image in the registry that runs and answers HTTP;
// every failure a user can cause ends the build with a reason; secrets never
// reach the log; image GC deletes exactly what it should.

#include <google/protobuf/util/time_util.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <mutex>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/common/command.h"
#include "libs/common/ids.h"
#include "libs/engine/tar.h"
#include "tests/integration/builder/builder_fixture.h"

namespace c2d {
namespace {

using namespace std::chrono_literals;
using testing::BuilderFixture;
using testing::GitRepo;

TEST_CASE("a commit becomes an image in the registry that runs and answers HTTP", "[builder]") {
  BuilderFixture f;
  GitRepo repo({{"index.html", "<h1>c2d build test v1</h1>\n"}});
  v1::StartBuildResponse started = f.Start(f.Request(repo.path()));
  REQUIRE(started.created());
  const v1::Build& queued = started.build();
  CHECK(queued.commit_sha().empty());  // the job resolves the branch, not StartBuild
  CHECK(queued.state() == v1::BUILD_STATE_QUEUED);

  // Follow the log live from the first line.
  std::mutex mu;
  std::vector<std::pair<absl::Time, std::string>> lines;
  std::thread reader([&] {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 180s);
    v1::StreamBuildLogsRequest req;
    req.set_build_id(queued.id());
    req.set_follow(true);
    auto stream = f.stub().StreamBuildLogs(&ctx, req);
    v1::LogLine line;
    int64_t last_seq = 0;
    while (stream->Read(&line)) {
      std::lock_guard lock(mu);
      CHECK(line.seq() == last_seq + 1);  // no gaps, no duplicates
      last_seq = line.seq();
      lines.emplace_back(absl::Now(), line.text());
    }
    CHECK(stream->Finish().ok());
  });
  v1::Build build = f.WaitFinal(queued.id());
  reader.join();  // the stream ends by itself once the build is final
  INFO(f.StoredLog(build.id()));
  REQUIRE(build.state() == v1::BUILD_STATE_SUCCEEDED);
  CHECK(build.commit_sha() == repo.head());
  CHECK(build.commit_author() == "Test Author <author@example.com>");
  CHECK(build.commit_message() == "first commit");
  CHECK(absl::StartsWith(build.image_digest(), "sha256:"));
  CHECK(build.image_size_bytes() > 0);
  {
    std::lock_guard lock(mu);
    REQUIRE(!lines.empty());
    // Lines arrived while the build ran, not all at its end.
    const absl::Time finished = absl::FromUnixMicros(
        google::protobuf::util::TimeUtil::TimestampToMicroseconds(build.finished_at()));
    CHECK(lines.front().first < finished);
    std::string all;
    for (const auto& [t, text] : lines) absl::StrAppend(&all, text, "\n");
    CHECK(all == f.StoredLog(build.id()) + "\n");
    for (const char* step : {"==> clone", "==> build", "==> push", "==> build succeeded"}) {
      CHECK(absl::StrContains(all, step));
    }
    CHECK(absl::StrContains(all, "found index.html: a static site"));
  }

  // The registry has the digest under the build id and the commit sha.
  CHECK(*f.registry().ResolveDigest(f.repo_path(), build.id()) == build.image_digest());
  CHECK(*f.registry().ResolveDigest(f.repo_path(), build.commit_sha()) == build.image_digest());

  // Pulled by digest and run, it serves the app.
  const std::string ref = absl::StrCat(build.image_repository(), "@", build.image_digest());
  REQUIRE(f.engine().Pull(ref, f.auth(), 120s).ok());
  auto id = f.engine().CreateContainer({.image = ref,
                                        .env = {"PORT=8080"},
                                        .labels = {{"c2d.test", "builder"}},
                                        .ports = {{.container_port = 8080}},
                                        .memory_bytes = 64 << 20});
  REQUIRE(id.ok());
  REQUIRE(f.engine().StartContainer(*id).ok());
  auto info = f.engine().InspectContainer(*id);
  REQUIRE(info.ok());
  const int port = info->host_ports[8080];
  REQUIRE(port > 0);
  std::string body;
  CHECK(testing::WaitFor(30s, [&] {
    body = testing::HttpGet(port);
    return absl::StrContains(body, "c2d build test v1");
  }));
  CHECK(f.engine().RemoveContainer(*id, /*force=*/true).ok());
}

TEST_CASE("a Dockerfile FROM a private image the engine lacks pulls it with credentials",
          "[builder]") {
  BuilderFixture f;
  // A base image that exists only in the (password-protected) registry.
  const std::string base = absl::StrCat(f.config().RegistryHost(), "/", f.repo_path(), "-base");
  engine::TarWriter tar;
  tar.AddFile("Dockerfile", absl::StrCat("FROM ", f.StaticStack(), "\nLABEL base=private\n"));
  REQUIRE(f.engine().Build(tar.Finish(), {.tag = base + ":1"}).ok());
  REQUIRE(f.engine().Push(base, "1", f.auth(), nullptr, 120s).ok());
  REQUIRE(f.engine().RemoveImage(base + ":1", /*force=*/true).ok());
  REQUIRE(absl::IsNotFound(f.engine().InspectImage(base + ":1").status()));

  GitRepo repo({{"Dockerfile", absl::StrCat("FROM ", base, ":1\nCOPY index.html /srv/\n")},
                {"index.html", "from a private base"}});
  v1::Build b = f.WaitFinal(f.Start(f.Request(repo.path())).build().id());
  CHECK(b.state() == v1::BUILD_STATE_SUCCEEDED);
}

TEST_CASE("a Python app with a Procfile is detected, built on the Python stack and serves",
          "[builder]") {
  BuilderFixture f;
  GitRepo repo(
      {{"app.py",
        "import http.server, os\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        body = b'hello from python\\n'\n"
        "        self.send_response(200)\n"
        "        self.send_header('Content-Length', str(len(body)))\n"
        "        self.end_headers()\n"
        "        self.wfile.write(body)\n"
        "http.server.ThreadingHTTPServer(('', int(os.environ['PORT'])), H).serve_forever()\n"},
       {"requirements.txt", "# no dependencies\n"},
       {"Procfile", "web: exec python3 app.py\n"}});
  v1::Build b = f.WaitFinal(f.Start(f.Request(repo.path())).build().id());
  REQUIRE(b.state() == v1::BUILD_STATE_SUCCEEDED);
  CHECK(absl::StrContains(f.StoredLog(b.id()), "found requirements.txt: a Python app"));
  const std::string ref = absl::StrCat(b.image_repository(), "@", b.image_digest());
  REQUIRE(f.engine().Pull(ref, f.auth(), 120s).ok());
  auto id = f.engine().CreateContainer({.image = ref,
                                        .env = {"PORT=8080"},
                                        .ports = {{.container_port = 8080}},
                                        .memory_bytes = 128 << 20});
  INFO(id.status().ToString());
  REQUIRE(id.ok());
  REQUIRE(f.engine().StartContainer(*id).ok());
  const int port = f.engine().InspectContainer(*id)->host_ports[8080];
  CHECK(testing::WaitFor(30s, [&] { return testing::HttpGet(port) == "hello from python\n"; }));
  CHECK(f.engine().RemoveContainer(*id, /*force=*/true).ok());
}

TEST_CASE("an image above C2D_MAX_IMAGE_BYTES fails its build and is not kept", "[builder]") {
  BuilderFixture f({.max_image_bytes = 64 * 1024});
  GitRepo repo({{"index.html", "small app, but the stack alone is over 64 KiB"}});
  v1::Build b = f.WaitFinal(f.Start(f.Request(repo.path())).build().id());
  CHECK(b.state() == v1::BUILD_STATE_FAILED);
  CHECK(absl::StrContains(b.failure_reason(),
                          "more than the limit of 64.0 KiB (C2D_MAX_IMAGE_BYTES)"));
  CHECK(absl::IsNotFound(f.registry().ResolveDigest(f.repo_path(), b.id()).status()));
}

TEST_CASE("ListBuilds pages newest first and StreamBuildLogs resumes after a given line",
          "[builder]") {
  BuilderFixture f;
  GitRepo repo({{"README.md", "nothing to build here"}});
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    repo.Commit({{"README.md", absl::StrCat("version ", i)}}, absl::StrCat("change ", i));
    ids.push_back(f.WaitFinal(f.Start(f.Request(repo.path())).build().id()).id());
  }
  v1::ListBuildsRequest list;
  list.set_service_id(f.service_id());
  list.mutable_page()->set_page_size(2);
  v1::ListBuildsResponse page1, page2;
  {
    grpc::ClientContext ctx;
    REQUIRE(f.stub().ListBuilds(&ctx, list, &page1).ok());
  }
  REQUIRE(page1.builds_size() == 2);
  CHECK(page1.builds(0).id() == ids[2]);
  CHECK(page1.builds(1).id() == ids[1]);
  REQUIRE_FALSE(page1.next_page_token().empty());
  list.mutable_page()->set_page_token(page1.next_page_token());
  {
    grpc::ClientContext ctx;
    REQUIRE(f.stub().ListBuilds(&ctx, list, &page2).ok());
  }
  REQUIRE(page2.builds_size() == 1);
  CHECK(page2.builds(0).id() == ids[0]);
  CHECK(page2.next_page_token().empty());
  list.mutable_page()->set_page_size(-1);
  {
    grpc::ClientContext ctx;
    CHECK(f.stub().ListBuilds(&ctx, list, &page2).error_code() ==
          grpc::StatusCode::INVALID_ARGUMENT);
  }

  // A final build's log from line 3 on: no line before, none twice, then the end.
  const int64_t lines =
      f.db().Count(absl::StrCat("SELECT count(*) FROM build_logs WHERE build_id = '", ids[0], "'"));
  REQUIRE(lines >= 3);
  grpc::ClientContext ctx;
  v1::StreamBuildLogsRequest req;
  req.set_build_id(ids[0]);
  req.set_after_seq(2);
  req.set_follow(true);
  auto stream = f.stub().StreamBuildLogs(&ctx, req);
  std::vector<int64_t> seqs;
  v1::LogLine line;
  while (stream->Read(&line)) seqs.push_back(line.seq());
  CHECK(stream->Finish().ok());
  REQUIRE(seqs.size() == static_cast<size_t>(lines - 2));
  for (size_t i = 0; i < seqs.size(); ++i) CHECK(seqs[i] == static_cast<int64_t>(i) + 3);
}

TEST_CASE("a commit is built once: its repeat is that build, its branch releases that image",
          "[builder]") {
  BuilderFixture f;
  GitRepo repo({{"index.html", "same"}});
  v1::StartBuildResponse a = f.Start(f.Request(repo.path(), "main", repo.head()));
  v1::StartBuildResponse b = f.Start(f.Request(repo.path(), "main", repo.head()));
  CHECK(a.created());
  CHECK_FALSE(b.created());
  CHECK(b.build().id() == a.build().id());
  // The branch head, asked for while that build runs: a build of its own,
  // which finds the commit taken and releases that build's image.
  v1::StartBuildResponse c = f.Start(f.Request(repo.path()));
  CHECK(c.created());
  CHECK(c.build().id() != a.build().id());
  v1::Build built = f.WaitFinal(a.build().id());
  v1::Build reused = f.WaitFinal(c.build().id());
  REQUIRE(built.state() == v1::BUILD_STATE_SUCCEEDED);
  REQUIRE(reused.state() == v1::BUILD_STATE_SUCCEEDED);
  CHECK(reused.commit_sha() == repo.head());
  CHECK(reused.image_digest() == built.image_digest());
  const std::string log = f.StoredLog(reused.id());
  INFO(log);
  CHECK(absl::StrContains(log, "was built by " + built.id() + ": releasing its image"));
  CHECK_FALSE(absl::StrContains(log, "==> build\n"));
  // Once it has succeeded too: a webhook redelivery must not rebuild.
  v1::StartBuildResponse d = f.Start(f.Request(repo.path(), "main", repo.head()));
  CHECK_FALSE(d.created());
  CHECK(d.build().id() == a.build().id());
  CHECK(f.db().Count("SELECT count(*) FROM builds") == 2);
  CHECK(f.db().Count("SELECT count(*) FROM jobs WHERE kind = 'build'") == 2);
}

TEST_CASE("builds a user breaks end failed with a one-line reason", "[builder]") {
  BuilderFixture f;
  GitRepo good({{"index.html", "ok"}});
  auto reason_of = [&](const v1::StartBuildRequest& request) {
    v1::Build b = f.WaitFinal(f.Start(request).build().id());
    CHECK(b.state() == v1::BUILD_STATE_FAILED);
    CHECK(b.failure_reason().find('\n') == std::string::npos);
    CHECK(absl::StrContains(f.StoredLog(b.id()), b.failure_reason()));
    return b.failure_reason();
  };
  SECTION("repository not found") {
    CHECK(absl::StrContains(reason_of(f.Request(testing::LocalRepoRoot() + "/nonexistent")),
                            "cannot read repository"));
  }
  SECTION("branch missing") {
    CHECK(reason_of(f.Request(good.path(), "nope")) ==
          absl::StrCat("branch \"nope\" does not exist in ", good.path()));
  }
  SECTION("commit missing") {
    CHECK(absl::StrContains(reason_of(f.Request(good.path(), "main", std::string(40, 'a'))),
                            "does not exist"));
  }
  SECTION("nothing to build") {
    GitRepo repo({{"README.md", "just words"}});
    CHECK(
        absl::StrContains(reason_of(f.Request(repo.path())), "cannot tell how to build this app"));
  }
  SECTION("a Dockerfile step fails") {
    GitRepo repo({{"Dockerfile", absl::StrCat("FROM ", f.StaticStack(),
                                              "\nRUN echo about to fail && exit 3\n")}});
    v1::Build b = f.WaitFinal(f.Start(f.Request(repo.path())).build().id());
    CHECK(b.state() == v1::BUILD_STATE_FAILED);
    CHECK(absl::StartsWith(b.failure_reason(), "build failed: "));
    CHECK(absl::StrContains(f.StoredLog(b.id()), "about to fail"));
  }
  // Nothing was pushed for any of them.
  CHECK(f.db().Count("SELECT count(*) FROM builds WHERE image_digest IS NOT NULL") == 0);
}

TEST_CASE("a build whose engine stays away is retried then fails after its last attempt",
          "[builder]") {
  BuilderFixture f({.engine_socket = testing::RequireEnv("C2D_TEST_TMP") + "/no-engine.sock"});
  GitRepo repo({{"index.html", "ok"}});
  v1::Build b = f.WaitFinal(f.Start(f.Request(repo.path())).build().id(), 60s);
  CHECK(b.state() == v1::BUILD_STATE_FAILED);
  CHECK_THAT(b.failure_reason(), Catch::StartsWith("build failed: "));
  CHECK_THAT(b.failure_reason(), Catch::Contains("no-engine.sock"));
  // The first two of its three attempts left it to the next.
  const std::string log = f.StoredLog(b.id());
  INFO(log);
  const std::string retried = "the build will be retried";
  int times = 0;
  for (size_t at = log.find(retried); at != std::string::npos; at = log.find(retried, at + 1)) {
    ++times;
  }
  CHECK(times == 2);
  CHECK_THAT(log, Catch::Contains("restarting the build (attempt 3)"));
  CHECK(f.db().Count("SELECT count(*) FROM builds WHERE image_digest IS NOT NULL") == 0);
}

TEST_CASE("a build over its time limit fails and leaves nothing running", "[builder]") {
  BuilderFixture f({.build_timeout = 8s});
  GitRepo repo({{"Dockerfile", absl::StrCat("FROM ", f.StaticStack(), "\nRUN sleep 600\n")}});
  const std::string id = f.Start(f.Request(repo.path())).build().id();
  REQUIRE(testing::WaitFor(60s, [&] {
    auto r = RunCommand({.argv = {"pgrep", "-f", "sleep 600"}});
    return r.ok() && r->exit_code == 0;
  }));
  v1::Build b = f.WaitFinal(id, 120s);
  CHECK(b.state() == v1::BUILD_STATE_FAILED);
  CHECK(absl::StrContains(b.failure_reason(), "timed out after 8.0s"));
  CHECK(testing::WaitFor(30s, [] {
    auto r = RunCommand({.argv = {"pgrep", "-f", "sleep 600"}});
    return r.ok() && r->exit_code == 1;  // no such process
  }));
}

TEST_CASE("a build step over the build memory limit is stopped", "[builder]") {
  BuilderFixture f;  // C2D_BUILD_MEMORY_MB: 512
  // dd holds a whole block in memory: 700 MiB, then 100 MiB.
  GitRepo big(
      {{"Dockerfile", absl::StrCat("FROM ", f.StaticStack(),
                                   "\nRUN dd if=/dev/zero of=/dev/null bs=700M count=1\n")}});
  v1::Build b = f.WaitFinal(f.Start(f.Request(big.path())).build().id());
  CHECK(b.state() == v1::BUILD_STATE_FAILED);
  INFO(f.StoredLog(b.id()));
  CHECK(b.failure_reason() ==
        "a build step ran out of memory: builds may use 512.0 MiB (C2D_BUILD_MEMORY_MB)");
  GitRepo small(
      {{"Dockerfile", absl::StrCat("FROM ", f.StaticStack(),
                                   "\nRUN dd if=/dev/zero of=/dev/null bs=100M count=1\n")}});
  CHECK(f.WaitFinal(f.Start(f.Request(small.path())).build().id()).state() ==
        v1::BUILD_STATE_SUCCEEDED);
}

TEST_CASE("cancelling a running build stops it and leaves nothing running", "[builder]") {
  BuilderFixture f;
  GitRepo repo({{"Dockerfile", absl::StrCat("FROM ", f.StaticStack(), "\nRUN sleep 601\n")}});
  const std::string id = f.Start(f.Request(repo.path())).build().id();
  // Cancel once the step really runs.
  REQUIRE(testing::WaitFor(60s, [&] {
    auto r = RunCommand({.argv = {"pgrep", "-f", "sleep 601"}});
    return r.ok() && r->exit_code == 0;
  }));
  grpc::ClientContext ctx;
  v1::CancelBuildRequest req;
  req.set_id(id);
  v1::Build cancelled;
  REQUIRE(f.stub().CancelBuild(&ctx, req, &cancelled).ok());
  CHECK(cancelled.state() == v1::BUILD_STATE_CANCELLED);
  CHECK(testing::WaitFor(30s, [] {
    auto r = RunCommand({.argv = {"pgrep", "-f", "sleep 601"}});
    return r.ok() && r->exit_code == 1;
  }));
  CHECK(testing::WaitFor(30s, [&] {
    return f.db().Scalar("SELECT state FROM jobs WHERE kind = 'build'") == "cancelled";
  }));
  CHECK(f.WaitFinal(id).state() == v1::BUILD_STATE_CANCELLED);
  // Cancelling again says it has ended.
  grpc::ClientContext again;
  grpc::Status s = f.stub().CancelBuild(&again, req, &cancelled);
  CHECK(s.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_CASE("secret env values never reach the stored log", "[builder]") {
  BuilderFixture f;
  const std::string secret = "s3cr3t-" + ids::New("v").substr(2);
  GitRepo repo({{"Dockerfile", absl::StrCat("FROM ", f.StaticStack(), "\nRUN echo token=", secret,
                                            " && echo visible=plain-value-42\n")}});
  v1::StartBuildRequest request = f.Request(repo.path());
  f.AddEnv(request, "API_TOKEN", secret, /*secret=*/true);
  f.AddEnv(request, "GREETING", "plain-value-42", /*secret=*/false);
  v1::Build b = f.WaitFinal(f.Start(request).build().id());
  REQUIRE(b.state() == v1::BUILD_STATE_SUCCEEDED);
  const std::string log = f.StoredLog(b.id());
  CHECK(absl::StrContains(log, "token=[redacted]"));
  CHECK(absl::StrContains(log, "visible=plain-value-42"));
  CHECK(f.db().Count(
            absl::StrCat("SELECT count(*) FROM build_logs WHERE text LIKE '%", secret, "%'")) == 0);
}

TEST_CASE("bad StartBuild input is refused with the field named and changes nothing", "[builder]") {
  BuilderFixture f;
  GitRepo repo({{"index.html", "x"}});
  auto refuse = [&](v1::StartBuildRequest r, grpc::StatusCode code, const std::string& field) {
    grpc::ClientContext ctx;
    v1::StartBuildResponse response;
    grpc::Status s = f.stub().StartBuild(&ctx, r, &response);
    CHECK(s.error_code() == code);
    CHECK(absl::StartsWith(s.error_message(), field));
  };
  v1::StartBuildRequest r = f.Request(repo.path());
  r.set_service_id("svc_nope");
  refuse(r, grpc::StatusCode::INVALID_ARGUMENT, "service_id");
  r = f.Request(repo.path(), "bad..branch");
  refuse(r, grpc::StatusCode::INVALID_ARGUMENT, "source.branch");
  r = f.Request(repo.path(), "main", "abc123");
  refuse(r, grpc::StatusCode::INVALID_ARGUMENT, "source.commit");
  r = f.Request(repo.path());
  r.mutable_source()->set_root_dir("../etc");
  refuse(r, grpc::StatusCode::INVALID_ARGUMENT, "source.root_dir");
  r = f.Request(repo.path());
  r.mutable_spec()->set_service_name("Web!");
  refuse(r, grpc::StatusCode::INVALID_ARGUMENT, "spec.service_name");
  r = f.Request(repo.path());
  const std::string other = ids::New("svc");
  r.set_service_id(other);
  r.mutable_spec()->set_service_id(other);
  refuse(r, grpc::StatusCode::NOT_FOUND, "service");
  CHECK(f.db().Count("SELECT count(*) FROM builds") == 0);
  CHECK(f.db().Count("SELECT count(*) FROM jobs") == 0);

  grpc::ClientContext ctx;
  v1::GetBuildRequest get;
  get.set_id(ids::New("bld"));
  v1::Build b;
  CHECK(f.stub().GetBuild(&ctx, get, &b).error_code() == grpc::StatusCode::NOT_FOUND);
}

TEST_CASE("image GC keeps the newest builds and deployed digests and deletes the rest",
          "[builder][gc]") {
  BuilderFixture f({.keep_builds = 2});
  // Five distinct images, oldest first, each recorded as a succeeded build.
  const std::string repository = absl::StrCat(f.config().RegistryHost(), "/", f.repo_path());
  std::vector<std::string> digests, builds;
  for (int i = 0; i < 5; ++i) {
    engine::TarWriter tar;
    tar.AddFile("Dockerfile", absl::StrCat("FROM ", f.StaticStack(), "\nLABEL n=", i, "\n"));
    const std::string tag = absl::StrCat("gc", i);
    auto image = f.engine().Build(tar.Finish(), {.tag = absl::StrCat(repository, ":", tag)});
    REQUIRE(image.ok());
    REQUIRE(f.engine().Push(repository, tag, f.auth(), nullptr, 120s).ok());
    digests.push_back(*f.registry().ResolveDigest(f.repo_path(), tag));
    builds.push_back(ids::New("bld"));
    f.db().Exec(absl::StrCat(
        "INSERT INTO builds (id, service_id, project_id, state, trigger, repo_url, branch, "
        "commit_sha, build_strategy, spec, image_repository, image_digest, image_size_bytes, "
        "started_at, finished_at) VALUES ('",
        builds[i], "', '", f.service_id(), "', '", f.project_id(),
        "', 'succeeded', 'api', '/r', 'main', '", std::string(40, '0' + i), "', 'auto', '{}', '",
        repository, "', '", digests[i], "', 1, now(), now() - interval '", 10 - i, " minutes')"));
  }
  // The oldest image is still live.
  f.db().Exec(absl::StrCat(
      "INSERT INTO deployments (id, service_id, project_id, build_id, image_repository, "
      "image_digest, spec, state, live_at) VALUES ('",
      ids::New("dep"), "', '", f.service_id(), "', '", f.project_id(), "', '", builds[0], "', '",
      repository, "', '", digests[0], "', '{}', 'live', now())"));

  const int64_t job = f.db().Count(
      "INSERT INTO jobs (queue, kind, payload) VALUES ('builder', 'gc_images', '{}') RETURNING id");
  REQUIRE(testing::WaitFor(60s, [&] {
    return f.db().Scalar(absl::StrCat("SELECT state FROM jobs WHERE id = ", job)) == "succeeded";
  }));
  auto present = [&](int i) { return f.registry().ResolveDigest(f.repo_path(), digests[i]).ok(); };
  CHECK(present(0));        // deployed
  CHECK_FALSE(present(1));  // deleted
  CHECK_FALSE(present(2));  // deleted
  CHECK(present(3));        // newest two builds
  CHECK(present(4));
  // Running it again finds nothing more to do.
  const int64_t again = f.db().Count(
      "INSERT INTO jobs (queue, kind, payload) VALUES ('builder', 'gc_images', '{}') RETURNING id");
  REQUIRE(testing::WaitFor(60s, [&] {
    return f.db().Scalar(absl::StrCat("SELECT state FROM jobs WHERE id = ", again)) == "succeeded";
  }));
  CHECK(present(0));
  CHECK(present(3));
}

}  // namespace
}  // namespace c2d
