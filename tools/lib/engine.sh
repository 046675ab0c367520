# shellcheck shell=bash
# A private container engine for local runs and tests: Podman's Docker Engine
# API service (`podman system service`) with every piece of its state inside
# one directory. Sourced, never run.
#
#   c2d::engine_start DIR REGISTRY_HOSTPORT   socket DIR/engine.sock
#   c2d::engine_stop DIR                      stops it, its containers, unmounts
#
# DIR/engine.env exports the CONTAINERS_* variables (and the rest below), so
# `source DIR/engine.env; podman ps` looks at the same engine.
#
# Podman's defaults put state in shared places (/run/libpod, /var/tmp,
# /etc/cni/net.d, /var/lib/cni/networks, /dev/shm/libpod_lock); two engines, or
# one left behind by an aborted test, would then step on each other. The files
# written here move each of those into DIR, so that tests start fresh engines
# in temp directories side by side and `rm -rf DIR` after c2d::engine_stop
# leaves nothing behind. What stays shared: transient per-container entries
# (/run/netns, /var/lib/cni/results, iptables chains), removed with each
# container, and Podman's blob-info cache /var/lib/containers/cache (a cache,
# safe to share; 4.3 has no setting for it).
#
# Networking: a CNI bridge per engine (own network name, bridge device, /24 and
# IPAM state), published ports by CNI's portmap plugin, 127.0.0.1 included.
# Apps run on one network per project, which c2d makes through the API
# (libs/cloud/local_provider.cc); podman isolates those from each other, and
# the firewall plugin's "same-bridge" ingress policy isolates this default
# network from them too (isolation holds only between isolated networks).
# CNI because the Debian 12 machines have containernetworking-plugins, not
# netavark; the backend is pinned so that installing netavark changes nothing.
# Containers reach the host at their gateway (10.x.y.1), not its 127.0.0.1.

# shellcheck source=tools/lib/registry.sh
source "$(dirname "${BASH_SOURCE[0]}")/registry.sh"

C2D_ENGINE_API=${C2D_ENGINE_API:-v1.41}

# c2d::engine_api DIR METHOD PATH [curl args...]: one request to the engine of
# DIR; prints the body. Fails on transport errors only: callers check bodies.
c2d::engine_api() {
  local dir=$1 method=$2 path=$3
  shift 3
  curl -sS --unix-socket "$dir/engine.sock" -X "$method" "$@" "http://d/$C2D_ENGINE_API$path"
}

# Per-engine network identity, derived from DIR so that it is stable across
# restarts of the same engine and distinct between engines.
c2d::_engine_net_names() {
  ENGINE_NET_HASH=$(printf '%s' "$1" | sha256sum | cut -c1-8)
  ENGINE_NET_NAME=c2d-$ENGINE_NET_HASH
  ENGINE_NET_BRIDGE=c2d$ENGINE_NET_HASH # Linux caps device names at 15 characters
}

