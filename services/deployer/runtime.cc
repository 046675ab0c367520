#include "services/deployer/runtime.h"

#include <algorithm>
#include <deque>
#include <regex>
#include <set>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/notification.h"
#include "libs/common/log.h"
#include "libs/common/status.h"
#include "libs/rpc/status.h"

namespace c2d::deployer {
namespace {

// The DNS owner of a service's records.
std::string Owner(const std::string& service_id) { return absl::StrCat("service:", service_id); }

// Seconds; a name follows its healthy instances, so resolvers must not keep
// an old answer long.
constexpr int kDnsTtl = 10;

constexpr pg::Statement kIngressLock{
    "deployer_ingress_lock", "SELECT pg_advisory_xact_lock(hashtext('c2d.ingress.' || $1))"};
// The service's and its project's names now (a rename moves the routes at
// once); none when the service is gone.
constexpr pg::Statement kCurrentNames{"deployer_current_names", R"sql(
SELECT s.name, p.name FROM services s JOIN projects p ON p.id = s.project_id
WHERE s.id = $1)sql"};
constexpr pg::Statement kRouted{"deployer_routed",
                                "SELECT hostname FROM service_routes WHERE service_id = $1"};
constexpr pg::Statement kSetRouted{"deployer_set_routed", R"sql(
INSERT INTO service_routes (service_id, hostname) VALUES ($1, $2)
ON CONFLICT (service_id) DO UPDATE SET hostname = EXCLUDED.hostname, updated_at = now())sql"};
constexpr pg::Statement kUnrouted{"deployer_unrouted",
                                  "DELETE FROM service_routes WHERE service_id = $1"};
// Custom domains (the certs service verifies them) and the routes written
// for them. A hostname another service still routes (a domain moved) waits
// until that service's route is gone.
constexpr pg::Statement kVerifiedCustom{"deployer_verified_custom", R"sql(
SELECT hostname FROM domains
WHERE service_id = $1 AND kind = 'custom' AND verification_state = 'verified'
ORDER BY hostname)sql"};
constexpr pg::Statement kCustomRouted{"deployer_custom_routed",
                                      "SELECT hostname FROM custom_routes WHERE service_id = $1"};
constexpr pg::Statement kClaimCustomRoute{"deployer_claim_custom_route", R"sql(
INSERT INTO custom_routes (hostname, service_id) VALUES ($1, $2)
ON CONFLICT (hostname) DO UPDATE SET service_id = EXCLUDED.service_id
WHERE custom_routes.service_id = EXCLUDED.service_id RETURNING hostname)sql"};
constexpr pg::Statement kDropCustomRoute{
    "deployer_drop_custom_route",
    "DELETE FROM custom_routes WHERE hostname = $1 AND service_id = $2"};

std::string ContainerName(const std::string& instance_id) {
  return absl::StrCat("c2d-", absl::AsciiStrToLower(instance_id));
}

// Volume directory names: lower case, no underscore ("vol-01jd…").
std::string VolumeName(const std::string& volume_id) { return cloud::ResourceName(volume_id); }

std::string Short(const std::string& ref) { return ref.substr(0, 12); }

// Variable `var` of the link to database `name`: one of its variables
// (DATABASE_URL), or the part after the prefix (URL), or another prefix's
// name for it (REDIS_URL of a link with prefix CACHE).
absl::StatusOr<std::string> LinkVariable(const v1::ResolveLinksResponse& links,
                                         const std::string& name, const std::string& var) {
  for (const v1::ResolvedLink& l : links.links()) {
    if (l.database_name() != name) continue;
    auto found = l.env().find(var);
    if (found == l.env().end()) {
      const size_t us = var.rfind('_');
      found = l.env().find(
          absl::StrCat(l.env_prefix(), "_", us == std::string::npos ? var : var.substr(us + 1)));
    }
    if (found == l.env().end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "refers to ", var, " of database ", name,
          ", which has no such variable; use URL, HOST, PORT, USER, PASSWORD or NAME"));
    }
    return found->second;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "refers to database ", name, ", which is not linked to this service (c2d db link)"));
}

// The service's and its project's names now (a rename counts at once),
// else the release's.
std::pair<std::string, std::string> CurrentNames(pg::Tx& tx, const std::string& service_id,
                                                 const v1::ServiceSpec& spec) {
  if (pqxx::result n = tx.Exec(kCurrentNames, service_id); !n.empty()) {
    return {n[0][0].as<std::string>(), n[0][1].as<std::string>()};
  }
  return {spec.service_name(), spec.project_name()};
}

