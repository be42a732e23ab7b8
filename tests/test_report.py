"""The HTML run report: jobs/report.py on small hand-written result tables, and its pure helpers.

The fixture writes the result tables of two KMeans runs of acme/customers
(rep-a, then rep-b), a failed run, the feature build that wrote rep-b's data
version, and one comparison cmp-1 of rep-a with rep-b, in a fresh warehouse.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.util
import io
import json
import logging
import re
from pathlib import Path

import pytest

from stratify_spark import tables
from stratify_spark.report import FeatureStats, RunSummary, Segment, describe_segment, load_run
from stratify_spark.report_html import render_report
from stratify_spark.report_i18n import MESSAGES, Texts
from stratify_spark.errors import ConfigError
from stratify_spark.report_job import ReportRequest, resolve_data_set, write_atomically

JOBS_DIR = Path(__file__).resolve().parent.parent / "jobs"
TENANT = "acme"
DATASET = "customers"

# Anything that would make a browser fetch something, or run code, when it opens the page.
EXTERNAL_REFERENCE = re.compile(r"https?:|//[A-Za-z0-9]|<script|@import|url\(|\bsrc\s*=|\bhref\s*=|<link|<iframe",
                                re.IGNORECASE)


def load_report_job():
    spec = importlib.util.spec_from_file_location("stratify_job_report", JOBS_DIR / "report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


REPORT_JOB = load_report_job()


def run_report_job(argv: list[str]) -> tuple[int, dict]:
    """Run jobs/report.py in-process; return its exit code and its JSON summary line."""
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        code = REPORT_JOB.main(argv)
    lines = [line for line in output.getvalue().splitlines() if line.strip()]
    return code, json.loads(lines[-1])


def run_row(run_id: str, status: str, finished_hour: int, data_version: int) -> dict:
    return {
        "tenant": TENANT, "dataset": DATASET, "run_id": run_id, "status": status,
        "error": "boom" if status == "failed" else None, "algorithm": "kmeans",
        "parameters": json.dumps({"name": "kmeans", "k": 3, "seed": 42}), "config": "{}",
        "data_version": data_version, "created_at": dt.datetime(2024, 5, 1, finished_hour - 1),
        "started_at": dt.datetime(2024, 5, 1, finished_hour - 1),
        "finished_at": dt.datetime(2024, 5, 1, finished_hour), "seconds": 12.5, "rows_input": 2010,
        "rows_used": 2000, "rows_dropped": 10, "k_requested": 3, "k_produced": 3,
    }


def profile_rows(run_id: str, segments: list[tuple[int, str, int, float, float, float, float, float]]) -> list[dict]:
    """Return profile rows from (segment_id, key, size, share, monetary mean, z, recency mean, z) tuples."""
    rows = []
    for segment_id, key, size, share, monetary, monetary_z, recency, recency_z in segments:
        for feature, mean, z_score, overall in (("monetary", monetary, monetary_z, 150.0),
                                                ("recency_days", recency, recency_z, 60.0)):
            rows.append({
                "tenant": TENANT, "dataset": DATASET, "run_id": run_id, "segment_id": segment_id,
                "segment_key": key, "segment_name": None, "rule": None, "size": size, "share": share,
                "feature": feature, "mean": mean, "stddev": 10.0, "min": 0.0, "p25": mean - 5, "median": mean,
                "p75": mean + 5, "max": mean * 2, "null_rate": 0.0, "centre": mean, "overall_mean": overall,
                "z_score": z_score,
            })
    return rows


def comparison_rows() -> dict[str, list[dict]]:
    ids = {"tenant": TENANT, "dataset": DATASET, "compare_id": "cmp-1"}
    return {
        "comparisons": [{
            **ids, "run_a": "rep-a", "run_b": "rep-b", "data_version_a": 3, "data_version_b": 4,
            "algorithm_a": "kmeans", "algorithm_b": "kmeans", "rows_a": 1900, "rows_b": 2000, "rows_both": 1850,
            "rows_only_a": 50, "rows_only_b": 150, "adjusted_rand_index": 0.7312, "adjusted_mutual_info": 0.6544,
            "created_at": dt.datetime(2024, 5, 1, 12),
        }],
        "comparison_migrations": [
            {**ids, "segment_id_a": 0, "segment_key_a": "S1", "segment_id_b": 0, "segment_key_b": "S1",
             "rows": 1000, "share_of_a": 1000 / 1350},
            {**ids, "segment_id_a": 0, "segment_key_a": "S1", "segment_id_b": 1, "segment_key_b": "S2",
             "rows": 321, "share_of_a": 321 / 1350},
            {**ids, "segment_id_a": 0, "segment_key_a": "S1", "segment_id_b": None, "segment_key_b": None,
             "rows": 29, "share_of_a": 29 / 1350},
            {**ids, "segment_id_a": 1, "segment_key_a": "S3", "segment_id_b": 2, "segment_key_b": "S4",
             "rows": 529, "share_of_a": 529 / 550},
            {**ids, "segment_id_a": 1, "segment_key_a": "S3", "segment_id_b": None, "segment_key_b": None,
             "rows": 21, "share_of_a": 21 / 550},
            {**ids, "segment_id_a": None, "segment_key_a": None, "segment_id_b": 1, "segment_key_b": "S2",
             "rows": 150, "share_of_a": None},
        ],
        "comparison_segments": [
            {**ids, "segment_key": "S1", "segment_id_a": 0, "segment_id_b": 0, "size_a": 1350, "size_b": 1234,
             "share_a": 1350 / 1900, "share_b": 0.617, "size_change": -116, "share_change": 0.617 - 1350 / 1900,
             "centre_drift": 0.125},
            {**ids, "segment_key": "S2", "segment_id_a": None, "segment_id_b": 1, "size_a": None, "size_b": 471,
             "share_a": None, "share_b": 0.2356, "size_change": None, "share_change": None, "centre_drift": None},
        ],
    }


@pytest.fixture(autouse=True, scope="module")
def restore_package_logging():
    """Undo configure_logging of the job, whose handler points at a stream that pytest closes."""
    package_logger = logging.getLogger("stratify_spark")
    saved = (package_logger.handlers[:], package_logger.level, package_logger.propagate)
    yield
    package_logger.handlers[:], package_logger.level, package_logger.propagate = saved


@pytest.fixture(scope="module")
def report_warehouse(spark, tmp_path_factory) -> str:
    warehouse = str(tmp_path_factory.mktemp("report") / "warehouse")

    def append(spec, rows: list[dict]) -> None:
        # One commit that creates the table with its rows, where append_rows would make two.
        (tables.rows_df(spark, spec, rows).write.format("delta").partitionBy(*spec.partition_by)
         .save(tables.table_path(warehouse, spec)))

    rule_run = {**run_row("rep-rules", "succeeded", 8, 4), "algorithm": "rfm", "k_requested": 3,
                "parameters": json.dumps({"name": "rfm", "recency": "recency_days", "segments": [{"name": "x"}]})}
    append(tables.RUNS, [run_row("rep-a", "succeeded", 9, 3), run_row("rep-b", "succeeded", 11, 4),
                         run_row("rep-failed", "failed", 10, 4), rule_run])
    append(tables.SEGMENT_PROFILES, profile_rows("rep-a", [
        (0, "S1", 1350, 1350 / 1900, 180.0, 0.2, 20.0, -0.8),
        (1, "S3", 550, 550 / 1900, 90.0, -0.6, 150.0, 1.9),
    ]) + profile_rows("rep-b", [
        (0, "S1", 1234, 0.617, 234.5678, 1.5, 12.5, -1.1),
        (1, "S2", 471, 0.2356, 140.0, -0.1, 55.0, -0.2),
        (2, "S4", 295, 0.1475, 35.25, -1.2, 210.0, 2.4),
    ]) + [
        {**row, "segment_name": "champions" if row["segment_id"] == 0 else "other",
         "rule": "r_score >= 4 and m_score >= 4" if row["segment_id"] == 0 else "(default: rows that match no rule)"}
        for row in profile_rows("rep-rules", [(0, "S1", 1500, 0.75, 300.0, 1.0, 10.0, -1.0),
                                              (2, "S2", 500, 0.25, 50.0, -1.0, 200.0, 1.0)])
    ])
    append(tables.RUN_CUT_POINTS, [
        {"tenant": TENANT, "dataset": DATASET, "run_id": "rep-rules", "band": band, "feature": feature, "bands": 5,
         "descending": descending, "cut_points": cut_points, "source_run_id": source}
        for band, feature, descending, cut_points, source in (
            ("m_score", "monetary", False, [250.15, 490.22, 942.26, 2059.45], None),
            ("r_score", "recency_days", True, [13.0, 33.0, 72.0, 180.0], "rep-old"),
        )
    ])
    append(tables.RUN_RULES, [
        {"tenant": TENANT, "dataset": DATASET, "run_id": "rep-rules", "segment_id": segment_id,
         "segment_name": name, "rule": rule, "is_default": rule is None}
        for segment_id, name, rule in ((0, "champions", "r_score >= 4 and m_score >= 4"),
                                       (1, "at_risk", "r_score <= 2 and f_score >= 3"), (2, "other", None))
    ])
    append(tables.RUN_METRICS, [
        {"tenant": TENANT, "dataset": DATASET, "run_id": "rep-b", "metric": metric, "value": value, "detail": detail}
        for metric, value, detail in (("silhouette", 0.6123, "distance: squared_euclidean"),
                                      ("k_requested", 3.0, "segments requested in the config"),
                                      ("k_chosen", 3.0, "silhouette: k=3 has the highest value, 0.6123"),
                                      ("training_cost", 4567.891, "sum of squared distances"))
    ])
    append(tables.SEGMENT_KEYS, [
        {"tenant": TENANT, "dataset": DATASET, "run_id": "rep-b", "segment_id": segment_id, "segment_key": key,
         "reference_run_id": "rep-a", "reference_segment_key": reference, "status": status}
        for segment_id, key, reference, status in ((0, "S1", "S1", "kept"), (1, "S2", None, "new"),
                                                   (2, "S4", "S3", "kept"), (None, "S9", "S9", "retired"))
    ])
    append(tables.ENTITY_BUILDS, [{
        "tenant": TENANT, "dataset": DATASET, "build_id": "build-7", "source_dataset": "transactions",
        "source_version": 12, "reference_date": dt.date(2011, 12, 10), "status": "succeeded",
        "rows_read": 150000, "rows_used": 6015, "rows_excluded": 143985,
        "exclusion_counts": {"missing_entity_key": 135080, "cancellation": 8905}, "entities": 2010,
        "data_version": 4,
    }])
    specs = {spec.name: spec for spec in tables.TABLES}
    for name, rows in comparison_rows().items():
        append(specs[name], rows)
    return warehouse


@pytest.fixture(scope="module")
def english_report(report_warehouse, tmp_path_factory) -> tuple[int, dict, str]:
    output = tmp_path_factory.mktemp("report-en") / "nested" / "report.html"
    code, summary = run_report_job(["--tenant", TENANT, "--dataset", DATASET, "--warehouse", report_warehouse,
                                    "--compare-id", "cmp-1", "--output", str(output), "--log-level", "WARNING"])
    return code, summary, output.read_text(encoding="utf-8") if output.exists() else ""


@pytest.fixture(scope="module")
def portuguese_report(report_warehouse, tmp_path_factory) -> tuple[int, dict, str]:
    output = tmp_path_factory.mktemp("report-pt") / "relatorio.html"
    code, summary = run_report_job(["--tenant", TENANT, "--dataset", DATASET, "--warehouse", report_warehouse,
                                    "--compare-id", "cmp-1", "--lang", "pt-BR", "--output", str(output),
                                    "--log-level", "WARNING"])
    return code, summary, output.read_text(encoding="utf-8") if output.exists() else ""


def text_of(page: str) -> str:
    """Return the page's visible text and tooltips with tags removed and entities decoded."""
    import html

    return html.unescape(re.sub(r"<[^>]+>", " ", page))


