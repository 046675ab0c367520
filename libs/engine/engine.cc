#include "libs/engine/engine.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "libs/engine/json_stream.h"
#include "libs/http/client.h"
#include "nlohmann/json.hpp"

namespace c2d::engine {
namespace {

using nlohmann::json;

std::string AuthHeader(const RegistryAuth& auth) {
  json j = {
      {"username", auth.username}, {"password", auth.password}, {"serveraddress", auth.server}};
  return http::Base64Url(j.dump());
}

// The engine's error message from a JSON error body ({"message": …}), or the
// raw body.
std::string EngineMessage(const http::Response& r) {
  json j = json::parse(r.body, nullptr, /*allow_exceptions=*/false);
  if (j.is_object() && j.contains("message") && j["message"].is_string()) {
    return j["message"].get<std::string>();
  }
  return r.body.empty() ? absl::StrCat("HTTP ", r.status) : r.body;
}

// Maps a non-2xx engine answer to a Status.
absl::Status HttpError(absl::string_view what, const http::Response& r) {
  std::string msg = absl::StrCat(what, ": ", EngineMessage(r));
  switch (r.status) {
    case 400:
      return absl::InvalidArgumentError(msg);
    case 401:
    case 403:
      return absl::PermissionDeniedError(msg);
    case 404:
      return absl::NotFoundError(msg);
    case 409:
      return absl::FailedPreconditionError(msg);
    default:
      return r.status >= 500 ? absl::UnavailableError(msg) : absl::UnknownError(msg);
  }
}

std::optional<absl::Time> ParseTime(const json& j) {
  if (!j.is_string()) return std::nullopt;
  absl::Time t;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, j.get<std::string>(), &t, &err)) return std::nullopt;
  if (t < absl::FromUnixSeconds(1)) return std::nullopt;  // "0001-01-01T00:00:00Z" = never
  return t;
}

ContainerInfo ParseContainer(const json& j) {
  ContainerInfo c;
  c.id = j.value("Id", "");
  c.name = j.value("Name", "");
  if (!c.name.empty() && c.name[0] == '/') c.name.erase(0, 1);
  if (j.contains("Config") && j["Config"].is_object()) {
    c.image = j["Config"].value("Image", "");
    if (j["Config"].contains("Labels") && j["Config"]["Labels"].is_object()) {
      for (const auto& [k, v] : j["Config"]["Labels"].items()) {
        if (v.is_string()) c.labels[k] = v.get<std::string>();
      }
    }
  }
  if (j.contains("State") && j["State"].is_object()) {
    const json& s = j["State"];
    c.status = s.value("Status", "");
    c.running = s.value("Running", false);
    c.exit_code = s.value("ExitCode", 0);
    c.oom_killed = s.value("OOMKilled", false);
    c.started_at = ParseTime(s.value("StartedAt", json()));
    c.finished_at = ParseTime(s.value("FinishedAt", json()));
  }
  if (j.contains("NetworkSettings") && j["NetworkSettings"].is_object() &&
      j["NetworkSettings"].contains("Ports") && j["NetworkSettings"]["Ports"].is_object()) {
    for (const auto& [port_proto, bindings] : j["NetworkSettings"]["Ports"].items()) {
      int container_port = 0;
      if (!absl::SimpleAtoi(port_proto.substr(0, port_proto.find('/')), &container_port)) continue;
      if (!bindings.is_array() || bindings.empty()) continue;
      int host_port = 0;
      if (absl::SimpleAtoi(bindings[0].value("HostPort", ""), &host_port)) {
        c.host_ports[container_port] = host_port;
      }
    }
  }
  if (j.contains("NetworkSettings") && j["NetworkSettings"].is_object() &&
      j["NetworkSettings"].contains("Networks") && j["NetworkSettings"]["Networks"].is_object()) {
    for (const auto& [name, n] : j["NetworkSettings"]["Networks"].items()) {
      if (!n.is_object() || !n.contains("IPAddress") || !n["IPAddress"].is_string()) continue;
      const std::string ip = n["IPAddress"].get<std::string>();
      if (!ip.empty()) c.addresses[name] = ip;
    }
  }
  return c;
}

}  // namespace

