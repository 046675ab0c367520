# shellcheck shell=bash
# A real all-in-one OpenStack on loopback for the OpenStack provider's
# integration tests: Debian 12's own packages of Keystone, Swift, Nova
# (compute_driver = fake.FakeDriver: servers go ACTIVE without a hypervisor),
# Placement, Neutron (ML2's `test` mechanism driver binds ports without
# agents), Glance, Cinder (the fake volume driver of Cinder's own tests:
# volumes are rows, attached by Nova's fake driver, no block device),
# RabbitMQ and PostgreSQL 15, in a debootstrap chroot that
# shares the host's network. Sourced, never run. Needs root, debootstrap,
# overlayfs, python3, curl and jq.
#
#   c2d::openstack_root
#       builds the configured root once (8 to 13 minutes, most of it
#       downloading; 2 GiB, and 0.3 GiB of packages; they come from the
#       mirror of /etc/apt/sources.list.d/debian.sources)
#       in ${C2D_OPENSTACK_CACHE:-/var/cache/c2d-openstack}/root-VERSION, kept
#       between runs like ccache's cache; does nothing when it exists. The
#       root is made under root-VERSION.new and renamed when complete, so a
#       half-built one is never used; the build's steps and time are in
#       CACHE/build.log, its services' output in CACHE/build/log/; the
#       packages it downloaded stay in CACHE/debs for the next build. Holds:
#       Keystone's admin (admin/adminpw in project admin), a user c2d
#       (c2dpw, role member in project c2d), the services' users (NAME/NAMEpw
#       in project service) and endpoints (region RegionOne); Swift rings; a
#       1 MiB raw image, public; the flavor m1.tiny (id 1: 1 vCPU, 512 MiB,
#       1 GB). VERSION changes when the recipe does; older roots may be
#       deleted by hand.
#
#   c2d::openstack_start DIR
#       starts every service from the cached root (which must exist) on free
#       127.0.0.1 ports and returns when each API answers an authenticated
#       request (Keystone, Nova, Neutron, Glance, Placement, Swift, Cinder) and
#       nova-conductor, nova-scheduler and nova-compute report up (a server
#       created before then fails with "No valid host"), within
#       ${C2D_OPENSTACK_START_TIMEOUT:-480} seconds; otherwise it names what
#       did not come up, shows the tail of its log, stops everything and
#       fails. It logs when each API answers. 60 s on two idle cores, three
#       times that and more on a shared, busy machine (it is CPU-bound: 90
#       CPU-seconds with Cinder); 1.9 GiB of memory (PSS) then. The
#       root is mounted read-only under an overlay: everything the services
#       write (databases, queues, Swift objects, Glance's files) lands in
#       DIR/upper and is discarded at the next start, so each start begins
#       from the freshly built state.
#       Services' output in DIR/log/NAME.log (PostgreSQL's in
#       DIR/upper/var/log/postgresql). Exports, and writes as export lines to
#       DIR/openstack.env:
#         C2D_TEST_OS_AUTH_URL           http://127.0.0.1:PORT/v3 (Keystone)
#         C2D_TEST_OS_USERNAME           c2d: role member in project c2d, what
#         C2D_TEST_OS_PASSWORD             the provider runs as
#         C2D_TEST_OS_PROJECT_NAME       c2d
#         C2D_TEST_OS_USER_DOMAIN_ID     default
#         C2D_TEST_OS_PROJECT_DOMAIN_ID  default
#         C2D_TEST_OS_REGION             RegionOne
#         C2D_TEST_OS_ADMIN_USERNAME, C2D_TEST_OS_ADMIN_PASSWORD,
#         C2D_TEST_OS_ADMIN_PROJECT_NAME  the cloud's admin, for test set-up
#         C2D_TEST_OS_IMAGE              the image's id (C2D_TEST_OS_IMAGE_NAME its name)
#         C2D_TEST_OS_FLAVOR             m1.tiny (C2D_TEST_OS_FLAVOR_ID its id)
#       The other endpoints are in the token's catalog. A server's network
#       must be named (Neutron has none at start): the test makes one.
#
#   c2d::openstack_stop DIR
#       stops every process running in DIR's root (nova-compute ignores
#       SIGTERM: what is left after 5 s gets SIGKILL) and unmounts it; the
#       cached root stays as it was. Safe to call twice or after a failed start.
#
#   c2d::openstack_smoke
#       as C2D_TEST_OS_USERNAME, with curl and jq only: gets a token, puts and
#       reads back an object in Swift, makes a Neutron network and subnet,
#       boots a server on it with C2D_TEST_OS_IMAGE and C2D_TEST_OS_FLAVOR and
#       waits for ACTIVE, then deletes what it made. Returns 1 (saying why)
#       rather than exiting, so it serves as a readiness probe.
#
# Every port is picked at start, below the kernel's ephemeral port range:
# the services bind up to half a minute after the pick, and meanwhile their
# own outgoing connections (to PostgreSQL, RabbitMQ, Keystone) take source
# ports from that range. Configs are written into the overlay at each start
# with the new ports, the Swift rings remade, and the rows that hold
# addresses (Keystone's endpoints, Nova's cell mappings) updated.

# shellcheck source=tools/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# shellcheck source=tools/lib/registry.sh
source "$(dirname "${BASH_SOURCE[0]}")/registry.sh"  # pid file helpers

C2D_OPENSTACK_ROOT_VERSION=3
C2D_OPENSTACK_ADMIN_PASSWORD=adminpw
C2D_OPENSTACK_USER_PASSWORD=c2dpw
C2D_OPENSTACK_IMAGE_ID=c2d0c2d0-0000-4000-8000-000000000001
C2D_OPENSTACK_IMAGE_NAME='c2d-test-raw'
C2D_OPENSTACK_FLAVOR=m1.tiny
C2D_OPENSTACK_FLAVOR_ID=1
# The test mechanism driver binds a port (vif_type ovs, ACTIVE) only for
# this host name; it is nova-compute's.
C2D_OPENSTACK_COMPUTE_HOST=host-ovs-filter-active
# In start order: RabbitMQ first, it takes longest to listen.
C2D_OPENSTACK_SERVICES=(rabbitmq keystone swift-account swift-container swift-object swift-proxy
  placement glance neutron cinder-api cinder-scheduler cinder-volume nova-api nova-conductor
  nova-scheduler nova-compute)
# Starting, all of them need more CPU than two cores give for half a minute.
# These, which the others wait for, run first: they start at nice -10 until
# everything answers, the others at 0. nova-compute above all waits for
# nova-conductor: if its first call finds no conductor, it waits 10 s before
# it calls again. (The others are not niced up instead: a compiler at nice
# 0 beside them, as when tools/test builds the root and c2d at once, would
# then starve them for minutes.)
C2D_OPENSTACK_FIRST=(rabbitmq keystone nova-conductor)
C2D_OPENSTACK_PORTS=(pg rabbit rabbit_dist epmd keystone swift_proxy swift_account
  swift_container swift_object placement glance neutron cinder nova)

# The functions below read the ports from an associative array `port`
# (C2D_OPENSTACK_PORTS as keys) declared local by their caller.
# shellcheck disable=SC2154

c2d::_openstack_cached_root() {
  printf '%s/root-%s\n' "${C2D_OPENSTACK_CACHE:-/var/cache/c2d-openstack}" \
    "$C2D_OPENSTACK_ROOT_VERSION"
}

# The whole environment of what runs in the root: the caller's would leak
# into the services.
C2D_OPENSTACK_ENV=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
  LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive)