# --- the job on the fixture tables ------------------------------------------------------------------


def test_report_job_summary(english_report):
    code, summary, _ = english_report

    assert code == 0, summary
    assert summary["status"] == "succeeded"
    assert summary["run_id"] == "rep-b"  # the comparison's later run
    assert summary["compare_id"] == "cmp-1"
    assert summary["segments"] == 3


def test_report_segment_keys_and_sizes(english_report):
    text = text_of(english_report[2])

    for key in ("S1", "S2", "S4"):
        assert key in text
    assert "1,234 · 61.7%" in text
    assert "471 · 23.6%" in text
    assert "295 · 14.8%" in text


def test_report_profile_values(english_report):
    text = text_of(english_report[2])

    assert "mean 234.6" in text  # monetary mean of S1 in the tooltip
    assert "mean of all rows 150" in text
    assert "+1.50" in text  # its z-score in the heat map cell
    assert "-1.10" in text


def test_report_generated_descriptions(english_report):
    text = text_of(english_report[2])

    assert "S1 · high monetary, recent" in text
    assert "S2 · close to average" in text
    assert "S4 · not recent, low monetary" in text


def test_report_key_statuses(english_report):
    page = english_report[2]

    assert "<td>kept</td>" in page
    assert "<td>new</td>" in page
    assert "<td>S9</td>" in page  # the retired key is listed
    assert "<td>retired</td>" in page


