#include "libs/cloud/openstack/caddy_admin.h"

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/civil_time.h"
#include "libs/common/status.h"
#include "libs/http/client.h"

namespace c2d::cloud::openstack {

std::string AdminName(absl::string_view instance) {
  return absl::StrReplaceAll(absl::AsciiStrToLower(instance), {{"_", "-"}});
}

absl::StatusOr<crypto::CertificateAuthority> InstanceAdminCa(absl::string_view secret,
                                                             absl::string_view instance) {
  if (instance.empty()) return absl::InvalidArgumentError("an admin CA needs an instance name");
  C2D_ASSIGN_OR_RETURN(
      crypto::EcKey key,
      crypto::EcKey::Derive(secret, absl::StrCat("c2d instance admin CA/", AdminName(instance))));
  // A fixed validity: made again later, the certificate anchors the same
  // chains (same subject and key).
  const absl::TimeZone utc = absl::UTCTimeZone();
  C2D_ASSIGN_OR_RETURN(std::string pem,
                       crypto::SelfSignedCa(key, absl::StrCat(AdminName(instance), " admin"),
                                            absl::FromCivil(absl::CivilDay(2020, 1, 1), utc),
                                            absl::FromCivil(absl::CivilDay(2120, 1, 1), utc)));
  return crypto::CertificateAuthority{std::move(key), std::move(pem)};
}

absl::Status LoadCertificates(const AdminEndpoint& endpoint,
                              const std::vector<ServedCertificate>& certs) {
  const std::pair<std::string, std::string> host_port =
      absl::StrSplit(endpoint.address, absl::MaxSplits(':', 1));
  const std::string name = AdminName(endpoint.instance);
  nlohmann::json body = nlohmann::json::array();
  for (const ServedCertificate& c : certs) {
    body.push_back({{"certificate", c.chain_pem}, {"key", c.key_pem}, {"tags", {"c2d"}}});
  }
  // The URL names the instance, whose certificate is checked against its
  // CA; the connection goes to its address.
  C2D_ASSIGN_OR_RETURN(
      http::Response r,
      http::Send({.method = "PATCH",
                  .url = absl::StrCat("https://", name, ":", host_port.second,
                                      "/config/apps/tls/certificates/load_pem"),
                  .headers = {{"Content-Type", "application/json"}},
                  .body = body.dump(),
                  .timeout = endpoint.timeout,
                  .ca_pem = endpoint.ca_pem,
                  .client_cert_pem = endpoint.client.certificate_pem,
                  .client_key_pem = endpoint.client.key_pem,
                  .resolve = {absl::StrCat(name, ":", host_port.second, ":", host_port.first)}}));
  if (r.status != 200) {
    return absl::FailedPreconditionError(absl::StrCat("instance ", endpoint.instance,
                                                      ": Caddy refused the certificates (HTTP ",
                                                      r.status, "): ", r.body));
  }
  return absl::OkStatus();
}

}  // namespace c2d::cloud::openstack
