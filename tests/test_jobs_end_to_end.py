"""End to end: jobs/ingest.py and jobs/segment.py run in-process on a hand-made CSV in a fresh warehouse.

The CSV contains three well-separated customer groups of 20 rows each (ids L01-L20,
M01-M20, H01-H20) and five rows that must go to quarantine, one per reason.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.util
import io
import json
import logging
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from stratify_spark import tables

JOBS_DIR = Path(__file__).resolve().parent.parent / "jobs"
TENANT = "acme"
DATASET = "customers"
REGIONS = ("north", "south", "east", "west")

CONFIG_YAML = """\
tenant: acme
dataset: customers
source:
  format: csv
columns:
  - {{name: customer_id, type: string, required: true}}
  - {{name: region, type: string}}
  - {{name: signup_date, type: date, format: yyyy-MM-dd}}
  - {{name: annual_spend, type: "decimal(12,2)"}}
  - {{name: orders_per_year, type: integer}}
  - {{name: avg_basket, type: double}}
key:
  columns: [customer_id]
  duplicates: {duplicates}
ingest:
  mode: overwrite
segment:
  features:
    - {{name: annual_spend, log1p: true}}
    - {{name: orders_per_year}}
    - {{name: avg_basket, missing: {basket_missing}}}
  scaling: standard
  algorithm: {{name: kmeans, k: 3, seed: 42, max_iter: 30}}
"""

BAD_ROWS = [
    "X01,north,2023-13-45,500.00,5,60.00",          # invalid_date
    'X02,south,2023-02-01,"12,34",5,60.00',          # invalid_number (the decimal separator is '.')
    "L05,east,2023-03-03,999.00,9,99.00",            # duplicate_record_key (L05 comes earlier)
    ",west,2023-04-04,100.00,2,50.00",               # missing_record_key
    "X03,north,2023-05-05,100.00,2,50.00,extra",     # malformed_row
]
EXPECTED_REASONS = {
    "invalid_date": 1, "invalid_number": 1, "duplicate_record_key": 1, "missing_record_key": 1, "malformed_row": 1,
}
GOOD_KEYS = {f"{group}{number:02d}" for group in "LMH" for number in range(1, 21)}


def customer_lines() -> list[str]:
    """Return the 60 good rows: low (L), medium (M) and high (H) spenders.

    L01 spends 0.00 (log1p edge) and M07 has no avg_basket (imputed with the median).
    H20 has a quoted region with a comma and a non-ASCII letter.
    """
    lines = []
    for i in range(1, 21):
        region = REGIONS[i % 4]
        spend = "0.00" if i == 1 else f"{100 + i}.50"
        lines.append(f"L{i:02d},{region},2023-01-{i:02d},{spend},{2 + i % 2},{50 + i}.00")
    for i in range(1, 21):
        basket = "" if i == 7 else f"{80 + i % 5}.25"
        lines.append(f"M{i:02d},{REGIONS[i % 4]},2023-02-{i:02d},{1000 + 10 * i}.00,{12 + i % 3},{basket}")
    for i in range(1, 21):
        region = '"São Paulo, SP"' if i == 20 else REGIONS[i % 4]
        lines.append(f"H{i:02d},{region},2023-03-{i:02d},{10000 + 50 * i}.00,{50 + i % 4},{200 + i}.00")
    return lines


def write_inputs(folder: Path, duplicates: str = "keep_first", basket_missing: str = "median",
                 name: str = "tenant") -> tuple[str, str]:
    """Write the CSV and a config into `folder`; return (config path, CSV path)."""
    folder.mkdir(parents=True, exist_ok=True)
    csv_path = folder / "customers.csv"
    if not csv_path.exists():
        header = "customer_id,region,signup_date,annual_spend,orders_per_year,avg_basket"
        csv_path.write_text("\n".join([header, *customer_lines(), *BAD_ROWS]) + "\n", encoding="utf-8")
    config_path = folder / f"{name}.yaml"
    config_path.write_text(CONFIG_YAML.format(duplicates=duplicates, basket_missing=basket_missing),
                           encoding="utf-8")
    return str(config_path), str(csv_path)


def load_job(name: str):
    spec = importlib.util.spec_from_file_location(f"stratify_job_{name}", JOBS_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


INGEST_JOB = load_job("ingest")
SEGMENT_JOB = load_job("segment")


def run_captured(job, argv: list[str]) -> tuple[int, str]:
    """Run a job's main() and return its exit code and what it printed on stdout."""
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        code = job.main(argv)
    return code, output.getvalue()


