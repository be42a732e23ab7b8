#!/usr/bin/env bash
# Open spark-sql with the result tables registered as stratify.<table>.
#   scripts/spark-sql.sh -e "SELECT * FROM stratify.runs"      (one query)
#   scripts/spark-sql.sh                                          (interactive)
# The warehouse is $STRATIFY_WAREHOUSE, else ./warehouse. The Hive metastore is an
# in-memory Derby database, so this never locks out jobs or another spark-sql.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
if [ ! -x "$root/.venv/bin/spark-sql" ]; then
  echo "error: $root/.venv is missing; run scripts/setup.sh first" >&2
  exit 2
fi
export PATH="$root/.venv/bin:$PATH"
export PYSPARK_PYTHON="${PYSPARK_PYTHON:-$root/.venv/bin/python}"

init_dir="$(mktemp -d)"
trap 'rm -rf "$init_dir"' EXIT
"$root/.venv/bin/python" -m stratify_spark.tables > "$init_dir/register.sql"
jars="$("$root/.venv/bin/python" -m stratify_spark.jars --print jars)"

spark-sql \
  --master "${SPARK_MASTER:-local[2]}" \
  --jars "$jars" \
  --driver-java-options "-Dderby.stream.error.file=/dev/null -Dlog4j2.configurationFile=file:$root/conf/log4j2.properties" \
  --conf spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension \
  --conf spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog \
  --conf "spark.hadoop.javax.jdo.option.ConnectionURL=jdbc:derby:memory:stratify;create=true" \
  --conf "spark.sql.warehouse.dir=$init_dir/spark-warehouse" \
  --conf spark.sql.shuffle.partitions=8 \
  --conf spark.databricks.delta.snapshotPartitions=4 \
  --conf spark.sql.session.timeZone=UTC \
  --conf spark.ui.enabled=false \
  -i "$init_dir/register.sql" \
  "$@"
