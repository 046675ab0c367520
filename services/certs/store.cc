#include "services/certs/store.h"

#include <google/protobuf/util/time_util.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "libs/common/ids.h"
#include "libs/common/status.h"
#include "libs/jobs/queue.h"
#include "libs/pg/rows.h"
#include "libs/rpc/proto_json.h"
#include "proto/c2d/v1/jobs.pb.h"

namespace c2d::certs {
namespace {

using google::protobuf::util::TimeUtil;

#define C2D_US(c) "coalesce((extract(epoch FROM " c ") * 1000000)::bigint, 0)"
// Columns of a v1::Certificate (RowToCertificate), then its issuer kind.
#define C2D_CERT_COLUMNS \
  "c.id, c.domain_id, array_to_string(c.hostnames, ' '), c.state, " C2D_US("c.not_before") ", " \
  C2D_US("c.not_after") ", coalesce(c.serial, ''), coalesce(c.issuer, ''), " C2D_US(             \
      "c.next_renewal_at") ", c.renewal_attempts, coalesce(c.last_error, ''), "                 \
  "coalesce(c.certificate_chain_pem, ''), " C2D_US("c.created_at") ", " C2D_US(                \
      "c.updated_at") ", c.issuer_kind"
#define C2D_DOMAIN_COLUMNS \
  "d.id, d.service_id, d.project_id, d.hostname, d.kind, d.verification_state, "           \
  "coalesce(d.cname_target, ''), coalesce(d.last_verification_error, ''), coalesce(c.id, " \
  "''), " C2D_US("d.created_at") ", " C2D_US("d.verified_at") ", coalesce(c.state, ''), "   \
  "coalesce(c.last_error, '')"

constexpr pg::Statement kMissingDomains{"certs_missing_domains", R"sql(
SELECT r.service_id, s.project_id, r.hostname
FROM service_routes r JOIN services s ON s.id = r.service_id
WHERE s.deleted_at IS NULL AND NOT EXISTS (SELECT 1 FROM domains d WHERE d.hostname = r.hostname)
LIMIT 100)sql"};
constexpr pg::Statement kInsertDefault{"certs_insert_default_domain", R"sql(
INSERT INTO domains (id, service_id, project_id, hostname, kind, verification_state, verified_at)
VALUES ($1, $2, $3, $4, 'default', 'verified', now())
ON CONFLICT (hostname) DO NOTHING RETURNING id)sql"};
constexpr pg::Statement kInsertCert{"certs_insert_certificate", R"sql(
INSERT INTO certificates (id, domain_id, hostnames, issuer_kind) VALUES ($1, $2, ARRAY[$3], $4))sql"};
constexpr pg::Statement kRemoveRenamed{"certs_remove_renamed_domains", R"sql(
DELETE FROM domains d USING service_routes r
WHERE d.kind = 'default' AND r.service_id = d.service_id AND r.hostname <> d.hostname)sql"};
constexpr pg::Statement kRemoveOfDeleted{"certs_remove_domains_of_deleted", R"sql(
DELETE FROM domains d USING services s WHERE s.id = d.service_id AND s.deleted_at IS NOT NULL)sql"};

constexpr const char* kClaimedElsewhere =
    " is claimed by another service; if the name is yours, create its DNS record (a CNAME to "
    "this service's hostname) and add it again: a claim never verified yields to one whose "
    "record is in place";

// Custom domains. One writer per service at a time, so that the limit holds.
constexpr pg::Statement kServiceLock{
    "certs_service_domains_lock", "SELECT pg_advisory_xact_lock(hashtext('c2d.domains.' || $1))"};
constexpr pg::Statement kLiveService{"certs_live_service", R"sql(
SELECT 1 FROM services WHERE id = $1 AND project_id = $2 AND deleted_at IS NULL)sql"};
constexpr pg::Statement kCountCustom{
    "certs_count_custom", "SELECT count(*) FROM domains WHERE service_id = $1 AND kind = 'custom'"};
constexpr pg::Statement kInsertCustom{"certs_insert_custom_domain", R"sql(
INSERT INTO domains (id, service_id, project_id, hostname, kind, cname_target, next_verification_at)
VALUES ($1, $2, $3, $4, 'custom', $5, now())
ON CONFLICT (hostname) DO NOTHING RETURNING id)sql"};
constexpr pg::Statement kHostnameTaken{"certs_hostname_taken",
                                       "SELECT service_id FROM domains WHERE hostname = $1"};
constexpr pg::Statement kReleaseUnverified{"certs_release_unverified_claim", R"sql(
DELETE FROM domains
WHERE hostname = $1 AND service_id <> $2 AND kind = 'custom' AND verification_state <> 'verified'
RETURNING id)sql"};
constexpr pg::Statement kDeleteCustom{"certs_delete_custom_domain", R"sql(
DELETE FROM domains WHERE id = $1 AND kind = 'custom' RETURNING id)sql"};
constexpr pg::Statement kGetDomain{"certs_get_domain", "SELECT " C2D_DOMAIN_COLUMNS R"sql(
FROM domains d LEFT JOIN certificates c ON c.domain_id = d.id WHERE d.id = $1)sql"};
constexpr pg::Statement kDueVerifications{"certs_due_verifications", R"sql(
SELECT id, hostname, cname_target, verification_attempts,
       (extract(epoch FROM created_at) * 1000000)::bigint
FROM domains WHERE verification_state = 'pending' AND next_verification_at <= now()
ORDER BY next_verification_at LIMIT $1)sql"};
constexpr pg::Statement kVerified{"certs_domain_verified", R"sql(
UPDATE domains
SET verification_state = 'verified', verified_at = now(), last_verification_error = NULL,
    next_verification_at = NULL, verification_attempts = verification_attempts + 1,
    updated_at = now()
WHERE id = $1 AND verification_state = 'pending' RETURNING hostname)sql"};
constexpr pg::Statement kUnverified{"certs_domain_unverified", R"sql(
UPDATE domains
SET verification_attempts = verification_attempts + 1, last_verification_error = $2,
    next_verification_at = to_timestamp($3::double precision / 1e6),
    verification_state = CASE WHEN $4 THEN 'failed' ELSE 'pending' END, updated_at = now()
WHERE id = $1 AND verification_state = 'pending')sql"};

// A default domain whose service stopped (no route) is not renewed until it
// is routed again; its renewal is then due at once if it passed meanwhile.
constexpr pg::Statement kDue{"certs_due", R"sql(
SELECT c.id FROM certificates c JOIN domains d ON d.id = c.domain_id
WHERE ((c.state IN ('issued', 'renewal_failing', 'expired') AND c.next_renewal_at <= now())
       OR (c.state = 'pending' AND coalesce(c.next_renewal_at, '-infinity') <= now()))
  AND (d.kind = 'custom' OR EXISTS (SELECT 1 FROM service_routes r WHERE r.hostname = d.hostname))
  AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.unique_key = 'issue_cert:' || c.id
                                         AND j.state IN ('available', 'running'))
ORDER BY c.next_renewal_at NULLS FIRST LIMIT $1)sql"};

constexpr pg::Statement kLoad{"certs_load",
                              "SELECT " C2D_CERT_COLUMNS " FROM certificates c WHERE c.id = $1"};

constexpr pg::Statement kStoreIssued{"certs_store_issued", R"sql(
UPDATE certificates
SET certificate_chain_pem = $2, private_key_key_id = $3, private_key_wrapped_key = decode($4, 'hex'),
    private_key_nonce = decode($5, 'hex'), private_key_ciphertext = decode($6, 'hex'),
    not_before = to_timestamp($7::double precision / 1e6),
    not_after = to_timestamp($8::double precision / 1e6), serial = $9, issuer = $10,
    next_renewal_at = to_timestamp($11::double precision / 1e6), state = 'issued',
    renewal_attempts = 0, last_error = NULL, last_attempt_at = now(), acme_order_url = NULL,
    order_key_key_id = NULL, order_key_wrapped_key = NULL, order_key_nonce = NULL,
    order_key_ciphertext = NULL, updated_at = now()
WHERE id = $1)sql"};

constexpr pg::Statement kFailure{"certs_record_failure", R"sql(
UPDATE certificates
SET renewal_attempts = renewal_attempts + 1, last_error = $2, last_attempt_at = now(),
    next_renewal_at = to_timestamp($3::double precision / 1e6),
    state = CASE WHEN state = 'issued' THEN 'renewal_failing' ELSE state END, updated_at = now()
WHERE id = $1)sql"};

// The key and chain only when they changed since `known_updated_us`.
constexpr pg::Statement kServed{
    "certs_served", R"sql(
SELECT c.id, )sql" C2D_US("c.updated_at") R"sql(, c.issuer_kind,
       CASE WHEN )sql" C2D_US("c.updated_at") R"sql( = $2 THEN NULL ELSE c.certificate_chain_pem END,
       c.private_key_key_id,
       CASE WHEN )sql" C2D_US(
                        "c.updated_at") R"sql( = $2 THEN NULL ELSE c.private_key_wrapped_key END,
       CASE WHEN )sql" C2D_US("c.updated_at") R"sql( = $2 THEN NULL ELSE c.private_key_nonce END,
       CASE WHEN )sql" C2D_US("c.updated_at") R"sql( = $2 THEN NULL ELSE c.private_key_ciphertext END
FROM certificates c
WHERE c.hostnames @> ARRAY[$1] AND c.state IN ('issued', 'renewal_failing')
ORDER BY c.not_after DESC LIMIT 1)sql"};

