#!/usr/bin/env bash
# spark-submit from .venv with the cached Delta jars; all arguments go to spark-submit.
#   scripts/submit.sh jobs/ingest.py --config conf/demo.yaml
# Set SPARK_MASTER (default local[*]) or pass --master before the job file.
# On a cluster, ship the package with --py-files before the job file:
#   scripts/submit.sh --master spark://127.0.0.1:7077 --py-files "$(scripts/package.sh)" jobs/ingest.py ...
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
if [ ! -x "$root/.venv/bin/spark-submit" ]; then
  echo "error: $root/.venv is missing; run scripts/setup.sh first" >&2
  exit 2
fi
export PATH="$root/.venv/bin:$PATH"
export PYSPARK_PYTHON="${PYSPARK_PYTHON:-$root/.venv/bin/python}"
jars="$("$root/.venv/bin/python" -m stratify_spark.jars --print jars)"

master_args=()
case " $* " in
  *" --master "*) ;;
  *) master_args=(--master "${SPARK_MASTER:-local[*]}") ;;
esac
exec spark-submit "${master_args[@]}" --jars "$jars" \
  --driver-java-options "-Dlog4j2.configurationFile=file:$root/conf/log4j2.properties" \
  "$@"
