#pragma once

// The gateway's configuration, from C2D_* variables (README lists them).

#include <chrono>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "libs/crypto/seal.h"

namespace c2d::gateway {

struct Config {
  std::string http_addr = "127.0.0.1:8080";  // C2D_HTTP_ADDR: the REST API
  // C2D_HTTP_WORKERS, threads running REST handlers. By default as many as
  // the database pool's connections (C2D_DB_POOL_SIZE, 8): a handler uses
  // one at a time, and extra workers only queue on the pool, which widens
  // the latency tail (authenticated GETs on 2 cores, p99: 18 ms with 8
  // workers and 8 connections, 27 to 44 ms with 32 workers and 8).
  int http_workers = 8;
  std::string builder_addr;               // C2D_BUILDER_ADDR
  std::string deployer_addr;              // C2D_DEPLOYER_ADDR
  std::string certs_addr;                 // C2D_CERTS_ADDR; empty: no domain routes (501)
  std::string dbprov_addr;                // C2D_DBPROV_ADDR; empty: no database routes (501)
  std::string base_domain = "localhost";  // C2D_BASE_DOMAIN
  // Where the ingress serves apps (C2D_INGRESS_HTTP_ADDR), for the URLs shown.
  std::string ingress_http_addr;
  // Deadline of each call to another service (C2D_RPC_TIMEOUT).
  std::chrono::milliseconds rpc_timeout{10'000};
  std::optional<crypto::MasterKeys> master_keys;  // C2D_MASTER_KEY
  // C2D_LOCAL_REPO_ROOT: local repositories below it may be built (the
  // bundled sample, tests); empty, the default: only remote URLs.
  std::string local_repo_root;
  // Per user: requests per second (C2D_USER_RPS) with bursts of
  // C2D_USER_BURST, beyond which requests get 429 and Retry-After; open log
  // streams (C2D_USER_STREAMS), beyond which a new one gets 429.
  double user_rps = 20;
  double user_burst = 100;
  int user_streams = 20;
  // C2D_PREVIEWS_PER_PROJECT: live preview environments a project may have
  // at once; a pull request beyond it gets none.
  int previews_per_project = 5;
  // C2D_RENAME_HOLD: how long a renamed project's old name stays its own.
  std::chrono::milliseconds rename_hold{24 * 3600 * 1000};

  // http://<service>.<project>.<base domain>[:port]/
  std::string AppUrl(const std::string& service, const std::string& project) const;
  // <service>.<project>.<base>: what a custom domain's CNAME points at.
  std::string AppHostname(const std::string& service, const std::string& project) const;

  static absl::StatusOr<Config> FromEnv();
};

}  // namespace c2d::gateway
