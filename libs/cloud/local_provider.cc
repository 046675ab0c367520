#include "libs/cloud/local_provider.h"

#include <arpa/inet.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "libs/common/env.h"
#include "libs/common/status.h"
#include "libs/crypto/hash.h"
#include "libs/oci/access.h"

namespace c2d::cloud {
namespace {

// The port label records the app's port, so Inspect can tell its address
// without knowing the spec.
constexpr char kPortLabel[] = "c2d.port";
// The fixed private address of an instance made with stable_address.
constexpr char kAddressLabel[] = "c2d.address";
// Fixed addresses come from the top of a network's /24, down from .254.
// The engine's own picks cycle through the whole range but skip addresses
// in use, so a fixed one can only be taken while its instance is stopped.
constexpr int kFixedHigh = 254, kFixedLow = 160;

// /proc/net/route lines: iface, destination, gateway, flags, …, mask (hex,
// host byte order of the kernel: little-endian here).
std::vector<std::vector<std::string>> Routes() {
  std::vector<std::vector<std::string>> out;
  std::ifstream in("/proc/net/route");
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    out.push_back(absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty()));
  }
  return out;
}

// True when the host has a route to exactly `network` (a.b.c.0), as it has
// for every bridge of any engine with a container on it.
bool RoutedOnHost(const std::string& network) {
  in_addr a{};
  if (inet_pton(AF_INET, network.c_str(), &a) != 1) return false;
  const std::string want = absl::StrFormat("%08X", a.s_addr);
  for (const auto& r : Routes()) {
    if (r.size() > 1 && r[1] == want) return true;
  }
  return false;
}

// The MTU of the device of the default route (1400 on some VMs): a bridge
// with more would lose large packets of containers talking outside.
int HostMtu() {
  for (const auto& r : Routes()) {
    if (r.size() > 1 && r[1] == "00000000") {
      std::ifstream mtu("/sys/class/net/" + r[0] + "/mtu");
      int v = 0;
      if (mtu >> v && v > 0) return v;
    }
  }
  return 0;
}

}  // namespace

LocalProvider::LocalProvider(LocalOptions options)
    : options_(std::move(options)), engine_(options_.engine_socket) {}

absl::StatusOr<std::string> LocalProvider::VolumePath(const std::string& volume) const {
  static const std::regex kName("^[a-z][a-z0-9-]{0,62}$");
  if (!std::regex_match(volume, kName)) {
    return absl::InvalidArgumentError(absl::StrCat("volume name \"", volume, "\" is not valid"));
  }
  std::filesystem::path dir = std::filesystem::path(options_.volumes_dir) / volume;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    return absl::UnavailableError(absl::StrCat("cannot create ", dir.string(), ": ", ec.message()));
  // The app may run as any user of its image: let it write its volume.
  std::filesystem::permissions(dir, std::filesystem::perms::all, ec);
  return dir.string();
}

absl::Status LocalProvider::DeleteVolume(const std::string& volume) {
  auto path = VolumePath(volume);
  if (!path.ok()) return path.status();
  std::error_code ec;
  std::filesystem::remove_all(*path, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat("cannot delete ", *path, ": ", ec.message()));
  }
  return absl::OkStatus();
}

absl::Status LocalProvider::WriteVolumeFile(const std::string& volume, const std::string& name,
                                            const std::string& source) {
  if (!IsVolumeFileName(name)) {
    return absl::InvalidArgumentError(absl::StrCat("file name \"", name, "\" is not valid"));
  }
  auto dir = VolumePath(volume);
  if (!dir.ok()) return dir.status();
  namespace fs = std::filesystem;
  const fs::path target = fs::path(*dir) / name, tmp = fs::path(*dir) / ("." + name + ".tmp");
  std::error_code ec;
  fs::copy_file(source, tmp, fs::copy_options::overwrite_existing, ec);
  if (!ec) {
    fs::permissions(tmp, fs::perms::owner_all | fs::perms::group_read | fs::perms::others_read, ec);
  }
  if (!ec) fs::rename(tmp, target, ec);
  if (ec) {
    fs::remove(tmp);
    return absl::UnavailableError(
        absl::StrCat("cannot write ", target.string(), ": ", ec.message()));
  }
  return absl::OkStatus();
}

Instance LocalProvider::FromContainer(const engine::ContainerInfo& c) {
  Instance i;
  i.ref = c.id;
  i.name = c.name;
  i.state = c.running                                      ? InstanceState::kRunning
            : c.status == "stopping" || c.status == "removing" ? InstanceState::kStopping
            : c.started_at.has_value()                         ? InstanceState::kExited
                                                               : InstanceState::kCreated;
  i.exit_code = c.exit_code;
  i.oom_killed = c.oom_killed;
  i.labels = c.labels;
  i.started_at = c.started_at;
  i.finished_at = c.finished_at;
  if (auto fixed = c.labels.find(kAddressLabel); fixed != c.labels.end()) {
    i.private_address = fixed->second;
  } else if (i.state == InstanceState::kRunning && !c.addresses.empty()) {
    i.private_address = c.addresses.begin()->second;
  }
  auto port = c.labels.find(kPortLabel);
  if (i.state == InstanceState::kRunning && port != c.labels.end()) {
    auto bound = c.host_ports.find(std::stoi(port->second));
    if (bound != c.host_ports.end()) i.address = absl::StrCat("127.0.0.1:", bound->second);
  }
  return i;
}

