# shellcheck shell=bash
# A private image registry (Distribution, Debian's `docker-registry`) for
# local runs and tests: sourced, never run.
#
#   c2d::registry_start DIR PORT USER PASSWORD   config, data, pid and log in DIR
#   c2d::registry_stop DIR
#
# It listens on plain HTTP on 127.0.0.1 only; engines must list it as insecure
# (tools/lib/engine.sh does). htpasswd auth is on, so clients exercise the same
# X-Registry-Auth path they need against a real registry.

# shellcheck source=tools/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# True if process PID runs (a zombie, which `kill -0` still finds, does not).
c2d::pid_running() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}

# True if the pid in FILE (first line) names a running process.
c2d::pidfile_alive() { [[ -f $1 ]] && c2d::pid_running "$(head -n 1 "$1")"; }

# c2d::stop_pidfile FILE GRACE: SIGTERM to the process of FILE, SIGKILL (to its
# process group too: daemons here are started with setsid and lead one) after
# GRACE seconds; removes FILE.
c2d::stop_pidfile() {
  local file=$1 grace=$2 pid
  if c2d::pidfile_alive "$file"; then
    pid=$(head -n 1 "$file")
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + grace))
    while c2d::pid_running "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
    if c2d::pid_running "$pid"; then
      c2d::log "pid $pid ($file) did not stop in ${grace}s; killing it"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
      deadline=$((SECONDS + 5))
      while c2d::pid_running "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
    fi
  fi
  rm -f "$file"
}

c2d::registry_start() {
  local dir=$1 port=$2 user=$3 password=$4
  [[ -n $dir && -n $port && -n $user && -n $password ]] ||
    c2d::die "usage: c2d::registry_start DIR PORT USER PASSWORD"
  if c2d::pidfile_alive "$dir/registry.pid"; then
    return 0
  fi
  command -v docker-registry >/dev/null || c2d::die "docker-registry is not installed (apt-get install docker-registry)"
  command -v htpasswd >/dev/null || c2d::die "htpasswd is not installed (apt-get install apache2-utils)"
  mkdir -p "$dir/data"
  dir=$(cd "$dir" && pwd)
  # bcrypt: the only hash Distribution's htpasswd backend accepts.
  (umask 077 && htpasswd -Bbn "$user" "$password" >"$dir/htpasswd")
  # delete.enabled: c2d deletes manifests of old releases, then garbage-collects.
  cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
auth:
  htpasswd:
    realm: c2d-registry
    path: $dir/htpasswd
http:
  addr: 127.0.0.1:$port
  secret: $(head -c 24 /dev/urandom | base64)
EOF
  # Debian's package ships /etc/docker/registry/config.yml; the path argument
  # overrides it. setsid: the registry outlives the calling shell's job control
  # and Ctrl-C in a terminal does not reach it.
  setsid docker-registry serve "$dir/config.yml" >>"$dir/registry.log" 2>&1 </dev/null &
  echo $! >"$dir/registry.pid"

  local deadline=$((SECONDS + 30)) anon authed
  while ((SECONDS < deadline)); do
    if ! c2d::pidfile_alive "$dir/registry.pid"; then
      tail -n 20 "$dir/registry.log" >&2
      c2d::die "docker-registry exited at start; its log: $dir/registry.log"
    fi
    anon=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v2/" || true)
    authed=$(curl -s -o /dev/null -w '%{http_code}' -u "$user:$password" "http://127.0.0.1:$port/v2/" || true)
    if [[ $anon == 401 && $authed == 200 ]]; then
      return 0
    fi
    sleep 0.1
  done
  tail -n 20 "$dir/registry.log" >&2
  c2d::registry_stop "$dir"
  c2d::die "registry on 127.0.0.1:$port not ready in 30 s (anonymous $anon, authenticated $authed)"
}

c2d::registry_stop() {
  local dir=$1
  c2d::stop_pidfile "$dir/registry.pid" 10
}

# c2d::b64url: stdin as base64url with padding, one line. The Docker Engine API
# (and Podman's copy of it) decodes X-Registry-Auth and X-Registry-Config with
# Go's base64.URLEncoding: standard base64 breaks as soon as a '+' or '/' appears.
c2d::b64url() { base64 -w0 | tr '+/' '-_'; }

# c2d::registry_auth USER PASSWORD SERVER: the X-Registry-Auth header value for
# pushes and pulls through the engine API.
c2d::registry_auth() {
  jq -cjn --arg u "$1" --arg p "$2" --arg s "$3" '{username: $u, password: $p, serveraddress: $s}' | c2d::b64url
}

# c2d::registry_config USER PASSWORD SERVER: the X-Registry-Config header value
# for POST /build (a map server -> credentials), used when a FROM image has to
# be pulled from SERVER.
c2d::registry_config() {
  jq -cjn --arg u "$1" --arg p "$2" --arg s "$3" '{($s): {username: $u, password: $p}}' | c2d::b64url
}

# The manifest types c2d accepts. Docker's schema 2 must be listed: engines push
# it, and Distribution answers a request that does not accept it with a schema 1
# conversion whose digest is not the pushed one.
C2D_MANIFEST_ACCEPT='application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json'

# c2d::registry_digest HOSTPORT USER PASSWORD REPO REF: the digest of REPO:REF
# (REF a tag or a digest) in the registry, or nothing if it is not there.
# Fails on anything but 200 or 404 (e.g. 401: wrong credentials).
c2d::registry_digest() {
  local hostport=$1 user=$2 password=$3 repo=$4 ref=$5 headers code
  headers=$(curl -sS -I --max-time 10 -u "$user:$password" -H "Accept: $C2D_MANIFEST_ACCEPT" \
    "http://$hostport/v2/$repo/manifests/$ref") || return 1
  code=$(awk 'NR == 1 { print $2 }' <<<"$headers")
  case $code in
    200) awk 'tolower($1) == "docker-content-digest:" { print $2 }' <<<"$headers" | tr -d '\r' ;;
    404) ;;
    *) c2d::log "registry $hostport: HEAD $repo/manifests/$ref answered $code"; return 1 ;;
  esac
}
