#!/usr/bin/env bash
# Local infrastructure as plain processes (no Docker): PostgreSQL 15, Redis 7,
# Kafka 3.9 (KRaft, single node), stripe-mock, plus the GGUF model file.
#
#   infra.sh start    install what is missing, start what is not running, wait until ready,
#                     write <state>/infra.env
#   infra.sh stop     stop everything (safe when nothing runs)
#   infra.sh status   one line per part; exit 0 when all run, 1 otherwise
#   infra.sh env      print <state>/infra.env
#
# State (data, pidfiles, logs, infra.env): $PLATFORM_LOCAL_DIR, default <repo>/.local.
# Installed tools (stripe-mock, Kafka jars) and models stay in <repo>/.local/{tools,models}
# whatever the state dir, so a second instance (tests) reuses them.
# Ports: PG_PORT (55432) REDIS_PORT (56379) KAFKA_PORT (59092) KAFKA_CONTROLLER_PORT (59093)
#        STRIPE_MOCK_PORT (12111) STRIPE_MOCK_HTTPS_PORT (12112)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$REPO_ROOT/infra/local"
STATE="${PLATFORM_LOCAL_DIR:-$REPO_ROOT/.local}"
mkdir -p "$STATE"
STATE="$(cd "$STATE" && pwd)"
TOOLS="$REPO_ROOT/.local/tools"
LOGS="$STATE/logs"

PG_PORT="${PG_PORT:-55432}"
REDIS_PORT="${REDIS_PORT:-56379}"
KAFKA_PORT="${KAFKA_PORT:-59092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-59093}"
STRIPE_MOCK_PORT="${STRIPE_MOCK_PORT:-12111}"
STRIPE_MOCK_HTTPS_PORT="${STRIPE_MOCK_HTTPS_PORT:-12112}"

PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
PG_DATA="$STATE/pg"
PG_RUN="$STATE/run" # unix socket dir
PG_OS_USER="${PG_OS_USER:-postgres}"

KAFKA_VERSION="${KAFKA_VERSION:-3.9.1}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
KAFKA_DIR="$STATE/kafka"
KAFKA_LIBS="$TOOLS/kafka-$KAFKA_VERSION/libs"

STRIPE_MOCK_VERSION="${STRIPE_MOCK_VERSION:-v0.203.0}"
STRIPE_MOCK_BIN="$TOOLS/bin/stripe-mock"

START_TIMEOUT="${INFRA_START_TIMEOUT:-90}" # seconds, per part

log() { echo "[infra] $*" >&2; }
die() { echo "[infra] ERROR: $*" >&2; exit 1; }

# ---------------------------------------------------------------- helpers ----
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pid_alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

read_pid() { [ -f "$1" ] && tr -dc '0-9' <"$1" || true; }

# cmdline_has PID STRING: the process's command line contains STRING (guards pid reuse).
cmdline_has() { [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF -- "$2"; }

# wait_for SECONDS DESCRIPTION LOGFILE CMD...: poll CMD every 0.2 s; on timeout print the log tail and fail.
wait_for() {
  local timeout="$1" what="$2" logfile="$3"; shift 3
  local deadline=$((SECONDS + timeout))
  until "$@"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "[infra] ERROR: $what not ready after ${timeout}s. Last lines of $logfile:" >&2
      tail -n 40 "$logfile" >&2 2>/dev/null || true
      return 1
    fi
    sleep 0.2
  done
}

# wait_exit PID SECONDS: wait for a process to exit; SIGKILL after SECONDS.
wait_exit() {
  local pid="$1" deadline=$((SECONDS + $2))
  while pid_alive "$pid"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "pid $pid still running after $2s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
      return 0
    fi
    sleep 0.2
  done
}

port_busy_error() {
  local who
  who="$(ss -ltnpH "sport = :$1" 2>/dev/null | sed 's/.*users://' | head -1 || true)"
  die "$2: port $1 is already in use by another process ${who:+$who }- set $3 to another port, or stop it"
}

apt_install() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  log "installing Debian packages: $*"
  if ! DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "$@" >"$LOGS/apt.log" 2>&1; then
    $sudo apt-get update -q >>"$LOGS/apt.log" 2>&1 || true
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "$@" >>"$LOGS/apt.log" 2>&1 \
      || { tail -n 20 "$LOGS/apt.log" >&2; die "apt-get install $* failed"; }
  fi
}

