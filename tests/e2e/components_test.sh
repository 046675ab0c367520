#!/usr/bin/env bash
# The local components c2d's `local` provider drives, end to end, through the
# same Docker Engine API calls as c2d's engine client: a private registry
# (tools/lib/registry.sh), a private engine (tools/lib/engine.sh), the stack
# images (tools/stacks/build, run twice: the second run must skip all five),
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
# The redis and mariadb stacks likewise, each on a volume directory of its own,
# with the host's clients: redis-cli (REDISCLI_AUTH) writes a key, a wrong
# password is refused, an ACL user made with ACL SETUSER + ACL SAVE and the
# keys outlive a stop and a SIGKILL (the append-only file); mariadb (over TCP,
# MYSQL_PWD) writes a row that outlives the container, a wrong password is
# refused, tools run in the container log in over the unix socket. Every stop
# must end in a clean shutdown with exit code 0.
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
[[ $(grep -c 'already in the registry' "$tmp/stacks2.log") == 5 ]] ||
  { cat "$tmp/stacks2.log" >&2; fail "second tools/stacks/build did not skip all five stacks"; }
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

# Helpers for the redis and mariadb stacks: one database container at a time,
# db_id and db_port its id and host port, DB its name in messages.
DB='' db_id='' db_port=''

# db_start IMAGE VOLUME PORT [ENV...]: a container of IMAGE on the volume
# directory VOLUME, started, PORT/tcp published on an engine-chosen 127.0.0.1
# port; sets db_id and db_port.
db_start() {
  local image=$1 vol=$2 cport=$3 spec code
  shift 3
  spec=$(jq -cn --arg image "$image" --arg vol "$vol" --arg p "$cport/tcp" '{
    Image: $image,
    Env: $ARGS.positional,
    ExposedPorts: {($p): {}},
    Labels: {"c2d.test": "components"},
    HostConfig: {
      Binds: [$vol + ":/var/lib/c2d/data"],
      PortBindings: {($p): [{HostIp: "127.0.0.1", HostPort: ""}]}
    }}' --args "$@")
  code=$(api POST "/containers/create?name=c2d-test-$DB-$RANDOM" \
    -H 'Content-Type: application/json' -d "$spec")
  [[ $code == 201 ]] || fail "$DB: create: HTTP $code $(body)"
  db_id=$(jq -r .Id "$tmp/body")
  [[ $(api POST "/containers/$db_id/start") == 204 ]] || fail "$DB: start: $(body)"
  [[ $(api GET "/containers/$db_id/json") == 200 ]] || fail "$DB: inspect: $(body)"
  db_port=$(jq -r --arg p "$cport/tcp" '.NetworkSettings.Ports[$p][0].HostPort // empty' "$tmp/body")
  [[ $db_port =~ ^[0-9]+$ && $db_port != 0 ]] ||
    fail "$DB: no host port for $cport/tcp: $(jq -c .NetworkSettings.Ports "$tmp/body")"
}

# db_logs FILE: the container's log (multiplexed frames: grep -a) into FILE.
db_logs() {
  [[ $(api GET "/containers/$db_id/logs?stdout=1&stderr=1") == 200 ]] || fail "$DB: logs: $(body)"
  cp "$tmp/body" "$1"
}

# db_check_running: fails, with the container's log, once it has exited.
db_check_running() {
  if [[ $(api GET "/containers/$db_id/json") == 200 && $(jq -r .State.Running "$tmp/body") == false ]]; then
    db_logs "$tmp/$DB-exited.log"
    cat -v "$tmp/$DB-exited.log" >&2
    fail "$DB: the container exited"
  fi
}

# db_wait COMMAND...: until COMMAND succeeds (the server answers over the
# published port; a first start initialises the data before), 90 s at most.
db_wait() {
  local deadline=$((SECONDS + 90)) out=
  while ((SECONDS < deadline)); do
    out=$("$@" 2>&1) && return 0
    db_check_running
    sleep 0.3
  done
  fail "$DB: no answer on 127.0.0.1:$db_port in 90 s: $out"
}

