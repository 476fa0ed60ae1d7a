#!/usr/bin/env bash
# Start, stop and inspect the real backends Weaver's live suites talk to,
# without Docker: the same services as docker-compose.dev.yml, installed from
# the package registries and run as plain processes on loopback.
#
#   scripts/services.sh up     [service...]   install what is missing, start, wait until ready
#   scripts/services.sh down   [service...]   stop what this script started (by pid)
#   scripts/services.sh status [service...]   one line per service; exit 1 if any is down
#   scripts/services.sh env    [service...]   `export` lines for the live suites / exit gate
#
# Services: postgres redis neo4j mindsdb (none given = all four).
#
# Everything is idempotent: `up` on a running set returns in seconds without
# reinstalling or restarting anything. Caches (Neo4j jars, MindsDB venv) and
# state (data, pid files, logs) live outside the checkout:
#
#   WEAVER_CACHE_DIR   default ${XDG_CACHE_HOME:-$HOME/.cache}/weaver
#   WEAVER_STATE_DIR   default $WEAVER_CACHE_DIR/state   (logs in $WEAVER_STATE_DIR/logs)
#
# Other knobs (defaults are the dev values of docker-compose.dev.yml):
#   NEO4J_PASSWORD                 default weaver_dev_password (>= 8 chars)
#   MINDSDB_USER, MINDSDB_PASSWORD when both set, MindsDB HTTP auth is enabled
#   WEAVER_SERVICE_TIMEOUT         seconds to wait for each service (default per service)
#   WEAVER_PG_PORT (5433), WEAVER_PG_CLUSTER (weaver), WEAVER_REDIS_PORT (6379),
#   WEAVER_NEO4J_BOLT_PORT (7687), WEAVER_MINDSDB_PORT (47334)
#                                  a second, separate set (with its own
#                                  WEAVER_STATE_DIR) can run beside the first
set -euo pipefail

# ---------------------------------------------------------------- settings --

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE_DIR=${WEAVER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/weaver}
STATE_DIR=${WEAVER_STATE_DIR:-$CACHE_DIR/state}
LOG_DIR=$STATE_DIR/logs
RUN_DIR=$STATE_DIR/run

ALL_SERVICES=(postgres redis neo4j mindsdb)
HOST=127.0.0.1   # every service listens on loopback only

# PostgreSQL: a dedicated cluster (not Debian's "main") so that its port,
# settings and lifetime belong to this script. Port 5433 is the host port the
# seed's compose file and E2E DSN use.
PG_VERSION=15
PG_CLUSTER=${WEAVER_PG_CLUSTER:-weaver}
PG_PORT=${WEAVER_PG_PORT:-5433}
PG_USER=sample_user
PG_PASSWORD=sample_password
PG_DB_ENTERPRISE=sample_enterprise
PG_DB_CRM=sample_crm
PG_DB_META=weaver_meta
PG_FIXTURES=("$PG_DB_ENTERPRISE:tests/fixtures/sample_schema.sql" "$PG_DB_CRM:tests/fixtures/sample_crm.sql")

REDIS_PORT=${WEAVER_REDIS_PORT:-6379}

# Neo4j 5.26 (LTS) is the last line on Java 17; 5.26.30 is its newest patch
# and its runtime jars all resolve from the registry reachable here. Passed
# to Maven as -Dneo4j.version, overriding the pom's default.
NEO4J_VERSION=5.26.30
NEO4J_BOLT_PORT=${WEAVER_NEO4J_BOLT_PORT:-7687}
NEO4J_USER=${NEO4J_USER:-neo4j}
NEO4J_PASSWORD=${NEO4J_PASSWORD:-weaver_dev_password}
NEO4J_HEAP=${NEO4J_HEAP:-768m}
NEO4J_PAGECACHE_MB=${NEO4J_PAGECACHE_MB:-128}
NEO4J_LIB=$CACHE_DIR/neo4j-$NEO4J_VERSION/lib

MINDSDB_VERSION=26.1.0
MINDSDB_PORT=${WEAVER_MINDSDB_PORT:-47334}
MINDSDB_VENV=$CACHE_DIR/mindsdb-$MINDSDB_VERSION-venv
MINDSDB_USER=${MINDSDB_USER:-}
MINDSDB_PASSWORD=${MINDSDB_PASSWORD:-}

# ----------------------------------------------------------------- helpers --

log() { printf '[services] %s\n' "$*" >&2; }
die() { printf '[services] ERROR: %s\n' "$*" >&2; exit 1; }

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
elapsed() { local ms=$(( $(now_ms) - $1 )); printf '%d.%01ds' $((ms / 1000)) $(((ms % 1000) / 100)); }

# Commands that need root (apt, the postgres cluster). CI and dev machines
# here run as root; elsewhere fall back to sudo.
as_root() { if [[ $EUID -eq 0 ]]; then "$@"; else sudo "$@"; fi; }
as_postgres() {
  if [[ $EUID -eq 0 ]]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi
}

# True when something accepts TCP connections on $HOST:$1.
port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null; }

