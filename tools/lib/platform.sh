# shellcheck shell=bash
# A throwaway c2d platform for tests and benchmarks: PostgreSQL, the registry,
# the container engine, PowerDNS and the ingress Caddy on free loopback ports
# in one directory, with the stack images built. Sourced, never run.
#
#   c2d::platform_start DIR   starts it all; exports C2D_TEST_* (below)
#   c2d::platform_stop DIR    stops it all (safe to call twice, or after a failed start)
#
# Exports C2D_TEST_PG_URL (the admin database), C2D_TEST_PG_DIR,
# C2D_TEST_PG_CTL, C2D_TEST_ENGINE_SOCKET (apps run there),
# C2D_TEST_BUILD_ENGINE_SOCKET and C2D_TEST_BUILD_ENGINE_CGROUP (the rootless
# engine builds run on, and its cgroup), C2D_TEST_REGISTRY_URL,
# C2D_TEST_REGISTRY_USER, C2D_TEST_REGISTRY_PASSWORD, C2D_TEST_CADDY_ADMIN
# (the ingress's admin URL), C2D_TEST_CADDY_HTTP and C2D_TEST_CADDY_HTTPS
# (its HTTP and HTTPS addresses), C2D_TEST_CERTS_HTTP_ADDR (where it asks
# for certificates), C2D_TEST_PEBBLE_DIRECTORY, C2D_TEST_PEBBLE_CA_FILE and
# C2D_TEST_PEBBLE_MANAGEMENT (an ACME CA validating through PowerDNS and the
# ingress),
# C2D_TEST_PDNS_API_URL, C2D_TEST_PDNS_API_KEY and C2D_TEST_PDNS_DNS_ADDR
# (PowerDNS, which serves the ingress's upstreams as SRV records),
# C2D_TEST_INGRESS_ZONE (their zone), C2D_TEST_INGRESS_UNAVAILABLE_ADDR (where
# an SRV record sends a host without a healthy instance: a 503),
# C2D_TEST_TMP=DIR and C2D_LOCAL_REPO_ROOT=DIR/repos (where local
# repositories may be built from).

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
source "$(dirname "${BASH_SOURCE[0]}")/registry.sh"
source "$(dirname "${BASH_SOURCE[0]}")/engine.sh"
source "$(dirname "${BASH_SOURCE[0]}")/build_engine.sh"
source "$(dirname "${BASH_SOURCE[0]}")/pdns.sh"
source "$(dirname "${BASH_SOURCE[0]}")/caddy.sh"
source "$(dirname "${BASH_SOURCE[0]}")/pebble.sh"

