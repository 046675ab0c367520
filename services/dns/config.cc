#include "services/dns/config.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "libs/common/env.h"
#include "libs/common/status.h"

namespace c2d::dns {

std::vector<std::pair<std::string, v1::ZoneKind>> Config::Zones() const {
  std::vector<std::pair<std::string, v1::ZoneKind>> zones;
  if (absl::StrContains(base_domain, '.')) zones.emplace_back(base_domain, v1::ZONE_KIND_PUBLIC);
  zones.emplace_back(absl::StrCat("internal.", base_domain), v1::ZONE_KIND_INTERNAL);
  if (!ingress_zone.empty()) zones.emplace_back(ingress_zone, v1::ZONE_KIND_INGRESS);
  return zones;
}

absl::StatusOr<Config> Config::FromEnv() {
  Config c;
  c.backend = env::GetString("C2D_DNS_BACKEND", c.backend);
  if (c.backend == "pdns") {
    C2D_ASSIGN_OR_RETURN(c.pdns.api_url, env::GetRequired("C2D_PDNS_API_URL"));
    C2D_ASSIGN_OR_RETURN(c.pdns.api_key, env::GetRequired("C2D_PDNS_API_KEY"));
  } else if (c.backend != "designate") {
    return absl::InvalidArgumentError(
        absl::StrCat("C2D_DNS_BACKEND: \"", c.backend, "\" is neither pdns nor designate"));
  }
  c.base_domain = absl::AsciiStrToLower(env::GetString("C2D_BASE_DOMAIN", c.base_domain));
  c.ingress_zone = absl::AsciiStrToLower(
      absl::StripSuffix(env::GetString("C2D_INGRESS_ZONE", c.ingress_zone), "."));
  C2D_ASSIGN_OR_RETURN(c.sweep_interval,
                       env::GetDuration("C2D_DNS_SWEEP_INTERVAL", c.sweep_interval,
                                        std::chrono::milliseconds(200), std::chrono::hours(1)));
  return c;
}

}  // namespace c2d::dns