Engine::Engine(std::string socket, std::chrono::milliseconds call_timeout)
    : socket_(std::move(socket)), call_timeout_(call_timeout) {}

std::string Engine::Url(absl::string_view path) const {
  return absl::StrCat("http://engine/v1.41", path);
}

absl::Status Engine::Unreachable(const absl::Status& transport) const {
  if (!absl::IsUnavailable(transport)) return transport;
  return absl::UnavailableError(absl::StrCat("the container engine (", socket_,
                                             ") cannot be reached: ", transport.message()));
}

absl::StatusOr<std::string> Engine::Call(const std::string& method, const std::string& path,
                                         const std::string& what, const std::string& body,
                                         std::chrono::milliseconds timeout, long also_ok) const {
  http::Request req{.method = method,
                    .url = Url(path),
                    .body = body,
                    .unix_socket = socket_,
                    .timeout = timeout.count() > 0 ? timeout : call_timeout_};
  if (!body.empty()) req.headers.emplace_back("Content-Type", "application/json");
  auto r = http::Send(req);
  if (!r.ok()) return Unreachable(r.status());
  if (r->status / 100 != 2 && r->status != also_ok) return HttpError(what, *r);
  return std::move(r->body);
}

absl::Status Engine::Ping() const {
  return Call("GET", "/_ping", "ping the container engine").status();
}

absl::StatusOr<std::string> Engine::Build(const std::string& context_tar,
                                          const BuildOptions& options) const {
  size_t at = 0;
  auto read = [&](char* buf, size_t n) -> absl::StatusOr<size_t> {
    size_t k = std::min(n, context_tar.size() - at);
    std::memcpy(buf, context_tar.data() + at, k);
    at += k;
    return k;
  };
  return Build(read, static_cast<int64_t>(context_tar.size()), options);
}

absl::StatusOr<std::string> Engine::Build(
    const std::function<absl::StatusOr<size_t>(char*, size_t)>& read_context, int64_t context_size,
    const BuildOptions& options) const {
  json args = json::object(), labels = json::object();
  for (const auto& [k, v] : options.build_args) args[k] = v;
  for (const auto& [k, v] : options.labels) labels[k] = v;
  std::string query = absl::StrCat("/build?t=", http::UrlEncode(options.tag),
                                   "&dockerfile=", http::UrlEncode(options.dockerfile),
                                   "&rm=1&forcerm=1&buildargs=", http::UrlEncode(args.dump()),
                                   "&labels=", http::UrlEncode(labels.dump()));
  if (options.memory_bytes > 0) {
    absl::StrAppend(&query, "&memory=", options.memory_bytes, "&memswap=", options.memory_bytes);
  }
  if (!options.cgroup_parent.empty()) {
    absl::StrAppend(&query, "&cgroupparent=", http::UrlEncode(options.cgroup_parent));
  }
  // "pullpolicy" is the libpod endpoint's word, "pull" the compatible one's.
  if (options.always_pull) absl::StrAppend(&query, "&pull=true&pullpolicy=always");
  std::string url = Url(query);
  if (options.sandboxed) {
    // Podman's Docker-compatible /build runs RUN steps in the engine's own
    // network namespace whatever networkmode says; its libpod endpoint with
    // rootless isolation and a private network gives each step slirp4netns.
    absl::StrAppend(&query, "&isolation=rootless&nsoptions=",
                    http::UrlEncode(R"([{"Name":"network","Host":false}])"));
    url = absl::StrCat("http://engine/v4.0.0/libpod", query);
  }
  // X-Registry-Config: {"host:port": {"username", "password"}, …}, base64url.
  json registries = json::object();
  for (const RegistryAuth& a : options.registries) {
    registries[a.server] = {{"username", a.username}, {"password", a.password}};
  }
  JsonStream stream;
  stream.on_log = &options.on_log;
  http::Request req{.method = "POST",
                    .url = url,
                    .headers = {{"Content-Type", "application/x-tar"},
                                {"X-Registry-Config", http::Base64Url(registries.dump())}},
                    .body_reader = read_context,
                    .body_size = context_size,
                    .unix_socket = socket_,
                    .timeout = options.timeout,
                    .on_body = [&](absl::string_view chunk) { return stream.splitter.Feed(chunk); },
                    .cancel = options.cancel};
  auto r = http::Send(req);
  stream.Finish();
  if (!r.ok()) return Unreachable(r.status());
  if (r->status / 100 != 2) {
    return absl::FailedPreconditionError(absl::StrCat(
        "build failed: ", stream.error.empty() ? absl::StrCat("HTTP ", r->status) : stream.error));
  }
  if (!stream.error.empty()) {
    return absl::FailedPreconditionError(absl::StrCat("build failed: ", stream.error));
  }
  if (!stream.aux_id.empty()) return stream.aux_id;
  // Engines that report no aux ID: the tag resolves to the image.
  auto info = InspectImage(options.tag);
  if (!info.ok()) return info.status();
  return info->id;
}