c2d::platform_start() {
  local dir=$1
  mkdir -p "$dir/pg" "$dir/registry" "$dir/engine" "$dir/pdns" "$dir/caddy"
  chmod 755 "$dir"
  local port
  port=$(c2d::free_port)
  c2d::log "starting PostgreSQL on 127.0.0.1:$port"
  c2d::pg_start "$dir/pg" "$port"
  export C2D_TEST_PG_URL="postgresql://postgres@127.0.0.1:$port/postgres"
  export C2D_TEST_PG_DIR="$dir/pg"
  export C2D_TEST_PG_CTL="$C2D_ROOT/tools/lib/pgctl"
  export C2D_TEST_TMP="$dir"
  # Builds may use local repositories from here only (tests keep theirs here).
  mkdir -p "$dir/repos"
  export C2D_LOCAL_REPO_ROOT="$dir/repos"

  local registry_port password
  registry_port=$(c2d::free_port)
  password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
  c2d::log "starting the registry on 127.0.0.1:$registry_port and the container engine"
  c2d::registry_start "$dir/registry" "$registry_port" c2d "$password"
  # The engines trust plain HTTP only at the registries named when they
  # start: one more address, for a test's registry of its own (the compose
  # stack's).
  local spare_registry=127.0.0.1:$(c2d::free_port)
  c2d::engine_start "$dir/engine" "127.0.0.1:$registry_port,$spare_registry"
  "$C2D_ROOT/tools/stacks/build" "$dir/engine/engine.sock" "127.0.0.1:$registry_port" c2d \
    "$password" >"$dir/stacks.log" 2>&1 || { cat "$dir/stacks.log" >&2; return 1; }
  export C2D_TEST_ENGINE_SOCKET="$dir/engine/engine.sock"
  # Tenants' Dockerfiles build on a rootless engine of their own.
  c2d::log "starting the rootless build engine"
  c2d::build_engine_start "$dir/build-engine" "127.0.0.1:$registry_port,$spare_registry"
  export C2D_TEST_BUILD_ENGINE_SOCKET="$dir/build-engine/engine.sock"
  export C2D_TEST_BUILD_ENGINE_CGROUP="$C2D_BUILD_ENGINE_CGROUP"
  export C2D_TEST_REGISTRY_URL="http://127.0.0.1:$registry_port"
  export C2D_TEST_REGISTRY_USER=c2d
  export C2D_TEST_REGISTRY_PASSWORD="$password"
  export C2D_TEST_SPARE_REGISTRY_ADDR="$spare_registry"

  # PowerDNS first: Caddy's one static config reads its upstreams from it.
  local dns_port api_port api_key zone=ingress.c2d.internal.
  dns_port=$(c2d::free_port)
  api_port=$(c2d::free_port)
  api_key=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
  c2d::log "starting PowerDNS on 127.0.0.1:$dns_port (API on 127.0.0.1:$api_port) and the ingress"
  c2d::pdns_start "$dir/pdns" "$dns_port" "$api_port" "$api_key" "$zone"
  export C2D_TEST_PDNS_API_URL="http://127.0.0.1:$api_port"
  export C2D_TEST_PDNS_API_KEY="$api_key"
  export C2D_TEST_PDNS_DNS_ADDR="127.0.0.1:$dns_port"
  export C2D_TEST_INGRESS_ZONE="$zone"

  # The certs endpoint is a port no process holds yet: a test that serves
  # certificates to the ingress binds it (its tests share a CTest
  # RESOURCE_LOCK); meanwhile plain HTTP fails open to the 404 server's
  # answer and TLS handshakes find no certificate.
  local admin_port http_port https_port unknown_port unavailable_port certs_port
  admin_port=$(c2d::free_port)
  http_port=$(c2d::free_port)
  https_port=$(c2d::free_port)
  unknown_port=$(c2d::free_port)
  unavailable_port=$(c2d::free_port)
  certs_port=$(c2d::free_port)
  c2d::caddy_start "$dir/caddy" "$admin_port" "$http_port" "$unknown_port" "$unavailable_port" \
    "$C2D_TEST_PDNS_DNS_ADDR" "$zone" "$https_port" "127.0.0.1:$certs_port"
  export C2D_TEST_CADDY_ADMIN="http://127.0.0.1:$admin_port"
  export C2D_TEST_CADDY_HTTP="127.0.0.1:$http_port"
  export C2D_TEST_CADDY_HTTPS="127.0.0.1:$https_port"
  export C2D_TEST_CERTS_HTTP_ADDR="127.0.0.1:$certs_port"

  # An ACME CA that validates through the platform: names resolve in
  # PowerDNS and HTTP-01 reaches the ingress. Its certificates live 60 s, so
  # renewals (due with a third left) come 40 s after an issuance.
  c2d::log "starting Pebble (an ACME CA)"
  C2D_PEBBLE_CERT_VALIDITY=60 c2d::pebble_start "$dir/pebble" "$http_port" "$C2D_TEST_PDNS_DNS_ADDR"
  export C2D_TEST_PEBBLE_DIRECTORY=$C2D_PEBBLE_DIRECTORY
  export C2D_TEST_PEBBLE_CA_FILE=$C2D_PEBBLE_CA_FILE
  export C2D_TEST_PEBBLE_MANAGEMENT=$C2D_PEBBLE_MANAGEMENT
  export C2D_TEST_INGRESS_UNAVAILABLE_ADDR="127.0.0.1:$unavailable_port"
}

c2d::platform_stop() {
  local dir=$1
  [[ -d $dir/pebble ]] && { c2d::pebble_stop "$dir/pebble" || true; }
  [[ -d $dir/caddy ]] && { c2d::caddy_stop "$dir/caddy" || true; }
  [[ -d $dir/pdns ]] && { c2d::pdns_stop "$dir/pdns" || true; }
  [[ -d $dir/build-engine ]] && { c2d::build_engine_stop "$dir/build-engine" || true; }
  [[ -d $dir/engine ]] && { c2d::engine_stop "$dir/engine" || true; }
  [[ -d $dir/registry ]] && { c2d::registry_stop "$dir/registry" || true; }
  c2d::pg_stop "$dir/pg"
}