# c2d::_openstack_chroot ROOT COMMAND...: COMMAND in ROOT, with the caller's
# proxy settings (for apt-get; the services, which talk to 127.0.0.1 only,
# get none).
c2d::_openstack_chroot() {
  local root=$1 envs=("${C2D_OPENSTACK_ENV[@]}") v
  shift
  for v in http_proxy https_proxy no_proxy; do
    [[ -z ${!v:-} ]] || envs+=("$v=${!v}")
  done
  env -i "${envs[@]}" chroot "$root" "$@"
}

# c2d::_openstack_mount_api ROOT: /proc, /sys (read-only), /dev and a
# /dev/shm of its own (PostgreSQL's shared memory) in ROOT. /dev is made
# private at once: under a shared /dev, mounting its shm would also cover the
# host's /dev/shm.
c2d::_openstack_mount_api() {
  local root=$1
  mountpoint -q "$root/proc" || mount -t proc proc "$root/proc" || return 1
  mountpoint -q "$root/sys" || mount -t sysfs -o ro sysfs "$root/sys" || return 1
  if ! mountpoint -q "$root/dev"; then
    mount --bind /dev "$root/dev" && mount --make-private "$root/dev" || return 1
  fi
  mountpoint -q "$root/dev/shm" || mount -t tmpfs -o mode=1777 shm "$root/dev/shm"
}

# c2d::_openstack_mounts_under DIR: the mount points at or below DIR.
c2d::_openstack_mounts_under() {
  awk -v d="$1" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo
}

# c2d::_openstack_pids ROOT: every process whose root directory is ROOT
# (each was started there by this file, however it daemonized).
c2d::_openstack_pids() {
  find /proc/[0-9]*/root -maxdepth 0 -printf '%h\t%l\n' 2>/dev/null |
    awk -F'\t' -v r="$1" '$2 == r { sub("/proc/", "", $1); print $1 }'
}

