#pragma once

// The certificates an OpenStack instance serves, loaded into its own Caddy
// through Caddy's remote admin API (DESIGN §1 point 2), so a renewal
// reaches a running instance without a redeploy.
//
// Both ends are authenticated:
// - the instance's Caddy lets in c2d's client certificate alone (its public
//   key is pinned in the instance's configuration, see BootPlan);
// - c2d trusts, for each instance, only that instance's own admin CA, which
//   Caddy issues its admin certificate from. The CA's key is derived from
//   c2d's secret and the instance's name (crypto::EcKey::Derive), so c2d
//   makes it again when it needs it and stores nothing; another instance's
//   CA, or a stranger holding the instance's address, fails the handshake.
//
// Usage:
//   C2D_ASSIGN_OR_RETURN(auto ca, InstanceAdminCa(secret, "c2d-ins_01…"));
//   ... the instance boots with ca.cert_pem and ca.key (BootPlan) ...
//   C2D_RETURN_IF_ERROR(LoadCertificates({.instance = "c2d-ins_01…",
//       .address = "203.0.113.7:2021", .ca_pem = ca.cert_pem, .client = identity}, certs));

#include <chrono>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "libs/cloud/provider.h"
#include "libs/crypto/x509.h"

namespace c2d::cloud::openstack {

// c2d's client identity for remote admin (PEM).
struct AdminClient {
  std::string certificate_pem;
  std::string key_pem;
};

// The name an instance's admin certificate is for: its name, lower case,
// '_' as '-' (a DNS name).
std::string AdminName(absl::string_view instance);

// The instance's admin CA: always the same key for the same secret and
// instance, and a self-signed certificate valid 2020 to 2120.
// InvalidArgument: a secret shorter than 32 bytes, an empty name.
absl::StatusOr<crypto::CertificateAuthority> InstanceAdminCa(absl::string_view secret,
                                                             absl::string_view instance);

struct AdminEndpoint {
  std::string instance;  // the instance's name (as given to InstanceAdminCa)
  std::string address;   // host:port of its remote admin API
  std::string ca_pem;    // InstanceAdminCa(...).cert_pem
  AdminClient client;
  std::chrono::milliseconds timeout{10'000};
};

// Replaces every certificate the instance's Caddy serves on 443 with
// `certs` (Caddy picks one by SNI). Unavailable: the instance cannot be
// reached or its certificate is not from its CA; FailedPrecondition: Caddy
// refused (its message kept), e.g. a malformed certificate or c2d's client
// certificate not the one the instance admits.
absl::Status LoadCertificates(const AdminEndpoint& endpoint,
                              const std::vector<ServedCertificate>& certs);

}  // namespace c2d::cloud::openstack
