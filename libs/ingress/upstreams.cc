#include "libs/ingress/upstreams.h"

#include <algorithm>
#include <regex>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "libs/common/status.h"

namespace c2d::ingress {
namespace {

// Caddy dials each SRV target through the same PowerDNS; every local
// instance listens on loopback.
constexpr char kLoopbackHost[] = "127.0.0.1";
// Seconds; Caddy refreshes on its own schedule (kRefresh) whatever the TTL says.
constexpr int kTtl = 1;
bool ValidHostname(const std::string& h) {
  static const std::regex kHost(
      "^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$");
  return !h.empty() && h.size() <= 200 && std::regex_match(h, kHost);
}

}  // namespace

Upstreams::Upstreams(Options options, std::shared_ptr<grpc::Channel> dns)
    : options_(std::move(options)), pdns_(options_.pdns), dns_(std::move(dns)) {}

std::string Upstreams::RecordName(const std::string& hostname) const {
  return absl::StrCat(hostname, ".", absl::StripSuffix(options_.zone, "."));
}

absl::Status Upstreams::Check() {
  if (auto s = pdns_.CheckZone(options_.zone); !s.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("the ingress zone ", options_.zone, " is not in PowerDNS: ", s.message()));
  }
  const std::string loopback = absl::StrCat("loopback.", options_.zone);
  if (auto rr = pdns_.Get(options_.zone, loopback, "A"); !rr.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("the ingress zone has no A record ", loopback, ": ", rr.status().message()));
  }
  return absl::OkStatus();
}

absl::Status Upstreams::Set(const std::string& owner, const std::string& hostname,
                            const std::vector<std::string>& addresses) {
  if (!ValidHostname(hostname)) {
    return absl::InvalidArgumentError(absl::StrCat("\"", hostname, "\" is not a hostname"));
  }
  std::vector<std::string> targets = addresses;
  if (targets.empty()) {
    if (options_.unavailable_addr.empty()) return Remove(owner, hostname);
    targets.push_back(options_.unavailable_addr);
  }
  v1::UpsertRecordsRequest request;
  v1::Record& record = *request.add_records();
  record.set_name(RecordName(hostname));
  record.set_type(v1::RECORD_TYPE_SRV);
  record.set_ttl(kTtl);
  record.set_owner(owner);
  for (const std::string& a : targets) {
    std::pair<std::string, std::string> hp = absl::StrSplit(a, absl::MaxSplits(':', 1));
    int port = 0;
    if (hp.first != kLoopbackHost || !absl::SimpleAtoi(hp.second, &port) || port < 1 ||
        port > 65535) {
      return absl::InvalidArgumentError(
          absl::StrCat("upstream \"", a, "\" is not 127.0.0.1:<port>"));
    }
    // priority 0, weight 1: Caddy balances round-robin over them all.
    record.add_values(absl::StrCat("0 1 ", port, " ", RecordName("loopback")));
  }
  C2D_ASSIGN_OR_RETURN(v1::UpsertRecordsResponse response, dns_.Upsert(request));
  if (!response.synced()) {
    return absl::UnavailableError(absl::StrCat("the DNS service recorded the upstreams of ",
                                               hostname, " but PowerDNS does not serve them yet"));
  }
  return absl::OkStatus();
}

absl::Status Upstreams::Remove(const std::string& owner, const std::string& hostname) {
  if (!ValidHostname(hostname)) {
    return absl::InvalidArgumentError(absl::StrCat("\"", hostname, "\" is not a hostname"));
  }
  v1::DeleteRecordsRequest request;
  request.set_owner(owner);
  request.set_name(RecordName(hostname));
  request.set_type(v1::RECORD_TYPE_SRV);
  C2D_ASSIGN_OR_RETURN(v1::DeleteRecordsResponse response, dns_.Delete(request));
  if (!response.synced()) {
    return absl::UnavailableError(absl::StrCat("the DNS service removed the upstreams of ",
                                               hostname, " but PowerDNS still serves them"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> Upstreams::Get(const std::string& hostname) {
  auto rr = pdns_.Get(options_.zone, RecordName(hostname) + ".", "SRV");
  if (!rr.ok()) return rr.status();
  std::vector<std::string> out;
  for (const std::string& content : rr->records) {
    std::vector<std::string> f = absl::StrSplit(content, ' ', absl::SkipEmpty());
    if (f.size() != 4) continue;
    std::string address = absl::StrCat(kLoopbackHost, ":", f[2]);
    if (address != options_.unavailable_addr) out.push_back(std::move(address));
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace c2d::ingress