# c2d::_openstack_halt ROOT: stops PostgreSQL cleanly (the build keeps its
# data), then SIGTERM to every process of ROOT and SIGKILL after 5 s.
c2d::_openstack_halt() {
  local root=$1 pids deadline
  if [[ -f $root/var/lib/postgresql/15/main/postmaster.pid ]]; then
    c2d::_openstack_chroot "$root" pg_ctlcluster 15 main stop -m fast >/dev/null 2>&1 || true
  fi
  mapfile -t pids < <(c2d::_openstack_pids "$root")
  ((${#pids[@]})) || return 0
  kill -TERM "${pids[@]}" 2>/dev/null || true
  deadline=$((SECONDS + 5))
  while ((${#pids[@]})) && ((SECONDS < deadline)); do
    sleep 0.2
    mapfile -t pids < <(c2d::_openstack_pids "$root")
  done
  ((${#pids[@]})) || return 0
  kill -KILL "${pids[@]}" 2>/dev/null || true
  deadline=$((SECONDS + 5))
  while ((${#pids[@]})) && ((SECONDS < deadline)); do
    sleep 0.1
    mapfile -t pids < <(c2d::_openstack_pids "$root")
  done
  ((${#pids[@]} == 0)) || c2d::log "OpenStack: processes ${pids[*]} survived SIGKILL"
}

# c2d::_openstack_pick_ports: fills the caller's `port` with distinct ports
# free on 127.0.0.1, chosen at random below the ephemeral range (see the top).
c2d::_openstack_pick_ports() {
  local low name list picked i=0
  read -r low _ </proc/sys/net/ipv4/ip_local_port_range
  ((low > 12000)) || low=65536  # an unusual range: pick above 10000 anywhere
  list=$(python3 - "${#C2D_OPENSTACK_PORTS[@]}" "$low" <<'PY'
import random, socket, sys
want, high = int(sys.argv[1]), min(int(sys.argv[2]), 65536)
ports = []
while len(ports) < want:
    p = random.randrange(10000, high)
    if p in ports:
        continue
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))  # no SO_REUSEADDR: a port in TIME_WAIT counts as taken
        ports.append(p)
    except OSError:
        pass
    finally:
        s.close()
print(" ".join(map(str, ports)))
PY
  ) || return 1
  read -r -a picked <<<"$list"
  for name in "${C2D_OPENSTACK_PORTS[@]}"; do
    port[$name]=${picked[i++]}
  done
}

# c2d::_openstack_url TYPE: a service's endpoint for the current ports, as
# Keystone's catalog holds it.
c2d::_openstack_url() {
  local base=http://127.0.0.1
  case $1 in
    identity) echo "$base:${port[keystone]}/v3/" ;;
    object-store) echo "$base:${port[swift_proxy]}/v1/AUTH_%(project_id)s" ;;
    compute) echo "$base:${port[nova]}/v2.1" ;;
    placement) echo "$base:${port[placement]}" ;;
    network) echo "$base:${port[neutron]}" ;;
    image) echo "$base:${port[glance]}" ;;
    volumev3) echo "$base:${port[cinder]}/v3/%(project_id)s" ;;
  esac
}

# c2d::_openstack_write ROOT PATH: stdin to PATH in ROOT, readable by the
# services' users whatever the caller's umask.
c2d::_openstack_write() {
  cat >"$1$2" && chmod 0644 "$1$2"
}

# c2d::_openstack_auth SECTION USER [authtoken]: an oslo config section
# logging in as USER (password USERpw) in project service.
c2d::_openstack_auth() {
  printf '[%s]\n' "$1"
  [[ ${3:-} == authtoken ]] && printf 'www_authenticate_uri = %s\n' "$keystone"
  cat <<EOF
auth_url = $keystone
auth_type = password
project_domain_id = default
user_domain_id = default
project_name = service
username = $2
password = ${2}pw
EOF
  [[ ${3:-} == authtoken ]] || echo "region_name = RegionOne"
}

# c2d::_openstack_configs ROOT: every config file of ROOT for the current
# ports. No log_dir or logto anywhere: the services log to their standard
# output, which c2d::_openstack_launch sends to a log file.
c2d::_openstack_configs() {
  local root=$1 keystone=http://127.0.0.1:${port[keystone]}/v3
  local db=postgresql+psycopg2://os:os@127.0.0.1:${port[pg]}
  local rabbit=rabbit://guest:guest@127.0.0.1:${port[rabbit]}/ w=c2d::_openstack_write

  # Erlang's resolver reads /etc/hosts for RabbitMQ's node name.
  echo "127.0.0.1 localhost" | $w "$root" /etc/hosts
  # A throwaway cluster: no durability, room for every service's pool.
  $w "$root" /etc/postgresql/15/main/conf.d/c2d.conf <<EOF
listen_addresses = '127.0.0.1'
port = ${port[pg]}
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
  # DIST_PORT and ERL_EPMD_PORT (set where it starts): Erlang's distribution
  # and port mapper would otherwise take 25672 and 4369; the distribution
  # would listen on every interface. LOGS=-: to standard output, as the
  # other services.
  $w "$root" /etc/rabbitmq/rabbitmq-env.conf <<EOF
NODENAME=rabbit@localhost
NODE_IP_ADDRESS=127.0.0.1
NODE_PORT=${port[rabbit]}
DIST_PORT=${port[rabbit_dist]}
SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
LOGS=-
EOF

  # bcrypt's fewest rounds (applied to the passwords set at the build): a
  # password token then costs milliseconds instead of half a second.
  $w "$root" /etc/keystone/keystone.conf <<EOF
[database]
connection = $db/keystone
[token]
provider = fernet
[fernet_tokens]
key_repository = /etc/keystone/fernet-keys/
[credential]
key_repository = /etc/keystone/credential-keys/
[catalog]
driver = sql
[oslo_policy]
policy_dirs = /etc/keystone/policy.d
[identity]
password_hash_rounds = 4
EOF
  c2d::_openstack_uwsgi keystone "${port[keystone]}" /usr/bin/keystone-wsgi-public 1 |
    $w "$root" /etc/keystone/c2d-uwsgi.ini
  c2d::_openstack_uwsgi placement "${port[placement]}" /usr/bin/placement-api 1 |
    $w "$root" /etc/placement/c2d-uwsgi.ini
  c2d::_openstack_uwsgi cinder "${port[cinder]}" /usr/bin/cinder-wsgi 1 |
    $w "$root" /etc/cinder/c2d-uwsgi.ini

  $w "$root" /etc/swift/swift.conf <<EOF
[swift-hash]
swift_hash_path_suffix = c2dsuffix
swift_hash_path_prefix = c2dprefix
[storage-policy:0]
name = Policy-0
default = yes
EOF
  local server
  for server in account container object; do
    $w "$root" "/etc/swift/$server-server.conf" <<EOF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = ${port[swift_$server]}
workers = 1
user = swift
devices = /srv/node
mount_check = false
log_name = $server-server
[pipeline:main]
pipeline = $server-server
[app:$server-server]
use = egg:swift#$server
EOF
  done
  {
    cat <<EOF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = ${port[swift_proxy]}
workers = 1
user = swift
log_name = proxy-server
[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging listing_formats bulk tempurl
  authtoken keystoneauth copy slo dlo versioned_writes symlink proxy-logging proxy-server
[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
EOF
    c2d::_openstack_auth filter:authtoken swift authtoken
    cat <<EOF
paste.filter_factory = keystonemiddleware.auth_token:filter_factory
delay_auth_decision = true
[filter:keystoneauth]
use = egg:swift#keystoneauth
operator_roles = admin, member
reseller_admin_role = ResellerAdmin
EOF
    local filter
    for filter in catch_errors gatekeeper healthcheck proxy-logging:proxy_logging listing_formats \
      bulk tempurl copy slo dlo versioned_writes symlink; do
      printf '[filter:%s]\nuse = egg:swift#%s\n' "${filter%%:*}" "${filter#*:}"
    done
  } | $w "$root" /etc/swift/proxy-server.conf

  {
    cat <<EOF
[placement_database]
connection = $db/placement
[api]
auth_strategy = keystone
EOF
    c2d::_openstack_auth keystone_authtoken placement authtoken
  } | $w "$root" /etc/placement/placement.conf

  {
    cat <<EOF
[DEFAULT]
bind_host = 127.0.0.1
bind_port = ${port[glance]}
workers = 1
enabled_backends = file:file
[database]
connection = $db/glance
[glance_store]
default_backend = file
[file]
filesystem_store_datadir = /var/lib/glance/images
[os_glance_staging_store]
filesystem_store_datadir = /var/lib/glance/staging
[os_glance_tasks_store]
filesystem_store_datadir = /var/lib/glance/tasks
[paste_deploy]
flavor = keystone
[oslo_concurrency]
lock_path = /var/lock/glance
EOF
    c2d::_openstack_auth keystone_authtoken glance authtoken
  } | $w "$root" /etc/glance/glance-api.conf

  # No agents and no notifications to Nova: the test mechanism driver binds
  # ports by itself.
  {
    cat <<EOF
[DEFAULT]
bind_host = 127.0.0.1
bind_port = ${port[neutron]}
core_plugin = ml2
service_plugins = router
auth_strategy = keystone
transport_url = $rabbit
notify_nova_on_port_status_changes = false
notify_nova_on_port_data_changes = false
api_workers = 1
rpc_workers = 0
rpc_state_report_workers = 0
dhcp_agent_notification = false
[database]
connection = $db/neutron
[oslo_concurrency]
lock_path = /var/lib/neutron/tmp
[agent]
root_helper = sudo /usr/bin/neutron-rootwrap /etc/neutron/rootwrap.conf
EOF
    c2d::_openstack_auth keystone_authtoken neutron authtoken
    c2d::_openstack_auth nova nova
  } | $w "$root" /etc/neutron/neutron.conf
  $w "$root" /etc/neutron/plugins/ml2/ml2_conf.ini <<EOF
[ml2]
type_drivers = flat,vxlan
tenant_network_types = vxlan
mechanism_drivers = test
extension_drivers = port_security
[ml2_type_flat]
flat_networks = external
[ml2_type_vxlan]
vni_ranges = 1:1000
[securitygroup]
enable_security_group = true
firewall_driver = noop
EOF

  # Cinder with its test suite's fake driver (Debian ships cinder/tests):
  # volumes that exist as rows only, attached by Nova's fake driver, which
  # connects nothing.
  {
    cat <<EOF
[DEFAULT]
state_path = /var/lib/cinder
transport_url = $rabbit
auth_strategy = keystone
my_ip = 127.0.0.1
host = fakehost
enabled_backends = fake
[database]
connection = $db/cinder
[fake]
volume_driver = cinder.tests.fake_driver.FakeLoggingVolumeDriver
volume_backend_name = fake
[oslo_concurrency]
lock_path = /var/lib/cinder/tmp
[oslo_messaging_notifications]
driver = noop
EOF
    c2d::_openstack_auth keystone_authtoken cinder authtoken
    c2d::_openstack_auth nova nova
  } | $w "$root" /etc/cinder/cinder.conf

  # service_token_roles_required stays false: true made Neutron answer 401
  # to Nova.
  {
    cat <<EOF
[DEFAULT]
state_path = /var/lib/nova
transport_url = $rabbit
compute_driver = fake.FakeDriver
my_ip = 127.0.0.1
host = fakehost
enabled_apis = osapi_compute
osapi_compute_listen = 127.0.0.1
osapi_compute_listen_port = ${port[nova]}
osapi_compute_workers = 1
[api]
auth_strategy = keystone
[api_database]
connection = $db/nova_api
[database]
connection = $db/nova
[conductor]
workers = 1
[scheduler]
workers = 1
discover_hosts_in_cells_interval = 10
[oslo_concurrency]
lock_path = /var/lib/nova/tmp
[glance]
api_servers = http://127.0.0.1:${port[glance]}
[vnc]
enabled = false
[oslo_messaging_notifications]
driver = noop
EOF
    c2d::_openstack_auth keystone_authtoken nova authtoken
    c2d::_openstack_auth placement placement
    c2d::_openstack_auth neutron neutron
    c2d::_openstack_auth cinder nova
    echo "os_region_name = RegionOne"
    c2d::_openstack_auth service_user nova
    echo "send_service_user_token = true"
  } | $w "$root" /etc/nova/nova.conf
  printf '[DEFAULT]\nhost = %s\n' "$C2D_OPENSTACK_COMPUTE_HOST" |
    $w "$root" /etc/nova/nova-compute-host.conf
}

# c2d::_openstack_rings ROOT: Swift's rings, which hold the servers'
# addresses, for the current ports; in one Python process (swift-ring-builder
# would take nine).
c2d::_openstack_rings() {
  local root=$1
  c2d::_openstack_chroot "$root" python3 - "${port[swift_account]}" "${port[swift_container]}" \
    "${port[swift_object]}" <<'PY'
import os, sys
from swift.common.ring import RingBuilder
os.umask(0o022)
for name, port in zip(("account", "container", "object"), map(int, sys.argv[1:])):
    builder = RingBuilder(8, 1, 1)
    builder.add_dev({"region": 1, "zone": 1, "ip": "127.0.0.1", "port": port,
                     "replication_ip": "127.0.0.1", "replication_port": port,
                     "device": "d1", "weight": 100, "meta": ""})
    builder.rebalance()
    builder.get_ring().save("/etc/swift/%s.ring.gz" % name)
PY
}

# c2d::_openstack_uwsgi USER PORT WSGI_FILE PROCESSES: a uwsgi config.
# Connection: close: clients reusing a keep-alive connection to uwsgi got
# "connection reset".
c2d::_openstack_uwsgi() {
  cat <<EOF
[uwsgi]
plugins = python3
http-socket = 127.0.0.1:$2
wsgi-file = $3
master = true
processes = $4
threads = 4
enable-threads = true
lazy-apps = true
buffer-size = 65535
die-on-term = true
add-header = Connection: close
uid = $1
gid = $1
EOF
}

# c2d::_openstack_launch ROOT STATE NAME...: starts the named services
# (C2D_OPENSTACK_SERVICES) in ROOT, in the background, those of
# C2D_OPENSTACK_FIRST at nice -10; output to STATE/log/NAME.log, pid to
# STATE/run/NAME.pid.
c2d::_openstack_launch() {
  local root=$1 state=$2 name cmd nice
  shift 2
  mkdir -p "$state/log" "$state/run"
  for name; do
    nice=0
    [[ " ${C2D_OPENSTACK_FIRST[*]} " != *" $name "* ]] || nice=-10
    case $name in
      # Not /usr/sbin/rabbitmq-server, which sends the output to files.
      rabbitmq)
        cmd=(runuser -u rabbitmq -- env HOME=/var/lib/rabbitmq ERL_EPMD_ADDRESS=127.0.0.1
          "ERL_EPMD_PORT=${port[epmd]}" /usr/lib/rabbitmq/bin/rabbitmq-server) ;;
      keystone | placement) cmd=(uwsgi --ini "/etc/$name/c2d-uwsgi.ini") ;;
      cinder-api) cmd=(uwsgi --ini /etc/cinder/c2d-uwsgi.ini) ;;
      cinder-*) cmd=(runuser -u cinder -- "$name" --config-file /etc/cinder/cinder.conf) ;;
      # As root: they drop to the user swift by themselves. -v: log to the
      # console too, as there is no syslog here.
      swift-*) cmd=("$name-server" "/etc/swift/${name#swift-}-server.conf" -v) ;;
      glance) cmd=(runuser -u glance -- glance-api --config-file /etc/glance/glance-api.conf) ;;
      # PYTHONOPTIMIZE: the test mechanism driver's assert()s would fail
      # every binding.
      neutron)
        cmd=(runuser -u neutron -- env PYTHONOPTIMIZE=1 neutron-server
          --config-file /etc/neutron/neutron.conf
          --config-file /etc/neutron/plugins/ml2/ml2_conf.ini) ;;
      nova-compute)
        cmd=(runuser -u nova -- nova-compute --config-file /etc/nova/nova.conf
          --config-file /etc/nova/nova-compute-host.conf) ;;
      nova-*) cmd=(runuser -u nova -- "$name" --config-file /etc/nova/nova.conf) ;;
      *) c2d::die "unknown OpenStack service $name" ;;
    esac
    # -w: when setsid has to fork (its caller leads a process group), the
    # pid still lives as long as the service. Each service leads a session,
    # so a scheduler autogroup of its own where autogroups are on: its nice
    # is the autogroup's, set from inside (after setsid).
    # shellcheck disable=SC2016  # expanded by sh
    setsid -w sh -c '{ echo "$0" >/proc/self/autogroup; } 2>/dev/null; exec nice -n "$0" "$@"' \
      "$nice" env -i "${C2D_OPENSTACK_ENV[@]}" chroot "$root" "${cmd[@]}" \
      >>"$state/log/$name.log" 2>&1 </dev/null &
    echo $! >"$state/run/$name.pid"
    disown $!  # no "Killed" notice from the caller's shell when it is stopped
  done
}

