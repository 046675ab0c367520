#pragma once

// A builder wired to the real container engine and registry that tools/test
// starts (C2D_TEST_ENGINE_SOCKET, C2D_TEST_REGISTRY_URL/_USER/_PASSWORD), with
// its gRPC service on a free port, its workers, a project and a service.

#include <grpcpp/grpcpp.h>

#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "libs/engine/engine.h"
#include "libs/jobs/worker.h"
#include "libs/oci/registry.h"
#include "libs/rpc/server.h"
#include "proto/c2d/v1/builder.grpc.pb.h"
#include "services/builder/build_job.h"
#include "services/builder/builder_service.h"
#include "services/builder/gc_job.h"
#include "tests/support/pg_fixture.h"

namespace c2d::testing {

// A git repository in a temp dir with one commit of `files` (path → content).
class GitRepo {
 public:
  explicit GitRepo(std::initializer_list<std::pair<std::string, std::string>> files);
  ~GitRepo();
  // Adds a commit changing `files`; returns its sha.
  std::string Commit(std::initializer_list<std::pair<std::string, std::string>> files,
                     const std::string& message);
  // Switches to `branch`, made from the current commit when `create`.
  void Checkout(const std::string& branch, bool create);
  const std::string& path() const { return path_; }
  const std::string& head() const { return head_; }

 private:
  std::string path_;
  std::string head_;
};

// A git repository holding the bundled sample app (examples/hello-python)
// with `version` in its VERSION file.
std::unique_ptr<GitRepo> SampleRepo(const std::string& version);

struct BuilderOptions {
  std::chrono::milliseconds build_timeout{120'000};
  int keep_builds = 10;
  int64_t max_image_bytes = int64_t{2} << 30;
  std::string engine_socket;  // the build engine's; empty: the test platform's
};

class BuilderFixture {
 public:
  explicit BuilderFixture(BuilderOptions options = {});
  ~BuilderFixture();

  v1::BuilderService::Stub& stub() { return *stub_; }
  pg::Pool& pool() { return *pool_; }
  TestDatabase& db() { return db_; }
  builder::Config& config() { return config_; }
  engine::Engine& engine() { return *engine_; }
  oci::Registry& registry() { return *registry_; }
  builder::GcJob& gc() { return *gc_; }
  engine::RegistryAuth auth() const;
  const std::string& service_id() const { return service_id_; }
  const std::string& project_id() const { return project_id_; }
  // "<project>/<service>", the repository path inside the registry.
  std::string repo_path() const { return project_name_ + "/web"; }

  // A StartBuildRequest for the fixture's service from `repo_url`.
  v1::StartBuildRequest Request(const std::string& repo_url, const std::string& branch = "main",
                                const std::string& commit = "");
  // Adds a sealed env var to a request's spec.
  void AddEnv(v1::StartBuildRequest& request, const std::string& key, const std::string& value,
              bool secret);
  v1::StartBuildResponse Start(const v1::StartBuildRequest& request);
  // Waits (up to `timeout`) until the build is final; returns it.
  v1::Build WaitFinal(const std::string& build_id,
                      std::chrono::milliseconds timeout = std::chrono::seconds(180));
  // The stored log, one line per log line.
  std::string StoredLog(const std::string& build_id);
  // The static stack image, for test Dockerfiles.
  std::string StaticStack() const { return config_.stacks.images.at("static"); }

 private:
  TestDatabase db_;
  std::unique_ptr<pg::Pool> pool_;
  builder::Config config_;
  std::string project_id_, project_name_, service_id_;
  std::unique_ptr<builder::BuilderServiceImpl> service_;
  std::unique_ptr<rpc::Server> server_;
  std::unique_ptr<v1::BuilderService::Stub> stub_;
  std::unique_ptr<builder::BuildJob> build_job_;
  std::unique_ptr<builder::GcJob> gc_;
  std::unique_ptr<jobs::Worker> worker_;
  std::unique_ptr<engine::Engine> engine_;
  std::unique_ptr<oci::Registry> registry_;
};

// Fetches http://127.0.0.1:port/path; "" on any error.
std::string HttpGet(int port, const std::string& path = "/");

}  // namespace c2d::testing
