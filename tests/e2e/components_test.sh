#!/usr/bin/env bash
# The local components c2d's `local` provider drives, end to end, through the
# same Docker Engine API calls as c2d's engine client: a private registry
# (tools/lib/registry.sh), a private engine (tools/lib/engine.sh), the stack
# images (tools/stacks/build, run twice: the second run must skip all three),
# then for a static app and a python app: build FROM the stack (pulled from
# the registry with X-Registry-Config, since the stacks are first removed from
# the engine) → push → digest from the registry → remove the local image →
# pull by digest → run from the digest with a 127.0.0.1 port binding, a 64 MiB
# memory limit and PORT=8080 → HTTP answer → logs → stop → remove. Then the
# postgres stack as the database provisioner runs it: pulled from the
# registry, a container on a bind-mounted volume directory with
# C2D_PG_PASSWORD and an engine-chosen 127.0.0.1 port → the host's psql logs
# in (a wrong password is refused), writes a row → stop, remove → a new
# container on the same directory, without the password, still has the row.
# Everything lives in a fresh temp dir and is torn down (also on failure); the
# test fails if anything stays mounted.
set -Eeuo pipefail
# A command that fails outside `fail` says where, inside functions too (-E).
trap 'echo "components: line $LINENO failed: $BASH_COMMAND" >&2' ERR
root=$(cd "$(dirname "$0")/../.." && pwd)
source "$root/tools/lib/engine.sh"
API=${C2D_ENGINE_API:-v1.41}
t0=$SECONDS

