#include "libs/cloud/openstack/provider.h"

#include <algorithm>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "libs/common/log.h"
#include "libs/common/status.h"
#include "libs/http/client.h"

namespace c2d::cloud::openstack {
namespace {

using json = nlohmann::json;

// Labels of c2d's own on every server: found by name (c2d.server), the
// app's port and the role (read back by ToInstance, not shown to callers).
constexpr char kServerLabel[] = "c2d.server";
constexpr char kPortLabel[] = "c2d.port";
constexpr char kRoleLabel[] = "c2d.role";
// Who the deployer and dbprov say an instance belongs to.
constexpr char kServiceLabel[] = "c2d.service";
constexpr char kDatabaseLabel[] = "c2d.database";

const char* RoleName(int role) {
  static const char* const kNames[] = {"web", "worker", "database"};
  return kNames[role];
}

// A server listed while Nova deletes it: gone, for c2d.
bool Going(const Server& s) { return s.status == "DELETED" || s.task_state == "deleting"; }

}  // namespace

OpenStackProvider::OpenStackProvider(Session& session, Ledger& ledger, ProviderOptions options)
    : session_(session),
      ledger_(ledger),
      options_(std::move(options)),
      nova_(session),
      neutron_(session),
      cinder_(session),
      // Links are scoped to one container: large files' segments live in it too.
      files_(session, {.container = options_.files_container,
                       .segment_container = options_.files_container}) {}

std::string OpenStackProvider::NetworkOwner(const std::string& network) {
  return "network:" + network;
}

std::string OpenStackProvider::VolumeOwner(const std::string& volume) { return "volume:" + volume; }

absl::Time OpenStackProvider::Deadline(std::chrono::seconds timeout) const {
  return absl::Now() + absl::FromChrono(timeout);
}

absl::StatusOr<std::string> OpenStackProvider::Made(
    const std::string& kind, const std::string& name, const std::string& owner,
    const std::function<absl::StatusOr<std::string>()>& make) {
  C2D_ASSIGN_OR_RETURN(std::string known, ledger_.Record(kind, name, owner));
  if (!known.empty()) return known;
  C2D_ASSIGN_OR_RETURN(std::string id, make());
  C2D_RETURN_IF_ERROR(ledger_.Bind(kind, name, id));
  return id;
}

// ---- instances ----

absl::StatusOr<Instance> OpenStackProvider::Create(const InstanceSpec& spec) {
  absl::StatusOr<Instance> made = CreateSteps(spec);
  if (made.ok()) return made;
  // Whatever the step, nothing of this instance stays behind.
  if (absl::Status undone = Undo(spec.name); !undone.ok()) {
    log::Warn("openstack: cleaning up a failed instance failed; the sweep retries",
              {{"instance", spec.name}, {"error", undone.ToString()}});
  }
  return made.status();
}

absl::StatusOr<Instance> OpenStackProvider::CreateSteps(const InstanceSpec& spec) {
  if (spec.name.empty() || spec.network.empty()) {
    return absl::InvalidArgumentError("an openstack instance needs a name and a network");
  }
  const Role role = spec.database || spec.labels.count(kDatabaseLabel) ? Role::kDatabase
                    : spec.port > 0                                    ? Role::kWeb
                                                                       : Role::kWorker;
  C2D_ASSIGN_OR_RETURN(NetworkIds net, Network(spec.network));
  if (role == Role::kDatabase) C2D_RETURN_IF_ERROR(DatabasePort(spec.network, net, spec.port));
  C2D_ASSIGN_OR_RETURN(std::vector<BootVolume> volumes, Volumes(spec));
  const std::string group = role == Role::kDatabase ? net.db_group : net.app_group;
  C2D_ASSIGN_OR_RETURN(
      std::string port_id, Made(kPort, spec.name, spec.name, [&]() -> absl::StatusOr<std::string> {
        C2D_ASSIGN_OR_RETURN(Port p, neutron_.EnsurePort(spec.name, net.network, {group}));
        return p.id;
      }));
  C2D_ASSIGN_OR_RETURN(std::string server_id, BootServer(spec, role, port_id, volumes));
  // ACTIVE with its volumes attached (block device mapping), or ERROR.
  C2D_RETURN_IF_ERROR(WithContext(
      nova_.WaitFor(server_id, "ACTIVE", Deadline(options_.boot_timeout), options_.poll).status(),
      "server " + spec.name + ": "));
  if (role == Role::kWeb) C2D_RETURN_IF_ERROR(FloatingIp(spec.name, port_id));
  return Inspect(server_id);
}

absl::StatusOr<std::string> OpenStackProvider::ServerGroup(const InstanceSpec& spec) {
  auto service = spec.labels.find(kServiceLabel);
  if (service == spec.labels.end()) return std::string();
  const std::string name = absl::StrCat(spec.network, "-", service->second);
  return Made(kServerGroup, name, NetworkOwner(spec.network), [&]() -> absl::StatusOr<std::string> {
    // Made before an answer was lost?
    C2D_ASSIGN_OR_RETURN(auto found, nova_.FindServerGroup(name));
    if (found) return *found;
    return nova_.CreateServerGroup(name, options_.server_group_policy);
  });
}

absl::StatusOr<BootPlan> OpenStackProvider::Plan(const InstanceSpec& spec, Role role,
                                                 const std::vector<BootVolume>& volumes) {
  BootPlan plan{.container = spec.name,
                .image = spec.image,
                .command = spec.command,
                .env = spec.env,
                .port = spec.port,
                .behind_caddy = role == Role::kWeb,
                .memory_bytes = spec.memory_bytes,
                .cpu_millis = spec.cpu_millis,
                .volumes = volumes,
                .hosts = spec.hosts};
  // Web instances' Caddies take their certificates from c2d.
  if (!options_.admin_client.certificate_pem.empty() && role == Role::kWeb) {
    plan.admin_client_certificate = options_.admin_client.certificate_pem;
    plan.admin_port = options_.admin_port;
    C2D_ASSIGN_OR_RETURN(crypto::CertificateAuthority ca,
                         InstanceAdminCa(options_.admin_client.key_pem, spec.name));
    plan.admin_ca_certificate = ca.cert_pem;
    C2D_ASSIGN_OR_RETURN(plan.admin_ca_key, ca.key.ToPem());
  }
  if (options_.pull_credential) {
    C2D_ASSIGN_OR_RETURN(plan.pull, options_.pull_credential(spec.image));
  }
  if (!volumes.empty()) {
    // A cloud without Swift: no files into volumes (WriteVolumeFile says so).
    absl::StatusOr<std::string> files = files_.ContainerUrl();
    if (files.ok()) {
      plan.files_url = *files;
    } else if (!absl::IsFailedPrecondition(files.status())) {
      return files.status();
    }
  }
  return plan;
}

absl::StatusOr<std::string> OpenStackProvider::BootServer(const InstanceSpec& spec, Role role,
                                                          const std::string& port_id,
                                                          const std::vector<BootVolume>& volumes) {
  C2D_ASSIGN_OR_RETURN(std::string group, ServerGroup(spec));
  C2D_ASSIGN_OR_RETURN(BootPlan plan, Plan(spec, role, volumes));
  C2D_ASSIGN_OR_RETURN(std::string user_data, RenderUserData(plan));
  std::string flavor, image;
  {
    absl::MutexLock lock(&mu_);
    flavor = flavor_id_;
    image = image_id_;
  }
  if (flavor.empty()) {
    C2D_ASSIGN_OR_RETURN(flavor, nova_.FlavorId(options_.flavor));
  }
  if (image.empty()) {
    C2D_ASSIGN_OR_RETURN(image, ImageId());
  }
  {
    absl::MutexLock lock(&mu_);
    flavor_id_ = flavor;
    image_id_ = image;
  }
  ServerSpec server{.name = spec.name,
                    .flavor_id = flavor,
                    .image_id = image,
                    .user_data = std::move(user_data),
                    .port_ids = {port_id},
                    .labels = spec.labels,
                    .key_name = options_.key_name,
                    .server_group_id = group};
  C2D_ASSIGN_OR_RETURN(server.metadata, VolumeFiles(volumes));
  for (const BootVolume& v : volumes) server.volume_ids.push_back(v.volume_id);
  server.labels[kServerLabel] = spec.name;
  server.labels[kPortLabel] = absl::StrCat(spec.port);
  server.labels[kRoleLabel] = RoleName(static_cast<int>(role));
  return Made(kServer, spec.name, spec.name, [&]() -> absl::StatusOr<std::string> {
    // Made before a crash that lost its id?
    C2D_ASSIGN_OR_RETURN(auto found, nova_.ListServers({{kServerLabel, spec.name}}));
    if (!found.empty()) return found.front().id;
    return nova_.CreateServer(server);
  });
}

absl::StatusOr<std::string> OpenStackProvider::ImageId() {
  C2D_ASSIGN_OR_RETURN(Reply r, session_.Call("image", {.path = "/v2/images?name=" +
                                                                http::UrlEncode(options_.image)}));
  const json images = r.body.value("images", json::array());
  if (!images.empty()) return images[0].value("id", "");
  // Not a name: an id?
  auto by_id = session_.Call("image", {.path = "/v2/images/" + http::UrlEncode(options_.image)});
  if (by_id.ok()) return options_.image;
  return absl::NotFoundError(absl::StrCat("no image named ", options_.image));
}

absl::Status OpenStackProvider::FloatingIp(const std::string& name, const std::string& port_id) {
  std::string external;
  {
    absl::MutexLock lock(&mu_);
    external = external_id_;
  }
  if (external.empty()) return absl::OkStatus();
  return Made(kFloatingIp, name, name,
              [&]() -> absl::StatusOr<std::string> {
                C2D_ASSIGN_OR_RETURN(auto found, neutron_.FindFloatingIp(name));
                if (found) return *found;
                C2D_ASSIGN_OR_RETURN(auto made, neutron_.CreateFloatingIp(external, port_id, name));
                return made.first;
              })
      .status();
}

absl::StatusOr<std::map<std::string, std::string>> OpenStackProvider::FloatingAddresses() {
  std::map<std::string, std::string> out;  // server id -> floating IP
  if (options_.external_network.empty()) return out;
  C2D_ASSIGN_OR_RETURN(Reply fips,
                       session_.Call("network", {.path = "/v2.0/floatingips?fields=port_id"
                                                         "&fields=floating_ip_address"}));
  std::map<std::string, std::string> by_port;
  for (const json& f : fips.body.value("floatingips", json::array())) {
    if (f.value("port_id", json()).is_string()) {
      by_port[f["port_id"]] = f.value("floating_ip_address", "");
    }
  }
  if (by_port.empty()) return out;
  C2D_ASSIGN_OR_RETURN(Reply ports, session_.Call("network", {.path = "/v2.0/ports?fields=id"
                                                                      "&fields=device_id"}));
  for (const json& p : ports.body.value("ports", json::array())) {
    auto it = by_port.find(p.value("id", ""));
    if (it != by_port.end()) out[p.value("device_id", "")] = it->second;
  }
  return out;
}

Instance OpenStackProvider::ToInstance(const Server& s,
                                       const std::map<std::string, std::string>& floating) const {
  Instance i{.ref = s.id, .name = s.name, .labels = s.labels, .started_at = s.launched_at};
  if (s.status == "ACTIVE") {
    i.state = InstanceState::kRunning;
  } else if (s.status == "BUILD" || s.status.empty()) {
    i.state = InstanceState::kCreated;
  } else {
    i.state = InstanceState::kExited;
    i.exit_code = s.status == "ERROR" ? 1 : 0;
  }
  const std::string role = i.labels[kRoleLabel];
  const std::string port = i.labels[kPortLabel];
  for (const char* own : {kServerLabel, kPortLabel, kRoleLabel}) i.labels.erase(own);
  std::erase_if(i.labels,
                [](const auto& label) { return absl::StartsWith(label.first, kFileMetaPrefix); });
  if (!s.fixed_ips.empty()) i.private_address = s.fixed_ips.front();
  if (i.state == InstanceState::kRunning) {
    if (role == "web") {
      // Neutron's word on floating IPs: Nova's copy lags behind.
      auto fip = floating.find(s.id);
      const std::string& ip = fip != floating.end()    ? fip->second
                              : s.floating_ips.empty() ? i.private_address
                                                       : s.floating_ips.front();
      if (!ip.empty()) i.address = ip + ":80";
    } else if (role == "database" && !i.private_address.empty()) {
      i.address = absl::StrCat(i.private_address, ":", port);
    }
  }
  return i;
}

absl::StatusOr<Instance> OpenStackProvider::Inspect(const std::string& ref) {
  C2D_ASSIGN_OR_RETURN(Server s, nova_.GetServer(ref));
  // As List: a server being deleted is gone already (it cannot be started
  // again, and its replacement is what the caller wants).
  if (Going(s)) return absl::NotFoundError(absl::StrCat("server ", ref, " is being deleted"));
  C2D_ASSIGN_OR_RETURN(auto floating, FloatingAddresses());
  return ToInstance(s, floating);
}

absl::StatusOr<std::vector<Instance>> OpenStackProvider::List(
    const std::map<std::string, std::string>& labels) {
  C2D_ASSIGN_OR_RETURN(std::vector<Server> servers, nova_.ListServers(labels));
  C2D_ASSIGN_OR_RETURN(auto floating, FloatingAddresses());
  std::vector<Instance> out;
  for (const Server& s : servers) {
    // Only c2d's servers, not ones being deleted.
    if (!s.labels.count(kServerLabel) || Going(s)) continue;
    out.push_back(ToInstance(s, floating));
  }
  return out;
}

absl::Status OpenStackProvider::Start(const std::string& ref) {
  C2D_RETURN_IF_ERROR(nova_.StartServer(ref));
  return nova_.WaitFor(ref, "ACTIVE", Deadline(options_.boot_timeout), options_.poll).status();
}

absl::Status OpenStackProvider::Stop(const std::string& ref, std::chrono::seconds grace) {
  C2D_RETURN_IF_ERROR(nova_.StopServer(ref));
  // Nova shuts the guest down (the container gets its SIGTERM from Docker)
  // and powers it off after its own timeout.
  return nova_.WaitFor(ref, "SHUTOFF", Deadline(grace + options_.delete_timeout), options_.poll)
      .status();
}

absl::Status OpenStackProvider::Remove(const std::string& ref) {
  auto server = nova_.GetServer(ref);
  if (!server.ok() && !absl::IsNotFound(server.status())) return server.status();
  std::string owner = server.ok() ? server->name : "";
  if (owner.empty()) {
    C2D_ASSIGN_OR_RETURN(std::vector<Resource> all, ledger_.All());
    for (const Resource& r : all) {
      if (r.kind == kServer && r.cloud_id == ref) owner = r.owner;
    }
  }
  if (!owner.empty()) C2D_RETURN_IF_ERROR(Undo(owner));
  return server.ok() ? absl::OkStatus() : absl::NotFoundError(absl::StrCat("no server ", ref));
}

// ---- clean-up ----

absl::StatusOr<std::string> OpenStackProvider::FindId(const Resource& r) {
  if (!r.cloud_id.empty()) return r.cloud_id;
  std::optional<std::string> found;
  if (r.kind == kServer) {
    C2D_ASSIGN_OR_RETURN(auto servers, nova_.ListServers({{kServerLabel, r.name}}));
    if (!servers.empty()) found = servers.front().id;
  } else if (r.kind == kServerGroup) {
    C2D_ASSIGN_OR_RETURN(found, nova_.FindServerGroup(r.name));
  } else if (r.kind == kVolume) {
    C2D_ASSIGN_OR_RETURN(auto v, cinder_.FindVolume(r.name));
    if (v) found = v->id;
  } else if (r.kind == kFloatingIp) {
    C2D_ASSIGN_OR_RETURN(found, neutron_.FindFloatingIp(r.name));
  } else if (r.kind == kObject) {
    found = r.name;
  } else if (r.kind == kRule) {
    // Rules have no name; one whose id was lost goes with its group.
  } else if (r.kind != kRouterInterface) {
    C2D_ASSIGN_OR_RETURN(found, neutron_.FindByName(r.kind, r.name));
  }
  return found.value_or("");
}

absl::Status OpenStackProvider::Delete(const Resource& r) {
  C2D_ASSIGN_OR_RETURN(std::string id, FindId(r));
  if (r.kind == kRouterInterface) return RemoveInterface(r.name, id);
  if (id.empty()) return absl::OkStatus();  // never made
  if (r.kind == kServer) {
    C2D_RETURN_IF_ERROR(nova_.DeleteServer(id));
    // Its port and volumes are free only once it is gone.
    return nova_.WaitGone(id, Deadline(options_.delete_timeout), options_.poll);
  }
  if (r.kind == kServerGroup) return nova_.DeleteServerGroup(id);
  if (r.kind == kVolume) return DeleteVolumeId(id);
  if (r.kind == kObject) return files_.Delete(id);
  return neutron_.Delete(r.kind, id);
}

absl::Status OpenStackProvider::RemoveInterface(const std::string& network, std::string id) {
  if (id.empty()) {
    // Its answer was lost: the router and subnet are both named after the network.
    C2D_ASSIGN_OR_RETURN(auto router, neutron_.FindByName("routers", network));
    C2D_ASSIGN_OR_RETURN(auto subnet, neutron_.FindByName("subnets", network));
    if (!router || !subnet) return absl::OkStatus();
    id = absl::StrCat(*router, "/", *subnet);
  }
  std::vector<std::string> parts = absl::StrSplit(id, '/');  // "router/subnet"
  if (parts.size() != 2) return absl::InternalError("bad router interface id " + id);
  return neutron_.RemoveRouterInterface(parts[0], parts[1]);
}

absl::Status OpenStackProvider::Undo(const std::string& owner) {
  C2D_ASSIGN_OR_RETURN(std::vector<Resource> owned, ledger_.Owned(owner));
  std::reverse(owned.begin(), owned.end());
  for (const Resource& r : owned) {
    C2D_RETURN_IF_ERROR(
        WithContext(Delete(r), absl::StrCat("deleting ", r.kind, " ", r.name, ": ")));
    C2D_RETURN_IF_ERROR(ledger_.Forget(r.kind, r.name));
  }
  return absl::OkStatus();
}

absl::StatusOr<int> OpenStackProvider::Sweep(absl::Duration older_than) {
  C2D_ASSIGN_OR_RETURN(std::vector<Resource> all, ledger_.All());
  const absl::Time cutoff = absl::Now() - older_than;
  std::map<std::string, bool> stale;  // instance owner -> has no live server
  for (const Resource& r : all) {
    if (absl::StrContains(r.owner, ':') || r.recorded_at > cutoff) continue;
    if (stale.count(r.owner)) continue;
    C2D_ASSIGN_OR_RETURN(auto servers, nova_.ListServers({{kServerLabel, r.owner}}));
    bool live = false;
    for (const Server& s : servers) {
      live = live || (s.status != "ERROR" && !Going(s));
    }
    stale[r.owner] = !live;
  }
  int deleted = 0;
  for (const auto& [owner, gone] : stale) {
    if (!gone) continue;
    C2D_ASSIGN_OR_RETURN(std::vector<Resource> owned, ledger_.Owned(owner));
    C2D_RETURN_IF_ERROR(Undo(owner));
    deleted += static_cast<int>(owned.size());
  }
  return deleted;
}

// ---- certificates ----

absl::Status OpenStackProvider::ServeCertificates(const std::string& ref,
                                                  const std::vector<ServedCertificate>& certs) {
  if (options_.admin_client.certificate_pem.empty()) {
    return absl::FailedPreconditionError(
        "openstack: no identity for instances' remote admin (C2D_OS_ADMIN_CLIENT_CERT and "
        "C2D_OS_ADMIN_CLIENT_KEY) to load certificates with");
  }
  C2D_ASSIGN_OR_RETURN(Instance i, Inspect(ref));
  const size_t colon = i.address.rfind(':');
  if (i.state != InstanceState::kRunning || colon == std::string::npos) {
    return absl::UnavailableError(absl::StrCat("openstack: server ", ref, " is not serving yet"));
  }
  C2D_ASSIGN_OR_RETURN(crypto::CertificateAuthority ca,
                       InstanceAdminCa(options_.admin_client.key_pem, i.name));
  return LoadCertificates(
      {.instance = i.name,
       .address = absl::StrCat(i.address.substr(0, colon), ":", options_.admin_port),
       .ca_pem = ca.cert_pem,
       .client = options_.admin_client},
      certs);
}

// ---- logs ----

absl::Status OpenStackProvider::FollowLogs(const std::string& ref, std::optional<absl::Time> since,
                                           const std::function<bool(const LogLine&)>& on_line,
                                           const std::atomic<bool>* cancel) {
  std::optional<absl::Time> last = since;
  while (cancel == nullptr || !cancel->load()) {
    C2D_ASSIGN_OR_RETURN(std::string console, nova_.ConsoleOutput(ref, 1000));
    for (absl::string_view line : absl::StrSplit(console, '\n')) {
      line = absl::StripTrailingAsciiWhitespace(line);
      if (!absl::ConsumePrefix(&line, kLogPrefix)) continue;
      // docker logs --timestamps: "<RFC 3339 time> <text>"
      std::pair<absl::string_view, absl::string_view> parts =
          absl::StrSplit(line, absl::MaxSplits(' ', 1));
      absl::Time t;
      std::string err;
      if (!absl::ParseTime(absl::RFC3339_full, parts.first, &t, &err)) continue;
      if (last && t <= *last) continue;
      last = t;
      if (!on_line({.text = std::string(parts.second), .time = t})) return absl::OkStatus();
    }
    C2D_ASSIGN_OR_RETURN(Server s, nova_.GetServer(ref));
    if (s.status != "ACTIVE") return absl::OkStatus();
    std::this_thread::sleep_for(std::chrono::seconds(2));
  }
  return absl::OkStatus();
}

}  // namespace c2d::cloud::openstack
