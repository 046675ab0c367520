#!/usr/bin/env bash
# tools/c2d-up end to end, in a fresh state directory: up, a second up that
# finds its state (same cluster, same port, data kept, services restarted),
# down, and up again after down.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
export C2D_STATE_DIR=$(mktemp -d "${C2D_TEST_TMP:-/tmp}/c2d-up.XXXXXX")
export C2D_UP_SKIP_BUILD=1
# The CLI login c2d-up does stays in the test's state dir.
export XDG_CONFIG_HOME=$C2D_STATE_DIR/config
export C2D_BUILD_DIR=${C2D_BUILD_DIR:-$root/build}
up=$root/tools/c2d-up
source "$root/tools/lib/registry.sh"
# The rootless build engine's directory, outside the state dir (see c2d-up).
build_engine=/var/lib/c2d-build/$(printf '%s' "$C2D_STATE_DIR" | sha256sum | cut -c1-12)
trap '"$up" --down >/dev/null 2>&1 || true; rm -rf "$C2D_STATE_DIR" "$build_engine"' EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
env_of() { grep "^$1=" "$C2D_STATE_DIR/c2d.env" | cut -d= -f2-; }
sql() { psql "$(env_of C2D_DATABASE_URL)" -Atqc "$1"; }

out=$("$up" 2>&1) || { echo "$out"; fail "first c2d-up failed"; }
for svc in gateway builder deployer dbprov dns certs; do
  grep -Eq "^$svc +up +grpc 127\.0\.0\.1:[0-9]+ " <<<"$out" || { echo "$out"; fail "$svc not reported up"; }
  addr=$(env_of "C2D_${svc^^}_ADDR")
  "$C2D_BUILD_DIR/tools/c2d-probe" "$addr" >/dev/null || fail "$svc at $addr not SERVING"
  metrics=$(curl -fsS "http://$(env_of "C2D_${svc^^}_METRICS_ADDR")/metrics") || fail "$svc metrics unreachable"
  grep -q c2d_db_pool_connections <<<"$metrics" || fail "$svc metrics missing"
