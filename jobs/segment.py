"""Segment one tenant data set with KMeans, BisectingKMeans, rules or RFM and write the result tables.

    spark-submit --jars "$(python -m stratify_spark.jars --print jars)" jobs/segment.py \
        --config conf/demo.yaml
"""

from __future__ import annotations

import sys

from stratify_spark.cli import base_parser, run_job
from stratify_spark.config import apply_overrides, load_config, with_cut_points_from
from stratify_spark.segment import run_segment
from stratify_spark.session import build_session, resolve_warehouse


def main(argv: list[str] | None = None) -> int:
    parser = base_parser("Segment a tenant data set and write runs, assignments, profiles and metrics.")
    parser.add_argument("--run-id", help="run id; re-using one replaces that run's results (default: generated)")
    parser.add_argument("--data-version", type=int, help="Delta version of the data set to read (default: latest)")
    parser.add_argument("--algorithm", choices=["kmeans", "bisecting_kmeans"], help="overrides segment.algorithm.name")
    parser.add_argument("--k", type=int, help="overrides segment.algorithm.k")
    parser.add_argument("--cut-points-from", metavar="RUN_ID",
                        help="rules and rfm runs: reuse the band cut points stored by this earlier run of the same "
                             "data set (overrides segment.algorithm.cut_points_from)")
    args = parser.parse_args(argv)

    def body() -> dict:
        config = apply_overrides(load_config(args.config), args.config, algorithm=args.algorithm, k=args.k)
        if args.cut_points_from:
            config = with_cut_points_from(config, args.config, args.cut_points_from)
        warehouse = resolve_warehouse(args.warehouse)
        spark = build_session(f"stratify-segment-{config.tenant}-{config.dataset}", args.master, warehouse)
        result = run_segment(spark, config, warehouse, run_id=args.run_id, data_version=args.data_version)
        return result.summary()

    return run_job("segment", body, args.log_level, args.summary_file)


if __name__ == "__main__":
    sys.exit(main())
