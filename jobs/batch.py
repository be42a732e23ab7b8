"""Run ingest, segment or both for many tenant configs in one Spark session.

    spark-submit --jars "$(python -m stratify_spark.jars --print jars)" jobs/batch.py \
        --config-dir conf/tenants --step both

Exit code: 0 when no tenant failed, else the most severe tenant code (1, then 2, 3, 4).
"""

from __future__ import annotations

import argparse
import sys

from stratify_spark.batch import STEPS, collect_config_paths, prepare_batch, run_batch
from stratify_spark.cli import run_job
from stratify_spark.session import build_session, resolve_warehouse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Run ingest, segment or both for many tenant configs in one "
                                                 "Spark session; one tenant's failure does not stop the others.")
    parser.add_argument("--config", action="append", default=[], metavar="FILE",
                        help="YAML config of one tenant data set; repeat for more")
    parser.add_argument("--config-dir", action="append", default=[], metavar="DIR",
                        help="folder whose *.yaml and *.yml files are configs, run in name order; repeatable")
    parser.add_argument("--config-list", action="append", default=[], metavar="FILE",
                        help="text file with one config path per line (# starts a comment line); repeatable")
    parser.add_argument("--step", choices=STEPS, default="both",
                        help="ingest (from each config's source.path), segment, or both in that order (default)")
    parser.add_argument("--run-id", help="segment run id for every tenant (default: generated per tenant); "
                                         "run ids are unique per tenant, so one id for all is safe")
    parser.add_argument("--refresh", action="store_true",
                        help="segment a tenant only when its data version moved since its last succeeded run")
    parser.add_argument("--exit-code-when-unchanged", type=int, choices=[0, 4], default=0,
                        help="exit code of a tenant that --refresh skipped (default 0)")
    parser.add_argument("--warehouse", default=None,
                        help="warehouse root folder or URI (default: $STRATIFY_WAREHOUSE, else ./warehouse)")
    parser.add_argument("--master", default=None,
                        help="Spark master when run with plain python (spark-submit sets it with its own --master)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--summary-file", default=None, help="also write the JSON summary to this file")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    batch_exit_code = 0

    def body() -> dict:
        nonlocal batch_exit_code
        tasks = prepare_batch(collect_config_paths(args.config, args.config_dir, args.config_list))
        warehouse = resolve_warehouse(args.warehouse)
        result = run_batch(tasks, args.step, warehouse, run_id=args.run_id, refresh=args.refresh,
                           exit_code_when_unchanged=args.exit_code_when_unchanged,
                           get_session=lambda: build_session("stratify-batch", args.master, warehouse))
        batch_exit_code = result.exit_code
        return result.summary()

    # run_job returns non-zero only when the batch itself failed (no configs, bad --run-id).
    return run_job("batch", body, args.log_level, args.summary_file) or batch_exit_code


if __name__ == "__main__":
    sys.exit(main())
