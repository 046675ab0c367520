#include "libs/rpc/repo_url.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "libs/common/ids.h"
#include "libs/rpc/validate.h"
#include "services/builder/git.h"
#include "services/builder/paths.h"

namespace c2d {
namespace {

namespace fs = std::filesystem;

std::string Refusal(const std::string& url, const std::string& root = "") {
  auto r = rpc::ParseRepoUrl(url, root);
  return r.ok() ? "" : std::string(r.status().message());
}

TEST_CASE("remote repository URLs of the accepted forms parse", "[repo_url]") {
  auto https = rpc::ParseRepoUrl("https://x-access-token:t0k@github.com:8443/o/r.git", "");
  REQUIRE(https.ok());
  CHECK(https->scheme == "https");
  CHECK(https->host == "github.com");
  CHECK(https->port == 8443);
  auto scp = rpc::ParseRepoUrl("git@gitlab.example.com:group/app.git", "");
  REQUIRE(scp.ok());
  CHECK(scp->scheme == "ssh");
  CHECK(scp->host == "gitlab.example.com");
  auto v6 = rpc::ParseRepoUrl("ssh://git@[2001:db8::1]:2222/app.git", "");
  REQUIRE(v6.ok());
  CHECK(v6->host == "2001:db8::1");
  CHECK(v6->port == 2222);
  CHECK(rpc::ParseRepoUrl("http://10.1.2.3/app.git", "").ok());  // a LAN git server
}

TEST_CASE("repository URLs that reach this machine or other transports are refused", "[repo_url]") {
  CHECK(Refusal("http://127.0.0.1:5432/x").find("loopback") != std::string::npos);
  CHECK(Refusal("http://127.1:80/x").find("loopback") != std::string::npos);
  CHECK(Refusal("http://2130706433/x").find("loopback") != std::string::npos);
  CHECK(Refusal("http://0x7f000001/x").find("loopback") != std::string::npos);
  CHECK(Refusal("https://[::1]/x").find("loopback") != std::string::npos);
  CHECK(Refusal("https://[::ffff:127.0.0.1]/x").find("loopback") != std::string::npos);
  CHECK(Refusal("http://0.0.0.0:2019/config").find("unspecified") != std::string::npos);
  CHECK(Refusal("http://169.254.169.254/latest").find("link-local") != std::string::npos);
  CHECK(Refusal("http://[fe80::1]/x").find("link-local") != std::string::npos);
  CHECK(Refusal("http://10.130.4.2:8080/x").find("container networks") != std::string::npos);
  CHECK(Refusal("http://localhost:8080/x").find("this machine") != std::string::npos);
  CHECK(Refusal("http://api.LOCALHOST/x").find("this machine") != std::string::npos);
  CHECK(Refusal("git@127.0.0.1:x").find("loopback") != std::string::npos);
  CHECK(Refusal("file:///srv/repo").find("local paths are not accepted") != std::string::npos);
  CHECK(Refusal("/var/lib/c2d/sample-repo").find("local paths are not accepted") !=
        std::string::npos);
  CHECK(Refusal("git://github.com/o/r").find("scheme \"git\"") != std::string::npos);
  CHECK(Refusal("ext::sh -c touch% /tmp/pwned") != "");
  CHECK(Refusal("fd::17") != "");
  CHECK(Refusal("ftp://host/r").find("scheme") != std::string::npos);
  CHECK(Refusal("relative/dir") != "");
  CHECK(Refusal("https://host") != "");
  CHECK(Refusal("https://-oProxyCommand=x/r") != "");
  CHECK(Refusal("https://host:99999/r").find("port") != std::string::npos);
  CHECK(Refusal("https://ho st/r") != "");
}

TEST_CASE("local repositories are accepted only below the local repo root", "[repo_url]") {
  const std::string root = "/srv/c2d/repos";
  auto ok = rpc::ParseRepoUrl("/srv/c2d/repos/sample", root);
  REQUIRE(ok.ok());
  CHECK(ok->kind == rpc::RepoUrl::Kind::kLocal);
  CHECK(rpc::ParseRepoUrl("file:///srv/c2d/repos/sample", root).ok());
  CHECK(Refusal("/srv/c2d/repos/../state/c2d.env", root).find("..") != std::string::npos);
  CHECK(Refusal("/srv/c2d/repos-other/x", root).find("outside") != std::string::npos);
  CHECK(Refusal("/srv/c2d/repos", root).find("outside") != std::string::npos);
  CHECK(Refusal("/etc", root).find("outside") != std::string::npos);
}

TEST_CASE("source and build paths are plain relative paths", "[repo_url]") {
  v1::Source src;
  src.set_repo_url("https://example.com/o/r.git");
  for (const char* bad : {"/etc", "a/../..", "..", "./app", "a//b", "a\\b"}) {
    INFO(bad);
    src.set_root_dir(bad);
    absl::Status s = rpc::ValidateSource(src, "source.", "");
    CHECK(std::string(s.message()).find("source.root_dir") == 0);
  }
  for (const char* good : {"services/web", "app/", "", "a.b/c..d"}) {
    INFO(good);
    src.set_root_dir(good);
    CHECK(rpc::ValidateSource(src, "source.", "").ok());
  }

  v1::BuildSettings b;
  for (const char* bad : {"Dockerfile.in", "docker/App.IN", "/etc/passwd", "../Dockerfile", "d/"}) {
    INFO(bad);
    b.set_dockerfile_path(bad);
    CHECK(std::string(rpc::ValidateBuildSettings(b, "build.").message())
              .find("build.dockerfile_path") == 0);
  }
  b.set_dockerfile_path("docker/Dockerfile.prod");
  CHECK(rpc::ValidateBuildSettings(b, "build.").ok());
}

TEST_CASE("the builder checks resolved addresses and pins git to them", "[repo_url]") {
  using builder::PrepareRemote;
  // A name whose DNS answer is loopback, or any forbidden address among
  // several, is refused after resolving.
  auto rebinding = [](const std::string& host,
                      std::chrono::milliseconds) -> absl::StatusOr<std::vector<std::string>> {
    if (host == "evil.example") return std::vector<std::string>{"93.184.216.34", "127.0.0.1"};
    if (host == "meta.example") return std::vector<std::string>{"169.254.169.254"};
    if (host == "v6.example") return std::vector<std::string>{"2001:db8::7"};
    return absl::NotFoundError("no such host");
  };
  auto evil = PrepareRemote("https://evil.example/o/r", "", std::chrono::seconds(1), rebinding);
  CHECK(absl::IsInvalidArgument(evil.status()));
  CHECK(std::string(evil.status().message()).find("resolves to 127.0.0.1, a loopback address") !=
        std::string::npos);
  CHECK(absl::IsInvalidArgument(
      PrepareRemote("git@meta.example:o/r", "", std::chrono::seconds(1), rebinding).status()));
  auto v6 = PrepareRemote("ssh://git@v6.example/o/r", "", std::chrono::seconds(1), rebinding);
  REQUIRE(v6.ok());
  CHECK(v6->env.at("GIT_SSH_COMMAND").find("HostName=2001:db8::7 -o HostKeyAlias=v6.example") !=
        std::string::npos);
  auto pinned = PrepareRemote("https://v6.example/o/r", "", std::chrono::seconds(1), rebinding);
  REQUIRE(pinned.ok());
  CHECK(std::find(pinned->config.begin(), pinned->config.end(),
                  "http.curloptResolve=v6.example:443:[2001:db8::7]") != pinned->config.end());
  auto lit = PrepareRemote("https://93.184.216.34/o/r.git", "", std::chrono::seconds(5));
  REQUIRE(lit.ok());
  CHECK(std::find(lit->config.begin(), lit->config.end(),
                  "http.curloptResolve=93.184.216.34:443:93.184.216.34") != lit->config.end());
  CHECK(std::find(lit->config.begin(), lit->config.end(), "http.followRedirects=false") !=
        lit->config.end());
  auto refused = PrepareRemote("http://127.0.0.1:1/x", "", std::chrono::seconds(5));
  CHECK(absl::IsInvalidArgument(refused.status()));
}

TEST_CASE("a local repository behind a symlink out of the root is refused", "[repo_url]") {
  const fs::path root = fs::temp_directory_path() / ids::New("root");
  const fs::path elsewhere = fs::temp_directory_path() / ids::New("elsewhere");
  fs::create_directories(root / "good");
  fs::create_directories(elsewhere);
  fs::create_directory_symlink(elsewhere, root / "sneaky");
  CHECK(builder::PrepareRemote((root / "good").string(), root.string(), std::chrono::seconds(1))
            .ok());
  auto sneaky =
      builder::PrepareRemote((root / "sneaky").string(), root.string(), std::chrono::seconds(1));
  CHECK(absl::IsInvalidArgument(sneaky.status()));
  CHECK(std::string(sneaky.status().message()).find("outside C2D_LOCAL_REPO_ROOT") !=
        std::string::npos);
  fs::remove_all(root);
  fs::remove_all(elsewhere);
}

TEST_CASE("paths in a checkout resolve inside it or not at all", "[repo_url]") {
  using builder::PathKind;
  const fs::path co = fs::temp_directory_path() / ids::New("co");
  fs::create_directories(co / "app/sub");
  std::ofstream(co / "app/Dockerfile") << "FROM x\n";
  fs::create_directory_symlink("/etc", co / "etc");
  fs::create_symlink("/etc/hostname", co / "app/Dockerfile.host");
  fs::create_directory_symlink("sub", co / "app/inner");
  std::ofstream(co / "app/sub/Procfile") << "web: python3 app.py\n";

  CHECK(builder::ResolveInside(co, "app", PathKind::kDirectory, "root_dir").ok());
  CHECK(builder::ResolveInside(co, "app/inner", PathKind::kDirectory, "root_dir").ok());
  auto out = builder::ResolveInside(co, "etc", PathKind::kDirectory, "root_dir");
  CHECK(absl::IsPermissionDenied(out.status()));
  CHECK(std::string(out.status().message()).find("leads outside the repository") !=
        std::string::npos);
  CHECK(absl::IsPermissionDenied(
      builder::ResolveInside(co / "app", "Dockerfile.host", PathKind::kRegularFile, "f").status()));
  CHECK(absl::IsNotFound(
      builder::ResolveInside(co, "missing", PathKind::kDirectory, "root_dir").status()));
  CHECK(absl::IsNotFound(
      builder::ResolveInside(co, "app/Dockerfile", PathKind::kDirectory, "root_dir").status()));
  CHECK(builder::ReadInside(co / "app", "inner/Procfile") == "web: python3 app.py\n");
  CHECK(builder::ReadInside(co, "etc/hostname").empty());
  fs::remove_all(co);
}

}  // namespace
}  // namespace c2d