c2d::_engine_net() {
  local dir=$1 h
  c2d::_engine_net_names "$dir"
  h=$ENGINE_NET_HASH
  if [[ -f $dir/networks/$ENGINE_NET_NAME.conflist ]]; then
    ENGINE_NET_SUBNET=$(jq -r '.plugins[0].ipam.ranges[0][0].subnet' "$dir/networks/$ENGINE_NET_NAME.conflist")
    return
  fi
  # A /24 in 10.128.0.0/10 that no route on this host uses yet (other engines'
  # bridges, the host's own networks), starting at a hash of DIR.
  local i n
  for ((i = 0; i < 16384; i++)); do
    n=$(((16#${h:0:4} + i) % 16384))
    ENGINE_NET_SUBNET=10.$((128 + n / 256)).$((n % 256)).0/24
    if ! ip -4 route show | grep -q "^${ENGINE_NET_SUBNET%/24}/"; then
      return
    fi
  done
  c2d::die "no free /24 in 10.128.0.0/10 for the engine network"
}

c2d::_engine_write_config() {
  local dir=$1 registry=$2
  c2d::_engine_net "$dir"
  local gw=${ENGINE_NET_SUBNET%.0/24}.1 dev mtu=1500
  # The bridge gets the MTU of the host's way out (1400 on some VMs); CNI's
  # default of 1500 would lose large packets of containers talking outside.
  dev=$(ip -4 route show default | awk '!found { for (i = 1; i < NF; i++) if ($i == "dev") { print $(i + 1); found = 1; break } }')
  [[ -n $dev && -r /sys/class/net/$dev/mtu ]] && mtu=$(cat "/sys/class/net/$dev/mtu")
  mkdir -p "$dir/storage" "$dir/runroot" "$dir/run" "$dir/tmp" "$dir/networks" "$dir/cni"

  cat >"$dir/containers.conf" <<EOF
# Written by c2d::engine_start (tools/lib/engine.sh).
[containers]
# The engine's own default (1048576 files) breaks some programs; Docker-like limits.
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]
# Container logs in files under the storage dirs (read back by GET /containers/{id}/logs);
# there is no journald here.
log_driver = "k8s-file"
netns = "bridge"

[engine]
# crun fails on the hybrid cgroup layout of this project's machines, and there
# is no systemd to manage scopes.
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$dir/run/events.log"
# Defaults are /run/libpod, /var/lib/containers/storage/{libpod,volumes}, /var/tmp
# and a lock segment in /dev/shm shared by every rootful podman: all per engine here.
tmp_dir = "$dir/run/libpod"
static_dir = "$dir/storage/libpod"
volume_path = "$dir/storage/volumes"
image_copy_tmp_dir = "$dir/tmp"
lock_type = "file"

[network]
network_backend = "cni"
network_config_dir = "$dir/networks"
default_network = "$ENGINE_NET_NAME"
default_subnet = "$ENGINE_NET_SUBNET"
EOF

  cat >"$dir/storage.conf" <<EOF
# Written by c2d::engine_start (tools/lib/engine.sh).
[storage]
driver = "overlay"
graphroot = "$dir/storage"
runroot = "$dir/runroot"
EOF

  c2d::registries_conf "c2d::engine_start (tools/lib/engine.sh)" "$registry" >"$dir/registries.conf"

  # The default network of this engine: its own bridge device and /24, IPAM
  # leases in DIR (host-local's default is the shared /var/lib/cni/networks).
  cat >"$dir/networks/$ENGINE_NET_NAME.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "$ENGINE_NET_NAME",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$ENGINE_NET_BRIDGE",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "mtu": $mtu,
      "ipam": {
        "type": "host-local",
        "dataDir": "$dir/cni",
        "routes": [{ "dst": "0.0.0.0/0" }],
        "ranges": [[{ "subnet": "$ENGINE_NET_SUBNET", "gateway": "$gw" }]]
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } },
    { "type": "firewall", "ingressPolicy": "same-bridge" },
    { "type": "tuning" }
  ]
}
EOF

  # The podman CLI refuses to start when REGISTRY_AUTH_FILE names no file.
  [[ -f $dir/auth.json ]] || (umask 077 && echo '{}' >"$dir/auth.json")
  cat >"$dir/engine.env" <<EOF
# Written by c2d::engine_start: source it to run podman against this engine.
export CONTAINERS_CONF=$dir/containers.conf
export CONTAINERS_STORAGE_CONF=$dir/storage.conf
export CONTAINERS_REGISTRIES_CONF=$dir/registries.conf
# Credentials podman stores (podman login) stay with this engine, too.
export REGISTRY_AUTH_FILE=$dir/auth.json
# Build contexts and layer blobs are unpacked under TMPDIR (default /var/tmp).
export TMPDIR=$dir/tmp
export C2D_ENGINE_SOCK=$dir/engine.sock
EOF
}