absl::Status Engine::Tag(const std::string& image, const std::string& repo,
                         const std::string& tag) const {
  return Call("POST",
              absl::StrCat("/images/", http::UrlEncode(image), "/tag?repo=", http::UrlEncode(repo),
                           "&tag=", http::UrlEncode(tag)),
              absl::StrCat("tag ", image))
      .status();
}

absl::Status Engine::Push(const std::string& repo, const std::string& tag, const RegistryAuth& auth,
                          const LogFn& on_log, std::chrono::milliseconds timeout,
                          const std::atomic<bool>* cancel) const {
  JsonStream stream;
  stream.on_log = &on_log;
  http::Request req{.method = "POST",
                    .url = Url(absl::StrCat("/images/", http::UrlEncode(repo),
                                            "/push?tag=", http::UrlEncode(tag))),
                    .headers = {{"X-Registry-Auth", AuthHeader(auth)}},
                    .unix_socket = socket_,
                    .timeout = timeout,
                    .on_body = [&](absl::string_view chunk) { return stream.splitter.Feed(chunk); },
                    .cancel = cancel};
  auto r = http::Send(req);
  stream.Finish();
  if (!r.ok()) return Unreachable(r.status());
  if (r->status / 100 != 2) return HttpError(absl::StrCat("push ", repo, ":", tag), *r);
  if (!stream.error.empty()) {
    return absl::UnavailableError(absl::StrCat("push ", repo, ":", tag, ": ", stream.error));
  }
  return absl::OkStatus();
}

absl::Status Engine::Pull(const std::string& reference, const RegistryAuth& auth,
                          std::chrono::milliseconds timeout) const {
  JsonStream stream;
  http::Request req{
      .method = "POST",
      .url = Url(absl::StrCat("/images/create?fromImage=", http::UrlEncode(reference))),
      .headers = {{"X-Registry-Auth", AuthHeader(auth)}},
      .unix_socket = socket_,
      .timeout = timeout,
      .on_body = [&](absl::string_view chunk) { return stream.splitter.Feed(chunk); }};
  auto r = http::Send(req);
  stream.Finish();
  if (!r.ok()) return Unreachable(r.status());
  if (r->status / 100 != 2) return HttpError(absl::StrCat("pull ", reference), *r);
  if (!stream.error.empty()) {
    return absl::NotFoundError(absl::StrCat("pull ", reference, ": ", stream.error));
  }
  return absl::OkStatus();
}

