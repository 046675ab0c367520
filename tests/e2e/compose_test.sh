#!/usr/bin/env bash
# deploy/compose.yaml for real: tools/images builds the images on the test
# engine, docker-compose brings the whole stack up on that engine (its
# Docker API) with an env file made from deploy/compose.env.example, the
# migration finishes before any service starts, every container turns
# healthy, the sample app deploys through the composed gateway and answers
# through the composed ingress; then the stack comes down and leaves nothing.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
source "$root/tools/lib/registry.sh"
export C2D_BUILD_DIR=${C2D_BUILD_DIR:-$root/build}
sock=${C2D_TEST_ENGINE_SOCKET:?run through tools/test}
build_sock=${C2D_TEST_BUILD_ENGINE_SOCKET:?run through tools/test}
dir=$(mktemp -d "${C2D_TEST_TMP:-/tmp}/compose.XXXXXX")
project=c2dtest$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
env_file=$dir/compose.env
cli=$C2D_BUILD_DIR/tools/c2d
export XDG_CONFIG_HOME=$dir/config
fail() { echo "FAIL: $*" >&2; exit 1; }
api() { curl -sS --max-time 30 --unix-socket "$sock" "http://d$1" "${@:2}"; }
# With nothing else of this shell's environment: compose substitutes
# variables of its own environment before the env file's.
compose() {
  env -i PATH="$PATH" HOME="$HOME" DOCKER_HOST="unix://$sock" C2D_COMPOSE_ENV_FILE="$env_file" \
    timeout 600 docker-compose -p "$project" -f "$root/deploy/compose.yaml" --env-file "$env_file" "$@"
}
ticker= service_id=
# The app containers of the sample, by their label.
app_containers() {
  api "/v1.41/containers/json?all=1&filters=$(jq -rn --arg s "$service_id" \
    '{label: ["c2d.service=" + $s]} | tojson | @uri')" | jq -r '.[].Id'
}
cleanup() {
  [[ -n $ticker ]] && kill "$ticker" 2>/dev/null
  compose logs --no-color >"$dir/compose.log" 2>&1 || true
  compose down -v --timeout 10 >/dev/null 2>&1 || true
  # The app's containers, if the test stopped before deleting it.
  if [[ -n $service_id ]]; then
    for id in $(app_containers 2>/dev/null); do
      api "/v1.41/containers/$id?force=1" -X DELETE >/dev/null || true
    done
  fi
  rm -rf "$dir"
}
trap cleanup EXIT

# The images (tools/images "$sock", the test before this one): non-root, a
# HEALTHCHECK through c2d-probe, OCI labels.
for svc in gateway builder deployer dbprov dns certs; do
  [[ $(api "/v1.41/images/c2d/$svc:0.1.0/json" -o /dev/null -w '%{http_code}') == 200 ]] ||
    fail "no image c2d/$svc:0.1.0 on the engine: run tools/images $sock first"
  config=$(api "/v1.41/images/c2d/$svc:0.1.0/json" | jq -c .Config)
  [[ $(jq -r .User <<<"$config") == c2d ]] || fail "c2d/$svc does not run as c2d: $config"
  # podman's Docker-API inspect leaves the healthcheck out; its own has it.
  health=$(jq -c .Healthcheck <<<"$config")
  [[ $health != null ]] || health=$(api "/v4.0.0/libpod/images/c2d/$svc:0.1.0/json" | jq -c .Healthcheck)
  jq -e '.Test | index("c2d-probe")' <<<"$health" >/dev/null ||
    fail "c2d/$svc has no HEALTHCHECK through c2d-probe: $health"
  jq -e '.Labels["org.opencontainers.image.version"] == "0.1.0"
         and (.Labels["org.opencontainers.image.revision"] | length > 0)' <<<"$config" >/dev/null ||
    fail "c2d/$svc lacks its OCI labels: $config"
done

# The env file: the example's with free ports and fresh secrets.
mkdir -p "$dir"/{volumes,backups,repos,ca}
chown 10001:10001 "$dir/ca"
build_user=$(stat -c %u:%g "$build_sock")
declare -A port
while read -r var; do port[$var]=$(c2d::free_port); done < <(grep -oE '^C2D_[A-Z_]+_PORT' "$root/deploy/compose.env.example")
for svc in GATEWAY BUILDER DEPLOYER DBPROV DNS CERTS; do
  port[${svc}_ADDR]=$(c2d::free_port) port[${svc}_METRICS]=$(c2d::free_port)
