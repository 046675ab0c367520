// The user data of an OpenStack instance: valid for cloud-init (its own
// `cloud-init schema`), its boot script valid for bash, and no tenant value
// able to change either.

#include "libs/cloud/openstack/cloud_init.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "libs/common/command.h"
#include "libs/crypto/hash.h"
#include "libs/httpd/server.h"

namespace c2d::cloud::openstack {
namespace {

using json = nlohmann::json;

BootPlan WebApp() {
  return {.container = "c2d-ins-abc123",
          .image = "registry.example:5000/prj-1/web@sha256:" + std::string(64, 'a'),
          .pull = {.registry = "registry.example:5000",
                   .username = "c2d-grant",
                   .password = "grant-secret-123"},
          .command = {"/bin/sh", "-c", "exec ./server --port \"$PORT\""},
          .env = {{"GREETING", "hello"}, {"DATABASE_URL", "postgresql://u:p@db/x"}},
          .port = 8080,
          .memory_bytes = 256 << 20,
          .cpu_millis = 500,
          .volumes = {{.volume_id = "0123456789abcdef0123456789abcdef",
                       .name = "vol-data",
                       .mount_path = "/data"}},
          .hosts = {{"pg-1.internal", "10.42.0.7"}},
          .admin_client_certificate =
              "-----BEGIN CERTIFICATE-----\nQUJD\nREVG\n-----END CERTIFICATE-----\n",
          .admin_ca_certificate = "-----BEGIN CERTIFICATE-----\nQ0E=\n-----END CERTIFICATE-----\n",
          .admin_ca_key = "-----BEGIN PRIVATE KEY-----\nS0VZ\n-----END PRIVATE KEY-----\n"};
}

json Document(const std::string& user_data) {
  REQUIRE(absl::StartsWith(user_data, "#cloud-config\n"));
  return json::parse(user_data.substr(std::string("#cloud-config\n").size()));
}

json FileAt(const json& doc, const std::string& path) {
  for (const json& f : doc["write_files"]) {
    if (f["path"] == path) return f;
  }
  FAIL("no file " << path);
  return {};
}

struct Ran {
  int exit_code = -1;
  std::string out;  // stdout, byte for byte, then stderr's lines
};

Ran Run(std::vector<std::string> argv) {
  Ran ran;
  auto r = RunCommand({.argv = std::move(argv), .on_stdout = [&](absl::string_view bytes) {
                         ran.out.append(bytes.data(), bytes.size());
                         return absl::OkStatus();
                       }});
  REQUIRE(r.ok());
  ran.exit_code = r->exit_code;
  if (!r->output.empty()) absl::StrAppend(&ran.out, r->output);
  return ran;
}

std::string Temp(const std::string& name, const std::string& content) {
  const auto dir =
      std::filesystem::temp_directory_path() / absl::StrCat("c2d-cloud-init-test-", getpid());
  std::filesystem::create_directories(dir);
  const std::string path = (dir / name).string();
  std::ofstream(path) << content;
  return path;
}

TEST_CASE("cloud-init: the user data of a web app passes cloud-init's own schema check",
          "[cloud-init]") {
  auto rendered = RenderUserData(WebApp());
  REQUIRE(rendered.ok());
  const std::string path = Temp("web.yaml", *rendered);
  const Ran schema = Run({"cloud-init", "schema", "--config-file", path});
  INFO(schema.out);
  CHECK(schema.exit_code == 0);
  CHECK_THAT(schema.out, Catch::Contains("Valid cloud-config"));

  // A worker (no Caddy, no port) and a database server (its port published).
  BootPlan worker = WebApp();
  worker.port = 0;
  BootPlan db = WebApp();
  db.behind_caddy = false;
  db.port = 5432;
  for (const BootPlan& p : {worker, db}) {
    auto other = RenderUserData(p);
    REQUIRE(other.ok());
    const Ran checked = Run({"cloud-init", "schema", "--config-file", Temp("other.yaml", *other)});
    INFO(checked.out);
    CHECK(checked.exit_code == 0);
    CHECK_FALSE(absl::StrContains(*other, "caddy.json"));
  }
}

TEST_CASE("cloud-init: Docker runs the image by digest behind Caddy and the boot script is bash",
          "[cloud-init]") {
  const json doc = Document(*RenderUserData(WebApp()));
  CHECK(doc["packages"] == json({"docker.io", "caddy"}));
  const std::string script = FileAt(doc, "/usr/local/sbin/c2d-boot")["content"];
  CHECK(FileAt(doc, "/usr/local/sbin/c2d-boot")["permissions"] == "0700");
  const Ran syntax = Run({"bash", "-n", Temp("boot.sh", script)});
  INFO(syntax.out);
  CHECK(syntax.exit_code == 0);
  CHECK_THAT(script, Catch::Contains("--restart=on-failure"));
  CHECK_THAT(script, Catch::Contains("'" + WebApp().image + "'"));
  CHECK_THAT(script, Catch::Contains("--publish 127.0.0.1:8080:8080"));
  CHECK_THAT(script, Catch::Contains("--memory 268435456 --cpus 0.500"));
  CHECK_THAT(script, Catch::Contains("--add-host 'pg-1.internal:10.42.0.7'"));
  // The volume: waited for by its disk id, formatted only when blank, mounted.
  CHECK_THAT(script, Catch::Contains("volume '0123456789abcdef0123' '/srv/c2d/volumes/vol-data'"));
  CHECK_THAT(script, Catch::Contains("blkid \"$dev\" >/dev/null || mkfs.ext4"));
  CHECK_THAT(script, Catch::Contains("--volume '/srv/c2d/volumes/vol-data:/data'"));

  const json caddy = json::parse(std::string(FileAt(doc, "/etc/c2d/caddy.json")["content"]));
  CHECK(caddy["/apps/http/servers/c2d-http/listen/0"_json_pointer] == ":80");
  CHECK(caddy["/apps/http/servers/c2d-https/routes/0/handle/0/upstreams/0/dial"_json_pointer] ==
        "127.0.0.1:8080");
  // Remote admin: mutual TLS, c2d's client certificate only, TLS and HTTPS paths only.
  CHECK(caddy["/admin/remote/access_control/0/public_keys/0"_json_pointer] == "QUJDREVG");
  CHECK(caddy["/admin/remote/access_control/0/permissions/0/paths"_json_pointer] ==
        json({"/config/apps/tls", "/config/apps/http/servers/c2d-https"}));
  CHECK(caddy["/admin/listen"_json_pointer] == "127.0.0.1:2019");
  // Its admin certificate, for the instance's name, from the instance's own CA.
  CHECK(caddy["/admin/identity/identifiers"_json_pointer] == json({"c2d-ins-abc123"}));
  CHECK(caddy["/admin/identity/issuers/0"_json_pointer] ==
        json({{"module", "internal"}, {"ca", "c2d-admin"}}));
  CHECK(caddy["/apps/pki/certificate_authorities/c2d-admin/root"_json_pointer] ==
        json({{"certificate", "/etc/c2d/admin-ca.crt"}, {"private_key", "/etc/c2d/admin-ca.key"}}));
  CHECK(caddy["/apps/pki/certificate_authorities/c2d-admin/install_trust"_json_pointer] == false);
  // Caddy's files are its user's, the key and configuration for it alone.
  for (const auto& [path, mode] :
       std::map<std::string, std::string>{{"/etc/c2d/caddy.json", "0600"},
                                          {"/etc/c2d/admin-ca.crt", "0644"},
                                          {"/etc/c2d/admin-ca.key", "0600"}}) {
    const json f = FileAt(doc, path);
    CHECK(f["owner"] == "caddy:caddy");
    CHECK(f["permissions"] == mode);
    CHECK(f["defer"] == true);
  }
  CHECK(FileAt(doc, "/etc/c2d/admin-ca.key")["content"] == WebApp().admin_ca_key);
  // Remote admin without the instance's CA is refused.
  BootPlan no_ca = WebApp();
  no_ca.admin_ca_key.clear();
  CHECK(RenderUserData(no_ca).status().code() == absl::StatusCode::kInvalidArgument);
  // Without remote admin: no identity, no CA files.
  BootPlan local_only = WebApp();
  local_only.admin_client_certificate.clear();
  const std::string plain = *RenderUserData(local_only);
  CHECK_FALSE(absl::StrContains(plain, "admin-ca"));
  CHECK_FALSE(absl::StrContains(plain, "identity"));
}

TEST_CASE("cloud-init: the pull credential is a 0600 file used once then removed", "[cloud-init]") {
  const std::string rendered = *RenderUserData(WebApp());
  const json doc = Document(rendered);
  const json pull = FileAt(doc, "/etc/c2d/pull");
  CHECK(pull["permissions"] == "0600");
  CHECK(pull["owner"] == "root:root");
  CHECK(pull["content"] == "grant-secret-123");
  // The secret is in that file only: never on a command line or in the script.
  CHECK(rendered.find("grant-secret-123") == rendered.rfind("grant-secret-123"));
  const std::string script = FileAt(doc, "/usr/local/sbin/c2d-boot")["content"];
  CHECK_THAT(script, Catch::Contains("--password-stdin 'registry.example:5000' </etc/c2d/pull"));
  CHECK_THAT(script, Catch::Contains("rm -f /etc/c2d/pull"));
  CHECK_THAT(script, Catch::Contains("docker logout 'registry.example:5000'"));
  CHECK(FileAt(doc, "/etc/c2d/app.env")["permissions"] == "0600");

  BootPlan public_image = WebApp();
  public_image.pull = {};
  const std::string open = *RenderUserData(public_image);
  CHECK_FALSE(absl::StrContains(open, "/etc/c2d/pull\""));
  CHECK_FALSE(absl::StrContains(open, "docker login"));
}

TEST_CASE("cloud-init: hostile env values reach the app unchanged and run nothing",
          "[cloud-init][security]") {
  const std::string marker =
      (std::filesystem::temp_directory_path() / "c2d-cloud-init-pwned").string();
  std::filesystem::remove(marker);
  BootPlan p = WebApp();
  p.env = {{"QUOTE", "it's $(touch " + marker + ") `touch " + marker + "`"},
           {"LINES", "one\ntwo\n'; touch " + marker + "; echo '"},
           {"EMPTY", ""},
           {"YAML", "key: [value]\n- item\n#cloud-config"}};
  const json doc = Document(*RenderUserData(p));
  const std::string env = FileAt(doc, "/etc/c2d/app.env")["content"];
  const std::string path = Temp("app.env", env);
  for (const auto& [name, value] : p.env) {
    INFO(name);
    const Ran read =
        Run({"bash", "-c", absl::StrCat("set -a; . ", path, "; printf %s \"$", name, "\"")});
    CHECK(read.exit_code == 0);
    CHECK(read.out == value);
  }
  CHECK_FALSE(std::filesystem::exists(marker));
}

TEST_CASE("cloud-init: what cannot be rendered safely is refused", "[cloud-init][security]") {
  auto refused = [](void (*change)(BootPlan&)) {
    BootPlan p = WebApp();
    change(p);
    return absl::IsInvalidArgument(RenderUserData(p).status());
  };
  CHECK(refused([](BootPlan& p) { p.env["A;B"] = "x"; }));
  CHECK(refused([](BootPlan& p) { p.env["1ST"] = "x"; }));
  CHECK(refused([](BootPlan& p) { p.image = "x@sha256:1 $(reboot)"; }));
  CHECK(refused([](BootPlan& p) { p.hosts["db\n- evil"] = "10.0.0.1"; }));
  CHECK(refused([](BootPlan& p) { p.volumes[0].mount_path = "/data'; rm -rf /;'"; }));
  CHECK(refused([](BootPlan& p) { p.port = 70000; }));
  CHECK(refused([](BootPlan& p) { p.pull.registry = "reg example"; }));
  CHECK(refused([](BootPlan& p) { p.files_url = "http://swift/x'; reboot; '"; }));
}

constexpr char kFilesUrl[] = "http://swift.example:8080/v1/AUTH_p/c2d-volume-files";

TEST_CASE("cloud-init: files into volumes are fetched after the mounts and before the container",
          "[cloud-init]") {
  BootPlan db = WebApp();
  db.behind_caddy = false;
  db.files_url = kFilesUrl;
  const std::string rendered = *RenderUserData(db);
  const json doc = Document(rendered);
  const json fetcher = FileAt(doc, kFetchFilesPath);
  CHECK(fetcher["permissions"] == "0755");
  const Ran compiled = Run({"python3", "-c", "import ast, sys; ast.parse(open(sys.argv[1]).read())",
                            Temp("fetch.py", fetcher["content"])});
  INFO(compiled.out);
  CHECK(compiled.exit_code == 0);
  const std::string script = FileAt(doc, "/usr/local/sbin/c2d-boot")["content"];
  const size_t mounted = script.find("volume '0123456789abcdef0123'");
  const size_t fetched = script.find(
      absl::StrCat(kFetchFilesPath, " '", kFilesUrl, "' ", kMetadataUrl, " /srv/c2d/volumes\n"));
  const size_t started = script.find("docker start");
  REQUIRE(fetched != std::string::npos);
  CHECK(mounted < fetched);
  CHECK(fetched < started);
  const Ran schema = Run({"cloud-init", "schema", "--config-file", Temp("db.yaml", rendered)});
  INFO(schema.out);
  CHECK(schema.exit_code == 0);

  // Nothing to fetch into, or nothing to fetch from: no fetcher.
  BootPlan no_volumes = db;
  no_volumes.volumes.clear();
  CHECK_FALSE(absl::StrContains(*RenderUserData(no_volumes), kFetchFilesPath));
  BootPlan no_store = db;
  no_store.files_url.clear();
  CHECK_FALSE(absl::StrContains(*RenderUserData(no_store), kFetchFilesPath));
}

// What a server's fetcher talks to: the object store, where an object
// answers only its own signed query, and the metadata service.
class FilesWorld {
 public:
  FilesWorld() {
    auto started = httpd::Server::Start({.address = "127.0.0.1:0", .workers = 2},
                                        [this](httpd::Request& r) { return Handle(r); });
    REQUIRE(started.ok());
    server_ = std::move(*started);
  }
  ~FilesWorld() { server_->Shutdown(std::chrono::milliseconds(0)); }

