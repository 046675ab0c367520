# shellcheck shell=bash
# The build engine: a second Podman Docker Engine API service (`podman system
# service`), ROOTLESS, running as the unprivileged user c2d-build, that builds
# tenants' Dockerfiles. Sourced, never run; everything runs as root.
#
#   c2d::build_engine_prereqs                  checks packages, fixes /dev/net/tun
#   c2d::build_engine_start DIR REGISTRY_HOSTPORT   socket DIR/engine.sock
#   c2d::build_engine_stop DIR                 stops it, its builds, its processes
#   c2d::build_engine_podman DIR TIMEOUT ARGS...    the podman CLI on its storage
#   c2d::build_engine_kill_cgroup CGROUP       kills what runs in it, removes it
#
# DIR/engine.env exports the CONTAINERS_* and XDG_* variables of the engine, so
# `source DIR/engine.env; runuser -u c2d-build -- podman ps -a --external`
# looks at the same engine while it runs; c2d::build_engine_podman does the
# same inside the engine's cgroup (prefer it: a podman run as the user when the
# engine is down starts a new "pause" process, which it must not leave behind).
#
# Debian packages: podman runc conmon uidmap (newuidmap/newgidmap) slirp4netns
# systemd (systemd-socket-activate) util-linux (setpriv) passwd (useradd,
# usermod) jq curl. fuse-overlayfs only with C2D_BUILD_ENGINE_FUSE=1: kernel
# overlay works in a user namespace from Linux 5.11 on (verified on 6.x).
#
# How builds must be requested (Podman 4.3.1 / Buildah 1.28, all verified):
#   POST /v4.0.0/libpod/build?isolation=rootless
#        &nsoptions=[{"Name":"network","Host":false}]   (URL-encoded)
#        &cgroupparent=<a cgroup below C2D_BUILD_ENGINE_CGROUP>   and NO memory=
#   - The Docker-compatible POST /v1.41/build runs RUN steps in the HOST network
#     namespace whatever `networkmode` says (Podman adds network Host:true when
#     nsoptions is absent; networkmode only picks a NetworkConfigurationPolicy),
#     and it ignores `isolation`; with nsoptions Host:false it tries CNI, which
#     fails rootless. Only libpod's isolation=rootless gives slirp4netns.
#   - memory= makes every RUN step fail rootless (runc cannot set the limit);
#     a cgroup root prepared, with the limit set by root, enforces it.
#   - The stream of the libpod endpoint ends with the image id as a bare
#     "stream" line, not Docker's "Successfully built".
#
# Isolation. RUN steps run in the engine's user namespace (uid 0 in the step is
# c2d-build on the host, other uids its /etc/subuid range), with slirp4netns:
# they reach the outside world through user-mode NAT but not the host's
# 127.0.0.1, nor 10.0.2.2 (Buildah starts slirp4netns WITHOUT
# --disable-host-loopback, which would make 10.0.2.2 the host's loopback: the
# engine's PATH starts with DIR/bin, whose slirp4netns wrapper adds it). They DO
# reach services listening on the host's other addresses (0.0.0.0 listeners
# through the host's own IP), as any outside client would. The service itself,
# which pulls, pushes and fetches `ADD <url>`, runs in the HOST network
# namespace (it must reach the registry on 127.0.0.1): ADD of a URL reaches the
# host's loopback services. RUN --network and --security are refused
# ("RUN only supports the --mount flag"); --mount bind (rw too), cache, tmpfs
# and secret are accepted, and CVE-2024-1753 is unfixed: a build can read what
# c2d-build can read and write where it can write, including DIR/state (other
# builds' layers, the registry credentials of running builds in DIR/state/tmp).
# Nothing the host's root trusts may be writable by that user.
#
# Layout of DIR (chosen so that nothing root reads, sources or connects to is
# the build user's to change; a user who could swap engine.sock for a symlink
# to the rootful engine's socket would get root's builds):
#   DIR/               root 0711: the user may traverse it, not list it
#   DIR/engine.sock    root 0600: bound by root (systemd-socket-activate) and
#                      handed to the service as file descriptor 3 (Podman's
#                      socket activation); only root can connect
#   DIR/engine.env, engine.pid, engine.log, boot_id, containers.conf,
#       storage.conf, registries.conf, bin/slirp4netns: root's
#   DIR/state/         c2d-build 0700: storage, XDG_RUNTIME_DIR (run/: runroot,
#                      Podman's tmp_dir, the pause pid), TMPDIR, HOME, auth.json
# Every parent of DIR must be searchable (x) by c2d-build: a 0711 parent is
# enough, a 0700 one is refused with a clear message (this file changes no
# directory outside DIR).
#
# Overlay mounts and network namespaces of the engine live in its own user
# and mount namespace (held by Podman's "pause" process), not the host's: they
# vanish with its processes, which c2d::build_engine_stop kills.
#
# Processes. The service (and everything it forks: the pause process,
# buildah-oci-runtime, runc, slirp4netns, RUN steps) runs in a cgroup of
# root's, c2d-build-engine-HASH (C2D_BUILD_ENGINE_CGROUP), in every mounted
# hierarchy: the engine cannot leave it (its cgroup.procs is root's), so
# c2d::build_engine_stop kills exactly this engine's processes, and another
# engine of the same user (tests run several) is left alone. A build's cgroup
# (the builder's engine::PrepareCgroup) is a child of it; the RUN step's
# processes land there, and killing it ends a cancelled build's step (Podman
# keeps running it
# after the client disconnects; uids cannot tell builds apart, and Buildah's
# working containers carry no label of the build).