# Run as the unprivileged OS user postgres needs when we are root (initdb refuses root).
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u "$PG_OS_USER" -- "$@"; else "$@"; fi
}

# ---------------------------------------------------------------- install ----
install_debs() {
  local missing=()
  [ -x "$PG_BIN/initdb" ] || missing+=(postgresql-15)
  command -v psql >/dev/null || missing+=(postgresql-client-15)
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v redis-cli >/dev/null || missing+=(redis-tools)
  command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
  if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
  if [ "$(id -u)" -eq 0 ] && ! id "$PG_OS_USER" >/dev/null 2>&1; then
    log "creating OS user $PG_OS_USER"
    useradd --system --home-dir /var/lib/postgresql --shell /bin/bash "$PG_OS_USER"
  fi
}

install_kafka() {
  local pom="$HERE/kafka/pom.xml" stamp="$KAFKA_LIBS/.complete" want
  want="$(sha256sum "$pom" | cut -d' ' -f1)"
  [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && return 0
  command -v mvn >/dev/null || apt_install maven
  log "resolving Kafka $KAFKA_VERSION jars from Maven Central into $KAFKA_LIBS"
  rm -rf "$KAFKA_LIBS" && mkdir -p "$KAFKA_LIBS"
  if ! mvn -q -B -f "$pom" -Dkafka.version="$KAFKA_VERSION" dependency:copy-dependencies \
    -DoutputDirectory="$KAFKA_LIBS" >"$LOGS/kafka-mvn.log" 2>&1; then
    tail -n 30 "$LOGS/kafka-mvn.log" >&2
    die "mvn could not resolve Kafka $KAFKA_VERSION"
  fi
  echo "$want" >"$stamp"
}

install_stripe_mock() {
  local stamp="$TOOLS/bin/.stripe-mock.version"
  [ -x "$STRIPE_MOCK_BIN" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$STRIPE_MOCK_VERSION" ] && return 0
  command -v go >/dev/null || die "go is needed to install stripe-mock (go install github.com/stripe/stripe-mock@$STRIPE_MOCK_VERSION)"
  log "installing stripe-mock $STRIPE_MOCK_VERSION into $TOOLS/bin"
  mkdir -p "$TOOLS/bin"
  if ! GOBIN="$TOOLS/bin" GOFLAGS=-buildvcs=false go install "github.com/stripe/stripe-mock@$STRIPE_MOCK_VERSION" \
    >"$LOGS/stripe-mock-install.log" 2>&1; then
    tail -n 20 "$LOGS/stripe-mock-install.log" >&2
    die "go install stripe-mock failed"
  fi
  echo "$STRIPE_MOCK_VERSION" >"$stamp"
}

# Tools are shared between state dirs: serialise their installation.
install_tools() {
  mkdir -p "$TOOLS"
  (
    flock -w 900 7 || die "timed out waiting for $TOOLS/.install.lock"
    install_kafka &
    local k=$!
    install_stripe_mock
    wait "$k"
  ) 7>"$TOOLS/.install.lock"
}

# ---------------------------------------------------------------- postgres ---
pg_running() { as_pg "$PG_BIN/pg_ctl" status -D "$PG_DATA" >/dev/null 2>&1; }

pg_start() {
  if [ -f "$PG_DATA/PG_VERSION" ] && pg_running; then
    log "postgres already running (port $(sed -n 4p "$PG_DATA/postmaster.pid"))"
  else
    port_open "$PG_PORT" && port_busy_error "$PG_PORT" postgres PG_PORT
    [ "${#PG_RUN}" -lt 90 ] || die "unix socket dir path too long for postgres: $PG_RUN"
    mkdir -p "$PG_DATA" "$PG_RUN"
    touch "$LOGS/postgres.log"
    if [ "$(id -u)" -eq 0 ]; then
      chown "$PG_OS_USER": "$PG_DATA" "$PG_RUN" "$LOGS/postgres.log"
      chmod 700 "$PG_DATA"
      as_pg test -x "$STATE" || die "$PG_OS_USER cannot reach $STATE (every parent dir needs o+x)"
    fi
    if [ ! -f "$PG_DATA/PG_VERSION" ]; then
      log "initdb $PG_DATA"
      as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres -E UTF8 --no-locale --no-sync \
        --auth-local=trust --auth-host=scram-sha-256 >"$LOGS/postgres-initdb.log" 2>&1 \
        || { tail -n 20 "$LOGS/postgres-initdb.log" >&2; die "initdb failed"; }
      echo "include_if_exists = 'platform-local.conf'" >>"$PG_DATA/postgresql.conf"
    fi
    # Rewritten on every start so the port can change. Durability is traded for speed (local only).
    cat >"$PG_DATA/platform-local.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_RUN'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
log_min_messages = warning
log_line_prefix = '%m [%p] %q%u@%d '
EOF
    [ "$(id -u)" -ne 0 ] || chown "$PG_OS_USER": "$PG_DATA/platform-local.conf"
    log "starting postgres on 127.0.0.1:$PG_PORT"
    as_pg "$PG_BIN/pg_ctl" start -D "$PG_DATA" -l "$LOGS/postgres.log" -w -t "$START_TIMEOUT" -s \
      >/dev/null 2>&1 9>&- || { tail -n 40 "$LOGS/postgres.log" >&2; die "postgres did not start"; }
  fi
  PG_PORT="$(sed -n 4p "$PG_DATA/postmaster.pid")"
  wait_for "$START_TIMEOUT" postgres "$LOGS/postgres.log" \
    pg_isready -q -h 127.0.0.1 -p "$PG_PORT" -d postgres || die "postgres not accepting connections"
  # Role and database (idempotent, cheap).
  as_pg psql -h "$PG_RUN" -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -qAt >/dev/null <<'SQL' \
    || die "could not create role/database platform"
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'platform') THEN
    CREATE ROLE platform LOGIN SUPERUSER PASSWORD 'platform';
  END IF;
END $$;
SELECT 'CREATE DATABASE platform OWNER platform'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'platform')\gexec
SQL
}

