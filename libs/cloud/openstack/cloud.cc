#include "libs/cloud/openstack/cloud.h"

#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "libs/common/env.h"
#include "libs/common/status.h"
#include "libs/crypto/x509.h"
#include "libs/oci/access.h"

namespace c2d::cloud::openstack {
namespace {

std::vector<std::string> List(const char* name) {
  std::vector<std::string> out;
  for (absl::string_view item : absl::StrSplit(env::GetString(name, ""), ',')) {
    item = absl::StripAsciiWhitespace(item);
    if (!item.empty()) out.emplace_back(item);
  }
  return out;
}

absl::Status ReadCredentials(Credentials& c) {
  C2D_ASSIGN_OR_RETURN(c.auth_url, env::GetRequired("C2D_OS_AUTH_URL"));
  c.application_credential_id = env::GetString("C2D_OS_APPLICATION_CREDENTIAL_ID", "");
  if (!c.application_credential_id.empty()) {
    C2D_ASSIGN_OR_RETURN(c.application_credential_secret,
                         env::GetRequired("C2D_OS_APPLICATION_CREDENTIAL_SECRET"));
  } else {
    C2D_ASSIGN_OR_RETURN(c.username, env::GetRequired("C2D_OS_USERNAME"));
    C2D_ASSIGN_OR_RETURN(c.password, env::GetRequired("C2D_OS_PASSWORD"));
    c.user_domain_id = env::GetString("C2D_OS_USER_DOMAIN_ID", "");
    c.user_domain_name = env::GetString("C2D_OS_USER_DOMAIN_NAME", "Default");
    c.project_id = env::GetString("C2D_OS_PROJECT_ID", "");
    c.project_name = env::GetString("C2D_OS_PROJECT_NAME", "");
    if (c.project_id.empty() && c.project_name.empty()) {
      return absl::InvalidArgumentError(
          "C2D_OS_PROJECT_NAME or C2D_OS_PROJECT_ID must be set (or an application credential)");
    }
    c.project_domain_id = env::GetString("C2D_OS_PROJECT_DOMAIN_ID", "");
    c.project_domain_name = env::GetString("C2D_OS_PROJECT_DOMAIN_NAME", "Default");
  }
  c.region = env::GetString("C2D_OS_REGION", "");
  c.interface = env::GetString("C2D_OS_INTERFACE", "public");
  if (c.interface != "public" && c.interface != "internal" && c.interface != "admin") {
    return absl::InvalidArgumentError("C2D_OS_INTERFACE: public, internal or admin");
  }
  c.ca_file = env::GetString("C2D_OS_CA_FILE", "");
  return absl::OkStatus();
}

// The PEM file named by `variable` (empty when unset), which must contain
// `marker`.
absl::StatusOr<std::string> ReadPem(const char* variable, absl::string_view marker) {
  const std::string path = env::GetString(variable, "");
  if (path.empty()) return std::string();
  std::ifstream in(path);
  std::stringstream pem;
  pem << in.rdbuf();
  if (!in || !absl::StrContains(pem.str(), marker)) {
    return absl::InvalidArgumentError(
        absl::StrCat(variable, ": ", path, " is not a readable PEM file (", marker, ")"));
  }
  return pem.str();
}

}  // namespace

absl::StatusOr<Credentials> CredentialsFromEnv() {
  Credentials c;
  C2D_RETURN_IF_ERROR(ReadCredentials(c));
  return c;
}

absl::StatusOr<CloudEnv> CloudEnv::FromEnv() {
  CloudEnv e;
  C2D_RETURN_IF_ERROR(ReadCredentials(e.credentials));
  ProviderOptions& o = e.options;
  C2D_ASSIGN_OR_RETURN(o.image, env::GetRequired("C2D_OS_IMAGE"));
  o.flavor = env::GetString("C2D_OS_FLAVOR", o.flavor);
  o.external_network = env::GetString("C2D_OS_EXTERNAL_NETWORK", "");
  o.subnet_cidr = env::GetString("C2D_OS_SUBNET_CIDR", o.subnet_cidr);
  o.dns_nameservers = List("C2D_OS_DNS_NAMESERVERS");
  o.control_cidrs = List("C2D_OS_CONTROL_CIDRS");
  o.key_name = env::GetString("C2D_OS_KEY_NAME", "");
  C2D_ASSIGN_OR_RETURN(o.admin_client.certificate_pem,
                       ReadPem("C2D_OS_ADMIN_CLIENT_CERT", "BEGIN CERTIFICATE"));
  C2D_ASSIGN_OR_RETURN(o.admin_client.key_pem, ReadPem("C2D_OS_ADMIN_CLIENT_KEY", "PRIVATE KEY"));
  if (o.admin_client.certificate_pem.empty() != o.admin_client.key_pem.empty()) {
    return absl::InvalidArgumentError(
        "C2D_OS_ADMIN_CLIENT_CERT and C2D_OS_ADMIN_CLIENT_KEY go together");
  }
  if (!o.admin_client.key_pem.empty()) {
    C2D_RETURN_IF_ERROR(crypto::EcKey::FromPem(o.admin_client.key_pem).status());
  }
  return e;
}

absl::StatusOr<std::unique_ptr<ProviderChoice>> ProviderChoice::FromEnv(const LocalOptions& local,
                                                                        pg::Pool& pool) {
  auto out = std::make_unique<ProviderChoice>();
  const std::string kind = env::GetString("C2D_PROVIDER", "local");
  if (kind == "local") {
    out->local_ = std::make_unique<LocalProvider>(local);
  } else if (kind == "openstack") {
    C2D_ASSIGN_OR_RETURN(CloudEnv os, CloudEnv::FromEnv());
    os.options.pull_credential =
        GrantPulls(local.registry.server, local.grant_key, absl::Minutes(30));
    out->cloud_ = std::make_unique<Cloud>(std::move(os), pool);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("C2D_PROVIDER: \"", kind, "\" is neither local nor openstack"));
  }
  return out;
}

std::function<absl::StatusOr<PullCredential>(const std::string& image)> GrantPulls(
    std::string registry_host, std::string grant_key, absl::Duration ttl) {
  return [host = std::move(registry_host), key = std::move(grant_key),
          ttl](const std::string& image) -> absl::StatusOr<PullCredential> {
    // host/path@sha256:…: a grant for that repository alone.
    const size_t at = image.find('@');
    if (image.rfind(host + "/", 0) != 0 || at == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("image ", image, " is not a digest in the registry ", host));
    }
    const std::string repository = image.substr(host.size() + 1, at - host.size() - 1);
    return PullCredential{.registry = host,
                          .username = oci::kGrantUser,
                          .password = oci::MintGrant(
                              key, {{.name = repository, .actions = {"pull"}}}, absl::Now() + ttl)};
  };
}

}  // namespace c2d::cloud::openstack
