#include "libs/cloud/openstack/cloud_init.h"

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "libs/cloud/openstack/caddy_admin.h"
#include "libs/common/status.h"

namespace c2d::cloud::openstack {
namespace {

using json = nlohmann::json;

constexpr char kEnvFile[] = "/etc/c2d/app.env";
constexpr char kPullFile[] = "/etc/c2d/pull";
constexpr char kBootScript[] = "/usr/local/sbin/c2d-boot";
constexpr char kAdminCa[] = "c2d-admin";  // the CA's id in Caddy's pki app
constexpr int kVolumeWaitSeconds = 300;

bool IsShellName(absl::string_view s) {
  if (s.empty() || absl::ascii_isdigit(s[0])) return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(c) && c != '_') return false;
  }
  return true;
}

// Characters of image references and host names: nothing a shell or YAML
// would read specially, even before quoting.
bool IsPlainToken(absl::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(c) && c != '.' && c != '-' && c != '_' && c != ':' && c != '/' &&
        c != '@') {
      return false;
    }
  }
  return true;
}

absl::Status Check(const BootPlan& p) {
  if (!IsPlainToken(p.image)) return absl::InvalidArgumentError("image: not an image reference");
  if (!IsPlainToken(p.container)) return absl::InvalidArgumentError("container: not a name");
  if (p.port < 0 || p.port > 65535) return absl::InvalidArgumentError("port: out of range");
  if (!p.pull.registry.empty() && !IsPlainToken(p.pull.registry)) {
    return absl::InvalidArgumentError("pull registry: not a host name");
  }
  for (const auto& [name, value] : p.env) {
    if (!IsShellName(name)) {
      return absl::InvalidArgumentError(absl::StrCat("env: ", name, " is not a variable name"));
    }
  }
  for (const auto& [host, address] : p.hosts) {
    if (!IsPlainToken(host) || !IsPlainToken(address)) {
      return absl::InvalidArgumentError(absl::StrCat("hosts: ", host, " ", address));
    }
  }
  if (!p.admin_client_certificate.empty() &&
      (p.admin_ca_certificate.empty() || p.admin_ca_key.empty())) {
    return absl::InvalidArgumentError("remote admin needs the instance's admin CA");
  }
  if (!p.files_url.empty() && !IsPlainToken(p.files_url)) {
    return absl::InvalidArgumentError("files URL: not a plain URL");
  }
  for (const BootVolume& v : p.volumes) {
    if (!IsPlainToken(v.volume_id) || !IsPlainToken(v.name) || !IsPlainToken(v.mount_path)) {
      return absl::InvalidArgumentError(absl::StrCat("volume ", v.name, ": bad name or path"));
    }
  }
  return absl::OkStatus();
}

// c2d-fetch-files BASE_URL METADATA_URL VOLUMES_DIR (cloud_init.h says
// what it does). Python: cloud-init's own language, so every image that
// runs cloud-init has it. It writes only below a volume's directory, and
// follows no link a container may have left there.
constexpr char kFetchFilesScript[] = R"py(#!/usr/bin/python3
# c2d: fetches the files c2d put into this server's volumes, once each.
import hashlib, http.client, json, os, re, sys, time, urllib.error, urllib.request

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class Refused(Exception):
    pass


def retried(what, action, attempts=8):
    error = None
    for attempt in range(attempts):
        try:
            return action()
        except urllib.error.HTTPError as e:
            if e.code < 500 and e.code != 429:
                sys.exit(f"c2d-fetch-files: {what}: HTTP {e.code}")
            error = e
        except Refused as e:
            sys.exit(f"c2d-fetch-files: {what}: {e}")
        except (OSError, http.client.HTTPException, ValueError) as e:
            error = e
        time.sleep(min(2 ** attempt, 30))
    sys.exit(f"c2d-fetch-files: {what}: {error}")


def metadata(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r).get("meta", {})


def nofollow(path, flags):
    return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)


def download(url, directory, name, sha256):
    part = os.path.join(directory, "." + name + ".part")
    if os.path.lexists(part):
        os.unlink(part)
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=60) as r:
        with os.fdopen(nofollow(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL), "wb") as out:
            while chunk := r.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
    if digest.hexdigest() != sha256:
        os.unlink(part)
        raise Refused("the bytes received are not the file's (SHA-256)")
    os.chmod(part, 0o644)
    os.replace(part, os.path.join(directory, name))


