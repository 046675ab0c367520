#include "tests/integration/builder/builder_fixture.h"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "libs/common/command.h"
#include "libs/common/ids.h"
#include "libs/http/client.h"
#include "tests/support/sealed.h"

namespace c2d::testing {
namespace {

namespace fs = std::filesystem;

std::string MustRun(const std::vector<std::string>& argv, const std::string& cwd) {
  auto r = RunCommand({.argv = argv,
                       .env = {{"GIT_AUTHOR_NAME", "Test Author"},
                               {"GIT_AUTHOR_EMAIL", "author@example.com"},
                               {"GIT_COMMITTER_NAME", "Test Author"},
                               {"GIT_COMMITTER_EMAIL", "author@example.com"}},
                       .cwd = cwd});
  REQUIRE(r.ok());
  INFO(r->output);
  REQUIRE(r->exit_code == 0);
  return r->output;
}

}  // namespace

std::unique_ptr<GitRepo> SampleRepo(const std::string& version) {
  const fs::path sample = fs::path(C2D_SOURCE_DIR) / "examples/hello-python";
  auto read = [&](const char* name) {
    std::ifstream in(sample / name);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  };
  return std::make_unique<GitRepo>(std::initializer_list<std::pair<std::string, std::string>>{
      {"app.py", read("app.py")},
      {"Procfile", read("Procfile")},
      {"requirements.txt", read("requirements.txt")},
      {"VERSION", version + "\n"}});
}

GitRepo::GitRepo(std::initializer_list<std::pair<std::string, std::string>> files) {
  path_ = (fs::path(LocalRepoRoot()) / ids::New("repo")).string();
  fs::create_directories(path_);
  MustRun({"git", "init", "-q", "-b", "main"}, path_);
  Commit(files, "first commit");
}

GitRepo::~GitRepo() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

std::string GitRepo::Commit(std::initializer_list<std::pair<std::string, std::string>> files,
                            const std::string& message) {
  for (const auto& [name, content] : files) {
    fs::create_directories((fs::path(path_) / name).parent_path());
    std::ofstream(fs::path(path_) / name) << content;
  }
  MustRun({"git", "add", "-A"}, path_);
  MustRun({"git", "commit", "-q", "--allow-empty", "-m", message}, path_);
  head_ = std::string(absl::StripAsciiWhitespace(MustRun({"git", "rev-parse", "HEAD"}, path_)));
  return head_;
}

void GitRepo::Checkout(const std::string& branch, bool create) {
  if (create) {
    MustRun({"git", "checkout", "-q", "-b", branch}, path_);
  } else {
    MustRun({"git", "checkout", "-q", branch}, path_);
  }
  head_ = std::string(absl::StripAsciiWhitespace(MustRun({"git", "rev-parse", "HEAD"}, path_)));
}

BuilderFixture::BuilderFixture(BuilderOptions options) {
  pool_ = db_.NewPool();
  config_.engine_socket = options.engine_socket.empty() ? RequireEnv("C2D_TEST_BUILD_ENGINE_SOCKET")
                                                        : options.engine_socket;
  config_.engine_cgroup = RequireEnv("C2D_TEST_BUILD_ENGINE_CGROUP");
  config_.registry_url = RequireEnv("C2D_TEST_REGISTRY_URL");
  config_.registry_user = RequireEnv("C2D_TEST_REGISTRY_USER");
  config_.registry_password = RequireEnv("C2D_TEST_REGISTRY_PASSWORD");
  config_.work_dir = (fs::path(RequireEnv("C2D_TEST_TMP")) / "builds").string();
  config_.local_repo_root = LocalRepoRoot();
  config_.build_timeout = options.build_timeout;
  config_.build_memory_bytes = int64_t{512} << 20;
  config_.keep_builds = options.keep_builds;
  config_.max_image_bytes = options.max_image_bytes;
  config_.master_keys = *crypto::MasterKeys::Parse(crypto::MasterKeys::Generate("mk1"));
  config_.stacks = builder::Stacks::FromEnv(config_.RegistryHost());

  project_id_ = ids::New("prj");
  project_name_ = "p" + absl::AsciiStrToLower(ids::New("x").substr(20));
  service_id_ = ids::New("svc");
  db_.Exec(absl::StrCat("INSERT INTO projects (id, name) VALUES ('", project_id_, "', '",
                        project_name_, "')"));
  db_.Exec(
      absl::StrCat("INSERT INTO services (id, project_id, name, type, repo_url, port) VALUES ('",
                   service_id_, "', '", project_id_, "', 'web', 'web', '/unused', 8080)"));

  service_ = std::make_unique<builder::BuilderServiceImpl>(*pool_, config_);
  auto server = rpc::Server::Start("127.0.0.1:0", {{"c2d.v1.BuilderService", service_.get()}});
  REQUIRE(server.ok());
  server_ = std::move(*server);
  stub_ = v1::BuilderService::NewStub(
      grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials()));

