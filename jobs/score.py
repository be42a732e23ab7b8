"""Score new or changed rows of a tenant data set with an earlier run's frozen model, without refitting.

    scripts/submit.sh jobs/score.py --config conf/demo.yaml --model-run RUN_ID
"""

from __future__ import annotations

import sys

from stratify_spark.cli import base_parser, run_job
from stratify_spark.config import load_config
from stratify_spark.scoring import ROWS_ALL, ROWS_CHANGED, run_score
from stratify_spark.segment import new_run_id
from stratify_spark.session import build_session, resolve_warehouse


def main(argv: list[str] | None = None) -> int:
    parser = base_parser("Assign rows to the segments of an earlier run (centres and scaling, or rules and cut "
                         "points) without refitting, and write them to the scores table.")
    parser.add_argument("--model-run", required=True, help="id of the succeeded run whose model scores the rows")
    parser.add_argument("--score-id", help="id of this scoring; re-using one replaces it (default: generated)")
    parser.add_argument("--data-version", type=int, help="Delta version of the data set to score (default: latest)")
    parser.add_argument("--rows", choices=[ROWS_CHANGED, ROWS_ALL], default=ROWS_CHANGED,
                        help="'changed': rows that are new or differ from the model run's data version (default); "
                             "'all': every row")
    parser.add_argument("--outlier-percentile", type=float, default=99.0,
                        help="flag a row as an outlier when its distance is above this percentile of the model "
                             "run's training distances (default 99)")
    args = parser.parse_args(argv)

    def body() -> dict:
        config = load_config(args.config)
        warehouse = resolve_warehouse(args.warehouse)
        spark = build_session(f"stratify-score-{config.tenant}-{config.dataset}", args.master, warehouse)
        score_id = args.score_id or new_run_id().replace("run-", "score-", 1)
        result = run_score(spark, config, warehouse, args.model_run, score_id, args.data_version, args.rows,
                           args.outlier_percentile)
        return result.summary()

    return run_job("score", body, args.log_level, args.summary_file)


if __name__ == "__main__":
    sys.exit(main())