constexpr pg::Statement kChallenge{"certs_challenge_answer",
                                   "SELECT key_authorization FROM acme_http_challenges "
                                   "WHERE token = $1"};

constexpr pg::Statement kListCerts{"certs_list", "SELECT " C2D_CERT_COLUMNS R"sql(
FROM certificates c JOIN domains d ON d.id = c.domain_id
WHERE ($1 = '' OR d.service_id = $1) AND ($2 = '' OR c.domain_id = $2)
  AND ($3 = '' OR (coalesce(c.not_after, 'infinity'), c.id) >
                  (SELECT coalesce(not_after, 'infinity'), id FROM certificates WHERE id = $3))
ORDER BY coalesce(c.not_after, 'infinity'), c.id LIMIT $4)sql"};

constexpr pg::Statement kListDomains{"certs_list_domains", "SELECT " C2D_DOMAIN_COLUMNS R"sql(
FROM domains d LEFT JOIN certificates c ON c.domain_id = d.id
WHERE ($1 = '' OR d.service_id = $1) AND ($2 = '' OR d.project_id = $2)
  AND ($3 = '' OR d.hostname > (SELECT hostname FROM domains WHERE id = $3))
ORDER BY d.hostname LIMIT $4)sql"};

google::protobuf::Timestamp Micros(int64_t us) { return TimeUtil::MicrosecondsToTimestamp(us); }

