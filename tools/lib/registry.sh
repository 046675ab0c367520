# shellcheck shell=bash
# A private image registry (Distribution, Debian's `docker-registry`) for
# local runs and tests: sourced, never run.
#
#   c2d::registry_start DIR PORT USER PASSWORD [TOKEN_PORT]
#                                    config, data, pid and log in DIR; the token
#                                    service on TOKEN_PORT (default: the one it
#                                    had while free, else a free one)
#   c2d::registry_stop DIR
#
# It listens on plain HTTP on 127.0.0.1 only; engines must list it as insecure
# (tools/lib/engine.sh does). It uses token auth: c2d's token service
# (c2d-registry-token, from the build in C2D_BUILD_DIR) runs beside it on a
# port of its own, signing with a key made here (DIR/token-key.pem) whose
# certificate the registry trusts. USER and PASSWORD are the platform's
# credentials (everything); c2d's services hand out scoped grants (see
# libs/oci/access.h). Clients exercise the same Bearer-token flow they need
# against a production registry.

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

# c2d::_registry_token_start DIR USER PASSWORD: the token service of the
# registry of DIR, on the port it had (DIR/token.port) while free; its key
# and certificate are made once.
c2d::_registry_token_start() {
  local dir=$1 user=$2 password=$3 port=${4:-} bin=$C2D_BUILD_DIR/tools/c2d-registry-token
  [[ -x $bin ]] || c2d::die "$bin is not built (run tools/c2d-up or tools/test, which build it)"
  if [[ ! -f $dir/token-key.pem ]]; then
    (umask 077 && openssl req -x509 -newkey rsa:2048 -nodes -keyout "$dir/token-key.pem" \
      -out "$dir/token-cert.pem" -days 3650 -subj "/CN=c2d registry token service" \
      >/dev/null 2>&1) || c2d::die "cannot make the registry token key (openssl)"
  fi
  if c2d::pidfile_alive "$dir/token.pid"; then
    return 0
  fi
  [[ -n $port ]] || port=$(cat "$dir/token.port" 2>/dev/null || true)
  if [[ -z $port ]] || ! c2d::port_free "$port"; then
    port=$(c2d::free_port)
  fi
  echo "$port" >"$dir/token.port"
  C2D_REGISTRY_TOKEN_ADDR=127.0.0.1:$port C2D_REGISTRY_TOKEN_KEY=$dir/token-key.pem \
    C2D_REGISTRY_TOKEN_CERT=$dir/token-cert.pem C2D_REGISTRY_USER=$user \
    C2D_REGISTRY_PASSWORD=$password \
    setsid "$bin" >>"$dir/token.log" 2>&1 </dev/null &
  echo $! >"$dir/token.pid"
  local deadline=$((SECONDS + 20))
  until curl -s -o /dev/null "http://127.0.0.1:$port/token"; do
    c2d::pidfile_alive "$dir/token.pid" || { tail -n 5 "$dir/token.log" >&2; c2d::die "the registry token service exited at start"; }
    ((SECONDS < deadline)) || c2d::die "the registry token service did not start in 20 s"
    sleep 0.1
  done
}

# c2d::registries_conf WRITER HOSTPORT[,HOSTPORT…]: the registries.conf of
# an engine that uses only these registries, over plain HTTP, and expands no
# short name (nothing can be pulled from the internet on these machines, and
# names must be qualified).
c2d::registries_conf() {
  local r
  printf '# Written by %s.\nunqualified-search-registries = []\nshort-name-mode = "disabled"\n' "$1"
  for r in ${2//,/ }; do printf '\n[[registry]]\nlocation = "%s"\ninsecure = true\n' "$r"; done
}

c2d::registry_start() {
  local dir=$1 port=$2 user=$3 password=$4 token_port=${5:-}
  [[ -n $dir && -n $port && -n $user && -n $password ]] ||
    c2d::die "usage: c2d::registry_start DIR PORT USER PASSWORD [TOKEN_PORT]"
  mkdir -p "$dir/data"
  dir=$(cd "$dir" && pwd)
  c2d::_registry_token_start "$dir" "$user" "$password" "$token_port"
  if c2d::pidfile_alive "$dir/registry.pid"; then
    # One started by an older c2d, with password auth: restart it on tokens.
    grep -q '^  token:' "$dir/config.yml" 2>/dev/null && return 0
    c2d::registry_stop "$dir"
    c2d::_registry_token_start "$dir" "$user" "$password" "$token_port"
  fi
  command -v docker-registry >/dev/null || c2d::die "docker-registry is not installed (apt-get install docker-registry)"
  token_port=$(cat "$dir/token.port")
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
  token:
    realm: http://127.0.0.1:$token_port/token
    service: c2d-registry
    issuer: c2d
    rootcertbundle: $dir/token-cert.pem
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
    authed=$(c2d::registry_curl "127.0.0.1:$port" "$user" "$password" "" \
      -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v2/" || true)
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
  c2d::stop_pidfile "$dir/token.pid" 5
}

# c2d::registry_curl HOSTPORT USER PASSWORD SCOPE CURL_ARGS...: curl with a
# bearer token for SCOPE ("repository:NAME:pull", or empty) from the token
# service the registry's challenge names.
c2d::registry_curl() {
  local hostport=$1 user=$2 password=$3 scope=$4 challenge realm service token
  shift 4
  challenge=$(curl -s -I --max-time 10 "http://$hostport/v2/" | tr -d '\r' |
    awk 'tolower($1) == "www-authenticate:" { $1 = ""; print }')
  realm=$(sed -n 's/.*realm="\([^"]*\)".*/\1/p' <<<"$challenge")
  service=$(sed -n 's/.*service="\([^"]*\)".*/\1/p' <<<"$challenge")
  [[ -n $realm ]] || { c2d::log "registry $hostport: no token realm in its challenge"; return 1; }
  token=$(curl -fsS --max-time 10 -u "$user:$password" -G "$realm" --data-urlencode "service=$service" \
    ${scope:+--data-urlencode "scope=$scope"} | jq -r .token) || return 1
  curl -H "Authorization: Bearer $token" "$@"
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
  headers=$(c2d::registry_curl "$hostport" "$user" "$password" "repository:$repo:pull" \
    -sS -I --max-time 10 -H "Accept: $C2D_MANIFEST_ACCEPT" \
    "http://$hostport/v2/$repo/manifests/$ref") || return 1
  code=$(awk 'NR == 1 { print $2 }' <<<"$headers")
  case $code in
    200) awk 'tolower($1) == "docker-content-digest:" { print $2 }' <<<"$headers" | tr -d '\r' ;;
    404) ;;
    *) c2d::log "registry $hostport: HEAD $repo/manifests/$ref answered $code"; return 1 ;;
  esac
}
