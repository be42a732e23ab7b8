"""Build an entity data set (one row per customer) from a transactions data set.

    scripts/submit.sh jobs/features.py --config conf/online_retail_rfm.yaml
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys

from stratify_spark.cli import base_parser, run_job
from stratify_spark.config import load_config
from stratify_spark.entity_build import run_entity_build
from stratify_spark.refresh import features_refresh_decision
from stratify_spark.session import build_session, resolve_warehouse


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid date {text!r}; expected YYYY-MM-DD, for example 2011-12-10") from None


def main(argv: list[str] | None = None) -> int:
    parser = base_parser("Aggregate a transactions data set into recency, frequency and monetary value per entity.")
    parser.add_argument("--source-version", type=int,
                        help="Delta version of the transactions data set to read (default: entity_features."
                             "source_version, else the latest)")
    parser.add_argument("--reference-date", type=_date,
                        help="date that recency is counted up to, YYYY-MM-DD (default: entity_features."
                             "reference_date, else the day after the latest transaction)")
    parser.add_argument("--build-id", help="id recorded with the build (default: generated)")
    parser.add_argument("--refresh", action="store_true",
                        help="for schedulers: rebuild only when the transactions data set's Delta version moved "
                             "since the last succeeded build; otherwise exit without a build and say so")
    parser.add_argument("--exit-code-when-unchanged", type=int, choices=[0, 4], default=0,
                        help="exit code of a --refresh that had nothing to do (default 0)")
    args = parser.parse_args(argv)
    if args.refresh and args.source_version is not None:
        parser.error("--refresh reads the latest transactions version; drop --source-version")

    def body() -> dict:
        config = load_config(args.config)
        warehouse = resolve_warehouse(args.warehouse)
        spark = build_session(f"stratify-features-{config.tenant}-{config.dataset}", args.master, warehouse)
        if args.refresh:
            decision = features_refresh_decision(spark, warehouse, config)
            logging.getLogger("stratify_spark.refresh").info("%s/%s refresh: %s", config.tenant, config.dataset,
                                                             decision.reason)
            if not decision.run:
                return {**decision.skipped_summary(config, args.exit_code_when_unchanged), "job": "features"}
        result = run_entity_build(spark, config, warehouse, source_version=args.source_version,
                                  reference_date=args.reference_date, build_id=args.build_id)
        return result.summary()

    return run_job("features", body, args.log_level, args.summary_file)


if __name__ == "__main__":
    sys.exit(main())
