#!/usr/bin/env bash
# Start a Spark standalone cluster on 127.0.0.1 from the pyspark in .venv: one master
# and N workers, each a background JVM. Waits until every worker has registered with
# the master, then prints the master URL as the last line of stdout.
#
#   scripts/cluster-start.sh                              # master on 7077, 2 workers
#   scripts/cluster-start.sh --workers 3 --port 7177 --webui-port 8180
#   scripts/cluster-stop.sh                               # stop it again
#
# Options (defaults in brackets):
#   --workers N         workers to start [2]
#   --port PORT         master RPC port [7077]
#   --webui-port PORT   master web UI port [8080]
#   --worker-cores N    cores each worker offers [1]
#   --worker-memory M   memory each worker offers to executors, e.g. 1g [1g]
#   --dir DIR           state folder [.cache/cluster]: logs/ (one log per process),
#                       pids/, work/ (executor folders) and master-url
#   --timeout SECONDS   how long to wait for the workers to register [90]
#
# Every service binds to 127.0.0.1 (SPARK_LOCAL_IP and --host), so nothing listens
# on other interfaces. Workers pick free ports for their RPC endpoint and web UI.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

workers=2
port=7077
webui_port=8080
worker_cores=1
worker_memory=1g
state_dir="$root/.cache/cluster"
timeout=90

usage() {
  sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
  case "$1" in
    --workers) workers="$2"; shift 2 ;;
    --port) port="$2"; shift 2 ;;
    --webui-port) webui_port="$2"; shift 2 ;;
    --worker-cores) worker_cores="$2"; shift 2 ;;
    --worker-memory) worker_memory="$2"; shift 2 ;;
    --dir) state_dir="$2"; shift 2 ;;
    --timeout) timeout="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "error: unknown option '$1'; run $0 --help for the options" >&2; exit 2 ;;
  esac
done

for value in "$workers" "$port" "$webui_port" "$worker_cores" "$timeout"; do
  if ! [[ "$value" =~ ^[0-9]+$ ]]; then
    echo "error: '$value' is not a whole number; --workers, --port, --webui-port, --worker-cores and --timeout take one" >&2
    exit 2
  fi
done
if [ "$workers" -lt 1 ]; then
  echo "error: --workers is $workers; start at least 1 worker" >&2
  exit 2
fi
if [ ! -x "$root/.venv/bin/spark-class" ]; then
  echo "error: $root/.venv is missing; run scripts/setup.sh first" >&2
  exit 2
fi

mkdir -p "$state_dir"
state_dir="$(cd "$state_dir" && pwd)"
mkdir -p "$state_dir/logs" "$state_dir/pids" "$state_dir/work"

for pid_file in "$state_dir"/pids/*.pid; do
  [ -e "$pid_file" ] || continue
  if kill -0 "$(cat "$pid_file")" 2>/dev/null; then
    echo "error: a cluster started from $state_dir is still running ($(basename "$pid_file" .pid) has pid" \
         "$(cat "$pid_file")); stop it with scripts/cluster-stop.sh --dir $state_dir, or pass another --dir" >&2
    exit 2
  fi
  rm -f "$pid_file"
done

export PATH="$root/.venv/bin:$PATH"
export SPARK_LOCAL_IP=127.0.0.1
# The REST submission server would listen on the fixed port 6066; spark-submit does not need it.
export SPARK_MASTER_OPTS="${SPARK_MASTER_OPTS:-} -Dspark.master.rest.enabled=false"
master_url="spark://127.0.0.1:$port"

# setsid puts each JVM in its own session, so it outlives this script and a Ctrl-C in the caller's terminal.
start_daemon() {
  local name="$1"
  shift
  setsid nohup spark-class "$@" > "$state_dir/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$state_dir/pids/$name.pid"
}

stop_started() {
  "$root/scripts/cluster-stop.sh" --dir "$state_dir" >&2 || true
}

echo "cluster: starting the master at $master_url (logs in $state_dir/logs)" >&2
start_daemon master org.apache.spark.deploy.master.Master \
  --host 127.0.0.1 --port "$port" --webui-port "$webui_port"

for number in $(seq 1 "$workers"); do
  mkdir -p "$state_dir/work/worker-$number"
  start_daemon "worker-$number" org.apache.spark.deploy.worker.Worker \
    --host 127.0.0.1 --port 0 --webui-port 0 \
    --cores "$worker_cores" --memory "$worker_memory" \
    --work-dir "$state_dir/work/worker-$number" \
    "$master_url"
done

# Each worker logs this line once the master has accepted it. It is an INFO line, so a
# log4j2.properties in SPARK_CONF_DIR that raises the level above INFO makes this wait time out.
deadline=$((SECONDS + timeout))
for number in $(seq 1 "$workers"); do
  log="$state_dir/logs/worker-$number.log"
  until grep -q "Successfully registered with master" "$log" 2>/dev/null; do
    for name in master "worker-$number"; do
      if ! kill -0 "$(cat "$state_dir/pids/$name.pid")" 2>/dev/null; then
        echo "error: $name exited during start-up; the end of $state_dir/logs/$name.log:" >&2
        tail -n 20 "$state_dir/logs/$name.log" >&2
        stop_started
        exit 1
      fi
    done
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "error: worker-$number did not register with $master_url within $timeout s; see $log" \
           "(a port in use? try --port and --webui-port)" >&2
      stop_started
      exit 1
    fi
    sleep 0.5
  done
done

echo "$master_url" > "$state_dir/master-url"
echo "cluster: master and $workers worker(s) running; web UI http://127.0.0.1:$webui_port" >&2
echo "$master_url"