def test_report_run_facts(english_report):
    text = text_of(english_report[2])

    assert "Tenant" in text
    assert "acme" in text
    assert "k = 3, seed = 42" in text
    assert "name = kmeans" not in text
    assert "3 used (silhouette: k=3 has the highest value, 0.6123), 3 produced" in text
    assert "2,010" in text
    assert "2,000" in text
    assert "0.6123" in text
    assert "distance: squared_euclidean" in text
    assert "4,567.8910" in text


def test_report_excluded_rows(english_report):
    text = text_of(english_report[2])

    assert "feature build build-7 from transactions version 12" in text
    assert "135,080" in text
    assert "8,905" in text
    assert "missing customer or entity key" in text


def test_report_migration_flows(english_report):
    text = text_of(english_report[2])

    assert ("529 rows (96.2% of S3 · not recent, low monetary) moved from S3 · not recent, low monetary to "
            "S4 · not recent, low monetary.") in text
    assert "321 rows (23.8% of S1 · recent) moved from S1 · recent to S2 · close to average." in text
    assert "150 rows in S2 · close to average were not in run rep-a." in text
    assert "29 rows (2.1% of S1 · recent) of S1 · recent are not in run rep-b." in text
    assert text.index("321 rows") < text.index("150 rows in")  # moves between segments come first
    assert "0.731" in text
    assert "0.654" in text