  build_job_ = std::make_unique<builder::BuildJob>(*pool_, config_);
  gc_ = std::make_unique<builder::GcJob>(*pool_, config_);
  jobs::WorkerOptions w;
  w.queue = "builder";
  w.concurrency = 2;
  w.lease = std::chrono::seconds(6);
  w.poll_interval = std::chrono::milliseconds(200);
  w.shutdown_grace = std::chrono::seconds(5);
  worker_ = std::make_unique<jobs::Worker>(*pool_, db_.connect(), w);
  worker_->Register("build", [this](jobs::JobContext& ctx) { return build_job_->Run(ctx); });
  worker_->Register("gc_images", [this](jobs::JobContext& ctx) { return gc_->Run(ctx); });
  REQUIRE(worker_->Start().ok());

  engine_ = std::make_unique<engine::Engine>(RequireEnv("C2D_TEST_ENGINE_SOCKET"));
  registry_ =
      std::make_unique<oci::Registry>(oci::RegistryOptions{.url = config_.registry_url,
                                                           .username = config_.registry_user,
                                                           .password = config_.registry_password});
}

BuilderFixture::~BuilderFixture() {
  worker_->Shutdown();
  server_->Shutdown(absl::Seconds(1));
}

engine::RegistryAuth BuilderFixture::auth() const {
  return {config_.registry_user, config_.registry_password, config_.RegistryHost()};
}

v1::StartBuildRequest BuilderFixture::Request(const std::string& repo_url,
                                              const std::string& branch,
                                              const std::string& commit) {
  v1::StartBuildRequest r;
  r.set_service_id(service_id_);
  r.mutable_source()->set_repo_url(repo_url);
  r.mutable_source()->set_branch(branch);
  r.mutable_source()->set_commit(commit);
  r.mutable_spec()->set_service_id(service_id_);
  r.mutable_spec()->set_project_id(project_id_);
  r.mutable_spec()->set_project_name(project_name_);
  r.mutable_spec()->set_service_name("web");
  r.mutable_spec()->set_type(v1::SERVICE_TYPE_WEB);
  r.mutable_spec()->mutable_run()->set_port(8080);
  r.set_trigger(v1::BUILD_TRIGGER_API);
  r.set_skip_deploy(true);
  return r;
}

void BuilderFixture::AddEnv(v1::StartBuildRequest& request, const std::string& key,
                            const std::string& value, bool secret) {
  *request.mutable_spec()->add_env() = SealedEnvVar(*config_.master_keys, key, value, secret);
}

v1::StartBuildResponse BuilderFixture::Start(const v1::StartBuildRequest& request) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  v1::StartBuildResponse response;
  grpc::Status s = stub_->StartBuild(&ctx, request, &response);
  INFO(s.error_message());
  REQUIRE(s.ok());
  return response;
}

v1::Build BuilderFixture::WaitFinal(const std::string& build_id,
                                    std::chrono::milliseconds timeout) {
  v1::Build build;
  bool final = WaitFor(timeout, [&] {
    grpc::ClientContext ctx;
    v1::GetBuildRequest req;
    req.set_id(build_id);
    if (!stub_->GetBuild(&ctx, req, &build).ok()) return false;
    return build.state() == v1::BUILD_STATE_SUCCEEDED || build.state() == v1::BUILD_STATE_FAILED ||
           build.state() == v1::BUILD_STATE_CANCELLED;
  });
  INFO("build " << build_id << " log:\n" << StoredLog(build_id));
  REQUIRE(final);
  return build;
}

std::string BuilderFixture::StoredLog(const std::string& build_id) {
  return db_.Scalar(
      absl::StrCat("SELECT string_agg(text, E'\\n' ORDER BY seq) FROM build_logs "
                   "WHERE build_id = '",
                   build_id, "'"));
}

std::string HttpGet(int port, const std::string& path) {
  auto r = http::Send(
      {.url = absl::StrCat("http://127.0.0.1:", port, path), .timeout = std::chrono::seconds(2)});
  return r.ok() && r->status == 200 ? r->body : "";
}

}  // namespace c2d::testing