  std::string base() const { return "http://" + server_->address(); }
  void Put(const std::string& key, const std::string& signature, const std::string& bytes) {
    absl::MutexLock lock(&mu_);
    objects_[key] = {signature, bytes};
  }
  void Meta(const std::string& key, const std::string& value) {
    absl::MutexLock lock(&mu_);
    meta_[key] = value;
  }
  int gets() {
    absl::MutexLock lock(&mu_);
    return gets_;
  }

 private:
  httpd::Response Handle(httpd::Request& r) {
    absl::MutexLock lock(&mu_);
    if (r.path == "/meta") return {.status = 200, .body = json{{"meta", meta_}}.dump()};
    absl::string_view key = r.path;
    if (!absl::ConsumePrefix(&key, "/files/")) return {.status = 404};
    ++gets_;
    auto it = objects_.find(std::string(key));
    if (it == objects_.end() || r.Query("temp_url_sig") != it->second.first ||
        r.Query("temp_url_expires").empty()) {
      return {.status = 401};
    }
    return {.status = 200, .body = it->second.second};
  }

  std::unique_ptr<httpd::Server> server_;
  absl::Mutex mu_;
  std::map<std::string, std::pair<std::string, std::string>> objects_ ABSL_GUARDED_BY(mu_);
  json meta_ ABSL_GUARDED_BY(mu_) = json::object();
  int gets_ ABSL_GUARDED_BY(mu_) = 0;
};

std::string ReadAll(const std::filesystem::path& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST_CASE(
    "cloud-init: the fetcher puts each file in place once, whole and checked, following "
    "no link",
    "[cloud-init][security]") {
  namespace fs = std::filesystem;
  BootPlan db = WebApp();
  db.files_url = kFilesUrl;
  const std::string script =
      Temp("c2d-fetch-files", FileAt(Document(*RenderUserData(db)), kFetchFilesPath)["content"]);
  const fs::path root = fs::path(script).parent_path() / "fetch";
  fs::remove_all(root);
  const fs::path volume = root / "volumes" / "vol-data";
  fs::create_directories(volume);
  const fs::path outside = root / "outside";
  std::ofstream(outside) << "untouched";
  FilesWorld w;
  auto fetch = [&] {
    return Run(
        {"python3", script, w.base() + "/files", w.base() + "/meta", (root / "volumes").string()});
  };
  const int64_t later = absl::ToUnixSeconds(absl::Now() + absl::Hours(1));
  const std::string key = FileMetaKey("vol-data", "restore.rdb");
  auto offer = [&](char n, const std::string& bytes, const std::string& claimed) {
    const std::string signature(64, n);
    w.Put("vol-data/restore.rdb", signature, bytes);
    w.Meta(key, FileMetaValue(later, signature, crypto::Sha256Hex(claimed)));
  };

  offer('1', "REDIS dump one", "REDIS dump one");
  w.Meta("c2d.server", "c2d-ins-abc123");  // not a file
  w.Meta("c2d.file:../etc:passwd",
         FileMetaValue(later, std::string(64, '9'), std::string(64, 'a')));
  w.Meta(FileMetaKey("vol-other", "x"),  // a volume this server does not mount
         FileMetaValue(later, std::string(64, '8'), std::string(64, 'a')));
  const Ran first = fetch();
  INFO(first.out);
  CHECK(first.exit_code == 0);
  CHECK(ReadAll(volume / "restore.rdb") == "REDIS dump one");
  CHECK((fs::status(volume / "restore.rdb").permissions() & fs::perms::all) ==
        (fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
         fs::perms::others_read));
  CHECK_THAT(first.out, Catch::Contains("not a file of c2d's"));
  CHECK_FALSE(fs::exists(root / "volumes" / "vol-other"));
  CHECK_FALSE(fs::exists(root / "etc"));
  CHECK(w.gets() == 1);

  // The server loaded it and moved it away; the next boot fetches nothing.
  fs::remove(volume / "restore.rdb");
  CHECK(fetch().exit_code == 0);
  CHECK_FALSE(fs::exists(volume / "restore.rdb"));
  CHECK(w.gets() == 1);

  // Bytes that are not what the checksum says: the boot fails, nothing is in place.
  offer('2', "tampered", "REDIS dump two");
  const Ran bad = fetch();
  CHECK(bad.exit_code != 0);
  CHECK_THAT(bad.out, Catch::Contains("SHA-256"));
  CHECK_FALSE(fs::exists(volume / "restore.rdb"));
  CHECK_FALSE(fs::exists(volume / ".restore.rdb.part"));

  // Links a container left where the download goes are replaced, never followed.
  offer('3', "REDIS dump three", "REDIS dump three");
  fs::create_symlink(outside, volume / ".restore.rdb.part");
  fs::create_symlink(outside, volume / "restore.rdb");
  const Ran linked = fetch();
  INFO(linked.out);
  CHECK(linked.exit_code == 0);
  CHECK(ReadAll(outside) == "untouched");
  CHECK_FALSE(fs::is_symlink(volume / "restore.rdb"));
  CHECK(ReadAll(volume / "restore.rdb") == "REDIS dump three");

  // An expired link: skipped with a message, and the boot goes on.
  const int gets = w.gets();
  w.Meta(key, FileMetaValue(absl::ToUnixSeconds(absl::Now() - absl::Minutes(1)),
                            std::string(64, '4'), std::string(64, 'a')));
  const Ran expired = fetch();
  CHECK(expired.exit_code == 0);
  CHECK_THAT(expired.out, Catch::Contains("expired"));
  CHECK(w.gets() == gets);
  fs::remove_all(root);
}

}  // namespace
}  // namespace c2d::cloud::openstack