std::vector<std::string> VerifiedCustomDomains(pg::Tx& tx, const std::string& service_id) {
  std::vector<std::string> out;
  for (const pqxx::row& r : tx.Exec(kVerifiedCustom, service_id)) {
    out.push_back(r[0].as<std::string>());
  }
  return out;
}

}  // namespace

Runtime::Runtime(pg::Pool& pool, const Config& config, cloud::Provider& provider,
                 ingress::Upstreams& upstreams)
    : pool_(pool), config_(config), provider_(provider), upstreams_(upstreams) {}

absl::Status Runtime::Init() {
  auto id = pool_.Transact("installation id", [](pg::Tx& tx) { return InstallationId(tx); });
  if (!id.ok()) return id.status();
  installation_ = std::move(*id);
  return absl::OkStatus();
}

void Runtime::UseDatabases(const std::shared_ptr<grpc::Channel>& dbprov) {
  databases_ = v1::DatabaseService::NewStub(dbprov);
}

void Runtime::UseDns(const std::shared_ptr<grpc::Channel>& dns) {
  dns_ = std::make_unique<dns::Client>(dns);
}

absl::Status Runtime::GiveCertificates(const std::vector<std::string>& refs,
                                       const std::vector<std::string>& names) {
  if (!GivesCertificates()) return absl::OkStatus();
  absl::Status first;
  for (const std::string& ref : refs) first.Update(certs_->Push(ref, names));
  return first;
}

absl::Status Runtime::GiveCertificates(const v1::Deployment& d,
                                       const std::vector<std::string>& refs) {
  if (!GivesCertificates()) return absl::OkStatus();
  // As SyncIngress will route them.
  auto names =
      pool_.Transact("served names", [&](pg::Tx& tx) -> absl::StatusOr<std::vector<std::string>> {
        auto [service_name, project_name] = CurrentNames(tx, d.service_id(), d.spec());
        std::vector<std::string> out = {config_.Hostname(service_name, project_name)};
        for (std::string& custom : VerifiedCustomDomains(tx, d.service_id())) {
          out.push_back(std::move(custom));
        }
        return out;
      });
  if (!names.ok()) return names.status();
  return GiveCertificates(refs, *names);
}

void Runtime::RetainCertificates(const std::set<std::string>& refs) {
  if (certs_) certs_->Retain(refs, absl::Minutes(1));
}

std::map<std::string, std::vector<std::string>> Runtime::Names(
    const std::string& hostname, const std::string& internal_name,
    const std::vector<std::string>& privates, const std::vector<std::string>& addresses) const {
  std::map<std::string, std::vector<std::string>> names;
  if (!privates.empty()) names[internal_name] = privates;
  if (config_.dns_routing) {
    // One A record per healthy instance: round-robin across them, and an
    // unhealthy one is out with its record.
    std::vector<std::string>& ips = names[hostname];
    for (const std::string& a : addresses) ips.emplace_back(a.substr(0, a.rfind(':')));
    if (ips.empty() || !config_.HasPublicZone()) names.erase(hostname);
  } else if (!config_.public_ipv4.empty() && config_.HasPublicZone()) {
    names[hostname] = {config_.public_ipv4};
  }
  return names;
}

absl::Status Runtime::PublishNames(const std::string& service_id,
                                   const std::map<std::string, std::vector<std::string>>& names) {
  if (dns_ == nullptr) return absl::OkStatus();
  // What the service has now: A records of other names go (a rename, no
  // healthy instance left).
  v1::ListRecordsRequest list;
  list.set_owner(Owner(service_id));
  list.mutable_page()->set_page_size(200);
  C2D_ASSIGN_OR_RETURN(v1::ListRecordsResponse have, dns_->List(list));
  v1::DeleteRecordsRequest stale;
  stale.set_owner(Owner(service_id));
  for (const v1::Record& r : have.records()) {
    if (r.type() == v1::RECORD_TYPE_A && !names.count(r.name())) stale.add_ids(r.id());
  }
  if (!stale.ids().empty()) C2D_RETURN_IF_ERROR(dns_->Delete(stale).status());
  if (names.empty()) return absl::OkStatus();
  v1::UpsertRecordsRequest upsert;
  for (const auto& [name, values] : names) {
    v1::Record& r = *upsert.add_records();
    r.set_name(name);
    r.set_type(v1::RECORD_TYPE_A);
    r.set_ttl(kDnsTtl);
    r.set_owner(Owner(service_id));
    for (const std::string& v : values) r.add_values(v);
  }
  return dns_->Upsert(upsert).status();
}

