#include "services/certs/domains.h"

#include <arpa/inet.h>

#include <algorithm>
#include <set>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "libs/common/log.h"
#include "libs/common/status.h"
#include "services/certs/store.h"

namespace c2d::certs {
namespace {

constexpr int kChecksPerSweep = 30;

absl::Status Invalid(absl::string_view raw, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("\"", raw.substr(0, 64), raw.size() > 64 ? "…" : "", "\" ", why));
}

bool IsIpAddress(const std::string& name) {
  unsigned char buf[16];
  return inet_pton(AF_INET, name.c_str(), buf) == 1 || inet_pton(AF_INET6, name.c_str(), buf) == 1;
}

// Why `label` cannot be a DNS label, or "".
std::string LabelProblem(absl::string_view label) {
  if (label.empty()) return "has an empty label (two dots in a row, or a leading dot)";
  if (label.size() > 63)
    return absl::StrCat("has a label of ", label.size(), " characters (max 63)");
  for (char c : label) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-') {
      return absl::StrCat("has the character '", std::string(1, c),
                          "'; a label is letters, digits and inner hyphens");
    }
  }
  if (label.front() == '-' || label.back() == '-') {
    return absl::StrCat("has the label \"", label, "\", which starts or ends with a hyphen");
  }
  return "";
}

bool Under(const std::string& name, const std::string& zone) {
  return !zone.empty() && (name == zone || absl::EndsWith(name, "." + zone));
}

std::string Plain(std::string name) {
  absl::AsciiStrToLower(&name);
  if (!name.empty() && name.back() == '.') name.pop_back();
  return name;
}

// A lookup whose NotFound (no such name) is an empty answer.
absl::StatusOr<std::vector<std::string>> Records(const dns::Resolver& resolver,
                                                 const std::string& name, const char* type) {
  auto r = resolver.Lookup(name, type);
  if (absl::IsNotFound(r.status())) return std::vector<std::string>();
  return r;
}

}  // namespace

absl::StatusOr<std::string> CustomHostname(absl::string_view raw, const std::string& base_domain) {
  if (raw.empty()) return Invalid(raw, "is empty");
  std::string name(absl::StripSuffix(raw, "."));
  absl::AsciiStrToLower(&name);
  if (name.size() > kMaxCustomHostname) {
    return Invalid(raw, absl::StrCat("is ", name.size(),
                                     " characters long; custom domains are at "
                                     "most ",
                                     kMaxCustomHostname));
  }
  if (IsIpAddress(name)) {
    return Invalid(raw, "is an IP address; give a DNS name and point it at c2d");
  }
  if (absl::StartsWith(name, "*.")) {
    return Invalid(raw,
                   "is a wildcard, which needs DNS-01 validation in a zone c2d does not serve; add "
                   "each name instead");
  }
  std::vector<absl::string_view> labels = absl::StrSplit(name, '.');
  for (absl::string_view label : labels) {
    if (std::string problem = LabelProblem(label); !problem.empty()) return Invalid(raw, problem);
  }
  if (Under(name, "localhost") || Under(name, Plain(base_domain))) {
    return Invalid(raw, absl::StrCat("is in c2d's own domain (", Plain(base_domain),
                                     "); every service has its name there already"));
  }
  if (labels.size() < 2) return Invalid(raw, "is not a fully qualified name (it has no dot)");
  if (!absl::ascii_isalpha(static_cast<unsigned char>(labels.back().front())) ||
      labels.back().size() < 2) {
    return Invalid(raw, "does not end in a top-level domain");
  }
  return name;
}

v1::DnsRecord RequiredRecord(const std::string& hostname, const std::string& cname_target,
                             const std::string& public_ipv4) {
  v1::DnsRecord r;
  r.set_name(hostname);
  const bool apex = std::count(hostname.begin(), hostname.end(), '.') == 1;
  if (apex && !public_ipv4.empty()) {
    r.set_type("A");
    r.set_value(public_ipv4);
  } else {
    r.set_type("CNAME");
    r.set_value(cname_target);
  }
  return r;
}

absl::Status CheckRecords(const dns::Resolver& resolver, const std::string& hostname,
                          const std::string& cname_target, const std::string& public_ipv4) {
  C2D_ASSIGN_OR_RETURN(std::vector<std::string> cname, Records(resolver, hostname, "CNAME"));
  if (!cname.empty()) {
    if (Plain(cname.front()) == Plain(cname_target)) return absl::OkStatus();
    return absl::FailedPreconditionError(
        absl::StrCat(hostname, " is a CNAME to ", cname.front(), ", not to ", cname_target));
  }
  C2D_ASSIGN_OR_RETURN(std::vector<std::string> a, Records(resolver, hostname, "A"));
  if (a.empty()) {
    const v1::DnsRecord record = RequiredRecord(hostname, cname_target, public_ipv4);
    return absl::FailedPreconditionError(
        absl::StrCat(hostname, " has no CNAME or A record yet: create ", record.type(), " ",
                     hostname, " -> ", record.value()));
  }
  std::set<std::string> want;
  if (!public_ipv4.empty()) want.insert(public_ipv4);
  C2D_ASSIGN_OR_RETURN(std::vector<std::string> target, Records(resolver, cname_target, "A"));
  want.insert(target.begin(), target.end());
  const bool all_ours =
      std::all_of(a.begin(), a.end(), [&](const std::string& ip) { return want.count(ip) > 0; });
  if (all_ours) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat(hostname, " has A records ", absl::StrJoin(a, ", "), ", not ",
                   want.empty() ? cname_target + "'s address" : absl::StrJoin(want, ", ")));
}

absl::Duration VerificationDelay(int attempts) {
  const int shift = std::clamp(attempts, 0, 8);
  return std::min(absl::Seconds(5) * (1 << shift), absl::Minutes(10));
}

int Verifier::Sweep() {
  auto due = pool_.Read("due verifications",
                        [&](pg::Tx& tx) { return DueVerifications(tx, kChecksPerSweep); });
  if (!due.ok()) {
    log::Warn("cannot read the domains to verify", {{"error", due.status().ToString()}});
    return 0;
  }
  const dns::Resolver resolver(config_.dns_resolver);
  int verified = 0;
  for (const PendingDomain& d : *due) {
    absl::Status check =
        config_.dns_resolver.empty()
            ? absl::FailedPreconditionError(
                  "c2d has no DNS resolver to check records with "
                  "(C2D_DNS_RESOLVER)")
            : CheckRecords(resolver, d.hostname, d.cname_target, config_.public_ipv4);
    absl::Status s = pool_.Transact("verification", [&](pg::Tx& tx) -> absl::Status {
      if (check.ok()) return RecordVerified(tx, d.id, issuer_of_(d.hostname));
      const bool give_up = absl::Now() - d.created_at > kVerificationGiveUp;
      std::string error(check.message());
      if (absl::IsUnavailable(check)) {
        error = absl::StrCat("the DNS server did not answer (", error, "); checking again");
      }
      if (give_up) error = absl::StrCat("gave up after 72 hours: ", error);
      return RecordUnverified(tx, d.id, error, absl::Now() + VerificationDelay(d.attempts),
                              give_up);
    });
    if (!s.ok()) {
      log::Warn("cannot record a domain's verification", {{"error", s.ToString()}});
    } else if (check.ok()) {
      log::Info("domain verified", {{"domain_id", d.id}, {"hostname", d.hostname}});
      ++verified;
    }
  }
  return verified;
}

}  // namespace c2d::certs
