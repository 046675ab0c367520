#!/usr/bin/env bash
# Two replicas of every c2d service against one PostgreSQL (the test
# platform's engine, registry, PowerDNS and ingress), as processes on
# loopback, each replica with its own ports and work folders; callers reach a
# service's two replicas through one gRPC target (ipv4:A,B), as a Kubernetes
# Service gives one name for its pods.
#
# Shown:
#   - a build whose builder is SIGKILLed mid-job finishes on the other
#     replica, once (the job's second attempt), and the app goes live;
#   - a deploy whose deployer is SIGKILLed mid-job finishes the same way;
#   - every build and deploy job ran to success, no job ran more often than
#     the kills explain, and the app has exactly its one instance;
#   - an app container killed behind c2d's back is restarted once (the
#     reconciler runs on one replica only);
#   - the internal CA's certificate of the app's name is renewed by one
#     replica: no two issue jobs for it inside one renewal period;
#   - a database backed up every minute gets one scheduled backup per
#     minute, however many replicas run the schedule;
#   - a leader duty (deployer.reconcile) moves to the other replica within
#     a few seconds of its leader's SIGKILL;
#   - rolling upgrade: with a new migration applied under the running
#     binaries, every replica is restarted in turn (SIGTERM, start, ready)
#     while a client loop calls the REST API through a load balancer (a Caddy
#     of its own over both gateways): no request fails.
set -Eeuo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
source "$root/tools/lib/common.sh"
export C2D_BUILD_DIR=${C2D_BUILD_DIR:-$root/build}
: "${C2D_TEST_PG_URL:?run through tools/test}" "${C2D_TEST_ENGINE_SOCKET:?}" "${C2D_TEST_CADDY_HTTP:?}"
dir=$(mktemp -d "${C2D_TEST_TMP:-/tmp}/replicas.XXXXXX")
tag=$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
db=c2d_test_replicas_$tag
cli=$C2D_BUILD_DIR/tools/c2d
export XDG_CONFIG_HOME=$dir/config
SERVICES=(dns certs deployer dbprov builder gateway)
REPLICAS=(a b)
source "$root/tests/e2e/services.sh"
lb_pid= loop_pid= service_id= project_id= database_id= token= api_url=

fail() {
  echo "FAIL: $*" >&2
  for f in "$dir"/*.log; do echo "== ${f##*/}" >&2; tail -n 15 "$f" >&2; done
  exit 1
}
sql() { psql "${C2D_TEST_PG_URL%/*}/$db" -Atqc "$1"; }
engine() { curl -sS --max-time 30 --unix-socket "$C2D_TEST_ENGINE_SOCKET" "http://d$1" "${@:2}"; }
rest() { curl -sS --max-time 30 -H "Authorization: Bearer $token" "$api_url$1" "${@:2}"; }
# containers_labelled LABEL=VALUE [ALL]: ids of the engine's containers with
# that label (running ones, or ALL=1: all).
containers_labelled() {
  engine "/v1.41/containers/json?all=${2:-0}&filters=$(jq -rn --arg l "$1" \
    '{label: [$l]} | tojson | @uri')" | jq -r '.[].Id'
}
app_containers() { containers_labelled "c2d.service=$service_id"; }
project_containers() { containers_labelled "c2d.project=$project_id" 1; }

