// c2d domains …: a service's hostnames and custom domains.

#include <cstdio>
#include <iostream>
#include <string>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "tools/cli/client.h"
#include "tools/cli/commands.h"

namespace c2d::cli {
namespace {

void PrintDomain(const json& d) {
  std::printf("%-40s %-16s %s\n", Str(d["hostname"]).c_str(), Str(d["state"]).c_str(),
              Str(d["id"]).c_str());
  if (d["state"] == "pending_dns" && d["dns_record"].is_object()) {
    std::printf("  create    %s %s -> %s\n", Str(d["dns_record"]["type"]).c_str(),
                Str(d["dns_record"]["name"]).c_str(), Str(d["dns_record"]["value"]).c_str());
  }
  if (!d["error"].is_null()) std::printf("  why       %s\n", Str(d["error"]).c_str());
}

// The domain of service `service` named by hostname, or a dom_ id as is.
std::string DomainId(Client& c, const std::string& service, const std::string& ref) {
  if (absl::StartsWith(ref, "dom_")) return ref;
  const json list = c.Call("GET", absl::StrCat("/v1/services/", service, "/domains?page_size=200"));
  for (const json& d : list["domains"]) {
    if (d["hostname"] == absl::AsciiStrToLower(absl::StripSuffix(ref, "."))) return d["id"];
  }
  Die(absl::StrCat("the service has no domain ", ref, " (c2d domains list shows them)"));
}

}  // namespace

// c2d domains list|add|remove …
int Domains(Client& c, const Args& a, bool as_json) {
  const std::string sub = a.At(1, "list|add|remove");
  if (sub == "remove" && a.positional.size() == 3 && absl::StartsWith(a.positional[2], "dom_")) {
    json r = c.Call("DELETE", "/v1/domains/" + a.positional[2]);
    if (as_json) return Print(r), 0;
    return std::cout << "removed " << Str(r["hostname"]) << "; " << Str(r["note"]) << "\n", 0;
  }
  const std::string service = ServiceId(c, a.At(2, "SERVICE"));
  if (sub == "list") {
    json list = c.Call("GET", absl::StrCat("/v1/services/", service, "/domains?page_size=200"));
    if (as_json) return Print(list), 0;
    for (const json& d : list["domains"]) PrintDomain(d);
    return 0;
  }
  if (sub == "remove") {
    json r = c.Call("DELETE", "/v1/domains/" + DomainId(c, service, a.At(3, "HOSTNAME")));
    if (as_json) return Print(r), 0;
    return std::cout << "removed " << Str(r["hostname"]) << "; " << Str(r["note"]) << "\n", 0;
  }
  if (sub != "add") Die("domains: unknown subcommand " + sub + " (list, add or remove)");
  json d = c.Call("POST", absl::StrCat("/v1/services/", service, "/domains"),
                  {{"hostname", a.At(3, "HOSTNAME")}});
  if (!as_json) {
    std::cout << "added " << Str(d["hostname"]) << ". At your DNS provider, create:\n\n  "
              << Str(d["dns_record"]["name"]) << ".  " << Str(d["dns_record"]["type"]) << "  "
              << Str(d["dns_record"]["value"]) << (d["dns_record"]["type"] == "CNAME" ? "." : "")
              << "\n\nc2d checks for it, then issues a certificate (c2d domains list "
              << a.positional[2] << " shows how far it is)." << std::endl;
  }
  for (int i = 0; a.Has("wait") && i < 1800 && d["state"] != "active" && d["state"] != "failed";
       ++i) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    d = c.Call("GET", "/v1/domains/" + d["id"].get<std::string>());
  }
  if (as_json) return Print(d), 0;
  if (a.Has("wait")) PrintDomain(d);
  return a.Has("wait") && d["state"] != "active" ? 1 : 0;
}

}  // namespace c2d::cli
