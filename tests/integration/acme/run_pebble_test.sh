#!/usr/bin/env bash
# Runs the ACME client's Pebble test binary (acme_pebble_test.cc) against a
# throwaway pebble-challtestsrv and Pebble (tools/lib/pebble.sh) on free
# loopback ports, torn down afterwards, also on failure or Ctrl-C.
#   run_pebble_test.sh TEST_BINARY [Catch2 arguments...]
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
# shellcheck source=tools/lib/pebble.sh
source "$root/tools/lib/pebble.sh"

binary=${1:?usage: run_pebble_test.sh TEST_BINARY [Catch2 arguments...]}
shift

tmp=$(mktemp -d /tmp/c2d-pebble.XXXXXX)
cleanup() {
  local rc=$?
  c2d::pebble_stop "$tmp/pebble"
  c2d::challtestsrv_stop "$tmp/challtestsrv"
  if ((rc != 0)); then
    echo "--- last lines of pebble.log ---" >&2
    tail -n 30 "$tmp/pebble/pebble.log" >&2 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

c2d::challtestsrv_start "$tmp/challtestsrv"
# Issued certificates live one hour, not Pebble's default 5 years: the test
# checks that the lifetime is the configured one.
export C2D_PEBBLE_CERT_VALIDITY=3600
c2d::pebble_start "$tmp/pebble" "$C2D_CHALLTESTSRV_HTTP01_PORT" "$C2D_CHALLTESTSRV_DNS"

"$binary" -w NoTests "$@"