absl::StatusOr<std::map<std::string, std::string>> ApplyLinks(
    std::map<std::string, std::string> env, const v1::ResolveLinksResponse& links) {
  static const std::regex kRef(R"(\$\{\{\s*db\.([a-z][a-z0-9-]{0,38})\.([A-Z][A-Z0-9_]*)\s*\}\})");
  for (auto& [key, value] : env) {
    std::string out;
    size_t done = 0;
    // Text between references must hold no "${{": that would be a reference
    // c2d cannot read, passed on to the app as is.
    auto literal = [&](size_t end) -> absl::Status {
      absl::string_view text = absl::string_view(value).substr(done, end - done);
      if (absl::StrContains(text, "${{")) {
        return absl::InvalidArgumentError(
            absl::StrCat("env var ", key,
                         " has a ${{ … }} that is not a database reference; write "
                         "${{ db.<database name>.DATABASE_URL }}"));
      }
      absl::StrAppend(&out, text);
      return absl::OkStatus();
    };
    for (auto m = std::sregex_iterator(value.begin(), value.end(), kRef);
         m != std::sregex_iterator(); ++m) {
      auto found = LinkVariable(links, (*m)[1], (*m)[2]);
      if (!found.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("env var ", key, " ", found.status().message()));
      }
      C2D_RETURN_IF_ERROR(literal(m->position()));
      out.append(*found);
      done = m->position() + m->length();
    }
    C2D_RETURN_IF_ERROR(literal(value.size()));
    value = std::move(out);
  }
  // Explicit env vars win over a link's (e.g. a DATABASE_URL through a pooler).
  for (const v1::ResolvedLink& l : links.links()) {
    for (const auto& [k, v] : l.env()) env.emplace(k, v);
  }
  return env;
}

absl::StatusOr<ReleaseEnv> Runtime::ResolveEnv(const v1::ServiceSpec& spec) const {
  std::map<std::string, std::string> env;
  for (const v1::EnvVar& var : spec.env()) {
    crypto::Sealed sealed{var.value().key_id(), var.value().wrapped_data_key(), var.value().nonce(),
                          var.value().ciphertext()};
    auto plain = config_.master_keys->Open(sealed, crypto::EnvVarAad(var.key()));
    if (!plain.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot decrypt env var ", var.key(), ": ", plain.status().message()));
    }
    env[var.key()] = std::move(*plain);
  }
  v1::ResolveLinksResponse links;
  if (!spec.database_links().empty()) {
    if (databases_ == nullptr) {
      return absl::FailedPreconditionError(
          "the release links databases, but this deployer has no database service "
          "(C2D_DBPROV_ADDR)");
    }
    v1::ResolveLinksRequest req;
    req.set_service_id(spec.service_id());
    *req.mutable_links() = spec.database_links();
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    absl::Status s = rpc::FromGrpc(databases_->ResolveLinks(&ctx, req, &links));
    if (absl::IsFailedPrecondition(s) || absl::IsNotFound(s) || absl::IsInvalidArgument(s)) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot resolve the database links: ", s.message()));
    }
    if (!s.ok()) return absl::UnavailableError(absl::StrCat("database service: ", s.message()));
  }
  ReleaseEnv out;
  auto applied = ApplyLinks(std::move(env), links);
  if (!applied.ok()) return applied.status();
  out.env = std::move(*applied);
  for (const v1::ResolvedLink& l : links.links()) {
    if (!l.host().empty() && !l.address().empty()) out.hosts[l.host()] = l.address();
  }
  return out;
}

