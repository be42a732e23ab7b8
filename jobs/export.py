"""Export one run (record key plus segment, and the profiles) to CSV or JSON part files for BI tools.

    scripts/submit.sh jobs/export.py --config conf/demo.yaml --run-id RUN_ID --output /data/exports/demo
"""

from __future__ import annotations

import sys

from stratify_spark.cli import base_parser, run_job
from stratify_spark.config import load_config
from stratify_spark.export import FORMATS, run_export
from stratify_spark.session import build_session, resolve_warehouse


def main(argv: list[str] | None = None) -> int:
    parser = base_parser("Export a run's assignments and segment profiles as CSV or JSON part files.")
    parser.add_argument("--run-id", required=True, help="the succeeded run to export")
    parser.add_argument("--output", required=True, help="folder to write; gets assignments/ and profiles/")
    parser.add_argument("--format", choices=FORMATS, default="csv", help="file format (default csv, with a header)")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier export in --output")
    args = parser.parse_args(argv)

    def body() -> dict:
        config = load_config(args.config)
        warehouse = resolve_warehouse(args.warehouse)
        spark = build_session(f"stratify-export-{config.tenant}-{config.dataset}", args.master, warehouse)
        return run_export(spark, warehouse, config.tenant, config.dataset, args.run_id, args.output, args.format,
                          args.overwrite).summary()

    return run_job("export", body, args.log_level, args.summary_file)


if __name__ == "__main__":
    sys.exit(main())
