#include <regex>

#include "absl/strings/str_cat.h"
#include "libs/common/ids.h"
#include "libs/common/status.h"
#include "libs/rpc/repo_url.h"
#include "libs/rpc/status.h"
#include "libs/rpc/validate.h"
#include "services/gateway/gateway.h"
#include "services/gateway/service_body.h"

namespace c2d::gateway {

// ---- services

json Gateway::ServiceJson(const Service& s) const {
  const v1::HealthCheck& h = s.health_check;
  json j = {
      {"id", s.id},
      {"project_id", s.project_id},
      {"name", s.name},
      {"type", s.type == v1::SERVICE_TYPE_WORKER ? "worker" : "web"},
      {"revision", s.revision},
      {"source",
       {{"repo_url", rpc::RedactUrl(s.source.repo_url())},
        {"branch", s.source.branch()},
        {"root_dir", s.source.root_dir()}}},
      {"auto_deploy", s.auto_deploy},
      {"build",
       {{"strategy", s.build.strategy() == v1::BUILD_STRATEGY_DOCKERFILE ? "dockerfile" : "auto"},
        {"dockerfile_path", s.build.dockerfile_path()},
        {"build_command", s.build.build_command()}}},
      {"run",
       {{"start_command", s.run.start_command()},
        {"port", s.run.port() > 0 ? json(s.run.port()) : json(nullptr)},
        {"instance_count", s.run.instance_count()},
        {"memory_mb", s.run.memory_mb()},
        {"cpu_millis", s.run.cpu_millis()}}},
      {"created_at", Time(absl::ToUnixMicros(s.created_at))},
      {"updated_at", Time(absl::ToUnixMicros(s.updated_at))},
      {"preview", s.preview_of.empty()
                      ? json(nullptr)
                      : json{{"of", s.preview_of}, {"pull_request", s.preview_number}}}};
  if (s.type == v1::SERVICE_TYPE_WEB) {
    j["health_check"] = {{"path", h.path()},
                         {"port", h.port() > 0 ? json(h.port()) : json(nullptr)},
                         {"interval_s", h.interval_s()},
                         {"timeout_s", h.timeout_s()},
                         {"healthy_threshold", h.healthy_threshold()},
                         {"unhealthy_threshold", h.unhealthy_threshold()},
                         {"start_period_s", h.start_period_s()}};
    j["url"] = config_.AppUrl(s.name, s.project_name);
  } else {
    // A worker is up once it has run for its start period; it has no URL.
    j["health_check"] = {{"start_period_s", h.start_period_s()}};
    j["url"] = nullptr;
  }
  return j;
}

namespace {
std::string RepoUrlAad(const std::string& service_id) { return "c2d/repo_url/" + service_id; }

// What a release carries of the health check: a web service's whole check,
// a worker's start period alone.
v1::HealthCheck ReleaseHealthCheck(v1::ServiceType type, const v1::HealthCheck& h) {
  if (type == v1::SERVICE_TYPE_WEB) return h;
  v1::HealthCheck w;
  w.set_start_period_s(h.start_period_s());
  return w;
}
}  // namespace

Service ServiceDefaults() {
  Service s;
  s.source.set_branch("main");
  s.build.set_strategy(v1::BUILD_STRATEGY_AUTO);
  s.build.set_dockerfile_path("Dockerfile");
  s.run.set_instance_count(1);
  s.run.set_memory_mb(512);
  s.run.set_cpu_millis(500);
  s.health_check.set_path("/health");
  s.health_check.set_interval_s(10);
  s.health_check.set_timeout_s(2);
  s.health_check.set_healthy_threshold(1);
  s.health_check.set_unhealthy_threshold(3);
  s.health_check.set_start_period_s(30);
  return s;
}

absl::Status SealRepoUrl(Service* s, const std::string& url, const Config& config) {
  auto sealed = rpc::SealUrl(*config.master_keys, url, RepoUrlAad(s->id));
  if (!sealed.ok()) return sealed.status();
  s->repo_url_sealed = std::move(*sealed);
  s->source.set_repo_url(rpc::RedactUrl(url));
  return absl::OkStatus();
}

absl::StatusOr<v1::Source> Gateway::BuildSource(const Service& s) const {
  v1::Source source = s.source;
  if (s.repo_url_sealed.empty()) return source;
  auto url = rpc::OpenUrl(*config_.master_keys, s.repo_url_sealed, RepoUrlAad(s.id));
  if (!url.ok()) return url.status();
  source.set_repo_url(*url);
  return source;
}

namespace {

absl::Status ApplyType(const json& body, Service* s, bool create) {
  if (!body.contains("type") || body["type"].is_null()) return absl::OkStatus();
  std::string type;
  C2D_RETURN_IF_ERROR(GetString(body, "type", "", &type, 16));
  if (type != "web" && type != "worker") return FieldError("type", "must be web or worker");
  const v1::ServiceType t = type == "web" ? v1::SERVICE_TYPE_WEB : v1::SERVICE_TYPE_WORKER;
  if (!create && t != s->type) return FieldError("type", "cannot change; create a new service");
  s->type = t;
  return absl::OkStatus();
}

absl::Status ApplySource(const json& body, Service* s, const Config& config) {
  C2D_ASSIGN_OR_RETURN(json source, SubObject(body, "source", {"repo_url", "branch", "root_dir"}));
  const std::string stored_url = s->source.repo_url();
  std::string url = stored_url, text;
  C2D_RETURN_IF_ERROR(GetString(source, "repo_url", "source.", &url, 2048));
  s->source.set_repo_url(url);
  text = s->source.branch();
  C2D_RETURN_IF_ERROR(GetString(source, "branch", "source.", &text, 255));
  s->source.set_branch(text);
  text = s->source.root_dir();
  C2D_RETURN_IF_ERROR(GetString(source, "root_dir", "source.", &text, 1024));
  s->source.set_root_dir(text);
  if (s->source.repo_url().empty()) return FieldError("source.repo_url", "is required");
  C2D_RETURN_IF_ERROR(rpc::ValidateSource(s->source, "source.", config.local_repo_root));
  // The stored (masked) URL sent back unchanged keeps its sealed credentials.
  if (url != stored_url) C2D_RETURN_IF_ERROR(SealRepoUrl(s, url, config));
  return absl::OkStatus();
}

absl::Status ApplyBuild(const json& body, Service* s) {
  C2D_ASSIGN_OR_RETURN(json build,
                       SubObject(body, "build", {"strategy", "dockerfile_path", "build_command"}));
  if (build.contains("strategy") && !build["strategy"].is_null()) {
    std::string strategy;
    C2D_RETURN_IF_ERROR(GetString(build, "strategy", "build.", &strategy, 16));
    if (strategy != "auto" && strategy != "dockerfile") {
      return FieldError("build.strategy", "must be auto or dockerfile");
    }
    s->build.set_strategy(strategy == "auto" ? v1::BUILD_STRATEGY_AUTO
                                             : v1::BUILD_STRATEGY_DOCKERFILE);
  }
  std::string text = s->build.dockerfile_path();
  C2D_RETURN_IF_ERROR(GetString(build, "dockerfile_path", "build.", &text, 1024));
  s->build.set_dockerfile_path(text);
  text = s->build.build_command();
  C2D_RETURN_IF_ERROR(GetString(build, "build_command", "build.", &text, 4096));
  s->build.set_build_command(text);
  return rpc::ValidateBuildSettings(s->build, "build.");
}

absl::Status ApplyRun(const json& body, Service* s) {
  C2D_ASSIGN_OR_RETURN(
      json run, SubObject(body, "run",
                          {"start_command", "port", "instance_count", "memory_mb", "cpu_millis"}));
  std::string text = s->run.start_command();
  C2D_RETURN_IF_ERROR(GetString(run, "start_command", "run.", &text, 4096));
  s->run.set_start_command(text);
  int n = s->run.port();
  C2D_RETURN_IF_ERROR(GetInt(run, "port", "run.", 1, 65535, &n));
  s->run.set_port(s->type == v1::SERVICE_TYPE_WORKER ? 0 : (n > 0 ? n : 8080));
  n = s->run.instance_count();
  C2D_RETURN_IF_ERROR(GetInt(run, "instance_count", "run.", 1, 20, &n));
  s->run.set_instance_count(n);
  n = s->run.memory_mb();
  C2D_RETURN_IF_ERROR(GetInt(run, "memory_mb", "run.", 64, 65536, &n));
  s->run.set_memory_mb(n);
  n = s->run.cpu_millis();
  C2D_RETURN_IF_ERROR(GetInt(run, "cpu_millis", "run.", 50, 16000, &n));
  s->run.set_cpu_millis(n);
  return absl::OkStatus();
}

absl::Status ApplyHealthCheck(const json& body, Service* s) {
  C2D_ASSIGN_OR_RETURN(json hc,
                       SubObject(body, "health_check",
                                 {"path", "port", "interval_s", "timeout_s", "healthy_threshold",
                                  "unhealthy_threshold", "start_period_s"}));
  v1::HealthCheck& h = s->health_check;
  std::string text = h.path();
  C2D_RETURN_IF_ERROR(GetString(hc, "path", "health_check.", &text, 1024));
  h.set_path(text);
  struct {
    const char* key;
    int lo, hi;
    int (v1::HealthCheck::*get)() const;
    void (v1::HealthCheck::*set)(int32_t);
  } ints[] = {
      {"port", 1, 65535, &v1::HealthCheck::port, &v1::HealthCheck::set_port},
      {"interval_s", 1, 300, &v1::HealthCheck::interval_s, &v1::HealthCheck::set_interval_s},
      {"timeout_s", 1, 60, &v1::HealthCheck::timeout_s, &v1::HealthCheck::set_timeout_s},
      {"healthy_threshold", 1, 10, &v1::HealthCheck::healthy_threshold,
       &v1::HealthCheck::set_healthy_threshold},
      {"unhealthy_threshold", 1, 10, &v1::HealthCheck::unhealthy_threshold,
       &v1::HealthCheck::set_unhealthy_threshold},
      {"start_period_s", 0, 3600, &v1::HealthCheck::start_period_s,
       &v1::HealthCheck::set_start_period_s}};
  for (const auto& f : ints) {
    int n = (h.*f.get)();
    C2D_RETURN_IF_ERROR(GetInt(hc, f.key, "health_check.", f.lo, f.hi, &n));
    (h.*f.set)(n);
  }
  if (s->type == v1::SERVICE_TYPE_WORKER) h.set_port(0);
  return absl::OkStatus();
}

}  // namespace

absl::Status ApplyServiceBody(const json& body, Service* s, bool create, const Config& config) {
  C2D_RETURN_IF_ERROR(GetString(body, "name", "", &s->name, 64));
  if (!rpc::ValidName(s->name)) return FieldError("name", rpc::kNameRule);
  C2D_RETURN_IF_ERROR(ApplyType(body, s, create));
  C2D_RETURN_IF_ERROR(ApplySource(body, s, config));
  C2D_RETURN_IF_ERROR(GetBool(body, "auto_deploy", "", &s->auto_deploy));
  C2D_RETURN_IF_ERROR(ApplyBuild(body, s));
  C2D_RETURN_IF_ERROR(ApplyRun(body, s));
  C2D_RETURN_IF_ERROR(ApplyHealthCheck(body, s));
  // The whole release configuration, as the deployer will check it.
  v1::ServiceSpec spec;
  spec.set_service_id(s->id);
  spec.set_project_id(s->project_id);
  spec.set_project_name(s->project_name);
  spec.set_service_name(s->name);
  spec.set_type(s->type);
  *spec.mutable_run() = s->run;
  *spec.mutable_health_check() = ReleaseHealthCheck(s->type, s->health_check);
  return rpc::ValidateServiceSpec(spec);
}

absl::StatusOr<v1::ServiceSpec> Gateway::Spec(const Service& s, const std::string& request_id) {
  auto env = pool_.Transact("env", [&](pg::Tx& tx) { return ListEnv(tx, s.id); });
  if (!env.ok()) return env.status();
  auto volumes = ServiceVolumes(s.id, request_id);
  if (!volumes.ok()) return volumes.status();
  v1::ServiceSpec spec;
  spec.set_service_id(s.id);
  spec.set_project_id(s.project_id);
  spec.set_project_name(s.project_name);
  spec.set_service_name(s.name);
  spec.set_type(s.type);
  spec.set_revision(s.revision);
  *spec.mutable_run() = s.run;
  *spec.mutable_health_check() = ReleaseHealthCheck(s.type, s.health_check);
  for (v1::EnvVar& v : *env) *spec.add_env() = std::move(v);
  for (const v1::Volume& v : *volumes) {
    v1::VolumeMount* m = spec.add_volumes();
    m->set_volume_id(v.id());
    m->set_name(v.name());
    m->set_mount_path(v.mount_path());
    m->set_size_gb(v.size_gb());
  }
  auto links = ServiceLinks(s.id, request_id);
  if (!links.ok()) return links.status();
  for (v1::DatabaseLinkRef& l : *links) *spec.add_database_links() = std::move(l);
  return spec;
}

httpd::Response Gateway::CreateService(Call& c) {
  auto p = Authorize(c, c.req.params["id"], Role::kDeveloper);
  if (!p.ok()) return FromStatus(p.status());
  auto body = ParseObject(
      c.req.body, {"name", "type", "source", "auto_deploy", "build", "run", "health_check", "env"});
  if (!body.ok()) return FromStatus(body.status());
  Service s = ServiceDefaults();
  s.id = ids::New("svc");
  s.project_id = p->id;
  s.project_name = p->name;
  if (!body->contains("name")) return FromStatus(FieldError("name", "is required"));
  if (auto st = ApplyServiceBody(*body, &s, /*create=*/true, config_); !st.ok()) {
    return FromStatus(st);
  }
  // A worker counts as up once it has run 5 s, unless the body says otherwise.
  const json& hc = body->value("health_check", json::object());
  if (s.type == v1::SERVICE_TYPE_WORKER && !(hc.is_object() && hc.contains("start_period_s"))) {
    s.health_check.set_start_period_s(5);
  }
  absl::Status st = pool_.Transact("create service", [&](pg::Tx& tx) -> absl::Status {
    C2D_RETURN_IF_ERROR(InsertService(tx, s));
    if (body->contains("env")) C2D_RETURN_IF_ERROR(ApplyEnv(tx, s.id, (*body)["env"], true));
    return Audit(tx, {c.who.user_id,
                      c.who.token_id,
                      p->id,
                      "service.create",
                      s.id,
                      c.request_id,
                      c.req.remote_addr,
                      {{"name", s.name}}});
  });
  if (absl::IsAlreadyExists(st)) {
    return Error(409, "already_exists",
                 absl::StrCat("project ", p->name, " already has a service named ", s.name),
                 "name");
  }
  if (!st.ok()) return FromStatus(st);
  auto stored =
      pool_.Transact("service", [&](pg::Tx& tx) { return gateway::GetService(tx, s.id); });
  if (!stored.ok()) return FromStatus(stored.status());
  return Json(201, ServiceJson(*stored));
}

httpd::Response Gateway::ListServices(Call& c) {
  auto size = PageSize(c.req);
  if (!size.ok()) return FromStatus(size.status());
  auto p = Authorize(c, c.req.params["id"], Role::kViewer);
  if (!p.ok()) return FromStatus(p.status());
  auto list = pool_.Transact("list services", [&](pg::Tx& tx) {
    return gateway::ListServices(tx, p->id, *size + 1, c.req.Query("page_token"));
  });
  if (!list.ok()) return FromStatus(list.status());
  json items = json::array();
  for (int i = 0; i < static_cast<int>(list->size()) && i < *size; ++i) {
    items.push_back(ServiceJson((*list)[i]));
  }
  const bool more = static_cast<int>(list->size()) > *size;
  return Json(200, {{"services", items},
                    {"next_page_token", more ? json((*list)[*size - 1].name) : json(nullptr)}});
}

httpd::Response Gateway::GetService(Call& c) {
  auto sp = AuthorizeService(c, c.req.params["id"], Role::kViewer);
  if (!sp.ok()) return FromStatus(sp.status());
  return Json(200, ServiceJson(sp->first));
}

httpd::Response Gateway::PatchService(Call& c) {
  auto sp = AuthorizeService(c, c.req.params["id"], Role::kDeveloper);
  if (!sp.ok()) return FromStatus(sp.status());
  auto body = ParseObject(
      c.req.body, {"name", "type", "source", "auto_deploy", "build", "run", "health_check"});
  if (!body.ok()) return FromStatus(body.status());
  Service s = sp->first;
  if (auto st = ApplyServiceBody(*body, &s, /*create=*/false, config_); !st.ok()) {
    return FromStatus(st);
  }
  if (s.run.instance_count() > 1) {
    auto volumes = ServiceVolumes(s.id, c.request_id);
    if (!volumes.ok()) return FromStatus(volumes.status());
    if (!volumes->empty()) {
      return FromStatus(
          FieldError("run.instance_count",
                     absl::StrCat("must be 1 while the service has volumes (", (*volumes)[0].name(),
                                  " is mounted by one instance)")));
    }
  }
  absl::Status st = pool_.Transact("update service", [&](pg::Tx& tx) -> absl::Status {
    C2D_RETURN_IF_ERROR(UpdateService(tx, s));
    return Audit(tx, {c.who.user_id, c.who.token_id, s.project_id, "service.update", s.id,
                      c.request_id, c.req.remote_addr, *body});
  });
  if (absl::IsAlreadyExists(st)) {
    return Error(409, "already_exists",
                 absl::StrCat("the project already has a service named ", s.name), "name");
  }
  if (!st.ok()) return FromStatus(st);
  auto stored =
      pool_.Transact("service", [&](pg::Tx& tx) { return gateway::GetService(tx, s.id); });
  if (!stored.ok()) return FromStatus(stored.status());
  if (stored->name != sp->first.name) SyncRoutes(c, stored->project_id);  // its hostname moves
  return Json(200, ServiceJson(*stored));
}

httpd::Response Gateway::DeleteService(Call& c) {
  auto sp = AuthorizeService(c, c.req.params["id"], Role::kAdmin);
  if (!sp.ok()) return FromStatus(sp.status());
  AuditEntry actor{c.who.user_id, c.who.token_id, "", "", "", c.request_id, c.req.remote_addr, {}};
  if (absl::Status st = RemoveService(sp->first, actor); !st.ok()) return FromStatus(st);
  httpd::Response r;
  r.status = 204;
  return r;
}

// ---- env vars

absl::Status Gateway::ApplyEnv(pg::Tx& tx, const std::string& service_id, const json& env,
                               bool replace) {
  static const std::regex kKey("^[A-Za-z_][A-Za-z0-9_]*$");
  if (!env.is_object()) return FieldError("env", "must be an object of KEY: value");
  if (env.size() > 500) return FieldError("env", "at most 500 variables");
  // Validate everything before writing anything.
  struct Change {
    std::string key;
    std::optional<std::string> value;  // nullopt = delete
    bool secret = true;
  };
  std::vector<Change> changes;
  for (const auto& [key, v] : env.items()) {
    const std::string field = "env." + key.substr(0, 64);
    if (key.size() > 255 || !std::regex_match(key, kKey)) {
      return FieldError(field, "is not a valid variable name (^[A-Za-z_][A-Za-z0-9_]*$)");
    }
    if (key == "PORT") return FieldError(field, "PORT is set by c2d");
    Change ch{key, std::nullopt, true};
    if (v.is_string()) {
      ch.value = v.get<std::string>();
    } else if (v.is_object()) {
      for (const auto& [k, unused] : v.items()) {
        if (k != "value" && k != "secret") return FieldError(field + "." + k, "unknown field");
      }
      if (!v.contains("value") || !v["value"].is_string()) {
        return FieldError(field + ".value", "must be a string");
      }
      ch.value = v["value"].get<std::string>();
      if (v.contains("secret")) {
        if (!v["secret"].is_boolean())
          return FieldError(field + ".secret", "must be true or false");
        ch.secret = v["secret"].get<bool>();
      }
    } else if (v.is_null() && !replace) {
      // PATCH: null removes the variable.
    } else {
      return FieldError(field, "must be a string, {\"value\", \"secret\"} or (PATCH) null");
    }
    if (ch.value && ch.value->size() > 32 * 1024) return FieldError(field, "is longer than 32 KiB");
    changes.push_back(std::move(ch));
  }
  if (replace) C2D_RETURN_IF_ERROR(DeleteAllEnv(tx, service_id));
  for (const Change& ch : changes) {
    if (!ch.value) {
      C2D_RETURN_IF_ERROR(gateway::DeleteEnv(tx, service_id, ch.key).status());
      continue;
    }
    auto sealed = config_.master_keys->Seal(*ch.value, crypto::EnvVarAad(ch.key));
    if (!sealed.ok()) return sealed.status();
    v1::EnvVar var;
    var.set_key(ch.key);
    var.set_secret(ch.secret);
    var.mutable_value()->set_key_id(sealed->key_id);
    var.mutable_value()->set_wrapped_data_key(sealed->wrapped_key);
    var.mutable_value()->set_nonce(sealed->nonce);
    var.mutable_value()->set_ciphertext(sealed->ciphertext);
    C2D_RETURN_IF_ERROR(gateway::PutEnv(tx, service_id, var));
  }
  return BumpRevision(tx, service_id);
}

httpd::Response Gateway::GetEnv(Call& c) {
  const bool reveal = c.req.Query("reveal") == "true";
  auto sp = AuthorizeService(c, c.req.params["id"], reveal ? Role::kDeveloper : Role::kViewer);
  if (!sp.ok()) return FromStatus(sp.status());
  auto env = pool_.Transact("env", [&](pg::Tx& tx) { return ListEnv(tx, sp->first.id); });
  if (!env.ok()) return FromStatus(env.status());
  json items = json::array();
  for (const v1::EnvVar& v : *env) {
    json item = {{"key", v.key()}, {"secret", v.secret()}, {"value", nullptr}};
    if (!v.secret() || reveal) {
      crypto::Sealed sealed{v.value().key_id(), v.value().wrapped_data_key(), v.value().nonce(),
                            v.value().ciphertext()};
      auto plain = config_.master_keys->Open(sealed, crypto::EnvVarAad(v.key()));
      if (!plain.ok()) return FromStatus(plain.status());
      item["value"] = *plain;
    }
    items.push_back(std::move(item));
  }
  if (reveal) {
    json keys = json::array();
    for (const v1::EnvVar& v : *env) keys.push_back(v.key());
    if (auto s = AuditMutation(c, sp->second.id, "env.reveal", sp->first.id, {{"keys", keys}});
        !s.ok()) {
      return FromStatus(s);
    }
  }
  return Json(200, {{"env", items}});
}

httpd::Response Gateway::PutEnv(Call& c) {
  auto sp = AuthorizeService(c, c.req.params["id"], Role::kDeveloper);
  if (!sp.ok()) return FromStatus(sp.status());
  auto body = ParseObject(c.req.body, {"env"});
  if (!body.ok()) return FromStatus(body.status());
  if (!body->contains("env")) return FromStatus(FieldError("env", "is required"));
  const bool replace = c.req.method == "PUT";
  absl::Status st = pool_.Transact("env", [&](pg::Tx& tx) -> absl::Status {
    C2D_RETURN_IF_ERROR(ApplyEnv(tx, sp->first.id, (*body)["env"], replace));
    json keys = json::array();
    for (const auto& [k, v] : (*body)["env"].items()) keys.push_back(k);  // never the values
    return Audit(tx, {c.who.user_id,
                      c.who.token_id,
                      sp->second.id,
                      "env.update",
                      sp->first.id,
                      c.request_id,
                      c.req.remote_addr,
                      {{"keys", keys}, {"replace", replace}}});
  });
  if (!st.ok()) return FromStatus(st);
  c.req.method = "GET";
  c.req.query.clear();
  return GetEnv(c);
}

httpd::Response Gateway::PatchEnv(Call& c) { return PutEnv(c); }

httpd::Response Gateway::DeleteEnv(Call& c) {
  auto sp = AuthorizeService(c, c.req.params["id"], Role::kDeveloper);
  if (!sp.ok()) return FromStatus(sp.status());
  const std::string key = c.req.params["key"];
  absl::Status st = pool_.Transact("env", [&](pg::Tx& tx) -> absl::Status {
    auto deleted = gateway::DeleteEnv(tx, sp->first.id, key);
    if (!deleted.ok()) return deleted.status();
    if (!*deleted) {
      return absl::NotFoundError(absl::StrCat("service ", sp->first.name, " has no env var ", key));
    }
    C2D_RETURN_IF_ERROR(BumpRevision(tx, sp->first.id));
    return Audit(tx, {c.who.user_id,
                      c.who.token_id,
                      sp->second.id,
                      "env.delete",
                      sp->first.id,
                      c.request_id,
                      c.req.remote_addr,
                      {{"key", key}}});
  });
  if (!st.ok()) return FromStatus(st);
  httpd::Response r;
  r.status = 204;
  return r;
}

}  // namespace c2d::gateway