tmp=$(mktemp -d "${C2D_TEST_TMP:-/tmp}/c2d-components.XXXXXX")
tmp=$(cd "$tmp" && pwd)
teardown() {
  c2d::engine_stop "$tmp/engine" || true
  c2d::registry_stop "$tmp/registry" || true
}
cleanup() {
  teardown
  if ! grep -q " $tmp[/ ]" /proc/self/mountinfo; then
    rm -rf "$tmp"
  else
    echo "components: mounts left under $tmp:" >&2
    grep " $tmp[/ ]" /proc/self/mountinfo >&2
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() { echo "FAIL: $*" >&2; exit 1; }
phase() { c2d::log "components: $* (+$((SECONDS - t0)) s)"; }

# api METHOD PATH [curl args]: the response body goes to $tmp/body, the HTTP
# status to stdout.
api() {
  local method=$1 path=$2
  shift 2
  curl -sS --unix-socket "$SOCK" -X "$method" -o "$tmp/body" -w '%{http_code}' \
    -H 'Expect:' "$@" "http://d/$API$path"
}
body() { cat "$tmp/body"; }
# Streams (build, push, pull) fail inside an HTTP 200: lines with "error".
stream_error() { jq -Rr '(try fromjson catch {}) | objects | (.error // .message // empty)' "$tmp/body" | head -n 1; }
uri() { jq -rn --arg v "$1" '$v|@uri'; }

user=c2d
# Random, and sure to contain characters that standard base64 and base64url
# encode differently inside the auth headers.
password="p+/?$(head -c 12 /dev/urandom | base64 | tr -d '=')"
reg_port=$(c2d::free_port)
REG=127.0.0.1:$reg_port
SOCK=$tmp/engine/engine.sock

phase "starting the registry on $REG"
c2d::registry_start "$tmp/registry" "$reg_port" "$user" "$password"
phase "starting the engine in $tmp/engine"
c2d::engine_start "$tmp/engine" "$REG"
AUTH=$(c2d::registry_auth "$user" "$password" "$REG")
CONFIG=$(c2d::registry_config "$user" "$password" "$REG")

phase "building the stacks"
s0=$SECONDS
"$root/tools/stacks/build" "$SOCK" "$REG" "$user" "$password" >"$tmp/stacks.log" 2>&1 ||
  { tail -n 30 "$tmp/stacks.log" >&2; fail "tools/stacks/build failed"; }
cold=$((SECONDS - s0))
s0=$SECONDS
"$root/tools/stacks/build" "$SOCK" "$REG" "$user" "$password" >"$tmp/stacks2.log" 2>&1 ||
  { cat "$tmp/stacks2.log" >&2; fail "second tools/stacks/build failed"; }
[[ $(grep -c 'already in the registry' "$tmp/stacks2.log") == 3 ]] ||
  { cat "$tmp/stacks2.log" >&2; fail "second tools/stacks/build did not skip all three stacks"; }
phase "stacks built in ${cold} s, skipped in $((SECONDS - s0)) s"

# The builder's engine usually lacks the stacks: FROM must come from the registry.
for ref in "$REG/c2d/stacks/static:1" "$REG/c2d/stacks/python:3.11"; do
  [[ $(api DELETE "/images/$(uri "$ref")") == 200 ]] || fail "cannot remove $ref from the engine: $(body)"
done

# run_app NAME CONTEXT_DIR EXPECTED_TEXT LOG_PATTERN: the whole life of one app image.
run_app() {
  local name=$1 ctx=$2 expect=$3 log_pattern=$4
  local repo=c2d-test/$name code digest pushed ref id port

  phase "$name: build"
  tar -C "$ctx" -cf "$tmp/$name.tar" .
  code=$(api POST "/build?t=$(uri "$REG/$repo:v1")&rm=1&forcerm=1" \
    -H 'Content-Type: application/x-tar' -H "X-Registry-Config: $CONFIG" \
    --data-binary "@$tmp/$name.tar")
  [[ $code == 200 && -z $(stream_error) ]] || { body >&2; fail "$name: build: HTTP $code $(stream_error)"; }
  grep -q "Successfully tagged $REG/$repo:v1" "$tmp/body" || { body >&2; fail "$name: build did not tag the image"; }

  phase "$name: push"
  code=$(api POST "/images/$REG/$repo/push?tag=v1" -H "X-Registry-Auth: $AUTH")
  [[ $code == 200 && -z $(stream_error) ]] || { body >&2; fail "$name: push: HTTP $code $(stream_error)"; }
  pushed=$(grep -oE 'digest: sha256:[0-9a-f]{64}' "$tmp/body" | head -n 1 | cut -d' ' -f2 || true)
  digest=$(c2d::registry_digest "$REG" "$user" "$password" "$repo" v1) || fail "$name: registry HEAD failed"
  [[ $digest == sha256:* ]] || fail "$name: the registry has no $repo:v1"
  [[ -z $pushed || $pushed == "$digest" ]] || fail "$name: pushed $pushed, registry serves $digest"
  ref=$REG/$repo@$digest

  phase "$name: remove the local image, pull $ref"
  [[ $(api DELETE "/images/$(uri "$REG/$repo:v1")") == 200 ]] || fail "$name: image delete: $(body)"
  [[ $(api GET "/images/$(uri "$REG/$repo:v1")/json") == 404 ]] || fail "$name: image still there after delete"
  code=$(api POST "/images/create?fromImage=$(uri "$ref")" -H "X-Registry-Auth: $AUTH")
  [[ $code == 200 && -z $(stream_error) ]] || { body >&2; fail "$name: pull: HTTP $code $(stream_error)"; }
  [[ $(api GET "/images/$(uri "$ref")/json") == 200 ]] || fail "$name: pulled image not found by digest"

  phase "$name: run"
  port=$(c2d::free_port)
  local spec
  spec=$(jq -cn --arg image "$ref" --arg port "$port" '{
    Image: $image,
    Env: ["PORT=8080"],
    ExposedPorts: {"8080/tcp": {}},
    Labels: {"c2d.test": "components"},
    HostConfig: {
      PortBindings: {"8080/tcp": [{HostIp: "127.0.0.1", HostPort: $port}]},
      Memory: 67108864
    }}')
  code=$(api POST "/containers/create?name=c2d-test-$name-$RANDOM" \
    -H 'Content-Type: application/json' -d "$spec")
  [[ $code == 201 ]] || fail "$name: create: HTTP $code $(body)"
  id=$(jq -r .Id "$tmp/body")
  [[ $(api POST "/containers/$id/start") == 204 ]] || fail "$name: start: $(body)"

  local deadline=$((SECONDS + 30)) answer=
  while ((SECONDS < deadline)); do
    answer=$(curl -s --max-time 2 "http://127.0.0.1:$port/" || true)
    [[ $answer == *"$expect"* ]] && break
    if [[ $(api GET "/containers/$id/json") == 200 && $(jq -r .State.Running "$tmp/body") == false ]]; then
      api GET "/containers/$id/logs?stdout=1&stderr=1" >/dev/null || true
      body >&2
      fail "$name: the container exited"
    fi
    sleep 0.2
  done
  [[ $answer == *"$expect"* ]] || fail "$name: no '$expect' on 127.0.0.1:$port in 30 s (got '$answer')"
  # Published on 127.0.0.1 only.
  local other
  # awk reads all of ip's output: an early exit would kill ip with SIGPIPE
  # when there are many addresses, and pipefail would end the test silently.
  other=$(ip -4 -o addr show scope global | awk 'NR == 1 { sub("/.*", "", $4); print $4 }')
  if [[ -n $other ]] && curl -s --max-time 2 -o /dev/null "http://$other:$port/"; then
    fail "$name: port $port answers on $other too"
  fi

  [[ $(api GET "/containers/$id/json") == 200 ]] || fail "$name: inspect: $(body)"
  [[ $(jq .HostConfig.Memory "$tmp/body") == 67108864 ]] || fail "$name: memory limit not set: $(jq .HostConfig "$tmp/body")"
  # The limit is real: the memory cgroup of the container's process has it.
  local pid cg limit
  pid=$(jq -r .State.Pid "$tmp/body")
  cg=$(awk -F: '$2 == "memory" { print $3 }' "/proc/$pid/cgroup" 2>/dev/null || true)
  if [[ -n $cg && -f /sys/fs/cgroup/memory$cg/memory.limit_in_bytes ]]; then
    limit=$(cat "/sys/fs/cgroup/memory$cg/memory.limit_in_bytes" 2>/dev/null || echo gone)
    [[ $limit == 67108864 ]] || fail "$name: cgroup memory limit is $limit"
  elif [[ -n $cg && -f /sys/fs/cgroup$cg/memory.max ]]; then
    limit=$(cat "/sys/fs/cgroup$cg/memory.max" 2>/dev/null || echo gone)
    [[ $limit == 67108864 ]] || fail "$name: cgroup memory.max is $limit"
  fi

  # Logs are multiplexed (8-byte frame headers, no TTY): grep -a.
  code=$(api GET "/containers/$id/logs?stdout=1&stderr=1")
  [[ $code == 200 ]] || fail "$name: logs: HTTP $code"
  cp "$tmp/body" "$tmp/$name.log"
  grep -aqE "$log_pattern" "$tmp/$name.log" || { body >&2; fail "$name: logs lack /$log_pattern/"; }

  phase "$name: stop, remove"
  code=$(api POST "/containers/$id/stop?t=5")
  [[ $code == 204 || $code == 304 ]] || fail "$name: stop: HTTP $code $(body)"
  [[ $(api GET "/containers/$id/json") == 200 && $(jq -r .State.Running "$tmp/body") == false ]] ||
    fail "$name: still running after stop"
  [[ $(api DELETE "/containers/$id?v=1") == 204 ]] || fail "$name: remove: $(body)"
  [[ $(api GET "/containers/$id/json") == 404 ]] || fail "$name: container still there after remove"
  curl -s --max-time 2 -o /dev/null "http://127.0.0.1:$port/" && fail "$name: port $port still answers"
  return 0
}

version="static v$RANDOM.$RANDOM"
mkdir -p "$tmp/apps/static"
printf '<!doctype html><title>c2d</title><p>%s</p>\n' "$version" >"$tmp/apps/static/index.html"
cat >"$tmp/apps/static/Dockerfile" <<EOF
FROM $REG/c2d/stacks/static:1
COPY . /srv
EOF
# busybox httpd -v logs each request with its status.
run_app static "$tmp/apps/static" "$version" 'response:200'

mkdir -p "$tmp/apps/python"
cat >"$tmp/apps/python/app.py" <<'EOF'
import http.server
import os
import signal
import sys

# As PID 1 a process ignores SIGTERM unless it handles it: stop at once.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))


class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"hello from python\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


port = int(os.environ.get("PORT", "8080"))
print(f"listening on {port}")
http.server.ThreadingHTTPServer(("", port), Hello).serve_forever()
EOF
cat >"$tmp/apps/python/Dockerfile" <<EOF
FROM $REG/c2d/stacks/python:3.11
COPY . /app
WORKDIR /app
CMD ["python3", "app.py"]
EOF
run_app python "$tmp/apps/python" "hello from python" 'listening on 8080'
grep -aq '"GET / HTTP/1.1" 200' "$tmp/python.log" || { cat "$tmp/python.log" >&2; fail "python: access log missing"; }

# The postgres stack as c2d's database provisioner runs it (contract: the
# header of tools/stacks/postgres/c2d-postgres).
PSQL=$PG_BIN/psql
[[ -x $PSQL ]] || fail "no psql in '$PG_BIN' (apt-get install postgresql-client-15)"
pg_ref=$REG/c2d/stacks/postgres:15
pg_vol=$tmp/pg-volume
# c2d makes the volume directory writable by any uid: the image's user is
# 1000, whoever that is on the host.
mkdir -p "$pg_vol"
chmod 0777 "$pg_vol"
# Characters that a shell, a URI and initdb's password file could each mangle.
pg_password="pg '\"\$x%/@:;$(head -c 9 /dev/urandom | base64 | tr -d '=')"
pg_id='' pg_port=''

# pg_start [ENV...]: a container of the postgres stack on $pg_vol, started;
# sets pg_id, and pg_port to the host port the engine chose.
pg_start() {
  local spec code
  spec=$(jq -cn --arg image "$pg_ref" --arg vol "$pg_vol" '{
    Image: $image,
    Env: $ARGS.positional,
    ExposedPorts: {"5432/tcp": {}},
    Labels: {"c2d.test": "components"},
    HostConfig: {
      Binds: [$vol + ":/var/lib/c2d/data"],
      PortBindings: {"5432/tcp": [{HostIp: "127.0.0.1", HostPort: ""}]}
    }}' --args "$@")
  code=$(api POST "/containers/create?name=c2d-test-postgres-$RANDOM" \
    -H 'Content-Type: application/json' -d "$spec")
  [[ $code == 201 ]] || fail "postgres: create: HTTP $code $(body)"
  pg_id=$(jq -r .Id "$tmp/body")
  [[ $(api POST "/containers/$pg_id/start") == 204 ]] || fail "postgres: start: $(body)"
  [[ $(api GET "/containers/$pg_id/json") == 200 ]] || fail "postgres: inspect: $(body)"
  pg_port=$(jq -r '.NetworkSettings.Ports["5432/tcp"][0].HostPort // empty' "$tmp/body")
  [[ $pg_port =~ ^[0-9]+$ && $pg_port != 0 ]] ||
    fail "postgres: no host port for 5432/tcp: $(jq -c .NetworkSettings.Ports "$tmp/body")"
}

# pg_psql PASSWORD SQL: the host's psql as postgres over TCP; rows unaligned.
pg_psql() {
  "$PSQL" -X -w -q -At -v ON_ERROR_STOP=1 -c "$2" \
    "postgresql://postgres:$(uri "$1")@127.0.0.1:$pg_port/postgres?connect_timeout=3"
}

# pg_logs FILE: the container's log (multiplexed frames: grep -a) into FILE.
pg_logs() {
  [[ $(api GET "/containers/$pg_id/logs?stdout=1&stderr=1") == 200 ]] || fail "postgres: logs: $(body)"
  cp "$tmp/body" "$1"
}

# pg_wait: until the server answers over the published port (the first start
# runs initdb before).
pg_wait() {
  local deadline=$((SECONDS + 60)) out=
  while ((SECONDS < deadline)); do
    out=$(pg_psql "$pg_password" 'SELECT 1' 2>&1) && [[ $out == 1 ]] && return 0
    if [[ $(api GET "/containers/$pg_id/json") == 200 && $(jq -r .State.Running "$tmp/body") == false ]]; then
      pg_logs "$tmp/pg-exited.log"
      cat -v "$tmp/pg-exited.log" >&2
      fail "postgres: the container exited"
    fi
    sleep 0.3
  done
  fail "postgres: no answer on 127.0.0.1:$pg_port in 60 s: $out"
}

# pg_stop LOGFILE: stop (the image's stop signal: a fast shutdown, well before
# the engine's SIGKILL), keep the log, remove.
pg_stop() {
  local code s0=$SECONDS
  code=$(api POST "/containers/$pg_id/stop?t=20")
  [[ $code == 204 || $code == 304 ]] || fail "postgres: stop: HTTP $code $(body)"
  [[ $(api GET "/containers/$pg_id/json") == 200 && $(jq -r .State.Running "$tmp/body") == false ]] ||
    fail "postgres: still running after stop"
  [[ $(jq -r .State.ExitCode "$tmp/body") == 0 ]] ||
    fail "postgres: exited with $(jq -r .State.ExitCode "$tmp/body") after $((SECONDS - s0)) s, not 0"
  pg_logs "$1"
  grep -aq 'database system is shut down' "$1" || { cat -v "$1" >&2; fail "postgres: no clean shutdown in the log"; }
  [[ $(api DELETE "/containers/$pg_id?v=1") == 204 ]] || fail "postgres: remove: $(body)"
  "$PSQL" -X -w -c 'SELECT 1' "postgresql://postgres@127.0.0.1:$pg_port/postgres?connect_timeout=2" \
    >/dev/null 2>&1 && fail "postgres: port $pg_port still answers"
  return 0
}

phase "postgres: pull $pg_ref from the registry"
[[ $(api DELETE "/images/$(uri "$pg_ref")") == 200 ]] || fail "cannot remove $pg_ref from the engine: $(body)"
code=$(api POST "/images/create?fromImage=$(uri "$pg_ref")" -H "X-Registry-Auth: $AUTH")
[[ $code == 200 && -z $(stream_error) ]] || { body >&2; fail "postgres: pull: HTTP $code $(stream_error)"; }
[[ $(api GET "/images/$(uri "$pg_ref")/json") == 200 ]] || fail "postgres: pulled image not found"
jq -e '.Config.User == "1000:1000" and (.Config.ExposedPorts | has("5432/tcp"))
  and .Config.Labels["org.opencontainers.image.source"] == "c2d-stacks"' "$tmp/body" >/dev/null ||
  fail "postgres: image config: $(jq -c .Config "$tmp/body")"
pg_size=$(jq -r .Size "$tmp/body")

phase "postgres: first start (initdb) on $pg_vol"
pg_start "C2D_PG_PASSWORD=$pg_password"
pg_wait
[[ $(stat -c '%u %a' "$pg_vol/pgdata") == "1000 700" ]] ||
  fail "postgres: pgdata is $(stat -c '%u %a' "$pg_vol/pgdata"), not uid 1000 mode 700"
row="row $RANDOM$RANDOM"
pg_psql "$pg_password" "CREATE TABLE t (v text); INSERT INTO t VALUES ('$row')" >/dev/null ||
  fail "postgres: cannot create the table"
[[ $(pg_psql "$pg_password" 'SHOW server_encoding') == UTF8 ]] || fail "postgres: encoding is not UTF8"
# Inside the container: the tools c2d runs there on PATH, the user's name,
# the unix socket found without options (PGHOST) and trusted.
# shellcheck disable=SC2016 # expanded by the container's shell
script='for b in postgres initdb pg_ctl pg_dump pg_restore psql pg_isready; do command -v $b; done
echo "user=$(id -un)"; pg_isready -q && echo ready=yes; echo "socket=$(psql -At -c "SELECT current_user")"'
code=$(api POST "/containers/$pg_id/exec" -H 'Content-Type: application/json' \
  -d "$(jq -cn --arg s "$script" '{AttachStdout: true, AttachStderr: true, Cmd: ["/bin/sh", "-c", $s]}')")
[[ $code == 201 ]] || fail "postgres: exec create: HTTP $code $(body)"
exec_id=$(jq -r .Id "$tmp/body")
code=$(api POST "/exec/$exec_id/start" -H 'Content-Type: application/json' -d '{"Detach": false, "Tty": false}')
[[ $code == 200 ]] || fail "postgres: exec start: HTTP $code $(body)"
cp "$tmp/body" "$tmp/pg-exec.out"
for want in /postgres /initdb /pg_ctl /pg_dump /pg_restore /psql /pg_isready user=postgres ready=yes socket=postgres; do
  grep -aq -- "$want\$" "$tmp/pg-exec.out" || { cat -v "$tmp/pg-exec.out" >&2; fail "postgres: exec: no '$want'"; }
done
# TCP never trusts: a wrong password is refused.
out=$(pg_psql "not-$pg_password" 'SELECT 1' 2>&1) && fail "postgres: a wrong password was accepted"
[[ $out == *'password authentication failed for user "postgres"'* ]] ||
  fail "postgres: a wrong password failed otherwise: $out"
phase "postgres: stop, remove"
pg_stop "$tmp/pg-1.log"
grep -aq 'database system is ready to accept connections' "$tmp/pg-1.log" ||
  { cat -v "$tmp/pg-1.log" >&2; fail "postgres: log lacks the ready line"; }
! grep -aqF -- "$pg_password" "$tmp/pg-1.log" || fail "postgres: the password is in the container's log"

phase "postgres: second container on the same volume, no password given"
pg_start
pg_wait
[[ $(pg_psql "$pg_password" 'SELECT v FROM t') == "$row" ]] || fail "postgres: the row did not survive the container"
pg_stop "$tmp/pg-2.log"
! grep -aq 'initialising the cluster' "$tmp/pg-2.log" || fail "postgres: the cluster was initialised again"
! grep -aq 'not properly shut down' "$tmp/pg-2.log" ||
  { cat -v "$tmp/pg-2.log" >&2; fail "postgres: crash recovery after a stop"; }

phase "teardown"
c2d::_engine_net_names "$tmp/engine"
teardown
! grep -q " $tmp[/ ]" /proc/self/mountinfo || fail "mounts left under $tmp"
[[ ! -e $tmp/engine/engine.pid && ! -e $tmp/registry/registry.pid ]] || fail "pid files left"
ip link show "$ENGINE_NET_BRIDGE" >/dev/null 2>&1 && fail "bridge $ENGINE_NET_BRIDGE left"
left=$(pgrep -af -- "$tmp" || true)
[[ -z $left ]] || fail "processes left: $left"
rm -rf "$tmp" || fail "rm -rf $tmp failed"
[[ ! -e $tmp ]] || fail "$tmp not removed"
c2d::log "components: wall time $((SECONDS - t0)) s (stacks cold ${cold} s; postgres image $((pg_size / 1048576)) MiB)"
echo "components: 1 passed, 0 failed"