# db_image IMAGE PORT: IMAGE pulled from the registry (not the builder's copy)
# and its configuration as c2d relies on it; sets db_size.
db_image() {
  local image=$1 cport=$2 code
  [[ $(api DELETE "/images/$(uri "$image")") == 200 ]] || fail "cannot remove $image from the engine: $(body)"
  code=$(api POST "/images/create?fromImage=$(uri "$image")" -H "X-Registry-Auth: $AUTH")
  [[ $code == 200 && -z $(stream_error) ]] || { body >&2; fail "$DB: pull: HTTP $code $(stream_error)"; }
  [[ $(api GET "/images/$(uri "$image")/json") == 200 ]] || fail "$DB: pulled image not found"
  jq -e --arg p "$cport/tcp" '.Config.User == "1000:1000" and (.Config.ExposedPorts | has($p))
    and .Config.Labels["org.opencontainers.image.source"] == "c2d-stacks"
    and (.Config.StopSignal == "SIGTERM" or .Config.StopSignal == "15")' "$tmp/body" >/dev/null ||
    fail "$DB: image config: $(jq -c .Config "$tmp/body")"
  db_size=$(jq -r .Size "$tmp/body")
}

# db_exec SCRIPT OUTFILE: SCRIPT run by /bin/sh in the container (exec, as its
# user), its output into OUTFILE.
db_exec() {
  local code exec_id
  code=$(api POST "/containers/$db_id/exec" -H 'Content-Type: application/json' \
    -d "$(jq -cn --arg s "$1" '{AttachStdout: true, AttachStderr: true, Cmd: ["/bin/sh", "-c", $s]}')")
  [[ $code == 201 ]] || fail "$DB: exec create: HTTP $code $(body)"
  exec_id=$(jq -r .Id "$tmp/body")
  code=$(api POST "/exec/$exec_id/start" -H 'Content-Type: application/json' -d '{"Detach": false, "Tty": false}')
  [[ $code == 200 ]] || fail "$DB: exec start: HTTP $code $(body)"
  cp "$tmp/body" "$2"
}

# db_stop LOGFILE PATTERN: stop with the image's stop signal, well before the
# engine's SIGKILL; exit code 0, PATTERN (the clean shutdown) in the log kept
# in LOGFILE; remove.
db_stop() {
  local code s0=$SECONDS
  code=$(api POST "/containers/$db_id/stop?t=30")
  [[ $code == 204 || $code == 304 ]] || fail "$DB: stop: HTTP $code $(body)"
  [[ $(api GET "/containers/$db_id/json") == 200 && $(jq -r .State.Running "$tmp/body") == false ]] ||
    fail "$DB: still running after stop"
  [[ $(jq -r .State.ExitCode "$tmp/body") == 0 ]] ||
    fail "$DB: exited with $(jq -r .State.ExitCode "$tmp/body") after $((SECONDS - s0)) s, not 0"
  db_logs "$1"
  grep -aq -- "$2" "$1" || { cat -v "$1" >&2; fail "$DB: no clean shutdown ('$2') in the log"; }
  [[ $(api DELETE "/containers/$db_id?v=1") == 204 ]] || fail "$DB: remove: $(body)"
}

# db_kill LOGFILE: SIGKILL (no shutdown at all: what a crash or the OOM killer
# does), the log kept in LOGFILE; remove.
db_kill() {
  local deadline=$((SECONDS + 20))
  [[ $(api POST "/containers/$db_id/kill?signal=KILL") == 204 ]] || fail "$DB: kill: $(body)"
  while [[ $(api GET "/containers/$db_id/json") == 200 && $(jq -r .State.Running "$tmp/body") == true ]]; do
    ((SECONDS < deadline)) || fail "$DB: still running 20 s after SIGKILL"
    sleep 0.2
  done
  [[ $(jq -r .State.ExitCode "$tmp/body") == 137 ]] ||
    fail "$DB: exit code $(jq -r .State.ExitCode "$tmp/body") after SIGKILL, not 137"
  db_logs "$1"
  [[ $(api DELETE "/containers/$db_id?v=1") == 204 ]] || fail "$DB: remove: $(body)"
}

