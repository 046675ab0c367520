# shellcheck shell=bash
# The host Caddy that is c2d's local ingress: plain HTTP on loopback, with one
# static configuration written at start-up and never changed by deploys.
# Caddy 2.6 rebinds its listeners on every admin-API config change and resets
# some client connections while it does, so the routing table is not in
# Caddy's config: the catch-all route looks a request's upstreams up per
# request (cached for 250 ms) in DNS SRV records "<host>.ZONE" served by the
# loopback PowerDNS (tools/lib/pdns.sh), and the deployer changes only those
# records. Sourced.
#
#   c2d::caddy_start DIR ADMIN_PORT HTTP_PORT UNKNOWN_PORT UNAVAILABLE_PORT DNS_ADDR ZONE \
#                    HTTPS_PORT CERTS_ADDR [LOG_ADDR]
#       admin API and four servers on 127.0.0.1: the ingress on HTTP_PORT
#       and HTTPS_PORT, the answers for unknown hosts (404) on UNKNOWN_PORT
#       and for hosts without a healthy instance (503) on UNAVAILABLE_PORT;
#       DNS_ADDR (127.0.0.1:port) is PowerDNS, ZONE (ending with a dot) the
#       zone of the SRV records, CERTS_ADDR (127.0.0.1:port) the certs
#       service's endpoint (services/certs/cert_server.h), LOG_ADDR
#       (127.0.0.1:port, optional) where the ingress sends each request's
#       access-log entry, one UDP datagram each (the deployer's
#       C2D_INGRESS_LOG_ADDR counts them per app: services/deployer/
#       access_log.h); a running one with the same config is reused
#
# TLS without reloads: at every handshake Caddy asks CERTS_ADDR for the
# server name's certificate (tls.get_certificate.http; Caddy 2.6 keeps no
# copy of the answer), so a renewed certificate is served from the next
# handshake on. Plain HTTP asks CERTS_ADDR first whether to redirect (only
# names with a publicly trusted certificate are); when the certs service
# does not answer (refuses, or says nothing within a second), the 404
# server's /http-check says "no" and the request is served over HTTP (fail
# open). /.well-known/acme-challenge/ goes to the
# certs service (HTTP-01).
#   c2d::caddy_stop DIR
#
# Caddy keeps its state (certificates, an autosaved config it never resumes)
# in DIR, through XDG_DATA_HOME and XDG_CONFIG_HOME.

# shellcheck source=tools/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# shellcheck source=tools/lib/registry.sh
source "$(dirname "${BASH_SOURCE[0]}")/registry.sh"  # pid file helpers

