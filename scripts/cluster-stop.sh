#!/usr/bin/env bash
# Stop the standalone cluster that scripts/cluster-start.sh started: workers first,
# then the master. Sends SIGTERM, and SIGKILL to a process still alive after 15 s.
#
#   scripts/cluster-stop.sh                  # the cluster in .cache/cluster
#   scripts/cluster-stop.sh --dir DIR        # the cluster started with --dir DIR
#
# Only the processes whose ids are in DIR/pids are signalled. Logs stay in DIR/logs.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
state_dir="$root/.cache/cluster"

while [ $# -gt 0 ]; do
  case "$1" in
    --dir) state_dir="$2"; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown option '$1'; the only option is --dir DIR" >&2; exit 2 ;;
  esac
done

if [ ! -d "$state_dir/pids" ]; then
  echo "cluster: no cluster state in $state_dir; nothing to stop" >&2
  exit 0
fi

pid_files=()
for pid_file in "$state_dir"/pids/worker-*.pid "$state_dir"/pids/master.pid; do
  [ -e "$pid_file" ] && pid_files+=("$pid_file")
done

# Executors are child processes of a worker. A worker that gets SIGTERM stops its own
# executors, but one that needs SIGKILL cannot, so note them to check at the end.
children=()
for pid_file in "${pid_files[@]}"; do
  for child in $(pgrep -x java -P "$(cat "$pid_file")" 2>/dev/null || true); do
    children+=("$child")
  done
done

for pid_file in "${pid_files[@]}"; do
  pid="$(cat "$pid_file")"
  if kill -0 "$pid" 2>/dev/null; then
    echo "cluster: stopping $(basename "$pid_file" .pid) (pid $pid)" >&2
    kill -TERM "$pid" 2>/dev/null || true
  fi
done

deadline=$((SECONDS + 15))
for pid_file in "${pid_files[@]}"; do
  pid="$(cat "$pid_file")"
  while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "cluster: $(basename "$pid_file" .pid) (pid $pid) ignored SIGTERM; sending SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pid_file"
done
for child in "${children[@]}"; do
  if kill -0 "$child" 2>/dev/null; then
    echo "cluster: executor process $child outlived its worker; sending SIGKILL" >&2
    kill -KILL "$child" 2>/dev/null || true
  fi
done
rm -f "$state_dir/master-url"
echo "cluster: stopped" >&2
