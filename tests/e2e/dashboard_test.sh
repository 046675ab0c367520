#!/usr/bin/env bash
# The web dashboard in a real browser: c2d's services (one replica each)
# against the test platform, then web/test/dashboard.test.mjs drives Debian's
# headless Chromium through sign-in, create, deploy, env, redeploy and
# rollback. Screenshots of each step: $C2D_BUILD_DIR/test-artifacts/dashboard.
set -Eeuo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
source "$root/tools/lib/common.sh"
export C2D_BUILD_DIR=${C2D_BUILD_DIR:-$root/build}
: "${C2D_TEST_PG_URL:?run through tools/test}" "${C2D_TEST_ENGINE_SOCKET:?}" "${C2D_TEST_CADDY_HTTP:?}"
[[ -d $root/web/node_modules/playwright-core ]] || c2d::die "web/node_modules is missing: run tools/test (npm ci)"
dir=$(mktemp -d "${C2D_TEST_TMP:-/tmp}/dashboard.XXXXXX")
tag=$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
db=c2d_test_dashboard_$tag
SERVICES=(dns certs deployer dbprov builder gateway)
REPLICAS=(a)
source "$root/tests/e2e/services.sh"

fail() {
  echo "FAIL: $*" >&2
  for f in "$dir"/*.log; do echo "== ${f##*/}" >&2; tail -n 15 "$f" >&2; done
  exit 1
}
engine() { curl -sS --max-time 30 --unix-socket "$C2D_TEST_ENGINE_SOCKET" "http://d$1" "${@:2}"; }
cleanup() {
  # The containers of this database's projects, whatever the test left.
  local project id
  for key in "${!pid[@]}"; do kill -KILL "${pid[$key]}" 2>/dev/null || true; done
  for project in $(psql "${C2D_TEST_PG_URL%/*}/$db" -Atqc "SELECT id FROM projects" 2>/dev/null); do
    for id in $(engine "/v1.41/containers/json?all=1&filters=$(jq -rn --arg l "c2d.project=$project" \
      '{label: [$l]} | tojson | @uri')" | jq -r '.[].Id'); do
      engine "/v1.41/containers/$id?force=1" -X DELETE >/dev/null || true
    done
  done
  c2d_e2e::down
  rm -rf "$dir"
}
trap cleanup EXIT

declare -A http_addr=([a]=127.0.0.1:$(c2d::free_port))
c2d_e2e::env
export C2D_RECONCILE_INTERVAL=2s
c2d_e2e::up
token=$(c2d_e2e::token dashboard)
[[ -n $token ]] || fail "c2d-admin token made no token"
c2d::sample_repo "$dir/repos/hello-python"
# A pull request's branch, one commit ahead, for the preview step.
repo=$dir/repos/hello-python
git -C "$repo" checkout -q -b feature
echo 9.9.9 >"$repo/VERSION"
git -C "$repo" -c user.name=c2d -c user.email=c2d@localhost commit -qam "version 9.9.9"
pr_sha=$(git -C "$repo" rev-parse HEAD)
git -C "$repo" checkout -q main

C2D_URL=http://${http_addr[a]} C2D_TOKEN=$token C2D_REPO=$repo C2D_PR_SHA=$pr_sha \
  C2D_ARTIFACTS=$C2D_BUILD_DIR/test-artifacts/dashboard \
  node "$root/web/test/dashboard.test.mjs" || fail "the browser test failed (output above)"
