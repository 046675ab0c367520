#pragma once

// Custom domains: a user's own hostname served by one of their services.
// The user points it at c2d with a DNS record (a CNAME to the service's
// default hostname, or an A record at a zone's apex); the leader's sweep
// checks the record with backoff (Verifier), and once it is in place the
// domain is verified and its certificate ordered like any other. The
// deployer routes verified custom domains beside the default hostname.

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "libs/dns/resolver.h"
#include "libs/pg/pool.h"
#include "proto/c2d/v1/certs.pb.h"
#include "services/certs/config.h"

namespace c2d::certs {

// The longest custom hostname: the ingress names its route
// <hostname>.<ingress zone>, which must fit DNS's 253.
constexpr size_t kMaxCustomHostname = 200;
// How long a domain may wait for its record before it is given up.
constexpr absl::Duration kVerificationGiveUp = absl::Hours(72);

// `raw` as stored (lower-case, without a trailing dot), or InvalidArgument
// saying what is wrong: not a DNS name, too long, an IP address, a
// wildcard (which needs DNS-01 in a zone c2d does not serve), or a name in
// c2d's own zones (`base_domain`, localhost) that services get already.
absl::StatusOr<std::string> CustomHostname(absl::string_view raw, const std::string& base_domain);

// The record the user creates for `hostname`: an A record to
// `public_ipv4` at a zone's apex (a name of two labels, where DNS allows no
// CNAME) when that address is known, else a CNAME to `cname_target`.
v1::DnsRecord RequiredRecord(const std::string& hostname, const std::string& cname_target,
                             const std::string& public_ipv4);

// OK when `hostname`'s records point at c2d: a CNAME to `cname_target`, or
// A records that are `public_ipv4` or those of `cname_target`. Else
// FailedPrecondition saying what was found and what is wanted (Unavailable
// when the DNS server does not answer).
absl::Status CheckRecords(const dns::Resolver& resolver, const std::string& hostname,
                          const std::string& cname_target, const std::string& public_ipv4);

// When a domain whose record is missing is checked again after `attempts`
// checks: 5 s doubling to 10 minutes.
absl::Duration VerificationDelay(int attempts);

// The leader's part: checks the domains whose check is due; a verified one
// gets a pending certificate from the issuer `issuer_of` names, and its
// `issue_cert` job.
class Verifier {
 public:
  Verifier(pg::Pool& pool, const Config& config,
           std::function<std::string(const std::string& hostname)> issuer_of)
      : pool_(pool), config_(config), issuer_of_(std::move(issuer_of)) {}

  // Checks up to a few dozen due domains; returns how many became verified.
  int Sweep();

 private:
  pg::Pool& pool_;
  const Config& config_;
  std::function<std::string(const std::string& hostname)> issuer_of_;
};

}  // namespace c2d::certs