# CNI's portmap and bridge plugins keep per-container NAT rules host-wide,
# removed by the container's network clean-up. An engine killed without it
# (a host crash, an aborted run) leaves them behind, and a stale DNAT rule for
# a host port the kernel hands out again sends that port's connections to a
# dead container's address: a new container published there then refuses
# every connection. A rule is stale when no process (the container's conmon)
# names its container id. Podman writes a container's rules just before it
# starts its conmon, so a rule is dropped only when no process names its id
# in two looks 3 s apart (another engine may be starting a container now).
c2d::_engine_drop_stale_nat_rules() {
  local rules line id chain stale=()
  rules=$(iptables -w -t nat -S 2>/dev/null |
    grep -E '^-A (CNI-HOSTPORT-DNAT|POSTROUTING) .*id: \\"[0-9a-f]{64}\\"' || true)
  while read -r line; do
    [[ -n $line ]] || continue
    id=$(grep -oE 'id: \\"[0-9a-f]{64}' <<<"$line" | grep -oE '[0-9a-f]{64}')
    pgrep -f -- "$id" >/dev/null || stale+=("$line")
  done <<<"$rules"
  ((${#stale[@]} > 0)) || return 0
  sleep 3
  for line in "${stale[@]}"; do
    id=$(grep -oE 'id: \\"[0-9a-f]{64}' <<<"$line" | grep -oE '[0-9a-f]{64}')
    pgrep -f -- "$id" >/dev/null && continue
    chain=${line##*-j }
    # The rule as iptables printed it, quoted comment included.
    eval "iptables -w -t nat -D ${line#-A }" 2>/dev/null || true
    iptables -w -t nat -F "$chain" 2>/dev/null || true
    iptables -w -t nat -X "$chain" 2>/dev/null || true
  done
}

c2d::engine_start() {
  local dir=$1 registry=$2
  [[ -n $dir && -n $registry ]] || c2d::die "usage: c2d::engine_start DIR REGISTRY_HOSTPORT[,HOSTPORT…]"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if c2d::pidfile_alive "$dir/engine.pid"; then
    return 0
  fi
  local cmd
  for cmd in podman runc conmon jq; do
    command -v "$cmd" >/dev/null || c2d::die "$cmd is not installed (apt-get install podman runc jq)"
  done
  # Rootful Podman with kernel overlay needs neither uidmap, fuse-overlayfs nor
  # slirp4netns; its bridge network needs the CNI plugins and iptables.
  [[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/portmap ]] ||
    c2d::die "CNI plugins missing (apt-get install containernetworking-plugins)"
  command -v iptables >/dev/null || c2d::die "iptables is not installed"
  # run/ and runroot/ hold what Podman keeps on tmpfs by default (container
  # state, mounts, conmon pids). After a reboot it is stale and would make
  # Podman believe dead containers still run: start them afresh.
  local boot
  boot=$(cat /proc/sys/kernel/random/boot_id)
  if [[ -f $dir/boot_id && $(cat "$dir/boot_id") != "$boot" ]]; then
    rm -rf "$dir/run" "$dir/runroot"
  fi
  echo "$boot" >"$dir/boot_id"
  # Scratch space of the previous run: build contexts of interrupted builds and
  # the empty digest.txt* file Podman 4.3 leaves there for every push.
  rm -rf "$dir/tmp"

  c2d::_engine_write_config "$dir" "$registry"
  c2d::_engine_drop_stale_nat_rules
  rm -f "$dir/engine.sock"
  (
    # shellcheck source=/dev/null
    source "$dir/engine.env"
    # --time=0: no idle timeout. setsid: its own session, so job control and
    # Ctrl-C of the caller's terminal leave it alone and engine_stop can
    # signal the group.
    exec setsid podman system service --time=0 "unix://$dir/engine.sock" \
      >>"$dir/engine.log" 2>&1 </dev/null
  ) &
  echo $! >"$dir/engine.pid"

  local deadline=$((SECONDS + 30)) ping=
  while ((SECONDS < deadline)); do
    if ! c2d::pidfile_alive "$dir/engine.pid"; then
      tail -n 20 "$dir/engine.log" >&2
      c2d::die "podman system service exited at start; its log: $dir/engine.log"
    fi
    ping=$(curl -s --max-time 2 --unix-socket "$dir/engine.sock" "http://d/$C2D_ENGINE_API/_ping" 2>/dev/null || true)
    [[ $ping == OK ]] && return 0
    sleep 0.1
  done
  tail -n 20 "$dir/engine.log" >&2
  c2d::engine_stop "$dir"
  c2d::die "engine at $dir/engine.sock not ready in 30 s"
}

# c2d::engine_podman DIR TIMEOUT ARGS...: the podman CLI on the storage of the
# engine of DIR. It sees what the service started, the working containers
# failed builds leave ("Storage" containers, which the API does not list) and
# containers of an engine that died.
c2d::engine_podman() {
  local dir=$1 limit=$2
  shift 2
  (
    # shellcheck source=/dev/null
    source "$dir/engine.env"
    exec timeout "$limit" podman "$@"
  )
}

c2d::engine_stop() {
  local dir=$1
  [[ -d $dir ]] || return 0
  dir=$(cd "$dir" && pwd)
  [[ -f $dir/engine.env ]] || { c2d::stop_pidfile "$dir/engine.pid" 10; return 0; }

  # 1. Containers, through the service while it still runs (it owns them):
  # all stopped at once (SIGTERM, SIGKILL after 10 s: the engine's deadline),
  # then removed with their anonymous volumes.
  if c2d::pidfile_alive "$dir/engine.pid"; then
    local ids id stoppers=()
    ids=$(c2d::engine_api "$dir" GET "/containers/json?all=1" --max-time 10 2>/dev/null |
      jq -r '.[].Id' 2>/dev/null || true)
    for id in $ids; do
      c2d::engine_api "$dir" POST "/containers/$id/stop?t=10" --max-time 30 >/dev/null 2>&1 &
      stoppers+=($!)
    done
    # Only these: a bare `wait` would also wait for the engine and registry
    # when the caller started them.
    ((${#stoppers[@]} == 0)) || wait "${stoppers[@]}" || true
    for id in $ids; do
      c2d::engine_api "$dir" DELETE "/containers/$id?force=1&v=1" --max-time 20 >/dev/null 2>&1 || true
    done
  fi
  # 2. The service.
  c2d::stop_pidfile "$dir/engine.pid" 10
  # 3. Anything left: containers the API missed and working containers of builds.
  local left
  left=$(c2d::engine_podman "$dir" 30 ps -a --external -q 2>/dev/null || true)
  if [[ -n $left ]]; then
    # shellcheck disable=SC2086
    c2d::engine_podman "$dir" 60 rm -f -t 0 $left >/dev/null 2>&1 || true
  fi
  # 4. Processes of containers podman could not remove (conmon, and the
  # container's first process), if any survived.
  local pidf pid
  while read -r pidf; do
    pid=$(cat "$pidf" 2>/dev/null || true)
    if [[ $pid =~ ^[0-9]+$ ]]; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done < <(find "$dir/runroot" \( -name conmon.pid -o -name pidfile \) 2>/dev/null)
  # conmon of `podman exec` sessions outlives them by minutes (--exit-delay).
  pkill -KILL -f -- "--exit-dir $dir/" 2>/dev/null || true
  # 5. Mounts: container rootfs overlays, the storage dir podman bind-mounts onto
  # itself, network namespaces of containers. Deepest first; lazy as a last resort.
  c2d::unmount_under "$dir"
  # 6. NAT rules of the containers killed in 4, which never cleaned up.
  c2d::_engine_drop_stale_nat_rules
  # 7. The bridge devices of this engine's networks, its default one and the
  # projects' (CNI leaves them up when the last container goes), and the
  # IPAM state podman keeps host-wide for the projects' networks.
  local conf name bridge
  for conf in "$dir"/networks/*.conflist; do
    [[ -f $conf ]] || continue
    name=$(jq -r '.name' "$conf" 2>/dev/null || true)
    bridge=$(jq -r '.plugins[0].bridge // empty' "$conf" 2>/dev/null || true)
    if [[ -n $bridge ]] && ip link show "$bridge" >/dev/null 2>&1; then
      ip link del "$bridge" 2>/dev/null || true
    fi
    if [[ $name == c2d-prj_* ]]; then
      rm -rf "/var/lib/cni/networks/$name"
    fi
  done
  rm -f "$dir/engine.sock"
}
