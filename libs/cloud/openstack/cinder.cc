#include "libs/cloud/openstack/cinder.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/common/status.h"
#include "libs/http/client.h"

namespace c2d::cloud::openstack {

using json = nlohmann::json;

Volume ParseVolume(const json& v) {
  Volume out{.id = v.value("id", ""), .status = v.value("status", "")};
  if (auto n = v.find("name"); n != v.end() && n->is_string()) out.name = *n;
  if (auto s = v.find("size"); s != v.end() && s->is_number_integer()) out.size_gb = *s;
  for (const json& a : v.value("attachments", json::array())) {
    out.attached_to.push_back(a.value("server_id", ""));
  }
  if (auto m = v.find("metadata"); m != v.end() && m->is_object()) {
    for (auto& [k, value] : m->items()) {
      if (value.is_string()) out.metadata[k] = value.get<std::string>();
    }
  }
  return out;
}

absl::StatusOr<Reply> Cinder::Call(CallRequest request) {
  request.headers.emplace_back("OpenStack-API-Version", absl::StrCat("volume ", kMicroversion));
  return session_.Call("volumev3", request);
}

absl::StatusOr<std::optional<Volume>> Cinder::FindVolume(const std::string& name) {
  C2D_ASSIGN_OR_RETURN(Reply r, Call({.path = "/volumes/detail?name=" + http::UrlEncode(name)}));
  for (const json& v : r.body.value("volumes", json::array())) {
    Volume volume = ParseVolume(v);
    if (volume.name == name) return std::optional<Volume>(volume);
  }
  return std::optional<Volume>();
}

absl::StatusOr<Volume> Cinder::EnsureVolume(const std::string& name, int size_gb,
                                            const std::map<std::string, std::string>& labels) {
  C2D_ASSIGN_OR_RETURN(std::optional<Volume> found, FindVolume(name));
  if (found) return *found;
  json metadata = json::object();
  for (const auto& [k, v] : labels) metadata[k] = v;
  C2D_ASSIGN_OR_RETURN(
      Reply r, Call({.method = "POST",
                     .path = "/volumes",
                     .body = json{{"volume",
                                   {{"name", name}, {"size", size_gb}, {"metadata", metadata}}}}}));
  return ParseVolume(r.body.value("volume", json::object()));
}

absl::Status Cinder::SetMetadata(const std::string& id,
                                 const std::map<std::string, std::string>& metadata) {
  json body = {{"metadata", json::object()}};
  for (const auto& [k, v] : metadata) body["metadata"][k] = v;
  return Call({.method = "POST",
               .path = "/volumes/" + http::UrlEncode(id) + "/metadata",
               .body = body})
      .status();
}

absl::StatusOr<Volume> Cinder::GetVolume(const std::string& id) {
  C2D_ASSIGN_OR_RETURN(Reply r, Call({.path = "/volumes/" + http::UrlEncode(id)}));
  return ParseVolume(r.body.value("volume", json::object()));
}

absl::StatusOr<Volume> Cinder::WaitFor(const std::string& id, const std::string& status,
                                       absl::Time deadline, absl::Duration poll) {
  std::string last = "unknown";
  while (true) {
    auto v = GetVolume(id);
    if (v.ok()) {
      if (v->status == status) return *v;
      if (v->status == "error" || v->status == "error_deleting") {
        return absl::FailedPreconditionError(
            absl::StrCat("volume ", v->name, " (", id, ") went to ", v->status));
      }
      last = v->status;
    } else if (absl::IsNotFound(v.status())) {
      return v.status();
    }
    if (absl::Now() + poll > deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("volume ", id, " was not ", status, " in time; last seen ", last));
    }
    absl::SleepFor(poll);
  }
}

absl::Status Cinder::DeleteVolume(const std::string& id) {
  auto r = Call({.method = "DELETE", .path = "/volumes/" + http::UrlEncode(id)});
  return r.ok() || absl::IsNotFound(r.status()) ? absl::OkStatus() : r.status();
}

}  // namespace c2d::cloud::openstack