# The redis stack (contract: the header of tools/stacks/redis/c2d-redis).
DB=redis
REDIS_CLI=$(command -v redis-cli) || fail "no redis-cli (apt-get install redis-tools)"
redis_ref=$REG/c2d/stacks/redis:7
redis_vol=$tmp/redis-volume
mkdir -p "$redis_vol"
chmod 0777 "$redis_vol"
redis_password="rd '\"\$x%/@:; $(head -c 9 /dev/urandom | base64 | tr -d '=')"
app_password="app $(head -c 9 /dev/urandom | base64 | tr -d '=')"

# rcli PASSWORD [redis-cli args]: the host's redis-cli on the published port,
# the password in REDISCLI_AUTH (not on its command line); -e: an error reply
# is a failure.
rcli() {
  REDISCLI_AUTH=$1 "$REDIS_CLI" -e -h 127.0.0.1 -p "$db_port" "${@:2}"
}
redis_ping() { [[ $(rcli "$redis_password" PING) == PONG ]]; }

phase "redis: pull $redis_ref from the registry"
db_image "$redis_ref" 6379
redis_size=$db_size

phase "redis: first start on $redis_vol"
db_start "$redis_ref" "$redis_vol" 6379 "C2D_REDIS_PASSWORD=$redis_password"
db_wait redis_ping
[[ $(stat -c '%u %a' "$redis_vol/users.acl") == "1000 600" ]] ||
  fail "redis: users.acl is $(stat -c '%u %a' "$redis_vol/users.acl"), not uid 1000 mode 600"
hash=$(printf '%s' "$redis_password" | sha256sum | cut -d' ' -f1)
grep -qx "user default on #$hash ~\\* &\\* +@all" "$redis_vol/users.acl" ||
  { cat "$redis_vol/users.acl" >&2; fail "redis: users.acl lacks the default user with the password's SHA-256"; }
! grep -qF -- "$redis_password" "$redis_vol/users.acl" || fail "redis: the password is in users.acl"
value="value $RANDOM$RANDOM"
[[ $(rcli "$redis_password" SET k "$value") == OK ]] || fail "redis: SET failed"
[[ $(rcli "$redis_password" GET k) == "$value" ]] || fail "redis: GET does not return the value"
[[ $(rcli "$redis_password" CONFIG GET appendonly | tail -n 1) == yes ]] || fail "redis: appendonly is not on"
[[ $(rcli "$redis_password" CONFIG GET maxclients | tail -n 1) == 100 ]] || fail "redis: maxclients is not 100"
out=$(rcli "not-$redis_password" GET k 2>&1) && fail "redis: a wrong password was accepted: $out"
[[ $out == *WRONGPASS* && $out != *"$value"* ]] || fail "redis: a wrong password failed otherwise: $out"
out=$("$REDIS_CLI" -e -h 127.0.0.1 -p "$db_port" GET k 2>&1) && fail "redis: no password was accepted: $out"
[[ $out == *NOAUTH* ]] || fail "redis: no password failed otherwise: $out"
# A login user as c2d adds them: keys app:* only, saved to users.acl.
[[ $(rcli "$redis_password" ACL SETUSER app on ">$app_password" '~app:*' '+@all') == OK ]] ||
  fail "redis: ACL SETUSER failed"
[[ $(rcli "$redis_password" ACL SAVE) == OK ]] || fail "redis: ACL SAVE failed"
[[ $(rcli "$app_password" --user app SET app:k 1) == OK ]] || fail "redis: the user app cannot write app:k"
out=$(rcli "$app_password" --user app GET k 2>&1) && fail "redis: the user app reads k: $out"
[[ $out == *NOPERM* ]] || fail "redis: app's GET k failed otherwise: $out"
# shellcheck disable=SC2016 # expanded by the container's shell
script='for b in redis-server redis-cli redis-check-aof redis-check-rdb; do command -v $b; done; echo "user=$(id -un)"'
db_exec "$script" "$tmp/redis-exec.out"
for want in /redis-server /redis-cli /redis-check-aof /redis-check-rdb user=redis; do
  grep -aq -- "$want\$" "$tmp/redis-exec.out" || { cat -v "$tmp/redis-exec.out" >&2; fail "redis: exec: no '$want'"; }
