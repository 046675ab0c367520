#pragma once

// The c2d CLI's plumbing: its arguments, its configuration, and its client
// of the REST API (errors end the process with the API's message, exit 2).

#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"

namespace c2d::cli {

using nlohmann::json;

// Prints "c2d: <message>" on stderr and exits with `code`.
[[noreturn]] void Die(const std::string& message, int code = 2);

struct Args {
  std::vector<std::string> positional;         // [0] is the command
  std::map<std::string, std::string> options;  // --name value; flags map to "true"
  bool Has(const std::string& name) const { return options.count(name) > 0; }
  std::string Get(const std::string& name, const std::string& def = "") const {
    auto it = options.find(name);
    return it == options.end() ? def : it->second;
  }
  // Positional argument `i`; dies with "<command>: missing <what>" when absent.
  const std::string& At(size_t i, const char* what) const;
  // Option --name as a whole number; dies otherwise.
  int Int(const std::string& name) const;
};
Args Parse(int argc, char** argv);

// ~/.config/c2d/cli.json (or under XDG_CONFIG_HOME).
std::filesystem::path ConfigPath();

class Client {
 public:
  // From C2D_URL and C2D_TOKEN, else the file `c2d login` writes.
  Client();
  const std::string& url() const { return url_; }

  // The API's JSON; exits with the API's error message on failure.
  json Call(const std::string& method, const std::string& path, const json& body = nullptr,
            int* status_out = nullptr);
  // Reads a Server-Sent Events stream; on_event(event, data) returns false to stop.
  void Stream(const std::string& path,
              const std::function<bool(const std::string&, const json&)>& on_event);

 private:
  std::string url_, token_;
};

void Print(const json& j);
// A JSON value as text: strings bare, null as "-".
std::string Str(const json& j);
// A service id from "svc_…" or "project/service".
std::string ServiceId(Client& c, const std::string& ref);
// A project id from "prj_…" or its name.
std::string ProjectId(Client& c, const std::string& ref);

}  // namespace c2d::cli