absl::StatusOr<ImageInfo> Engine::InspectImage(const std::string& reference) const {
  auto body = Call("GET", absl::StrCat("/images/", http::UrlEncode(reference), "/json"),
                   absl::StrCat("inspect image ", reference));
  if (!body.ok()) return body.status();
  json j = json::parse(*body, nullptr, false);
  if (!j.is_object()) return absl::InternalError("inspect image: malformed answer");
  ImageInfo info;
  info.id = j.value("Id", "");
  if (info.id.rfind("sha256:", 0) != 0 && !info.id.empty()) info.id = "sha256:" + info.id;
  info.size_bytes = j.value("Size", int64_t{0});
  if (j.contains("RepoDigests") && j["RepoDigests"].is_array()) {
    for (const auto& d : j["RepoDigests"]) info.repo_digests.push_back(d.get<std::string>());
  }
  return info;
}

absl::Status Engine::RemoveImage(const std::string& reference, bool force) const {
  return Call("DELETE",
              absl::StrCat("/images/", http::UrlEncode(reference), force ? "?force=1" : ""),
              absl::StrCat("remove image ", reference))
      .status();
}

absl::StatusOr<std::string> Engine::CreateContainer(const ContainerSpec& spec) const {
  json body = {{"Image", spec.image}, {"Env", spec.env}, {"Labels", json::object()}};
  if (!spec.cmd.empty()) body["Cmd"] = spec.cmd;
  for (const auto& [k, v] : spec.labels) body["Labels"][k] = v;
  json host = json::object();
  json exposed = json::object(), bindings = json::object();
  for (const PortBinding& p : spec.ports) {
    std::string key = absl::StrCat(p.container_port, "/tcp");
    exposed[key] = json::object();
    bindings[key] = json::array(
        {{{"HostIp", p.host_ip}, {"HostPort", p.host_port ? std::to_string(p.host_port) : ""}}});
  }
  if (!spec.ports.empty()) {
    body["ExposedPorts"] = exposed;
    host["PortBindings"] = bindings;
  }
  if (!spec.binds.empty()) host["Binds"] = spec.binds;
  if (spec.memory_bytes > 0) host["Memory"] = spec.memory_bytes;
  if (spec.nano_cpus > 0) host["NanoCpus"] = spec.nano_cpus;
  if (!spec.network.empty()) host["NetworkMode"] = spec.network;
  if (!spec.extra_hosts.empty()) host["ExtraHosts"] = spec.extra_hosts;
  body["HostConfig"] = host;
  if (!spec.network.empty() && !spec.ipv4_address.empty()) {
    body["NetworkingConfig"] = {
        {"EndpointsConfig",
         {{spec.network, {{"IPAMConfig", {{"IPv4Address", spec.ipv4_address}}}}}}}};
  }
  std::string path = "/containers/create";
  if (!spec.name.empty()) absl::StrAppend(&path, "?name=", http::UrlEncode(spec.name));
  auto answer = Call("POST", path, absl::StrCat("create container from ", spec.image), body.dump());
  if (!answer.ok()) return answer.status();
  json j = json::parse(*answer, nullptr, false);
  if (!j.is_object() || !j.contains("Id")) return absl::InternalError("create container: no Id");
  return j["Id"].get<std::string>();
}

absl::Status Engine::CreateNetwork(const NetworkSpec& spec) const {
  json options = {{"com.docker.network.bridge.name", spec.bridge}};
  if (spec.mtu > 0) options["com.docker.network.driver.mtu"] = std::to_string(spec.mtu);
  json body = {
      {"Name", spec.name},
      {"Driver", "bridge"},
      {"Options", options},
      {"IPAM", {{"Config", json::array({{{"Subnet", spec.subnet}, {"Gateway", spec.gateway}}})}}},
      {"Labels", json::object()}};
  for (const auto& [k, v] : spec.labels) body["Labels"][k] = v;
  return Call("POST", "/networks/create", absl::StrCat("create network ", spec.name), body.dump())
      .status();
}

absl::StatusOr<bool> Engine::NetworkExists(const std::string& name) const {
  auto r = Call("GET", absl::StrCat("/networks/", http::UrlEncode(name)),
                absl::StrCat("inspect network ", name));
  if (absl::IsNotFound(r.status())) return false;
  if (!r.ok()) return r.status();
  return true;
}

