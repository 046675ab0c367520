#include "services/certs/issuance.h"

#include <prometheus/gauge.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <set>

#include "absl/strings/str_cat.h"
#include "libs/acme/problem.h"
#include "libs/common/log.h"
#include "libs/common/status.h"
#include "libs/metrics/metrics.h"
#include "libs/rpc/proto_json.h"
#include "proto/c2d/v1/jobs.pb.h"
#include "services/certs/store.h"

namespace c2d::certs {
namespace {

constexpr int kDuePerSweep = 100;
constexpr absl::Duration kAriEvery = absl::Hours(6);

constexpr pg::Statement kAcmeIssued{"certs_acme_issued", R"sql(
SELECT id, certificate_chain_pem, (extract(epoch FROM next_renewal_at) * 1000000)::bigint
FROM certificates
WHERE issuer_kind = 'acme' AND state IN ('issued', 'renewal_failing'))sql"};
constexpr pg::Statement kRenewEarlier{"certs_renew_earlier", R"sql(
UPDATE certificates SET next_renewal_at = to_timestamp($2::double precision / 1e6)
WHERE id = $1 AND next_renewal_at > to_timestamp($2::double precision / 1e6))sql"};

constexpr pg::Statement kExpiries{"certs_expiries", R"sql(
SELECT c.id, c.hostnames[1], extract(epoch FROM c.not_after)::bigint, c.state
FROM certificates c WHERE c.not_after IS NOT NULL)sql"};

prometheus::Family<prometheus::Gauge>& Expiry() {
  static auto& family = prometheus::BuildGauge()
                            .Name("c2d_certificate_expiry_timestamp_seconds")
                            .Help("When each served certificate expires (Unix time), by hostname")
                            .Register(metrics::Registry());
  return family;
}

prometheus::Family<prometheus::Gauge>& RenewalFailing() {
  static auto& family = prometheus::BuildGauge()
                            .Name("c2d_certificate_renewal_failing")
                            .Help("1 while a certificate's renewals keep failing, by hostname")
                            .Register(metrics::Registry());
  return family;
}

// Removes the hostname's series of both families.
void Unexport(const std::string& host) {
  Expiry().Remove(&Expiry().Add({{"hostname", host}}));
  RenewalFailing().Remove(&RenewalFailing().Add({{"hostname", host}}));
}

absl::Time ToTime(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

}  // namespace

absl::Time RenewalTime(absl::Time not_before, absl::Time not_after) {
  return not_after - (not_after - not_before) / 3;
}

absl::Duration RetryDelay(int attempts) {
  const double hours = std::min(24.0, std::pow(2.0, std::max(0, attempts - 1)));
  static thread_local std::mt19937 rng{std::random_device{}()};
  std::uniform_real_distribution<double> jitter(0.9, 1.1);
  return absl::Hours(hours * jitter(rng));
}

absl::Time AriRenewalTime(absl::Time window_start, absl::Time window_end, absl::Time planned,
                          double fraction) {
  if (window_end < window_start) return planned;
  const absl::Time chosen =
      window_start + (window_end - window_start) * std::clamp(fraction, 0.0, 1.0);
  return std::min(chosen, planned);
}

std::string Issuance::IssuerOf(const std::string& hostname) const {
  if (acme_ == nullptr || IsPrivateName(hostname, "internal." + config_.base_domain)) {
    return "internal";
  }
  return "acme";
}

void Issuance::RegisterJobs(jobs::Worker& worker) {
  worker.Register("issue_cert", [this](jobs::JobContext& ctx) { return Issue(ctx); });
}

absl::Status Issuance::Failed(const std::string& id, int attempts, const absl::Status& error) {
  // The CA's Retry-After (rateLimited) wins when it asks for longer.
  const absl::Duration wait =
      std::max(RetryDelay(attempts + 1), acme::RetryAfter(error).value_or(absl::ZeroDuration()));
  const absl::Time retry = absl::Now() + wait;
  absl::Status s = pool_.Transact("certificate failed", [&](pg::Tx& tx) {
    return RecordFailure(tx, id, std::string(error.message()), retry);
  });
  if (!s.ok()) log::Warn("cannot record a failed issuance", {{"error", s.ToString()}});
  log::Warn("certificate not issued", {{"certificate_id", id}, {"error", error.ToString()}});
  return error;
}

absl::Status Issuance::Issue(jobs::JobContext& ctx) {
  v1::IssueCertJob payload;
  if (!rpc::FromJson(ctx.job().payload, &payload).ok() || payload.certificate_id().empty()) {
    return jobs::Permanent(absl::InvalidArgumentError("issue_cert payload names no certificate"));
  }
  const std::string& id = payload.certificate_id();
  auto row = pool_.Read("certificate", [&](pg::Tx& tx) { return LoadCertificate(tx, id); });
  if (absl::IsNotFound(row.status())) return absl::OkStatus();  // its domain was removed
  if (!row.ok()) return row.status();
  // Run twice (a crash after storing): the stored one is not due yet.
  if (row->cert.has_next_renewal_at() && row->cert.state() == v1::CERTIFICATE_STATE_ISSUED &&
      ToTime(row->cert.next_renewal_at()) > absl::Now()) {
    return absl::OkStatus();
  }
  std::vector<std::string> names(row->cert.hostnames().begin(), row->cert.hostnames().end());
  absl::StatusOr<Issued> issued;
  if (row->issuer_kind == "internal") {
    issued = ca_.Issue(names, absl::FromChrono(config_.internal_lifetime));
  } else if (acme_ != nullptr) {
    issued = acme_->Issue(*row);
  } else {
    issued = absl::FailedPreconditionError("no ACME directory is configured (C2D_ACME_DIRECTORY)");
  }
  if (!issued.ok()) return Failed(id, row->cert.renewal_attempts(), issued.status());
  auto sealed = config_.master_keys->Seal(issued->key_der, KeyAad(id));
  if (!sealed.ok()) return sealed.status();
  const crypto::CertificateInfo& info = issued->info;
  C2D_RETURN_IF_ERROR(pool_.Transact("certificate issued", [&](pg::Tx& tx) {
    return StoreIssued(tx, id, issued->chain_pem, *sealed, info.not_before, info.not_after,
                       info.serial_hex, info.issuer, RenewalTime(info.not_before, info.not_after));
  }));
  log::Info("certificate issued", {{"certificate_id", id},
                                   {"hostname", names.front()},
                                   {"serial", info.serial_hex},
                                   {"not_after", absl::FormatTime(info.not_after)}});
  return absl::OkStatus();
}

void Issuance::Sweep() {
  auto added = pool_.Transact("default domains", [&](pg::Tx& tx) {
    return SyncDefaultDomains(tx, [&](const std::string& h) { return IssuerOf(h); });
  });
  if (!added.ok()) {
    log::Warn("certs sweep: default domains", {{"error", added.status().ToString()}});
  } else if (*added > 0) {
    log::Info("certs sweep: new default domains", {{"count", *added}});
  }
  auto due =
      pool_.Transact("due renewals", [&](pg::Tx& tx) { return EnqueueDue(tx, kDuePerSweep); });
  if (!due.ok()) log::Warn("certs sweep: renewals", {{"error", due.status().ToString()}});
  ApplyRenewalInfo();
  ExportExpiry();
}

void Issuance::ApplyRenewalInfo() {
  if (acme_ == nullptr) return;
  auto rows = pool_.Read("acme certificates", [](pg::Tx& tx) -> absl::StatusOr<pqxx::result> {
    return tx.Exec(kAcmeIssued);
  });
  if (!rows.ok()) return;
  static thread_local std::mt19937 rng{std::random_device{}()};
  std::uniform_real_distribution<double> fraction(0.0, 1.0);
  for (const pqxx::row& r : *rows) {
    const std::string id = r[0].as<std::string>();
    {
      absl::MutexLock lock(&mu_);
      auto it = ari_asked_.find(id);
      if (it != ari_asked_.end() && absl::Now() - it->second < kAriEvery) continue;
      ari_asked_[id] = absl::Now();
    }
    auto window = acme_->SuggestedWindow(r[1].as<std::string>());
    if (absl::IsUnimplemented(window.status())) return;  // the CA has no ARI
    if (!window.ok()) continue;
    const absl::Time planned = absl::FromUnixMicros(r[2].as<int64_t>());
    const absl::Time at =
        AriRenewalTime(window->window_start, window->window_end, planned, fraction(rng));
    if (at >= planned) continue;
    (void)pool_.Transact("renew earlier", [&](pg::Tx& tx) {
      tx.Exec(kRenewEarlier, id, absl::ToUnixMicros(at));
      return absl::OkStatus();
    });
    log::Info("renewal moved earlier by the CA's renewal information",
              {{"certificate_id", id}, {"at", absl::FormatTime(at)}});
  }
}

void Issuance::LostLeadership() {
  absl::MutexLock lock(&mu_);
  for (const std::string& host : exported_) Unexport(host);
  exported_.clear();
}

void Issuance::ExportExpiry() {
  auto rows = pool_.Read(
      "expiries", [](pg::Tx& tx) -> absl::StatusOr<pqxx::result> { return tx.Exec(kExpiries); });
  if (!rows.ok()) return;
  std::set<std::string> now;
  for (const pqxx::row& r : *rows) {
    const std::string host = r[1].as<std::string>();
    now.insert(host);
    Expiry().Add({{"hostname", host}}).Set(static_cast<double>(r[2].as<int64_t>()));
    RenewalFailing().Add({{"hostname", host}}).Set(r[3].as<std::string>() == "renewal_failing");
  }
  // A removed domain's series go, or its last expiry would alert one day.
  absl::MutexLock lock(&mu_);
  for (const std::string& host : exported_) {
    if (now.count(host)) continue;
    Unexport(host);
  }
  exported_ = std::move(now);
}

}  // namespace c2d::certs
