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
//
// main.cc: usage, login and the command table; client.h: arguments,
// configuration and the API client; commands.h: the commands.

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <string>

#include "tools/cli/client.h"
#include "tools/cli/commands.h"

namespace c2d::cli {
namespace {

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

// c2d login: checks the token against the API, then saves it (0600).
int Login(const Args& a) {
  const std::string token = a.Get("token");
  if (token.empty()) Die("login: --token is required (tools/c2d-up prints the first one)");
  setenv("C2D_TOKEN", token.c_str(), 1);
  if (a.Has("url")) setenv("C2D_URL", a.Get("url").c_str(), 1);
  Client c;
  c.Call("GET", "/v1/projects?page_size=1");
  std::filesystem::create_directories(ConfigPath().parent_path());
  {
    std::ofstream out(ConfigPath());
    out << json{{"url", c.url()}, {"token", token}}.dump(2) << "\n";
  }
  chmod(ConfigPath().c_str(), 0600);
  std::cout << "logged in to " << c.url() << " (saved in " << ConfigPath().string() << ")\n";
  return 0;
}

using Command = int (*)(Client&, const Args&, bool);
const std::map<std::string, Command>& Commands() {
  static const auto* commands = new std::map<std::string, Command>{
      {"projects", Projects}, {"services", Services}, {"deploy", Deploy}, {"logs", Logs},
      {"status", Status},     {"rollback", Rollback}, {"env", Env},       {"db", Db},
      {"domains", Domains},   {"open", Open}};
  return *commands;
}

}  // namespace
}  // namespace c2d::cli

int main(int argc, char** argv) {
  using namespace c2d::cli;
  Args a = Parse(argc, argv);
  if (a.Has("help") || a.Has("h") || (!a.positional.empty() && a.positional[0] == "help")) {
    return Usage(true);
  }
  if (a.positional.empty()) return Usage(false);
  const std::string& cmd = a.positional[0];
  if (cmd == "login") return Login(a);
  auto it = Commands().find(cmd);
  if (it == Commands().end()) Die("unknown command " + cmd + " (`c2d help` lists them)");
  Client c;
  return it->second(c, a, a.Has("json"));
}
