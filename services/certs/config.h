#pragma once

// The certs service's configuration, from C2D_* variables (README lists them).

#include <chrono>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "libs/crypto/seal.h"

namespace c2d::certs {

struct Config {
  // Where the ingress Caddy asks for certificates at each TLS handshake
  // (tls.get_certificate.http), checks whether a plain HTTP request should
  // be redirected, and fetches HTTP-01 answers. Loopback only.
  std::string http_addr = "127.0.0.1:7110";  // C2D_CERTS_HTTP_ADDR
  // Where the internal CA's certificate is written at start, for users to
  // trust; empty = not written.
  std::string ca_file;  // C2D_INTERNAL_CA_FILE
  // Lifetime of certificates from the internal CA; renewed with 1/3 left.
  std::chrono::milliseconds internal_lifetime{
      std::chrono::hours(24 * 90)};  // C2D_INTERNAL_CERT_LIFETIME
  // How often the leader adds certificates for newly routed hostnames and
  // starts renewals that are due.
  std::chrono::milliseconds sweep_interval{5'000};  // C2D_CERTS_SWEEP_INTERVAL
  std::optional<crypto::MasterKeys> master_keys;    // C2D_MASTER_KEY
  // <base>: names under internal.<base> (and *.localhost) get certificates
  // from c2d's own CA.
  std::string base_domain = "localhost";  // C2D_BASE_DOMAIN
  // An ACME CA's directory; empty = c2d's own CA issues every name.
  std::string acme_directory;  // C2D_ACME_DIRECTORY
  std::string acme_ca_file;    // C2D_ACME_CA_FILE: trusted for the CA's https (tests: Pebble's)
  std::string acme_email;      // C2D_ACME_EMAIL: the account's contact, optional
  // How long one issuance may take (order, challenges, finalization).
  std::chrono::milliseconds acme_timeout{300'000};  // C2D_ACME_TIMEOUT
  // The DNS service, for DNS-01 (wildcards); empty = HTTP-01 only.
  std::string dns_addr;  // C2D_DNS_ADDR
  // The ingress's public IPv4 address: a custom domain at a zone's apex
  // (no CNAME there) points an A record at it. Empty = CNAME only.
  std::string public_ipv4;  // C2D_PUBLIC_IPV4
  // The DNS server ("ip:port") asked whether a custom domain's record is
  // in place; empty = the first nameserver of /etc/resolv.conf.
  std::string dns_resolver;  // C2D_DNS_RESOLVER
  // Custom domains per service.
  int max_custom_domains = 20;  // C2D_MAX_CUSTOM_DOMAINS

  static absl::StatusOr<Config> FromEnv();
};

}  // namespace c2d::certs
