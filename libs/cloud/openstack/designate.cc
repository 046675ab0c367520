#include "libs/cloud/openstack/designate.h"

#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "libs/common/status.h"
#include "libs/http/client.h"

namespace c2d::cloud::openstack {
namespace {

using json = nlohmann::json;

constexpr char kService[] = "dns";
constexpr char kTagPrefix[] = "c2d:";
constexpr int kMaxPages = 1000;

}  // namespace

dns::RRset ParseRecordset(const json& r) {
  const json ttl = r.value("ttl", json());
  dns::RRset out{.name = r.value("name", ""),
                 .type = r.value("type", ""),
                 .ttl = ttl.is_number_integer() ? ttl.get<int>() : 60};
  for (const json& record : r.value("records", json::array())) {
    if (record.is_string()) out.records.push_back(record);
  }
  // A null description (Designate's default) reads as no tag.
  const json description = r.value("description", json());
  if (!description.is_string()) return out;
  absl::string_view tag = description.get_ref<const std::string&>();
  if (absl::ConsumePrefix(&tag, kTagPrefix)) out.tag = std::string(tag);
  return out;
}

absl::StatusOr<std::optional<std::string>> Designate::ZoneId(const std::string& zone) {
  C2D_ASSIGN_OR_RETURN(
      Reply r, session_.Call(kService, {.path = "/v2/zones?name=" + http::UrlEncode(zone)}));
  for (const json& z : r.body.value("zones", json::array())) {
    if (z.value("name", "") == zone) return std::optional<std::string>(z.value("id", ""));
  }
  return std::optional<std::string>();
}

absl::StatusOr<std::string> Designate::RequireZone(const std::string& zone) {
  C2D_ASSIGN_OR_RETURN(std::optional<std::string> id, ZoneId(zone));
  if (!id) return absl::NotFoundError(absl::StrCat("dns: no zone ", zone));
  return *id;
}

absl::Status Designate::EnsureZone(const std::string& zone) {
  if (!absl::EndsWith(zone, ".")) {
    return absl::InvalidArgumentError(absl::StrCat("zone ", zone, " is not absolute"));
  }
  C2D_ASSIGN_OR_RETURN(std::optional<std::string> id, ZoneId(zone));
  if (!id) {
    const std::string email = absl::StrCat("hostmaster@", absl::StripSuffix(zone, "."));
    C2D_ASSIGN_OR_RETURN(
        Reply made,
        session_.Call(
            kService,
            {.method = "POST",
             .path = "/v2/zones",
             .body =
                 json{{"name", zone}, {"email", email}, {"ttl", 300}, {"description", "c2d"}}}));
    id = made.body.value("id", "");
  }
  // Designate makes a zone in the background.
  const absl::Time deadline = absl::Now() + zone_timeout_;
  for (;;) {
    C2D_ASSIGN_OR_RETURN(Reply r, session_.Call(kService, {.path = "/v2/zones/" + *id}));
    const std::string status = r.body.value("status", "");
    if (status == "ACTIVE") return absl::OkStatus();
    if (status == "ERROR") {
      return absl::FailedPreconditionError(absl::StrCat("dns: zone ", zone, " went to ERROR"));
    }
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "dns: zone ", zone, " still ", status, " after ", absl::FormatDuration(zone_timeout_)));
    }
    std::this_thread::sleep_for(absl::ToChronoMilliseconds(poll_));
  }
}

absl::StatusOr<std::vector<dns::RRset>> Designate::List(const std::string& zone) {
  C2D_ASSIGN_OR_RETURN(std::string id, RequireZone(zone));
  std::vector<dns::RRset> out;
  std::string path = absl::StrCat("/v2/zones/", id, "/recordsets?limit=500");
  for (int page = 0; page < kMaxPages && !path.empty(); ++page) {
    C2D_ASSIGN_OR_RETURN(Reply r, session_.Call(kService, {.path = path}));
    for (const json& rs : r.body.value("recordsets", json::array())) {
      dns::RRset set = ParseRecordset(rs);
      if (set.type != "SOA" && set.type != "NS") out.push_back(std::move(set));
    }
    const json next = r.body.value("/links/next"_json_pointer, json());
    path = next.is_string() ? next.get<std::string>() : "";
  }
  return out;
}

absl::StatusOr<std::optional<std::string>> Designate::RecordsetId(const std::string& zone_id,
                                                                  const std::string& name,
                                                                  const std::string& type) {
  C2D_ASSIGN_OR_RETURN(
      Reply r,
      session_.Call(kService, {.path = absl::StrCat("/v2/zones/", zone_id,
                                                    "/recordsets?name=", http::UrlEncode(name),
                                                    "&type=", http::UrlEncode(type))}));
  for (const json& rs : r.body.value("recordsets", json::array())) {
    // Filters are hints: only an exact match counts.
    if (rs.value("name", "") == name && rs.value("type", "") == type) {
      return std::optional<std::string>(rs.value("id", ""));
    }
  }
  return std::optional<std::string>();
}

absl::Status Designate::ApplyOne(const std::string& zone_id, const dns::RRset& change,
                                 const std::string& tag) {
  C2D_ASSIGN_OR_RETURN(std::optional<std::string> id,
                       RecordsetId(zone_id, change.name, change.type));
  const std::string base = absl::StrCat("/v2/zones/", zone_id, "/recordsets");
  if (change.records.empty()) {
    if (!id) return absl::OkStatus();
    auto r = session_.Call(kService, {.method = "DELETE", .path = base + "/" + *id});
    return r.ok() || absl::IsNotFound(r.status()) ? absl::OkStatus() : r.status();
  }
  json body = {{"records", change.records},
               {"ttl", change.ttl},
               {"description", absl::StrCat(kTagPrefix, tag)}};
  if (id)
    return session_.Call(kService, {.method = "PUT", .path = base + "/" + *id, .body = body})
        .status();
  body["name"] = change.name;
  body["type"] = change.type;
  return session_.Call(kService, {.method = "POST", .path = base, .body = body}).status();
}

absl::Status Designate::Apply(const std::string& zone, const std::vector<dns::RRset>& changes,
                              const std::string& tag) {
  C2D_ASSIGN_OR_RETURN(std::string id, RequireZone(zone));
  for (const dns::RRset& change : changes) {
    C2D_RETURN_IF_ERROR(ApplyOne(id, change, tag));
  }
  return absl::OkStatus();
}

}  // namespace c2d::cloud::openstack
