// dbprov on the OpenStack provider: the real all-in-one OpenStack for the
// database servers (Nova), their volumes (Cinder), the backups and the files
// put into volumes (Swift); the platform tools/test starts for the rest.
//
// Nova's fake virt driver runs nothing inside a server, so this test plays
// what each database server's cloud-init would do there: when the provider
// makes or starts a server, the server's own fetch step (c2d-fetch-files,
// taken from the user data c2d renders, reading the server's metadata as
// Nova holds it and the signed links to Swift in it) puts the files c2d
// wrote into its volume, then the server's container runs on the test
// engine with the same spec. dbprov reaches the server where that container
// answers.

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "libs/cloud/openstack/provider.h"
#include "libs/cloud/openstack/swift.h"
#include "libs/common/status.h"
#include "libs/httpd/server.h"
#include "tests/integration/dbprov/dbprov_fixture.h"
#include "tests/integration/openstack/os_env.h"

namespace c2d::cloud::openstack {
namespace {

using json = nlohmann::json;
using testing::DbprovFixture;

// c2d-fetch-files, as RenderUserData writes it into a server's user data.
std::string FetchFilesScript() {
  BootPlan plan{.container = "c2d-x",
                .image = "registry.example/x@sha256:" + std::string(64, 'a'),
                .volumes = {{.volume_id = "v", .name = "v", .mount_path = "/data"}},
                .files_url = "http://swift.example/v1/AUTH_x/c2d-volume-files"};
  auto rendered = RenderUserData(plan);
  REQUIRE(rendered.ok());
  const json doc = json::parse(rendered->substr(rendered->find('\n') + 1));
  for (const json& f : doc["write_files"]) {
    if (f["path"] == kFetchFilesPath) return f["content"];
  }
  FAIL("no fetch step in the user data");
  return "";
}

// The provider dbprov runs on: OpenStack's servers, each played by a
// container of the test engine (see the top of the file).
class PlayedServers final : public Provider {
 public:
  PlayedServers(pg::Pool& pool, LocalProvider& local)
      : ledger_(pool, "openstack"),
        cloud_(session_, ledger_, TestProviderOptions()),
        local_(local),
        nova_(session_),
        files_(session_, {.container = "c2d-volume-files"}),
        script_(std::filesystem::temp_directory_path() /
                absl::StrCat("c2d-fetch-files-", getpid())) {
    std::ofstream(script_) << FetchFilesScript();
    auto meta = httpd::Server::Start({.address = "127.0.0.1:0", .workers = 2},
                                     [this](httpd::Request& r) { return Metadata(r); });
    REQUIRE(meta.ok());
    metadata_ = std::move(*meta);
  }
  ~PlayedServers() override {
    metadata_->Shutdown(std::chrono::milliseconds(0));
    std::filesystem::remove(script_);
  }

  int fetched() const { return fetched_.load(); }
  OpenStackProvider& cloud() { return cloud_; }

  absl::StatusOr<Instance> Create(const InstanceSpec& spec) override {
    C2D_ASSIGN_OR_RETURN(Instance made, cloud_.Create(spec));
    {
      absl::MutexLock lock(&mu_);
      specs_[made.ref] = spec;
    }
    C2D_RETURN_IF_ERROR(Boot(made.ref));
    return Inspect(made.ref);
  }
  absl::Status Start(const std::string& ref) override {
    C2D_RETURN_IF_ERROR(cloud_.Start(ref));
    return Boot(ref);
  }
  absl::Status Stop(const std::string& ref, std::chrono::seconds grace) override {
    if (auto played = Played(ref); played.ok() && *played) {
      C2D_RETURN_IF_ERROR(local_.Stop((*played)->ref, grace));
    }
    return cloud_.Stop(ref, grace);
  }
  absl::Status Remove(const std::string& ref) override {
    if (auto played = Played(ref); played.ok() && *played) {
      (void)local_.Remove((*played)->ref);
    }
    return cloud_.Remove(ref);
  }
  absl::StatusOr<Instance> Inspect(const std::string& ref) override {
    C2D_ASSIGN_OR_RETURN(Instance i, cloud_.Inspect(ref));
    return AsPlayed(std::move(i));
  }
  absl::StatusOr<std::vector<Instance>> List(
      const std::map<std::string, std::string>& labels) override {
    C2D_ASSIGN_OR_RETURN(std::vector<Instance> servers, cloud_.List(labels));
    for (Instance& i : servers) {
      C2D_ASSIGN_OR_RETURN(i, AsPlayed(std::move(i)));
    }
    return servers;
  }
  absl::Status DeleteVolume(const std::string& volume) override {
    C2D_RETURN_IF_ERROR(local_.DeleteVolume(volume));
    return cloud_.DeleteVolume(volume);
  }
  // What c2d writes goes to the cloud alone: the server fetches it at boot.
  absl::Status WriteVolumeFile(const std::string& volume, const std::string& name,
                               const std::string& source) override {
    return cloud_.WriteVolumeFile(volume, name, source);
  }
  absl::Status EnsureNetwork(const std::string& network) override {
    C2D_RETURN_IF_ERROR(local_.EnsureNetwork(network));
    return cloud_.EnsureNetwork(network);
  }
  absl::Status RemoveNetwork(const std::string& network) override {
    (void)local_.RemoveNetwork(network);
    return cloud_.RemoveNetwork(network);
  }
  absl::Status FollowLogs(const std::string& ref, std::optional<absl::Time> since,
                          const std::function<bool(const LogLine&)>& on_line,
                          const std::atomic<bool>* cancel) override {
    C2D_ASSIGN_OR_RETURN(std::optional<Instance> played, Played(ref));
    if (!played) return absl::NotFoundError("not played");
    return local_.FollowLogs(played->ref, since, on_line, cancel);
  }