int64_t ToUs(absl::Time t) { return absl::ToUnixMicros(t); }

v1::CertificateState StateOf(const std::string& s) {
  v1::CertificateState out = v1::CERTIFICATE_STATE_UNSPECIFIED;
  v1::CertificateState_Parse("CERTIFICATE_STATE_" + absl::AsciiStrToUpper(s), &out);
  return out;
}

CertificateRow RowToCertificate(const pqxx::row& r) {
  CertificateRow row;
  v1::Certificate& c = row.cert;
  c.set_id(r[0].as<std::string>());
  c.set_domain_id(r[1].as<std::string>());
  for (absl::string_view h : absl::StrSplit(r[2].as<std::string>(), ' ')) {
    c.add_hostnames(std::string(h));
  }
  c.set_state(StateOf(r[3].as<std::string>()));
  if (int64_t us = r[4].as<int64_t>(); us != 0) *c.mutable_not_before() = Micros(us);
  if (int64_t us = r[5].as<int64_t>(); us != 0) *c.mutable_not_after() = Micros(us);
  c.set_serial(r[6].as<std::string>());
  c.set_issuer(r[7].as<std::string>());
  if (int64_t us = r[8].as<int64_t>(); us != 0) *c.mutable_next_renewal_at() = Micros(us);
  c.set_renewal_attempts(r[9].as<int>());
  c.set_last_error(r[10].as<std::string>());
  c.set_certificate_chain_pem(r[11].as<std::string>());
  if (int64_t us = r[12].as<int64_t>(); us != 0) *c.mutable_created_at() = Micros(us);
  if (int64_t us = r[13].as<int64_t>(); us != 0) *c.mutable_updated_at() = Micros(us);
  row.issuer_kind = r[14].as<std::string>();
  return row;
}

