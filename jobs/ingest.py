"""Ingest one tenant data set into its Delta table.

    spark-submit --jars "$(python -m stratify_spark.jars --print jars)" jobs/ingest.py \
        --config conf/demo.yaml --source demo-data/customers.csv
"""

from __future__ import annotations

import sys

from stratify_spark.cli import base_parser, run_job
from stratify_spark.config import load_config
from stratify_spark.errors import ConfigError
from stratify_spark.ingest import run_ingest
from stratify_spark.session import build_session, resolve_warehouse


def main(argv: list[str] | None = None) -> int:
    parser = base_parser("Ingest CSV, JSON or Parquet files into a tenant data set's Delta table.")
    parser.add_argument("--source", help="file, folder or glob to read; overrides source.path in the config")
    parser.add_argument("--mode", choices=["append", "overwrite"], help="overrides ingest.mode in the config")
    parser.add_argument("--ingest-id", help="id recorded with the ingest (default: generated)")
    args = parser.parse_args(argv)

    def body() -> dict:
        config = load_config(args.config)
        if config.source is None:
            raise ConfigError(f"{args.config}: {config.tenant}/{config.dataset} is built by entity_features, not "
                              "ingested; run jobs/features.py with this config")
        source = args.source or config.source.path
        if not source:
            raise ConfigError(f"{args.config}: no source path; pass --source or set source.path")
        warehouse = resolve_warehouse(args.warehouse)
        spark = build_session(f"stratify-ingest-{config.tenant}-{config.dataset}", args.master, warehouse)
        result = run_ingest(spark, config, source, warehouse, mode=args.mode, ingest_id=args.ingest_id)
        return {"job": "ingest", "status": "succeeded", **result.to_dict()}

    return run_job("ingest", body, args.log_level, args.summary_file)


if __name__ == "__main__":
    sys.exit(main())