def test_report_migration_matrix(english_report):
    page = english_report[2]

    assert "S1 · recent → S1 · high monetary, recent: 1,000 rows, 74.1%" in page
    assert "not in run rep-a → S2 · close to average: 150 rows" in page


def test_report_segment_changes(english_report):
    text = text_of(english_report[2])

    assert "Size in rep-a" in text
    assert "-116" in text
    assert "-9.35" in text  # share change of S1 in percentage points
    assert "0.125" in text


def test_report_no_external_references(english_report, portuguese_report):
    for page in (english_report[2], portuguese_report[2]):
        assert page.startswith("<!DOCTYPE html>")
        assert EXTERNAL_REFERENCE.search(page) is None, EXTERNAL_REFERENCE.search(page).group(0)
        assert "<svg" in page


def test_report_portuguese_labels(portuguese_report):
    code, summary, page = portuguese_report
    text = text_of(page)

    assert code == 0, summary
    assert '<html lang="pt-BR">' in page
    assert "Relatório de segmentação" in text
    assert "Tamanho dos segmentos" in text
    assert "S1 · monetary acima da média, compra recente" in text
    assert "Maiores movimentos" in text
    assert "Segment sizes" not in text


def test_report_portuguese_numbers(portuguese_report):
    text = text_of(portuguese_report[2])

    assert "1.234 · 61,7%" in text
    assert "média 234,6" in text
    assert "0,6123" in text
    assert "135.080" in text
    assert "4.567,8910" in text