// What users see, from the verification and the certificate's states.
v1::DomainState DomainStateOf(v1::DomainVerificationState verification,
                              const std::string& cert_state) {
  if (verification == v1::DOMAIN_VERIFICATION_STATE_PENDING) return v1::DOMAIN_STATE_PENDING_DNS;
  if (verification == v1::DOMAIN_VERIFICATION_STATE_FAILED) return v1::DOMAIN_STATE_FAILED;
  if (cert_state == "issued") return v1::DOMAIN_STATE_ACTIVE;
  if (cert_state == "renewal_failing") return v1::DOMAIN_STATE_RENEWAL_FAILING;
  if (cert_state == "failed") return v1::DOMAIN_STATE_FAILED;
  if (cert_state == "expired") return v1::DOMAIN_STATE_EXPIRED;
  return v1::DOMAIN_STATE_ISSUING;
}

v1::Domain RowToDomain(const pqxx::row& r) {
  v1::Domain d;
  d.set_id(r[0].as<std::string>());
  d.set_service_id(r[1].as<std::string>());
  d.set_project_id(r[2].as<std::string>());
  d.set_hostname(r[3].as<std::string>());
  d.set_kind(r[4].as<std::string>() == "custom" ? v1::DOMAIN_KIND_CUSTOM : v1::DOMAIN_KIND_DEFAULT);
  v1::DomainVerificationState v = v1::DOMAIN_VERIFICATION_STATE_UNSPECIFIED;
  v1::DomainVerificationState_Parse(
      "DOMAIN_VERIFICATION_STATE_" + absl::AsciiStrToUpper(r[5].as<std::string>()), &v);
  d.set_verification_state(v);
  d.set_cname_target(r[6].as<std::string>());
  d.set_last_verification_error(r[7].as<std::string>());
  d.set_certificate_id(r[8].as<std::string>());
  if (int64_t us = r[9].as<int64_t>(); us != 0) *d.mutable_created_at() = Micros(us);
  if (int64_t us = r[10].as<int64_t>(); us != 0) *d.mutable_verified_at() = Micros(us);
  const std::string cert_state = r[11].as<std::string>(), cert_error = r[12].as<std::string>();
  d.set_state(DomainStateOf(d.verification_state(), cert_state));
  d.set_error(d.verification_state() == v1::DOMAIN_VERIFICATION_STATE_VERIFIED
                  ? cert_error
                  : d.last_verification_error());
  return d;
}

}  // namespace

crypto::Sealed SealedAt(const pqxx::row& row, int i) {
  return {row[i].as<std::string>(), pqxx::binarystring(row[i + 1]).str(),
          pqxx::binarystring(row[i + 2]).str(), pqxx::binarystring(row[i + 3]).str()};
}

std::string KeyAad(const std::string& certificate_id) {
  return absl::StrCat("c2d/certs/key/", certificate_id);
}

absl::StatusOr<int> SyncDefaultDomains(
    pg::Tx& tx, const std::function<std::string(const std::string& hostname)>& issuer_of) {
  tx.Exec(kRemoveRenamed);
  tx.Exec(kRemoveOfDeleted);
  int added = 0;
  for (const pqxx::row& r : tx.Exec(kMissingDomains)) {
    const std::string hostname = r[2].as<std::string>();
    pqxx::result d = tx.Exec(kInsertDefault, ids::New("dom"), r[0].as<std::string>(),
                             r[1].as<std::string>(), hostname);
    if (d.empty()) continue;
    const std::string cert_id = ids::New("crt");
    tx.Exec(kInsertCert, cert_id, d[0][0].as<std::string>(), hostname, issuer_of(hostname));
    C2D_RETURN_IF_ERROR(EnqueueIssue(tx, cert_id));
    ++added;
  }
  return added;
}