# c2d::_openstack_pg_start ROOT: PostgreSQL of ROOT, on port[pg].
c2d::_openstack_pg_start() {
  local root=$1
  c2d::_openstack_chroot "$root" pg_ctlcluster 15 main start >/dev/null 2>&1 || {
    tail -n 20 "$root/var/log/postgresql/postgresql-15-main.log" >&2
    return 1
  }
}

# c2d::_openstack_psql ROOT DATABASE SQL: SQL as PostgreSQL's superuser.
c2d::_openstack_psql() {
  c2d::_openstack_chroot "$1" runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 \
    -p "${port[pg]}" -d "$2" -c "$3"
}

# c2d::_openstack_readdress ROOT: points the stored addresses at the current
# ports: Keystone's catalog and Nova's cell mappings. Also marks every Nova
# service as long unseen, so none counts as up until it has reported (the
# build's last reports are recent when a start follows it).
c2d::_openstack_readdress() {
  local root=$1 db=postgresql+psycopg2://os:os@127.0.0.1:${port[pg]} type urls=''
  for type in identity object-store compute placement network image volumev3; do
    urls+=" WHEN '$type' THEN '$(c2d::_openstack_url "$type")'"
  done
  # One psql for the three databases.
  c2d::_openstack_chroot "$root" runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 \
    -p "${port[pg]}" -d keystone <<SQL
UPDATE endpoint e SET url = CASE s.type$urls END FROM service s WHERE e.service_id = s.id;
\connect nova_api
UPDATE cell_mappings SET database_connection = '$db/nova_cell0' WHERE name = 'cell0';
UPDATE cell_mappings SET database_connection = '$db/nova',
  transport_url = 'rabbit://guest:guest@127.0.0.1:${port[rabbit]}/' WHERE name = 'cell1';
\connect nova
UPDATE services SET last_seen_up = '2000-01-01';
SQL
}

# c2d::_openstack_req TOKEN METHOD URL [CURL_ARGS...]: an API call; prints
# the body; fails (1) unless the answer is 2xx, saying so on stderr.
c2d::_openstack_req() {
  local token=$1 method=$2 url=$3 out code
  shift 3
  out=$(curl -sS --noproxy '*' --max-time 30 -X "$method" -H "X-Auth-Token: $token" \
    -w '\n%{http_code}' "$@" "$url" 2>&1) || { echo "$method $url: $out" >&2; return 1; }
  code=${out##*$'\n'}
  out=${out%$'\n'*}
  if [[ $code != 2?? ]]; then
    echo "$method $url answered $code: ${out:0:500}" >&2
    return 1
  fi
  printf '%s\n' "$out"
}

# c2d::_openstack_token AUTH_URL USER PASSWORD PROJECT BODY_FILE [USER_DOMAIN
# PROJECT_DOMAIN]: a project-scoped token (printed); the token's body
# (catalog, project id) in BODY_FILE. Domains default to "default".
c2d::_openstack_token() {
  local url=$1 body=$5 request headers token
  request=$(jq -cn --arg u "$2" --arg p "$3" --arg pr "$4" --arg ud "${6:-default}" \
    --arg pd "${7:-default}" '{auth: {
      identity: {methods: ["password"],
                 password: {user: {name: $u, domain: {id: $ud}, password: $p}}},
      scope: {project: {name: $pr, domain: {id: $pd}}}}}')
  headers=$(curl -sS --noproxy '*' --max-time 10 -o "$body" -D - --json "$request" \
    "$url/auth/tokens") || return 1
  token=$(awk 'tolower($1) == "x-subject-token:" { print $2 }' <<<"$headers" | tr -d '\r')
  [[ -n $token ]] || { echo "no token for $2 from $url: $(head -c 300 "$body")" >&2; return 1; }
  printf '%s\n' "$token"
}