def test_report_latest_run_by_default(report_warehouse, tmp_path):
    code, summary = run_report_job(["--tenant", TENANT, "--dataset", DATASET, "--warehouse", report_warehouse,
                                    "--output", str(tmp_path / "latest.html"), "--log-level", "WARNING"])

    assert code == 0, summary
    assert summary["run_id"] == "rep-b"  # finished after rep-a; rep-failed is skipped
    assert "What changed" not in (tmp_path / "latest.html").read_text(encoding="utf-8")


def test_report_rejects_failed_run(report_warehouse, tmp_path):
    code, summary = run_report_job(["--tenant", TENANT, "--dataset", DATASET, "--warehouse", report_warehouse,
                                    "--run-id", "rep-failed", "--output", str(tmp_path / "failed.html"),
                                    "--log-level", "ERROR"])

    assert code == 3
    assert "has status 'failed'" in summary["error"]
    assert "rep-b" in summary["error"]  # it names a run that works
    assert not (tmp_path / "failed.html").exists()


def test_report_rejects_run_outside_comparison(report_warehouse, tmp_path):
    code, summary = run_report_job(["--tenant", TENANT, "--dataset", DATASET, "--warehouse", report_warehouse,
                                    "--run-id", "rep-a", "--compare-id", "cmp-1",
                                    "--output", str(tmp_path / "a.html"), "--log-level", "ERROR"])

    assert code == 2
    assert "--run-id rep-b" in summary["error"]


def test_report_needs_data_set(tmp_path):
    code, summary = run_report_job(["--tenant", TENANT, "--output", str(tmp_path / "x.html"),
                                    "--log-level", "ERROR"])

    assert code == 2
    assert "--dataset" in summary["error"]


def test_report_rule_run_segments(spark, report_warehouse):
    run = load_run(spark, report_warehouse, TENANT, DATASET, "rep-rules")
    page = render_report(run, Texts("pt-BR"))
    text = text_of(page)

    assert [segment.segment_name for segment in run.segments] == ["champions", "at_risk", "other"]
    assert run.segments[1].size == 0  # declared in run_rules, no rows, so no profile
    assert "#1 · at_risk" in text
    assert "0 · 0,0%" in text
    assert "r_score &gt;= 4 and m_score &gt;= 4" in page
    assert "(padrão: nenhuma regra se aplicou)" in text
    assert "250,15; 490,22; 942,26; 2.059,45" in text
    assert "r_score ↓" in text
    assert "13; 33; 72; 180 (da execução rep-old)" in text
    assert "segments = " not in text  # the rule list is in the segment table, not in the parameters
    assert "recency = recency_days" in text


# --- pure helpers -----------------------------------------------------------------------------------


def segment_with(*features: tuple[str, float], name: str | None = None) -> Segment:
    return Segment(segment_id=0, size=10, share=0.5, segment_key="S1", segment_name=name,
                   features=tuple(FeatureStats(feature=feature, mean=1.0, z_score=z) for feature, z in features))


def test_describe_segment_strongest_first():
    segment = segment_with(("frequency", 0.7), ("monetary", -1.8), ("tenure", 1.1))

    assert describe_segment(segment, Texts("en"), set()) == "low monetary, high tenure"


def test_describe_segment_recency_words():
    recent = segment_with(("recency_days", -0.9))
    lapsed = segment_with(("days_since_visit", 1.4))

    assert describe_segment(recent, Texts("en"), {"recency_days"}) == "recent"
    assert describe_segment(lapsed, Texts("en"), {"days_since_visit"}) == "not recent"
    assert describe_segment(recent, Texts("pt-BR"), {"recency_days"}) == "compra recente"