absl::StatusOr<v1::Domain> AddCustomDomain(pg::Tx& tx, const v1::AddDomainRequest& request,
                                           int max_per_service) {
  tx.Exec(kServiceLock, request.service_id());
  if (tx.Exec(kLiveService, request.service_id(), request.project_id()).empty()) {
    return absl::NotFoundError(absl::StrCat("service ", request.service_id(), " does not exist"));
  }
  if (pqxx::result taken = tx.Exec(kHostnameTaken, request.hostname()); !taken.empty()) {
    return absl::AlreadyExistsError(
        taken[0][0].as<std::string>() == request.service_id()
            ? absl::StrCat(request.hostname(), " is already a domain of this service")
            : absl::StrCat(request.hostname(), kClaimedElsewhere));
  }
  if (tx.Exec(kCountCustom, request.service_id())[0][0].as<int64_t>() >= max_per_service) {
    return absl::ResourceExhaustedError(absl::StrCat("a service has at most ", max_per_service,
                                                     " custom domains; delete one first"));
  }
  const std::string id = ids::New("dom");
  if (tx.Exec(kInsertCustom, id, request.service_id(), request.project_id(), request.hostname(),
              request.cname_target())
          .empty()) {
    return absl::AlreadyExistsError(absl::StrCat(request.hostname(), kClaimedElsewhere));
  }
  return GetDomain(tx, id);
}

absl::StatusOr<bool> ReleaseUnverifiedClaim(pg::Tx& tx, const std::string& hostname,
                                            const std::string& service_id) {
  return !tx.Exec(kReleaseUnverified, hostname, service_id).empty();
}

absl::StatusOr<v1::Domain> GetDomain(pg::Tx& tx, const std::string& id) {
  pqxx::result r = tx.Exec(kGetDomain, id);
  if (r.empty()) return absl::NotFoundError(absl::StrCat("domain ", id, " does not exist"));
  return RowToDomain(r[0]);
}

absl::Status DeleteDomain(pg::Tx& tx, const std::string& id) {
  if (!tx.Exec(kDeleteCustom, id).empty()) return absl::OkStatus();
  C2D_ASSIGN_OR_RETURN(v1::Domain d, GetDomain(tx, id));
  return absl::FailedPreconditionError(
      absl::StrCat(d.hostname(), " is the service's own name; it goes when the service does"));
}

absl::StatusOr<std::vector<PendingDomain>> DueVerifications(pg::Tx& tx, int limit) {
  std::vector<PendingDomain> out;
  for (const pqxx::row& r : tx.Exec(kDueVerifications, limit)) {
    out.push_back({.id = r[0].as<std::string>(),
                   .hostname = r[1].as<std::string>(),
                   .cname_target = r[2].is_null() ? "" : r[2].as<std::string>(),
                   .attempts = r[3].as<int>(),
                   .created_at = absl::FromUnixMicros(r[4].as<int64_t>())});
  }
  return out;
}

absl::Status RecordVerified(pg::Tx& tx, const std::string& id, const std::string& issuer_kind) {
  pqxx::result r = tx.Exec(kVerified, id);
  if (r.empty()) return absl::OkStatus();
  const std::string cert_id = ids::New("crt");
  tx.Exec(kInsertCert, cert_id, id, r[0][0].as<std::string>(), issuer_kind);
  return EnqueueIssue(tx, cert_id);
}

absl::Status RecordUnverified(pg::Tx& tx, const std::string& id, const std::string& error,
                              absl::Time next, bool give_up) {
  tx.Exec(kUnverified, id, error.substr(0, 2000), ToUs(next), give_up);
  return absl::OkStatus();
}

absl::Status EnqueueIssue(pg::Tx& tx, const std::string& certificate_id) {
  v1::IssueCertJob payload;
  payload.set_certificate_id(certificate_id);
  C2D_ASSIGN_OR_RETURN(std::string json, rpc::ToJson(payload));
  return jobs::Enqueue(tx, {.queue = "certs",
                            .kind = "issue_cert",
                            .payload = json,
                            .max_attempts = 3,
                            .unique_key = absl::StrCat("issue_cert:", certificate_id)})
      .status();
}

