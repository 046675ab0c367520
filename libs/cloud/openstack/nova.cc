#include "libs/cloud/openstack/nova.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "libs/common/status.h"
#include "libs/http/client.h"

namespace c2d::cloud::openstack {
namespace {

using json = nlohmann::json;

// Nova's limits: a tag is at most 60 characters without "/" or ","; user
// data at most 65535 bytes once base64-encoded.
constexpr size_t kMaxTag = 60;
constexpr size_t kMaxUserData = 65535;

absl::StatusOr<std::string> Tag(const std::string& key, const std::string& value) {
  std::string tag = absl::StrCat(key, "=", value);
  if (tag.size() > kMaxTag || absl::StrContains(tag, "/") || absl::StrContains(tag, ",")) {
    return absl::InvalidArgumentError(
        absl::StrCat("label ", tag, " cannot be a Nova tag (at most 60 characters, no / or ,)"));
  }
  return tag;
}

std::optional<absl::Time> Time(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return std::nullopt;
  absl::Time t;
  std::string err;
  std::string text = it->get<std::string>();
  // launched_at has no zone ("2013-09-23T13:53:12.774549"): it is UTC.
  if (!absl::StrContains(text, "Z") && !absl::StrContains(text, "+")) text += "Z";
  if (!absl::ParseTime(absl::RFC3339_full, text, &t, &err)) return std::nullopt;
  return t;
}

json Networks(const ServerSpec& spec) {
  json nics = json::array();
  for (const std::string& id : spec.network_ids) nics.push_back({{"uuid", id}});
  for (const std::string& id : spec.port_ids) nics.push_back({{"port", id}});
  return nics.empty() ? json("none") : nics;
}

// The image as the boot disk, then each volume, kept when the server goes.
json BlockDevices(const ServerSpec& spec) {
  json out = json::array({{{"boot_index", 0},
                           {"uuid", spec.image_id},
                           {"source_type", "image"},
                           {"destination_type", "local"},
                           {"delete_on_termination", true}}});
  for (const std::string& id : spec.volume_ids) {
    out.push_back({{"boot_index", -1},
                   {"uuid", id},
                   {"source_type", "volume"},
                   {"destination_type", "volume"},
                   {"delete_on_termination", false}});
  }
  return out;
}

}  // namespace

Server ParseServer(const json& j) {
  Server s;
  s.id = j.value("id", "");
  s.name = j.value("name", "");
  s.status = j.value("status", "");
  if (auto t = j.find("OS-EXT-STS:task_state"); t != j.end() && t->is_string()) s.task_state = *t;
  if (auto f = j.find("fault"); f != j.end() && f->is_object()) {
    s.fault = f->value("message", "");
  }
  if (auto m = j.find("metadata"); m != j.end() && m->is_object()) {
    for (auto& [k, v] : m->items()) {
      if (v.is_string()) s.labels[k] = v.get<std::string>();
    }
  }
  if (auto a = j.find("addresses"); a != j.end() && a->is_object()) {
    for (auto& [network, ips] : a->items()) {
      for (const json& ip : ips) {
        const std::string addr = ip.value("addr", "");
        s.addresses[network].push_back(addr);
        (ip.value("OS-EXT-IPS:type", "fixed") == "floating" ? s.floating_ips : s.fixed_ips)
            .push_back(addr);
      }
    }
  }
  s.launched_at = Time(j, "OS-SRV-USG:launched_at");
  return s;
}

absl::StatusOr<Reply> Nova::Call(CallRequest request) {
  request.headers.emplace_back("OpenStack-API-Version", absl::StrCat("compute ", kMicroversion));
  return session_.Call("compute", request);
}

absl::StatusOr<std::string> Nova::CreateServer(const ServerSpec& spec) {
  json tags = json::array();
  json metadata = json::object();
  for (const auto& [k, v] : spec.labels) {
    C2D_ASSIGN_OR_RETURN(std::string tag, Tag(k, v));
    tags.push_back(tag);
    metadata[k] = v;
  }
  for (const auto& [k, v] : spec.metadata) metadata[k] = v;
  const std::string user_data = http::Base64(spec.user_data);
  if (user_data.size() > kMaxUserData) {
    return absl::InvalidArgumentError(absl::StrCat("user data of ", spec.name, " is ",
                                                   user_data.size(),
                                                   " bytes in base64; Nova takes 65535"));
  }
  json server = {{"name", spec.name},         {"flavorRef", spec.flavor_id},
                 {"imageRef", spec.image_id}, {"networks", Networks(spec)},
                 {"metadata", metadata},      {"tags", tags}};
  if (!spec.user_data.empty()) server["user_data"] = user_data;
  if (!spec.key_name.empty()) server["key_name"] = spec.key_name;
  if (!spec.security_groups.empty()) {
    server["security_groups"] = json::array();
    for (const std::string& g : spec.security_groups) {
      server["security_groups"].push_back({{"name", g}});
    }
  }
  if (!spec.volume_ids.empty()) server["block_device_mapping_v2"] = BlockDevices(spec);
  json body = {{"server", server}};
  if (!spec.server_group_id.empty()) {
    body["os:scheduler_hints"] = {{"group", spec.server_group_id}};
  }
  C2D_ASSIGN_OR_RETURN(Reply r, Call({.method = "POST", .path = "/servers", .body = body}));
  const std::string id = r.body.value("/server/id"_json_pointer, "");
  if (id.empty()) return absl::UnknownError("compute: POST /servers answered without a server id");
  return id;
}

absl::StatusOr<Server> Nova::GetServer(const std::string& id) {
  C2D_ASSIGN_OR_RETURN(Reply r, Call({.path = "/servers/" + http::UrlEncode(id)}));
  return ParseServer(r.body.value("server", json::object()));
}

absl::StatusOr<std::vector<Server>> Nova::ListServers(
    const std::map<std::string, std::string>& labels) {
  std::vector<std::string> tags;
  for (const auto& [k, v] : labels) {
    C2D_ASSIGN_OR_RETURN(std::string tag, Tag(k, v));
    tags.push_back(http::UrlEncode(tag));
  }
  std::string path = "/servers/detail?limit=200";
  if (!tags.empty()) absl::StrAppend(&path, "&tags=", absl::StrJoin(tags, ","));
  std::vector<Server> out;
  for (int page = 0; page < 1000 && !path.empty(); ++page) {
    C2D_ASSIGN_OR_RETURN(Reply r, Call({.path = path}));
    for (const json& s : r.body.value("servers", json::array())) out.push_back(ParseServer(s));
    path.clear();
    for (const json& link : r.body.value("servers_links", json::array())) {
      if (link.value("rel", "") == "next") path = link.value("href", "");
    }
  }
  return out;
}

absl::Status Nova::DeleteServer(const std::string& id) {
  auto r = Call({.method = "DELETE", .path = "/servers/" + http::UrlEncode(id)});
  return r.ok() || absl::IsNotFound(r.status()) ? absl::OkStatus() : r.status();
}

absl::Status Nova::Action(const std::string& id, const json& action) {
  return Call({.method = "POST",
               .path = absl::StrCat("/servers/", http::UrlEncode(id), "/action"),
               .body = action})
      .status();
}

absl::Status Nova::SetMetadata(const std::string& id,
                               const std::map<std::string, std::string>& metadata) {
  json body = {{"metadata", json::object()}};
  for (const auto& [k, v] : metadata) body["metadata"][k] = v;
  return Call({.method = "POST",
               .path = "/servers/" + http::UrlEncode(id) + "/metadata",
               .body = body})
      .status();
}

absl::Status Nova::StartServer(const std::string& id) {
  absl::Status s = Action(id, {{"os-start", nullptr}});
  if (!absl::IsAborted(s)) return s;
  // 409: not in a state to start; fine when it runs already.
  auto now = GetServer(id);
  return now.ok() && now->status == "ACTIVE" ? absl::OkStatus() : s;
}

absl::Status Nova::StopServer(const std::string& id) {
  absl::Status s = Action(id, {{"os-stop", nullptr}});
  if (!absl::IsAborted(s)) return s;
  auto now = GetServer(id);
  return now.ok() && now->status == "SHUTOFF" ? absl::OkStatus() : s;
}

absl::Status Nova::RebootServer(const std::string& id, bool hard) {
  return Action(id, {{"reboot", {{"type", hard ? "HARD" : "SOFT"}}}});
}

absl::StatusOr<Server> Nova::WaitFor(const std::string& id, const std::string& status,
                                     absl::Time deadline, absl::Duration poll) {
  std::string last = "unknown";
  while (true) {
    auto s = GetServer(id);
    if (s.ok()) {
      if (s->status == "ERROR") {
        return absl::FailedPreconditionError(absl::StrCat(
            "server ", s->name, " (", id, ") failed: ", s->fault.empty() ? "ERROR" : s->fault));
      }
      if (s->status == status && s->task_state.empty()) return *s;
      last = s->task_state.empty() ? s->status : absl::StrCat(s->status, "/", s->task_state);
    } else if (absl::IsNotFound(s.status())) {
      return s.status();
    }  // other errors: passing trouble, polled again
    if (absl::Now() + poll > deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("server ", id, " was not ", status, " in time; last seen ", last));
    }
    absl::SleepFor(poll);
  }
}