def test_describe_segment_somewhat_words():
    segment = segment_with(("monetary", 0.49), ("recency_days", -0.3), ("tenure", None))
    lapsing = segment_with(("recency_days", 0.4), ("frequency", -0.26))

    assert describe_segment(segment, Texts("en"), {"recency_days"}) == "somewhat high monetary, fairly recent"
    assert describe_segment(lapsing, Texts("en"), {"recency_days"}) == "less recent, somewhat low frequency"
    assert describe_segment(segment, Texts("pt-BR"), {"recency_days"}) == (
        "monetary um pouco acima da média, compra relativamente recente")


def test_describe_segment_small_z_is_average():
    segment = segment_with(("monetary", 0.24), ("frequency", -0.2), ("tenure", None))

    assert describe_segment(segment, Texts("en"), set()) == "close to average"


def test_number_formats_by_language():
    english, portuguese = Texts("en"), Texts("pt-BR")

    assert english.number(1234567.891, 2) == "1,234,567.89"
    assert portuguese.number(1234567.891, 2) == "1.234.567,89"
    assert english.percent(0.2084) == "20.8%"
    assert portuguese.percent(0.2084) == "20,8%"
    assert portuguese.integer(4372) == "4.372"
    assert portuguese.significant(0.012345) == "0,01235"
    assert english.significant(2059.45, 6) == "2,059.45"
    assert portuguese.join(["250,15", "490,22"]) == "250,15; 490,22"
    assert english.number(None) == "–"


def test_portuguese_has_every_label():
    assert set(MESSAGES["pt-BR"]) == set(MESSAGES["en"])
    for key, text in MESSAGES["en"].items():
        assert set(re.findall(r"{(\w+)}", MESSAGES["pt-BR"][key])) == set(re.findall(r"{(\w+)}", text)), key


def test_render_escapes_table_text():
    hostile = Segment(segment_id=0, size=5, share=1.0, segment_name='<script>alert("x")</script>',
                      rule="a < 3 and b > 2",
                      features=(FeatureStats(feature="spend", mean=2.0, overall_mean=2.0, z_score=0.0),))
    run = RunSummary(tenant=TENANT, dataset=DATASET, run_id="r1", status="succeeded", algorithm="rules",
                     parameters={}, data_version=0, finished_at=None, seconds=1.0, rows_input=5, rows_used=5,
                     rows_dropped=0, k_requested=1, k_produced=1, segments=(hostile,))

    page = render_report(run, Texts("en"))

    assert "<script" not in page
    assert "&lt;script&gt;" in page
    assert "a &lt; 3 and b &gt; 2" in page


def test_resolve_data_set_sources(tmp_path):
    config = tmp_path / "acme.yaml"
    config.write_text("tenant: acme\ndataset: customers\nsource: {format: csv}\n"
                      "columns:\n  - {name: customer_id, type: string}\n", encoding="utf-8")

    assert resolve_data_set(ReportRequest(output="x.html", config_path=str(config))) == ("acme", "customers")
    assert resolve_data_set(ReportRequest(output="x.html", tenant="acme", dataset="orders")) == ("acme", "orders")
    with pytest.raises(ConfigError, match="--tenant 'other' does not match 'acme'"):
        resolve_data_set(ReportRequest(output="x.html", config_path=str(config), tenant="other"))
    with pytest.raises(ConfigError, match="invalid data set name 'Orders'"):
        resolve_data_set(ReportRequest(output="x.html", tenant="acme", dataset="Orders"))


def test_write_atomically_replaces_file(tmp_path):
    target = tmp_path / "report.html"
    target.write_text("old", encoding="utf-8")

    write_atomically(target, "new page")

    assert target.read_text(encoding="utf-8") == "new page"
    assert [path.name for path in tmp_path.iterdir()] == ["report.html"]