def fetched(directory):
    try:
        with os.fdopen(nofollow(os.path.join(directory, ".c2d-fetched"), os.O_RDONLY)) as f:
            return f.read().split()
    except FileNotFoundError:
        return []


def parse(key, value):
    parts, fields = key.split(":"), str(value).split(" ")
    if (len(parts) == 3 and all(NAME.fullmatch(p) for p in parts[1:]) and len(fields) == 3
            and fields[0].isdigit() and re.fullmatch(r"[0-9a-f]{40,128}", fields[1])
            and re.fullmatch(r"[0-9a-f]{64}", fields[2])):
        return parts[1], parts[2], int(fields[0]), fields[1], fields[2]
    return None


def main():
    base, metadata_url, volumes = sys.argv[1:4]
    for key, value in sorted(retried("metadata", lambda: metadata(metadata_url)).items()):
        if not key.startswith("c2d.file:"):
            continue
        file = parse(key, value)
        if file is None:
            print(f"c2d-fetch-files: {key}: not a file of c2d's; ignored", file=sys.stderr)
            continue
        volume, name, expires, signature, sha256 = file
        directory = os.path.join(volumes, volume)
        if not os.path.isdir(directory) or signature in fetched(directory):
            continue
        if expires < time.time():
            print(f"c2d-fetch-files: {volume}/{name}: its link expired; skipped", file=sys.stderr)
            continue
        url = f"{base}/{volume}/{name}?temp_url_sig={signature}&temp_url_expires={expires}"
        retried(f"{volume}/{name}", lambda: download(url, directory, name, sha256))
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        with os.fdopen(nofollow(os.path.join(directory, ".c2d-fetched"), flags), "a") as f:
            f.write(signature + "\n")
        print(f"c2d-fetch-files: {volume}/{name} fetched")


main()
)py";

std::string EnvFile(const BootPlan& p) {
  std::string out = "# c2d: the instance's environment, read by c2d-boot\n";
  for (const auto& [name, value] : p.env) absl::StrAppend(&out, name, "=", ShellQuote(value), "\n");
  return out;
}

// `docker run`'s arguments, each one shell word.
std::string RunArguments(const BootPlan& p) {
  std::vector<std::string> args = {
      "--detach",  "--name",      ShellQuote(p.container), "--restart=on-failure",
      "--log-opt", "max-size=20m"};
  for (const auto& [name, value] : p.env) args.insert(args.end(), {"--env", name});
  if (p.port > 0 && p.behind_caddy) {
    args.insert(args.end(), {"--env", absl::StrCat("PORT=", p.port), "--publish",
                             absl::StrCat("127.0.0.1:", p.port, ":", p.port)});
  } else if (p.port > 0) {
    args.insert(args.end(), {"--publish", absl::StrCat(p.port, ":", p.port)});
  }
  for (const auto& [host, address] : p.hosts) {
    args.insert(args.end(), {"--add-host", ShellQuote(absl::StrCat(host, ":", address))});
  }
  for (const BootVolume& v : p.volumes) {
    args.insert(
        args.end(),
        {"--volume", ShellQuote(absl::StrCat("/srv/c2d/volumes/", v.name, ":", v.mount_path))});
  }
  if (p.memory_bytes > 0) args.insert(args.end(), {"--memory", absl::StrCat(p.memory_bytes)});
  if (p.cpu_millis > 0) {
    args.insert(args.end(), {"--cpus", absl::StrCat(p.cpu_millis / 1000, ".",
                                                    absl::StrFormat("%03d", p.cpu_millis % 1000))});
  }
  args.push_back(ShellQuote(p.image));
  for (const std::string& c : p.command) args.push_back(ShellQuote(c));
  return absl::StrJoin(args, " ");
}

std::string PullSteps(const BootPlan& p) {
  if (p.pull.registry.empty()) return absl::StrCat("  docker pull ", ShellQuote(p.image), "\n");
  const std::string registry = ShellQuote(p.pull.registry);
  return absl::StrCat("  if [ -s ", kPullFile, " ]; then\n", "    docker login --username ",
                      ShellQuote(p.pull.username), " --password-stdin ", registry, " <", kPullFile,
                      "\n", "  fi\n", "  pulled=0\n", "  docker pull ", ShellQuote(p.image),
                      " && pulled=1\n",
                      "  # One pull: the credential is spent (and short-lived) either way.\n",
                      "  rm -f ", kPullFile, "\n", "  docker logout ", registry, " || true\n",
                      "  [ \"$pulled\" = 1 ] || exit 1\n");
}

