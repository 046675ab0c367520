#include "services/deployer/cert_push.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/common/status.h"
#include "libs/crypto/hash.h"

namespace c2d::deployer {

absl::StatusOr<cloud::ServedCertificate> SplitBundle(absl::string_view bundle) {
  constexpr absl::string_view kCertificate = "-----BEGIN CERTIFICATE-----";
  // The key is the first PEM block that is not a certificate.
  size_t at = 0;
  while ((at = bundle.find("-----BEGIN ", at)) != absl::string_view::npos &&
         absl::StartsWith(bundle.substr(at), kCertificate)) {
    ++at;
  }
  if (at == absl::string_view::npos || !absl::StartsWith(bundle, kCertificate)) {
    return absl::InvalidArgumentError("certificate bundle: no certificate chain then key");
  }
  return cloud::ServedCertificate{.chain_pem = std::string(bundle.substr(0, at)),
                                  .key_pem = std::string(bundle.substr(at))};
}

absl::Status CertPusher::Push(const std::string& ref, const std::vector<std::string>& names) {
  std::vector<cloud::ServedCertificate> certs;
  std::string all;
  for (const std::string& name : names) {
    absl::StatusOr<std::string> bundle = lookup_(name);
    if (absl::IsNotFound(bundle.status())) continue;
    C2D_RETURN_IF_ERROR(bundle.status());
    C2D_ASSIGN_OR_RETURN(cloud::ServedCertificate c, SplitBundle(*bundle));
    certs.push_back(std::move(c));
    absl::StrAppend(&all, *bundle);
  }
  // Nothing to serve and nothing given before: an instance starts with no
  // certificate.
  const std::string fingerprint = certs.empty() ? "" : crypto::Sha256Hex(all);
  {
    absl::MutexLock lock(&mu_);
    auto it = given_.find(ref);
    if (it == given_.end() ? fingerprint.empty() : it->second.fingerprint == fingerprint) {
      return absl::OkStatus();
    }
  }
  // Two callers at once may both send the same: the instance ends up the
  // same.
  C2D_RETURN_IF_ERROR(provider_.ServeCertificates(ref, certs));
  absl::MutexLock lock(&mu_);
  given_[ref] = {fingerprint, absl::Now()};
  return absl::OkStatus();
}

void CertPusher::Retain(const std::set<std::string>& refs, absl::Duration grace) {
  const absl::Time before = absl::Now() - grace;
  absl::MutexLock lock(&mu_);
  std::erase_if(given_, [&](const auto& entry) {
    return !refs.count(entry.first) && entry.second.at <= before;
  });
}

}  // namespace c2d::deployer