done
port[HTTP]=$(c2d::free_port) port[CERTS_HTTP]=$(c2d::free_port)
# The composed registry serves plain HTTP: on the address the test engines
# were told to trust so (podman reads its registries.conf once, at start).
spare=${C2D_TEST_SPARE_REGISTRY_ADDR:?run through tools/test}
port[C2D_REGISTRY_PORT]=${spare##*:}
c2d::port_free "${port[C2D_REGISTRY_PORT]}" || fail "the spare registry address $spare is taken"
secret() { head -c 18 /dev/urandom | base64 | tr -d '/+='; }
registry_password=$(secret)
(umask 077 && : >"$env_file")
{
  echo "C2D_LOG_LEVEL=info"
  echo "C2D_MASTER_KEY=mk1:$(head -c 32 /dev/urandom | base64 -w0)"
  for var in "${!port[@]}"; do [[ $var == C2D_* ]] && echo "$var=${port[$var]}"; done
  echo "C2D_DATABASE_URL=postgresql://postgres@127.0.0.1:${port[C2D_PG_PORT]}/c2d"
  for svc in GATEWAY BUILDER DEPLOYER DBPROV DNS CERTS; do
    echo "C2D_${svc}_ADDR=127.0.0.1:${port[${svc}_ADDR]}"
    echo "C2D_${svc}_METRICS_ADDR=127.0.0.1:${port[${svc}_METRICS]}"
  done
  echo "C2D_HTTP_ADDR=127.0.0.1:${port[HTTP]}"
  echo "C2D_REGISTRY_URL=http://127.0.0.1:${port[C2D_REGISTRY_PORT]}"
  echo "C2D_REGISTRY_USER=c2d"
  echo "C2D_REGISTRY_PASSWORD=$registry_password"
  echo "C2D_PDNS_DNS_ADDR=127.0.0.1:${port[C2D_PDNS_DNS_PORT]}"
  echo "C2D_PDNS_API_URL=http://127.0.0.1:${port[C2D_PDNS_API_PORT]}"
  echo "C2D_PDNS_API_KEY=$(secret)"
  echo "C2D_INGRESS_ZONE=$project.c2d.internal."
  for what in HTTP HTTPS UNKNOWN UNAVAILABLE; do
    echo "C2D_INGRESS_${what}_ADDR=127.0.0.1:${port[C2D_INGRESS_${what}_PORT]}"
  done
  echo "C2D_CERTS_HTTP_ADDR=127.0.0.1:${port[CERTS_HTTP]}"
  echo "C2D_INGRESS_LOG_ADDR=127.0.0.1:$(c2d::free_port)"
  echo "C2D_ENGINE_SOCKET=$sock"
  echo "C2D_BUILD_ENGINE_SOCKET=$build_sock"
  echo "C2D_BUILD_ENGINE_CGROUP=${C2D_TEST_BUILD_ENGINE_CGROUP:-}"
  echo "C2D_BUILD_USER=$build_user"
  echo "C2D_VOLUMES_DIR=$dir/volumes"
  echo "C2D_BACKUP_DIR=$dir/backups"
  echo "C2D_LOCAL_REPO_ROOT=$dir/repos"
  echo "C2D_CA_DIR=$dir/ca"
  echo "C2D_INTERNAL_CA_FILE=$dir/ca/ca.pem"
} >>"$env_file"
# Every variable the example sets is set here too.
for var in $(grep -oE '^C2D_[A-Z_]+' "$root/deploy/compose.env.example"); do
  [[ $var == C2D_IMAGES_TAG ]] && continue
  grep -q "^$var=" "$env_file" || fail "the test's env file lacks $var of compose.env.example"
done

# podman without systemd runs no health checks by itself (Docker does): ask
# it to run each container's, every 2 s, as Docker's scheduler would.
if api /v1.41/version | jq -e '.Components[]? | select(.Name == "Podman Engine")' >/dev/null; then
  (
    while sleep 2; do
      for id in $(api "/v1.41/containers/json?filters=$(jq -rn --arg p "$project" \
        '{label: ["com.docker.compose.project=" + $p]} | tojson | @uri')" | jq -r '.[].Id'); do
        api "/v4.0.0/libpod/containers/$id/healthcheck" >/dev/null 2>&1 || true
      done
    done
  ) &
  ticker=$!
fi

compose up -d >"$dir/up.log" 2>&1 || { cat "$dir/up.log"; compose logs --no-color | tail -n 80; fail "docker-compose up failed"; }

# The migration ran to completion, before any service started.
migrate=$(compose ps -q migrate)
state=$(api "/v1.41/containers/$migrate/json" | jq -c .State)
jq -e '.Status == "exited" and .ExitCode == 0' <<<"$state" >/dev/null || fail "migrate did not finish cleanly: $state"
migrated_at=$(jq -r .FinishedAt <<<"$state")
for svc in gateway builder deployer dbprov dns certs; do
  id=$(compose ps -q "$svc")
  started=$(api "/v1.41/containers/$id/json" | jq -r .State.StartedAt)
  [[ $(date -d "$started" +%s%N) -ge $(date -d "$migrated_at" +%s%N) ]] ||
    fail "$svc started ($started) before the migration finished ($migrated_at)"
done
# Every container healthy (up -d returned once the gateway's dependencies were).
for svc in postgres registry pdns ingress dns deployer dbprov certs builder gateway; do
  health=
  for _ in $(seq 60); do
    health=$(api "/v1.41/containers/$(compose ps -q "$svc")/json" | jq -r '.State.Health.Status // .State.Status')
    [[ $health == healthy ]] && break
    sleep 1
  done
  [[ $health == healthy ]] || { compose logs --no-color "$svc" | tail -n 30; fail "$svc is $health"; }
done
grep -q ' SERVING' <<<"$("$C2D_BUILD_DIR/tools/c2d-probe" "127.0.0.1:${port[GATEWAY_ADDR]}")" ||
  fail "the gateway's gRPC health does not answer SERVING"

# The stack images into the composed registry, as an operator does once.
"$root/tools/stacks/build" "$sock" "127.0.0.1:${port[C2D_REGISTRY_PORT]}" c2d "$registry_password" \
  >"$dir/stacks.log" 2>&1 || { tail -n 30 "$dir/stacks.log"; fail "tools/stacks/build into the composed registry failed"; }

# The sample app, deployed through the composed gateway.
token=$(compose run --rm -T migrate c2d-admin token --email admin@localhost --name compose 2>/dev/null | tail -n 1)
[[ -n $token ]] || fail "c2d-admin token made no token"
api_url=http://127.0.0.1:${port[HTTP]}
C2D_URL=$api_url "$cli" login --url "$api_url" --token "$token" >/dev/null || fail "login to the composed gateway failed"
repo=$dir/repos/hello-python
c2d::sample_repo "$repo"
"$cli" projects create demo >/dev/null
"$cli" services create hello --project demo --repo "$repo" --port 8080 >/dev/null
service_id=$("$cli" services show demo/hello --json | jq -r .id)
"$cli" env set demo/hello GREETING=Composed --plain >/dev/null
"$cli" deploy demo/hello >"$dir/deploy.log" 2>&1 || {
  cat "$dir/deploy.log"
  compose logs --no-color builder deployer | tail -n 60
  api "/v1.41/containers/$(compose ps -q builder)/json" | jq -c '.Mounts, .Config.Env'
  fail "the sample app did not deploy"
}
url=$("$cli" open demo/hello)
[[ $url == *":${port[C2D_INGRESS_HTTP_PORT]}"* ]] || fail "the app's URL $url is not on the composed ingress"
body=
for _ in $(seq 60); do
  body=$(curl -fsS --max-time 5 "$url" 2>/dev/null) && break
  sleep 0.5
done
grep -q 'Composed from c2d!' <<<"$body" || fail "the sample app does not answer at $url: '$body'"

# Down: the app first (c2d stops its containers), then the stack.
code=$(curl -sS -o "$dir/delete.out" -w '%{http_code}' -X DELETE -H "Authorization: Bearer $token" \
  "$api_url/v1/services/$service_id")
[[ $code == 2* ]] || fail "deleting the app answered $code: $(cat "$dir/delete.out")"
for _ in $(seq 60); do
  [[ -z $(app_containers) ]] && break
  sleep 0.5
done
[[ -z $(app_containers) ]] || fail "the app's containers outlived its deletion"
compose down -v --timeout 20 >"$dir/down.log" 2>&1 || { cat "$dir/down.log"; fail "docker-compose down failed"; }
left=$(api "/v1.41/containers/json?all=1&filters=$(jq -rn --arg p "$project" \
  '{label: ["com.docker.compose.project=" + $p]} | tojson | @uri')" | jq length)
[[ $left == 0 ]] || fail "$left containers of the stack left after down"
echo "compose: 1 passed, 0 failed"
