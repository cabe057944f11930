#!/usr/bin/env bash
# Local Kafka + Redis for tests and benchmarks, without Docker (SPEC section 7).
#
#   bash scripts/services.sh start|stop|status
#   bash scripts/services.sh start-kafka|stop-kafka|restart-kafka
#   bash scripts/services.sh start-redis|stop-redis
#
# Kafka: single-node KRaft (broker+controller) on 127.0.0.1:9092 (controller :9093),
#        jars from Maven Central via scripts/kafka/pom.xml into scripts/kafka/lib/.
# Redis: Debian's redis-server, our own daemon on 127.0.0.1:6379 (not the system service).
# State, pid files and logs live under .services/ (git-ignored). Every command is
# idempotent: starting a running service or stopping a stopped one succeeds.
#
# Environment:
#   SERVICES_WAIT_S      seconds `start` waits for each service to answer (default 90)
#   SERVICES_REDIS_PORT  Redis port (default 6379), for a machine whose 6379 is taken;
#                        then point the code at it with PACER_REDIS_URL.
#
# Extra, private brokers (fault and security tests start their own, never touching the
# shared one): give each its own state directory and ports.
#   SERVICES_DIR                    state/pid/log directory (default .services)
#   SERVICES_KAFKA_PORT             broker port (default 9092)
#   SERVICES_KAFKA_CONTROLLER_PORT  KRaft controller port (default 9093)
#   SERVICES_KAFKA_SCRAM_USERS      "name:password,name:password,...": the broker then
#       listens with SASL_PLAINTEXT + SCRAM-SHA-512 only (no unauthenticated client
#       listener), the users are created by Kafka's own storage tool when the storage is
#       formatted, and the first user is the broker's own (inter-broker, super user).
#       ACLs are enforced (StandardAuthorizer); see deploy/kafka/acls.yaml.
set -euo pipefail

# Work from the repo root so every path below is relative to the clone, wherever it is.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"

HOST=127.0.0.1
KAFKA_PORT="${SERVICES_KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${SERVICES_KAFKA_CONTROLLER_PORT:-9093}"
SCRAM_USERS="${SERVICES_KAFKA_SCRAM_USERS:-}"
REDIS_PORT="${SERVICES_REDIS_PORT:-6379}"
WAIT_S="${SERVICES_WAIT_S:-90}"

SERVICES_DIR="${SERVICES_DIR:-$ROOT/.services}"
mkdir -p "$SERVICES_DIR"
SERVICES_DIR="$(cd "$SERVICES_DIR" && pwd)"
KAFKA_SRC="$ROOT/scripts/kafka"
KAFKA_LIB="$KAFKA_SRC/lib"
KAFKA_CP="$KAFKA_LIB/*"
KAFKA_DATA="$SERVICES_DIR/kafka-data"
KAFKA_CONF_DIR="$SERVICES_DIR/kafka"
KAFKA_PROPS="$KAFKA_CONF_DIR/server.properties"
KAFKA_PID="$SERVICES_DIR/kafka.pid"
KAFKA_LOG="$SERVICES_DIR/kafka.log"
REDIS_DIR="$SERVICES_DIR/redis"
REDIS_CONF="$REDIS_DIR/redis.conf"
REDIS_PID="$REDIS_DIR/redis.pid"
REDIS_LOG="$REDIS_DIR/redis.log"

# Same defaults as bin/kafka-run-class.sh / kafka-server-start.sh, capped at 512 MiB
# because the machines have 2 cores and other processes share them.
KAFKA_JAVA_OPTS=(-Xms256m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20
  -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent
  -Djava.awt.headless=true "-Dlog4j.configuration=file:$KAFKA_SRC/log4j.properties")

