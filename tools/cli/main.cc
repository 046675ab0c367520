// c2d: the command-line client of c2d's REST API (`c2d help` prints this).
//
//   c2d login [--url URL] --token TOKEN       remember where c2d is and who you are
//   c2d projects [list] | projects create NAME
//   c2d services list --project P | services show S
//   c2d services create NAME --project P --repo URL [--branch B] [--port N]
//                       [--type web|worker] [--instances N] [--start CMD]
//   c2d deploy S [--commit SHA]               build and deploy; follows the logs
//   c2d logs S [-f] [--tail N]                the app's output
//   c2d status S                              release, instances, health
//   c2d rollback S [--to DEPLOYMENT]          the previous release (or DEPLOYMENT) again
//   c2d env list S [--reveal] | env set S KEY=VALUE… [--plain] | env unset S KEY…
//   c2d open S                                the service's URL
//   c2d db create P/NAME --engine postgres|mariadb|redis [--plan small|medium|large]
//     [--no-wait]
//   c2d db list P | db show D | db delete D [--no-final-backup]
//   c2d db link D S [--prefix P] | db unlink D S   (redeploys S)
//   c2d db backup D [--no-wait] | db backups D | db restore D --backup B [--into NAME]
//   c2d db rotate D [--no-wait]
//   c2d domains list S | domains add S HOSTNAME [--wait] | domains remove S HOSTNAME
//
// S is a service id (svc_…) or PROJECT/SERVICE, D a database id (db_…) or
// PROJECT/DATABASE. --json prints the API's JSON.
// Configuration: C2D_URL and C2D_TOKEN, else ~/.config/c2d/cli.json (written
// by `c2d login` and by tools/c2d-up). Exit codes: 0 success, 1 the operation
// failed (e.g. the deploy failed), 2 bad usage or an API error.

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "libs/http/client.h"
#include "nlohmann/json.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

[[noreturn]] void Die(const std::string& message, int code = 2) {
  std::fprintf(stderr, "c2d: %s\n", message.c_str());
  std::exit(code);
}

struct Args {
  std::vector<std::string> positional;
  std::map<std::string, std::string> options;  // --name value; flags map to "true"
  bool Has(const std::string& name) const { return options.count(name) > 0; }
  std::string Get(const std::string& name, const std::string& def = "") const {
    auto it = options.find(name);
    return it == options.end() ? def : it->second;
  }
};

Args Parse(int argc, char** argv) {
  static const std::vector<std::string> kFlags = {"json", "f", "follow",  "reveal",         "plain",
                                                  "help", "h", "no-wait", "no-final-backup"};
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (absl::StartsWith(arg, "-") && arg.size() > 1) {
      std::string name = arg.substr(arg.find_first_not_of('-'));
      if (size_t eq = name.find('='); eq != std::string::npos) {
        a.options[name.substr(0, eq)] = name.substr(eq + 1);
      } else if (std::find(kFlags.begin(), kFlags.end(), name) != kFlags.end()) {
        a.options[name] = "true";
      } else {
        if (i + 1 >= argc) Die("--" + name + " needs a value");
        a.options[name] = argv[++i];
      }
    } else {
      a.positional.push_back(arg);
    }
  }
  return a;
}

fs::path ConfigPath() {
  const char* xdg = std::getenv("XDG_CONFIG_HOME");
  const char* home = std::getenv("HOME");
  fs::path base = xdg && *xdg ? fs::path(xdg) : fs::path(home ? home : ".") / ".config";
  return base / "c2d" / "cli.json";
}

class Client {
 public:
  Client() {
    json file = json::object();
    if (std::ifstream in(ConfigPath()); in) file = json::parse(in, nullptr, false);
    if (!file.is_object()) file = json::object();
    const char* url = std::getenv("C2D_URL");
    const char* token = std::getenv("C2D_TOKEN");
    url_ = url && *url ? url : file.value("url", "http://127.0.0.1:8080");
    token_ = token && *token ? token : file.value("token", "");
    while (absl::EndsWith(url_, "/")) url_.pop_back();
  }
  const std::string& url() const { return url_; }

