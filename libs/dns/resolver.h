#pragma once

// Asks one DNS server for a name's records (libresolv, UDP with TCP
// fallback), without the system's resolver configuration or cache: the
// certs service checks that a custom domain's CNAME (or A record) points at
// c2d, and tests ask the loopback PowerDNS. Thread-safe (a resolver state
// per call).

#include <chrono>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace c2d::dns {

class Resolver {
 public:
  // `server`: "ip:port" (IPv4).
  explicit Resolver(std::string server,
                    std::chrono::milliseconds timeout = std::chrono::milliseconds(2000))
      : server_(std::move(server)), timeout_(timeout) {}

  // The records of `type` ("A", "AAAA", "CNAME", "TXT") at `name`, as
  // text: addresses, names without the trailing dot, TXT strings joined.
  // Empty when the name exists without such records; NotFound when it does
  // not exist (NXDOMAIN); Unavailable when the server does not answer;
  // InvalidArgument for a bad server or type.
  absl::StatusOr<std::vector<std::string>> Lookup(const std::string& name,
                                                  const std::string& type) const;

 private:
  const std::string server_;
  const std::chrono::milliseconds timeout_;
};

}  // namespace c2d::dns
