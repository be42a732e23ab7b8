"""Write one run's report, optionally with a comparison, as a single self-contained HTML file.

    scripts/submit.sh jobs/report.py --config conf/online_retail_rfm.yaml --output report.html
    scripts/submit.sh jobs/report.py --tenant retail_uk --dataset customers --run-id rfm-full \
        --compare-id h1-vs-full --lang pt-BR --output relatorio.html
"""

from __future__ import annotations

import sys

from stratify_spark.cli import base_parser, run_job
from stratify_spark.report_i18n import LANGUAGES
from stratify_spark.report_job import ReportRequest, run_report


def main(argv: list[str] | None = None) -> int:
    parser = base_parser("Write an HTML report of one segment run: sizes, profiles, facts and, with "
                         "--compare-id, how rows moved since an earlier run.", config_required=False)
    parser.add_argument("--tenant", help="tenant id; with --dataset, replaces --config")
    parser.add_argument("--dataset", help="data set name; with --tenant, replaces --config")
    parser.add_argument("--run-id", help="run to report (default: the comparison's later run with --compare-id, "
                                         "else the data set's latest succeeded run)")
    parser.add_argument("--compare-id", help="comparison written by jobs/compare.py to add to the report")
    parser.add_argument("--output", required=True, help="HTML file to write; replaced if it exists")
    parser.add_argument("--lang", default="en", choices=LANGUAGES, help="language of labels and number formats")
    args = parser.parse_args(argv)

    def body() -> dict:
        request = ReportRequest(
            config_path=args.config, tenant=args.tenant, dataset=args.dataset, run_id=args.run_id,
            compare_id=args.compare_id, output=args.output, lang=args.lang,
        )
        return run_report(request, args.warehouse, args.master)

    return run_job("report", body, args.log_level, args.summary_file)


if __name__ == "__main__":
    sys.exit(main())
