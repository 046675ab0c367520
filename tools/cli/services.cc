// c2d's commands on projects and services: their settings, releases, logs
// and env.

#include <cstdio>
#include <iostream>
#include <string>

#include "absl/strings/str_cat.h"
#include "tools/cli/client.h"
#include "tools/cli/commands.h"

namespace c2d::cli {

int Follow(Client& c, const std::string& id, const std::string& service_id, bool as_json) {
  std::string state;
  c.Stream(absl::StrCat("/v1/deployments/", id, "/logs"),
           [&](const std::string& event, const json& d) {
             if (as_json) {
               std::cout << json{{"event", event}, {"data", d}}.dump() << std::endl;
             } else if (event == "build") {
               std::cout << Str(d["text"]) << std::endl;
             } else if (event == "deploy") {
               std::cout << "--> " << Str(d["kind"]) << ": " << Str(d["message"]) << std::endl;
             }
             if (event == "end") {
               state = d.value("state", "");
               return false;
             }
             return true;
           });
  if (state == "live") {
    if (!as_json) {
      const json s = c.Call("GET", "/v1/services/" + service_id);
      std::cout << "deployed: the release is live at " << Str(s["url"]) << std::endl;
    }
    return 0;
  }
  if (!as_json)
    std::cerr << "c2d: the deploy ended " << (state.empty() ? "unexpectedly" : state) << "\n";
  return 1;
}

int Projects(Client& c, const Args& a, bool as_json) {
  const std::string sub = a.positional.size() > 1 ? a.positional[1] : "list";
  if (sub != "list" && sub != "create") {
    Die("projects: unknown subcommand " + sub + " (list or create)");
  }
  if (sub == "create") {
    json p = c.Call("POST", "/v1/projects", {{"name", a.At(2, "NAME")}});
    if (as_json)
      Print(p);
    else
      std::cout << "created project " << Str(p["name"]) << " (" << Str(p["id"]) << ")\n";
    return 0;
  }
  json list = c.Call("GET", "/v1/projects?page_size=200");
  if (as_json) return Print(list), 0;
  for (const json& p : list["projects"]) {
    std::printf("%-30s %-32s %s\n", Str(p["name"]).c_str(), Str(p["id"]).c_str(),
                Str(p["role"]).c_str());
  }
  return 0;
}

int Services(Client& c, const Args& a, bool as_json) {
  const std::string sub = a.positional.size() > 1 ? a.positional[1] : "list";
  if (sub == "create") {
    json body = {{"name", a.At(2, "NAME")},
                 {"type", a.Get("type", "web")},
                 {"source", {{"repo_url", a.Get("repo")}, {"branch", a.Get("branch", "main")}}}};
    if (a.Has("port")) body["run"]["port"] = a.Int("port");
    if (a.Has("instances")) body["run"]["instance_count"] = a.Int("instances");
    if (a.Has("start")) body["run"]["start_command"] = a.Get("start");
    if (!a.Has("project")) Die("services create: --project is required");
    json s = c.Call(
        "POST", absl::StrCat("/v1/projects/", ProjectId(c, a.Get("project")), "/services"), body);
    if (as_json)
      Print(s);
    else
      std::cout << "created service " << Str(s["name"]) << " (" << Str(s["id"]) << ")\n";
    return 0;
  }
  if (sub == "show") {
    const json s = c.Call("GET", "/v1/services/" + ServiceId(c, a.At(2, "SERVICE")));
    if (as_json) return Print(s), 0;
    const json& run = s["run"];
    std::printf("%s (%s, %s)  revision %s\n", Str(s["name"]).c_str(), Str(s["type"]).c_str(),
                Str(s["id"]).c_str(), Str(s["revision"]).c_str());
    if (s.contains("url")) std::printf("  url       %s\n", Str(s["url"]).c_str());
    std::printf("  source    %s @ %s%s\n", Str(s["source"]["repo_url"]).c_str(),
                Str(s["source"]["branch"]).c_str(),
                s.value("auto_deploy", false) ? " (deploys on push)" : "");
    std::printf("  build     %s\n", Str(s["build"]["strategy"]).c_str());
    const std::string start = run.value("start_command", "");
    std::printf("  run       %s instance(s), port %s, %s MB, %s millicores%s\n",
                Str(run["instance_count"]).c_str(), Str(run["port"]).c_str(),
                Str(run["memory_mb"]).c_str(), Str(run["cpu_millis"]).c_str(),
                start.empty() ? "" : (", start: " + start).c_str());
    if (s.contains("health_check")) {
      const json& h = s["health_check"];
      std::printf("  health    GET %s every %ss (timeout %ss, grace %ss)\n", Str(h["path"]).c_str(),
                  Str(h["interval_s"]).c_str(), Str(h["timeout_s"]).c_str(),
                  Str(h["start_period_s"]).c_str());
    }
    return 0;
  }
  if (sub != "list") Die("services: unknown subcommand " + sub + " (list, show or create)");
  if (!a.Has("project")) Die("services list: --project is required");
  json list =
      c.Call("GET", absl::StrCat("/v1/projects/", ProjectId(c, a.Get("project")), "/services"));
  if (as_json) return Print(list), 0;
  for (const json& s : list["services"]) {
    // A preview environment says whose and which pull request.
    std::string preview;
    if (s["preview"].is_object()) {
      preview = absl::StrCat("  (preview of ", Str(s["preview"]["of"]), ", pull request #",
                             Str(s["preview"]["pull_request"]), ")");
    }
    std::printf("%-24s %-8s %-32s %s%s\n", Str(s["name"]).c_str(), Str(s["type"]).c_str(),
                Str(s["id"]).c_str(), Str(s["url"]).c_str(), preview.c_str());
  }
  return 0;
}

int Deploy(Client& c, const Args& a, bool as_json) {
  const std::string id = ServiceId(c, a.At(1, "SERVICE"));
  json body = json::object();
  if (a.Has("commit")) body["commit"] = a.Get("commit");
  json d = c.Call("POST", absl::StrCat("/v1/services/", id, "/deployments"), body);
  if (!as_json) std::cout << "deploying " << Str(d["id"]) << " …" << std::endl;
  return Follow(c, d["id"], id, as_json);
}

int Logs(Client& c, const Args& a, bool as_json) {
  const std::string id = ServiceId(c, a.At(1, "SERVICE"));
  const bool follow = a.Has("f") || a.Has("follow");
  c.Stream(absl::StrCat("/v1/services/", id, "/logs?follow=", follow ? "true" : "false",
                        "&tail=", a.Get("tail", "100")),
           [&](const std::string& event, const json& d) {
             if (event == "end") return false;
             if (as_json)
               std::cout << d.dump() << std::endl;
             else
               std::cout << Str(d["text"]) << std::endl;
             return true;
           });
  return 0;
}

int Status(Client& c, const Args& a, bool as_json) {
  const std::string id = ServiceId(c, a.At(1, "SERVICE"));
  json s = c.Call("GET", "/v1/services/" + id);
  json deployments = c.Call("GET", absl::StrCat("/v1/services/", id, "/deployments?page_size=5"));
  json instances = c.Call("GET", absl::StrCat("/v1/services/", id, "/instances"));
  if (as_json)
    return Print({{"service", s},
                  {"deployments", deployments["deployments"]},
                  {"instances", instances["instances"]}}),
           0;
  std::cout << Str(s["name"]) << "  " << Str(s["url"]) << "  (revision " << Str(s["revision"])
            << ")\n\nreleases:\n";
  for (const json& d : deployments["deployments"]) {
    std::printf("  %-32s %-12s %s %s\n", Str(d["id"]).c_str(), Str(d["state"]).c_str(),
                Str(d["created_at"]).c_str(),
                d["failure_reason"].is_null() ? "" : Str(d["failure_reason"]).c_str());
  }
  std::cout << "instances:\n";
  for (const json& i : instances["instances"]) {
    std::printf("  %-32s %-10s %-22s restarts %s\n", Str(i["id"]).c_str(), Str(i["state"]).c_str(),
                Str(i["address"]).c_str(), Str(i["restarts"]).c_str());
  }
  return 0;
}

int Rollback(Client& c, const Args& a, bool as_json) {
  const std::string id = ServiceId(c, a.At(1, "SERVICE"));
  // The server picks the release before the live one unless --to names one.
  json body = json::object();
  if (a.Has("to")) body["to"] = a.Get("to");
  json d = c.Call("POST", absl::StrCat("/v1/services/", id, "/rollback"), body);
  const std::string to = Str(d["deployment"]["rollback_of"]);
  if (!as_json)
    std::cout << "rolling back to " << to << " as " << Str(d["id"]) << " …" << std::endl;
  return Follow(c, d["id"], id, as_json);
}

int Env(Client& c, const Args& a, bool as_json) {
  const std::string sub = a.At(1, "list|set|unset");
  if (sub != "list" && sub != "set" && sub != "unset") {
    Die("env: unknown subcommand " + sub + " (list, set or unset)");
  }
  const std::string id = ServiceId(c, a.At(2, "SERVICE"));
  if (sub == "set" || sub == "unset") {
    json env = json::object();
    for (size_t i = 3; i < a.positional.size(); ++i) {
      const std::string& kv = a.positional[i];
      if (sub == "unset") {
        env[kv] = nullptr;
        continue;
      }
      size_t eq = kv.find('=');
      if (eq == std::string::npos) Die("env set: write KEY=VALUE, not " + kv);
      env[kv.substr(0, eq)] = {{"value", kv.substr(eq + 1)}, {"secret", !a.Has("plain")}};
    }
    if (env.empty()) Die("env " + sub + ": name at least one variable");
    c.Call("PATCH", absl::StrCat("/v1/services/", id, "/env"), {{"env", env}});
    if (!as_json) std::cout << "updated; deploy to apply (c2d deploy " << a.positional[2] << ")\n";
    return 0;
  }
  json list = c.Call(
      "GET", absl::StrCat("/v1/services/", id, "/env", a.Has("reveal") ? "?reveal=true" : ""));
  if (as_json) return Print(list), 0;
  for (const json& v : list["env"]) {
    std::cout << Str(v["key"]) << "="
              << (v["value"].is_null() ? "•••••• (secret)" : Str(v["value"])) << "\n";
  }
  return 0;
}

int Open(Client& c, const Args& a, bool /*as_json*/) {
  json s = c.Call("GET", "/v1/services/" + ServiceId(c, a.At(1, "SERVICE")));
  std::cout << Str(s["url"]) << "\n";
  return 0;
}

}  // namespace c2d::cli
