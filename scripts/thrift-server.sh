#!/usr/bin/env bash
# Start or stop a Spark Thrift (JDBC) server on 127.0.0.1 with the result tables
# registered as stratify.<table>, for analysts who connect with beeline or a BI tool.
#
#   scripts/thrift-server.sh start [--port 10000] [--warehouse DIR] [--dir STATE_DIR]
#   .venv/bin/beeline -u jdbc:hive2://127.0.0.1:10000 -e "SELECT * FROM stratify.runs"
#   scripts/thrift-server.sh stop [--dir STATE_DIR]
#
# start waits until the server accepts connections (at most --timeout seconds, default
# 180) and leaves its log in STATE_DIR/thrift-server.log (default .cache/thrift).
# The warehouse is --warehouse, else $STRATIFY_WAREHOUSE, else ./warehouse. The master
# is $SPARK_MASTER (default local[2]); a standalone cluster works too. Each server has a
# private in-memory metastore, so it never locks out jobs or scripts/spark-sql.sh.
# Tables that jobs create after the start appear after a restart.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

action="${1:-}"
[ $# -gt 0 ] && shift
port=10000
warehouse="${STRATIFY_WAREHOUSE:-warehouse}"
state_dir="$root/.cache/thrift"
timeout=180

while [ $# -gt 0 ]; do
  case "$1" in
    --port) port="$2"; shift 2 ;;
    --warehouse) warehouse="$2"; shift 2 ;;
    --dir) state_dir="$2"; shift 2 ;;
    --timeout) timeout="$2"; shift 2 ;;
    *) echo "error: unknown option '$1'; options: --port, --warehouse, --dir, --timeout" >&2; exit 2 ;;
  esac
done

mkdir -p "$state_dir"
state_dir="$(cd "$state_dir" && pwd)"
pid_file="$state_dir/thrift-server.pid"
log_file="$state_dir/thrift-server.log"

is_running() {
  [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null
}

start() {
  if is_running; then
    echo "error: a thrift server from $state_dir is already running (pid $(cat "$pid_file")); stop it first" >&2
    exit 2
  fi
  if ! [[ "$port" =~ ^[0-9]+$ ]]; then
    echo "error: --port '$port' is not a port number" >&2
    exit 2
  fi
  if [ ! -x "$root/.venv/bin/spark-submit" ]; then
    echo "error: $root/.venv is missing; run scripts/setup.sh first" >&2
    exit 2
  fi
  export PATH="$root/.venv/bin:$PATH"
  export SPARK_LOCAL_IP=127.0.0.1
  export PYSPARK_PYTHON="${PYSPARK_PYTHON:-$root/.venv/bin/python}"
  local jars
  jars="$("$root/.venv/bin/python" -m stratify_spark.jars --print jars)"
  # The server runs in the state folder, so a relative warehouse must be made absolute here.
  case "$warehouse" in
    /*|*://*) ;;
    *) warehouse="$PWD/$warehouse" ;;
  esac

  # The Thrift handler threads load classes without the --jars class loader, so the Delta
  # jars also go on the driver's class path; without it, opening a JDBC session fails with
  # ClassNotFoundException for DeltaCatalog (seen with Spark 4.2.0). The server runs
  # in the state folder, so Hive's and Derby's stray files land there.
  (
    cd "$state_dir"
    setsid nohup spark-submit \
      --master "${SPARK_MASTER:-local[2]}" \
      --jars "$jars" \
      --driver-class-path "${jars//,/:}" \
      --driver-java-options "-Dderby.stream.error.file=/dev/null -Dlog4j2.configurationFile=file:$root/conf/log4j2.properties" \
      --conf spark.ui.enabled=false \
      "$root/scripts/thrift_server.py" --warehouse "$warehouse" --host 127.0.0.1 --port "$port" \
      > "$log_file" 2>&1 < /dev/null &
    echo $! > "$pid_file"
  )

  local deadline=$((SECONDS + timeout))
  until grep -q "thrift server ready on" "$log_file" 2>/dev/null; do
    if ! is_running; then
      echo "error: the thrift server exited during start-up; the end of $log_file:" >&2
      tail -n 20 "$log_file" >&2
      rm -f "$pid_file"
      exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "error: the thrift server did not start within $timeout s; see $log_file" >&2
      stop
      exit 1
    fi
    sleep 0.5
  done
  echo "thrift-server: serving $warehouse on jdbc:hive2://127.0.0.1:$port (pid $(cat "$pid_file"), log $log_file)" >&2
}

wait_for_exit() {
  local deadline=$((SECONDS + $2))
  while kill -0 "$1" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
    sleep 0.2
  done
}

stop() {
  if ! is_running; then
    echo "thrift-server: not running (no live pid in $pid_file)" >&2
    rm -f "$pid_file"
    return 0
  fi
  local pid
  pid="$(cat "$pid_file")"
  # spark-submit's JVM runs the Python driver as a child process. Stopping Python first
  # lets it stop Spark cleanly, and the JVM exits when its Python driver has finished.
  local driver
  driver="$(pgrep -P "$pid" -f thrift_server.py 2>/dev/null || true)"
  if [ -n "$driver" ]; then
    kill -TERM $driver 2>/dev/null || true
    wait_for_exit "$pid" 30
  fi
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    wait_for_exit "$pid" 15
  fi
  for process in "$pid" $driver; do
    if kill -0 "$process" 2>/dev/null; then
      echo "thrift-server: pid $process is still running after SIGTERM; sending SIGKILL" >&2
      kill -KILL "$process" 2>/dev/null || true
    fi
  done
  rm -f "$pid_file"
  echo "thrift-server: stopped" >&2
}

case "$action" in
  start) start ;;
  stop) stop ;;
  status)
    if is_running; then echo "running (pid $(cat "$pid_file"))"; else echo "stopped"; exit 3; fi ;;
  *) echo "usage: $0 start|stop|status [--port PORT] [--warehouse DIR] [--dir STATE_DIR] [--timeout SECONDS]" >&2
     exit 2 ;;
esac