def summary_of(stdout: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one summary line on stdout, got {lines!r}"
    return json.loads(lines[0])


def read_table(spark, warehouse: str, name: str):
    return spark.read.format("delta").load(f"{warehouse}/tables/{name}")


def run_rows(spark, warehouse: str, name: str, run_id: str):
    return read_table(spark, warehouse, name).filter((F.col("tenant") == TENANT) & (F.col("run_id") == run_id))


@pytest.fixture(autouse=True, scope="module")
def restore_package_logging():
    """Undo configure_logging of the jobs, whose handler points at a stream that pytest closes."""
    package_logger = logging.getLogger("stratify_spark")
    saved = (package_logger.handlers[:], package_logger.level, package_logger.propagate)
    yield
    package_logger.handlers[:], package_logger.level, package_logger.propagate = saved


@pytest.fixture(scope="module")
def pipeline(spark, tmp_path_factory):
    """Ingest, segment as run-1, then segment run-1 again, all in one fresh warehouse."""
    folder = tmp_path_factory.mktemp("pipeline")
    warehouse = str(folder / "warehouse")
    config_path, csv_path = write_inputs(folder)
    common = ["--config", config_path, "--warehouse", warehouse, "--log-level", "WARNING"]

    result = {"warehouse": warehouse, "folder": folder}
    result["ingest_code"], result["ingest_stdout"] = run_captured(
        INGEST_JOB, [*common, "--source", csv_path, "--ingest-id", "ingest-1"])
    result["segment_code"], result["segment_stdout"] = run_captured(SEGMENT_JOB, [*common, "--run-id", "run-1"])
    result["first_assignments"] = sorted(
        tuple(row) for row in run_rows(spark, warehouse, "assignments", "run-1")
        .select("record_key", "segment_id").collect()
    )
    result["rerun_code"], result["rerun_stdout"] = run_captured(SEGMENT_JOB, [*common, "--run-id", "run-1"])
    return result


# --- ingest -----------------------------------------------------------------------------------------


def test_ingest_exit_code(pipeline):
    assert pipeline["ingest_code"] == 0, pipeline["ingest_stdout"]


def test_ingest_summary_counts(pipeline):
    summary = summary_of(pipeline["ingest_stdout"])

    assert summary["job"] == "ingest"
    assert summary["status"] == "succeeded"
    assert summary["ingest_id"] == "ingest-1"
    assert summary["rows_read"] == 65
    assert summary["rows_loaded"] == 60
    assert summary["rows_quarantined"] == 5
    assert summary["duplicate_keys"] == 1
    assert summary["reason_counts"] == EXPECTED_REASONS
    assert summary["data_version"] == 0


def test_ingest_ledger_row(spark, pipeline):
    rows = read_table(spark, pipeline["warehouse"], "ingests").collect()

    assert len(rows) == 1
    row = rows[0]
    assert row["status"] == "succeeded"
    assert row["rows_read"] == 65
    assert row["rows_loaded"] == 60
    assert row["rows_quarantined"] == 5
    assert row["rows_read"] == row["rows_loaded"] + row["rows_quarantined"]
    assert row["reason_counts"] == EXPECTED_REASONS
    assert row["error"] is None


def test_ingest_data_table(spark, pipeline):
    data = spark.read.format("delta").load(f"{pipeline['warehouse']}/datasets/{TENANT}/{DATASET}")
    rows = {row["record_key"]: row for row in data.collect()}

    assert set(rows) == GOOD_KEYS
    assert len(rows) == data.count()
    # keep_first loads the first L05, not the later duplicate.
    assert rows["L05"]["annual_spend"] == Decimal("105.50")
    assert rows["L05"]["signup_date"] == dt.date(2023, 1, 5)
    assert rows["L05"]["orders_per_year"] == 3
    assert rows["L01"]["annual_spend"] == Decimal("0.00")
    assert rows["M07"]["avg_basket"] is None
    assert rows["H20"]["region"] == "São Paulo, SP"
    assert rows["H20"]["ingest_id"] == "ingest-1"


def test_ingest_quarantine_table(spark, pipeline):
    quarantine = read_table(spark, pipeline["warehouse"], "quarantine").filter(F.col("ingest_id") == "ingest-1")
    rows = quarantine.collect()

    assert Counter(row["reason_code"] for row in rows) == Counter(EXPECTED_REASONS)
    by_reason = {row["reason_code"]: row for row in rows}
    assert by_reason["invalid_date"]["raw"]["signup_date"] == "2023-13-45"
    assert by_reason["invalid_date"]["raw"]["customer_id"] == "X01"
    assert by_reason["invalid_number"]["raw"]["annual_spend"] == "12,34"
    assert by_reason["duplicate_record_key"]["raw"]["annual_spend"] == "999.00"
    assert by_reason["malformed_row"]["raw"]["_corrupt_record"] == "X03,north,2023-05-05,100.00,2,50.00,extra"
    assert {row["tenant"] for row in rows} == {TENANT}


# --- segment ----------------------------------------------------------------------------------------


def test_segment_exit_code(pipeline):
    assert pipeline["segment_code"] == 0, pipeline["segment_stdout"]


def test_segment_summary(pipeline):
    summary = summary_of(pipeline["segment_stdout"])

    assert summary["job"] == "segment"
    assert summary["status"] == "succeeded"
    assert summary["run_id"] == "run-1"
    assert summary["data_version"] == 0
    assert summary["k_requested"] == 3
    assert summary["k_produced"] == 3
    assert summary["rows_input"] == 60
    assert summary["rows_used"] == 60
    assert summary["rows_dropped"] == 0
    assert summary["silhouette_distance"] == "squared_euclidean"
    assert sorted(summary["segment_sizes"].values()) == [20, 20, 20]


def test_segment_keys_assigned_once(spark, pipeline):
    assignments = run_rows(spark, pipeline["warehouse"], "assignments", "run-1")
    keys = [row["record_key"] for row in assignments.select("record_key").collect()]

    assert len(keys) == 60
    assert set(keys) == GOOD_KEYS
    assert len(set(keys)) == len(keys)


def test_segment_finds_groups(spark, pipeline):
    assignments = run_rows(spark, pipeline["warehouse"], "assignments", "run-1").collect()
    segments_of_group: dict[str, set] = {}
    for row in assignments:
        segments_of_group.setdefault(row["record_key"][0], set()).add(row["segment_id"])

    assert all(len(segments) == 1 for segments in segments_of_group.values()), segments_of_group
    assert len(set.union(*segments_of_group.values())) == 3, segments_of_group


def test_segment_distances_present(spark, pipeline):
    assignments = run_rows(spark, pipeline["warehouse"], "assignments", "run-1")

    assert assignments.filter(F.col("distance").isNull() | (F.col("distance") < 0)).count() == 0


def test_segment_run_ledger(spark, pipeline):
    rows = run_rows(spark, pipeline["warehouse"], "runs", "run-1").collect()

    assert len(rows) == 1
    row = rows[0]
    assert row["status"] == "succeeded"
    assert row["error"] is None
    assert row["dataset"] == DATASET
    assert row["algorithm"] == "kmeans"
    assert row["data_version"] == 0
    assert row["rows_input"] == 60
    assert row["rows_used"] == 60
    assert row["rows_dropped"] == 0
    assert row["k_requested"] == 3
    assert row["k_produced"] == 3
    assert json.loads(row["parameters"])["seed"] == 42


def test_segment_profiles_table(spark, pipeline):
    profiles = run_rows(spark, pipeline["warehouse"], "segment_profiles", "run-1").collect()

    assert len(profiles) == 9
    assert {row["feature"] for row in profiles} == {"annual_spend", "orders_per_year", "avg_basket"}
    assert len({row["segment_id"] for row in profiles}) == 3
    for feature in ("annual_spend", "orders_per_year", "avg_basket"):
        sizes = [row["size"] for row in profiles if row["feature"] == feature]
        assert sum(sizes) == 60, (feature, sizes)


def test_segment_profile_values(spark, pipeline):
    assignments = run_rows(spark, pipeline["warehouse"], "assignments", "run-1").collect()
    segment_of = {row["record_key"]: row["segment_id"] for row in assignments}
    profiles = run_rows(spark, pipeline["warehouse"], "segment_profiles", "run-1").collect()
    profile = {(row["segment_id"], row["feature"]): row for row in profiles}

    high_orders = profile[(segment_of["H01"], "orders_per_year")]
    low_spend = profile[(segment_of["L01"], "annual_spend")]
    medium_basket = profile[(segment_of["M01"], "avg_basket")]

    # H orders are 50 + i % 4 for i = 1..20: five each of 50, 51, 52, 53.
    assert high_orders["mean"] == 51.5
    assert high_orders["min"] == 50.0
    assert high_orders["max"] == 53.0
    assert high_orders["size"] == 20
    assert high_orders["share"] == 1 / 3
    assert low_spend["min"] == 0.0
    # M07 has no avg_basket: 1 of 20 rows.
    assert medium_basket["null_rate"] == 0.05


def test_segment_metrics_table(spark, pipeline):
    metrics = {row["metric"]: row for row in run_rows(spark, pipeline["warehouse"], "run_metrics", "run-1").collect()}

    assert set(metrics) == {"training_cost", "silhouette", "iterations", "k_requested", "k_chosen", "k_produced",
                            "rows_input", "rows_used", "rows_dropped"}
    assert metrics["k_chosen"]["value"] == 3.0
    assert metrics["k_chosen"]["detail"] == "k from the config; the run has no k sweep"
    silhouette = metrics["silhouette"]
    assert silhouette["value"] is not None
    assert 0.5 < silhouette["value"] <= 1.0, silhouette["value"]
    assert "squared_euclidean" in silhouette["detail"], silhouette["detail"]
    assert metrics["rows_used"]["value"] == 60.0
    assert metrics["k_produced"]["value"] == 3.0


# --- re-running the same run id ---------------------------------------------------------------------


def test_rerun_exit_code(pipeline):
    assert pipeline["rerun_code"] == 0, pipeline["rerun_stdout"]
    assert summary_of(pipeline["rerun_stdout"])["status"] == "succeeded"


def test_rerun_replaces_assignments(spark, pipeline):
    rows = run_rows(spark, pipeline["warehouse"], "assignments", "run-1").select("record_key", "segment_id").collect()

    assert len(rows) == 60
    # The same seed and data give the same segments, so the replaced rows equal the first ones.
    assert sorted(tuple(row) for row in rows) == pipeline["first_assignments"]


def test_rerun_replaces_results(spark, pipeline):
    warehouse = pipeline["warehouse"]
    runs = run_rows(spark, warehouse, "runs", "run-1").collect()
    profiles = run_rows(spark, warehouse, "segment_profiles", "run-1").collect()
    metrics = run_rows(spark, warehouse, "run_metrics", "run-1").collect()

    assert [row["status"] for row in runs] == ["succeeded"]
    profile_keys = [(row["segment_id"], row["feature"]) for row in profiles]
    assert len(profile_keys) == 9, profile_keys
    assert len(set(profile_keys)) == 9, profile_keys
    metric_names = sorted(row["metric"] for row in metrics)
    assert metric_names == sorted(["training_cost", "silhouette", "iterations", "k_requested", "k_chosen",
                                   "k_produced", "rows_input", "rows_used", "rows_dropped"])


# --- failures ---------------------------------------------------------------------------------------


def test_failed_run_recorded(spark, pipeline, capsys):
    # M07 has no avg_basket, so the policy 'fail' stops the run before clustering.
    warehouse = pipeline["warehouse"]
    failing_config, _ = write_inputs(pipeline["folder"], basket_missing="fail", name="failing")

    code = SEGMENT_JOB.main(["--config", failing_config, "--warehouse", warehouse, "--run-id", "run-bad",
                             "--log-level", "WARNING"])

    captured = capsys.readouterr()
    assert code == 3, captured.err
    summary = summary_of(captured.out)
    assert summary["status"] == "failed"
    assert summary["exit_code"] == 3
    assert "feature 'avg_basket' has 1 missing (null or NaN) value(s)" in summary["error"], summary["error"]
    assert "error: " in captured.err

    runs = run_rows(spark, warehouse, "runs", "run-bad").collect()
    assert [row["status"] for row in runs] == ["failed"]
    assert "avg_basket" in runs[0]["error"]
    assert runs[0]["finished_at"] is not None
    for name in ("assignments", "segment_profiles", "run_metrics"):
        assert run_rows(spark, warehouse, name, "run-bad").count() == 0, name
    # The failed run leaves the results of other runs alone.
    assert run_rows(spark, warehouse, "assignments", "run-1").count() == 60


def test_ingest_duplicate_failure(spark, tmp_path, capsys):
    config_path, csv_path = write_inputs(tmp_path, duplicates="fail")
    warehouse = str(tmp_path / "warehouse")

    code = INGEST_JOB.main(["--config", config_path, "--source", csv_path, "--warehouse", warehouse,
                            "--ingest-id", "ingest-dup", "--log-level", "WARNING"])

    captured = capsys.readouterr()
    assert code == 3, captured.err
    summary = summary_of(captured.out)
    assert summary["status"] == "failed"
    assert summary["exit_code"] == 3
    assert "for example ['L05']" in summary["error"], summary["error"]

    ledger = read_table(spark, warehouse, "ingests").collect()
    assert [(row["ingest_id"], row["status"]) for row in ledger] == [("ingest-dup", "failed")]
    assert not tables.is_delta_table(spark, f"{warehouse}/datasets/{TENANT}/{DATASET}")


def test_segment_without_data(spark, tmp_path, capsys):
    config_path, _ = write_inputs(tmp_path)
    warehouse = str(tmp_path / "warehouse")

    code = SEGMENT_JOB.main(["--config", config_path, "--warehouse", warehouse, "--run-id", "run-empty",
                             "--log-level", "WARNING"])

    captured = capsys.readouterr()
    assert code == 3, captured.err
    assert "no data set table" in summary_of(captured.out)["error"]
    assert [row["status"] for row in run_rows(spark, warehouse, "runs", "run-empty").collect()] == ["failed"]


def test_bad_config_exit_code(tmp_path, capsys):
    config_path = tmp_path / "bad.yaml"
    config_path.write_text("tenant: ../x\n", encoding="utf-8")

    code = SEGMENT_JOB.main(["--config", str(config_path), "--warehouse", str(tmp_path / "warehouse")])

    captured = capsys.readouterr()
    assert code == 2, captured.err
    summary = summary_of(captured.out)
    assert summary["status"] == "failed"
    assert "tenant: invalid value '../x'" in summary["error"], summary["error"]