 private:
  static constexpr char kPlays[] = "c2d.test.plays";  // the played container's label

  // The container playing server `ref`, if there is one.
  absl::StatusOr<std::optional<Instance>> Played(const std::string& ref) {
    C2D_ASSIGN_OR_RETURN(std::vector<Instance> found, local_.List({{kPlays, ref}}));
    if (found.empty()) return std::optional<Instance>();
    return std::optional<Instance>(found.front());
  }
  // The server as dbprov sees it: where its container answers, in its state.
  absl::StatusOr<Instance> AsPlayed(Instance i) {
    C2D_ASSIGN_OR_RETURN(std::optional<Instance> played, Played(i.ref));
    i.address.clear();
    if (i.state != InstanceState::kRunning) return i;
    if (!played) {
      i.state = InstanceState::kCreated;
      return i;
    }
    i.state = played->state;
    i.address = played->address;
    return i;
  }
  // What the server does at each boot: its files fetched into its volumes,
  // then its container started (made at the first).
  absl::Status Boot(const std::string& ref) {
    InstanceSpec spec;
    {
      absl::MutexLock lock(&mu_);
      auto it = specs_.find(ref);
      if (it == specs_.end()) return absl::FailedPreconditionError("a server made elsewhere");
      spec = it->second;
    }
    if (!spec.volumes.empty()) C2D_RETURN_IF_ERROR(Fetch(ref, spec));
    C2D_ASSIGN_OR_RETURN(std::optional<Instance> played, Played(ref));
    if (!played) {
      InstanceSpec local = spec;
      local.labels[kPlays] = ref;
      C2D_ASSIGN_OR_RETURN(played, local_.Create(local));
    }
    return local_.Start(played->ref);
  }
  absl::Status Fetch(const std::string& ref, const InstanceSpec& spec) {
    C2D_ASSIGN_OR_RETURN(std::string base, files_.ContainerUrl());
    std::string volumes_dir;
    for (const VolumeMount& v : spec.volumes) {
      C2D_ASSIGN_OR_RETURN(std::string path, local_.VolumePath(v.volume));
      volumes_dir = std::filesystem::path(path).parent_path().string();
    }
    auto ran = RunCommand(
        {.argv = {"python3", script_.string(), base,
                  absl::StrCat("http://", metadata_->address(), "/meta/", ref), volumes_dir},
         .timeout = std::chrono::seconds(120)});
    if (!ran.ok()) return ran.status();
    if (absl::StrContains(ran->output, " fetched")) ++fetched_;
    if (ran->exit_code != 0) {
      return absl::UnavailableError("c2d-fetch-files failed: " + ran->output);
    }
    return absl::OkStatus();
  }
  // The metadata service: the server's metadata, as Nova holds it.
  httpd::Response Metadata(httpd::Request& r) {
    absl::string_view ref = r.path;
    if (!absl::ConsumePrefix(&ref, "/meta/")) return {.status = 404};
    auto server = nova_.GetServer(std::string(ref));
    if (!server.ok()) return {.status = 404};
    return {.status = 200, .body = json{{"meta", server->labels}}.dump()};
  }