# MindsDB's default port lies inside Linux's ephemeral range (32768-60999), so
# any outgoing connection of this machine may be handed it as its local port,
# and the server then fails to bind ("address already in use") while its main
# process stays up. As root, take it out of that range (best effort).
reserve_port() {
  local port=$1 file=/proc/sys/net/ipv4/ip_local_reserved_ports low high current
  read -r low high < /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || return 0
  (( port >= low && port <= high )) || return 0
  [[ -w $file ]] || return 0
  current=$(cat "$file")
  [[ ,$current, == *",$port,"* ]] && return 0
  echo "${current:+$current,}$port" > "$file" 2>/dev/null \
    && log "reserved port $port (outside the ephemeral range from now on)" || true
}

# Who listens on a port, for error messages.
port_owner() { (ss -ltnpH "sport = :$1" 2>/dev/null || true) | sed -n 's/.*users:((\(.*\)))/\1/p' | head -1; }

# Pid recorded in $RUN_DIR/<name>.pid if that process is alive and its command
# line still contains <pattern> (guards against a recycled pid).
live_pid() {
  local name=$1 pattern=$2 pid
  [[ -s $RUN_DIR/$name.pid ]] || return 1
  pid=$(head -1 "$RUN_DIR/$name.pid")
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$pattern" || return 1
  echo "$pid"
}

# Stop a process group we started with setsid (the pid is the group leader),
# TERM first, KILL after a grace period.
stop_group() {
  local name=$1 pid=$2 grace=${3:-30} i
  log "$name: stopping pid $pid"
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  # Wait for the whole group: MindsDB's worker processes hold its port
  # until they exit, and a restart must find the port free.
  for ((i = 0; i < grace * 5; i++)); do
    kill -0 -- "-$pid" 2>/dev/null || kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 -- "-$pid" 2>/dev/null || kill -0 "$pid" 2>/dev/null; then
    log "$name: still running after ${grace}s, killing"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$RUN_DIR/$name.pid" "$RUN_DIR/$name.key"
}

# Start "$@" detached in its own session (so Ctrl-C on this script or the end
# of a CI step's process group does not take it down by accident) and record
# its pid. Output goes to $LOG_DIR/<name>.log; the previous log is kept as .1.
spawn() {
  local name=$1; shift
  [[ -f $LOG_DIR/$name.log ]] && mv -f "$LOG_DIR/$name.log" "$LOG_DIR/$name.log.1"
  rm -f "$RUN_DIR/$name.pid"
  # The inner shell writes its own pid, then execs: the recorded pid is the
  # service itself and the leader of its process group.
  # 9>&-: do not hand the lock of take_lock to a long-lived server.
  setsid bash -c 'echo $$ > "$0"; exec "$@"' "$RUN_DIR/$name.pid" "$@" \
    </dev/null >>"$LOG_DIR/$name.log" 2>&1 9>&- &
  local i
  for ((i = 0; i < 50; i++)); do [[ -s $RUN_DIR/$name.pid ]] && return 0; sleep 0.1; done
  die "$name: failed to launch (see $LOG_DIR/$name.log)"
}

service_timeout() {  # $1 = default seconds
  echo "${WEAVER_SERVICE_TIMEOUT:-$1}"
}

# What a long-running server was started with (version, launcher, settings),
# hashed because a password can be part of it. `up` restarts a running
# server only when this changed, and otherwise leaves it alone.
start_key() { printf '%s\n' "$@" | sha256sum | cut -d' ' -f1; }
key_current() { [[ -f $RUN_DIR/$1.key && $(cat "$RUN_DIR/$1.key") == "$2" ]]; }

# After a version bump, drop the caches of other versions (100 MB to 1 GB
# each) once the new one is serving; nothing runs from them any more.
prune_old_caches() {  # glob-in-cache-dir keep-name
  local d
  for d in "$CACHE_DIR"/$1; do
    [[ -d $d && $(basename "$d") != "$2" ]] || continue
    log "removing the cache of another version: $d"
    rm -rf "$d"
  done
}

fail_with_log() {  # name logfile message
  local name=$1 logfile=$2; shift 2
  if [[ -f $logfile ]]; then
    printf '[services] --- last lines of %s ---\n' "$logfile" >&2
    tail -n 30 "$logfile" >&2 || true
  fi
  die "$name: $* (log: $logfile)"
}

# Install Debian packages that are not installed yet. `apt-get update` runs
# only when something is missing, so warm runs never touch the network.
apt_ensure() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  log "apt: installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# ---------------------------------------------------------------- postgres --

