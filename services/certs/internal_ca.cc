#include "services/certs/internal_ca.h"

#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "libs/common/status.h"
#include "services/certs/store.h"

namespace c2d::certs {
namespace {

constexpr char kAad[] = "c2d/certs/ca/internal";
// Long enough that no installation outlives it; users trust it once.
constexpr absl::Duration kCaLifetime = absl::Hours(24 * 365 * 10);

constexpr pg::Statement kLoad{"certs_ca_load", R"sql(
SELECT certificate_pem, key_key_id, key_wrapped_key, key_nonce, key_ciphertext
FROM cert_authorities WHERE id = 'internal')sql"};
constexpr pg::Statement kInsert{"certs_ca_insert", R"sql(
INSERT INTO cert_authorities (id, certificate_pem, key_key_id, key_wrapped_key, key_nonce,
                              key_ciphertext)
VALUES ('internal', $1, $2, decode($3, 'hex'), decode($4, 'hex'), decode($5, 'hex'))
ON CONFLICT (id) DO NOTHING)sql"};

// The stored CA: its key opened, and its certificate.
absl::StatusOr<std::pair<crypto::EcKey, std::string>> Load(pg::Pool& pool,
                                                           const crypto::MasterKeys& keys) {
  return pool.Read("load internal CA",
                   [&](pg::Tx& tx) -> absl::StatusOr<std::pair<crypto::EcKey, std::string>> {
                     pqxx::result r = tx.Exec(kLoad);
                     if (r.empty()) return absl::NotFoundError("no internal CA yet");
                     crypto::Sealed sealed = SealedAt(r[0], 1);
                     C2D_ASSIGN_OR_RETURN(std::string der, keys.Open(sealed, kAad));
                     C2D_ASSIGN_OR_RETURN(crypto::EcKey key, crypto::EcKey::FromPkcs8Der(der));
                     return std::make_pair(std::move(key), r[0][0].as<std::string>());
                   });
}

}  // namespace

absl::StatusOr<InternalCa> InternalCa::LoadOrCreate(pg::Pool& pool,
                                                    const crypto::MasterKeys& keys) {
  auto loaded = Load(pool, keys);
  if (loaded.ok()) return InternalCa(std::move(loaded->first), std::move(loaded->second));
  if (!absl::IsNotFound(loaded.status())) return loaded.status();
  C2D_ASSIGN_OR_RETURN(crypto::CertificateAuthority ca,
                       crypto::CreateCa("c2d internal CA", kCaLifetime));
  C2D_ASSIGN_OR_RETURN(std::string der, ca.key.ToPkcs8Der());
  C2D_ASSIGN_OR_RETURN(crypto::Sealed sealed, keys.Seal(der, kAad));
  C2D_RETURN_IF_ERROR(pool.Transact("store internal CA", [&](pg::Tx& tx) {
    tx.Exec(kInsert, ca.cert_pem, sealed.key_id, absl::BytesToHexString(sealed.wrapped_key),
            absl::BytesToHexString(sealed.nonce), absl::BytesToHexString(sealed.ciphertext));
    return absl::OkStatus();
  }));
  // Whichever replica stored first: everyone uses that one.
  C2D_ASSIGN_OR_RETURN(auto stored, Load(pool, keys));
  return InternalCa(std::move(stored.first), std::move(stored.second));
}

absl::StatusOr<Issued> InternalCa::Issue(const std::vector<std::string>& names,
                                         absl::Duration lifetime) const {
  C2D_ASSIGN_OR_RETURN(crypto::EcKey key, crypto::EcKey::Generate());
  const absl::Time now = absl::Now();
  C2D_ASSIGN_OR_RETURN(std::string leaf, crypto::IssueLeaf(key_, cert_pem_, key, names,
                                                           now - absl::Minutes(1), now + lifetime));
  Issued out;
  // The leaf alone: the CA is the trust anchor clients must already hold
  // (RFC 8446 §4.4.2 lets a server omit it), and every handshake that gets
  // the certificate from the certs endpoint parses what it is sent.
  out.chain_pem = std::move(leaf);
  C2D_ASSIGN_OR_RETURN(out.key_der, key.ToPkcs8Der());
  C2D_ASSIGN_OR_RETURN(out.info, crypto::ParseCertificateChain(out.chain_pem));
  return out;
}

bool IsPrivateName(const std::string& name, const std::string& internal_zone) {
  return name == "localhost" || absl::EndsWith(name, ".localhost") ||
         (!internal_zone.empty() &&
          (name == internal_zone || absl::EndsWith(name, absl::StrCat(".", internal_zone))));
}

}  // namespace c2d::certs
