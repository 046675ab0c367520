#pragma once

// The c2d CLI's commands, one function each: `c2d <command> …` runs
// Command(client, args, as_json) with args.positional[0] == "<command>".
// Each returns the process's exit code (0 done, 1 the operation failed) or
// dies (exit 2) with the API's message.

#include <string>

#include "tools/cli/client.h"

namespace c2d::cli {

// services.cc: projects, services, their releases, logs and env.
int Projects(Client& c, const Args& a, bool as_json);
int Services(Client& c, const Args& a, bool as_json);
int Deploy(Client& c, const Args& a, bool as_json);
int Logs(Client& c, const Args& a, bool as_json);
int Status(Client& c, const Args& a, bool as_json);
int Rollback(Client& c, const Args& a, bool as_json);
int Env(Client& c, const Args& a, bool as_json);
int Open(Client& c, const Args& a, bool as_json);
// databases.cc
int Db(Client& c, const Args& a, bool as_json);
// domains.cc
int Domains(Client& c, const Args& a, bool as_json);

// Follows a deployment's logs to the end; the exit code is the outcome.
int Follow(Client& c, const std::string& id, const std::string& service_id, bool as_json);

}  // namespace c2d::cli
