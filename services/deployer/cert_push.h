#pragma once

// Certificates for instances that terminate TLS themselves. Under DNS
// routing (the openstack provider) a service's hostname resolves to its
// instances, and each instance's own Caddy serves HTTPS; c2d's certs service
// holds the certificates. The deployer's leader hands every running web
// instance the certificates of its service's names (the platform hostname
// and its verified custom domains) through Provider::ServeCertificates, and
// again whenever they change: a renewal, a domain verified or deleted, a
// new or replaced instance. What each instance was given is remembered by
// fingerprint, in memory: a new leader gives every instance its
// certificates once more, which changes nothing on the instance.

#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/cloud/provider.h"

namespace c2d::deployer {

// A name's certificate as the certs service keeps it: the chain PEM, then
// the key PEM. NotFound: there is none (yet).
using CertLookup = std::function<absl::StatusOr<std::string>(const std::string& name)>;

// A bundle split into its chain and key. InvalidArgument when it holds no
// certificate or no key.
absl::StatusOr<cloud::ServedCertificate> SplitBundle(absl::string_view bundle);

// Thread-safe; no lock is held while an instance is called.
class CertPusher {
 public:
  CertPusher(cloud::Provider& provider, CertLookup lookup)
      : provider_(provider), lookup_(std::move(lookup)) {}

  // Gives instance `ref` the certificates of `names` that exist, unless it
  // has exactly those already. Returns the provider's error (tried again
  // at the next call) or the lookup's, other than NotFound.
  absl::Status Push(const std::string& ref, const std::vector<std::string>& names);
  // Forgets the instances not in `refs` (gone) that were last given
  // certificates more than `grace` ago: one given them a moment ago may be
  // too new for the caller's `refs`.
  void Retain(const std::set<std::string>& refs, absl::Duration grace);

 private:
  struct Given {
    std::string fingerprint;  // of its certificates
    absl::Time at;
  };
  cloud::Provider& provider_;
  const CertLookup lookup_;
  absl::Mutex mu_;
  std::map<std::string, Given> given_ ABSL_GUARDED_BY(mu_);  // by instance ref
};

}  // namespace c2d::deployer
