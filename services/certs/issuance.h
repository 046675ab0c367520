#pragma once

// Getting certificates: the `issue_cert` job (a first issuance or a
// renewal: new key, new certificate, stored sealed, served from the next
// handshake on) and the leader's sweep (a default domain for every newly
// routed hostname, renewals that are due, the expiry metrics).

#include <map>
#include <set>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/jobs/job.h"
#include "libs/jobs/worker.h"
#include "libs/pg/pool.h"
#include "services/certs/acme_issuer.h"
#include "services/certs/config.h"
#include "services/certs/internal_ca.h"

namespace c2d::certs {

// When a certificate valid [not_before, not_after) is renewed: with a third
// of its lifetime left (DESIGN point 20).
absl::Time RenewalTime(absl::Time not_before, absl::Time not_after);
// The retry delay after `attempts` failed attempts: 1 h doubling to 24 h,
// jittered by up to ±10 %.
absl::Duration RetryDelay(int attempts);
// RFC 9773 §4.2: a time within the CA's suggested window (`fraction` of the
// way in, chosen at random by the caller), when that is earlier than the
// renewal already planned at `planned`; else `planned`.
absl::Time AriRenewalTime(absl::Time window_start, absl::Time window_end, absl::Time planned,
                          double fraction);

class Issuance {
 public:
  // `acme` null: c2d's own CA issues every name.
  Issuance(pg::Pool& pool, const Config& config, const InternalCa& ca, AcmeIssuer* acme = nullptr)
      : pool_(pool), config_(config), ca_(ca), acme_(acme) {}

  // Registers `issue_cert` on the "certs" worker.
  void RegisterJobs(jobs::Worker& worker);
  absl::Status Issue(jobs::JobContext& ctx);
  // The leader's pass.
  void Sweep();
  // Leadership went to another replica, which exports the certificates'
  // gauges from now on: removes this one's series.
  void LostLeadership();
  // "internal" or "acme": who issues for `hostname`. Private names
  // (IsPrivateName) always get c2d's own CA.
  std::string IssuerOf(const std::string& hostname) const;

 private:
  // Records a failed attempt (backoff) and returns `error`.
  absl::Status Failed(const std::string& id, int attempts, const absl::Status& error);
  void ExportExpiry();
  // Moves renewals earlier where the CA's renewal information says so
  // (each certificate asked at most every 6 hours).
  void ApplyRenewalInfo();

  pg::Pool& pool_;
  const Config& config_;
  const InternalCa& ca_;
  AcmeIssuer* acme_;
  absl::Mutex mu_;
  // Hostnames whose metrics were exported by the last sweep.
  std::set<std::string> exported_ ABSL_GUARDED_BY(mu_);
  // When each certificate's renewal information was last asked.
  std::map<std::string, absl::Time> ari_asked_ ABSL_GUARDED_BY(mu_);
};

}  // namespace c2d::certs