absl::Status Runtime::EnsureRunning(const InstanceRow& row, const v1::Deployment& d,
                                    const ReleaseEnv& env) {
  const std::string& id = row.instance.id();
  std::optional<cloud::Instance> current;
  if (!row.instance.provider_ref().empty()) {
    auto i = provider_.Inspect(row.instance.provider_ref());
    if (i.ok()) {
      current = std::move(*i);
    } else if (!absl::IsNotFound(i.status())) {
      return i.status();
    }
  }
  if (!current) {
    // Created by an earlier attempt that crashed before recording it?
    auto found = provider_.List({{kInstanceLabel, id}});
    if (!found.ok()) return found.status();
    if (!found->empty()) current = found->front();
  }
  bool created = false;
  if (!current) {
    const v1::ServiceSpec& spec = d.spec();
    cloud::InstanceSpec s;
    s.name = ContainerName(id);
    s.image = absl::StrCat(d.image_repository(), "@", d.image_digest());
    if (!spec.run().start_command().empty()) {
      s.command = {"/bin/sh", "-c", spec.run().start_command()};
    }
    s.env = env.env;
    s.hosts = env.hosts;
    s.port = spec.type() == v1::SERVICE_TYPE_WORKER ? 0 : spec.run().port();
    s.memory_bytes = int64_t{spec.run().memory_mb() > 0 ? spec.run().memory_mb() : 512} << 20;
    s.cpu_millis = spec.run().cpu_millis() > 0 ? spec.run().cpu_millis() : 500;
    for (const v1::VolumeMount& v : spec.volumes()) {
      s.volumes.push_back({VolumeName(v.volume_id()), v.mount_path()});
    }
    s.labels = {{kInstallationLabel, installation_},
                {"c2d.project", d.project_id()},
                {"c2d.service", d.service_id()},
                {"c2d.deployment", d.id()},
                {kInstanceLabel, id}};
    // A project's instances share a network of their own, and no other.
    s.network = cloud::ProjectNetwork(d.project_id());
    C2D_RETURN_IF_ERROR(provider_.EnsureNetwork(s.network));
    auto made = provider_.Create(s);
    if (!made.ok()) return made.status();
    current = std::move(*made);
    created = true;
    C2D_RETURN_IF_ERROR(pool_.Transact("record instance", [&](pg::Tx& tx) -> absl::Status {
      C2D_RETURN_IF_ERROR(SetInstanceRef(tx, id, current->ref, "", 0, current->private_address));
      for (const v1::VolumeMount& v : spec.volumes()) {
        C2D_RETURN_IF_ERROR(AttachVolume(tx, v.volume_id(), VolumeName(v.volume_id()), id));
      }
      return absl::OkStatus();
    }));
  }
  if (current->state == cloud::InstanceState::kStopping) {
    return absl::UnavailableError(absl::StrCat(
        "container ", Short(current->ref), " is being stopped or removed outside c2d"));
  }
  if (current->state != cloud::InstanceState::kRunning) {
    absl::Status started = provider_.Start(current->ref);
    absl::StatusOr<cloud::Instance> after =
        started.ok() ? provider_.Inspect(current->ref) : absl::StatusOr<cloud::Instance>(started);
    if (absl::IsNotFound(after.status()) && !created) {
      // Removed since it was inspected, behind c2d's back (the engine lists
      // a container it is removing as exited, and may even start it): lost,
      // and the next call makes a new one.
      C2D_RETURN_IF_ERROR(pool_.Transact("instance lost", [&](pg::Tx& tx) {
        return AddEvent(tx, d.id(), d.service_id(), id, "instance.lost",
                        "its container is gone (removed outside c2d); replacing it");
      }));
      return EnsureRunning(row, d, env);
    }
    if (!after.ok()) return after.status();
    current = std::move(*after);
  }
  std::string host, port = "0";
  if (size_t colon = current->address.rfind(':'); colon != std::string::npos) {
    host = current->address.substr(0, colon);
    port = current->address.substr(colon + 1);
  }
  if (current->ref == row.instance.provider_ref() && host == row.instance.host() &&
      port == std::to_string(row.instance.port()) &&
      current->private_address == row.private_address && !created) {
    return absl::OkStatus();
  }
  return pool_.Transact("record instance address", [&](pg::Tx& tx) -> absl::Status {
    C2D_RETURN_IF_ERROR(
        SetInstanceRef(tx, id, current->ref, host, std::stoi(port), current->private_address));
    if (!created) return absl::OkStatus();
    return AddEvent(
        tx, d.id(), d.service_id(), id, "instance.created",
        absl::StrCat("container ", Short(current->ref),
                     host.empty() ? std::string() : absl::StrCat(" on ", host, ":", port)));
  });
}