absl::Status Nova::WaitGone(const std::string& id, absl::Time deadline, absl::Duration poll) {
  while (true) {
    auto s = GetServer(id);
    if (absl::IsNotFound(s.status()) || (s.ok() && s->status == "DELETED")) {
      return absl::OkStatus();
    }
    if (absl::Now() + poll > deadline) {
      return absl::DeadlineExceededError(absl::StrCat("server ", id, " was not deleted in time"));
    }
    absl::SleepFor(poll);
  }
}

absl::StatusOr<std::string> Nova::FlavorId(const std::string& name) {
  C2D_ASSIGN_OR_RETURN(Reply r, Call({.path = "/flavors"}));
  for (const json& f : r.body.value("flavors", json::array())) {
    if (f.value("name", "") == name || f.value("id", "") == name) return f.value("id", "");
  }
  return absl::NotFoundError(absl::StrCat("no flavor named ", name));
}

absl::StatusOr<std::string> Nova::CreateServerGroup(const std::string& name,
                                                    const std::string& policy) {
  C2D_ASSIGN_OR_RETURN(
      Reply r, Call({.method = "POST",
                     .path = "/os-server-groups",
                     .body = json{{"server_group", {{"name", name}, {"policy", policy}}}}}));
  return r.body.value("/server_group/id"_json_pointer, "");
}

