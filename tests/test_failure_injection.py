"""Injected failures: a run or ingest that fails mid-write leaves nothing visible, and task retries keep counts exact.

Failures are injected by monkeypatching a table writer in-process. The task-retry
case needs its own Spark master (local[2,3]: 2 threads, 3 attempts per task), so it
runs jobs/ingest.py in a subprocess. A small driver script there wraps the source
DataFrame, and every task that reads it fails on its first attempt. The product code
has no test hook.
"""

from __future__ import annotations

import threading

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from stratify_spark import tables
from stratify_spark.config import parse_config
from stratify_spark.ingest import run_ingest
from stratify_spark.segment import run_segment

REPO = Path(__file__).resolve().parent.parent

CONFIG = {
    "tenant": "acme",
    "dataset": "customers",
    "source": {"format": "csv"},
    "columns": [{"name": "id", "type": "string", "required": True}, {"name": "spend", "type": "double"}],
    "key": {"columns": ["id"], "duplicates": "keep_first"},
    "segment": {"features": [{"name": "spend"}], "algorithm": {"name": "kmeans", "k": 2, "seed": 3}},
}
SOURCE = "id,spend\nc1,1.0\nc2,1.5\nc3,2.0\nc4,50.0\nc5,51.0\nc6,52.5\n"


def result_rows(spark, warehouse: str, run_id: str) -> dict[str, list[str]]:
    """Return every result table's rows of one run, as sorted text, for exact comparison."""
    rows = {}
    for spec in tables.RUN_RESULT_TABLES:
        path = tables.table_path(warehouse, spec)
        if not tables.is_delta_table(spark, path):
            continue
        data = spark.read.format("delta").load(path).filter((F.col("tenant") == "acme") & (F.col("run_id") == run_id))
        rows[spec.name] = sorted(repr(tuple(row)) for row in data.collect())
    return rows


def run_status(spark, warehouse: str, run_id: str) -> list[tuple]:
    runs = spark.read.format("delta").load(tables.table_path(warehouse, tables.RUNS))
    return [(row["status"], row["error"]) for row in runs.filter(F.col("run_id") == run_id).collect()]


@pytest.fixture
def ingested(spark, tmp_path):
    warehouse = str(tmp_path / "warehouse")
    source = tmp_path / "customers.csv"
    source.write_text(SOURCE, encoding="utf-8")
    config = parse_config(CONFIG, "acme.yaml")
    run_ingest(spark, config, str(source), warehouse)
    return config, warehouse, tmp_path


def failing_on_call(real, failing_call: int, calls: list):
    # Writes run in several threads, so the call number is taken under a lock.
    lock = threading.Lock()

    def writer(*args, **kwargs):
        with lock:
            calls.append(args[2].name)
            number = len(calls)
        if number == failing_call:
            raise OSError(f"injected failure while writing {args[2].name}")
        return real(*args, **kwargs)
    return writer


def test_run_failing_mid_write(spark, ingested, monkeypatch):
    config, warehouse, _ = ingested
    first = run_segment(spark, config, warehouse, run_id="r1")
    finished = result_rows(spark, warehouse, "r1")
    calls: list[str] = []

    # The second result-table write of the re-run raises, after the first one replaced its rows.
    monkeypatch.setattr(tables, "replace_run_rows", failing_on_call(tables.replace_run_rows, 2, calls))
    with pytest.raises(OSError, match="injected failure"):
        run_segment(spark, config, warehouse, run_id="r1")
    monkeypatch.undo()

    # Result tables are written a few at a time, so the other writes may have run too.
    assert len(calls) >= 2
    [(status, error)] = run_status(spark, warehouse, "r1")
    assert status == "failed"
    assert error.startswith("injected failure while writing")
    assert all(rows == [] for rows in result_rows(spark, warehouse, "r1").values()), result_rows(spark, warehouse, "r1")

    again = run_segment(spark, config, warehouse, run_id="r1")

    assert run_status(spark, warehouse, "r1") == [("succeeded", None)]
    assert result_rows(spark, warehouse, "r1") == finished
    assert again.k_produced == first.k_produced
    assert len(finished["assignments"]) == 6


