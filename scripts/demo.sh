#!/usr/bin/env bash
# Set everything up, then run the main jobs on the built-in demo data set:
# generate 5,000 customers, ingest them into Delta, segment them with KMeans,
# and query the result tables by name. Safe to run again: the demo ingest
# overwrites its table and the demo run id replaces its own results.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

export STRATIFY_WAREHOUSE="${STRATIFY_WAREHOUSE:-$PWD/warehouse}"
master="${SPARK_MASTER:-local[2]}"

echo "demo: generating demo-data/customers.csv"
.venv/bin/python -m stratify_spark.demo demo-data/customers.csv --rows 5000

echo "demo: ingesting into $STRATIFY_WAREHOUSE"
scripts/submit.sh --master "$master" jobs/ingest.py --config conf/demo.yaml --source demo-data/customers.csv

echo "demo: segmenting with KMeans (run id demo-kmeans)"
scripts/submit.sh --master "$master" jobs/segment.py --config conf/demo.yaml --run-id demo-kmeans

echo "demo: querying the result tables with spark-sql"
scripts/spark-sql.sh -e "
SELECT segment_id, size, round(share, 3) AS share, feature, round(mean, 2) AS mean, round(centre, 2) AS centre
FROM stratify.segment_profiles
WHERE tenant = 'demo' AND run_id = 'demo-kmeans'
ORDER BY segment_id, feature"