absl::StatusOr<std::string> Engine::NetworkSubnet(const std::string& name) const {
  auto r = Call("GET", absl::StrCat("/networks/", http::UrlEncode(name)),
                absl::StrCat("inspect network ", name));
  if (!r.ok()) return r.status();
  json j = json::parse(*r, nullptr, false);
  if (j.is_object() && j.contains("IPAM") && j["IPAM"].is_object() &&
      j["IPAM"].contains("Config") && j["IPAM"]["Config"].is_array()) {
    for (const json& c : j["IPAM"]["Config"]) {
      const std::string subnet = c.is_object() ? c.value("Subnet", "") : "";
      if (!subnet.empty() && subnet.find(':') == std::string::npos) return subnet;
    }
  }
  return absl::InternalError(absl::StrCat("network ", name, " has no IPv4 subnet"));
}

absl::Status Engine::RemoveNetwork(const std::string& name) const {
  return Call("DELETE", absl::StrCat("/networks/", http::UrlEncode(name)),
              absl::StrCat("remove network ", name))
      .status();
}

absl::Status Engine::StartContainer(const std::string& id) const {
  return GoneMeanwhile(id, Call("POST", absl::StrCat("/containers/", id, "/start"),
                                absl::StrCat("start container ", id), "", {}, /*also_ok=*/304)
                               .status());
}

absl::Status Engine::GoneMeanwhile(const std::string& id, absl::Status s) const {
  if (s.ok() || absl::IsNotFound(s)) return s;
  // The engine answers 500 for a container removed while the call ran (a
  // race with its own cleanup); asked again, it says 404.
  if (absl::IsNotFound(InspectContainer(id).status())) {
    return absl::NotFoundError(absl::StrCat("container ", id, " is gone"));
  }
  return s;
}

absl::Status Engine::StopContainer(const std::string& id, std::chrono::seconds grace) const {
  const absl::Time asked = absl::Now();
  absl::Status s = GoneMeanwhile(
      id, Call("POST", absl::StrCat("/containers/", id, "/stop?t=", grace.count()),
               absl::StrCat("stop container ", id), "", call_timeout_ + grace, /*also_ok=*/304)
              .status());
  if (s.ok() || absl::IsNotFound(s)) return s;
  // The engine fails its clean-up after the kill (500, "container state
  // improper") when something started the container again meanwhile: the
  // stop itself happened, as its finish time says.
  auto now = InspectContainer(id);
  if (now.ok() && now->finished_at && *now->finished_at >= asked) return absl::OkStatus();
  return s;
}

absl::Status Engine::RemoveContainer(const std::string& id, bool force) const {
  return GoneMeanwhile(
      id, Call("DELETE", absl::StrCat("/containers/", id, "?v=1", force ? "&force=1" : ""),
               absl::StrCat("remove container ", id))
              .status());
}

absl::StatusOr<ContainerInfo> Engine::InspectContainer(const std::string& id) const {
  auto body = Call("GET", absl::StrCat("/containers/", id, "/json"),
                   absl::StrCat("inspect container ", id));
  // A container being removed answers 500 ("does not exist in database")
  // until its removal is through; then 404. Asked again shortly, it tells.
  for (int retry = 0; retry < 3 && absl::IsUnavailable(body.status()); ++retry) {
    absl::SleepFor(absl::Milliseconds(100));
    body = Call("GET", absl::StrCat("/containers/", id, "/json"),
                absl::StrCat("inspect container ", id));
  }
  if (!body.ok()) return body.status();
  json j = json::parse(*body, nullptr, false);
  if (!j.is_object()) return absl::InternalError("inspect container: malformed answer");
  return ParseContainer(j);
}