absl::StatusOr<Instance> LocalProvider::Create(const InstanceSpec& spec) {
  if (spec.image.find("@sha256:") == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("image \"", spec.image, "\" is not pinned by digest (repository@sha256:…)"));
  }
  if (absl::IsNotFound(engine_.InspectImage(spec.image).status())) {
    engine::RegistryAuth auth = options_.registry;
    if (!options_.grant_key.empty()) {
      // host/path@sha256:…: a grant to pull that repository, for this pull.
      const size_t slash = spec.image.find('/'), at = spec.image.find('@');
      const std::string repository = spec.image.substr(slash + 1, at - slash - 1);
      auth.username = oci::kGrantUser;
      auth.password =
          oci::MintGrant(options_.grant_key, {{.name = repository, .actions = {"pull"}}},
                         absl::Now() + absl::FromChrono(options_.pull_timeout) + absl::Minutes(1));
    }
    if (auto s = engine_.Pull(spec.image, auth, options_.pull_timeout); !s.ok()) {
      return s;
    }
  }
  engine::ContainerSpec c;
  c.name = spec.name;
  c.image = spec.image;
  c.cmd = spec.command;
  c.labels = spec.labels;
  std::map<std::string, std::string> env = spec.env;
  if (spec.port > 0) {
    env["PORT"] = std::to_string(spec.port);
    c.ports.push_back({.container_port = spec.port, .host_ip = "127.0.0.1", .host_port = 0});
    c.labels[kPortLabel] = std::to_string(spec.port);
  }
  for (const auto& [k, v] : env) c.env.push_back(absl::StrCat(k, "=", v));
  c.memory_bytes = spec.memory_bytes;
  c.nano_cpus = int64_t{spec.cpu_millis} * 1'000'000;
  for (const VolumeMount& v : spec.volumes) {
    auto path = VolumePath(v.volume);
    if (!path.ok()) return path.status();
    c.binds.push_back(absl::StrCat(*path, ":", v.mount_path));
  }
  c.network = spec.network;
  for (const auto& [name, address] : spec.hosts) c.extra_hosts.push_back(name + ":" + address);
  if (spec.stable_address) {
    auto address = FreeFixedAddress(spec.network, spec.name);
    if (!address.ok()) return address.status();
    c.ipv4_address = *address;
    c.labels[kAddressLabel] = *address;
  }
  auto id = engine_.CreateContainer(c);
  if (!id.ok()) {
    absl::MutexLock lock(&mu_);
    networks_.erase(spec.network);
    return id.status();
  }
  return Inspect(*id);
}

absl::StatusOr<std::string> LocalProvider::FreeFixedAddress(const std::string& network,
                                                            const std::string& name) {
  if (network.empty()) {
    return absl::InvalidArgumentError("a stable address needs a network of the instance's own");
  }
  auto subnet = engine_.NetworkSubnet(network);
  if (!subnet.ok()) return subnet.status();
  if (!absl::EndsWith(*subnet, ".0/24")) {
    return absl::InternalError(absl::StrCat("network ", network, " is not a /24: ", *subnet));
  }
  const std::string prefix = subnet->substr(0, subnet->size() - 5);  // "10.130.7"
  auto on = engine_.ListContainers({}, network);
  if (!on.ok()) return on.status();
  std::set<std::string> taken;
  for (const engine::ContainerInfo& c : *on) {
    for (const auto& [_, ip] : c.addresses) taken.insert(ip);
    if (auto fixed = c.labels.find(kAddressLabel); fixed != c.labels.end()) {
      taken.insert(fixed->second);
    }
  }
  // The same name starts from the same address, so a server made again
  // after a loss usually gets its old one back.
  const int span = kFixedHigh - kFixedLow + 1;
  const int start =
      static_cast<int>(std::stoull(crypto::Sha256Hex(name).substr(0, 8), nullptr, 16) % span);
  for (int k = 0; k < span; ++k) {
    const std::string ip = absl::StrCat(prefix, ".", kFixedHigh - (start + k) % span);
    if (taken.count(ip) == 0) return ip;
  }
  return absl::ResourceExhaustedError(
      absl::StrCat("network ", network, " has no free address for ", name));
}

