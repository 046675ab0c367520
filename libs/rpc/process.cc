#include "libs/rpc/process.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "libs/common/env.h"
#include "libs/common/log.h"
#include "libs/common/status.h"
#include "libs/rpc/signals.h"
#include "migrations/embedded.h"
#include "nlohmann/json.hpp"

namespace c2d::rpc {
namespace {

using std::chrono::milliseconds;

struct DefaultPorts {
  int grpc;
  int metrics;
};

// Documented in the README; c2d-up overrides them with free ports.
const std::map<std::string, DefaultPorts>& Defaults() {
  static const auto* d = new std::map<std::string, DefaultPorts>{
      {"gateway", {7100, 9100}}, {"builder", {7101, 9101}}, {"deployer", {7102, 9102}},
      {"dbprov", {7103, 9103}},  {"dns", {7104, 9104}},     {"certs", {7105, 9105}},
  };
  return *d;
}

absl::Status WriteReadyFile(const std::string& path, const nlohmann::json& content) {
  // Write then rename, so a reader never sees half a file.
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << content.dump() << "\n";
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", tmp));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("cannot rename ", tmp, " to ", path));
  }
  return absl::OkStatus();
}

}  // namespace

int Process::Fail(const absl::Status& status) {
  log::Error("cannot start", {{"error", status.ToString()}});
  return 1;
}

absl::StatusOr<std::unique_ptr<Process>> Process::Init(std::string name) {
  BlockTerminationSignals();
  // Debian's Abseil is built with lock-order checking on, which costs a
  // graph update on every Mutex acquisition; tests keep it, services do not.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  log::Init(name, log::ParseLevel(env::GetString("C2D_LOG_LEVEL", "info")));
  std::unique_ptr<Process> p(new Process);
  p->name_ = name;
  DefaultPorts ports = Defaults().count(name) ? Defaults().at(name) : DefaultPorts{0, 0};
  C2D_ASSIGN_OR_RETURN(p->grpc_address_,
                       env::GetAddress("C2D_GRPC_ADDR", absl::StrCat("127.0.0.1:", ports.grpc)));
  C2D_ASSIGN_OR_RETURN(
      std::string metrics_address,
      env::GetAddress("C2D_METRICS_ADDR", absl::StrCat("127.0.0.1:", ports.metrics)));
  C2D_ASSIGN_OR_RETURN(p->worker_options_, jobs::WorkerOptions::FromEnv(""));
  p->grace_ = p->worker_options_.shutdown_grace;
  C2D_ASSIGN_OR_RETURN(pg::PoolOptions pool_options, pg::PoolOptions::FromEnv("c2d-" + name));
  p->pool_ = std::make_unique<pg::Pool>(std::move(pool_options));
  C2D_RETURN_IF_ERROR(pg::RequireSchema(*p->pool_, migrations::Latest()));
  C2D_ASSIGN_OR_RETURN(p->exposer_, metrics::Exposer::Start(metrics_address));
  return p;
}

jobs::Worker& Process::AddWorker(std::string queue) {
  jobs::WorkerOptions options = worker_options_;
  options.queue = std::move(queue);
  workers_.push_back(std::make_unique<jobs::Worker>(*pool_, connect_options(), options));
  return *workers_.back();
}

void Process::AddLeader(std::string duty, milliseconds interval, std::function<void()> fn,
                        std::function<void()> on_lost) {
  duties_.push_back(Duty{std::move(duty), interval, std::move(fn), std::move(on_lost)});
}

int Process::Serve(const std::vector<Server::Registration>& services) {
  for (auto& w : workers_) {
    if (auto s = w->Start(); !s.ok()) return Fail(s);
  }
  std::vector<std::unique_ptr<jobs::Leader>> leaders;
  for (const Duty& d : duties_) {
    leaders.push_back(
        std::make_unique<jobs::Leader>(connect_options(), d.name, d.interval, d.fn, d.on_lost));
    leaders.back()->Start();
  }
  auto server = Server::Start(grpc_address_, services);
  if (!server.ok()) return Fail(server.status());

  nlohmann::json ready = {{"service", name_},
                          {"grpc", (*server)->address()},
                          {"metrics", exposer_->address()},
                          {"pid", getpid()}};
  for (const auto& [name, address] : addresses_) ready[name] = address;
  log::Info("serving", ready);
  if (std::string path = env::GetString("C2D_READY_FILE", ""); !path.empty()) {
    if (auto s = WriteReadyFile(path, ready); !s.ok()) return Fail(s);
  }

  int sig = WaitForTerminationSignal();
  log::Info("shutting down", {{"signal", sig}, {"grace_ms", grace_.count()}});
  // Front doors first (an HTTP API calls the others), then gRPC, so no new
  // work arrives, then the workers, then the duties.
  for (const auto& hook : shutdown_hooks_) hook(grace_);
  (*server)->Shutdown(absl::FromChrono(grace_));
  for (auto& w : workers_) w->Shutdown();
  for (auto& l : leaders) l->Stop();
  log::Info("stopped");
  return 0;
}

}  // namespace c2d::rpc