std::string BootScript(const BootPlan& p) {
  std::string s = absl::StrCat(
      "#!/bin/bash\n",
      "# c2d: mounts the volumes, then runs the container (first boot) or starts it again.\n",
      "set -euo pipefail\n", "volume() {  # volume <disk id> <directory>\n",
      "  local dev=/dev/disk/by-id/virtio-$1 deadline=$((SECONDS + ", kVolumeWaitSeconds, "))\n",
      "  until [ -b \"$dev\" ]; do\n",
      "    if ((SECONDS > deadline)); then echo \"c2d-boot: volume $1 never appeared\" >&2; "
      "exit 1; fi\n",
      "    sleep 2\n", "  done\n",
      "  blkid \"$dev\" >/dev/null || mkfs.ext4 -q -L c2d \"$dev\"  # only a blank disk\n",
      "  mkdir -p \"$2\"\n", "  mountpoint -q \"$2\" || mount \"$dev\" \"$2\"\n",
      "  grep -qF \" $2 \" /etc/fstab || echo \"$dev $2 ext4 defaults,nofail 0 2\" >>/etc/fstab\n",
      "}\n");
  for (const BootVolume& v : p.volumes) {
    absl::StrAppend(&s, "volume ", ShellQuote(v.volume_id.substr(0, 20)), " ",
                    ShellQuote(absl::StrCat("/srv/c2d/volumes/", v.name)), "\n");
  }
  if (!p.files_url.empty() && !p.volumes.empty()) {
    absl::StrAppend(&s, kFetchFilesPath, " ", ShellQuote(p.files_url), " ", kMetadataUrl,
                    " /srv/c2d/volumes\n");
  }
  absl::StrAppend(&s, "if docker container inspect ", ShellQuote(p.container),
                  " >/dev/null 2>&1; then\n", "  exec docker start ", ShellQuote(p.container), "\n",
                  "fi\n", "if ! docker image inspect ", ShellQuote(p.image),
                  " >/dev/null 2>&1; then\n", PullSteps(p), "fi\n", "set -a\n", ". ", kEnvFile,
                  "\n", "set +a\n", "exec docker run ", RunArguments(p), "\n");
  return s;
}

// A PEM certificate's DER, base64 (what Caddy's access_control takes).
std::string PemBody(absl::string_view pem) {
  std::string out;
  for (absl::string_view line : absl::StrSplit(pem, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || absl::StartsWith(line, "-----")) continue;
    absl::StrAppend(&out, line);
  }
  return out;
}

json CaddyConfig(const BootPlan& p) {
  const json upstream = {{"handler", "reverse_proxy"},
                         {"upstreams", {{{"dial", absl::StrCat("127.0.0.1:", p.port)}}}}};
  json admin = {{"listen", "127.0.0.1:2019"}};
  json apps = {{"http",
                {{"servers",
                  {{"c2d-http",
                    {{"listen", {":80"}},
                     {"automatic_https", {{"disable", true}}},
                     {"routes", {{{"handle", {upstream}}}}}}},
                   {"c2d-https",
                    {{"listen", {":443"}},
                     {"automatic_https", {{"disable", true}}},
                     {"tls_connection_policies", {json::object()}},
                     {"routes", {{{"handle", {upstream}}}}}}}}}}},
               {"tls", {{"certificates", {{"load_pem", json::array()}}}}}};
  if (!p.admin_client_certificate.empty()) {
    apps["pki"] = {
        {"certificate_authorities",
         {{kAdminCa,
           {{"name", absl::StrCat(p.container, " admin")},
            {"install_trust", false},
            {"root", {{"certificate", kAdminCaCertPath}, {"private_key", kAdminCaKeyPath}}}}}}}};
    admin["identity"] = {{"identifiers", {AdminName(p.container)}},
                         {"issuers", {{{"module", "internal"}, {"ca", kAdminCa}}}}};
    admin["remote"] = {{"listen", absl::StrCat(":", p.admin_port)},
                       {"access_control",
                        {{{"public_keys", {PemBody(p.admin_client_certificate)}},
                          {"permissions",
                           {{{"paths", {"/config/apps/tls", "/config/apps/http/servers/c2d-https"}},
                             {"methods", {"GET", "POST", "PUT", "PATCH", "DELETE"}}}}}}}}};
  }
  return {{"admin", admin}, {"apps", apps}};
}

