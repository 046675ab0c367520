// c2d db …: managed databases, their links and backups.

#include <cstdio>
#include <iostream>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tools/cli/client.h"
#include "tools/cli/commands.h"

namespace c2d::cli {
namespace {

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

}  // namespace

int Db(Client& c, const Args& a, bool as_json) {
  const std::string sub = a.At(1, "create|list|show|link|unlink|delete");
  if (sub == "create") return DbCreate(c, a, a.At(2, "PROJECT/NAME"), as_json);
  if (sub == "list") {
    json list = c.Call("GET", absl::StrCat("/v1/projects/", ProjectId(c, a.At(2, "PROJECT")),
                                           "/databases?page_size=200"));
    if (as_json) return Print(list), 0;
    for (const json& d : list["databases"]) {
      std::printf("%-24s %-9s %-14s %-32s\n", Str(d["name"]).c_str(), Str(d["engine"]).c_str(),
                  Str(d["state"]).c_str(), Str(d["id"]).c_str());
    }
    return 0;
  }
  const std::string id = DatabaseId(c, a.At(2, "DATABASE"));
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
    const std::string service = ServiceId(c, a.At(3, "SERVICE"));
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

}  // namespace c2d::cli