absl::Status Nova::DeleteServerGroup(const std::string& id) {
  auto r = Call({.method = "DELETE", .path = "/os-server-groups/" + http::UrlEncode(id)});
  return r.ok() || absl::IsNotFound(r.status()) ? absl::OkStatus() : r.status();
}

absl::StatusOr<std::optional<std::string>> Nova::FindServerGroup(const std::string& name) {
  C2D_ASSIGN_OR_RETURN(Reply r, Call({.path = "/os-server-groups?limit=1000"}));
  for (const json& g : r.body.value("server_groups", json::array())) {
    if (g.value("name", "") == name) return std::optional<std::string>(g.value("id", ""));
  }
  return std::optional<std::string>();
}

absl::Status Nova::AttachVolume(const std::string& server_id, const std::string& volume_id) {
  const std::string path =
      absl::StrCat("/servers/", http::UrlEncode(server_id), "/os-volume_attachments");
  C2D_ASSIGN_OR_RETURN(Reply list, Call({.path = path}));
  for (const json& a : list.body.value("volumeAttachments", json::array())) {
    if (a.value("volumeId", "") == volume_id) return absl::OkStatus();
  }
  return Call({.method = "POST",
               .path = path,
               .body = json{{"volumeAttachment", {{"volumeId", volume_id}}}}})
      .status();
}

absl::Status Nova::DetachVolume(const std::string& server_id, const std::string& volume_id) {
  auto r = Call({.method = "DELETE",
                 .path = absl::StrCat("/servers/", http::UrlEncode(server_id),
                                      "/os-volume_attachments/", http::UrlEncode(volume_id))});
  return r.ok() || absl::IsNotFound(r.status()) ? absl::OkStatus() : r.status();
}

absl::StatusOr<std::string> Nova::ConsoleOutput(const std::string& id, int lines) {
  C2D_ASSIGN_OR_RETURN(Reply r,
                       Call({.method = "POST",
                             .path = absl::StrCat("/servers/", http::UrlEncode(id), "/action"),
                             .body = json{{"os-getConsoleOutput", {{"length", lines}}}}}));
  return r.body.value("output", "");
}

}  // namespace c2d::cloud::openstack