# c2d::_openstack_probe NAME: true if that part of the cloud is up, asked
# with the caller's admin `token` of project `project`.
c2d::_openstack_probe() {
  local base=http://127.0.0.1 body
  case $1 in
    keystone) [[ -n $token ]] ;;
    nova)
      body=$(c2d::_openstack_req "$token" GET "$base:${port[nova]}/v2.1/os-services") &&
        jq -e --arg h "$C2D_OPENSTACK_COMPUTE_HOST" '.services as $s
          | any($s[]; .binary == "nova-compute" and .host == $h and .state == "up")
            and any($s[]; .binary == "nova-conductor" and .state == "up")
            and any($s[]; .binary == "nova-scheduler" and .state == "up")' <<<"$body" >/dev/null ;;
    placement)
      body=$(c2d::_openstack_req "$token" GET "$base:${port[placement]}/resource_providers") &&
        jq -e '.resource_providers | length > 0' <<<"$body" >/dev/null ;;
    neutron) c2d::_openstack_req "$token" GET "$base:${port[neutron]}/v2.0/networks" >/dev/null ;;
    glance) c2d::_openstack_req "$token" GET "$base:${port[glance]}/v2/images" >/dev/null ;;
    swift)
      c2d::_openstack_req "$token" GET "$base:${port[swift_proxy]}/v1/AUTH_$project" >/dev/null ;;
    cinder)
      body=$(c2d::_openstack_req "$token" GET "$base:${port[cinder]}/v3/$project/os-services") &&
        jq -e '.services as $s
          | any($s[]; .binary == "cinder-scheduler" and .state == "up")
            and any($s[]; .binary == "cinder-volume" and .state == "up")' <<<"$body" >/dev/null ;;
  esac
}

# c2d::_openstack_logs NAME: the services whose logs tell why probe NAME fails.
c2d::_openstack_logs() {
  case $1 in
    nova) echo nova-api nova-conductor nova-scheduler nova-compute rabbitmq ;;
    swift) echo swift-proxy swift-account swift-container swift-object ;;
    cinder) echo cinder-api cinder-scheduler cinder-volume ;;
    *) echo "$1" ;;
  esac
}