absl::Status Runtime::StopInstance(const InstanceRow& row, const std::string& reason) {
  const std::string& id = row.instance.id();
  std::vector<std::string> refs;
  if (!row.instance.provider_ref().empty()) refs.push_back(row.instance.provider_ref());
  if (auto found = provider_.List({{kInstanceLabel, id}}); found.ok()) {
    for (const auto& i : *found) {
      // Checked here too: a filter the engine did not apply must never stop
      // another instance's container.
      auto label = i.labels.find(kInstanceLabel);
      if (label == i.labels.end() || label->second != id) continue;
      if (std::find(refs.begin(), refs.end(), i.ref) == refs.end()) refs.push_back(i.ref);
    }
  }
  std::string project;
  for (const std::string& ref : refs) {
    if (auto i = provider_.Inspect(ref); i.ok() && project.empty()) {
      project = i->labels["c2d.project"];
    }
    absl::Status s = provider_.Stop(ref, config_.stop_grace);
    if (!s.ok() && !absl::IsNotFound(s)) return s;
    s = provider_.Remove(ref);
    if (!s.ok() && !absl::IsNotFound(s)) return s;
  }
  C2D_RETURN_IF_ERROR(pool_.Transact("record stopped instance", [&](pg::Tx& tx) -> absl::Status {
    C2D_RETURN_IF_ERROR(SetInstanceState(tx, id, v1::INSTANCE_STATE_STOPPED));
    C2D_RETURN_IF_ERROR(DetachVolumes(tx, id));
    C2D_RETURN_IF_ERROR(AddEvent(tx, row.instance.deployment_id(), row.instance.service_id(), id,
                                 "instance.stopped", reason));
    return AppendRuntimeLogs(tx, row.instance.service_id(), id,
                             {{"system", absl::StrCat("instance stopped: ", reason)}});
  }));
  if (!project.empty()) ReleaseNetwork(project);
  return absl::OkStatus();
}

void Runtime::ReleaseNetwork(const std::string& project_id) {
  // A deploy that makes an instance meanwhile fails to create it and is
  // retried; its EnsureNetwork then makes the network again.
  auto left = provider_.List({{"c2d.project", project_id}});
  if (!left.ok() || !left->empty()) return;
  if (absl::Status s = provider_.RemoveNetwork(cloud::ProjectNetwork(project_id)); !s.ok()) {
    log::Warn("cannot remove a project's network",
              {{"project_id", project_id}, {"error", s.ToString()}});
  }
}

absl::Status Runtime::DeleteVolume(const v1::Volume& volume) {
  C2D_RETURN_IF_ERROR(provider_.DeleteVolume(VolumeName(volume.id())));
  return pool_.Transact("volume deleted",
                        [&](pg::Tx& tx) { return MarkVolumeDeleted(tx, volume.id()); });
}

absl::Status Runtime::SyncIngress(const std::string& service_id) {
  return pool_.Transact("sync ingress", [&](pg::Tx& tx) { return SyncIngress(tx, service_id); });
}

