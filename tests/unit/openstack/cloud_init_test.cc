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
#include "libs/common/command.h"

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
}

}  // namespace
}  // namespace c2d::cloud::openstack
