# shellcheck shell=bash
# Pebble (Let's Encrypt's test ACME CA) and pebble-challtestsrv (its mock DNS
# server and challenge responder) on loopback, for the ACME tests. Both are
# throwaway: Pebble keeps no state and makes new root and intermediate keys
# at every start. Sourced, never run.
#
#   c2d::challtestsrv_start DIR
#       mock DNS (UDP and TCP), the HTTP-01 responder and the management API
#       on free 127.0.0.1 ports. Every A query is answered 127.0.0.1 and no
#       AAAA record exists (Pebble would dial the first address it gets, the
#       AAAA one first, and nothing listens on ::1). Exports
#         C2D_CHALLTESTSRV_DNS          127.0.0.1:PORT, for Pebble's -dnsserver
#         C2D_CHALLTESTSRV_HTTP01_PORT  for Pebble's httpPort
#         C2D_CHALLTESTSRV_MANAGEMENT   http://127.0.0.1:PORT (add-http01, set-txt,
#                                       set-servfail, ... see pebble-challtestsrv's README)
#   c2d::challtestsrv_stop DIR
#
#   c2d::pebble_start DIR HTTP01_PORT DNS_SERVER
#       Pebble's ACME API and management API on free 127.0.0.1 ports, over
#       https with a localhost certificate from a throwaway CA made here with
#       openssl. HTTP-01 validation connects to HTTP01_PORT of the address
#       DNS_SERVER gives for the name; DNS-01 asks DNS_SERVER for the TXT
#       record. PEBBLE_VA_NOSLEEP=1 (no random waits before validating);
#       Pebble's random badNonce refusals (5 % of nonces) stay on and
#       validation is always real (PEBBLE_WFE_NONCEREJECT and
#       PEBBLE_VA_ALWAYS_VALID are removed from its environment). Orders for
#       blocked.c2d.test (and its subdomains) are refused by policy
#       (rejectedIdentifier). C2D_PEBBLE_CERT_VALIDITY=SECONDS, when set,
#       makes issued certificates valid that long (Pebble's default is
#       5 years). Exports
#         C2D_PEBBLE_DIRECTORY   https://127.0.0.1:PORT/dir
#         C2D_PEBBLE_CA_FILE     the CA to trust for that https (DIR/ca.pem)
#         C2D_PEBBLE_MANAGEMENT  https://127.0.0.1:PORT (GET /roots/0 and
#                                /intermediates/0: Pebble's issuing chain)
#   c2d::pebble_stop DIR
#   c2d::pebble_restart DIR DNS_SERVER   the same Pebble again (a CA outage)

# shellcheck source=tools/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# shellcheck source=tools/lib/registry.sh
source "$(dirname "${BASH_SOURCE[0]}")/registry.sh"  # pid file helpers

c2d::challtestsrv_start() {
  local dir=$1
  [[ -n $dir ]] || c2d::die "usage: c2d::challtestsrv_start DIR"
  command -v pebble-challtestsrv >/dev/null ||
    c2d::die "pebble-challtestsrv is not installed (apt-get install pebble)"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  c2d::challtestsrv_stop "$dir"
  local dns_port http_port mgmt_port
  dns_port=$(c2d::free_port)
  http_port=$(c2d::free_port)
  mgmt_port=$(c2d::free_port)
  # Empty -https01 and -tlsalpn01: those responders would take fixed default
  # ports (5003, 5001) that another run may hold.
  setsid pebble-challtestsrv -dns01 "127.0.0.1:$dns_port" -http01 "127.0.0.1:$http_port" \
    -https01 "" -tlsalpn01 "" -management "127.0.0.1:$mgmt_port" \
    -defaultIPv4 127.0.0.1 -defaultIPv6 "" >>"$dir/challtestsrv.log" 2>&1 </dev/null &
  echo $! >"$dir/challtestsrv.pid"
  local mgmt=http://127.0.0.1:$mgmt_port deadline=$((SECONDS + 30))
  # Setting the default A answer to what it already is: a harmless request
  # that succeeds once the management API listens.
  until curl -fsS --max-time 2 -d '{"ip":"127.0.0.1"}' "$mgmt/set-default-ipv4" >/dev/null 2>&1; do
    if ! c2d::pidfile_alive "$dir/challtestsrv.pid" || ((SECONDS > deadline)); then
      tail -n 20 "$dir/challtestsrv.log" >&2
      c2d::challtestsrv_stop "$dir"
      c2d::die "pebble-challtestsrv did not start (log: $dir/challtestsrv.log)"
    fi
    sleep 0.1
  done
  export C2D_CHALLTESTSRV_DNS=127.0.0.1:$dns_port
  export C2D_CHALLTESTSRV_HTTP01_PORT=$http_port
  export C2D_CHALLTESTSRV_MANAGEMENT=$mgmt
}

c2d::challtestsrv_stop() {
  c2d::stop_pidfile "$1/challtestsrv.pid" 10
}