done
phase "redis: stop, remove"
db_stop "$tmp/redis-1.log" 'ready to exit, bye bye'
grep -aq 'Ready to accept connections' "$tmp/redis-1.log" ||
  { cat -v "$tmp/redis-1.log" >&2; fail "redis: log lacks the ready line"; }
! grep -aqF -- "$redis_password" "$tmp/redis-1.log" || fail "redis: the password is in the container's log"
[[ -f $redis_vol/dump.rdb && -d $redis_vol/appendonlydir ]] || fail "redis: no snapshot or append-only file on the volume"
rcli "$redis_password" PING >/dev/null 2>&1 && fail "redis: port $db_port still answers"

phase "redis: second container on the same volume, no password given; then SIGKILL"
db_start "$redis_ref" "$redis_vol" 6379
db_wait redis_ping
[[ $(rcli "$redis_password" GET k) == "$value" ]] || fail "redis: the key did not survive the container"
[[ $(rcli "$app_password" --user app GET app:k) == 1 ]] || fail "redis: the user app did not survive the container"
value2="after kill $RANDOM$RANDOM"
[[ $(rcli "$redis_password" SET k2 "$value2") == OK ]] || fail "redis: SET k2 failed"
db_kill "$tmp/redis-2.log"
! grep -aq 'creating /var/lib/c2d/data/users.acl' "$tmp/redis-2.log" || fail "redis: users.acl was made again"

phase "redis: third container after the SIGKILL"
db_start "$redis_ref" "$redis_vol" 6379
db_wait redis_ping
[[ $(rcli "$redis_password" GET k2) == "$value2" ]] || fail "redis: the key written before SIGKILL is lost"
[[ $(rcli "$redis_password" GET k) == "$value" ]] || fail "redis: the first key is lost after SIGKILL"
db_stop "$tmp/redis-3.log" 'ready to exit, bye bye'
grep -aq 'DB loaded from append only file' "$tmp/redis-3.log" ||
  { cat -v "$tmp/redis-3.log" >&2; fail "redis: the data did not come from the append-only file"; }

# The mariadb stack (contract: the header of tools/stacks/mariadb/c2d-mariadb).
DB=mariadb
MARIADB=$(command -v mariadb) || fail "no mariadb client (apt-get install mariadb-client)"
mdb_ref=$REG/c2d/stacks/mariadb:10.11
mdb_vol=$tmp/mariadb-volume
mkdir -p "$mdb_vol"
chmod 0777 "$mdb_vol"
# Characters that a shell, SQL string quoting and a file could each mangle.
mdb_password="my '\"\\\$x%/@:;é $(head -c 9 /dev/urandom | base64 | tr -d '=')"

# mdb PASSWORD SQL: the host's mariadb as root over TCP, the password in
# MYSQL_PWD (not on its command line); rows tab-separated, no headers.
mdb() {
  MYSQL_PWD=$1 "$MARIADB" --no-defaults --protocol=TCP -h 127.0.0.1 -P "$db_port" -u root \
    --connect-timeout=3 -N -B -e "$2"
}
mdb_ping() { [[ $(mdb "$mdb_password" 'SELECT 1') == 1 ]]; }

phase "mariadb: pull $mdb_ref from the registry"
db_image "$mdb_ref" 3306
mdb_size=$db_size

phase "mariadb: first start (mariadb-install-db) on $mdb_vol"
s0=$SECONDS
db_start "$mdb_ref" "$mdb_vol" 3306 "C2D_MARIADB_PASSWORD=$mdb_password"
db_wait mdb_ping
mdb_first=$((SECONDS - s0))
[[ $(stat -c '%u %a' "$mdb_vol/mysql") == "1000 700" ]] ||
  fail "mariadb: the data directory is $(stat -c '%u %a' "$mdb_vol/mysql"), not uid 1000 mode 700"
