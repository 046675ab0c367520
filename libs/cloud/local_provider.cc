#include "libs/cloud/local_provider.h"

#include <filesystem>
#include <regex>

#include "absl/strings/str_cat.h"

namespace c2d::cloud {
namespace {

// The port label records the app's port, so Inspect can tell its address
// without knowing the spec.
constexpr char kPortLabel[] = "c2d.port";

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

Instance LocalProvider::FromContainer(const engine::ContainerInfo& c) {
  Instance i;
  i.ref = c.id;
  i.name = c.name;
  i.state = c.running                  ? InstanceState::kRunning
            : c.started_at.has_value() ? InstanceState::kExited
                                       : InstanceState::kCreated;
  i.exit_code = c.exit_code;
  i.oom_killed = c.oom_killed;
  i.labels = c.labels;
  i.started_at = c.started_at;
  i.finished_at = c.finished_at;
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
    if (auto s = engine_.Pull(spec.image, options_.registry, options_.pull_timeout); !s.ok()) {
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
  auto id = engine_.CreateContainer(c);
  if (!id.ok()) return id.status();
  return Inspect(*id);
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

}  // namespace c2d::cloud