c2d::caddy_start() {
  local dir=$1 admin_port=$2 http_port=$3 unknown_port=$4 unavailable_port=$5 dns_addr=$6 zone=$7
  local https_port=${8:-} certs_addr=${9:-} log_addr=${10:-}
  [[ -n $dir && -n $admin_port && -n $http_port && -n $unknown_port && -n $unavailable_port &&
    -n $dns_addr && $zone == *. && -n $https_port && -n $certs_addr ]] ||
    c2d::die "usage: c2d::caddy_start DIR ADMIN_PORT HTTP_PORT UNKNOWN_PORT UNAVAILABLE_PORT DNS_ADDR ZONE HTTPS_PORT CERTS_ADDR"
  mkdir -p "$dir/data" "$dir/config"
  # The ingress route: SRV "<host>.ZONE" lists a host's instances (their
  # targets, such as loopback.ZONE, resolve through the same PowerDNS). For
  # an unknown host the lookup fails (NXDOMAIN) and Caddy falls back to the
  # static upstream, the 404 server; the deployer points a host without a
  # healthy instance at the 503 server. Retries: a request that cannot reach
  # an instance is tried on the others for up to 5 s. Caddy checks that
  # budget only after a failure, and a saturated app's full accept queue
  # drops SYNs (the kernel resends them after 1 s, then 3 s), so each dial
  # gets 1 s: a dial that times out is retried elsewhere, where Caddy's
  # default (3 s, beyond a 2 s budget) answered 502. (Passive health checks
  # would skip a failing instance, but Caddy 2.6 provisions dynamic upstreams
  # afresh for every request and forgets their failures.)
  # Written fresh at every start (and run with --config, not --resume): the
  # ports and the zone are the caller's, never a stale autosaved config's.
  local ingress='{"handler": "reverse_proxy",
      "dynamic_upstreams": {"source": "srv", "name": "{http.request.host}.'"$zone"'", "refresh": "250ms",
                            "resolver": {"addresses": ["'"$dns_addr"'"]}},
      "upstreams": [{"dial": "127.0.0.1:'"$unknown_port"'"}],
      "transport": {"protocol": "http", "dial_timeout": "1s", "resolver": {"addresses": ["'"$dns_addr"'"]}},
      "load_balancing": {"selection_policy": {"policy": "round_robin"},
                         "try_duration": "5s", "try_interval": "50ms"}}'
  # The access log of the two ingress servers, as UDP datagrams: Caddy 2.6
  # will not start while a TCP log receiver is down, and a datagram lost
  # costs a sample, never a request.
  local logs='"default": {"level": "WARN"}' access=
  if [[ -n $log_addr ]]; then
    logs='"default": {"level": "WARN", "exclude": ["http.log.access.c2d_access"]},
      "c2d_access": {"writer": {"output": "net", "address": "udp/'"$log_addr"'"},
                     "encoder": {"format": "json"}, "include": ["http.log.access.c2d_access"]}'
    access='"logs": {"default_logger_name": "c2d_access"},'
  fi
  cat >"$dir/caddy.json.new" <<JSON
{
  "admin": {"listen": "127.0.0.1:$admin_port"},
  "logging": {"logs": {$logs}},
  "apps": {
   "tls": {"automation": {"policies": [
     {"get_certificate": [{"via": "http", "url": "http://$certs_addr/certificate"}]}]}},
   "http": {"servers": {
    "c2d": {
      "listen": ["127.0.0.1:$http_port"],
      "automatic_https": {"disable": true}, $access
      "routes": [
        {"match": [{"path": ["/.well-known/acme-challenge/*"]}],
         "handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": "$certs_addr"}],
                     "transport": {"protocol": "http", "dial_timeout": "1s"}}],
         "terminal": true},
        {"handle": [{"handler": "reverse_proxy",
                     "upstreams": [{"dial": "$certs_addr"}, {"dial": "127.0.0.1:$unknown_port"}],
                     "rewrite": {"method": "GET", "uri": "/http-check"},
                     "headers": {"request": {"set": {"X-Uri": ["{http.request.uri}"]}}},
                     "transport": {"protocol": "http", "dial_timeout": "1s",
                                   "response_header_timeout": "1s"},
                     "load_balancing": {"selection_policy": {"policy": "first"},
                                        "try_duration": "2s", "try_interval": "10ms"},
                     "health_checks": {"passive": {"fail_duration": "2s"}},
                     "handle_response": [{"match": {"status_code": [2]},
                                          "routes": [{"handle": [{"handler": "headers",
                                                                  "request": {"delete": ["X-Uri"]}}]}]}]}]},
        {"@id": "c2d-ingress", "handle": [$ingress]}]
    },
    "c2d-tls": {
      "listen": ["127.0.0.1:$https_port"],
      "automatic_https": {"disable": true}, $access
      "tls_connection_policies": [{}],
      "routes": [{"handle": [$ingress]}]
    },
    "c2d-unknown": {
      "listen": ["127.0.0.1:$unknown_port"],
      "automatic_https": {"disable": true},
      "routes": [{"match": [{"path": ["/http-check"]}],
                  "handle": [{"handler": "static_response", "status_code": 204}]},
                 {"handle": [{"handler": "static_response", "status_code": 404,
                              "body": "no c2d service answers to {http.request.host}\\n"}]}]
    },
    "c2d-unavailable": {
      "listen": ["127.0.0.1:$unavailable_port"],
      "automatic_https": {"disable": true},
      "routes": [{"handle": [{"handler": "static_response", "status_code": 503,
                              "headers": {"Retry-After": ["5"]},
                              "body": "{http.request.host} has no healthy instance right now\\n"}]}]
    }
  }}}
}
JSON
  # A running Caddy is reused as it is, unless it was started with another
  # config (other ports, or an older c2d's): then it is restarted.
  if c2d::pidfile_alive "$dir/caddy.pid" && cmp -s "$dir/caddy.json.new" "$dir/caddy.json"; then
    rm -f "$dir/caddy.json.new"
    return 0
  fi
  c2d::caddy_stop "$dir"
  mv "$dir/caddy.json.new" "$dir/caddy.json"
  XDG_DATA_HOME=$dir/data XDG_CONFIG_HOME=$dir/config \
    setsid caddy run --config "$dir/caddy.json" >>"$dir/caddy.log" 2>&1 </dev/null &
  echo $! >"$dir/caddy.pid"
  local deadline=$((SECONDS + 30))
  until curl -fsS "http://127.0.0.1:$admin_port/config/" >/dev/null 2>&1; do
    if ! c2d::pidfile_alive "$dir/caddy.pid" || ((SECONDS > deadline)); then
      tail -n 20 "$dir/caddy.log" >&2
      c2d::die "caddy did not start (log: $dir/caddy.log)"
    fi
    sleep 0.1
  done
}

c2d::caddy_stop() {
  c2d::stop_pidfile "$1/caddy.pid" 10
}
