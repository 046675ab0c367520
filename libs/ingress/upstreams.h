#pragma once

// The local ingress (DESIGN §1 point 1): one host Caddy whose configuration
// never changes while c2d runs. Caddy 2.6 resets some client connections on
// every admin-API change (it rebinds its listener), so instead of routes per
// service, tools/lib/caddy.sh gives it one catch-all route that takes its
// upstreams per request from the DNS SRV records of
// "<request host>.<zone>" in c2d's PowerDNS, refreshed every 250 ms (a
// lookup of loopback PowerDNS costs well under a millisecond). This
// class is the writing side of that table: the deployer sets a hostname's
// upstreams, and Caddy follows within kRefresh, without a reload, so other
// services' traffic is never disturbed. The records are written through the
// DNS service (services/dns), the one owner of c2d's DNS records; a write
// returns once PowerDNS serves it.
//
// A hostname without records gets Caddy's fallback (404, no such service);
// one with an empty upstream list points at the "unavailable" server (503),
// when one is configured. Thread-safe.

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "libs/dns/client.h"
#include "libs/dns/pdns.h"
#include "proto/c2d/v1/dns.grpc.pb.h"

namespace c2d::ingress {

struct Options {
  // Where Check and Get read the table: what Caddy sees.
  dns::PdnsOptions pdns;
  // The zone of the upstream table, with its trailing dot; tools create it
  // with an A record "loopback.<zone>" for 127.0.0.1.
  std::string zone = "ingress.c2d.internal.";
  // host:port of the server that answers 503 for a service without a
  // healthy instance; empty = such a hostname gets no records (404).
  std::string unavailable_addr;
};

class Upstreams {
 public:
  // How long Caddy may keep using the previous upstreams after a change.
  static constexpr absl::Duration kRefresh = absl::Milliseconds(250);

  // `dns`: a channel to the DNS service.
  Upstreams(Options options, std::shared_ptr<grpc::Channel> dns);

  // OK when the zone and its loopback record exist; else what is missing.
  absl::Status Check();
  // Routes `hostname` to `addresses` ("127.0.0.1:port"), balanced
  // round-robin; `owner` is the DNS owner of the hostname's record
  // ("service:<id>"). Unavailable when the DNS service could not make
  // PowerDNS serve it yet.
  absl::Status Set(const std::string& owner, const std::string& hostname,
                   const std::vector<std::string>& addresses);
  // Takes the hostname out: the ingress answers 404 for it again.
  absl::Status Remove(const std::string& owner, const std::string& hostname);
  // The addresses `hostname` routes to now, sorted (the 503 server is not listed);
  // NotFound without records.
  absl::StatusOr<std::vector<std::string>> Get(const std::string& hostname);

 private:
  // The record's name: "<hostname>.<zone>" without the trailing dot.
  std::string RecordName(const std::string& hostname) const;

  const Options options_;
  dns::Pdns pdns_;
  dns::Client dns_;
};

}  // namespace c2d::ingress
