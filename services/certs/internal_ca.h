#pragma once

// c2d's own CA for private names (*.localhost and the internal zone), so
// the embedded default serves https://<service>.<project>.localhost at once.
// Made once per installation, its key sealed in cert_authorities; every
// certs replica loads the same one.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "libs/crypto/seal.h"
#include "libs/crypto/x509.h"
#include "libs/pg/pool.h"

namespace c2d::certs {

// A certificate and its key, ready to store.
struct Issued {
  std::string chain_pem;  // leaf first (c2d's own CA: the leaf alone)
  std::string key_der;    // PKCS#8
  crypto::CertificateInfo info;
};

class InternalCa {
 public:
  // The installation's CA, made (and stored) when there is none yet; two
  // replicas starting together agree on the stored one.
  static absl::StatusOr<InternalCa> LoadOrCreate(pg::Pool& pool, const crypto::MasterKeys& keys);

  const std::string& certificate_pem() const { return cert_pem_; }
  // A new key and a certificate for `names`, valid from a minute ago for
  // `lifetime`, its chain ending with the CA's certificate.
  absl::StatusOr<Issued> Issue(const std::vector<std::string>& names,
                               absl::Duration lifetime) const;

 private:
  InternalCa(crypto::EcKey key, std::string cert_pem)
      : key_(std::move(key)), cert_pem_(std::move(cert_pem)) {}

  crypto::EcKey key_;
  std::string cert_pem_;
};

// Names the internal CA serves: *.localhost and localhost (RFC 6761; they
// never resolve outside this machine) and anything under `internal_zone`.
bool IsPrivateName(const std::string& name, const std::string& internal_zone);

}  // namespace c2d::certs
