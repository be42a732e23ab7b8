"""Segment one tenant data set with KMeans, BisectingKMeans, rules or RFM and write the result tables.

    spark-submit --jars "$(python -m stratify_spark.jars --print jars)" jobs/segment.py \
        --config conf/demo.yaml
"""

from __future__ import annotations

import logging
import sys

from stratify_spark.cli import base_parser, run_job
from stratify_spark.config import apply_overrides, load_config, with_cut_points_from, with_k_sweep
from stratify_spark.refresh import refresh_decision, stored_run
from stratify_spark.segment import run_segment
from stratify_spark.session import build_session, resolve_warehouse


def main(argv: list[str] | None = None) -> int:
    parser = base_parser("Segment a tenant data set and write runs, assignments, profiles and metrics.")
    parser.add_argument("--run-id", help="run id; re-using one replaces that run's results (default: generated)")
    parser.add_argument("--data-version", type=int, help="Delta version of the data set to read (default: latest)")
    parser.add_argument("--algorithm", choices=["kmeans", "bisecting_kmeans"], help="overrides segment.algorithm.name")
    parser.add_argument("--k", type=int, help="overrides segment.algorithm.k")
    parser.add_argument("--k-sweep", metavar="K_MIN:K_MAX",
                        help="fit every k from K_MIN to K_MAX and segment with the k that segment.k_sweep.criterion "
                             "picks (default criterion: silhouette); overrides segment.k_sweep's range")
    parser.add_argument("--cut-points-from", metavar="RUN_ID",
                        help="rules and rfm runs: reuse the band cut points stored by this earlier run of the same "
                             "data set (overrides segment.algorithm.cut_points_from)")
    parser.add_argument("--refresh", action="store_true",
                        help="for schedulers: run only when the data set's Delta version moved since its last "
                             "succeeded run; otherwise exit without a run and say so")
    parser.add_argument("--exit-code-when-unchanged", type=int, choices=[0, 4], default=0,
                        help="exit code of a --refresh that had nothing to do (default 0; 4 lets a scheduler branch)")
    parser.add_argument("--reproduce", metavar="RUN_ID",
                        help="run again with the config and data version stored by this succeeded run "
                             "(--config only names the tenant and data set)")
    args = parser.parse_args(argv)
    if args.reproduce and (args.refresh or args.algorithm or args.k or args.cut_points_from or args.data_version
                           or args.k_sweep):
        parser.error("--reproduce takes the stored config and data version; drop the other run options")

    def body() -> dict:
        config = apply_overrides(load_config(args.config), args.config, algorithm=args.algorithm, k=args.k)
        if args.cut_points_from:
            config = with_cut_points_from(config, args.config, args.cut_points_from)
        if args.k_sweep:
            config = with_k_sweep(config, args.config, args.k_sweep)
        warehouse = resolve_warehouse(args.warehouse)
        spark = build_session(f"stratify-segment-{config.tenant}-{config.dataset}", args.master, warehouse)
        data_version = args.data_version
        if args.reproduce:
            config, data_version = stored_run(spark, warehouse, config, args.reproduce)
        elif args.refresh:
            decision = refresh_decision(spark, warehouse, config)
            logging.getLogger("stratify_spark.refresh").info("%s/%s refresh: %s", config.tenant, config.dataset,
                                                             decision.reason)
            if not decision.run:
                return decision.skipped_summary(config, args.exit_code_when_unchanged)
        result = run_segment(spark, config, warehouse, run_id=args.run_id, data_version=data_version)
        return result.summary()

    return run_job("segment", body, args.log_level, args.summary_file)


if __name__ == "__main__":
    sys.exit(main())