absl::StatusOr<int> EnqueueDue(pg::Tx& tx, int limit) {
  int n = 0;
  for (const pqxx::row& r : tx.Exec(kDue, limit)) {
    C2D_RETURN_IF_ERROR(EnqueueIssue(tx, r[0].as<std::string>()));
    ++n;
  }
  return n;
}

absl::StatusOr<CertificateRow> LoadCertificate(pg::Tx& tx, const std::string& id) {
  pqxx::result r = tx.Exec(kLoad, id);
  if (r.empty()) return absl::NotFoundError(absl::StrCat("certificate ", id, " does not exist"));
  return RowToCertificate(r[0]);
}

absl::Status StoreIssued(pg::Tx& tx, const std::string& id, const std::string& chain_pem,
                         const crypto::Sealed& key, absl::Time not_before, absl::Time not_after,
                         const std::string& serial, const std::string& issuer,
                         absl::Time renew_at) {
  tx.Exec(kStoreIssued, id, chain_pem, key.key_id, absl::BytesToHexString(key.wrapped_key),
          absl::BytesToHexString(key.nonce), absl::BytesToHexString(key.ciphertext),
          ToUs(not_before), ToUs(not_after), serial, issuer, ToUs(renew_at));
  return absl::OkStatus();
}

absl::Status RecordFailure(pg::Tx& tx, const std::string& id, const std::string& error,
                           absl::Time retry_at) {
  tx.Exec(kFailure, id, error.substr(0, 2000), ToUs(retry_at));
  return absl::OkStatus();
}

absl::StatusOr<std::optional<Served>> ServedFor(pg::Tx& tx, const std::string& name,
                                                int64_t known_updated_us) {
  pqxx::result r = tx.Exec(kServed, name, known_updated_us);
  if (r.empty()) return std::optional<Served>();
  Served s;
  s.certificate_id = r[0][0].as<std::string>();
  s.updated_us = r[0][1].as<int64_t>();
  s.issuer_kind = r[0][2].as<std::string>();
  if (!r[0][3].is_null()) {
    s.chain_pem = r[0][3].as<std::string>();
    s.key = SealedAt(r[0], 4);
  }
  return std::optional<Served>(std::move(s));
}

absl::StatusOr<std::string> ChallengeAnswer(pg::Tx& tx, const std::string& token) {
  pqxx::result r = tx.Exec(kChallenge, token);
  if (r.empty()) return absl::NotFoundError("no such challenge");
  return r[0][0].as<std::string>();
}

absl::StatusOr<v1::Certificate> GetCertificate(pg::Tx& tx, const std::string& id) {
  C2D_ASSIGN_OR_RETURN(CertificateRow row, LoadCertificate(tx, id));
  return row.cert;
}

absl::StatusOr<v1::ListCertificatesResponse> ListCertificates(
    pg::Tx& tx, const v1::ListCertificatesRequest& request, int page_size) {
  pqxx::result rows = tx.Exec(kListCerts, request.service_id(), request.domain_id(),
                              request.page().page_token(), page_size + 1);
  v1::ListCertificatesResponse out;
  out.set_next_page_token(pg::FillPage(rows, page_size, [&](const pqxx::row& row) {
    *out.add_certificates() = RowToCertificate(row).cert;
    return out.certificates(out.certificates_size() - 1).id();
  }));
  return out;
}

absl::StatusOr<v1::ListDomainsResponse> ListDomains(pg::Tx& tx,
                                                    const v1::ListDomainsRequest& request,
                                                    int page_size) {
  pqxx::result rows = tx.Exec(kListDomains, request.service_id(), request.project_id(),
                              request.page().page_token(), page_size + 1);
  v1::ListDomainsResponse out;
  out.set_next_page_token(pg::FillPage(rows, page_size, [&](const pqxx::row& row) {
    *out.add_domains() = RowToDomain(row);
    return out.domains(out.domains_size() - 1).id();
  }));
  return out;
}

}  // namespace c2d::certs