# shellcheck source=tools/lib/engine.sh
source "$(dirname "${BASH_SOURCE[0]}")/engine.sh"

C2D_BUILD_USER=${C2D_BUILD_USER:-c2d-build}
# The size of the user's subordinate uid and gid ranges (what useradd gives).
C2D_BUILD_SUBID_COUNT=65536

# c2d::build_engine_prereqs: installs nothing. Dies naming the Debian packages
# if a command is missing; makes /dev/net/tun usable by unprivileged users
# (slirp4netns opens it in the engine's user namespace).
c2d::build_engine_prereqs() {
  local cmd missing=()
  local -A pkgs=(
    [podman]=podman [runc]=runc [conmon]=conmon [newuidmap]=uidmap [newgidmap]=uidmap
    [slirp4netns]=slirp4netns [systemd-socket-activate]=systemd [setpriv]=util-linux
    [useradd]=passwd [usermod]=passwd [jq]=jq [curl]=curl
  )
  for cmd in "${!pkgs[@]}"; do
    command -v "$cmd" >/dev/null || missing+=("${pkgs[$cmd]}")
  done
  if ((${#missing[@]})); then
    c2d::die "the rootless build engine needs: apt-get install $(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')"
  fi
  # newuidmap/newgidmap write the namespace's uid maps for the user: setuid root.
  for cmd in newuidmap newgidmap; do
    [[ -u $(command -v "$cmd") ]] || c2d::die "$(command -v "$cmd") is not setuid root (reinstall uidmap)"
  done
  local max
  max=$(cat /proc/sys/user/max_user_namespaces 2>/dev/null || echo 0)
  ((max > 0)) || c2d::die "user namespaces are disabled (sysctl user.max_user_namespaces=$max)"
  if [[ -r /proc/sys/kernel/unprivileged_userns_clone && $(cat /proc/sys/kernel/unprivileged_userns_clone) != 1 ]]; then
    c2d::die "unprivileged user namespaces are disabled (sysctl kernel.unprivileged_userns_clone=1)"
  fi
  [[ -c /dev/net/tun ]] || c2d::die "no /dev/net/tun (slirp4netns needs the tun module)"
  local mode
  mode=$(stat -c %a /dev/net/tun)
  if [[ $mode != 666 ]]; then
    c2d::log "chmod 0666 /dev/net/tun (was 0$mode): slirp4netns of the rootless build engine opens it as $C2D_BUILD_USER"
    chmod 0666 /dev/net/tun
  fi
}

# The first subordinate id range of COUNT ids at or above 100000 that overlaps
# no range of FILE (/etc/subuid or /etc/subgid), as FIRST-LAST.
c2d::_free_subid_range() {
  local file=$1 count=$2
  awk -F: -v count="$count" '
    NF >= 3 && $2 ~ /^[0-9]+$/ && $3 ~ /^[0-9]+$/ { n++; lo[n] = $2; hi[n] = $2 + $3 }
    END {
      start = 100000
      do {
        moved = 0
        for (i = 1; i <= n; i++)
          if (start < hi[i] && lo[i] < start + count) { start = hi[i]; moved = 1 }
      } while (moved)
      printf "%d-%d\n", start, start + count - 1
    }' "$file"
}

# c2d::build_engine_user: creates the build user (system account, no home, no
# login shell) and its /etc/subuid and /etc/subgid ranges, if missing.
c2d::build_engine_user() {
  local user=$C2D_BUILD_USER
  if ! id -u "$user" >/dev/null 2>&1; then
    c2d::log "creating the system user $user for the rootless build engine"
    # -F: subordinate ids for a system account too (plain --system gets none).
    useradd --system -F --user-group --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin --comment "c2d rootless build engine" "$user" ||
      c2d::die "useradd $user failed"
  fi
  local uid file opt range
  uid=$(id -u "$user")
  for file in /etc/subuid /etc/subgid; do
    [[ -f $file ]] || touch "$file"
    # Entries name the user or its uid.
    if ! awk -F: -v u="$user" -v i="$uid" '($1 == u || $1 == i) && $3 > 0 { f = 1 } END { exit !f }' "$file"; then
      range=$(c2d::_free_subid_range "$file" "$C2D_BUILD_SUBID_COUNT")
      [[ $file == /etc/subuid ]] && opt=--add-subuids || opt=--add-subgids
      c2d::log "adding $file range $range for $user"
      usermod "$opt" "$range" "$user" || c2d::die "usermod $opt $range $user failed"
    fi
  done
}

# Names derived from DIR: stable across restarts of one engine, distinct
# between engines.
c2d::_build_engine_names() {
  local hash
  hash=$(printf '%s' "$1" | sha256sum | cut -c1-8)
  C2D_BUILD_ENGINE_CGROUP=c2d-build-engine-$hash
}

# The cgroup directories of NAME in every mounted hierarchy (v1 controllers,
# the named systemd one, the v2 one), existing or not.
c2d::_cgroup_dirs() {
  local name=$1 root
  for root in /sys/fs/cgroup /sys/fs/cgroup/*; do
    [[ -f $root/cgroup.procs ]] || continue
    printf '%s\n' "$root/$name"
  done
}

# The pids in cgroup NAME (and below) in any hierarchy, unique.
c2d::_cgroup_pids() {
  local d
  while read -r d; do
    [[ -d $d ]] || continue
    find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null
  done < <(c2d::_cgroup_dirs "$1") | sort -un
}

# c2d::_build_engine_join_cgroup DIR: creates the engine's cgroup in every
# hierarchy if needed and moves the calling (sub)shell into it. Every podman
# process of the engine runs there, the CLI's too: a `podman` run as the user
# when no pause process exists starts a new one, which must not outlive
# c2d::build_engine_stop.
c2d::_build_engine_join_cgroup() {
  local cg parent
  c2d::_build_engine_names "$1"
  while read -r cg; do
    parent=$(dirname "$cg")
    mkdir -p "$cg" 2>/dev/null || { c2d::log "cannot create cgroup $cg"; continue; }
    # cpuset (v1) starts a child with no cpus and mems: copy the parent's.
    if [[ -f $cg/cpuset.cpus && -z $(cat "$cg/cpuset.cpus") ]]; then
      cat "$parent/cpuset.cpus" >"$cg/cpuset.cpus"
      cat "$parent/cpuset.mems" >"$cg/cpuset.mems"
    fi
    echo "$BASHPID" >"$cg/cgroup.procs" 2>/dev/null || c2d::log "cannot join cgroup $cg"
  done < <(c2d::_cgroup_dirs "$C2D_BUILD_ENGINE_CGROUP")
}

c2d::_build_engine_write_config() {
  local dir=$1 registry=$2 state=$1/state storage_opts=""
  # Kernel overlay works in a user namespace from Linux 5.11 on; older kernels
  # need fuse-overlayfs (and /dev/fuse). C2D_BUILD_ENGINE_FUSE=1 forces it.
  if [[ ${C2D_BUILD_ENGINE_FUSE:-0} == 1 ]]; then
    command -v fuse-overlayfs >/dev/null || c2d::die "fuse-overlayfs is not installed (apt-get install fuse-overlayfs)"
    storage_opts='mount_program = "/usr/bin/fuse-overlayfs"'
  fi

  cat >"$dir/containers.conf" <<EOF
# Written by c2d::build_engine_start (tools/lib/build_engine.sh).
[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]
log_driver = "k8s-file"
# Containers (podman run), not RUN steps (see the header): user-mode
# networking without the host's loopback.
netns = "slirp4netns"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$state/run/events.log"
tmp_dir = "$state/run/libpod"
static_dir = "$state/storage/libpod"
volume_path = "$state/storage/volumes"
image_copy_tmp_dir = "$state/tmp"
lock_type = "file"
network_cmd_options = ["allow_host_loopback=false"]

[network]
network_backend = "cni"
network_config_dir = "$state/networks"
EOF

  cat >"$dir/storage.conf" <<EOF
# Written by c2d::build_engine_start (tools/lib/build_engine.sh).
[storage]
driver = "overlay"
# A rootless engine ignores graphroot (and runroot: it uses
# \$XDG_RUNTIME_DIR/containers) and takes rootless_storage_path.
graphroot = "$state/storage"
rootless_storage_path = "$state/storage"
runroot = "$state/run/containers"

[storage.options.overlay]
$storage_opts
EOF

  c2d::registries_conf "c2d::build_engine_start (tools/lib/build_engine.sh)" "$registry" \
    >"$dir/registries.conf"
  chmod 0644 "$dir/containers.conf" "$dir/storage.conf" "$dir/registries.conf"

  # Buildah 1.28 starts slirp4netns for RUN steps (isolation "rootless") as
  # `slirp4netns --mtu 65520 -r 3 -c PID tap0`, found in PATH, without
  # --disable-host-loopback: 10.0.2.2 would then be the host's 127.0.0.1.
  # The service's PATH starts with DIR/bin (root's), where this wrapper adds it
  # (and sandbox/seccomp: slirp4netns then runs chrooted, without capabilities).
  mkdir -p "$dir/bin"
  cat >"$dir/bin/slirp4netns" <<'EOF2'
#!/bin/sh
# Written by c2d::build_engine_start (tools/lib/build_engine.sh): RUN steps of
# the rootless build engine must not reach the host's loopback via 10.0.2.2.
exec /usr/bin/slirp4netns --disable-host-loopback --enable-sandbox --enable-seccomp "$@"
EOF2
  chmod 0755 "$dir/bin" "$dir/bin/slirp4netns"

  cat >"$dir/engine.env" <<EOF
# Written by c2d::build_engine_start: source it, then run podman as
# $C2D_BUILD_USER (runuser -u $C2D_BUILD_USER -- podman ...) to look at this engine.
export CONTAINERS_CONF=$dir/containers.conf
export CONTAINERS_STORAGE_CONF=$dir/storage.conf
export CONTAINERS_REGISTRIES_CONF=$dir/registries.conf
export REGISTRY_AUTH_FILE=$state/auth.json
export XDG_RUNTIME_DIR=$state/run
export XDG_CONFIG_HOME=$state/home/.config
export XDG_DATA_HOME=$state/home/.local/share
export TMPDIR=$state/tmp
export C2D_BUILD_ENGINE_SOCK=$dir/engine.sock
EOF
  chmod 0644 "$dir/engine.env"
}

# The environment of every podman process of the engine of DIR (for env -i).
c2d::_build_engine_envv() {
  local dir=$1 state=$1/state
  BUILD_ENGINE_ENVV=(
    PATH="$dir/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    HOME="$state/home" USER="$C2D_BUILD_USER" LOGNAME="$C2D_BUILD_USER" LANG=C.UTF-8
    CONTAINERS_CONF="$dir/containers.conf"
    CONTAINERS_STORAGE_CONF="$dir/storage.conf"
    CONTAINERS_REGISTRIES_CONF="$dir/registries.conf"
    REGISTRY_AUTH_FILE="$state/auth.json"
    XDG_RUNTIME_DIR="$state/run"
    XDG_CONFIG_HOME="$state/home/.config"
    XDG_DATA_HOME="$state/home/.local/share"
    TMPDIR="$state/tmp"
  )
}

# setpriv to the build user: no supplementary groups of root's, no capabilities.
c2d::_as_build_user() {
  setpriv --reuid="$C2D_BUILD_USER" --regid="$C2D_BUILD_USER" --clear-groups --inh-caps=-all -- "$@"
}

c2d::build_engine_start() {
  local dir=$1 registry=$2
  [[ -n $dir && -n $registry ]] || c2d::die "usage: c2d::build_engine_start DIR REGISTRY_HOSTPORT[,HOSTPORT…]"
  ((EUID == 0)) || c2d::die "c2d::build_engine_start runs as root (it starts the engine as $C2D_BUILD_USER)"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  c2d::_build_engine_names "$dir"
  if c2d::pidfile_alive "$dir/engine.pid"; then
    return 0
  fi
  c2d::build_engine_prereqs
  c2d::build_engine_user
  local user=$C2D_BUILD_USER state=$dir/state

  chown root:root "$dir"
  chmod 0711 "$dir"
  # The user must reach DIR/state and read DIR's conf files: every parent
  # searchable. Checked as the user, so ACLs and groups count.
  if ! c2d::_as_build_user test -x "$dir"; then
    local p=$dir
    while [[ $p != / ]]; do
      p=$(dirname "$p")
      c2d::_as_build_user test -x "$p" ||
        c2d::die "$user cannot search $p (mode $(stat -c %a "$p")): DIR must be reachable (chmod o+x $p, or put the build engine elsewhere)"
    done
  fi

  # state/run and runroot hold what Podman keeps on tmpfs (container state,
  # the pause process's pid); stale after a reboot.
  local boot
  boot=$(cat /proc/sys/kernel/random/boot_id)
  if [[ -f $dir/boot_id && $(cat "$dir/boot_id") != "$boot" ]]; then
    rm -rf "$state/run"
  fi
  echo "$boot" >"$dir/boot_id"
  # Scratch space of the previous run (build contexts of interrupted builds).
  rm -rf "$state/tmp"
  mkdir -p "$state"/{storage,run,tmp,networks,home}
  [[ -f $state/auth.json ]] || echo '{}' >"$state/auth.json"
  # Only its own files: chown -R on the storage would break the ownership of
  # image layers (files of subordinate uids).
  chown "$user:$user" "$state" "$state"/{storage,run,tmp,networks,home,auth.json}
  chmod 0700 "$state" "$state"/{run,home}
  chmod 0600 "$state/auth.json"
  c2d::_build_engine_write_config "$dir" "$registry"

  rm -f "$dir/engine.sock"
  local envv
  c2d::_build_engine_envv "$dir"
  envv=()
  local v
  for v in "${BUILD_ENGINE_ENVV[@]}"; do envv+=(-E "$v"); done
  (
    # Into the engine's cgroups first: everything exec'd and forked below inherits them.
    c2d::_build_engine_join_cgroup "$dir"
    umask 077 # the socket: root's, 0600
    # systemd-socket-activate binds DIR/engine.sock, then execs setpriv (which
    # execs podman: one pid) with the socket as fd 3, LISTEN_FDS=1 and
    # LISTEN_PID, and only the -E variables. Podman takes a socket-activated
    # listener instead of a URI. setsid: its own session and process group.
    exec setsid systemd-socket-activate -l "$dir/engine.sock" "${envv[@]}" \
      setpriv --reuid="$user" --regid="$user" --clear-groups --inh-caps=-all -- \
      podman system service --time=0 >>"$dir/engine.log" 2>&1 </dev/null
  ) &
  echo $! >"$dir/engine.pid"

  local deadline=$((SECONDS + 30)) ping=
  while ((SECONDS < deadline)); do
    if ! c2d::pidfile_alive "$dir/engine.pid"; then
      tail -n 20 "$dir/engine.log" >&2
      c2d::build_engine_stop "$dir"
      c2d::die "the rootless build engine exited at start; its log: $dir/engine.log"
    fi
    ping=$(curl -s --max-time 2 --unix-socket "$dir/engine.sock" "http://d/$C2D_ENGINE_API/_ping" 2>/dev/null || true)
    if [[ $ping == OK ]]; then
      # systemd-socket-activate binds with mode 0755: only root could connect
      # anyway (connect needs w), and the directory is root's; 0600 says so.
      chmod 0600 "$dir/engine.sock"
      return 0
    fi
    sleep 0.1
  done
  tail -n 20 "$dir/engine.log" >&2
  c2d::build_engine_stop "$dir"
  c2d::die "build engine at $dir/engine.sock not ready in 30 s"
}

# c2d::build_engine_podman DIR TIMEOUT ARGS...: the podman CLI, as the build
# user, on the storage of the engine of DIR (it joins the engine's user
# namespace). Sees the working containers of builds (`ps -a --external`).
c2d::build_engine_podman() {
  local dir=$1 limit=$2
  shift 2
  dir=$(cd "$dir" && pwd)
  c2d::_build_engine_envv "$dir"
  (
    c2d::_build_engine_join_cgroup "$dir"
    exec timeout "$limit" env -i "${BUILD_ENGINE_ENVV[@]}" \
      setpriv --reuid="$C2D_BUILD_USER" --regid="$C2D_BUILD_USER" --clear-groups --inh-caps=-all -- \
      podman "$@"
  )
}

# c2d::build_engine_kill_cgroup NAME: SIGKILL to every process in cgroup NAME
# (and below) of any hierarchy, until none is left (10 s at most), then removes
# the empty cgroup directories. Freezes first where the freezer is mounted, so
# that nothing forks while it kills.
c2d::build_engine_kill_cgroup() {
  local name=$1 freezer=/sys/fs/cgroup/freezer/$1 pids pid d
  [[ -n $name && $name != / && $name != *..* ]] || c2d::die "refusing to kill cgroup '$name'"
  [[ -f $freezer/freezer.state ]] && echo FROZEN >"$freezer/freezer.state" 2>/dev/null
  local deadline=$((SECONDS + 10))
  while :; do
    pids=$(c2d::_cgroup_pids "$name")
    [[ -n $pids ]] || break
    for pid in $pids; do kill -KILL "$pid" 2>/dev/null || true; done
    # Killed frozen tasks die once thawed.
    [[ -f $freezer/freezer.state ]] && echo THAWED >"$freezer/freezer.state" 2>/dev/null
    ((SECONDS < deadline)) || { c2d::log "processes of cgroup $name survive SIGKILL: ${pids//$'\n'/ }"; break; }
    sleep 0.1
  done
  while read -r d; do
    [[ -d $d ]] || continue
    find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done < <(c2d::_cgroup_dirs "$name")
}

c2d::build_engine_stop() {
  local dir=$1
  [[ -d $dir ]] || return 0
  dir=$(cd "$dir" && pwd)
  c2d::_build_engine_names "$dir"
  if [[ -f $dir/engine.env ]] && id -u "$C2D_BUILD_USER" >/dev/null 2>&1; then
    # 1. Containers, through the service while it runs.
    if c2d::pidfile_alive "$dir/engine.pid"; then
      local ids id
      ids=$(c2d::engine_api "$dir" GET "/containers/json?all=1" --max-time 10 2>/dev/null |
        jq -r '.[].Id' 2>/dev/null || true)
      for id in $ids; do
        c2d::engine_api "$dir" DELETE "/containers/$id?force=1&v=1" --max-time 20 >/dev/null 2>&1 || true
      done
    fi
    # 2. The service.
    c2d::stop_pidfile "$dir/engine.pid" 10
    # 3. Containers the API does not list: working containers of builds
    # (interrupted ones included). This podman joins the engine's namespace.
    local left
    left=$(c2d::build_engine_podman "$dir" 30 ps -a --external -q 2>/dev/null || true)
    if [[ -n $left ]]; then
      # shellcheck disable=SC2086
      c2d::build_engine_podman "$dir" 60 rm -f -t 0 $left >/dev/null 2>&1 || true
    fi
  else
    c2d::stop_pidfile "$dir/engine.pid" 10
  fi
  # 4. Every process left in the engine's cgroup: the pause process holding
  # its user and mount namespaces (its overlay mounts go with it), conmon,
  # slirp4netns, RUN steps of cancelled builds.
  c2d::build_engine_kill_cgroup "$C2D_BUILD_ENGINE_CGROUP"
  # The pause process's pid file names a dead process now.
  rm -f "$dir/state/run/libpod/pause.pid"
  # 5. Mounts in the host's namespace under DIR (none are expected: the
  # engine mounts in its own namespace).
  c2d::unmount_under "$dir"
  rm -f "$dir/engine.sock"
}
