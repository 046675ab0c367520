# shellcheck shell=bash
# PowerDNS Authoritative on loopback for local runs and tests: sourced, never
# run. It serves the ingress's upstream table now: the ingress Caddy finds a
# host's instances in SRV records of a loopback zone (tools/lib/caddy.sh), and
# the deployer changes only those records, through the PowerDNS HTTP API, so
# deploys never reconfigure Caddy. Later it serves c2d's DNS zones as well.
#
#   c2d::pdns_start DIR DNS_PORT API_PORT API_KEY ZONE
#                      DNS (UDP and TCP) and the HTTP API on 127.0.0.1; config,
#                      sqlite database, pid and log in DIR; creates ZONE (e.g.
#                      ingress.c2d.internal.) with loopback.ZONE -> 127.0.0.1;
#                      a running one with the same settings is reused
#   c2d::pdns_stop DIR

# shellcheck source=tools/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# shellcheck source=tools/lib/registry.sh
source "$(dirname "${BASH_SOURCE[0]}")/registry.sh"  # pid file helpers

C2D_PDNS_SCHEMA=/usr/share/doc/pdns-backend-sqlite3/schema.sqlite3.sql

c2d::pdns_start() {
  local dir=$1 dns_port=$2 api_port=$3 api_key=$4 zone=$5
  [[ -n $dir && -n $dns_port && -n $api_port && -n $api_key && $zone == *. ]] ||
    c2d::die "usage: c2d::pdns_start DIR DNS_PORT API_PORT API_KEY ZONE (ZONE ends with a dot)"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  command -v pdns_server >/dev/null || c2d::die "pdns_server is not installed (apt-get install pdns-server)"
  [[ -f $C2D_PDNS_SCHEMA ]] || c2d::die "$C2D_PDNS_SCHEMA is missing (apt-get install pdns-backend-sqlite3)"
  command -v sqlite3 >/dev/null || c2d::die "sqlite3 is not installed (apt-get install sqlite3)"
  # No setuid/setgid: PowerDNS stays the user who started it, the owner of
  # DIR and of the database (sqlite also writes its journal next to it).
  # Every cache is off: a changed record must be what the next query sees,
  # or the ingress would keep sending traffic to an instance being removed.
  # security-poll-suffix empty: no status lookups to powerdns.com.
  (umask 077 && cat >"$dir/pdns.conf.new") <<EOF
launch=gsqlite3
gsqlite3-database=$dir/pdns.sqlite3
gsqlite3-pragma-synchronous=1
local-address=127.0.0.1
local-port=$dns_port
api=yes
api-key=$api_key
webserver=yes
webserver-address=127.0.0.1
webserver-port=$api_port
webserver-allow-from=127.0.0.0/8
cache-ttl=0
query-cache-ttl=0
negquery-cache-ttl=0
zone-cache-refresh-interval=0
security-poll-suffix=
socket-dir=$dir
guardian=no
daemon=no
disable-syslog=yes
loglevel=4
EOF
  # A running PowerDNS is reused as it is, unless it was started with other
  # ports or another key (then it is restarted; the records stay in the
  # database).
  if c2d::pidfile_alive "$dir/pdns.pid" && cmp -s "$dir/pdns.conf.new" "$dir/pdns.conf"; then
    rm -f "$dir/pdns.conf.new"
  else
    c2d::pdns_stop "$dir"
    mv "$dir/pdns.conf.new" "$dir/pdns.conf"
    # Created once, under another name first: a failed creation leaves no
    # half-made database that later starts would take for a good one.
    if [[ ! -f $dir/pdns.sqlite3 ]]; then
      rm -f "$dir/pdns.sqlite3.new"
      sqlite3 "$dir/pdns.sqlite3.new" <"$C2D_PDNS_SCHEMA"
      mv "$dir/pdns.sqlite3.new" "$dir/pdns.sqlite3"
    fi
    # --config-dir: only DIR/pdns.conf counts, never /etc/powerdns. setsid:
    # it outlives the calling shell's job control, as the registry does.
    setsid pdns_server --config-dir="$dir" >>"$dir/pdns.log" 2>&1 </dev/null &
    echo $! >"$dir/pdns.pid"
  fi

  local api=http://127.0.0.1:$api_port/api/v1/servers/localhost
  local deadline=$((SECONDS + 30))
  until curl -fsS --max-time 2 -H "X-API-Key: $api_key" "$api" >/dev/null 2>&1; do
    if ! c2d::pidfile_alive "$dir/pdns.pid" || ((SECONDS > deadline)); then
      tail -n 20 "$dir/pdns.log" >&2
      c2d::pdns_stop "$dir"
      c2d::die "PowerDNS did not start on 127.0.0.1:$dns_port, API on 127.0.0.1:$api_port (log: $dir/pdns.log)"
    fi
    sleep 0.1
  done

  # The zone and the name SRV records point at: made once, kept in the
  # database; redoing it on a restart is harmless (409: the zone exists).
  local code
  code=$(curl -sS -o "$dir/api.out" -w '%{http_code}' --max-time 10 -H "X-API-Key: $api_key" \
    "$api/zones/$zone") || code=000
  if [[ $code == 404 ]]; then
    code=$(curl -sS -o "$dir/api.out" -w '%{http_code}' --max-time 10 -H "X-API-Key: $api_key" \
      -X POST "$api/zones" -H 'Content-Type: application/json' \
      -d "$(jq -cn --arg z "$zone" '{name: $z, kind: "Native", nameservers: []}')") || code=000
    [[ $code == 201 || $code == 409 ]] ||
      c2d::die "PowerDNS: creating zone $zone answered $code: $(cat "$dir/api.out")"
  elif [[ $code != 200 ]]; then
    c2d::die "PowerDNS: reading zone $zone answered $code: $(cat "$dir/api.out")"
  fi
  code=$(curl -sS -o "$dir/api.out" -w '%{http_code}' --max-time 10 -H "X-API-Key: $api_key" \
    -X PATCH "$api/zones/$zone" -H 'Content-Type: application/json' \
    -d "$(jq -cn --arg n "loopback.$zone" '{rrsets: [{name: $n, type: "A", ttl: 3600,
          changetype: "REPLACE", records: [{content: "127.0.0.1", disabled: false}]}]}')") || code=000
  [[ $code == 204 ]] ||
    c2d::die "PowerDNS: setting loopback.$zone answered $code: $(cat "$dir/api.out")"
  rm -f "$dir/api.out"
}

c2d::pdns_stop() {
  c2d::stop_pidfile "$1/pdns.pid" 10
}
