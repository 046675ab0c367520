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
#   c2d::caddy_start DIR ADMIN_PORT HTTP_PORT UNKNOWN_PORT UNAVAILABLE_PORT DNS_ADDR ZONE
#       admin API and three servers on 127.0.0.1: the ingress on HTTP_PORT,
#       the answers for unknown hosts (404) on UNKNOWN_PORT and for hosts
#       without a healthy instance (503) on UNAVAILABLE_PORT; DNS_ADDR
#       (127.0.0.1:port) is PowerDNS, ZONE (ending with a dot) the zone of
#       the SRV records; a running one with the same config is reused
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
  [[ -n $dir && -n $admin_port && -n $http_port && -n $unknown_port && -n $unavailable_port &&
    -n $dns_addr && $zone == *. ]] ||
    c2d::die "usage: c2d::caddy_start DIR ADMIN_PORT HTTP_PORT UNKNOWN_PORT UNAVAILABLE_PORT DNS_ADDR ZONE"
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
  cat >"$dir/caddy.json.new" <<JSON
{
  "admin": {"listen": "127.0.0.1:$admin_port"},
  "logging": {"logs": {"default": {"level": "WARN"}}},
  "apps": {"http": {"servers": {
    "c2d": {
      "listen": ["127.0.0.1:$http_port"],
      "automatic_https": {"disable": true},
      "routes": [{"@id": "c2d-ingress",
                  "handle": [{"handler": "reverse_proxy",
                              "dynamic_upstreams": {"source": "srv", "name": "{http.request.host}.$zone",
                                                    "refresh": "250ms",
                                                    "resolver": {"addresses": ["$dns_addr"]}},
                              "upstreams": [{"dial": "127.0.0.1:$unknown_port"}],
                              "transport": {"protocol": "http", "dial_timeout": "1s",
                                            "resolver": {"addresses": ["$dns_addr"]}},
                              "load_balancing": {"selection_policy": {"policy": "round_robin"},
                                                 "try_duration": "5s", "try_interval": "50ms"}}]}]
    },
    "c2d-unknown": {
      "listen": ["127.0.0.1:$unknown_port"],
      "automatic_https": {"disable": true},
      "routes": [{"handle": [{"handler": "static_response", "status_code": 404,
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