[[ ! -e $mdb_vol/mysql.install ]] || fail "mariadb: mysql.install left beside the data directory"
row="row $RANDOM$RANDOM é"
mdb "$mdb_password" "CREATE DATABASE app; CREATE TABLE app.t (v varchar(100));
  INSERT INTO app.t VALUES ('$row')" || fail "mariadb: cannot create the table"
[[ $(mdb "$mdb_password" 'SELECT @@character_set_server, @@skip_name_resolve, @@max_connections') == $'utf8mb4\t1\t100' ]] ||
  fail "mariadb: settings: $(mdb "$mdb_password" 'SELECT @@character_set_server, @@skip_name_resolve, @@max_connections')"
[[ $(mdb "$mdb_password" "SELECT CONVERT_TZ('2024-06-01 12:00:00', 'UTC', 'Europe/Paris')") == '2024-06-01 14:00:00' ]] ||
  fail "mariadb: no time zone tables"
[[ $(mdb "$mdb_password" "SELECT GROUP_CONCAT(CONCAT(User, '@', Host) ORDER BY User) FROM mysql.user") == 'mariadb.sys@localhost,mysql@localhost,root@%' ]] ||
  fail "mariadb: accounts: $(mdb "$mdb_password" "SELECT User, Host FROM mysql.user")"
out=$(mdb "not-$mdb_password" 'SELECT 1' 2>&1) && fail "mariadb: a wrong password was accepted"
[[ $out == *"Access denied for user 'root'"* ]] || fail "mariadb: a wrong password failed otherwise: $out"
# Inside the container: the tools on PATH, the user's name, the unix socket
# found without options (MYSQL_UNIX_PORT) and its login without a password.
# shellcheck disable=SC2016 # expanded by the container's shell
script='for b in mariadbd mariadb-install-db mariadb mariadb-dump mariadb-admin; do command -v $b; done
echo "user=$(id -un)"; mariadb-admin ping; echo "socket=$(mariadb -N -B -e "SELECT current_user()")"
mariadb-dump --no-data app t | grep -c "CREATE TABLE" | sed "s/^/dump=/"'
db_exec "$script" "$tmp/mariadb-exec.out"
for want in /usr/sbin/mariadbd /mariadb-install-db /mariadb /mariadb-dump /mariadb-admin user=mysql \
  'mysqld is alive' socket=mysql@localhost dump=1; do
  grep -aq -- "$want\$" "$tmp/mariadb-exec.out" || { cat -v "$tmp/mariadb-exec.out" >&2; fail "mariadb: exec: no '$want'"; }
done
phase "mariadb: stop, remove"
db_stop "$tmp/mariadb-1.log" 'mariadbd: Shutdown complete'
grep -aq 'mariadbd: ready for connections' "$tmp/mariadb-1.log" ||
  { cat -v "$tmp/mariadb-1.log" >&2; fail "mariadb: log lacks the ready line"; }
! grep -aqF -- "$mdb_password" "$tmp/mariadb-1.log" || fail "mariadb: the password is in the container's log"
mdb "$mdb_password" 'SELECT 1' >/dev/null 2>&1 && fail "mariadb: port $db_port still answers"

phase "mariadb: second container on the same volume, no password given"
db_start "$mdb_ref" "$mdb_vol" 3306
db_wait mdb_ping
[[ $(mdb "$mdb_password" 'SELECT v FROM app.t') == "$row" ]] || fail "mariadb: the row did not survive the container"
db_stop "$tmp/mariadb-2.log" 'mariadbd: Shutdown complete'
! grep -aq 'initialising the data directory' "$tmp/mariadb-2.log" || fail "mariadb: the data directory was made again"
! grep -aqi 'crash recovery' "$tmp/mariadb-2.log" ||
  { cat -v "$tmp/mariadb-2.log" >&2; fail "mariadb: crash recovery after a stop"; }

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
c2d::log "components: wall time $((SECONDS - t0)) s (stacks cold ${cold} s; images: postgres $((pg_size / 1048576)) MiB, redis $((redis_size / 1048576)) MiB, mariadb $((mdb_size / 1048576)) MiB; mariadb first start ${mdb_first} s)"
echo "components: 1 passed, 0 failed"
