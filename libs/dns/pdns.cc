#include "libs/dns/pdns.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/http/client.h"

namespace c2d::dns {
namespace {

using nlohmann::json;

// PowerDNS answers errors as {"error": "..."}.
std::string ErrorText(const std::string& body) {
  auto j = json::parse(body, nullptr, false);
  if (j.is_object() && j.contains("error") && j["error"].is_string()) {
    return j["error"].get<std::string>();
  }
  return body.substr(0, 200);
}

// The account of the RRset comments that hold c2d's tag.
constexpr char kTagAccount[] = "c2d";

RRset FromJson(const json& set) {
  RRset out{set.value("name", ""), set.value("type", ""), set.value("ttl", 0), {}, ""};
  for (const json& r : set.value("records", json::array())) {
    if (!r.value("disabled", false)) out.records.push_back(r.value("content", ""));
  }
  for (const json& c : set.value("comments", json::array())) {
    if (c.value("account", "") == kTagAccount) out.tag = c.value("content", "");
  }
  return out;
}

json Change(const RRset& rrset, const std::string& tag) {
  if (rrset.records.empty()) {
    return {{"name", rrset.name}, {"type", rrset.type}, {"changetype", "DELETE"}};
  }
  json records = json::array();
  for (const std::string& content : rrset.records) {
    records.push_back({{"content", content}, {"disabled", false}});
  }
  json change = {{"name", rrset.name},
                 {"type", rrset.type},
                 {"ttl", rrset.ttl},
                 {"changetype", "REPLACE"},
                 {"records", records}};
  if (!tag.empty()) {
    change["comments"] = json::array({{{"content", tag}, {"account", kTagAccount}}});
  }
  return change;
}

absl::StatusOr<json> ZoneDocument(const std::string& body) {
  auto j = json::parse(body, nullptr, false);
  if (!j.is_object() || !j.contains("rrsets") || !j["rrsets"].is_array()) {
    return absl::UnavailableError("PowerDNS API: unexpected zone document");
  }
  return j;
}

}  // namespace

Pdns::Pdns(PdnsOptions options) : options_(std::move(options)) {}

absl::StatusOr<std::string> Pdns::Call(const std::string& method, const std::string& path,
                                       const std::string& body) {
  // Every call c2d makes is idempotent (a REPLACE or DELETE of an RRset, a
  // zone created unless it exists), so a transport error or a 5xx (such as
  // its database backend busy with a concurrent change) is tried again.
  absl::StatusOr<std::string> r;
  absl::Duration pause = absl::Milliseconds(50);
  for (int attempt = 1;; ++attempt) {
    r = CallOnce(method, path, body);
    if (r.ok() || !absl::IsUnavailable(r.status()) || attempt == 3) return r;
    absl::SleepFor(pause);
    pause *= 3;
  }
}

absl::StatusOr<std::string> Pdns::CallOnce(const std::string& method, const std::string& path,
                                           const std::string& body) {
  http::Request req{
      .method = method,
      .url = absl::StrCat(options_.api_url, "/api/v1/servers/", options_.server, path),
      .headers = {{"X-API-Key", options_.api_key}},
      .body = body,
      .timeout = options_.timeout,
      .connect_timeout = options_.timeout};
  if (!body.empty()) req.headers.emplace_back("Content-Type", "application/json");
  auto r = http::Send(req);
  if (!r.ok()) {
    return absl::UnavailableError(absl::StrCat("PowerDNS API: ", r.status().message()));
  }
  if (r->status >= 200 && r->status < 300) return std::move(r->body);
  std::string what = absl::StrCat("PowerDNS API ", method, " ", path, ": HTTP ", r->status, ": ",
                                  ErrorText(r->body));
  switch (r->status) {
    case 401:
    case 403:
      return absl::PermissionDeniedError(what);
    case 404:
      return absl::NotFoundError(what);
    case 409:
      return absl::AlreadyExistsError(what);
    case 400:
    case 422:
      return absl::InvalidArgumentError(what);
    default:
      return absl::UnavailableError(what);
  }
}

absl::Status Pdns::CheckZone(const std::string& zone) {
  return Call("GET", absl::StrCat("/zones/", zone, "?rrsets=false"), "").status();
}

absl::Status Pdns::EnsureZone(const std::string& zone) {
  if (CheckZone(zone).ok()) return absl::OkStatus();
  json body = {{"name", zone}, {"kind", "Native"}, {"nameservers", json::array()}};
  absl::Status s = Call("POST", "/zones", body.dump()).status();
  return absl::IsAlreadyExists(s) ? absl::OkStatus() : s;
}

absl::Status Pdns::Patch(const std::string& zone, const std::string& rrsets_json) {
  return Call("PATCH", absl::StrCat("/zones/", zone),
              absl::StrCat(R"({"rrsets":)", rrsets_json, "}"))
      .status();
}

absl::Status Pdns::Replace(const std::string& zone, const RRset& rrset) {
  return Patch(zone, json::array({Change(rrset, rrset.tag)}).dump());
}

absl::Status Pdns::Delete(const std::string& zone, const std::string& name,
                          const std::string& type) {
  return Patch(zone, json::array({Change(RRset{name, type, 0, {}, ""}, "")}).dump());
}

absl::Status Pdns::Apply(const std::string& zone, const std::vector<RRset>& changes,
                         const std::string& tag) {
  if (changes.empty()) return absl::OkStatus();
  json patch = json::array();
  for (const RRset& rrset : changes) patch.push_back(Change(rrset, tag));
  return Patch(zone, patch.dump());
}

absl::StatusOr<std::vector<RRset>> Pdns::List(const std::string& zone) {
  auto body = Call("GET", absl::StrCat("/zones/", zone), "");
  if (!body.ok()) return body.status();
  auto j = ZoneDocument(*body);
  if (!j.ok()) return j.status();
  std::vector<RRset> out;
  for (const json& set : (*j)["rrsets"]) {
    RRset rrset = FromJson(set);
    if (rrset.type == "SOA" || rrset.type == "NS" || rrset.records.empty()) continue;
    out.push_back(std::move(rrset));
  }
  return out;
}

absl::StatusOr<RRset> Pdns::Get(const std::string& zone, const std::string& name,
                                const std::string& type) {
  auto body = Call(
      "GET",
      absl::StrCat("/zones/", zone, "?rrset_name=", http::UrlEncode(name), "&rrset_type=", type),
      "");
  if (!body.ok()) return body.status();
  auto j = ZoneDocument(*body);
  if (!j.ok()) return j.status();
  // Older servers ignore the filter: pick the RRset out of the whole zone.
  for (const json& set : (*j)["rrsets"]) {
    if (set.value("name", "") != name || set.value("type", "") != type) continue;
    return FromJson(set);
  }
  return absl::NotFoundError(absl::StrCat("no ", type, " records for ", name));
}

}  // namespace c2d::dns
