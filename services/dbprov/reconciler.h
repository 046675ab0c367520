#pragma once

// The dbprov leader's duty (DESIGN point 3): the server of every database
// that should run does. A server that exited is started again after a
// backoff that doubles with each exit within a minute of its start, from
// C2D_RESTART_BACKOFF_BASE up to 5 min, as the deployer does for app
// instances; a server lost altogether is made again on its volume (its data
// and its address kept). Servers run on their own: dbprov stopping or
// restarting changes nothing that runs.

#include <map>
#include <string>

#include "absl/time/time.h"
#include "libs/cloud/provider.h"
#include "libs/pg/pool.h"
#include "services/dbprov/config.h"
#include "services/dbprov/provision_job.h"

namespace c2d::dbprov {

class Reconciler {
 public:
  Reconciler(pg::Pool& pool, const Config& config, Servers& servers, cloud::Provider& provider)
      : pool_(pool), config_(config), servers_(servers), provider_(provider) {}

  // One pass over every database that should run. Not thread-safe: the
  // leader calls it from one thread.
  void RunOnce();

 private:
  // Brings one database's server back if it is down; a backoff may defer it.
  void Check(const DatabaseRow& row, absl::Time now);

  struct Backoff {
    int exits = 0;                                 // in a row, each soon after its start
    absl::Time restart_at = absl::InfinitePast();  // InfinitePast: none planned
  };

  pg::Pool& pool_;
  const Config& config_;
  Servers& servers_;
  cloud::Provider& provider_;
  std::map<std::string, Backoff> backoff_;
};

}  // namespace c2d::dbprov
