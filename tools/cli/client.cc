#include "tools/cli/client.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "libs/http/client.h"

namespace c2d::cli {

namespace fs = std::filesystem;

[[noreturn]] void Die(const std::string& message, int code) {
  std::fprintf(stderr, "c2d: %s\n", message.c_str());
  std::exit(code);
}

const std::string& Args::At(size_t i, const char* what) const {
  if (positional.size() <= i)
    Die(absl::StrCat(positional.empty() ? "c2d" : positional[0], ": missing ", what));
  return positional[i];
}

int Args::Int(const std::string& name) const {
  int n = 0;
  if (!absl::SimpleAtoi(Get(name), &n)) Die("--" + name + " must be a whole number");
  return n;
}

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

Client::Client() {
  json file = json::object();
  if (std::ifstream in(ConfigPath()); in) file = json::parse(in, nullptr, false);
  if (!file.is_object()) file = json::object();
  const char* url = std::getenv("C2D_URL");
  const char* token = std::getenv("C2D_TOKEN");
  url_ = url && *url ? url : file.value("url", "http://127.0.0.1:8080");
  token_ = token && *token ? token : file.value("token", "");
  while (absl::EndsWith(url_, "/")) url_.pop_back();
}

json Client::Call(const std::string& method, const std::string& path, const json& body,
                  int* status_out) {
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

void Client::Stream(const std::string& path,
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

void Print(const json& j) { std::cout << j.dump(2) << "\n"; }

std::string Str(const json& j) {
  return j.is_string() ? j.get<std::string>() : j.is_null() ? "-" : j.dump();
}

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

}  // namespace c2d::cli