# c2d::_openstack_wait STATE TIMEOUT NAME...: waits until every probe NAME
# (c2d::_openstack_probe) succeeds. Fails (1), naming what did not come up
# and showing the tail of its logs in STATE/log, after TIMEOUT seconds or as
# soon as a service of STATE/run exits.
c2d::_openstack_wait() {
  local state=$1 timeout=$2
  shift 2
  local pending=("$@") still name svc file token='' project='' t0=$SECONDS
  local deadline=$((t0 + timeout))
  while :; do
    for file in "$state"/run/*.pid; do
      if [[ ! -e $file ]] || c2d::pidfile_alive "$file"; then
        continue
      fi
      name=$(basename "$file" .pid)
      tail -n 30 "$state/log/$name.log" >&2
      c2d::log "OpenStack: $name exited while starting (log: $state/log/$name.log)"
      return 1
    done
    if [[ -z $token ]]; then
      token=$(c2d::_openstack_token "http://127.0.0.1:${port[keystone]}/v3" admin \
        "$C2D_OPENSTACK_ADMIN_PASSWORD" admin "$state/run/admin-token.json" 2>/dev/null) || token=
      [[ -z $token ]] || project=$(jq -r .token.project.id "$state/run/admin-token.json")
    fi
    still=()
    for name in "${pending[@]}"; do
      if c2d::_openstack_probe "$name" 2>/dev/null; then
        c2d::log "OpenStack: $name answers after $((SECONDS - t0)) s"
      else
        still+=("$name")
      fi
    done
    pending=("${still[@]}")
    ((${#pending[@]})) || return 0
    if ((SECONDS >= deadline)); then
      for name in "${pending[@]}"; do
        for svc in $(c2d::_openstack_logs "$name"); do
          echo "--- $state/log/$svc.log" >&2
          tail -n 15 "$state/log/$svc.log" >&2
        done
      done
      c2d::log "OpenStack: no answer from ${pending[*]} within ${timeout}s (logs: $state/log)"
      return 1
    fi
    sleep 1
  done
}

# c2d::_openstack_renice ROOT: every process of ROOT at normal priority
# again: its autogroup, and each of its threads (niceness is a thread's).
c2d::_openstack_renice() {
  local pid tasks=()
  for pid in $(c2d::_openstack_pids "$1"); do
    echo 0 2>/dev/null >"/proc/$pid/autogroup" || true
    tasks+=(/proc/"$pid"/task/*)
  done
  tasks=("${tasks[@]##*/}")
  ((${#tasks[@]} == 0)) || renice -n 0 -p "${tasks[@]}" >/dev/null 2>&1 || true
}

# c2d::_openstack_step LOG WHAT COMMAND...: COMMAND with its output appended
# to LOG and its duration noted there; exits (this is the build's subshell)
# with the tail of LOG when it fails.
c2d::_openstack_step() {
  local log=$1 what=$2 t0=$SECONDS
  shift 2
  c2d::log "OpenStack root: $what"
  echo "=== $(date -u +%FT%TZ) $what" >>"$log"
  if ! "$@" >>"$log" 2>&1; then
    tail -n 30 "$log" >&2
    c2d::die "OpenStack root: $what failed (log: $log)"
  fi
  echo "=== $what: $((SECONDS - t0)) s" >>"$log"
}

# c2d::_openstack_sources MIRROR SECURITY_MIRROR: the root's apt sources.
c2d::_openstack_sources() {
  cat <<EOF
Types: deb
URIs: $1
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $2
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
}

# c2d::_openstack_mirror security|main: the host's Debian mirror, from the
# URIs of its deb822 sources (the stanza of the -security suite or the other).
c2d::_openstack_mirror() {
  awk -v want="$1" 'BEGIN { RS = "" } {
      uri = ""; security = 0
      n = split($0, line, "\n")
      for (i = 1; i <= n; i++) {
        if (line[i] ~ /^URIs:/) { split(line[i], f, " "); uri = f[2] }
        if (line[i] ~ /^Suites:.*-security/) security = 1
      }
      if (uri != "" && security == (want == "security")) { print uri; exit }
    }' /etc/apt/sources.list.d/debian.sources 2>/dev/null
}

# c2d::_openstack_keystone_objects: projects, users, roles, services and
# endpoints, through Keystone's API (the CLI takes 2-3 s a call).
c2d::_openstack_keystone_objects() {
  local ks=http://127.0.0.1:${port[keystone]}/v3 tok admin member svc_role service c2d id user
  local type name
  local iface req=c2d::_openstack_req
  tok=$(c2d::_openstack_token "$ks" admin "$C2D_OPENSTACK_ADMIN_PASSWORD" admin /dev/null) ||
    return 1
  admin=$($req "$tok" GET "$ks/roles?name=admin" | jq -r '.roles[0].id') || return 1
  member=$($req "$tok" GET "$ks/roles?name=member" | jq -r '.roles[0].id') || return 1
  # Services' own role: Cinder lets only a request with a service token of
  # that role delete an attachment Nova made (OSSA-2023-003), as Nova does
  # when it deletes a server.
  svc_role=$($req "$tok" POST "$ks/roles" --json '{"role": {"name": "service"}}' |
    jq -r .role.id) || return 1
  service=$($req "$tok" POST "$ks/projects" --json \
    '{"project": {"name": "service", "domain_id": "default"}}' | jq -r .project.id) || return 1
  c2d=$($req "$tok" POST "$ks/projects" --json \
    '{"project": {"name": "c2d", "domain_id": "default"}}' | jq -r .project.id) || return 1
  for user in swift nova placement neutron glance cinder c2d; do
    id=$($req "$tok" POST "$ks/users" --json "$(jq -cn --arg u "$user" --arg p "${user}pw" \
      '{user: {name: $u, password: $p, domain_id: "default"}}')" | jq -r .user.id) || return 1
    if [[ $user == c2d ]]; then
      $req "$tok" PUT "$ks/projects/$c2d/users/$id/roles/$member" >/dev/null || return 1
    else
      $req "$tok" PUT "$ks/projects/$service/users/$id/roles/$admin" >/dev/null || return 1
      $req "$tok" PUT "$ks/projects/$service/users/$id/roles/$svc_role" >/dev/null || return 1
    fi
  done
  for type in object-store:swift compute:nova placement:placement network:neutron image:glance \
    volumev3:cinderv3; do
    name=${type#*:} type=${type%%:*}
    id=$($req "$tok" POST "$ks/services" --json "$(jq -cn --arg t "$type" --arg n "$name" \
      '{service: {type: $t, name: $n}}')" | jq -r .service.id) || return 1
    for iface in public internal admin; do
      $req "$tok" POST "$ks/endpoints" --json "$(jq -cn --arg s "$id" --arg i "$iface" \
        --arg u "$(c2d::_openstack_url "$type")" \
        '{endpoint: {service_id: $s, interface: $i, url: $u, region_id: "RegionOne"}}')" \
        >/dev/null || return 1
    done
  done
}

# c2d::_openstack_image_and_flavor STATE: the public test image (1 MiB of
# zeros, raw) and the flavor.
c2d::_openstack_image_and_flavor() {
  local state=$1 tok glance=http://127.0.0.1:${port[glance]}/v2/images
  tok=$(c2d::_openstack_token "http://127.0.0.1:${port[keystone]}/v3" admin \
    "$C2D_OPENSTACK_ADMIN_PASSWORD" admin /dev/null) || return 1
  head -c 1048576 /dev/zero >"$state/image.raw"
  c2d::_openstack_req "$tok" POST "$glance" --json "$(jq -cn --arg id "$C2D_OPENSTACK_IMAGE_ID" \
    --arg n "$C2D_OPENSTACK_IMAGE_NAME" '{id: $id, name: $n, disk_format: "raw",
      container_format: "bare", visibility: "public"}')" &&
    c2d::_openstack_req "$tok" PUT "$glance/$C2D_OPENSTACK_IMAGE_ID/file" \
      -H 'Content-Type: application/octet-stream' --data-binary "@$state/image.raw" &&
    c2d::_openstack_req "$tok" POST "http://127.0.0.1:${port[nova]}/v2.1/flavors" \
      --json "$(jq -cn --arg n "$C2D_OPENSTACK_FLAVOR" --arg id "$C2D_OPENSTACK_FLAVOR_ID" \
        '{flavor: {name: $n, id: $id, ram: 512, vcpus: 1, disk: 1}}')"
}

# c2d::_openstack_build NEW STATE LOG DEBS: the whole build into NEW (empty),
# with the packages downloaded into DEBS kept for the next build. Runs in a
# subshell: c2d::die ends the build only; the caller cleans up.
c2d::_openstack_build() {
  local new=$1 state=$2 log=$3 debs=$4 step=c2d::_openstack_step in=c2d::_openstack_chroot
  local mirror security
  set -o pipefail
  mirror=$(c2d::_openstack_mirror main)
  security=$(c2d::_openstack_mirror security)
  mirror=${mirror:-http://deb.debian.org/debian}
  security=${security:-http://deb.debian.org/debian-security}
  umask 022
  mkdir -p "$debs/partial"
  $step "$log" "debootstrap bookworm from $mirror" debootstrap --variant=minbase \
    --cache-dir="$debs" --include=ca-certificates,curl,procps,less,python3 bookworm "$new" "$mirror"
  rm -f "$new/etc/apt/sources.list"
  c2d::_openstack_sources "$mirror" "$security" >"$new/etc/apt/sources.list.d/debian.sources"
  cp -L /etc/resolv.conf "$new/etc/resolv.conf"
  # No package starts its service: they run only when started here.
  printf '#!/bin/sh\nexit 101\n' >"$new/usr/sbin/policy-rc.d"
  chmod 0755 "$new/usr/sbin/policy-rc.d"
  c2d::_openstack_mount_api "$new" || c2d::die "OpenStack root: mounting /proc, /sys, /dev failed"
  mount --bind "$debs" "$new/var/cache/apt/archives" ||
    c2d::die "OpenStack root: mounting the package cache failed"

  local install=(apt-get install -y --no-install-recommends)
  $step "$log" "apt-get update" $in "$new" apt-get update
  $step "$log" "installing Keystone and PostgreSQL" $in "$new" "${install[@]}" \
    keystone python3-openstackclient postgresql python3-psycopg2
  $step "$log" "installing Swift" $in "$new" "${install[@]}" swift swift-proxy swift-object \
    swift-container swift-account python3-keystonemiddleware python3-swiftclient
  # nova-compute needs a hypervisor package: -ironic is the one that brings
  # neither libvirt nor qemu.
  $step "$log" "installing Nova, Placement, Neutron and RabbitMQ" $in "$new" "${install[@]}" \
    nova-api nova-conductor nova-scheduler nova-compute nova-compute-ironic placement-api \
    rabbitmq-server neutron-server neutron-plugin-ml2 python3-osc-placement
  $step "$log" "installing Glance" $in "$new" "${install[@]}" glance-api
  $step "$log" "installing Cinder" $in "$new" "${install[@]}" cinder-api cinder-scheduler \
    cinder-volume

  local -A port
  c2d::_openstack_pick_ports || c2d::die "OpenStack root: no free ports"
  $step "$log" "writing configs" c2d::_openstack_configs "$new"
  $step "$log" "making Swift's rings" c2d::_openstack_rings "$new"
  mkdir -p "$new/srv/node/d1"
  $step "$log" "Swift's device" $in "$new" chown -R swift:swift /srv/node

  $step "$log" "starting PostgreSQL" c2d::_openstack_pg_start "$new"
  local db sql="CREATE USER os PASSWORD 'os';"
  $step "$log" "creating the databases" c2d::_openstack_psql "$new" postgres "$sql"
  for db in keystone nova_api nova nova_cell0 placement neutron glance cinder; do
    $step "$log" "creating database $db" c2d::_openstack_psql "$new" postgres \
      "CREATE DATABASE $db OWNER os"
  done
  local ks=http://127.0.0.1:${port[keystone]}/v3/
  $step "$log" "keystone-manage db_sync" $in "$new" runuser -u keystone -- keystone-manage db_sync
  $step "$log" "keystone-manage fernet_setup" $in "$new" keystone-manage fernet_setup \
    --keystone-user keystone --keystone-group keystone
  $step "$log" "keystone-manage credential_setup" $in "$new" keystone-manage credential_setup \
    --keystone-user keystone --keystone-group keystone
  $step "$log" "keystone-manage bootstrap" $in "$new" runuser -u keystone -- keystone-manage \
    bootstrap --bootstrap-password "$C2D_OPENSTACK_ADMIN_PASSWORD" --bootstrap-admin-url "$ks" \
    --bootstrap-internal-url "$ks" --bootstrap-public-url "$ks" --bootstrap-region-id RegionOne
  c2d::_openstack_launch "$new" "$state" keystone
  $step "$log" "placement-manage db sync" $in "$new" runuser -u placement -- \
    placement-manage db sync
  $step "$log" "glance-manage db_sync" $in "$new" runuser -u glance -- glance-manage db_sync
  $step "$log" "cinder-manage db sync" $in "$new" runuser -u cinder -- cinder-manage db sync
  $step "$log" "neutron-db-manage upgrade head" $in "$new" runuser -u neutron -- \
    neutron-db-manage --config-file /etc/neutron/neutron.conf \
    --config-file /etc/neutron/plugins/ml2/ml2_conf.ini upgrade head
  local nova=(runuser -u nova -- nova-manage)
  $step "$log" "nova-manage api_db sync" $in "$new" "${nova[@]}" api_db sync
  $step "$log" "nova-manage cell_v2 map_cell0" $in "$new" "${nova[@]}" cell_v2 map_cell0 \
    --database_connection "postgresql+psycopg2://os:os@127.0.0.1:${port[pg]}/nova_cell0"
  $step "$log" "nova-manage cell_v2 create_cell" $in "$new" "${nova[@]}" cell_v2 create_cell \
    --name=cell1
  $step "$log" "nova-manage db sync" $in "$new" "${nova[@]}" db sync

  $step "$log" "waiting for Keystone" c2d::_openstack_wait "$state" 120 keystone
  $step "$log" "Keystone's projects, users, services and endpoints" \
    c2d::_openstack_keystone_objects
  local svc rest=()
  for svc in "${C2D_OPENSTACK_SERVICES[@]}"; do
    [[ $svc == keystone ]] || rest+=("$svc")
  done
  c2d::_openstack_launch "$new" "$state" "${rest[@]}"
  $step "$log" "waiting for every service" c2d::_openstack_wait "$state" 300 \
    keystone glance neutron swift placement cinder nova
  c2d::_openstack_renice "$new"
  $step "$log" "the image and the flavor" c2d::_openstack_image_and_flavor "$state"
  # The compute host's mapping to cell1 is then in the root: the scheduler
  # finds it from the first start on.
  $step "$log" "nova-manage cell_v2 discover_hosts" $in "$new" "${nova[@]}" cell_v2 \
    discover_hosts --verbose
  $step "$log" "stopping the services" c2d::_openstack_halt "$new"
  c2d::unmount_under "$new"
  [[ -z $(c2d::_openstack_mounts_under "$new") ]] || c2d::die "OpenStack root: $new stays mounted"
  # fsync is off in its PostgreSQL: the data reaches the disk here, before
  # the root counts as built.
  sync -f "$new/var/lib/postgresql" || sync
}

c2d::openstack_root() {
  ((EUID == 0)) || c2d::die "building the OpenStack root needs root"
  local root cache=${C2D_OPENSTACK_CACHE:-/var/cache/c2d-openstack}
  root=$(c2d::_openstack_cached_root)
  [[ -d $root ]] && return 0
  local tool
  for tool in debootstrap python3 curl jq; do
    command -v "$tool" >/dev/null || c2d::die "$tool is not installed (apt-get install $tool)"
  done
  mkdir -p "$cache"
  local lock
  exec {lock}>"$cache/.lock"
  flock -n "$lock" || { c2d::log "waiting for another build of $root"; flock "$lock"; }
  if [[ -d $root ]]; then
    exec {lock}>&-
    return 0
  fi
  local new=$root.new state=$cache/build log=$cache/build.log debs=$cache/debs t0=$SECONDS
  # What a failed or interrupted build left (its processes, its mounts).
  c2d::_openstack_halt "$new"
  c2d::unmount_under "$new"
  [[ -z $(c2d::_openstack_mounts_under "$new") ]] || c2d::die "$new stays mounted"
  rm -rf --one-file-system "$new" "$state"
  : >"$log"
  c2d::log "building the OpenStack root in $new (8 to 13 minutes; log: $log)"
  if ! (c2d::_openstack_build "$new" "$state" "$log" "$debs"); then
    c2d::_openstack_halt "$new"
    c2d::unmount_under "$new"
    exec {lock}>&-
    c2d::die "building the OpenStack root failed after $((SECONDS - t0)) s" \
      "(log: $log; services' logs: $state/log)"
  fi
  mv "$new" "$root"
  echo "=== $(date -u +%FT%TZ) the root $root was built in $((SECONDS - t0)) s" >>"$log"
  exec {lock}>&-
  c2d::log "OpenStack root built in $((SECONDS - t0)) s: $root"
}

c2d::openstack_start() {
  local dir=$1
  [[ -n $dir ]] || c2d::die "usage: c2d::openstack_start DIR"
  ((EUID == 0)) || c2d::die "starting OpenStack needs root (chroot, mounts)"
  local lower t0=$SECONDS
  lower=$(c2d::_openstack_cached_root)
  [[ -d $lower ]] ||
    c2d::die "no OpenStack root in $lower: build it once with tools/openstack-up (8 to 13 minutes)"
  local tool
  for tool in python3 curl jq; do
    command -v "$tool" >/dev/null || c2d::die "$tool is not installed (apt-get install $tool)"
  done
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  c2d::openstack_stop "$dir"
  [[ -z $(c2d::_openstack_mounts_under "$dir") ]] ||
    c2d::die "something stays mounted under $dir: $(c2d::_openstack_mounts_under "$dir" | xargs)"
  local root=$dir/root
  rm -rf --one-file-system "$dir/upper" "$dir/work" "$dir/log" "$dir/run"
  mkdir -p "$dir/upper" "$dir/work" "$root"
  # The upper layer's top directory is the chroot's "/": the services' users
  # must be able to enter it whatever the caller's umask.
  chmod 0755 "$dir/upper"
  if ! mount -t overlay c2d-openstack -o "lowerdir=$lower,upperdir=$dir/upper,workdir=$dir/work" \
    "$root"; then
    c2d::die "cannot mount an overlay on $root (overlayfs missing?)"
  fi
  mount --make-private "$root"
  c2d::_openstack_mount_api "$root" || {
    c2d::openstack_stop "$dir"
    c2d::die "cannot mount /proc, /sys, /dev in $root"
  }

  local -A port
  c2d::_openstack_pick_ports || { c2d::openstack_stop "$dir"; c2d::die "no free ports"; }
  (umask 022 && c2d::_openstack_configs "$root") >"$dir/configs.log" 2>&1 || {
    cat "$dir/configs.log" >&2
    c2d::openstack_stop "$dir"
    c2d::die "writing OpenStack's configs failed"
  }
  c2d::_openstack_launch "$root" "$dir" rabbitmq
  (umask 022 && c2d::_openstack_rings "$root") >"$dir/rings.log" 2>&1 &
  local rings=$!
  if ! c2d::_openstack_pg_start "$root" || ! c2d::_openstack_readdress "$root" >&2; then
    wait "$rings"
    c2d::openstack_stop "$dir"
    c2d::die "OpenStack's PostgreSQL did not start (log: $dir/upper/var/log/postgresql)"
  fi
  wait "$rings" || {
    cat "$dir/rings.log" >&2
    c2d::openstack_stop "$dir"
    c2d::die "making Swift's rings failed"
  }
  local rest=("${C2D_OPENSTACK_SERVICES[@]:1}")
  c2d::_openstack_launch "$root" "$dir" "${rest[@]}"
  if ! c2d::_openstack_wait "$dir" "${C2D_OPENSTACK_START_TIMEOUT:-480}" \
    keystone glance neutron swift placement cinder nova; then
    c2d::openstack_stop "$dir"
    c2d::die "OpenStack did not start (logs: $dir/log)"
  fi
  c2d::_openstack_renice "$root"

  export C2D_TEST_OS_AUTH_URL=http://127.0.0.1:${port[keystone]}/v3
  export C2D_TEST_OS_USERNAME=c2d
  export C2D_TEST_OS_PASSWORD=$C2D_OPENSTACK_USER_PASSWORD
  export C2D_TEST_OS_PROJECT_NAME=c2d
  export C2D_TEST_OS_USER_DOMAIN_ID=default
  export C2D_TEST_OS_PROJECT_DOMAIN_ID=default
  export C2D_TEST_OS_REGION=RegionOne
  export C2D_TEST_OS_ADMIN_USERNAME=admin
  export C2D_TEST_OS_ADMIN_PASSWORD=$C2D_OPENSTACK_ADMIN_PASSWORD
  export C2D_TEST_OS_ADMIN_PROJECT_NAME=admin
  export C2D_TEST_OS_IMAGE=$C2D_OPENSTACK_IMAGE_ID
  export C2D_TEST_OS_IMAGE_NAME=$C2D_OPENSTACK_IMAGE_NAME
  export C2D_TEST_OS_FLAVOR=$C2D_OPENSTACK_FLAVOR
  export C2D_TEST_OS_FLAVOR_ID=$C2D_OPENSTACK_FLAVOR_ID
  local v
  for v in AUTH_URL USERNAME PASSWORD PROJECT_NAME USER_DOMAIN_ID PROJECT_DOMAIN_ID REGION \
    ADMIN_USERNAME ADMIN_PASSWORD ADMIN_PROJECT_NAME IMAGE IMAGE_NAME FLAVOR FLAVOR_ID; do
    v=C2D_TEST_OS_$v
    printf 'export %s=%q\n' "$v" "${!v}"
  done >"$dir/openstack.env"
  c2d::log "OpenStack answers after $((SECONDS - t0)) s: Keystone at $C2D_TEST_OS_AUTH_URL"
}

c2d::openstack_stop() {
  local dir=$1
  [[ -n $dir ]] || c2d::die "usage: c2d::openstack_stop DIR"
  [[ -d $dir ]] || return 0
  dir=$(cd "$dir" && pwd)
  c2d::_openstack_halt "$dir/root"
  c2d::unmount_under "$dir/root"
  rm -f "$dir/openstack.env" "$dir"/run/*.pid
}

# c2d::_openstack_endpoint TYPE TOKEN_BODY: TYPE's public URL in the
# region C2D_TEST_OS_REGION, from a token's catalog.
c2d::_openstack_endpoint() {
  jq -r --arg t "$1" --arg r "$C2D_TEST_OS_REGION" 'first(.token.catalog[] | select(.type == $t)
    | .endpoints[] | select(.interface == "public" and .region_id == $r) | .url) // empty' "$2"
}

# c2d::_openstack_ms: a clock in milliseconds.
c2d::_openstack_ms() {
  local t=${EPOCHREALTIME//[.,]/}
  echo $((t / 1000))
}

# A subshell: its c2d::die returns 1 to the caller, after the EXIT trap has
# deleted what the check made.
c2d::openstack_smoke() (
  set -o pipefail
  v=
  for v in AUTH_URL USERNAME PASSWORD PROJECT_NAME USER_DOMAIN_ID PROJECT_DOMAIN_ID REGION \
    IMAGE FLAVOR; do
    v=C2D_TEST_OS_$v
    [[ -n ${!v:-} ]] || c2d::die "openstack smoke: $v is not set (c2d::openstack_start sets it)"
  done
  tmp=$(mktemp -d) server='' net='' object='' container=''
  t0=$(c2d::_openstack_ms)
  took() { echo "$(($(c2d::_openstack_ms) - t0)) ms"; }
  req=c2d::_openstack_req
  # shellcheck disable=SC2317  # run by the EXIT trap
  cleanup() {
    set +e  # delete all that can be
    local deadline=$((SECONDS + 60))
    if [[ -n $server ]]; then
      $req "$token" DELETE "$compute/servers/$server" >/dev/null
      while ((SECONDS < deadline)) &&
        curl -sf --noproxy '*' --max-time 10 -o /dev/null -H "X-Auth-Token: $token" \
          "$compute/servers/$server"; do
        sleep 0.5
      done
    fi
    if [[ -n $net ]]; then
      # 409 while Nova still holds the server's port.
      until $req "$token" DELETE "$network/v2.0/networks/$net" >/dev/null 2>&1 ||
        ((SECONDS >= deadline)); do
        sleep 0.5
      done
    fi
    [[ -z $object ]] || $req "$token" DELETE "$object" >/dev/null
    [[ -z $container ]] || $req "$token" DELETE "$container" >/dev/null
    rm -rf "$tmp"
  }
  trap cleanup EXIT

  token=$(c2d::_openstack_token "$C2D_TEST_OS_AUTH_URL" "$C2D_TEST_OS_USERNAME" \
    "$C2D_TEST_OS_PASSWORD" "$C2D_TEST_OS_PROJECT_NAME" "$tmp/token.json" \
    "$C2D_TEST_OS_USER_DOMAIN_ID" "$C2D_TEST_OS_PROJECT_DOMAIN_ID") ||
    c2d::die "openstack smoke: no token from $C2D_TEST_OS_AUTH_URL"
  c2d::log "openstack smoke: token after $(took)"
  compute=$(c2d::_openstack_endpoint compute "$tmp/token.json")
  network=$(c2d::_openstack_endpoint network "$tmp/token.json")
  swift=$(c2d::_openstack_endpoint object-store "$tmp/token.json")
  [[ -n $compute && -n $network && -n $swift ]] ||
    c2d::die "openstack smoke: the catalog lacks compute, network or object-store"

  $req "$token" PUT "$swift/c2d-smoke-$$" --data-binary '' >/dev/null ||
    c2d::die "openstack smoke: Swift refused a container"
  container=$swift/c2d-smoke-$$
  $req "$token" PUT "$container/hello" -H 'Content-Type: text/plain' \
    --data-binary 'hello from c2d' >/dev/null || c2d::die "openstack smoke: Swift refused an object"
  object=$container/hello
  [[ $($req "$token" GET "$object") == 'hello from c2d' ]] ||
    c2d::die "openstack smoke: Swift gave back another object"
  c2d::log "openstack smoke: Swift object put and read back after $(took)"

  net=$($req "$token" POST "$network/v2.0/networks" \
    --json "{\"network\": {\"name\": \"c2d-smoke-$$\"}}" | jq -r ".network.id // empty") || net=''
  [[ -n $net ]] || c2d::die "openstack smoke: Neutron refused a network"
  $req "$token" POST "$network/v2.0/subnets" --json "$(jq -cn --arg n "$net" \
    '{subnet: {network_id: $n, ip_version: 4, cidr: "10.254.0.0/24"}}')" >/dev/null ||
    c2d::die "openstack smoke: Neutron refused a subnet"
  c2d::log "openstack smoke: Neutron network $net after $(took)"

  flavor=$($req "$token" GET "$compute/flavors" | jq -r --arg n "$C2D_TEST_OS_FLAVOR" \
    'first(.flavors[] | select(.name == $n) | .id) // empty') || flavor=''
  [[ -n $flavor ]] || c2d::die "openstack smoke: no flavor $C2D_TEST_OS_FLAVOR"
  server=$($req "$token" POST "$compute/servers" --json "$(jq -cn --arg i "$C2D_TEST_OS_IMAGE" \
    --arg f "$flavor" --arg n "$net" --arg name "c2d-smoke-$$" '{server: {name: $name,
      imageRef: $i, flavorRef: $f, networks: [{uuid: $n}]}}')" |
    jq -r ".server.id // empty") || server=''
  [[ -n $server ]] || c2d::die "openstack smoke: Nova refused a server"
  deadline=$((SECONDS + 120)) status=
  while ((SECONDS < deadline)); do
    body=$($req "$token" GET "$compute/servers/$server") || body='{}'
    status=$(jq -r '.server.status // empty' <<<"$body")
    [[ $status == ACTIVE || $status == ERROR ]] && break
    sleep 0.5
  done
  [[ $status == ACTIVE ]] || c2d::die "openstack smoke: server $server is ${status:-unknown}" \
    "$(jq -r '.server.fault.message // empty' <<<"$body")"
  jq -e '.server.addresses | length > 0' <<<"$body" >/dev/null ||
    c2d::die "openstack smoke: server $server is ACTIVE without an address"
  c2d::log "openstack smoke: server $server ACTIVE after $(took)" \
    "($(jq -c '.server.addresses' <<<"$body"))"
)