log() { echo "services: $*"; }
err() { echo "services: $*" >&2; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# ---------------------------------------------------------------- helpers

# True when something accepts TCP connections on 127.0.0.1:$1 (bash's /dev/tcp,
# so no netcat is needed on a fresh machine).
port_open() {
  timeout 1 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null
}

# Prints the pid from pid file $1 when that process is alive and its command line
# contains $2; otherwise removes a stale pid file and fails. Checking the command
# line protects against a recycled pid belonging to an unrelated process.
live_pid() {
  local file="$1" pattern="$2" pid
  [ -s "$file" ] || return 1
  pid="$(tr -dc '0-9' <"$file")"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null \
    && ps -o args= -p "$pid" 2>/dev/null | grep -q -- "$pattern"; then
    echo "$pid"
    return 0
  fi
  rm -f "$file"
  return 1
}

# Sends SIGTERM, waits up to $2 seconds for a clean exit, then SIGKILL.
stop_pid() {
  local pid="$1" grace="$2" i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < grace * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  err "pid $pid did not stop within ${grace}s; killing it"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
}

tail_log() {
  local file="$1"
  if [ -f "$file" ]; then
    err "last 40 lines of ${file#"$ROOT"/}:"
    tail -n 40 "$file" >&2
  else
    err "no log at ${file#"$ROOT"/}"
  fi
}

# apt-get with the dpkg lock held by someone else (another engineer's install,
# unattended-upgrades) must wait, not fail: DPkg::Lock::Timeout covers dpkg's lock,
# the retry loop covers the lists lock that `apt-get update` takes.
apt_get() {
  local tries=0
  export DEBIAN_FRONTEND=noninteractive
  until $SUDO apt-get -o DPkg::Lock::Timeout=300 -q "$@"; do
    tries=$((tries + 1))
    if [ "$tries" -ge 5 ]; then
      err "apt-get $* failed $tries times"
      return 1
    fi
    err "apt-get $* failed (lock held?); retrying in 5s"
    sleep 5
  done
}

APT_UPDATED=0
apt_install() {
  if [ "$APT_UPDATED" -eq 0 ]; then
    # A fresh machine has no package lists: refresh once per run.
    apt_get update
    APT_UPDATED=1
  fi
  apt_get install -y --no-install-recommends "$@"
}

# ---------------------------------------------------------------- Kafka

ensure_java_tools() {
  local pkgs=()
  command -v java >/dev/null 2>&1 || pkgs+=(default-jre-headless)
  command -v mvn >/dev/null 2>&1 || pkgs+=(maven)
  if [ "${#pkgs[@]}" -gt 0 ]; then
    log "installing ${pkgs[*]} (Debian)"
    apt_install "${pkgs[@]}"
  fi
}

# Jars are fetched once; a stamp holding the pom's checksum makes a pom change
# (e.g. a Kafka version bump) refetch instead of silently running the old jars.
ensure_kafka_jars() {
  local want have=""
  want="$(sha256sum "$KAFKA_SRC/pom.xml" | cut -d' ' -f1)"
  [ -f "$KAFKA_LIB/.pom-sha256" ] && have="$(cat "$KAFKA_LIB/.pom-sha256")"
  if [ "$want" = "$have" ] && compgen -G "$KAFKA_LIB/kafka_2.13-*.jar" >/dev/null; then
    return 0
  fi
  ensure_java_tools
  log "fetching Kafka jars with Maven into scripts/kafka/lib/ (first run only)"
  rm -rf "$KAFKA_LIB"
  mkdir -p "$SERVICES_DIR"
  # Output kept in a log and shown only on failure (mvn -q still prints terminal
  # escape codes); -B: no progress bars.
  if ! mvn -B -q -f "$KAFKA_SRC/pom.xml" dependency:copy-dependencies >"$SERVICES_DIR/mvn.log" 2>&1; then
    err "mvn dependency:copy-dependencies failed"
    tail_log "$SERVICES_DIR/mvn.log"
    rm -rf "$KAFKA_LIB"
    return 1
  fi
  echo "$want" >"$KAFKA_LIB/.pom-sha256"
}

# First "name:password" of SERVICES_KAFKA_SCRAM_USERS (the broker's own user).
scram_admin() { echo "${SCRAM_USERS%%,*}"; }

render_kafka_props() {
  mkdir -p "$KAFKA_CONF_DIR" "$KAFKA_DATA"
  # Absolute data dir so the broker does not depend on its working directory; ports
  # substituted so private brokers can run beside the shared one.
  sed -e "s#@DATA_DIR@#$KAFKA_DATA#g" \
    -e "s#127.0.0.1:9092#127.0.0.1:$KAFKA_PORT#g" \
    -e "s#127.0.0.1:9093#127.0.0.1:$KAFKA_CONTROLLER_PORT#g" \
    "$KAFKA_SRC/server.properties" >"$KAFKA_PROPS.tmp"
  if [ -n "$SCRAM_USERS" ]; then
    local admin user pass
    admin="$(scram_admin)"
    user="${admin%%:*}"
    pass="${admin#*:}"
    # The client listener speaks SASL only; the controller listener stays on loopback
    # PLAINTEXT inside this one process (its principal is ANONYMOUS, hence a super user).
    sed -i -e '/^listeners=/d' -e '/^advertised.listeners=/d' \
      -e '/^listener.security.protocol.map=/d' -e '/^inter.broker.listener.name=/d' \
      "$KAFKA_PROPS.tmp"
    cat >>"$KAFKA_PROPS.tmp" <<EOF

# SASL/SCRAM-SHA-512 (rendered by scripts/services.sh from SERVICES_KAFKA_SCRAM_USERS).
listeners=SASL_PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=SASL_PLAINTEXT://$HOST:$KAFKA_PORT
listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=SASL_PLAINTEXT
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$user" password="$pass";
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:$user;User:ANONYMOUS
allow.everyone.if.no.acl.found=false
EOF
    chmod 600 "$KAFKA_PROPS.tmp"
  fi
  mv "$KAFKA_PROPS.tmp" "$KAFKA_PROPS"
}

# KRaft refuses to start on unformatted storage; format exactly once so topics and
# offsets survive stop/start (restart tests rely on that).
format_kafka_storage() {
  [ -f "$KAFKA_DATA/meta.properties" ] && return 0
  local cluster_id
  cluster_id="$(java "${KAFKA_JAVA_OPTS[@]}" -cp "$KAFKA_CP" kafka.tools.StorageTool random-uuid \
    2>>"$KAFKA_LOG" | grep -E "^[A-Za-z0-9_-]{22}$" | tail -n 1)"
  if [ -z "$cluster_id" ]; then
    err "kafka StorageTool random-uuid printed no cluster id"
    tail_log "$KAFKA_LOG"
    return 1
  fi
  log "formatting Kafka storage (cluster id $cluster_id)"
  # SCRAM users are written into the cluster metadata by the storage tool itself
  # (kafka-storage.sh format --add-scram), so they exist before any client connects.
  local scram=() pair pairs=()
  if [ -n "$SCRAM_USERS" ]; then
    IFS=',' read -r -a pairs <<<"$SCRAM_USERS"
    for pair in "${pairs[@]}"; do
      scram+=(--add-scram "SCRAM-SHA-512=[name=${pair%%:*},password=${pair#*:}]")
    done
    log "SCRAM-SHA-512 users: $(for pair in "${pairs[@]}"; do printf '%s ' "${pair%%:*}"; done)"
  fi
  if ! java "${KAFKA_JAVA_OPTS[@]}" -cp "$KAFKA_CP" kafka.tools.StorageTool format \
    -t "$cluster_id" -c "$KAFKA_PROPS" "${scram[@]}" >>"$KAFKA_LOG" 2>&1; then
    err "kafka storage format failed"
    tail_log "$KAFKA_LOG"
    return 1
  fi
}

kafka_pid() { live_pid "$KAFKA_PID" "kafka.Kafka"; }

# Metadata check: the broker accepts connections AND answers a metadata request.
# aiokafka from the project venv is the real client the project uses; without a venv
# fall back to the broker's own "Kafka Server started" log line for this run.
kafka_answers() {
  port_open "$KAFKA_PORT" || return 1
  if [ -x "$ROOT/.venv/bin/python" ] && "$ROOT/.venv/bin/python" -c 'import aiokafka' 2>/dev/null; then
    timeout 15 "$ROOT/.venv/bin/python" - "$HOST:$KAFKA_PORT" "$(scram_admin)" <<'PY' >/dev/null 2>&1
import asyncio
import sys

from aiokafka.admin import AIOKafkaAdminClient


async def main() -> None:
    sasl = {}
    if sys.argv[2]:
        user, _, password = sys.argv[2].partition(":")
        sasl = {
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": user,
            "sasl_plain_password": password,
        }
    admin = AIOKafkaAdminClient(bootstrap_servers=sys.argv[1], request_timeout_ms=5000, **sasl)
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
        assert cluster["brokers"], cluster
    finally:
        await admin.close()


asyncio.run(main())
PY
  else
    # Only a line after the latest "==== start" marker counts (the log is appended to).
    awk '/^==== /{ok=0} /Kafka Server started/{ok=1} END{exit !ok}' "$KAFKA_LOG" 2>/dev/null
  fi
}

start_kafka_process() {
  local pid
  if pid="$(kafka_pid)"; then
    log "kafka already running (pid $pid)"
    return 0
  fi
  if port_open "$KAFKA_PORT" || port_open "$KAFKA_CONTROLLER_PORT"; then
    err "port $KAFKA_PORT or $KAFKA_CONTROLLER_PORT on $HOST is taken by a process this script did not start"
    return 1
  fi
  ensure_java_tools
  ensure_kafka_jars
  mkdir -p "$SERVICES_DIR"
  render_kafka_props
  format_kafka_storage
  echo "==== $(date -u +%FT%TZ) start" >>"$KAFKA_LOG"
  # setsid + nohup: the broker outlives this shell and `make`, and a Ctrl-C in the
  # terminal that ran `make test` does not kill it.
  setsid nohup java "${KAFKA_JAVA_OPTS[@]}" -cp "$KAFKA_CP" kafka.Kafka "$KAFKA_PROPS" \
    >>"$KAFKA_LOG" 2>&1 </dev/null &
  echo $! >"$KAFKA_PID"
  log "kafka starting (pid $!)"
}

wait_kafka() {
  local deadline=$((SECONDS + WAIT_S))
  while [ "$SECONDS" -lt "$deadline" ]; do
    if ! kafka_pid >/dev/null; then
      err "kafka exited during startup"
      tail_log "$KAFKA_LOG"
      return 1
    fi
    if kafka_answers; then
      log "kafka up on $HOST:$KAFKA_PORT"
      return 0
    fi
    sleep 0.3
  done
  err "kafka did not answer on $HOST:$KAFKA_PORT within ${WAIT_S}s"
  tail_log "$KAFKA_LOG"
  return 1
}

stop_kafka() {
  local pid
  if pid="$(kafka_pid)"; then
    log "stopping kafka (pid $pid)"
    # Controlled shutdown of a single combined node takes a few seconds; give it 30
    # before SIGKILL so the log is closed cleanly and restarts do not need recovery.
    stop_pid "$pid" 30
    rm -f "$KAFKA_PID"
  else
    log "kafka not running"
  fi
}

# ---------------------------------------------------------------- Redis

ensure_redis_installed() {
  if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then
    return 0
  fi
  log "installing redis-server (Debian)"
  apt_install redis-server redis-tools
  # The package may start the system-wide service (where policy-rc.d allows it); it
  # would hold port 6379 with its own config, so stop and disable it: we run our own.
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now redis-server.service >/dev/null 2>&1 || true
  elif [ -x /etc/init.d/redis-server ]; then
    $SUDO /etc/init.d/redis-server stop >/dev/null 2>&1 || true
  fi
}

redis_pid() { live_pid "$REDIS_PID" "redis-server"; }

redis_answers() {
  [ "$(timeout 2 redis-cli -h "$HOST" -p "$REDIS_PORT" ping 2>/dev/null)" = "PONG" ]
}

render_redis_conf() {
  mkdir -p "$REDIS_DIR"
  cat >"$REDIS_CONF" <<EOF
# Generated by scripts/services.sh; edits are overwritten on each start.
bind $HOST
port $REDIS_PORT
protected-mode yes
daemonize yes
pidfile $REDIS_PID
logfile $REDIS_LOG
dir $REDIS_DIR
loglevel notice
# Redis only caches state derived from Kafka: no RDB snapshots, no AOF.
save ""
appendonly no
# No eviction: a silently dropped allowance key would turn into a wrong decision.
maxmemory-policy noeviction
EOF
}

start_redis_process() {
  local pid
  if pid="$(redis_pid)"; then
    log "redis already running (pid $pid)"
    return 0
  fi
  ensure_redis_installed
  if port_open "$REDIS_PORT"; then
    if redis_answers; then
      # Someone started their own redis on our port (not the one this script manages):
      # tests can use it, but stop-redis cannot stop it. Say so instead of failing.
      err "WARNING: a Redis this script did not start already answers on $HOST:$REDIS_PORT;" \
        "using it (stop-redis cannot stop it)"
      return 0
    fi
    err "port $REDIS_PORT on $HOST is taken by a process this script did not start"
    return 1
  fi
  log "$(redis-server --version)"
  render_redis_conf
  echo "==== $(date -u +%FT%TZ) start" >>"$REDIS_LOG"
  if ! redis-server "$REDIS_CONF"; then
    err "redis-server failed to start"
    tail_log "$REDIS_LOG"
    return 1
  fi
  log "redis starting"
}

wait_redis() {
  local deadline=$((SECONDS + WAIT_S))
  while [ "$SECONDS" -lt "$deadline" ]; do
    if redis_answers; then
      log "redis up on $HOST:$REDIS_PORT"
      return 0
    fi
    sleep 0.1
  done
  err "redis did not answer PING on $HOST:$REDIS_PORT within ${WAIT_S}s"
  tail_log "$REDIS_LOG"
  return 1
}

stop_redis() {
  local pid
  if pid="$(redis_pid)"; then
    log "stopping redis (pid $pid)"
    stop_pid "$pid" 10
    rm -f "$REDIS_PID"
  elif redis_answers; then
    err "a Redis this script did not start answers on $HOST:$REDIS_PORT; not stopping it"
    return 1
  else
    log "redis not running"
  fi
}

# ---------------------------------------------------------------- commands

print_logs() {
  log "logs: ${KAFKA_LOG#"$ROOT"/} (kafka), ${REDIS_LOG#"$ROOT"/} (redis)"
}

cmd_status() {
  local rc=0 pid
  if kafka_answers; then
    pid="$(kafka_pid || echo "not started by this script")"
    echo "kafka: up   $HOST:$KAFKA_PORT (pid $pid)"
  else
    echo "kafka: down"
    rc=1
  fi
  if redis_answers; then
    pid="$(redis_pid || echo "not started by this script")"
    echo "redis: up   $HOST:$REDIS_PORT (pid $pid)"
  else
    echo "redis: down"
    rc=1
  fi
  return "$rc"
}

usage() {
  echo "usage: $0 start|stop|status|restart-kafka|start-kafka|stop-kafka|start-redis|stop-redis" >&2
  exit 2
}

[ $# -eq 1 ] || usage
case "$1" in
  start)
    # Launch both first, then wait: Redis comes up while the JVM boots.
    start_redis_process
    start_kafka_process
    wait_redis
    wait_kafka
    print_logs
    ;;
  stop)
    rc=0
    stop_kafka || rc=1
    stop_redis || rc=1
    exit "$rc"
    ;;
  status) cmd_status ;;
  start-kafka)
    start_kafka_process
    wait_kafka
    ;;
  stop-kafka) stop_kafka ;;
  restart-kafka)
    stop_kafka
    start_kafka_process
    wait_kafka
    ;;
  start-redis)
    start_redis_process
    wait_redis
    ;;
  stop-redis) stop_redis ;;
  *) usage ;;
esac
