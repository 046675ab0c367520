#include "services/certs/config.h"

#include <arpa/inet.h>

#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "libs/common/env.h"
#include "libs/common/status.h"

namespace c2d::certs {
namespace {

// The first IPv4 nameserver of /etc/resolv.conf, as "ip:53"; "" if none.
std::string SystemResolver() {
  std::ifstream in("/etc/resolv.conf");
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> f = absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    in_addr a{};
    if (f.size() >= 2 && f[0] == "nameserver" && inet_pton(AF_INET, f[1].c_str(), &a) == 1) {
      return f[1] + ":53";
    }
  }
  return "";
}

}  // namespace

absl::StatusOr<Config> Config::FromEnv() {
  using std::chrono::milliseconds;
  Config c;
  c.http_addr = env::GetString("C2D_CERTS_HTTP_ADDR", c.http_addr);
  c.ca_file = env::GetString("C2D_INTERNAL_CA_FILE", "");
  C2D_ASSIGN_OR_RETURN(c.internal_lifetime,
                       env::GetDuration("C2D_INTERNAL_CERT_LIFETIME", c.internal_lifetime,
                                        milliseconds(60'000), std::chrono::hours(24 * 398)));
  C2D_ASSIGN_OR_RETURN(c.sweep_interval,
                       env::GetDuration("C2D_CERTS_SWEEP_INTERVAL", c.sweep_interval,
                                        milliseconds(200), std::chrono::hours(1)));
  c.base_domain = env::GetString("C2D_BASE_DOMAIN", c.base_domain);
  c.acme_directory = env::GetString("C2D_ACME_DIRECTORY", "");
  c.acme_ca_file = env::GetString("C2D_ACME_CA_FILE", "");
  c.acme_email = env::GetString("C2D_ACME_EMAIL", "");
  C2D_ASSIGN_OR_RETURN(c.acme_timeout,
                       env::GetDuration("C2D_ACME_TIMEOUT", c.acme_timeout, milliseconds(10'000),
                                        std::chrono::hours(1)));
  c.dns_addr = env::GetString("C2D_DNS_ADDR", "");
  c.public_ipv4 = env::GetString("C2D_PUBLIC_IPV4", "");
  c.dns_resolver = env::GetString("C2D_DNS_RESOLVER", "");
  if (c.dns_resolver.empty()) c.dns_resolver = SystemResolver();
  C2D_ASSIGN_OR_RETURN(c.max_custom_domains,
                       env::GetInt("C2D_MAX_CUSTOM_DOMAINS", c.max_custom_domains, 0, 1000));
  C2D_ASSIGN_OR_RETURN(crypto::MasterKeys keys, crypto::MasterKeys::FromEnv());
  c.master_keys = std::move(keys);
  return c;
}

}  // namespace c2d::certs