absl::Status LocalProvider::EnsureNetwork(const std::string& network) {
  {
    absl::MutexLock lock(&mu_);
    if (networks_.count(network) > 0) return absl::OkStatus();
  }
  auto exists = engine_.NetworkExists(network);
  if (!exists.ok()) return exists.status();
  if (*exists) {
    absl::MutexLock lock(&mu_);
    networks_.insert(network);
    return absl::OkStatus();
  }
  // A /24 and a bridge name from a hash of the name, moved on when the host
  // already routes that subnet or has that device (the engine refuses
  // subnets of its own networks: the next candidate then).
  absl::Status last;
  for (uint64_t attempt = 0; attempt < 32; ++attempt) {
    // The same in every process: the first 16 hex digits of a SHA-256.
    const uint64_t h = std::stoull(
        crypto::Sha256Hex(absl::StrCat(network, "/", attempt)).substr(0, 16), nullptr, 16);
    const int n = static_cast<int>(h % 16384);
    const std::string prefix = absl::StrCat("10.", 128 + n / 256, ".", n % 256);
    engine::NetworkSpec spec{.name = network,
                             .subnet = absl::StrCat(prefix, ".0/24"),
                             .gateway = absl::StrCat(prefix, ".1"),
                             .bridge = absl::StrFormat("c2dn%08x", static_cast<uint32_t>(h >> 32)),
                             .mtu = HostMtu(),
                             .labels = {{"c2d.network", network}}};
    if (RoutedOnHost(absl::StrCat(prefix, ".0")) ||
        std::filesystem::exists("/sys/class/net/" + spec.bridge)) {
      continue;
    }
    last = engine_.CreateNetwork(spec);
    // Made by a concurrent caller, if not by this one?
    if (last.ok() || engine_.NetworkExists(network).value_or(false)) {
      absl::MutexLock lock(&mu_);
      networks_.insert(network);
      return absl::OkStatus();
    }
  }
  return absl::UnavailableError(absl::StrCat("cannot make network ", network, ": ",
                                             last.ok() ? "no free subnet" : last.message()));
}

absl::Status LocalProvider::RemoveNetwork(const std::string& network) {
  {
    absl::MutexLock lock(&mu_);
    networks_.erase(network);
  }
  absl::Status s = engine_.RemoveNetwork(network);
  return absl::IsNotFound(s) ? absl::OkStatus() : s;
}

absl::Status LocalProvider::Start(const std::string& ref) { return engine_.StartContainer(ref); }

absl::Status LocalProvider::Stop(const std::string& ref, std::chrono::seconds grace) {
  return engine_.StopContainer(ref, grace);
}

absl::Status LocalProvider::Remove(const std::string& ref) {
  return engine_.RemoveContainer(ref, /*force=*/true);
}

absl::StatusOr<Instance> LocalProvider::Inspect(const std::string& ref) {
  auto c = engine_.InspectContainer(ref);
  if (!c.ok()) return c.status();
  return FromContainer(*c);
}

absl::StatusOr<std::vector<Instance>> LocalProvider::List(
    const std::map<std::string, std::string>& labels) {
  auto all = engine_.ListContainers(labels);
  if (!all.ok()) return all.status();
  std::vector<Instance> out;
  for (const auto& c : *all) out.push_back(FromContainer(c));
  return out;
}

absl::Status LocalProvider::FollowLogs(const std::string& ref, std::optional<absl::Time> since,
                                       const std::function<bool(const LogLine&)>& on_line,
                                       const std::atomic<bool>* cancel) {
  return engine_.Logs(
      ref, /*follow=*/true, since,
      [&](const engine::LogLine& l) {
        return on_line(LogLine{l.stderr, l.text, l.time});
      },
      cancel);
}

std::string ProjectNetwork(const std::string& project_id) {
  return absl::StrCat("c2d-", absl::AsciiStrToLower(project_id));
}

std::string ResourceName(const std::string& id) {
  return absl::StrReplaceAll(absl::AsciiStrToLower(id), {{"_", "-"}});
}

std::string RegistryHost(const std::string& url) {
  absl::string_view u = url;
  size_t scheme = u.find("://");
  if (scheme != absl::string_view::npos) u.remove_prefix(scheme + 3);
  return std::string(u.substr(0, u.find('/')));
}

absl::StatusOr<LocalEnv> LocalEnv::FromEnv() {
  LocalEnv e;
  C2D_ASSIGN_OR_RETURN(e.local.engine_socket, env::GetRequired("C2D_ENGINE_SOCKET"));
  C2D_ASSIGN_OR_RETURN(e.registry.url, env::GetRequired("C2D_REGISTRY_URL"));
  if (!absl::StartsWith(e.registry.url, "http://") &&
      !absl::StartsWith(e.registry.url, "https://")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "C2D_REGISTRY_URL=\"", e.registry.url, "\" is not valid: expected http(s)://host:port"));
  }
  e.registry.username = env::GetString("C2D_REGISTRY_USER", "");
  e.registry.password = env::GetString("C2D_REGISTRY_PASSWORD", "");
  e.registry_host = RegistryHost(e.registry.url);
  e.local.registry = {e.registry.username, e.registry.password, e.registry_host};
  e.local.grant_key = oci::GrantKey(e.registry.password);
  e.local.volumes_dir = env::GetString(
      "C2D_VOLUMES_DIR", (std::filesystem::temp_directory_path() / "c2d-volumes").string());
  return e;
}

}  // namespace c2d::cloud