done
# The newcomer path: the sample app deployed, answering at the URL printed.
sample_url=$(grep -A1 '^The sample app' <<<"$out" | tail -n 1 | tr -d ' ')
[[ $sample_url == http://hello.demo.localhost:* ]] || { echo "$out"; fail "no sample URL printed"; }
grep -q 'from c2d! version' <<<"$(curl -fsS "$sample_url")" || fail "the sample app does not answer at $sample_url"
# The ingress's access log reaches the deployer: the sample's requests are
# counted under its service id (the hostname refresh is 10 s).
service_id=$(sql "SELECT id FROM services WHERE name = 'hello' AND deleted_at IS NULL")
counted=
for _ in $(seq 40); do
  curl -fsS -o /dev/null "$sample_url" || true
  counted=$(curl -fsS "http://$(env_of C2D_DEPLOYER_METRICS_ADDR)/metrics" |
    grep -F "c2d_app_requests_total{code=\"2xx\",service=\"$service_id\"}" || true)
  [[ -n $counted ]] && break
  sleep 0.5
done
[[ -n $counted ]] || fail "the deployer counts no request of the sample (c2d_app_requests_total)"
grep -Eq "^api +up" <<<"$out" || fail "REST API not reported up"
grep -q ' live ' <<<"$("$C2D_BUILD_DIR/tools/c2d" status demo/hello)" || fail "the CLI does not show the sample live"
grep -Eq "^registry +up" <<<"$out" || fail "registry not reported up"
grep -Eq "^engine +up" <<<"$out" || fail "engine not reported up"
grep -Eq "^powerdns +up" <<<"$out" || fail "PowerDNS not reported up"
grep -Eq "^ingress +up" <<<"$out" || fail "ingress not reported up"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Host: nothing.localhost" "http://$(env_of C2D_INGRESS_HTTP_ADDR)/")
[[ $code == 404 ]] || fail "ingress answered $code for an unknown host, not 404"
# The ingress's upstreams are SRV records in PowerDNS: the API answers with the
# key from c2d.env (and only with it), the zone exists, and a record pointing
# a host at the ingress's 503 server takes effect without touching Caddy.
zone=$(env_of C2D_INGRESS_ZONE)
[[ $zone == ingress.c2d.internal. ]] || fail "C2D_INGRESS_ZONE is '$zone'"
pdns_api="$(env_of C2D_PDNS_API_URL)/api/v1/servers/localhost"
pdns_key=$(env_of C2D_PDNS_API_KEY)
code=$(curl -s -o /dev/null -w '%{http_code}' -H "X-API-Key: wrong" "$pdns_api")
[[ $code == 401 ]] || fail "PowerDNS API answered $code to a wrong key, not 401"
name=$(curl -fsS -H "X-API-Key: $pdns_key" "$pdns_api/zones/$zone" | jq -r .name) ||
  fail "PowerDNS API does not answer with the key from c2d.env, or zone $zone is missing"
[[ $name == "$zone" ]] || fail "PowerDNS returned zone '$name', not $zone"
unavailable_port=$(env_of C2D_INGRESS_UNAVAILABLE_ADDR | cut -d: -f2)
curl -fsS -X PATCH -H "X-API-Key: $pdns_key" -H 'Content-Type: application/json' "$pdns_api/zones/$zone" \
  -d "$(jq -cn --arg n "down.localhost.$zone" --arg c "0 1 $unavailable_port loopback.$zone" \
    '{rrsets: [{name: $n, type: "SRV", ttl: 1, changetype: "REPLACE", records: [{content: $c, disabled: false}]}]}')" ||
  fail "PowerDNS API refused an SRV record"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Host: down.localhost" "http://$(env_of C2D_INGRESS_HTTP_ADDR)/")
[[ $code == 503 ]] || fail "ingress answered $code for a host whose SRV record points at the 503 server"
registry=$(env_of C2D_REGISTRY_URL)
tags=$(c2d::registry_curl "${registry#http://}" c2d "$(env_of C2D_REGISTRY_PASSWORD)" \
  repository:c2d/stacks/static:pull -fsS "$registry/v2/c2d/stacks/static/tags/list")
grep -q '"1"' <<<"$tags" || fail "static stack image missing from the registry"
[[ $(curl -fsS --unix-socket "$(env_of C2D_ENGINE_SOCKET)" http://d/v1.41/_ping) == OK ]] || fail "engine not answering"
[[ $(stat -c %a "$C2D_STATE_DIR/c2d.env") == 600 ]] || fail "c2d.env is not private"
# Nothing of the state is the build user's to read.
for d in registry engine builds log run repos volumes; do
  runuser -u c2d-build -- ls "$C2D_STATE_DIR/$d" >/dev/null 2>&1 && fail "c2d-build can list state/$d"
done
runuser -u c2d-build -- cat "$C2D_STATE_DIR/c2d.env" >/dev/null 2>&1 && fail "c2d-build can read c2d.env"
runuser -u c2d-build -- cat "$C2D_STATE_DIR/registry/token-key.pem" >/dev/null 2>&1 &&
  fail "c2d-build can read the registry's signing key"
[[ $(sql "SELECT max(version) FROM schema_migrations") -ge 1 ]] || fail "schema not migrated"
sql "CREATE TABLE survives (x int); INSERT INTO survives VALUES (42)"
url1=$(env_of C2D_DATABASE_URL)
registry1=$(env_of C2D_REGISTRY_URL)
ingress1=$(env_of C2D_INGRESS_HTTP_ADDR)
key1=$(env_of C2D_MASTER_KEY)
pid1=$(cat "$C2D_STATE_DIR/run/builder.pid")
pdns_pid1=$(cat "$C2D_STATE_DIR/pdns/pdns.pid")
pdns_url1=$(env_of C2D_PDNS_API_URL)

out=$("$up" 2>&1) || { echo "$out"; fail "second c2d-up failed"; }
[[ $(env_of C2D_DATABASE_URL) == "$url1" ]] || fail "second c2d-up moved PostgreSQL"
[[ $(env_of C2D_REGISTRY_URL) == "$registry1" ]] || fail "second c2d-up moved the registry"
[[ $(env_of C2D_INGRESS_HTTP_ADDR) == "$ingress1" ]] || fail "second c2d-up moved the ingress"
[[ $(env_of C2D_MASTER_KEY) == "$key1" ]] || fail "second c2d-up changed the master key"
[[ $(env_of C2D_PDNS_API_URL) == "$pdns_url1" ]] || fail "second c2d-up moved PowerDNS"
[[ $(env_of C2D_PDNS_API_KEY) == "$pdns_key" ]] || fail "second c2d-up changed the PowerDNS API key"
[[ $(cat "$C2D_STATE_DIR/pdns/pdns.pid") == "$pdns_pid1" ]] || fail "second c2d-up restarted a running PowerDNS"
[[ $(sql "SELECT x FROM survives") == 42 ]] || fail "data lost across c2d-up"
[[ $(cat "$C2D_STATE_DIR/run/builder.pid") != "$pid1" ]] || fail "services were not restarted"
kill -0 "$pid1" 2>/dev/null && fail "old builder still runs"
grep -q "starting PostgreSQL" <<<"$out" && fail "second c2d-up restarted a running PostgreSQL"

"$up" --down >/dev/null 2>&1 || fail "c2d-up --down failed"
status=$("$up" --status || true)
grep -Eq "^postgresql +down" <<<"$status" || { echo "$status"; fail "PostgreSQL still up after --down"; }
grep -Eq "^certs +down" <<<"$status" || fail "certs still up after --down"
grep -Eq "^registry +down" <<<"$status" || fail "registry still up after --down"
grep -Eq "^engine +down" <<<"$status" || fail "engine still up after --down"
grep -Eq "^ingress +down" <<<"$status" || fail "ingress still up after --down"
grep -Eq "^powerdns +down" <<<"$status" || fail "PowerDNS still up after --down"

out=$("$up" 2>&1) || { echo "$out"; fail "c2d-up after --down failed"; }
[[ $(sql "SELECT x FROM survives") == 42 ]] || fail "data lost across --down"
srv=$(curl -fsS -H "X-API-Key: $(env_of C2D_PDNS_API_KEY)" "$(env_of C2D_PDNS_API_URL)/api/v1/servers/localhost/zones/$zone" |
  jq -r --arg n "down.localhost.$zone" '.rrsets[] | select(.name == $n and .type == "SRV") | .records[0].content')
[[ $srv == "0 1 $unavailable_port loopback.$zone" ]] || fail "SRV records lost across --down ('$srv')"
echo "c2d-up: 1 passed, 0 failed"