pg_bin() { echo "/usr/lib/postgresql/$PG_VERSION/bin/$1"; }
pg_log() { echo "/var/log/postgresql/postgresql-$PG_VERSION-$PG_CLUSTER.log"; }
pg_cluster_exists() { [[ -f /etc/postgresql/$PG_VERSION/$PG_CLUSTER/postgresql.conf ]]; }
pg_running() { pg_cluster_exists && as_root pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" status >/dev/null 2>&1; }

# psql as the superuser over the cluster's unix socket (peer auth).
pg_admin() { as_postgres psql -X -q -v ON_ERROR_STOP=1 -p "$PG_PORT" -d postgres "$@"; }
# psql as the application user over TCP, exactly as clients connect.
pg_app() {
  PGPASSWORD=$PG_PASSWORD PGOPTIONS=--client-min-messages=warning psql -X -q -v ON_ERROR_STOP=1 -h "$HOST" -p "$PG_PORT" -U "$PG_USER" "$@"
}

pg_ready() {
  pg_running && [[ $(pg_app -d postgres -Atc 'select 1' 2>/dev/null) == 1 ]]
}

pg_install() {
  apt_ensure "postgresql-$PG_VERSION" "postgresql-client-$PG_VERSION"
  if ! pg_cluster_exists; then
    log "postgres: creating cluster $PG_VERSION/$PG_CLUSTER on port $PG_PORT"
    # --start-conf=manual: only this script starts it, never an init script.
    as_root pg_createcluster "$PG_VERSION" "$PG_CLUSTER" -p "$PG_PORT" --start-conf=manual \
      -- --auth-local=peer --auth-host=scram-sha-256 >"$LOG_DIR/postgres-create.log" 2>&1 \
      || fail_with_log postgres "$LOG_DIR/postgres-create.log" "pg_createcluster failed"
  fi
  pg_configure
}

# Settings go to conf.d (included by Debian's postgresql.conf) so that the
# generated postgresql.conf stays untouched. Sets PG_CONF_CHANGED=1 when the
# file had to be (re)written, so that pg_start restarts a running cluster.
PG_CONF_CHANGED=0
pg_configure() {
  local file=/etc/postgresql/$PG_VERSION/$PG_CLUSTER/conf.d/weaver.conf content
  content="# Written by scripts/services.sh; edits are overwritten.
listen_addresses = '$HOST'
port = $PG_PORT
max_connections = 200
# Throwaway dev/test data: durability is not needed, and fixture loads and
# test writes are several times faster without it.
fsync = off
synchronous_commit = off
full_page_writes = off"
  if [[ -f $file && $(cat "$file") == "$content" ]]; then return 0; fi
  printf '%s\n' "$content" | as_root tee "$file" >/dev/null
  as_root chown postgres:postgres "$file"
  PG_CONF_CHANGED=1
}

pg_start() {
  if pg_running; then
    if ((PG_CONF_CHANGED)); then
      log "postgres: settings changed, restarting cluster $PG_VERSION/$PG_CLUSTER"
      as_root pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" "$PG_CLUSTER" restart -m fast >&2 9>&- \
        || fail_with_log postgres "$(pg_log)" "pg_ctlcluster restart failed"
    fi
    return 0
  fi
  if port_open "$PG_PORT"; then
    die "postgres: port $PG_PORT is already used by another process ($(port_owner "$PG_PORT"))"
  fi
  # The socket directory lives in /run, which does not survive a reboot.
  as_root install -d -o postgres -g postgres -m 2775 /var/run/postgresql
  log "postgres: starting cluster $PG_VERSION/$PG_CLUSTER"
  as_root pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" "$PG_CLUSTER" start >&2 9>&- \
    || fail_with_log postgres "$(pg_log)" "pg_ctlcluster start failed"
}

pg_wait() {
  local deadline=$(( $(date +%s) + $(service_timeout 60) ))
  until as_postgres "$(pg_bin pg_isready)" -q -h "$HOST" -p "$PG_PORT" \
      && [[ $(pg_admin -Atc 'select 1' 2>/dev/null) == 1 ]]; do
    (( $(date +%s) < deadline )) || fail_with_log postgres "$(pg_log)" "not ready on $HOST:$PG_PORT in time"
    sleep 0.3
  done
}

# Role and databases: idempotent statements, cheap enough to run every time.
pg_provision() {
  pg_admin <<SQL
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_USER') THEN
    CREATE ROLE $PG_USER LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
  ELSE
    ALTER ROLE $PG_USER LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
  END IF;
END
\$\$;
SQL
  if [[ -z $(pg_admin -Atc "select 1 from pg_database where datname = '$PG_DB_META'") ]]; then
    log "postgres: creating database $PG_DB_META"
    pg_admin -c "CREATE DATABASE $PG_DB_META OWNER $PG_USER"
  fi
  local entry
  for entry in "${PG_FIXTURES[@]}"; do
    pg_load_fixture "${entry%%:*}" "$REPO_ROOT/${entry#*:}"
  done
}

# (Re)create database $1 from SQL file $2 unless it already holds exactly that
# file. The file's sha256 is kept as the database comment, written only after
# the load committed, so a failed or interrupted load is retried next time and
# an edited fixture is picked up. The comment keeps the marker out of the
# schemas that introspection tests look at.
pg_load_fixture() {
  local db=$1 file=$2 sum marker current
  [[ -f $file ]] || die "postgres: fixture $file not found"
  sum=$(sha256sum "$file" | cut -d' ' -f1)
  marker="weaver-fixture $(basename "$file") sha256:$sum"
  current=$(pg_admin -Atc "select coalesce(shobj_description(oid, 'pg_database'), '') from pg_database where datname = '$db'")
  [[ $current == "$marker" ]] && return 0
  local t0; t0=$(now_ms)
  if [[ -n $(pg_admin -Atc "select 1 from pg_database where datname = '$db'") ]]; then
    log "postgres: $db holds another fixture version, reloading from $(basename "$file")"
    # FORCE: a MindsDB integration or a test may still hold a connection.
    pg_admin -c "DROP DATABASE $db WITH (FORCE)"
  else
    log "postgres: loading $db from $(basename "$file")"
  fi
  pg_admin -c "CREATE DATABASE $db OWNER $PG_USER"
  # Loaded as the application user so that it owns every object, in one
  # transaction so that a failure leaves no half-loaded schema behind.
  pg_app -d "$db" -1 -f "$file" >/dev/null || die "postgres: loading $file into $db failed (see above)"
  pg_admin -c "COMMENT ON DATABASE $db IS '$marker'"
  log "postgres: $db loaded in $(elapsed "$t0")"
}

postgres_up() {
  pg_install
  pg_start
  pg_wait
  pg_provision
  ln -sfn "$(pg_log)" "$LOG_DIR/postgres.log"
  # postmaster.pid's first line is the server pid; kept for status output.
  as_root head -1 "/var/lib/postgresql/$PG_VERSION/$PG_CLUSTER/postmaster.pid" > "$RUN_DIR/postgres.pid"
}

postgres_down() {
  if pg_running; then
    log "postgres: stopping cluster $PG_VERSION/$PG_CLUSTER"
    as_root pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" "$PG_CLUSTER" stop -m fast >&2
  fi
  rm -f "$RUN_DIR/postgres.pid"
}

postgres_status() {
  if pg_ready; then
    echo "postgres up   $HOST:$PG_PORT pid $(cat "$RUN_DIR/postgres.pid" 2>/dev/null || echo '?') cluster $PG_VERSION/$PG_CLUSTER"
  else
    echo "postgres down $HOST:$PG_PORT"; return 1
  fi
}

# ------------------------------------------------------------------- redis --

redis_ping() { [[ $(redis-cli -h "$HOST" -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]; }

redis_up() {
  apt_ensure redis-server
  if live_pid redis redis-server >/dev/null && redis_ping; then return 0; fi
  if port_open "$REDIS_PORT"; then
    # Debian's redis-server package starts its own instance on 6379 on
    # machines whose init system allows it. A Redis that answers is as good
    # for the tests; it is used but never stopped by `down`.
    redis_ping || die "redis: port $REDIS_PORT is used by a process that is not Redis ($(port_owner "$REDIS_PORT"))"
    log "redis: using the Redis already listening on $HOST:$REDIS_PORT (not started by this script)"
    return 0
  fi
  mkdir -p "$STATE_DIR/redis"
  log "redis: starting on $HOST:$REDIS_PORT"
  rm -f "$RUN_DIR/redis.pid"
  # No persistence: the guard's data is disposable and the tests must not
  # depend on what a previous run left behind.
  redis-server --daemonize yes --bind "$HOST" --port "$REDIS_PORT" \
    --save "" --appendonly no --dir "$STATE_DIR/redis" \
    --pidfile "$RUN_DIR/redis.pid" --logfile "$LOG_DIR/redis.log" 9>&- \
    || fail_with_log redis "$LOG_DIR/redis.log" "redis-server failed to start"
  local deadline=$(( $(date +%s) + $(service_timeout 20) ))
  until redis_ping; do
    (( $(date +%s) < deadline )) || fail_with_log redis "$LOG_DIR/redis.log" "no PONG on $HOST:$REDIS_PORT in time"
    sleep 0.1
  done
}

redis_down() {
  local pid
  if pid=$(live_pid redis redis-server); then
    log "redis: stopping pid $pid"
    kill -TERM "$pid"
    local i; for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$RUN_DIR/redis.pid"
}

redis_status() {
  local pid
  if redis_ping; then
    pid=$(live_pid redis redis-server) || pid="external"
    echo "redis    up   $HOST:$REDIS_PORT pid $pid"
  else
    echo "redis    down $HOST:$REDIS_PORT"; return 1
  fi
}

# ------------------------------------------------------------------- neo4j --

# A Bolt handshake: magic 0x6060B017, then four version proposals (5.x and
# 4.4); a Bolt server answers with the 4-byte version it picked, all zeros
# meaning none. Proves the port speaks Bolt without a client library.
bolt_handshake() {
  timeout 3 bash -c '
    exec 3<>/dev/tcp/$0/$1 || exit 1
    printf "\x60\x60\xb0\x17\x00\x08\x08\x05\x00\x00\x04\x04\x00\x00\x00\x00\x00\x00\x00\x00" >&3
    v=$(head -c 4 <&3 | od -An -tx1 | tr -d " \n")
    [[ ${#v} -eq 8 && $v != 00000000 ]]
  ' "$HOST" "$NEO4J_BOLT_PORT" 2>/dev/null
}

neo4j_install() {
  command -v javac >/dev/null && command -v mvn >/dev/null || apt_ensure openjdk-17-jdk-headless maven
  local major
  major=$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')
  (( ${major%%.*} >= 17 )) || die "neo4j: Java 17+ is required, found $major"
  local dir=${NEO4J_LIB%/lib}
  [[ -f $dir/.complete ]] && return 0
  log "neo4j: fetching org.neo4j:neo4j:$NEO4J_VERSION and its runtime dependencies"
  rm -rf "$dir" && mkdir -p "$dir"
  # Copy into a temporary folder and mark complete only at the end, so an
  # interrupted download is redone rather than half-used.
  (cd "$REPO_ROOT/scripts/neo4j" && mvn -B -q -Dstyle.color=never dependency:copy-dependencies \
      -Dneo4j.version="$NEO4J_VERSION" -DincludeScope=runtime -DoutputDirectory="$dir/lib.tmp" \
      >"$LOG_DIR/neo4j-fetch.log" 2>&1) \
    || fail_with_log neo4j "$LOG_DIR/neo4j-fetch.log" "mvn could not fetch org.neo4j:neo4j:$NEO4J_VERSION"
  mv "$dir/lib.tmp" "$NEO4J_LIB"
  touch "$dir/.complete"
}

neo4j_key() {
  start_key "$NEO4J_VERSION" "$(sha256sum < "$REPO_ROOT/scripts/neo4j/Launcher.java")" \
    "$NEO4J_BOLT_PORT" "$NEO4J_HEAP" "$NEO4J_PAGECACHE_MB" "$NEO4J_USER" "$NEO4J_PASSWORD"
}

neo4j_start() {
  local key=$1
  if port_open "$NEO4J_BOLT_PORT"; then
    die "neo4j: port $NEO4J_BOLT_PORT is already used by another process ($(port_owner "$NEO4J_BOLT_PORT"))"
  fi
  (( ${#NEO4J_PASSWORD} >= 8 )) || die "neo4j: NEO4J_PASSWORD must be at least 8 characters"
  mkdir -p "$STATE_DIR/neo4j"
  log "neo4j: starting $NEO4J_VERSION, Bolt on $HOST:$NEO4J_BOLT_PORT"
  # Launcher.java runs as a single-file source program (no build step); see
  # the file for what it does before it reports ready.
  NEO4J_HOME_DIR=$STATE_DIR/neo4j NEO4J_BOLT_HOST=$HOST NEO4J_BOLT_PORT=$NEO4J_BOLT_PORT \
  NEO4J_USER=$NEO4J_USER NEO4J_PASSWORD=$NEO4J_PASSWORD NEO4J_PAGECACHE_MB=$NEO4J_PAGECACHE_MB \
    spawn neo4j java -Xms256m "-Xmx$NEO4J_HEAP" -XX:+UseG1GC -XX:+ExitOnOutOfMemoryError \
      -cp "$NEO4J_LIB/*" "$REPO_ROOT/scripts/neo4j/Launcher.java"
  echo "$key" > "$RUN_DIR/neo4j.key"
}

neo4j_wait() {
  local deadline=$(( $(date +%s) + $(service_timeout 180) )) pid
  until grep -q '^WEAVER_NEO4J_READY' "$LOG_DIR/neo4j.log" 2>/dev/null && bolt_handshake; do
    # Already running from an earlier `up`: the log was not rotated, so the
    # ready line is there; a process that died will never print it.
    pid=$(live_pid neo4j Launcher.java) || fail_with_log neo4j "$LOG_DIR/neo4j.log" "launcher exited before it was ready"
    (( $(date +%s) < deadline )) || fail_with_log neo4j "$LOG_DIR/neo4j.log" "not ready on bolt://$HOST:$NEO4J_BOLT_PORT in time"
    sleep 0.5
  done
}

neo4j_up() {
  local key pid
  key=$(neo4j_key)
  # Fetch first: a new version goes to its own lib folder, so the running
  # server keeps serving while it downloads.
  neo4j_install
  if pid=$(live_pid neo4j Launcher.java); then
    if key_current neo4j "$key"; then
      neo4j_wait
      prune_old_caches "neo4j-*" "neo4j-$NEO4J_VERSION"
      return 0
    fi
    log "neo4j: version, launcher or settings changed since it started, restarting"
    stop_group neo4j "$pid" 60
  fi
  neo4j_start "$key"
  neo4j_wait
  prune_old_caches "neo4j-*" "neo4j-$NEO4J_VERSION"
}

neo4j_down() {
  local pid
  if pid=$(live_pid neo4j Launcher.java); then stop_group neo4j "$pid" 60; fi
  rm -f "$RUN_DIR/neo4j.pid"
}

neo4j_status() {
  local pid
  if pid=$(live_pid neo4j Launcher.java) && bolt_handshake; then
    echo "neo4j    up   bolt://$HOST:$NEO4J_BOLT_PORT pid $pid version $NEO4J_VERSION"
  else
    echo "neo4j    down bolt://$HOST:$NEO4J_BOLT_PORT"; return 1
  fi
}

# ----------------------------------------------------------------- mindsdb --

mindsdb_url() { echo "http://$HOST:$MINDSDB_PORT"; }

# Run one SQL statement through MindsDB's HTTP API and print the JSON answer.
# Logs in first when HTTP auth is configured (token auth; Basic is refused).
mindsdb_sql() {
  MDB_URL=$(mindsdb_url) MDB_USER=$MINDSDB_USER MDB_PASSWORD=$MINDSDB_PASSWORD \
    "$MINDSDB_VENV/bin/python" - "$1" <<'PY'
import json, os, sys, urllib.request
url, user, pw = os.environ["MDB_URL"], os.environ["MDB_USER"], os.environ["MDB_PASSWORD"]
headers = {"Content-Type": "application/json"}
def post(path, body):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), headers=headers)
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.load(r)
if user and pw:
    headers["Authorization"] = "Bearer " + post("/api/login", {"username": user, "password": pw})["token"]
print(json.dumps(post("/api/sql/query", {"query": sys.argv[1]})))
PY
}

mindsdb_status_ok() {
  [[ -x $MINDSDB_VENV/bin/python ]] || return 1
  curl -fsS --max-time 3 "$(mindsdb_url)/api/status" >/dev/null 2>&1
}

# `SELECT 1` answered as a table: the SQL layer works, not only the web server.
mindsdb_query_ok() {
  mindsdb_sql 'SELECT 1 AS one' 2>/dev/null | grep -q '"type": "table"'
}

MINDSDB_CONSTRAINTS=$REPO_ROOT/scripts/mindsdb/constraints.txt
# The venv is reused only if it was completed for this very constraints
# file; an interrupted or outdated install is rebuilt from scratch.
mindsdb_venv_want() {
  echo "mindsdb==$MINDSDB_VERSION constraints:$(sha256sum "$MINDSDB_CONSTRAINTS" | cut -d' ' -f1)"
}
mindsdb_venv_current() {
  [[ -f $MINDSDB_VENV/.weaver-complete && $(cat "$MINDSDB_VENV/.weaver-complete") == "$(mindsdb_venv_want)" ]]
}

mindsdb_install() {
  mindsdb_venv_current && return 0
  local constraints=$MINDSDB_CONSTRAINTS want
  want=$(mindsdb_venv_want)
  command -v python3.11 >/dev/null || apt_ensure python3.11 python3.11-venv
  python3.11 -c 'import ensurepip, venv' 2>/dev/null || apt_ensure python3.11-venv
  log "mindsdb: installing mindsdb==$MINDSDB_VERSION into $MINDSDB_VENV (about 1 GB)"
  rm -rf "$MINDSDB_VENV"
  python3.11 -m venv "$MINDSDB_VENV"
  local pip=("$MINDSDB_VENV/bin/pip" install -q --disable-pip-version-check)
  # uv fetches and installs the ~200 packages in parallel: about a minute on
  # a cold cache where pip took 3 to 9. pip stays the fallback.
  if "${pip[@]}" uv >&2; then
    "$MINDSDB_VENV/bin/uv" pip install -q --compile-bytecode --python "$MINDSDB_VENV/bin/python" \
      -c "$constraints" "mindsdb==$MINDSDB_VERSION" >&2 \
      || die "mindsdb: uv pip install mindsdb==$MINDSDB_VERSION failed"
  else
    "${pip[@]}" -c "$constraints" "mindsdb==$MINDSDB_VERSION" >&2 \
      || die "mindsdb: pip install mindsdb==$MINDSDB_VERSION failed"
  fi
  # The postgres handler imports psycopg (v3), which mindsdb pulls in today;
  # fail here, not at the first CREATE DATABASE, if that ever changes.
  "$MINDSDB_VENV/bin/python" -c 'import psycopg; psycopg.pq.version()
import mindsdb.integrations.handlers.postgres_handler.postgres_handler' \
    || die "mindsdb: the postgres handler or its driver (psycopg) does not import"
  echo "$want" > "$MINDSDB_VENV/.weaver-complete"
}

# The config passed with --config: loopback only, no GUI, and HTTP auth when
# MINDSDB_USER/MINDSDB_PASSWORD are both set.
mindsdb_write_config() {
  local cfg=$STATE_DIR/mindsdb/config.json new
  new=$(MDB_USER=$MINDSDB_USER MDB_PASSWORD=$MINDSDB_PASSWORD python3.11 - "$HOST" "$MINDSDB_PORT" <<'PY'
import json, os, sys
cfg = {
    "api": {"http": {"host": sys.argv[1], "port": sys.argv[2]}},
    "gui": {"open_on_start": False, "autoupdate": False},
}
if os.environ["MDB_USER"] and os.environ["MDB_PASSWORD"]:
    cfg["auth"] = {"http_auth_enabled": True,
                   "username": os.environ["MDB_USER"], "password": os.environ["MDB_PASSWORD"]}
print(json.dumps(cfg, indent=2, sort_keys=True))
PY
)
  mkdir -p "$STATE_DIR/mindsdb"
  (umask 077; printf '%s\n' "$new" > "$cfg")
}

mindsdb_key() {
  start_key "$(mindsdb_venv_want)" "$MINDSDB_PORT" "$MINDSDB_USER" "$MINDSDB_PASSWORD"
}

mindsdb_start() {
  local key=$1
  if [[ -n $MINDSDB_USER || -n $MINDSDB_PASSWORD ]] && [[ -z $MINDSDB_USER || -z $MINDSDB_PASSWORD ]]; then
    die "mindsdb: set both MINDSDB_USER and MINDSDB_PASSWORD, or neither"
  fi
  if port_open "$MINDSDB_PORT"; then
    die "mindsdb: port $MINDSDB_PORT is already used by another process ($(port_owner "$MINDSDB_PORT"))"
  fi
  mindsdb_write_config
  mkdir -p "$STATE_DIR/mindsdb/storage"
  log "mindsdb: starting $MINDSDB_VERSION on $(mindsdb_url)"
  # MindsDB reads MINDSDB_USERNAME/MINDSDB_PASSWORD itself and refuses to
  # start when only one is set; auth comes from the config file instead, so
  # keep our variables out of its environment.
  (cd "$STATE_DIR/mindsdb" && MINDSDB_STORAGE_DIR=$STATE_DIR/mindsdb/storage \
    spawn mindsdb env -u MINDSDB_USERNAME -u MINDSDB_PASSWORD -u MINDSDB_USER \
      "$MINDSDB_VENV/bin/python" -m mindsdb --api=http --no_studio \
      "--config=$STATE_DIR/mindsdb/config.json")
  echo "$key" > "$RUN_DIR/mindsdb.key"
}

# Returns 2 when the HTTP API could not bind its port: the process lives on
# without it, so waiting longer would not help, but starting again does.
mindsdb_wait() {
  local deadline=$(( $(date +%s) + $(service_timeout 300) ))
  until mindsdb_status_ok && mindsdb_query_ok; do
    live_pid mindsdb 'mindsdb --api=http' >/dev/null \
      || fail_with_log mindsdb "$LOG_DIR/mindsdb.log" "server exited before it was ready"
    grep -q "http API cant start" "$LOG_DIR/mindsdb.log" 2>/dev/null && return 2
    (( $(date +%s) < deadline )) || fail_with_log mindsdb "$LOG_DIR/mindsdb.log" "not ready on $(mindsdb_url) in time"
    sleep 1
  done
}

mindsdb_up() {
  local key pid attempt status=0
  key=$(mindsdb_key)
  if pid=$(live_pid mindsdb 'mindsdb --api=http'); then
    if key_current mindsdb "$key"; then
      mindsdb_wait || status=$?
      if ((status == 0)); then
        prune_old_caches "mindsdb-*-venv" "mindsdb-$MINDSDB_VERSION-venv"
        return 0
      fi
      log "mindsdb: running without its HTTP API (port $MINDSDB_PORT was taken), restarting"
    else
      # The venv is rebuilt in place, so the server has to stop first.
      log "mindsdb: venv or auth settings changed since it started, restarting"
    fi
    stop_group mindsdb "$pid" 30
  fi
  mindsdb_install
  reserve_port "$MINDSDB_PORT"
  for attempt in 1 2 3; do
    mindsdb_start "$key"
    status=0
    mindsdb_wait || status=$?
    ((status == 2)) || break
    log "mindsdb: its HTTP API could not bind port $MINDSDB_PORT (attempt $attempt), starting again"
    stop_group mindsdb "$(live_pid mindsdb 'mindsdb --api=http')" 30
  done
  ((status == 0)) || fail_with_log mindsdb "$LOG_DIR/mindsdb.log" "its HTTP API could not bind port $MINDSDB_PORT"
  prune_old_caches "mindsdb-*-venv" "mindsdb-$MINDSDB_VERSION-venv"
}

# Once per venv: prove the postgres handler really connects, with a real
# CREATE DATABASE against sample_enterprise, then drop it.
mindsdb_check_pg_handler() {
  local marker=$MINDSDB_VENV/.weaver-pg-handler-ok name out
  [[ -f $marker ]] && return 0
  name=weaver_probe_$$
  log "mindsdb: checking the postgres handler against $PG_DB_ENTERPRISE"
  out=$(mindsdb_sql "CREATE DATABASE $name WITH ENGINE = \"postgres\", PARAMETERS = {\"host\": \"$HOST\", \"port\": $PG_PORT, \"database\": \"$PG_DB_ENTERPRISE\", \"user\": \"$PG_USER\", \"password\": \"$PG_PASSWORD\"}")
  [[ $out == *'"type": "ok"'* ]] || fail_with_log mindsdb "$LOG_DIR/mindsdb.log" "postgres handler check failed: $out"
  out=$(mindsdb_sql "SELECT * FROM $name (SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = 'sales')")
  mindsdb_sql "DROP DATABASE $name" >/dev/null
  [[ $out == *'"type": "table"'* ]] || fail_with_log mindsdb "$LOG_DIR/mindsdb.log" "query through the postgres handler failed: $out"
  touch "$marker"
}

mindsdb_down() {
  local pid
  if pid=$(live_pid mindsdb 'mindsdb --api=http'); then stop_group mindsdb "$pid" 30; fi
  rm -f "$RUN_DIR/mindsdb.pid"
}

mindsdb_status() {
  local pid
  if pid=$(live_pid mindsdb 'mindsdb --api=http') && mindsdb_status_ok; then
    echo "mindsdb  up   $(mindsdb_url) pid $pid version $MINDSDB_VERSION$([[ -n $MINDSDB_USER ]] && echo ' (http auth)')"
  else
    echo "mindsdb  down $(mindsdb_url)"; return 1
  fi
}

# ---------------------------------------------------------------- commands --

selected=()
select_services() {
  selected=()
  (($#)) || set -- "${ALL_SERVICES[@]}"
  local s a
  for s in "$@"; do
    for a in "${ALL_SERVICES[@]}"; do [[ $s == "$a" ]] && continue 2; done
    die "unknown service '$s' (known: ${ALL_SERVICES[*]})"
  done
  # Keep a fixed order whatever the command line order is.
  for a in "${ALL_SERVICES[@]}"; do
    for s in "$@"; do [[ $s == "$a" ]] && { selected+=("$a"); break; }; done
  done
  return 0
}
wants() { local s; for s in "${selected[@]}"; do [[ $s == "$1" ]] && return 0; done; return 1; }

# One `up` or `down` at a time per state dir: two concurrent runs would race
# on pid files and fixture loads.
take_lock() {
  exec 9>"$STATE_DIR/.lock"
  flock -w 1200 9 || die "another services.sh is still running (lock $STATE_DIR/.lock)"
}

cmd_up() {
  local t_all; t_all=$(now_ms)
  take_lock
  # apt runs one at a time, so do the Debian installs up front, serially.
  local pkgs=()
  wants postgres && pkgs+=("postgresql-$PG_VERSION" "postgresql-client-$PG_VERSION")
  wants redis && pkgs+=(redis-server)
  command -v curl >/dev/null || pkgs+=(curl)
  ((${#pkgs[@]})) && apt_ensure "${pkgs[@]}"

  # Neo4j and MindsDB take the longest (download on a cold machine, then
  # 10-30 s to start): run them in the background while PostgreSQL and
  # Redis come up in the foreground.
  declare -A bg_pid=() t_start=()
  local s
  for s in neo4j mindsdb; do
    wants "$s" || continue
    t_start[$s]=$(now_ms)
    # The job logs its own ready time: they finish in any order.
    ( "${s}_up"; log "$s: ready in $(elapsed "${t_start[$s]}")" ) >"$LOG_DIR/$s.up.log" 2>&1 &
    bg_pid[$s]=$!
  done
  # Each step runs as `( f ) &` + wait rather than `if ( f )`: inside an
  # `if` condition bash ignores set -e, and a failing step would carry on.
  local failed=()
  for s in postgres redis; do
    wants "$s" || continue
    t_start[$s]=$(now_ms)
    ( "${s}_up"; log "$s: ready in $(elapsed "${t_start[$s]}")" ) &
    wait $! || failed+=("$s")
  done
  for s in neo4j mindsdb; do
    [[ -n ${bg_pid[$s]:-} ]] || continue
    wait "${bg_pid[$s]}" || failed+=("$s")
    cat "$LOG_DIR/$s.up.log" >&2
  done
  if wants postgres && wants mindsdb && [[ " ${failed[*]} " != *" postgres "* && " ${failed[*]} " != *" mindsdb "* ]]; then
    ( mindsdb_check_pg_handler ) &
    wait $! || failed+=("mindsdb(postgres handler)")
  fi
  ((${#failed[@]} == 0)) || die "not ready: ${failed[*]} (logs in $LOG_DIR)"
  log "all requested services ready in $(elapsed "$t_all"): ${selected[*]}"
}

cmd_down() {
  take_lock
  local i
  for ((i = ${#selected[@]} - 1; i >= 0; i--)); do "${selected[i]}_down"; done
}

cmd_status() {
  local s rc=0
  for s in "${selected[@]}"; do "${s}_status" || rc=1; done
  return $rc
}

cmd_env() {
  local s
  for s in "${selected[@]}"; do
    case $s in
      postgres)
        printf 'export %s=%q\n' \
          POSTGRES_DSN "postgresql://$PG_USER:$PG_PASSWORD@$HOST:$PG_PORT/$PG_DB_META" \
          WEAVER_E2E_DS_HOST "$HOST" WEAVER_E2E_DS_PORT "$PG_PORT" \
          WEAVER_E2E_DS_DATABASE "$PG_DB_ENTERPRISE" WEAVER_E2E_DS_USER "$PG_USER" \
          WEAVER_E2E_DS_PASSWORD "$PG_PASSWORD" WEAVER_E2E_CRM_DATABASE "$PG_DB_CRM" ;;
      redis)
        printf 'export %s=%q\n' REDIS_URL "redis://$HOST:$REDIS_PORT/0" ;;
      neo4j)
        printf 'export %s=%q\n' NEO4J_URI "bolt://$HOST:$NEO4J_BOLT_PORT" \
          NEO4J_USER "$NEO4J_USER" NEO4J_PASSWORD "$NEO4J_PASSWORD" ;;
      mindsdb)
        printf 'export %s=%q\n' MINDSDB_URL "$(mindsdb_url)"
        if [[ -n $MINDSDB_USER && -n $MINDSDB_PASSWORD ]]; then
          printf 'export %s=%q\n' MINDSDB_USER "$MINDSDB_USER" MINDSDB_PASSWORD "$MINDSDB_PASSWORD"
        fi ;;
    esac
  done
}

usage() {
  sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

main() {
  local cmd=${1:-}
  (($#)) && shift
  case $cmd in
    up|down|status|env) ;;
    -h|--help|help) usage; return 0 ;;
    *) usage >&2; return 2 ;;
  esac
  select_services "$@"
  mkdir -p "$LOG_DIR" "$RUN_DIR"
  "cmd_$cmd"
}

main "$@"