# c2d::_pebble_tls DIR: a throwaway CA (DIR/ca.pem) and a certificate for
# localhost and 127.0.0.1 signed by it (DIR/localhost.pem, .key), for
# Pebble's own https listeners. Valid 2 days: a test run is shorter.
c2d::_pebble_tls() {
  local dir=$1
  (
    umask 077
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
      -subj "/CN=c2d Pebble test CA" -keyout "$dir/ca.key" -out "$dir/ca.pem" \
      -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" &&
      openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
        -keyout "$dir/localhost.key" -out "$dir/localhost.csr" &&
      printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" "basicConstraints=CA:FALSE" \
        "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" >"$dir/localhost.ext" &&
      openssl x509 -req -in "$dir/localhost.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
        -CAcreateserial -days 2 -extfile "$dir/localhost.ext" -out "$dir/localhost.pem"
  ) >"$dir/openssl.log" 2>&1 || {
    cat "$dir/openssl.log" >&2
    c2d::die "making Pebble's TLS certificate failed"
  }
  chmod 0644 "$dir/ca.pem"
}

c2d::pebble_start() {
  local dir=$1 http01_port=$2 dns_server=$3
  [[ -n $dir && -n $http01_port && -n $dns_server ]] ||
    c2d::die "usage: c2d::pebble_start DIR HTTP01_PORT DNS_SERVER"
  command -v pebble >/dev/null || c2d::die "pebble is not installed (apt-get install pebble)"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  c2d::pebble_stop "$dir"
  c2d::_pebble_tls "$dir"
  local port mgmt_port tls_port validity=
  port=$(c2d::free_port)
  mgmt_port=$(c2d::free_port)
  tls_port=$(c2d::free_port)  # TLS-ALPN-01 validation; unused by c2d's tests
  if [[ -n ${C2D_PEBBLE_CERT_VALIDITY:-} ]]; then
    [[ $C2D_PEBBLE_CERT_VALIDITY =~ ^[1-9][0-9]*$ ]] ||
      c2d::die "C2D_PEBBLE_CERT_VALIDITY must be a number of seconds"
    validity=", \"certificateValidityPeriod\": $C2D_PEBBLE_CERT_VALIDITY"
  fi
  cat >"$dir/pebble-config.json" <<JSON
{
  "pebble": {
    "listenAddress": "127.0.0.1:$port",
    "managementListenAddress": "127.0.0.1:$mgmt_port",
    "certificate": "$dir/localhost.pem",
    "privateKey": "$dir/localhost.key",
    "httpPort": $http01_port,
    "tlsPort": $tls_port,
    "ocspResponderURL": "",
    "externalAccountBindingRequired": false,
    "domainBlocklist": ["blocked.c2d.test"]$validity
  }
}
JSON
  c2d::_pebble_run "$dir" "$dns_server" "$port"
  export C2D_PEBBLE_DIRECTORY=https://127.0.0.1:$port/dir
  export C2D_PEBBLE_CA_FILE=$dir/ca.pem
  export C2D_PEBBLE_MANAGEMENT=https://127.0.0.1:$mgmt_port
}

c2d::pebble_stop() {
  c2d::stop_pidfile "$1/pebble.pid" 10
}

# c2d::pebble_restart DIR DNS_SERVER: Pebble again on the ports of its last
# start in DIR (tests of a CA outage). It forgets every account and order:
# a new CA instance behind the same directory URL.
c2d::pebble_restart() {
  local dir=$1 dns_server=$2
  [[ -f $dir/pebble-config.json ]] || c2d::die "no Pebble was started in $dir"
  c2d::pebble_stop "$dir"
  c2d::_pebble_run "$dir" "$dns_server" \
    "$(sed -n 's/.*"listenAddress": "127.0.0.1:\([0-9]*\)".*/\1/p' "$dir/pebble-config.json")"
}

# c2d::_pebble_run DIR DNS_SERVER PORT: starts Pebble with DIR's config and
# waits until its directory on PORT answers.
c2d::_pebble_run() {
  local dir=$1 dns_server=$2 port=$3
  env -u PEBBLE_WFE_NONCEREJECT -u PEBBLE_VA_ALWAYS_VALID PEBBLE_VA_NOSLEEP=1 \
    setsid pebble -config "$dir/pebble-config.json" -dnsserver "$dns_server" \
    >>"$dir/pebble.log" 2>&1 </dev/null &
  echo $! >"$dir/pebble.pid"
  local deadline=$((SECONDS + 30))
  until curl -fsS --max-time 2 --cacert "$dir/ca.pem" "https://127.0.0.1:$port/dir" >/dev/null 2>&1; do
    if ! c2d::pidfile_alive "$dir/pebble.pid" || ((SECONDS > deadline)); then
      tail -n 20 "$dir/pebble.log" >&2
      c2d::pebble_stop "$dir"
      c2d::die "pebble did not start on 127.0.0.1:$port (log: $dir/pebble.log)"
    fi
    sleep 0.1
  done
}