pg_stop() {
  if [ -f "$PG_DATA/PG_VERSION" ] && pg_running; then
    log "stopping postgres"
    as_pg "$PG_BIN/pg_ctl" stop -D "$PG_DATA" -m fast -w -t 60 -s >/dev/null \
      || die "postgres did not stop (see $LOGS/postgres.log)"
  fi
}

pg_status() {
  if [ -f "$PG_DATA/PG_VERSION" ] && pg_running; then
    echo "postgres     running  pid $(sed -n 1p "$PG_DATA/postmaster.pid")  127.0.0.1:$(sed -n 4p "$PG_DATA/postmaster.pid")"
  else
    echo "postgres     stopped"; return 1
  fi
}

# ---------------------------------------------------------------- redis ------
REDIS_PIDFILE="$STATE/redis/redis.pid"

redis_pid() {
  local pid; pid="$(read_pid "$REDIS_PIDFILE")"
  pid_alive "$pid" && cmdline_has "$pid" redis-server && echo "$pid"
}

redis_port_of() { tr '\0' ' ' <"/proc/$1/cmdline" | grep -o ':[0-9]*' | tr -d : | head -1; }

redis_ping() { [ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" = PONG ]; }

redis_start() {
  local pid
  if pid="$(redis_pid)"; then
    REDIS_PORT="$(redis_port_of "$pid")"
    log "redis already running (port $REDIS_PORT)"
  else
    port_open "$REDIS_PORT" && port_busy_error "$REDIS_PORT" redis REDIS_PORT
    mkdir -p "$STATE/redis"
    log "starting redis on 127.0.0.1:$REDIS_PORT"
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --daemonize yes \
      --pidfile "$REDIS_PIDFILE" --logfile "$LOGS/redis.log" --dir "$STATE/redis" \
      --save "" --appendonly no --protected-mode yes 9>&- \
      || { tail -n 20 "$LOGS/redis.log" >&2; die "redis did not start"; }
  fi
  wait_for "$START_TIMEOUT" redis "$LOGS/redis.log" redis_ping "$REDIS_PORT" || die "redis not answering PING"
}

redis_stop() {
  local pid
  if pid="$(redis_pid)"; then
    log "stopping redis"
    redis-cli -h 127.0.0.1 -p "$(redis_port_of "$pid")" shutdown nosave >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
    wait_exit "$pid" 20
  fi
  rm -f "$REDIS_PIDFILE"
}

redis_status() {
  local pid
  if pid="$(redis_pid)"; then echo "redis        running  pid $pid  127.0.0.1:$(redis_port_of "$pid")"
  else echo "redis        stopped"; return 1; fi
}

# ---------------------------------------------------------------- kafka ------
KAFKA_PIDFILE="$KAFKA_DIR/kafka.pid"

kafka_pid() {
  local pid; pid="$(read_pid "$KAFKA_PIDFILE")"
  pid_alive "$pid" && cmdline_has "$pid" "$KAFKA_DIR/server.properties" && echo "$pid"
}

kafka_port_of_config() { sed -n 's/^advertised.listeners=PLAINTEXT:\/\/127.0.0.1://p' "$KAFKA_DIR/server.properties"; }

kafka_write_config() {
  cat >"$KAFKA_DIR/server.properties" <<EOF
# Generated by infra/local/infra.sh on every start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KAFKA_DIR/data
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
auto.create.topics.enable=true
delete.topic.enable=true
group.initial.rebalance.delay.ms=0
log.retention.hours=24
num.network.threads=2
num.io.threads=4
EOF
  cat >"$KAFKA_DIR/log4j.properties" <<'EOF'
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaConfig=WARN
log4j.logger.org.apache.kafka.clients=WARN
log4j.logger.org.apache.kafka.common.config=WARN
log4j.logger.kafka.log.LogCleaner=WARN
log4j.logger.state.change.logger=WARN
EOF
  cat >"$KAFKA_DIR/tools-log4j.properties" <<'EOF'
log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
EOF
}

# Kafka cluster ids are 16 random bytes, base64url without padding, not starting with '-'.
kafka_cluster_id() {
  local id
  while :; do
    id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
    [ "${id:0:1}" != "-" ] && { echo "$id"; return; }
  done
}

KAFKA_LAUNCHED=""

# Starts the broker without waiting (kafka_wait does), so the others start meanwhile:
# storage format (first time) and the JVM run in a background subshell that execs java.
kafka_launch() {
  local pid
  mkdir -p "$KAFKA_DIR"
  if pid="$(kafka_pid)"; then
    KAFKA_PORT="$(kafka_port_of_config)"
    log "kafka already running (port $KAFKA_PORT)"
    return 0
  fi
  port_open "$KAFKA_PORT" && port_busy_error "$KAFKA_PORT" kafka KAFKA_PORT
  port_open "$KAFKA_CONTROLLER_PORT" && port_busy_error "$KAFKA_CONTROLLER_PORT" "kafka controller" KAFKA_CONTROLLER_PORT
  kafka_write_config
  [ -f "$LOGS/kafka.log" ] && mv -f "$LOGS/kafka.log" "$LOGS/kafka.log.1"
  : >"$LOGS/kafka.log"
  local format=""
  if [ ! -f "$KAFKA_DIR/data/meta.properties" ]; then
    [ -s "$KAFKA_DIR/cluster.id" ] || kafka_cluster_id >"$KAFKA_DIR/cluster.id"
    format="$(cat "$KAFKA_DIR/cluster.id")"
    log "formatting kafka storage (cluster id $format)"
  fi
  log "starting kafka $KAFKA_VERSION on 127.0.0.1:$KAFKA_PORT (controller $KAFKA_CONTROLLER_PORT)"
  (
    if [ -n "$format" ] && ! java -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
      -Dlog4j.configuration="file:$KAFKA_DIR/tools-log4j.properties" -cp "$KAFKA_LIBS/*" \
      kafka.tools.StorageTool format -t "$format" -c "$KAFKA_DIR/server.properties" >"$LOGS/kafka-format.log" 2>&1; then
      { echo "kafka storage format failed:"; cat "$LOGS/kafka-format.log"; } >>"$LOGS/kafka.log"
      exit 1
    fi
    # shellcheck disable=SC2086
    exec setsid nohup java $KAFKA_HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
      -Djava.awt.headless=true -Dlog4j.configuration="file:$KAFKA_DIR/log4j.properties" \
      -Dkafka.logs.dir="$LOGS" -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_DIR/server.properties" \
      >>"$LOGS/kafka.log" 2>&1 </dev/null
  ) 9>&- &
  echo $! >"$KAFKA_PIDFILE"
  KAFKA_LAUNCHED=1
}

# Kafka ApiVersions v0 request over bash's /dev/tcp: a real protocol round trip without a JVM.
# Request: size=15, api_key=18, api_version=0, correlation_id=7, client_id="infra".
kafka_api_versions_ok() {
  local reply
  reply="$(
    exec 2>/dev/null
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf '\x00\x00\x00\x0f\x00\x12\x00\x00\x00\x00\x00\x07\x00\x05infra' >&3
    timeout 3 head -c 10 <&3 | od -An -tx1 | tr -d ' \n'
  )" || return 1
  # bytes 4..7 correlation id 7, bytes 8..9 error_code 0
  [ "${reply:8:12}" = "000000070000" ]
}

kafka_started() {
  local pid; pid="$(read_pid "$KAFKA_PIDFILE")"
  pid_alive "$pid" || return 2
  grep -q "Kafka Server started" "$LOGS/kafka.log" 2>/dev/null && kafka_api_versions_ok "$KAFKA_PORT"
}

kafka_wait() {
  local rc=0 deadline=$((SECONDS + START_TIMEOUT))
  if [ -z "$KAFKA_LAUNCHED" ]; then
    wait_for "$START_TIMEOUT" kafka "$LOGS/kafka.log" kafka_api_versions_ok "$KAFKA_PORT" \
      || die "kafka not answering ApiVersions"
    return 0
  fi
  while :; do
    rc=0; kafka_started || rc=$?
    [ "$rc" -eq 0 ] && break
    if [ "$rc" -eq 2 ]; then
      echo "[infra] ERROR: kafka exited during startup. Last lines of $LOGS/kafka.log:" >&2
      tail -n 40 "$LOGS/kafka.log" >&2; exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "[infra] ERROR: kafka not started after ${START_TIMEOUT}s. Last lines of $LOGS/kafka.log:" >&2
      tail -n 40 "$LOGS/kafka.log" >&2; exit 1
    fi
    sleep 0.2
  done
}

kafka_stop() {
  local pid
  if pid="$(kafka_pid)"; then
    log "stopping kafka"
    kill -TERM "$pid" 2>/dev/null || true
    wait_exit "$pid" 60
  fi
  rm -f "$KAFKA_PIDFILE"
}

kafka_status() {
  local pid
  if pid="$(kafka_pid)"; then echo "kafka        running  pid $pid  127.0.0.1:$(kafka_port_of_config)"
  else echo "kafka        stopped"; return 1; fi
}

# ---------------------------------------------------------------- stripe-mock -
STRIPE_PIDFILE="$STATE/stripe-mock/stripe-mock.pid"

stripe_pid() {
  local pid; pid="$(read_pid "$STRIPE_PIDFILE")"
  pid_alive "$pid" && cmdline_has "$pid" stripe-mock && echo "$pid"
}

stripe_port_of() { tr '\0' ' ' <"/proc/$1/cmdline" | sed -n 's/.*-http-addr 127.0.0.1:\([0-9]*\).*/\1/p'; }

stripe_ping() { curl -fsS -o /dev/null -m 2 -u sk_test_123: "http://127.0.0.1:$1/v1/customers?limit=1" 2>/dev/null; }

stripe_launch() {
  local pid
  if pid="$(stripe_pid)"; then
    STRIPE_MOCK_PORT="$(stripe_port_of "$pid")"
    log "stripe-mock already running (port $STRIPE_MOCK_PORT)"
  else
    port_open "$STRIPE_MOCK_PORT" && port_busy_error "$STRIPE_MOCK_PORT" stripe-mock STRIPE_MOCK_PORT
    port_open "$STRIPE_MOCK_HTTPS_PORT" && port_busy_error "$STRIPE_MOCK_HTTPS_PORT" stripe-mock STRIPE_MOCK_HTTPS_PORT
    mkdir -p "$STATE/stripe-mock"
    log "starting stripe-mock on 127.0.0.1:$STRIPE_MOCK_PORT (https $STRIPE_MOCK_HTTPS_PORT)"
    setsid nohup "$STRIPE_MOCK_BIN" -http-addr "127.0.0.1:$STRIPE_MOCK_PORT" \
      -https-addr "127.0.0.1:$STRIPE_MOCK_HTTPS_PORT" >"$LOGS/stripe-mock.log" 2>&1 </dev/null 9>&- &
    echo $! >"$STRIPE_PIDFILE"
  fi
}

stripe_wait() {
  wait_for "$START_TIMEOUT" stripe-mock "$LOGS/stripe-mock.log" stripe_ping "$STRIPE_MOCK_PORT" \
    || die "stripe-mock not answering"
}

stripe_stop() {
  local pid
  if pid="$(stripe_pid)"; then
    log "stopping stripe-mock"
    kill -TERM "$pid" 2>/dev/null || true
    wait_exit "$pid" 10
  fi
  rm -f "$STRIPE_PIDFILE"
}

stripe_status() {
  local pid
  if pid="$(stripe_pid)"; then echo "stripe-mock  running  pid $pid  127.0.0.1:$(stripe_port_of "$pid")"
  else echo "stripe-mock  stopped"; return 1; fi
}

# ---------------------------------------------------------------- commands ---
lock_state() {
  exec 9>"$STATE/.infra.lock"
  flock -w 300 9 || die "another infra.sh holds $STATE/.infra.lock"
}

# Fail before starting anything when a port of a part that is not running is taken.
preflight_ports() {
  if ! { [ -f "$PG_DATA/PG_VERSION" ] && pg_running; }; then
    port_open "$PG_PORT" && port_busy_error "$PG_PORT" postgres PG_PORT
  fi
  if ! redis_pid >/dev/null; then
    port_open "$REDIS_PORT" && port_busy_error "$REDIS_PORT" redis REDIS_PORT
  fi
  if ! kafka_pid >/dev/null; then
    port_open "$KAFKA_PORT" && port_busy_error "$KAFKA_PORT" kafka KAFKA_PORT
    port_open "$KAFKA_CONTROLLER_PORT" && port_busy_error "$KAFKA_CONTROLLER_PORT" "kafka controller" KAFKA_CONTROLLER_PORT
  fi
  if ! stripe_pid >/dev/null; then
    port_open "$STRIPE_MOCK_PORT" && port_busy_error "$STRIPE_MOCK_PORT" stripe-mock STRIPE_MOCK_PORT
    port_open "$STRIPE_MOCK_HTTPS_PORT" && port_busy_error "$STRIPE_MOCK_HTTPS_PORT" stripe-mock STRIPE_MOCK_HTTPS_PORT
  fi
  return 0
}

cmd_start() {
  local t0=$SECONDS model_pid model_path embedding_pid embedding_model_path
  mkdir -p "$LOGS"
  lock_state
  install_debs
  preflight_ports
  # The model is fetched in the background while the rest installs and starts.
  bash "$HERE/model.sh" gguf >"$STATE/.model-path" 2>"$LOGS/model.log" 9>&- &
  model_pid=$!
  bash "$HERE/model.sh" embeddings-gguf >"$STATE/.embedding-model-path" 2>"$LOGS/embedding-model.log" 9>&- &
  embedding_pid=$!
  install_tools
  kafka_launch
  stripe_launch
  redis_start
  pg_start
  stripe_wait
  kafka_wait
  if ! wait "$model_pid"; then cat "$LOGS/model.log" >&2; die "model.sh gguf failed"; fi
  model_path="$(tail -n 1 "$STATE/.model-path")"; rm -f "$STATE/.model-path"
  if ! wait "$embedding_pid"; then cat "$LOGS/embedding-model.log" >&2; die "model.sh embeddings-gguf failed"; fi
  embedding_model_path="$(tail -n 1 "$STATE/.embedding-model-path")"; rm -f "$STATE/.embedding-model-path"
  cat >"$STATE/infra.env.tmp" <<EOF
DATABASE_URL=postgres://platform:platform@127.0.0.1:$PG_PORT/platform
REDIS_URL=redis://127.0.0.1:$REDIS_PORT
KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT
STRIPE_API_BASE=http://127.0.0.1:$STRIPE_MOCK_PORT
MODEL_PATH=$model_path
EMBEDDING_MODEL_PATH=$embedding_model_path
EOF
  mv -f "$STATE/infra.env.tmp" "$STATE/infra.env"
  log "ready in $((SECONDS - t0))s; env in $STATE/infra.env"
  cat "$STATE/infra.env"
}

cmd_stop() {
  mkdir -p "$LOGS"
  lock_state
  # Reverse dependency order is irrelevant here; stop the slow one first in the background.
  kafka_stop &
  local k=$!
  stripe_stop
  redis_stop
  pg_stop
  wait "$k"
  log "stopped ($STATE)"
}

cmd_status() {
  local rc=0
  echo "state: $STATE"
  pg_status || rc=1
  redis_status || rc=1
  kafka_status || rc=1
  stripe_status || rc=1
  return $rc
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  env) [ -f "$STATE/infra.env" ] && cat "$STATE/infra.env" || die "no $STATE/infra.env (run start)" ;;
  *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
