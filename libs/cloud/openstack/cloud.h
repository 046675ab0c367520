#pragma once

// The OpenStack provider as a process runs it (C2D_PROVIDER=openstack): the
// session, the PostgreSQL ledger and the provider, configured from the
// environment.
//
//   C2D_OS_AUTH_URL                Keystone v3, e.g. https://keystone.example:5000/v3
//   C2D_OS_APPLICATION_CREDENTIAL_ID / _SECRET   (preferred), or
//   C2D_OS_USERNAME, C2D_OS_PASSWORD, C2D_OS_USER_DOMAIN_NAME (Default),
//   C2D_OS_PROJECT_NAME or C2D_OS_PROJECT_ID, C2D_OS_PROJECT_DOMAIN_NAME (Default)
//   C2D_OS_REGION, C2D_OS_INTERFACE (public), C2D_OS_CA_FILE
//   C2D_OS_IMAGE (required: a cloud image with cloud-init), C2D_OS_FLAVOR (m1.small)
//   C2D_OS_EXTERNAL_NETWORK (floating IPs; empty: none), C2D_OS_SUBNET_CIDR (10.42.0.0/24)
//   C2D_OS_DNS_NAMESERVERS, C2D_OS_CONTROL_CIDRS (comma-separated)
//   C2D_OS_KEY_NAME, C2D_OS_ADMIN_CLIENT_CERT and C2D_OS_ADMIN_CLIENT_KEY (PEM files:
//   c2d's client identity for the remote admin API of instances' Caddies)

#include <memory>

#include "libs/cloud/local_provider.h"
#include "libs/cloud/openstack/ledger.h"
#include "libs/cloud/openstack/provider.h"
#include "libs/cloud/openstack/session.h"

namespace c2d::cloud::openstack {

struct CloudEnv {
  Credentials credentials;
  ProviderOptions options;
  // InvalidArgument naming the variable that is missing or wrong.
  static absl::StatusOr<CloudEnv> FromEnv();
};

// C2D_OS_AUTH_URL and the credentials above (no provider settings): what
// the DNS service needs for Designate.
absl::StatusOr<Credentials> CredentialsFromEnv();

class Cloud {
 public:
  Cloud(CloudEnv env, pg::Pool& pool)
      : session_(std::move(env.credentials)),
        ledger_(pool, "openstack"),
        provider_(session_, ledger_, std::move(env.options)) {}
  OpenStackProvider& provider() { return provider_; }
  Session& session() { return session_; }

 private:
  Session session_;
  PgLedger ledger_;
  OpenStackProvider provider_;
};

// Where a process that runs instances (the deployer, dbprov) runs them:
// C2D_PROVIDER "local" (the default: containers on the engine of `local`)
// or "openstack" (Nova servers, CloudEnv::FromEnv; each pulls with a grant
// for its one repository of `local`'s registry, never with its password).
class ProviderChoice {
 public:
  static absl::StatusOr<std::unique_ptr<ProviderChoice>> FromEnv(const LocalOptions& local,
                                                                 pg::Pool& pool);
  Provider& provider() { return cloud_ ? static_cast<Provider&>(cloud_->provider()) : *local_; }
  Cloud* openstack() { return cloud_.get(); }  // null under "local"

 private:
  std::unique_ptr<LocalProvider> local_;
  std::unique_ptr<Cloud> cloud_;
};

// A pull credential source for ProviderOptions: a grant (libs/oci/access.h)
// to pull the one repository of `image`, from `registry_host`, signed with
// `grant_key`, valid for `ttl`.
std::function<absl::StatusOr<PullCredential>(const std::string& image)> GrantPulls(
    std::string registry_host, std::string grant_key, absl::Duration ttl);

}  // namespace c2d::cloud::openstack