  // The API's JSON; exits with the API's error message on failure.
  json Call(const std::string& method, const std::string& path, const json& body = nullptr,
            int* status_out = nullptr) {
    if (token_.empty())
      Die("not logged in: run `c2d login --token <token>` (tools/c2d-up prints one)");
    c2d::http::Request req{.method = method,
                           .url = url_ + path,
                           .headers = {{"Authorization", "Bearer " + token_}},
                           .timeout = std::chrono::seconds(90)};
    if (!body.is_null()) {
      req.body = body.dump();
      req.headers.emplace_back("Content-Type", "application/json");
    }
    auto r = c2d::http::Send(req);
    if (!r.ok()) Die(absl::StrCat("cannot reach c2d at ", url_, ": ", r.status().message()));
    if (status_out != nullptr) *status_out = static_cast<int>(r->status);
    json j = r->body.empty() ? json(nullptr) : json::parse(r->body, nullptr, false);
    if (r->status >= 400) {
      std::string message = absl::StrCat("HTTP ", r->status);
      if (j.is_object() && j.contains("error")) message = j["error"].value("message", message);
      if (message.empty()) message = absl::StrCat("HTTP ", r->status);
      Die(message);
    }
    return j;
  }

  // Reads a Server-Sent Events stream; on_event(event, data) returns false to stop.
  void Stream(const std::string& path,
              const std::function<bool(const std::string&, const json&)>& on_event) {
    std::string event, data;
    c2d::http::LineSplitter lines([&](absl::string_view line) {
      if (line.empty()) {
        bool go_on = event.empty() || on_event(event, json::parse(data, nullptr, false));
        event.clear();
        data.clear();
        return go_on;
      }
      if (absl::StartsWith(line, "event: ")) event = std::string(line.substr(7));
      if (absl::StartsWith(line, "data: ")) data += std::string(line.substr(6));
      return true;
    });
    c2d::http::Request req{
        .url = url_ + path,
        .headers = {{"Authorization", "Bearer " + token_}, {"Accept", "text/event-stream"}},
        .timeout = std::chrono::milliseconds(0),
        .on_body = [&](absl::string_view chunk) { return lines.Feed(chunk); }};
    std::atomic<bool> never{false};
    req.cancel = &never;
    auto r = c2d::http::Send(req);
    if (!r.ok() && !absl::IsCancelled(r.status())) {
      Die(absl::StrCat("the log stream broke: ", r.status().message()));
    }
  }

 private:
  std::string url_, token_;
};

void Print(const json& j) { std::cout << j.dump(2) << "\n"; }

// A service id from "svc_…" or "project/service".
std::string ServiceId(Client& c, const std::string& ref) {
  if (absl::StartsWith(ref, "svc_")) return ref;
  size_t slash = ref.find('/');
  if (slash == std::string::npos) Die("name a service as PROJECT/SERVICE or by its svc_ id");
  const std::string project = ref.substr(0, slash), service = ref.substr(slash + 1);
  // (Named results: a range-for over a member of a temporary would dangle.)
  const json projects = c.Call("GET", "/v1/projects?page_size=200");
  for (const json& p : projects["projects"]) {
    if (p["name"] != project) continue;
    const json services = c.Call("GET", absl::StrCat("/v1/projects/", p["id"].get<std::string>(),
                                                     "/services?page_size=200"));
    for (const json& s : services["services"]) {
      if (s["name"] == service) return s["id"];
    }
    Die(absl::StrCat("project ", project, " has no service named ", service));
  }
  Die(absl::StrCat("no project named ", project));
}

std::string ProjectId(Client& c, const std::string& ref) {
  if (absl::StartsWith(ref, "prj_")) return ref;
  const json projects = c.Call("GET", "/v1/projects?page_size=200");
  for (const json& p : projects["projects"]) {
    if (p["name"] == ref) return p["id"];
  }
  Die("no project named " + ref);
}