absl::Status Runtime::SyncIngress(pg::Tx& tx, const std::string& service_id) {
  {
    tx.Exec(kIngressLock, service_id);
    v1::ServiceSpec spec;
    std::vector<std::string> addresses, privates;
    auto live = LiveDeployment(tx, service_id);
    if (live.ok()) {
      spec = live->spec();
      auto rows = InstancesOfDeployment(tx, live->id());
      if (!rows.ok()) return rows.status();
      for (const InstanceRow& r : *rows) {
        if (r.instance.state() == v1::INSTANCE_STATE_HEALTHY && r.instance.port() > 0) {
          addresses.push_back(absl::StrCat(r.instance.host(), ":", r.instance.port()));
          if (!r.private_address.empty()) privates.push_back(r.private_address);
        }
      }
      std::sort(addresses.begin(), addresses.end());
      std::sort(privates.begin(), privates.end());
    } else if (absl::IsNotFound(live.status())) {
      auto latest = ListDeployments(tx, service_id, 1, "");
      if (!latest.ok()) return latest.status();
      if (latest->deployments().empty()) return absl::OkStatus();
      spec = latest->deployments(0).spec();
    } else {
      return live.status();
    }
    if (spec.type() == v1::SERVICE_TYPE_WORKER) return absl::OkStatus();
    const auto [service_name, project_name] = CurrentNames(tx, service_id, spec);
    const std::string hostname = config_.Hostname(service_name, project_name);
    // A rename: the old hostname routes nowhere any more.
    if (pqxx::result r = tx.Exec(kRouted, service_id); !r.empty()) {
      const std::string before = r[0][0].as<std::string>();
      if (before != hostname) {
        if (!config_.dns_routing) C2D_RETURN_IF_ERROR(upstreams_.Remove(Owner(service_id), before));
        log::Info("ingress: renamed", {{"from", before}, {"to", hostname}});
        absl::MutexLock lock(&mu_);
        written_.erase(before);
      }
    }
    std::vector<std::string> customs;
    if (live.ok()) {
      tx.Exec(kSetRouted, service_id, hostname);
      customs = VerifiedCustomDomains(tx, service_id);
    } else {
      tx.Exec(kUnrouted, service_id);
    }
    // What the table and the DNS names hold for the hostname after this call.
    const std::string entry =
        live.ok() ? absl::StrCat(absl::StrJoin(addresses, ","), "|", absl::StrJoin(privates, ","),
                                 "|", absl::StrJoin(customs, ","))
                  : "(removed)";
    {
      absl::MutexLock lock(&mu_);
      auto it = written_.find(hostname);
      if (it != written_.end() && it->second == entry) return absl::OkStatus();
    }
    bool converged = true;
    if (!config_.dns_routing) {
      absl::Status s = live.ok() ? upstreams_.Set(Owner(service_id), hostname, addresses)
                                 : upstreams_.Remove(Owner(service_id), hostname);
      if (!s.ok()) return s;
      C2D_ASSIGN_OR_RETURN(converged, RouteCustomDomains(tx, service_id, customs, addresses));
    }
    std::map<std::string, std::vector<std::string>> names;
    if (live.ok()) {
      names =
          Names(hostname, config_.InternalName(service_name, project_name), privates, addresses);
    }
    C2D_RETURN_IF_ERROR(PublishNames(service_id, names));
    log::Info("ingress updated",
              {{"hostname", hostname}, {"upstreams", addresses}, {"custom_domains", customs}});
    absl::MutexLock lock(&mu_);
    if (converged) written_[hostname] = entry;
    return absl::OkStatus();
  }
}

absl::StatusOr<bool> Runtime::RouteCustomDomains(pg::Tx& tx, const std::string& service_id,
                                                 const std::vector<std::string>& customs,
                                                 const std::vector<std::string>& addresses) {
  const std::set<std::string> want(customs.begin(), customs.end());
  for (const pqxx::row& r : tx.Exec(kCustomRouted, service_id)) {
    const std::string h = r[0].as<std::string>();
    if (want.count(h)) continue;
    C2D_RETURN_IF_ERROR(upstreams_.Remove(Owner(service_id), h));
    tx.Exec(kDropCustomRoute, h, service_id);
    log::Info("ingress: custom domain unrouted", {{"service_id", service_id}, {"hostname", h}});
  }
  bool converged = true;
  for (const std::string& h : want) {
    if (tx.Exec(kClaimCustomRoute, h, service_id).empty()) {
      log::Info("ingress: custom domain still routed to another service",
                {{"service_id", service_id}, {"hostname", h}});
      converged = false;
      continue;
    }
    C2D_RETURN_IF_ERROR(upstreams_.Set(Owner(service_id), h, addresses));
  }
  return converged;
}

void Runtime::ForgetIngress() {
  absl::MutexLock lock(&mu_);
  written_.clear();
}

void Runtime::SystemLog(const std::string& service_id, const std::string& instance_id,
                        const std::string& text) {
  absl::Status s = pool_.Transact("runtime log", [&](pg::Tx& tx) {
    return AppendRuntimeLogs(tx, service_id, instance_id, {{"system", text}});
  });
  if (!s.ok()) log::Warn("cannot write a runtime log line", {{"error", s.ToString()}});
}

std::vector<std::string> Runtime::LastOutput(const std::string& ref, int n) {
  std::deque<std::string> lines;
  std::atomic<bool> cancel{false};
  absl::Notification done;
  // A running container's log never ends: read what is there for a moment.
  std::thread timer([&] {
    done.WaitForNotificationWithTimeout(absl::Seconds(2));
    cancel = true;
  });
  (void)provider_.FollowLogs(
      ref, std::nullopt,
      [&](const cloud::LogLine& l) {
        lines.push_back(l.text);
        if (static_cast<int>(lines.size()) > n) lines.pop_front();
        return true;
      },
      &cancel);
  done.Notify();
  timer.join();
  return {lines.begin(), lines.end()};
}

}  // namespace c2d::deployer
