"""Run history end to end: two ingest batches, refresh, compare (against scikit-learn), score and reproduce.

Batch 1 has three planted groups of 20 customers (a, b, c). Batch 2 appends 10
new customers near group b and re-sends 5 customers of group a with values that
now put them in group c, so the data set moves to Delta version 1.
"""

from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path

import pytest
from pyspark.sql import functions as F
from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score

from stratify_spark import tables

JOBS_DIR = Path(__file__).resolve().parent.parent / "jobs"
CENTRES = {"a": (10.0, 100.0), "b": (50.0, 500.0), "c": (90.0, 2000.0)}

CONFIG = """\
tenant: history_tenant
dataset: shoppers
source: {format: csv}
columns:
  - {name: customer_id, type: string, required: true}
  - {name: visits, type: double}
  - {name: spend, type: double}
key:
  columns: [customer_id]
  duplicates: keep_last
ingest: {mode: append}
segment:
  features: [{name: visits}, {name: spend, log1p: true}]
  scaling: standard
  algorithm: {name: kmeans, k: 3, seed: 3}
"""


def load_job(name: str):
    spec = importlib.util.spec_from_file_location(f"stratify_history_job_{name}", JOBS_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


INGEST, SEGMENT, COMPARE, SCORE = (load_job(name) for name in ("ingest", "segment", "compare", "score"))


def last_summary(stdout: str) -> dict:
    return json.loads([line for line in stdout.splitlines() if line.strip()][-1])


def group_rows(group: str, start: int, count: int, rng: random.Random, as_group: str | None = None) -> list[str]:
    visits, spend = CENTRES[as_group or group]
    return [f"{group}{index:02d},{visits + rng.gauss(0, 1):.3f},{spend * (1 + rng.gauss(0, 0.02)):.2f}"
            for index in range(start, start + count)]


@pytest.fixture(scope="module")
def history(spark, tmp_path_factory):
    """Ingest batch 1, segment it, ingest batch 2, refresh twice, compare, and keep every summary."""
    folder = tmp_path_factory.mktemp("history")
    warehouse = str(folder / "warehouse")
    config = folder / "shoppers.yaml"
    config.write_text(CONFIG)
    rng = random.Random(11)
    header = ["customer_id,visits,spend"]
    batch1 = folder / "batch1.csv"
    batch1.write_text("\n".join(header + group_rows("a", 0, 20, rng) + group_rows("b", 0, 20, rng)
                                + group_rows("c", 0, 20, rng)) + "\n")
    batch2 = folder / "batch2.csv"
    batch2.write_text("\n".join(header + group_rows("b", 20, 10, rng) + group_rows("a", 0, 5, rng, as_group="c"))
                      + "\n")
    common = ["--config", str(config), "--warehouse", warehouse, "--log-level", "WARNING"]
    outputs = {}

    def run(name, job, *extra):
        code = job.main(common + list(extra))
        outputs[name] = code
        return code

    assert run("ingest1", INGEST, "--source", str(batch1)) == 0
    assert run("run1", SEGMENT, "--refresh", "--run-id", "hist-1") == 0
    assert run("ingest2", INGEST, "--source", str(batch2)) == 0
    return {"warehouse": warehouse, "common": common, "folder": folder}


def assignments(spark, warehouse: str, run_id: str) -> dict[str, tuple[int, str, float]]:
    rows = tables.read_run_rows(spark, warehouse, tables.ASSIGNMENTS, "history_tenant", run_id).collect()
    return {row["record_key"]: (row["segment_id"], row["segment_key"], row["distance"]) for row in rows}


def test_refresh_runs_once_then_skips(spark, history, capsys):
    warehouse, common = history["warehouse"], history["common"]
    capsys.readouterr()

    assert SEGMENT.main(common + ["--refresh", "--run-id", "hist-2"]) == 0
    first = last_summary(capsys.readouterr().out)
    assert (first["status"], first["data_version"], first["rows_input"]) == ("succeeded", 1, 70)

    assert SEGMENT.main(common + ["--refresh", "--run-id", "hist-3"]) == 0
    second = last_summary(capsys.readouterr().out)
    assert second["status"] == "skipped"
    assert "data version 1 is unchanged since run hist-2" in second["reason"]

    assert SEGMENT.main(common + ["--refresh", "--run-id", "hist-3", "--exit-code-when-unchanged", "4"]) == 4
    run_ids = {row["run_id"] for row in spark.read.format("delta").load(f"{warehouse}/tables/runs")
               .where("tenant = 'history_tenant'").collect()}
    assert run_ids == {"hist-1", "hist-2"}


def test_compare_matrix_and_agreement(spark, history, capsys):
    warehouse, common = history["warehouse"], history["common"]
    if not tables.read_run_rows(spark, warehouse, tables.ASSIGNMENTS, "history_tenant", "hist-2").count():
        assert SEGMENT.main(common + ["--run-id", "hist-2"]) == 0
    capsys.readouterr()

    assert COMPARE.main(common + ["--run-a", "hist-1", "--run-b", "hist-2"]) == 0
    summary = last_summary(capsys.readouterr().out)

    before, after = assignments(spark, warehouse, "hist-1"), assignments(spark, warehouse, "hist-2")
    shared = sorted(set(before) & set(after))
    assert (summary["rows_a"], summary["rows_b"], summary["rows_both"]) == (60, 70, 60)
    labels_a = [before[key][0] for key in shared]
    labels_b = [after[key][0] for key in shared]
    assert summary["adjusted_rand_index"] == pytest.approx(adjusted_rand_score(labels_a, labels_b), abs=1e-9)
    assert summary["adjusted_mutual_info"] == pytest.approx(adjusted_mutual_info_score(labels_a, labels_b), abs=1e-9)
    assert summary["adjusted_rand_index"] < 1.0

    cells = tables.read_run_rows(spark, warehouse, tables.COMPARISON_MIGRATIONS, "history_tenant",
                                 summary["compare_id"]).collect()
    in_both = [cell for cell in cells if cell["segment_id_a"] is not None and cell["segment_id_b"] is not None]
    assert sum(cell["rows"] for cell in in_both) == 60
    only_b = [cell for cell in cells if cell["segment_id_a"] is None]
    assert sum(cell["rows"] for cell in only_b) == 10
    # The five moved customers were in group a's segment and are now in group c's.
    key_a, key_c = before["a00"][1], before["c00"][1]
    assert after["c00"][1] == key_c
    assert after["a10"][1] == key_a
    moved = {(cell["segment_key_a"], cell["segment_key_b"]): cell["rows"] for cell in in_both}
    assert moved[(key_a, key_c)] == 5
    assert summary["largest_flows"][0] == {"from": key_a, "to": key_c, "rows": 5, "share_of_from": 0.25}

    only_rows = tables.read_run_rows(spark, warehouse, tables.COMPARISON_ONLY_ROWS, "history_tenant",
                                     summary["compare_id"]).collect()
    assert sorted(row["record_key"] for row in only_rows) == [f"b{index}" for index in range(20, 30)]
    assert {row["present_in"] for row in only_rows} == {"b"}

    segments = {row["segment_key"]: row for row in tables.read_run_rows(
        spark, warehouse, tables.COMPARISON_SEGMENTS, "history_tenant", summary["compare_id"]).collect()}
    assert (segments[key_a]["size_a"], segments[key_a]["size_b"], segments[key_a]["size_change"]) == (20, 15, -5)
    assert segments[key_c]["size_b"] == 25
    assert segments[key_c]["share_change"] == pytest.approx(25 / 70 - 20 / 60)
    assert segments[key_a]["centre_drift"] is not None and segments[key_a]["centre_drift"] >= 0
    assert set(segments[key_a]["centre_change"]) == {"visits", "spend"}


def test_score_changed_rows_frozen_model(spark, history, tmp_path, capsys):
    warehouse, common = history["warehouse"], history["common"]
    extra = tmp_path / "batch3.csv"
    extra.write_text("customer_id,visits,spend\nn01,50.2,505.00\nn02,500.0,90000.00\n")
    assert INGEST.main(common + ["--source", str(extra)]) == 0
    capsys.readouterr()

    assert SCORE.main(common + ["--model-run", "hist-1", "--score-id", "score-hist"]) == 0
    summary = last_summary(capsys.readouterr().out)

    rows = {row["record_key"]: row for row in tables.read_run_rows(
        spark, warehouse, tables.SCORES, "history_tenant", "score-hist").collect()}
    before = assignments(spark, warehouse, "hist-1")
    # Changed since hist-1's data version: 10 new b customers, 5 re-sent a customers, and the two new rows.
    assert sorted(rows) == sorted([f"b{i}" for i in range(20, 30)] + [f"a{i:02d}" for i in range(5)] + ["n01", "n02"])
    assert rows["n01"]["segment_key"] == before["b00"][1]
    assert rows["a00"]["segment_key"] == before["c00"][1]
    assert rows["n02"]["is_outlier"] is True
    assert rows["n01"]["is_outlier"] is False
    assert rows["n01"]["margin"] == pytest.approx(rows["n01"]["second_distance"] - rows["n01"]["distance"])
    assert rows["n01"]["margin"] > 0
    assert summary["rows_scored"] == 17
    assert summary["rows_outliers"] >= 1


def test_reproduce_gives_same_assignments(spark, history, capsys):
    warehouse, common = history["warehouse"], history["common"]

    assert SEGMENT.main(common + ["--reproduce", "hist-1", "--run-id", "hist-1-again"]) == 0
    summary = last_summary(capsys.readouterr().out)

    assert summary["data_version"] == 0
    original, again = assignments(spark, warehouse, "hist-1"), assignments(spark, warehouse, "hist-1-again")
    assert len(original) == 60
    assert {key: value[:2] for key, value in again.items()} == {key: value[:2] for key, value in original.items()}
    assert all(again[key][2] == pytest.approx(original[key][2], abs=1e-12) for key in original)


EXPORT = load_job("export")


def test_export_keys_and_profiles(spark, history, tmp_path, capsys):
    warehouse, common = history["warehouse"], history["common"]
    output = tmp_path / "export"

    assert EXPORT.main(common + ["--run-id", "hist-1", "--output", str(output)]) == 0
    assert EXPORT.main(common + ["--run-id", "hist-1", "--output", str(output), "--format", "json"]) == 3
    assert "--overwrite" in last_summary(capsys.readouterr().out)["error"]

    exported = spark.read.option("header", "true").csv(str(output / "assignments"))
    before = assignments(spark, warehouse, "hist-1")
    assert {row["record_key"]: row["segment"] for row in exported.collect()} == \
        {key: value[1] for key, value in before.items()}
    profiles = spark.read.option("header", "true").csv(str(output / "profiles"))
    assert {row["feature"] for row in profiles.collect()} == {"visits", "spend"}
    assert sorted(part.suffix for part in (output / "assignments").glob("part-*")) and \
        all(part.suffix == ".csv" for part in (output / "assignments").glob("part-*"))


def test_views_latest_summary_comparison(spark, history):
    warehouse, common = history["warehouse"], history["common"]
    if not tables.read_run_rows(spark, warehouse, tables.ASSIGNMENTS, "history_tenant", "hist-2").count():
        assert SEGMENT.main(common + ["--run-id", "hist-2"]) == 0
    assert COMPARE.main(common + ["--run-a", "hist-1", "--run-b", "hist-2", "--compare-id", "views-compare"]) == 0
    tables.register_tables(spark, warehouse, schema_name="history_views")

    latest = spark.sql("SELECT run_id FROM history_views.latest_runs WHERE tenant = 'history_tenant'").collect()
    newest = (spark.read.format("delta").load(f"{warehouse}/tables/runs").where("tenant = 'history_tenant'")
              .orderBy(F.col("finished_at").desc()).first()["run_id"])
    assert [row["run_id"] for row in latest] == [newest]

    summary = spark.sql("SELECT segment_key, size, key_status FROM history_views.segment_summary "
                        "WHERE tenant = 'history_tenant' AND run_id = 'hist-1' ORDER BY segment_key").collect()
    assert [(row["segment_key"], row["size"], row["key_status"]) for row in summary] == [
        ("S1", 20, "new"), ("S2", 20, "new"), ("S3", 20, "new")]

    compared = spark.sql("SELECT sum(rows) AS rows FROM history_views.run_comparison "
                         "WHERE tenant = 'history_tenant' AND compare_id = 'views-compare' "
                         "AND segment_key_a IS NOT NULL AND segment_key_b IS NOT NULL").first()
    assert compared["rows"] == 60