  Session session_{User()};
  PgLedger ledger_;
  OpenStackProvider cloud_;
  LocalProvider& local_;
  Nova nova_;
  SwiftObjectStore files_;
  const std::filesystem::path script_;
  std::unique_ptr<httpd::Server> metadata_;
  std::atomic<int> fetched_{0};
  absl::Mutex mu_;
  std::map<std::string, InstanceSpec> specs_ ABSL_GUARDED_BY(mu_);
};

TEST_CASE(
    "dbprov on OpenStack: Redis on a Nova server and a Cinder volume, backed up to Swift, "
    "verified and restored through its volume",
    "[openstack][dbprov]") {
  PrepareCloud();
  PlayedServers* servers = nullptr;
  Session session(User());
  const std::string container = "c2d-test-" + absl::AsciiStrToLower(ids::New("bk"));
  DbprovFixture f(true, {.provider =
                             [&](pg::Pool& pool, LocalProvider& local) {
                               auto p = std::make_unique<PlayedServers>(pool, local);
                               servers = p.get();
                               return std::unique_ptr<Provider>(std::move(p));
                             },
                         .store =
                             [&] {
                               return std::make_unique<SwiftObjectStore>(
                                   session, SwiftOptions{.container = container});
                             }});
  v1::Database d = f.CreateAvailable(v1::DATABASE_ENGINE_REDIS, "cache");

  // A Nova server in the project's database group, on a Cinder volume.
  Nova nova(session);
  auto listed = nova.ListServers({{"c2d.database", d.id()}});
  REQUIRE(listed.ok());
  REQUIRE(listed->size() == 1);
  const Server server = listed->front();
  CHECK(server.labels.at("c2d.role") == "database");
  Cinder cinder(session);
  const std::string volume = dbprov::ServerName(d.id());
  auto v = cinder.FindVolume(volume);
  REQUIRE(v.ok());
  REQUIRE(v->has_value());
  CHECK((*v)->attached_to == std::vector<std::string>{server.id});

  const std::string a = f.Password(d.id(), "a");
  auto as_a = [&](const std::string& cmd) {
    CommandResult out = testing::RedisAs(f, d, "a", a, cmd);
    INFO(cmd << ": " << out.output);
    REQUIRE(out.exit_code == 0);
    return std::string(absl::StripAsciiWhitespace(out.output));
  };
  as_a("MSET k1 one k2 two k3 three");

  // A backup in Swift, verified on a scratch server that fetched the dump
  // into its new volume through its signed link.
  const v1::Backup b = testing::BackupNow(f, d.id());
  INFO(b.failure_reason());
  REQUIRE(b.state() == v1::BACKUP_STATE_SUCCEEDED);
  CHECK_THAT(b.verification(), Catch::Contains("3 ") && Catch::Contains("as at dump time"));
  CHECK(servers->fetched() == 1);
  SwiftObjectStore backups(session, {.container = container});
  auto stored = backups.Stat(b.object_key());
  REQUIRE(stored.ok());
  CHECK(stored->sha256 == b.sha256());
  // The scratch server and its volume are gone, with the file put into it.
  CHECK(nova.ListServers({{"c2d.verify", b.id()}})->empty());
  SwiftObjectStore files(session, {.container = "c2d-volume-files"});
  auto scratch_files = files.List("c2d-verify-" + cloud::ResourceName(b.id()));
  REQUIRE(scratch_files.ok());
  CHECK(scratch_files->empty());

  // Restored in place: the server stopped, the dump put into its volume, and
  // fetched at its next boot before Redis starts and loads it.
  as_a("DEL k1");
  CHECK(as_a("DBSIZE") == "2");
  d = testing::RestoreNow(f, b.id(), d.id());
  CHECK(servers->fetched() == 2);
  CHECK(as_a("DBSIZE") == "3");
  CHECK(nova.ListServers({{"c2d.database", d.id()}})->front().id == server.id);

  // Deleted: the server, its volume and the file put into it go.
  v1::DeleteDatabaseRequest del;
  del.set_id(d.id());
  v1::Database deleting;
  REQUIRE(f.service_->DeleteDatabase(nullptr, &del, &deleting).ok());
  CHECK(testing::WaitFor(std::chrono::seconds(180), [&] {
    return nova.ListServers({{"c2d.database", d.id()}})->empty() &&
           !cinder.FindVolume(volume)->has_value();
  }));
  CHECK(absl::IsNotFound(files.Stat(volume + "/restore.rdb").status()));
  REQUIRE(servers->RemoveNetwork(cloud::ProjectNetwork(f.project_id_)).ok());
}

}  // namespace
}  // namespace c2d::cloud::openstack
