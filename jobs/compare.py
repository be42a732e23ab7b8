"""Compare two runs of one tenant data set and write the migration matrix, segment changes and agreement.

    scripts/submit.sh jobs/compare.py --config conf/demo.yaml --run-a RUN_A --run-b RUN_B
"""

from __future__ import annotations

import sys

from stratify_spark.cli import base_parser, run_job
from stratify_spark.compare import run_compare
from stratify_spark.config import load_config
from stratify_spark.session import build_session, resolve_warehouse


def main(argv: list[str] | None = None) -> int:
    parser = base_parser("Compare two runs of a tenant data set: migration matrix, segment changes, ARI and AMI.")
    parser.add_argument("--run-a", required=True, help="the earlier run id")
    parser.add_argument("--run-b", required=True, help="the later run id")
    parser.add_argument("--compare-id", help="id of the comparison; re-using one replaces it "
                                             "(default: '<run a>-vs-<run b>')")
    args = parser.parse_args(argv)

    def body() -> dict:
        config = load_config(args.config)
        warehouse = resolve_warehouse(args.warehouse)
        spark = build_session(f"stratify-compare-{config.tenant}-{config.dataset}", args.master, warehouse)
        result = run_compare(spark, warehouse, config.tenant, config.dataset, args.run_a, args.run_b,
                             args.compare_id)
        return result.summary()

    return run_job("compare", body, args.log_level, args.summary_file)


if __name__ == "__main__":
    sys.exit(main())
