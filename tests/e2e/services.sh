# Sourced by the end-to-end tests that run c2d's services as processes on
# loopback against the test platform (tools/test): every service of SERVICES,
# one process per replica of REPLICAS, each with its own ports and folders;
# callers reach a service's replicas through one gRPC target (ipv4:A,B), as a
# Kubernetes Service gives one name for its pods.
#
# The caller sets, before c2d_e2e::env:
#   dir        a work folder (logs: $dir/SVC-R.log)
#   db         the name of a database to create on the test PostgreSQL
#   SERVICES   e.g. (dns certs deployer dbprov builder gateway)
#   REPLICAS   e.g. (a) or (a b)
#   http_addr  an associative array: replica -> the gateway's REST address
# and gets the arrays pid, grpc and metrics (keyed "SVC.R") and a fail
# function of its own (fail MESSAGE: prints it and exits).

declare -A pid=() grpc=() metrics=()

# The settings every replica shares: one database, one master key, and each
# peer service as the addresses of its replicas.
c2d_e2e::env() {
  local svc r targets
  for svc in "${SERVICES[@]}"; do
    targets=
    for r in "${REPLICAS[@]}"; do
      grpc[$svc.$r]=127.0.0.1:$(c2d::free_port) metrics[$svc.$r]=127.0.0.1:$(c2d::free_port)
      targets+=${targets:+,}${grpc[$svc.$r]}
    done
    export "C2D_${svc^^}_ADDR=ipv4:$targets"
  done
  export C2D_DATABASE_URL=${C2D_TEST_PG_URL%/*}/$db
  export C2D_MASTER_KEY=mk1:$(head -c 32 /dev/urandom | base64 -w0)
  export C2D_REGISTRY_URL=$C2D_TEST_REGISTRY_URL C2D_REGISTRY_USER=$C2D_TEST_REGISTRY_USER \
    C2D_REGISTRY_PASSWORD=$C2D_TEST_REGISTRY_PASSWORD
  export C2D_ENGINE_SOCKET=$C2D_TEST_ENGINE_SOCKET C2D_BUILD_ENGINE_SOCKET=$C2D_TEST_BUILD_ENGINE_SOCKET
  export C2D_BUILD_ENGINE_CGROUP=${C2D_TEST_BUILD_ENGINE_CGROUP:-}
  C2D_BUILD_USER=$(stat -c %u:%g "$C2D_TEST_BUILD_ENGINE_SOCKET")
  export C2D_BUILD_USER
  export C2D_PDNS_API_URL=$C2D_TEST_PDNS_API_URL C2D_PDNS_API_KEY=$C2D_TEST_PDNS_API_KEY
  export C2D_INGRESS_ZONE=$C2D_TEST_INGRESS_ZONE C2D_INGRESS_HTTP_ADDR=$C2D_TEST_CADDY_HTTP
  export C2D_INGRESS_UNAVAILABLE_ADDR=$C2D_TEST_INGRESS_UNAVAILABLE_ADDR
  export C2D_LOCAL_REPO_ROOT=$dir/repos C2D_VOLUMES_DIR=$dir/volumes C2D_BACKUP_DIR=$dir/backups
  export C2D_INTERNAL_CA_FILE=$dir/ca.pem
  mkdir -p "$dir"/{repos,volumes,backups}
  for r in "${REPLICAS[@]}"; do mkdir -p "$dir/builds-$r"; done
  export C2D_USER_RPS=100000 C2D_USER_BURST=100000 C2D_LOG_LEVEL=info
}

# c2d_e2e::start SVC R: replica R of SVC, in the background.
c2d_e2e::start() {
  local svc=$1 r=$2 extra=()
  case $svc in
    gateway) extra=("C2D_HTTP_ADDR=${http_addr[$r]}") ;;
    certs) extra=("C2D_CERTS_HTTP_ADDR=127.0.0.1:$(c2d::free_port)") ;;
    builder) extra=("C2D_BUILD_WORK_DIR=$dir/builds-$r") ;;
  esac
  env C2D_GRPC_ADDR="${grpc[$svc.$r]}" C2D_METRICS_ADDR="${metrics[$svc.$r]}" "${extra[@]}" \
    setsid "$C2D_BUILD_DIR/services/$svc/c2d-$svc" >>"$dir/$svc-$r.log" 2>&1 </dev/null &
  pid[$svc.$r]=$!
}

c2d_e2e::ready() {
  "$C2D_BUILD_DIR/tools/c2d-probe" "${grpc[$1.$2]}" --wait 60s >/dev/null ||
    fail "$1 replica $2 did not become ready"
}

# Migrates the database, then starts every replica of every service, in
# SERVICES order, each service ready before the next starts.
c2d_e2e::up() {
  psql "$C2D_TEST_PG_URL" -qc "CREATE DATABASE $db" >/dev/null
  "$C2D_BUILD_DIR/tools/c2d-migrate" >"$dir/migrate.log" 2>&1 || fail "c2d-migrate failed"
  local svc r
  for svc in "${SERVICES[@]}"; do
    for r in "${REPLICAS[@]}"; do c2d_e2e::start "$svc" "$r"; done
    for r in "${REPLICAS[@]}"; do c2d_e2e::ready "$svc" "$r"; done
  done
}

# Kills every replica and drops the database.
c2d_e2e::down() {
  local key
  for key in "${!pid[@]}"; do kill -KILL "${pid[$key]}" 2>/dev/null || true; done
  psql "$C2D_TEST_PG_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
}

# An operator's token (c2d-admin token) for admin@localhost.
c2d_e2e::token() {
  "$C2D_BUILD_DIR/tools/c2d-admin" token --email admin@localhost --name "$1" 2>/dev/null | tail -n 1
}