json File(const std::string& path, const std::string& content, const std::string& mode) {
  return {{"path", path}, {"content", content}, {"owner", "root:root"}, {"permissions", mode}};
}

// A file of Caddy's own, written once the package made its user.
json CaddyFile(const std::string& path, const std::string& content, const std::string& mode) {
  return {{"path", path},
          {"content", content},
          {"owner", "caddy:caddy"},
          {"permissions", mode},
          {"defer", true}};
}

std::string AppUnit() {
  return absl::StrCat(
      "[Unit]\nDescription=c2d instance\nAfter=docker.service network-online.target\n",
      "Requires=docker.service\nWants=network-online.target\n\n",
      "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=", kBootScript,
      "\nTimeoutStartSec=900\n\n[Install]\nWantedBy=multi-user.target\n");
}

std::string LogUnit(const BootPlan& p) {
  return absl::StrCat(
      "[Unit]\nDescription=c2d instance output to the console\nAfter=c2d-app.service\n\n",
      "[Service]\nExecStart=/bin/sh -c 'docker logs --follow --timestamps --since 1s ", p.container,
      " 2>&1 | sed -u \"s/^/", kLogPrefix, "/\" >/dev/console'\nRestart=always\nRestartSec=2\n\n",
      "[Install]\nWantedBy=multi-user.target\n");
}

}  // namespace

std::string ShellQuote(absl::string_view text) {
  return absl::StrCat("'", absl::StrReplaceAll(text, {{"'", "'\\''"}}), "'");
}

std::string FileMetaKey(absl::string_view volume, absl::string_view name) {
  return absl::StrCat(kFileMetaPrefix, volume, ":", name);
}

std::string FileMetaValue(int64_t expires, absl::string_view signature, absl::string_view sha256) {
  return absl::StrCat(expires, " ", signature, " ", sha256);
}

std::string RenderCaddyConfig(const BootPlan& plan) { return CaddyConfig(plan).dump(2); }

absl::StatusOr<std::string> RenderUserData(const BootPlan& plan) {
  C2D_RETURN_IF_ERROR(Check(plan));
  json files = json::array();
  files.push_back(File(kEnvFile, EnvFile(plan), "0600"));
  if (!plan.pull.registry.empty()) files.push_back(File(kPullFile, plan.pull.password, "0600"));
  files.push_back(File(kBootScript, BootScript(plan), "0700"));
  if (!plan.files_url.empty() && !plan.volumes.empty()) {
    files.push_back(File(kFetchFilesPath, kFetchFilesScript, "0755"));
  }
  files.push_back(File("/etc/systemd/system/c2d-app.service", AppUnit(), "0644"));
  files.push_back(File("/etc/systemd/system/c2d-log.service", LogUnit(plan), "0644"));
  std::vector<std::string> packages = {"docker.io"};
  std::vector<std::vector<std::string>> run = {{"systemctl", "daemon-reload"},
                                               {"systemctl", "enable", "--now", "docker"}};
  if (plan.behind_caddy && plan.port > 0) {
    packages.push_back("caddy");
    files.push_back(CaddyFile(kCaddyConfigPath, RenderCaddyConfig(plan), "0600"));
    if (!plan.admin_client_certificate.empty()) {
      files.push_back(CaddyFile(kAdminCaCertPath, plan.admin_ca_certificate, "0644"));
      files.push_back(CaddyFile(kAdminCaKeyPath, plan.admin_ca_key, "0600"));
    }
    files.push_back(File("/etc/systemd/system/caddy.service.d/c2d.conf",
                         absl::StrCat("[Service]\nExecStart=\nExecStart=/usr/bin/caddy run "
                                      "--environ --resume --config ",
                                      kCaddyConfigPath, "\n"),
                         "0644"));
    run.push_back({"systemctl", "restart", "caddy"});
  }
  run.push_back({"systemctl", "enable", "--now", "c2d-app.service"});
  run.push_back({"systemctl", "enable", "--now", "c2d-log.service"});
  const json doc = {
      {"package_update", true}, {"packages", packages}, {"write_files", files}, {"runcmd", run}};
  return absl::StrCat("#cloud-config\n", doc.dump(2), "\n");
}

}  // namespace c2d::cloud::openstack