def test_ingest_failing_after_data_write(spark, ingested, monkeypatch):
    config, warehouse, folder = ingested
    from stratify_spark import ingest

    path = tables.dataset_path(warehouse, "acme", "customers")
    version_before = tables.current_version(spark, path)
    second = folder / "second.csv"
    second.write_text("id,spend\nc7,9.0\nc8,oops\n", encoding="utf-8")
    real_record = ingest._record_ingest

    def record_fails_on_success(spark_session, warehouse_root, row):
        if row["status"] == "succeeded":
            raise OSError("injected failure while recording the ingest")
        real_record(spark_session, warehouse_root, row)

    monkeypatch.setattr(ingest, "_record_ingest", record_fails_on_success)
    with pytest.raises(OSError, match="injected failure"):
        run_ingest(spark, config, str(second), warehouse, ingest_id="late-failure")

    data = spark.read.format("delta").load(path)
    assert sorted(row["id"] for row in data.collect()) == ["c1", "c2", "c3", "c4", "c5", "c6"]
    assert tables.current_version(spark, path) == version_before + 2  # the write, then the restore
    ledger = spark.read.format("delta").load(tables.table_path(warehouse, tables.INGESTS))
    assert [row["status"] for row in ledger.filter("ingest_id = 'late-failure'").collect()] == ["failed"]
    quarantine = spark.read.format("delta").load(tables.table_path(warehouse, tables.QUARANTINE))
    assert quarantine.filter("ingest_id = 'late-failure'").count() == 0


DRIVER = textwrap.dedent("""\
    import importlib.util
    import sys

    from pyspark import TaskContext

    from stratify_spark import ingest

    real_read_raw = ingest.read_raw


    def fail_first_attempt(batches):
        if TaskContext.get().attemptNumber() == 0:
            raise RuntimeError("injected failure on the first attempt of the task")
        yield from batches


    def read_raw_with_failures(spark, config, path):
        raw = real_read_raw(spark, config, path)
        return raw.mapInArrow(fail_first_attempt, raw.schema)


    ingest.read_raw = read_raw_with_failures
    spec = importlib.util.spec_from_file_location("ingest_job", sys.argv[1])
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    sys.exit(job.main(sys.argv[2:]))
""")


def test_task_retries_give_exact_counts(spark, tmp_path):
    warehouse = str(tmp_path / "warehouse")
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER, encoding="utf-8")
    source = tmp_path / "customers.csv"
    source.write_text(SOURCE + "c2,7.0\nc9,x\n", encoding="utf-8")
    config = tmp_path / "acme.yaml"
    config.write_text(json.dumps(CONFIG), encoding="utf-8")
    # The Python workers need the venv's pyarrow, but Spark starts them with python3 unless PYSPARK_PYTHON is set.
    environment = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYTHONPATH": str(REPO),
                   "PYSPARK_PYTHON": sys.executable}

    completed = subprocess.run(
        [sys.executable, str(driver), str(REPO / "jobs" / "ingest.py"), "--master", "local[2,3]",
         "--config", str(config), "--source", str(source), "--warehouse", warehouse, "--ingest-id", "retried",
         "--log-level", "WARNING"],
        capture_output=True, text=True, env=environment, cwd=str(REPO), timeout=900,
    )

    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "injected failure on the first attempt" in completed.stderr
    summary = json.loads(completed.stdout.strip().splitlines()[-1])
    assert summary["rows_read"] == 8
    assert summary["rows_loaded"] == 6
    assert summary["rows_quarantined"] == 2
    assert summary["reason_counts"] == {"duplicate_record_key": 1, "invalid_number": 1}
    data = spark.read.format("delta").load(tables.dataset_path(warehouse, "acme", "customers"))
    assert sorted(row["id"] for row in data.collect()) == ["c1", "c2", "c3", "c4", "c5", "c6"]
    quarantine = spark.read.format("delta").load(tables.table_path(warehouse, tables.QUARANTINE))
    assert sorted(row["reason_code"] for row in quarantine.collect()) == ["duplicate_record_key", "invalid_number"]