std::string Str(const json& j) {
  return j.is_string() ? j.get<std::string>() : j.is_null() ? "-" : j.dump();
}

// Follows a deployment's logs to the end; the exit code is the outcome.
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

constexpr const char* kUsage = R"(usage: c2d <command> [arguments] [--json]

  login [--url URL] --token TOKEN   remember where c2d is and who you are
  projects [list]                   your projects and your role in each
  projects create NAME              a new project (you are its owner)
  services list --project P         a project's services and their URLs
  services show S                   one service's settings
  services create NAME --project P --repo URL [--branch B] [--port N]
                  [--type web|worker] [--instances N] [--start CMD]
  deploy S [--commit SHA]           build the branch head (or SHA) and deploy
                                    it, following the logs; exit 0 when live
  logs S [-f] [--tail N]            the app's output (-f: keep following)
  status S                          URL, recent releases, instances
  rollback S [--to DEPLOYMENT]      the previous release (or DEPLOYMENT) again
  env list S [--reveal]             env vars (secrets masked unless --reveal)
  env set S KEY=VALUE... [--plain]  set vars (secret unless --plain); deploy to apply
  env unset S KEY...                remove vars; deploy to apply
  open S                            print the service's URL
  db create P/NAME --engine postgres|mariadb|redis [--plan small|medium|large]
                    [--no-wait]     a managed database; waits until it is
                                    available unless --no-wait
  db list P                         a project's databases
  db show D                         one database: state, host, links
  db link D S [--prefix DATABASE]   give S the database's variables (DATABASE_URL,
                                    MYSQL_URL or REDIS_URL, …); redeploys S if it
                                    runs, following the logs
  db unlink D S                     take them away again (redeploys S)
  db delete D [--no-final-backup]   destroy the database and its data (unlink
                                    first), after a final verified backup that
                                    is kept (restore it with --into)
  db backup D [--no-wait]           back it up now; waits until the backup is
                                    restore-verified (or failed)
  db backups D                      its backups: state, size, sha256, verified
  db rotate D [--no-wait]           new credentials: linked services redeployed
                                    onto the idle login role, then the old one
                                    disabled; waits until done
  db restore D --backup B [--into NAME]
                                    load backup B into D (its apps see errors
                                    meanwhile), or into a new database NAME
  domains list S                    the service's hostnames: state, the DNS
                                    record a custom one needs, why it waits
  domains add S HOSTNAME [--wait]   serve S at your own HOSTNAME too: prints the
                                    DNS record to create; --wait waits (up to
                                    30 min) until it is active over HTTPS
  domains remove S HOSTNAME         stop serving HOSTNAME (S may be omitted
                                    when giving a dom_ id)
  help                              this text

S is PROJECT/SERVICE or a service id (svc_...), D PROJECT/DATABASE or a
database id (db_...). --json prints the API's JSON.
Configuration: C2D_URL and C2D_TOKEN, else the file `c2d login` writes
(~/.config/c2d/cli.json). Exit codes: 0 done, 1 the deploy or rollback
failed, 2 bad usage or an error from the API (its message on stderr).
)";

int Usage(bool asked) {
  std::fputs(kUsage, asked ? stdout : stderr);
  return asked ? 0 : 2;
}

// A database id from "db_…" or "project/database".
std::string DatabaseId(Client& c, const std::string& ref) {
  if (absl::StartsWith(ref, "db_")) return ref;
  size_t slash = ref.find('/');
  if (slash == std::string::npos) Die("name a database as PROJECT/DATABASE or by its db_ id");
  const std::string project = ProjectId(c, ref.substr(0, slash)), name = ref.substr(slash + 1);
  const json list =
      c.Call("GET", absl::StrCat("/v1/projects/", project, "/databases?page_size=200"));
  for (const json& d : list["databases"]) {
    if (d["name"] == name) return d["id"];
  }
  Die(absl::StrCat("project ", ref.substr(0, slash), " has no database named ", name));
}

