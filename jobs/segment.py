"""Segment one tenant data set with KMeans or BisectingKMeans and write the result tables.

    spark-submit --jars "$(python -m stratify_spark.jars --print jars)" jobs/segment.py \
        --config conf/demo.yaml
"""

from __future__ import annotations

import sys

from stratify_spark.cli import base_parser, run_job
from stratify_spark.config import apply_overrides, load_config
from stratify_spark.segment import run_segment
from stratify_spark.session import build_session, resolve_warehouse


def main(argv: list[str] | None = None) -> int:
    parser = base_parser("Segment a tenant data set and write runs, assignments, profiles and metrics.")
    parser.add_argument("--run-id", help="run id; re-using one replaces that run's results (default: generated)")
    parser.add_argument("--data-version", type=int, help="Delta version of the data set to read (default: latest)")
    parser.add_argument("--algorithm", choices=["kmeans", "bisecting_kmeans"], help="overrides segment.algorithm.name")
    parser.add_argument("--k", type=int, help="overrides segment.algorithm.k")
    args = parser.parse_args(argv)

    def body() -> dict:
        config = apply_overrides(load_config(args.config), args.config, algorithm=args.algorithm, k=args.k)
        warehouse = resolve_warehouse(args.warehouse)
        spark = build_session(f"stratify-segment-{config.tenant}-{config.dataset}", args.master, warehouse)
        result = run_segment(spark, config, warehouse, run_id=args.run_id, data_version=args.data_version)
        return result.summary()

    return run_job("segment", body, args.log_level)


if __name__ == "__main__":
    sys.exit(main())
