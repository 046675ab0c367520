# Shared by c2d's shell tools: sourced, never run.

C2D_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
C2D_BUILD_DIR=${C2D_BUILD_DIR:-$C2D_ROOT/build}
PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}

c2d::log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
c2d::die() { c2d::log "error: $*"; exit 1; }

# A free TCP port on 127.0.0.1, drawn at random below the kernel's ephemeral
# range: a port from that range (what binding port 0 gives) is also what the
# next outgoing connection of any process may take as its own, and a daemon
# started a minute later would then fail to bind it. A small race remains
# between this check and the caller binding the port.
c2d::free_port() {
  python3 - <<'PY'
import random, socket
low = 10000
try:
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        high = int(f.read().split()[0]) - 1
except OSError:
    high = 32767
def bindable(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        return s.getsockname()[1]
    except OSError:
        return 0
    finally:
        s.close()
for _ in range(100 if high - low > 1000 else 0):
    port = bindable(random.randint(low, high))
    if port:
        break
else:
    port = bindable(0)
print(port)
PY
}

# c2d::port_free PORT: true if a server could bind 127.0.0.1:PORT now (no
# listener there, no connection holding it as its own end).
c2d::port_free() {
  python3 - "$1" <<'PY'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except (OSError, ValueError):
    sys.exit(1)
PY
}

# c2d::sample_repo DIR: a git repository of the sample app
# (examples/hello-python), one commit on branch main, made at DIR unless
# one is there.
c2d::sample_repo() {
  local repo=$1
  [[ -d $repo/.git ]] && return 0
  mkdir -p "$repo"
  cp -r "$C2D_ROOT/examples/hello-python/." "$repo/"
  git -C "$repo" init -q -b main
  git -C "$repo" add -A
  git -C "$repo" -c user.name=c2d -c user.email=c2d@localhost commit -q -m "hello-python"
}

# Configures (once) and builds the project with Ninja and ccache.
c2d::build() {
  export CCACHE_DIR=${CCACHE_DIR:-/var/cache/c2d-ccache}
  # Paths relative to the checkout and no working directory in the hash: a
  # clone in another folder (as CI makes) hits the same cache entries.
  export CCACHE_BASEDIR=$C2D_ROOT CCACHE_NOHASHDIR=true
  mkdir -p "$CCACHE_DIR"
  if [[ ! -f $C2D_BUILD_DIR/build.ninja ]]; then
    cmake -S "$C2D_ROOT" -B "$C2D_BUILD_DIR" -G Ninja ${C2D_CMAKE_ARGS:-} >&2
  fi
  cmake --build "$C2D_BUILD_DIR" -j "${C2D_JOBS:-2}" >&2
}

# c2d::web_build: the dashboard's packages from web/package-lock.json (npm
# ci) and its build into web/dist, which the gateway compiles in.
c2d::web_build() {
  (cd "$C2D_ROOT/web" && npm ci --no-audit --no-fund --loglevel=error >&2 && npm run --silent build >&2)
}

# c2d::unmount_under DIR: unmounts every mount point at or below DIR, deepest
# first; lazily as a last resort.
c2d::unmount_under() {
  local dir=$1 m
  # Field 5 of mountinfo is the mount point (octal escapes for blanks).
  while read -r m; do
    [[ -n $m ]] || continue
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || c2d::log "cannot unmount $m"
  done < <(awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo |
    sort -r)
}

# c2d::pg_start DIR PORT [durable]: a PostgreSQL cluster with its data in
# DIR/data and its socket in DIR, listening on 127.0.0.1:PORT, trust auth for
# local use, fsync off (a throwaway cluster) unless "durable" is given, which
# keeps PostgreSQL's default settings (for benchmarks). initdb and pg_ctl
# refuse to run as root, so they run as "postgres".
# (C2D_PG_OPTIONS: more server options, e.g. "-c shared_preload_libraries=…".)
c2d::pg_start() {
  local dir=$1 port=$2 fsync=" -c fsync=off"
  [[ ${3:-} == durable ]] && fsync=
  local as=()
  if ((EUID == 0)); then
    as=(runuser -u postgres --)
    chown postgres: "$dir"
  fi
  if [[ ! -f $dir/data/PG_VERSION ]]; then
    "${as[@]}" "$PG_BIN/initdb" -D "$dir/data" -A trust -U postgres --no-sync -E UTF8 \
      >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; return 1; }
  fi
  "${as[@]}" "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300$fsync ${C2D_PG_OPTIONS:-}" \
    start >/dev/null || { tail -n 20 "$dir/postgres.log" >&2; return 1; }
}

# c2d::pg_stop DIR: stops the cluster of DIR if it runs.
c2d::pg_stop() {
  local dir=$1
  local as=()
  ((EUID == 0)) && as=(runuser -u postgres --)
  if [[ -f $dir/data/postmaster.pid ]]; then
    "${as[@]}" "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null 2>&1 || true
  fi
}

# c2d::pg_port DIR: the port a cluster of DIR was started with (from its pid file).
c2d::pg_port() { sed -n 4p "$1/data/postmaster.pid" 2>/dev/null || true; }