absl::StatusOr<std::vector<ContainerInfo>> Engine::ListContainers(
    const std::map<std::string, std::string>& labels, const std::string& network) const {
  json filters = {{"label", json::array()}};
  for (const auto& [k, v] : labels) filters["label"].push_back(absl::StrCat(k, "=", v));
  if (!network.empty()) filters["network"] = json::array({network});
  auto body =
      Call("GET", absl::StrCat("/containers/json?all=1&filters=", http::UrlEncode(filters.dump())),
           "list containers");
  if (!body.ok()) return body.status();
  json j = json::parse(*body, nullptr, false);
  if (!j.is_array()) return absl::InternalError("list containers: malformed answer");
  std::vector<ContainerInfo> out;
  // The list gives a summary; inspect each for the full state.
  for (const auto& summary : j) {
    auto c = InspectContainer(summary.value("Id", ""));
    if (c.ok()) out.push_back(std::move(*c));
  }
  return out;
}

absl::StatusOr<int> Engine::WaitContainer(const std::string& id,
                                          std::chrono::milliseconds timeout) const {
  auto body = Call("POST", absl::StrCat("/containers/", id, "/wait?condition=not-running"),
                   absl::StrCat("wait for container ", id), "", timeout);
  if (!body.ok()) return body.status();
  json j = json::parse(*body, nullptr, false);
  if (!j.is_object()) return absl::InternalError("wait: malformed answer");
  return j.value("StatusCode", -1);
}

absl::Status Engine::Logs(const std::string& id, bool follow, std::optional<absl::Time> since,
                          const std::function<bool(const LogLine&)>& on_line,
                          const std::atomic<bool>* cancel) const {
  std::string path = absl::StrCat("/containers/", id, "/logs?stdout=1&stderr=1&timestamps=1",
                                  follow ? "&follow=1" : "");
  if (since) absl::StrAppend(&path, "&since=", absl::ToUnixSeconds(*since));
  // Without a TTY the stream is multiplexed: frames of an 8-byte header
  // (stream type, 3 zero bytes, big-endian length) and the payload.
  std::string buffer;
  std::string partial[3];
  bool keep_going = true;
  // Each line starts with its RFC 3339 time and a space.
  auto line = [](bool is_stderr, absl::string_view text) {
    LogLine l{is_stderr, std::string(text), std::nullopt};
    size_t space = text.find(' ');
    absl::Time t;
    std::string err;
    if (space != absl::string_view::npos &&
        absl::ParseTime(absl::RFC3339_full, text.substr(0, space), &t, &err)) {
      l.time = t;
      l.text = std::string(text.substr(space + 1));
    }
    return l;
  };
  auto deliver = [&](int stream, absl::string_view data) {
    std::string& p = partial[stream == 2 ? 2 : 1];
    p.append(data.data(), data.size());
    size_t start = 0, nl;
    while (keep_going && (nl = p.find('\n', start)) != std::string::npos) {
      keep_going = on_line(line(stream == 2, absl::string_view(p).substr(start, nl - start)));
      start = nl + 1;
    }
    p.erase(0, start);
  };
  http::Request req{.url = Url(path),
                    .unix_socket = socket_,
                    .timeout = follow ? std::chrono::milliseconds(0) : call_timeout_,
                    .on_body =
                        [&](absl::string_view chunk) {
                          buffer.append(chunk.data(), chunk.size());
                          while (keep_going && buffer.size() >= 8) {
                            const auto* h = reinterpret_cast<const unsigned char*>(buffer.data());
                            size_t len = (size_t{h[4]} << 24) | (size_t{h[5]} << 16) |
                                         (size_t{h[6]} << 8) | size_t{h[7]};
                            if (buffer.size() < 8 + len) break;
                            deliver(h[0], absl::string_view(buffer).substr(8, len));
                            buffer.erase(0, 8 + len);
                          }
                          return keep_going;
                        },
                    .cancel = cancel};
  auto r = http::Send(req);
  for (int s : {1, 2}) {
    if (keep_going && !partial[s].empty()) keep_going = on_line(line(s == 2, partial[s]));
  }
  if (!r.ok()) return absl::IsCancelled(r.status()) ? absl::OkStatus() : Unreachable(r.status());
  if (r->status != 200) return HttpError(absl::StrCat("logs of container ", id), *r);
  return absl::OkStatus();
}

}  // namespace c2d::engine