void PrintDatabase(const json& d) {
  std::printf("%s (%s %s, plan %s, %s)  %s\n", Str(d["name"]).c_str(), Str(d["engine"]).c_str(),
              Str(d["version"]).c_str(), Str(d["plan"]).c_str(), Str(d["id"]).c_str(),
              Str(d["state"]).c_str());
  if (!d["failure_reason"].is_null())
    std::printf("  %s %s\n", d["state"] == "failed" ? "failed   " : "problem  ",
                Str(d["failure_reason"]).c_str());
  if (!d["host"].is_null())
    std::printf("  host      %s:%s\n", Str(d["host"]).c_str(), Str(d["port"]).c_str());
  std::printf("  backups   %s\n", d["backup_schedule"] == ""
                                      ? "none scheduled"
                                      : ("cron " + Str(d["backup_schedule"]) + " (UTC)").c_str());
}

// Waits until database `id` is no longer provisioning (at most 5 min).
// The database once it has left `state`, polled each second for `minutes`.
json WaitDatabase(Client& c, const std::string& id, const char* state, int minutes) {
  for (int i = 0; i < minutes * 60; ++i) {
    json d = c.Call("GET", "/v1/databases/" + id);
    if (d["state"] != state) return d;
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  Die(absl::StrCat("the database is still ", state, " after ", minutes,
                   " minutes; see `c2d db show`"),
      1);
}

// c2d db rotate D: started, then waited for unless --no-wait.
int DbRotate(Client& c, const Args& a, const std::string& id, bool as_json) {
  json d = c.Call("POST", absl::StrCat("/v1/databases/", id, "/rotate-credentials"));
  if (!as_json) std::cout << "rotating " << Str(d["name"]) << ": " << Str(d["note"]) << "\n";
  if (!a.Has("no-wait")) d = WaitDatabase(c, id, "rotating", 30);
  if (as_json) return Print(d), 0;
  if (a.Has("no-wait")) return 0;
  if (!d["failure_reason"].is_null()) {
    std::cerr << Str(d["failure_reason"]) << "\n";
    return 1;
  }
  std::cout << "rotated: links now use login role " << Str(d["active_role"])
            << "; the other one is disabled\n";
  return 0;
}

// c2d db create PROJECT/NAME: made, then waited for unless --no-wait.
int DbCreate(Client& c, const Args& a, const std::string& ref, bool as_json) {
  const size_t slash = ref.find('/');
  if (slash == std::string::npos) Die("db create: name it PROJECT/NAME");
  if (!a.Has("engine")) Die("db create: --engine is required (postgres)");
  json body = {{"name", ref.substr(slash + 1)}, {"engine", a.Get("engine")}};
  if (a.Has("plan")) body["plan"] = a.Get("plan");
  json d =
      c.Call("POST",
             absl::StrCat("/v1/projects/", ProjectId(c, ref.substr(0, slash)), "/databases"), body);
  if (!as_json) std::cout << "provisioning " << Str(d["name"]) << " (" << Str(d["id"]) << ") …\n";
  if (!a.Has("no-wait")) d = WaitDatabase(c, d["id"], "provisioning", 5);
  if (as_json) return Print(d), 0;
  PrintDatabase(d);
  return d["state"] == "failed" ? 1 : 0;
}

void PrintBackup(const json& b) {
  std::printf("%-32s %-10s %-9s %10s  %s  %s\n", Str(b["id"]).c_str(), Str(b["state"]).c_str(),
              Str(b["kind"]).c_str(), Str(b["size_bytes"]).c_str(), Str(b["sha256"]).c_str(),
              b["verified"] == true ? ("verified: " + Str(b["verification"])).c_str()
                                    : Str(b["failure_reason"]).c_str());
}

// c2d db backup|backups|restore D …
int DbBackups(Client& c, const Args& a, const std::string& sub, const std::string& id,
              bool as_json) {
  if (sub == "backups") {
    json list = c.Call("GET", absl::StrCat("/v1/databases/", id, "/backups?page_size=200"));
    if (as_json) return Print(list), 0;
    for (const json& b : list["backups"]) PrintBackup(b);
    return 0;
  }
  if (sub == "restore") {
    if (!a.Has("backup")) Die("db restore: --backup is required (see c2d db backups)");
    json body = json::object();
    if (a.Has("into")) {
      body["new_database_name"] = a.Get("into");
    } else if (c.Call("GET", "/v1/backups/" + a.Get("backup"))["database_id"] != id) {
      Die("db restore: that backup is another database's; restore it --into a new database");
    }
    json d = c.Call("POST", absl::StrCat("/v1/backups/", a.Get("backup"), "/restore"), body);
    if (!as_json) std::cout << Str(d["note"]) << std::endl;
    for (int i = 0; i < 3600 && d["state"] != "available" && d["state"] != "failed"; ++i) {
      std::this_thread::sleep_for(std::chrono::seconds(1));
      d = c.Call("GET", "/v1/databases/" + d["id"].get<std::string>());
    }
    if (as_json) return Print(d), 0;
    PrintDatabase(d);
    return d["state"] == "available" ? 0 : 1;
  }
  json b = c.Call("POST", absl::StrCat("/v1/databases/", id, "/backups"), json::object());
  if (!as_json) std::cout << "backing up as " << Str(b["id"]) << " …" << std::endl;
  for (int i = 0; !a.Has("no-wait") && i < 3600; ++i) {
    if (b["state"] == "succeeded" || b["state"] == "failed") break;
    std::this_thread::sleep_for(std::chrono::seconds(1));
    b = c.Call("GET", "/v1/backups/" + b["id"].get<std::string>());
  }
  if (as_json) return Print(b), 0;
  PrintBackup(b);
  return b["state"] == "failed" ? 1 : 0;
}

int DbCommand(Client& c, const Args& a, bool as_json) {
  auto arg = [&](size_t i, const char* what) -> std::string {
    if (a.positional.size() <= i) Die(absl::StrCat("db: missing ", what));
    return a.positional[i];
  };
  const std::string sub = arg(1, "create|list|show|link|unlink|delete");
  if (sub == "create") return DbCreate(c, a, arg(2, "PROJECT/NAME"), as_json);
  if (sub == "list") {
    json list = c.Call("GET", absl::StrCat("/v1/projects/", ProjectId(c, arg(2, "PROJECT")),
                                           "/databases?page_size=200"));
    if (as_json) return Print(list), 0;
    for (const json& d : list["databases"]) {
      std::printf("%-24s %-9s %-14s %-32s\n", Str(d["name"]).c_str(), Str(d["engine"]).c_str(),
                  Str(d["state"]).c_str(), Str(d["id"]).c_str());
    }
    return 0;
  }
  const std::string id = DatabaseId(c, arg(2, "DATABASE"));
  if (sub == "show") {
    json d = c.Call("GET", "/v1/databases/" + id);
    json links = c.Call("GET", absl::StrCat("/v1/databases/", id, "/links"));
    if (as_json) return Print({{"database", d}, {"links", links["links"]}}), 0;
    PrintDatabase(d);
    for (const json& l : links["links"]) {
      std::printf("  linked    %s (%s_URL, …)\n", Str(l["service_id"]).c_str(),
                  Str(l["env_prefix"]).c_str());
    }
    return 0;
  }
  if (sub == "link" || sub == "unlink") {
    const std::string service = ServiceId(c, arg(3, "SERVICE"));
    json r;
    if (sub == "link") {
      json body = {{"service_id", service}};
      if (a.Has("prefix")) body["env_prefix"] = a.Get("prefix");
      r = c.Call("POST", absl::StrCat("/v1/databases/", id, "/links"), body);
    } else {
      r = c.Call("DELETE", absl::StrCat("/v1/databases/", id, "/links/", service));
    }
    if (!as_json) std::cout << Str(r["note"]) << "\n";
    if (r["deployment_id"].is_string()) return Follow(c, r["deployment_id"], service, as_json);
    if (as_json) Print(r);
    return 0;
  }
  if (sub == "delete") {
    json d = c.Call("DELETE", absl::StrCat("/v1/databases/", id,
                                           a.Has("no-final-backup") ? "?final_backup=false" : ""));
    if (as_json) return Print(d), 0;
    std::cout << "deleting " << Str(d["name"]) << ": " << Str(d["note"]) << "\n";
    return 0;
  }
  if (sub == "backup" || sub == "backups" || sub == "restore")
    return DbBackups(c, a, sub, id, as_json);
  if (sub == "rotate") return DbRotate(c, a, id, as_json);
  Die("db: unknown subcommand " + sub +
      " (create, list, show, link, unlink, delete, backup, backups, restore or rotate)");
}

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

// c2d domains list|add|remove …
int DomainsCommand(Client& c, const Args& a, bool as_json) {
  auto arg = [&](size_t i, const char* what) -> std::string {
    if (a.positional.size() <= i) Die(absl::StrCat("domains: missing ", what));
    return a.positional[i];
  };
  const std::string sub = arg(1, "list|add|remove");
  if (sub == "remove" && a.positional.size() == 3 && absl::StartsWith(a.positional[2], "dom_")) {
    json r = c.Call("DELETE", "/v1/domains/" + a.positional[2]);
    if (as_json) return Print(r), 0;
    return std::cout << "removed " << Str(r["hostname"]) << "; " << Str(r["note"]) << "\n", 0;
  }
  const std::string service = ServiceId(c, arg(2, "SERVICE"));
  if (sub == "list") {
    json list = c.Call("GET", absl::StrCat("/v1/services/", service, "/domains?page_size=200"));
    if (as_json) return Print(list), 0;
    for (const json& d : list["domains"]) PrintDomain(d);
    return 0;
  }
  if (sub == "remove") {
    json r = c.Call("DELETE", "/v1/domains/" + DomainId(c, service, arg(3, "HOSTNAME")));
    if (as_json) return Print(r), 0;
    return std::cout << "removed " << Str(r["hostname"]) << "; " << Str(r["note"]) << "\n", 0;
  }
  if (sub != "add") Die("domains: unknown subcommand " + sub + " (list, add or remove)");
  json d = c.Call("POST", absl::StrCat("/v1/services/", service, "/domains"),
                  {{"hostname", arg(3, "HOSTNAME")}});
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

// A whole number from an option, or a clear error.
int IntOption(const Args& a, const std::string& name) {
  int n = 0;
  if (!absl::SimpleAtoi(a.Get(name), &n)) Die("--" + name + " must be a whole number");
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  Args a = Parse(argc, argv);
  if (a.Has("help") || a.Has("h") || (!a.positional.empty() && a.positional[0] == "help")) {
    return Usage(true);
  }
  if (a.positional.empty()) return Usage(false);
  const std::string cmd = a.positional[0];
  const bool as_json = a.Has("json");
  auto arg = [&](size_t i, const char* what) -> std::string {
    if (a.positional.size() <= i) Die(absl::StrCat(cmd, ": missing ", what));
    return a.positional[i];
  };

  if (cmd == "login") {
    const std::string token = a.Get("token");
    if (token.empty()) Die("login: --token is required (tools/c2d-up prints the first one)");
    setenv("C2D_TOKEN", token.c_str(), 1);
    if (a.Has("url")) setenv("C2D_URL", a.Get("url").c_str(), 1);
    Client c;
    c.Call("GET", "/v1/projects?page_size=1");
    fs::create_directories(ConfigPath().parent_path());
    {
      std::ofstream out(ConfigPath());
      out << json{{"url", c.url()}, {"token", token}}.dump(2) << "\n";
    }
    chmod(ConfigPath().c_str(), 0600);
    std::cout << "logged in to " << c.url() << " (saved in " << ConfigPath().string() << ")\n";
    return 0;
  }
  Client c;
  if (cmd == "projects") {
    const std::string sub = a.positional.size() > 1 ? a.positional[1] : "list";
    if (sub != "list" && sub != "create") {
      Die("projects: unknown subcommand " + sub + " (list or create)");
    }
    if (sub == "create") {
      json p = c.Call("POST", "/v1/projects", {{"name", arg(2, "NAME")}});
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
  if (cmd == "services") {
    const std::string sub = a.positional.size() > 1 ? a.positional[1] : "list";
    if (sub == "create") {
      json body = {{"name", arg(2, "NAME")},
                   {"type", a.Get("type", "web")},
                   {"source", {{"repo_url", a.Get("repo")}, {"branch", a.Get("branch", "main")}}}};
      if (a.Has("port")) body["run"]["port"] = IntOption(a, "port");
      if (a.Has("instances")) body["run"]["instance_count"] = IntOption(a, "instances");
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
      const json s = c.Call("GET", "/v1/services/" + ServiceId(c, arg(2, "SERVICE")));
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
        std::printf("  health    GET %s every %ss (timeout %ss, grace %ss)\n",
                    Str(h["path"]).c_str(), Str(h["interval_s"]).c_str(),
                    Str(h["timeout_s"]).c_str(), Str(h["start_period_s"]).c_str());
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
  if (cmd == "deploy") {
    const std::string id = ServiceId(c, arg(1, "SERVICE"));
    json body = json::object();
    if (a.Has("commit")) body["commit"] = a.Get("commit");
    json d = c.Call("POST", absl::StrCat("/v1/services/", id, "/deployments"), body);
    if (!as_json) std::cout << "deploying " << Str(d["id"]) << " …" << std::endl;
    return Follow(c, d["id"], id, as_json);
  }
  if (cmd == "logs") {
    const std::string id = ServiceId(c, arg(1, "SERVICE"));
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
  if (cmd == "status") {
    const std::string id = ServiceId(c, arg(1, "SERVICE"));
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
      std::printf("  %-32s %-10s %-22s restarts %s\n", Str(i["id"]).c_str(),
                  Str(i["state"]).c_str(), Str(i["address"]).c_str(), Str(i["restarts"]).c_str());
    }
    return 0;
  }
  if (cmd == "rollback") {
    const std::string id = ServiceId(c, arg(1, "SERVICE"));
    // The server picks the release before the live one unless --to names one.
    json body = json::object();
    if (a.Has("to")) body["to"] = a.Get("to");
    json d = c.Call("POST", absl::StrCat("/v1/services/", id, "/rollback"), body);
    const std::string to = Str(d["deployment"]["rollback_of"]);
    if (!as_json)
      std::cout << "rolling back to " << to << " as " << Str(d["id"]) << " …" << std::endl;
    return Follow(c, d["id"], id, as_json);
  }
  if (cmd == "env") {
    const std::string sub = arg(1, "list|set|unset");
    if (sub != "list" && sub != "set" && sub != "unset") {
      Die("env: unknown subcommand " + sub + " (list, set or unset)");
    }
    const std::string id = ServiceId(c, arg(2, "SERVICE"));
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
      if (!as_json)
        std::cout << "updated; deploy to apply (c2d deploy " << a.positional[2] << ")\n";
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
  if (cmd == "db") return DbCommand(c, a, as_json);
  if (cmd == "domains") return DomainsCommand(c, a, as_json);
  if (cmd == "open") {
    json s = c.Call("GET", "/v1/services/" + ServiceId(c, arg(1, "SERVICE")));
    std::cout << Str(s["url"]) << "\n";
    return 0;
  }
  Die("unknown command " + cmd + " (`c2d help` lists them)");
}