cleanup() {
  local key
  [[ -n $loop_pid ]] && kill "$loop_pid" 2>/dev/null
  [[ -n $lb_pid ]] && kill "$lb_pid" 2>/dev/null
  for key in "${!pid[@]}"; do kill -KILL "${pid[$key]}" 2>/dev/null || true; done
  if [[ -n $project_id ]]; then
    for id in $(project_containers 2>/dev/null); do
      engine "/v1.41/containers/$id?force=1" -X DELETE >/dev/null || true
    done
  fi
  c2d_e2e::down
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'echo "FAIL: line $LINENO: $BASH_COMMAND exited $?" >&2' ERR

# The replica of SVC whose process is PID, or nothing.
replica_of() {
  local r
  for r in "${REPLICAS[@]}"; do
    if [[ ${pid[$1.$r]} == "$2" ]]; then echo "$r"; fi
  done
}

# kill_mid_job KIND SVC: waits for a job of KIND to run, then SIGKILLs the
# replica of SVC running it; sets killed_job and killed_replica.
kill_mid_job() {
  local kind=$1 svc=$2 row job holder victim r
  for _ in $(seq 600); do
    row=$(sql "SELECT id, locked_by FROM jobs WHERE kind = '$kind' AND state = 'running' LIMIT 1")
    [[ -n $row ]] && break
    sleep 0.1
  done
  [[ -n $row ]] || fail "no $kind job ran within 60 s"
  job=${row%%|*} holder=${row#*|}
  # locked_by is HOST:PID:RANDOM/N.
  victim=$(cut -d: -f2 <<<"$holder")
  r=$(replica_of "$svc" "$victim")
  [[ -n $r ]] || fail "$kind job $job is held by $holder, not by a $svc replica"
  sleep 0.5  # well into the job
  kill -KILL "$victim"
  wait "$victim" 2>/dev/null || true
  c2d::log "SIGKILLed $svc replica $r (pid $victim) in the middle of $kind job $job"
  killed_job=$job killed_replica=$r
}

# The state of the service's newest deployment, once it is final or live.
await_live() {
  local state=
  for _ in $(seq 300); do
    state=$(rest "/v1/services/$service_id/deployments?page_size=1" | jq -r '.deployments[0].state // empty' || true)
    [[ $state == live || $state == failed ]] && break
    sleep 0.5
  done
  [[ $state == live ]] || fail "the deployment is '$state', not live"
}

await_body() {
  local url=$1 want=$2 body=
  for _ in $(seq 60); do
    body=$(curl -fsS --max-time 5 "$url" 2>/dev/null) && grep -q "$want" <<<"$body" && return 0
    sleep 0.5
  done
  fail "the app does not answer '$want' at $url: '$body'"
}

# job_attempts ID: the job's state and attempts, as "succeeded 2".
job_attempts() { sql "SELECT state || ' ' || attempts FROM jobs WHERE id = $1"; }

# --- Two replicas of everything ----------------------------------------------
declare -A http_addr=([a]=127.0.0.1:$(c2d::free_port) [b]=127.0.0.1:$(c2d::free_port))
c2d_e2e::env
# Short enough for a test: a killed worker's job is rescued after 10 s, the
# leaders act every 2 s, the internal CA's certificates live 60 s (renewed
# at 40 s). (A 5 s lease expired under a live worker when the whole suite
# loaded the machine: its heartbeats stalled, and a job ran twice.)
export C2D_JOB_LEASE=10s C2D_RECONCILE_INTERVAL=2s C2D_CERTS_SWEEP_INTERVAL=2s \
  C2D_DNS_SWEEP_INTERVAL=5s C2D_INTERNAL_CERT_LIFETIME=60s C2D_RESTART_BACKOFF_BASE=1s \
  C2D_SHUTDOWN_GRACE=10s
c2d_e2e::up
c2d::log "two replicas of each of ${SERVICES[*]} are serving"

token=$(c2d_e2e::token replicas)
[[ -n $token ]] || fail "c2d-admin token made no token"
api_url=http://${http_addr[a]}
"$cli" login --url "$api_url" --token "$token" >/dev/null || fail "login failed"
project=rep$tag
repo=$dir/repos/hello-python
c2d::sample_repo "$repo"
"$cli" projects create "$project" >/dev/null
"$cli" services create hello --project "$project" --repo "$repo" --port 8080 >/dev/null
service_id=$("$cli" services show "$project/hello" --json | jq -r .id)
"$cli" env set "$project/hello" GREETING=Replicated --plain >/dev/null
# A database backed up every minute, provisioned meanwhile.
project_id=$("$cli" services show "$project/hello" --json | jq -r .project_id)
code=$(rest "/v1/projects/$project_id/databases" -o "$dir/db.json" -w '%{http_code}' -X POST \
  -H 'Content-Type: application/json' \
  -d '{"name": "data", "engine": "postgres", "backup_schedule": "* * * * *"}')
[[ $code == 202 ]] || fail "creating the database answered $code: $(cat "$dir/db.json")"
database_id=$(jq -r .id "$dir/db.json")

# deploy_killing KIND SVC: deploys the service and SIGKILLs the replica of SVC
# running the deployment's job of KIND; the other replica runs the job again
# and the deployment goes live; the killed replica is started again.
deploy_killing() {
  local code
  code=$(rest "/v1/services/$service_id/deployments" -o "$dir/deploy.json" -w '%{http_code}' \
    -X POST -H 'Content-Type: application/json' -d '{}')
  [[ $code == 202 ]] || fail "deploying answered $code: $(cat "$dir/deploy.json")"
  kill_mid_job "$1" "$2"
  await_live
  [[ $(job_attempts "$killed_job") == "succeeded 2" ]] ||
    fail "$1 job $killed_job: $(job_attempts "$killed_job"), not succeeded on its second attempt"
  c2d_e2e::start "$2" "$killed_replica"
  c2d_e2e::ready "$2" "$killed_replica"
}

# A builder dies mid-build, then a deployer mid-deploy: the other replica
# finishes each job.
deploy_killing build builder
build_job=$killed_job
url=$("$cli" open "$project/hello")
await_body "$url" 'Replicated from c2d!'
"$cli" env set "$project/hello" GREETING=Twice --plain >/dev/null
deploy_killing deploy deployer
deploy_job=$killed_job
await_body "$url" 'Twice from c2d!'

# Every build and deploy job succeeded, each on its first attempt but the two
# whose worker was killed; one build and one deployment per request, and the
# app has its one instance.
bad=$(sql "SELECT id || ' ' || kind || ' ' || state || ' ' || attempts FROM jobs
           WHERE kind IN ('build', 'deploy')
             AND (state <> 'succeeded' OR attempts <> CASE WHEN id IN ($build_job, $deploy_job) THEN 2 ELSE 1 END)")
[[ -z $bad ]] || fail "jobs that ran more often than their kills explain, or failed: $bad"
[[ $(sql "SELECT count(*) FROM builds WHERE state = 'succeeded'") == 2 ]] ||
  fail "not 2 builds: $(sql "SELECT id, state FROM builds")"
[[ $(sql "SELECT count(*) FROM deployments WHERE service_id = '$service_id'") == 2 ]] ||
  fail "not 2 deployments: $(sql "SELECT id, state FROM deployments")"
for _ in $(seq 40); do [[ $(app_containers | wc -l) == 1 ]] && break; sleep 0.5; done
[[ $(app_containers | wc -l) == 1 ]] || fail "the app runs $(app_containers | wc -l) containers, not 1"
c2d::log "build and deploy: each job once (twice where its worker was killed), one instance"

# --- The reconciler restarts a killed app container once ----------------------
instance=$(app_containers)
engine "/v1.41/containers/$instance/kill?signal=KILL" -X POST >/dev/null
restarts=
for _ in $(seq 60); do
  restarts=$(rest "/v1/services/$service_id/instances" |
    jq -r '[.instances[] | select(.state == "running") | .restarts] | add // 0' || true)
  [[ $restarts -ge 1 ]] && break
  sleep 0.5
done
sleep 6  # three more passes of the reconciler
restarts=$(rest "/v1/services/$service_id/instances" | jq -r '[.instances[].restarts] | add // 0')
[[ $restarts == 1 ]] || fail "the killed app container was restarted $restarts times, not once"
await_body "$url" 'Twice from c2d!'
c2d::log "reconcile: the killed app container was restarted once"

# --- The certificate of the app's name is renewed by one replica --------------
host=${url#http://}
host=${host%%[:/]*}
cert=
for _ in $(seq 120); do
  cert=$(sql "SELECT id || ' ' || serial FROM certificates WHERE '$host' = ANY (hostnames) AND state = 'issued'")
  [[ -n $cert ]] && break
  sleep 0.5
done
[[ -n $cert ]] || fail "no certificate was issued for $host"
read -r cert_id serial <<<"$cert"
renewed=
for _ in $(seq 120); do  # renewed when a third of its 2 min is left (see below)
  renewed=$(sql "SELECT serial FROM certificates WHERE id = '$cert_id'")
  [[ $renewed != "$serial" ]] && break
  sleep 0.5
done
[[ $renewed != "$serial" ]] || fail "the certificate of $host was not renewed within 60 s"
sleep 3
# Its issue jobs: the first issuance, then one per renewal. The internal CA
# backdates a certificate by 1 min, so one of 60 s spans 2 min and is renewed
# with 40 s left: every 20 s. A renewal doubled by the two sweeping replicas
# (every 2 s) would come within a few seconds of the one before.
close=$(sql "SELECT count(*) FROM (
  SELECT created_at - lag(created_at) OVER (ORDER BY created_at) AS gap FROM jobs
  WHERE kind = 'issue_cert' AND payload::text LIKE '%$cert_id%') g WHERE gap < interval '10 seconds'")
issued=$(sql "SELECT count(*) FROM jobs WHERE kind = 'issue_cert' AND payload::text LIKE '%$cert_id%'")
sql "SELECT created_at::time(0) || ' ' || state || ' attempt ' || attempts FROM jobs
     WHERE kind = 'issue_cert' AND payload::text LIKE '%$cert_id%' ORDER BY id" | sed 's/^/  issue job /' >&2
[[ $close == 0 && $issued -ge 2 ]] ||
  fail "issue jobs of $cert_id: $issued, $close of them within 10 s of the one before"
c2d::log "certs: $host's certificate renewed once per period ($issued issue jobs)"

# --- One scheduled backup per minute -----------------------------------------
backups() {
  sql "SELECT count(*) FROM backups WHERE database_id = '$database_id' AND kind = 'scheduled'
       AND state = 'succeeded'"
}
for _ in $(seq 180); do [[ $(backups) -ge 1 ]] && break; sleep 0.5; done
[[ $(backups) -ge 1 ]] || fail "no scheduled backup succeeded (database: $(sql \
  "SELECT state FROM databases WHERE id = '$database_id'"), backups: $(sql \
  "SELECT kind || ' ' || state || ' ' || coalesce(failure_reason, '') FROM backups"))"
doubled=$(sql "SELECT date_trunc('minute', created_at) FROM backups
               WHERE database_id = '$database_id' AND kind = 'scheduled' GROUP BY 1 HAVING count(*) > 1")
[[ -z $doubled ]] || fail "more than one scheduled backup in the minutes $doubled"
bad=$(sql "SELECT id || ' ' || state || ' ' || attempts FROM jobs WHERE kind = 'backup_db'
           AND (attempts > 1 OR state IN ('failed', 'cancelled'))")
[[ -z $bad ]] || fail "backup jobs that ran more than once or failed: $bad"
c2d::log "backups: $(backups) scheduled backup(s), one per minute"

# --- A leader duty moves to the survivor --------------------------------------
# became_leader DUTY LOG: when LOG's process became DUTY's leader, in ns since
# the epoch, one line each.
became_leader() {
  jq -Rr --arg d "$1" 'fromjson? | select(.msg == "became leader" and .duty == $d) | .ts' \
    "$2" 2>/dev/null | while read -r at; do date -d "$at" +%s%N; done
}
# leader_of DUTY SVC: the replica of SVC that became DUTY's leader last.
leader_of() {
  local r at newest=0 who=
  for r in "${REPLICAS[@]}"; do
    at=$(became_leader "$1" "$dir/$2-$r.log" | tail -n 1 || true)
    if [[ -n $at ]] && ((at > newest)); then newest=$at who=$r; fi
  done
  echo "$who"
}
old=$(leader_of deployer.reconcile deployer)
[[ -n $old ]] || fail "no deployer replica became the reconciler's leader"
new=$([[ $old == a ]] && echo b || echo a)
killed_at=$(date +%s%N)
kill -KILL "${pid[deployer.$old]}"
wait "${pid[deployer.$old]}" 2>/dev/null || true
moved=
for _ in $(seq 100); do
  moved=$(became_leader deployer.reconcile "$dir/deployer-$new.log" |
    awk -v k="$killed_at" '$1 >= k { print; exit }' || true)
  [[ -n $moved ]] && break
  sleep 0.1
done
[[ -n $moved ]] || fail "deployer.reconcile did not move to replica $new within 10 s"
handoff_ms=$(((moved - killed_at) / 1000000))
c2d::log "leader: deployer.reconcile moved from replica $old to $new ${handoff_ms} ms after the SIGKILL"
c2d_e2e::start deployer "$old"
c2d_e2e::ready deployer "$old"

# --- Rolling upgrade: a new migration, then every replica restarted in turn ---
# A load balancer over both gateways, as a Kubernetes Service or any proxy
# would be: a connection refused (a draining gateway) is retried on the other.
lb=127.0.0.1:$(c2d::free_port)
jq -n --arg listen "$lb" --arg a "${http_addr[a]}" --arg b "${http_addr[b]}" '
  {admin: {disabled: true},
   apps: {http: {servers: {lb: {listen: [$listen], automatic_https: {disable: true},
     routes: [{handle: [{handler: "reverse_proxy", upstreams: [{dial: $a}, {dial: $b}],
       load_balancing: {selection_policy: {policy: "round_robin"},
                        try_duration: "10s", try_interval: "100ms"}}]}]}}}}}' >"$dir/lb.json"
mkdir -p "$dir/caddy"
XDG_DATA_HOME=$dir/caddy XDG_CONFIG_HOME=$dir/caddy caddy run --config "$dir/lb.json" \
  >"$dir/lb.log" 2>&1 &
lb_pid=$!
for _ in $(seq 100); do curl -fsS -o /dev/null "http://$lb/healthz" 2>/dev/null && break; sleep 0.1; done

# The client: reads that cross the gateway and, through it, the deployer.
: >"$dir/codes"
(
  trap - ERR
  paths=(/v1/projects "/v1/services/$service_id" "/v1/services/$service_id/deployments"
    "/v1/services/$service_id/instances")
  i=0
  while true; do
    path=${paths[i++ % ${#paths[@]}]}
    code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 15 -H "Authorization: Bearer $token" \
      "http://$lb$path" 2>>"$dir/client.err" || true)
    echo "$(date +%T.%N) $code $path" >>"$dir/codes"
  done
) &
loop_pid=$!

# The next release's migration, applied under the running binaries: additive
# (a nullable column, a new table), as the README's rule requires.
mkdir -p "$dir/migrations"
cp "$root"/migrations/*.sql "$dir/migrations/"
cat >"$dir/migrations/9000_upgrade_probe.sql" <<'SQL'
ALTER TABLE services ADD COLUMN upgrade_probe text;
CREATE TABLE upgrade_probe (id bigint PRIMARY KEY);
SQL
"$C2D_BUILD_DIR/tools/c2d-migrate" --dir "$dir/migrations" >"$dir/migrate2.log" 2>&1 ||
  fail "the new migration failed: $(cat "$dir/migrate2.log")"
status=$("$C2D_BUILD_DIR/tools/c2d-migrate" --status) || fail "c2d-migrate --status exited $? on a newer schema"
grep -q 'ahead of this build: 9000_upgrade_probe' <<<"$status" ||
  fail "c2d-migrate --status does not report the newer migration: $status"

for svc in "${SERVICES[@]}"; do
  for r in "${REPLICAS[@]}"; do
    kill -TERM "${pid[$svc.$r]}"
    wait "${pid[$svc.$r]}" 2>/dev/null || true
    c2d_e2e::start "$svc" "$r"
    c2d_e2e::ready "$svc" "$r"
    # The restarted gateway takes requests again before its twin goes.
    [[ $svc == gateway ]] && curl -fsS -o /dev/null "http://${http_addr[$r]}/healthz"
    # As an operator would (README "Upgrading"; Kubernetes'
    # minReadySeconds): its callers reconnect to it, at most 1 s apart,
    # before its twin goes. Without this pause the gateways answered 503
    # for 0.6 s once, their calls to the deployer having no replica left.
    sleep 2
  done
  c2d::log "upgrade: both $svc replicas restarted"
done
sleep 2
kill "$loop_pid"
wait "$loop_pid" 2>/dev/null || true
loop_pid=
total=$(wc -l <"$dir/codes")
failed=$(awk '$2 !~ /^2/' "$dir/codes")
((total > 100)) || fail "the client made only $total requests"
[[ -z $failed ]] || fail "$(wc -l <<<"$failed") of $total requests failed during the rolling restart:
$(head -n 20 <<<"$failed")
$(tail -n 5 "$dir/client.err" 2>/dev/null)"
await_body "$url" 'Twice from c2d!'
c2d::log "upgrade: $total requests during the migration and the restart of all 12 replicas, 0 failed"

# Down through the API: c2d removes the app's and the database's containers.
for path in "/v1/services/$service_id" "/v1/databases/$database_id?final_backup=false"; do
  code=$(rest "$path" -o "$dir/delete.out" -w '%{http_code}' -X DELETE)
  [[ $code == 2* ]] || fail "DELETE $path answered $code: $(cat "$dir/delete.out")"
done
for _ in $(seq 120); do [[ -z $(project_containers) ]] && break; sleep 0.5; done
[[ -z $(project_containers) ]] || fail "the project's containers outlived its service and database"
echo "replicas: 1 passed, 0 failed"
