#include "services/certs/config.h"

#include "libs/common/env.h"
#include "libs/common/status.h"

namespace c2d::certs {

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
  C2D_ASSIGN_OR_RETURN(crypto::MasterKeys keys, crypto::MasterKeys::FromEnv());
  c.master_keys = std::move(keys);
  return c;
}

}  // namespace c2d::certs
