"""Jobs at the same time: two tenants from an empty warehouse, and two writers on one tenant's tables.

The two-tenant case runs two driver processes (each with its own Spark session,
master local[1]) that ingest and then segment, so their Delta commits race for real.
The same-tenant cases run two jobs in threads of the test session; Delta's
optimistic concurrency checks commits of one process the same way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from stratify_spark import tables
from stratify_spark.config import parse_config
from stratify_spark.ingest import run_ingest
from stratify_spark.segment import run_segment

REPO = Path(__file__).resolve().parent.parent


def tenant_config(tenant: str) -> dict:
    return {
        "tenant": tenant,
        "dataset": "customers",
        "source": {"format": "csv"},
        "columns": [{"name": "id", "type": "string", "required": True}, {"name": "spend", "type": "double"}],
        "key": {"columns": ["id"], "duplicates": "keep_first"},
        "segment": {"features": [{"name": "spend"}], "algorithm": {"name": "kmeans", "k": 2, "seed": 5}},
    }


def source_text(prefix: str, count: int) -> str:
    lines = [f"{prefix}{number},{(number % 2) * 100 + number}.0" for number in range(1, count + 1)]
    return "id,spend\n" + "\n".join(lines) + f"\n{prefix}bad,not-a-number\n"


DRIVER = textwrap.dedent("""\
    import importlib.util
    import sys


    def load(path):
        spec = importlib.util.spec_from_file_location(path.rsplit("/", 1)[-1][:-3] + "_job", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module


    jobs, common, source, run_id = sys.argv[1], sys.argv[2:-2], sys.argv[-2], sys.argv[-1]
    code = load(jobs + "/ingest.py").main([*common, "--source", source])
    if code == 0:
        code = load(jobs + "/segment.py").main([*common, "--run-id", run_id])
    sys.exit(code)
""")


@pytest.fixture(scope="module")
def two_tenants(tmp_path_factory):
    """Start one driver per tenant at the same moment against one empty warehouse; return their outcomes."""
    folder = tmp_path_factory.mktemp("two_tenants")
    warehouse = str(folder / "warehouse")
    driver = folder / "driver.py"
    driver.write_text(DRIVER, encoding="utf-8")
    environment = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYTHONPATH": str(REPO),
                   "PYSPARK_PYTHON": sys.executable}
    processes = {}
    for tenant, count in (("north", 8), ("south", 12)):
        config = folder / f"{tenant}.yaml"
        config.write_text(json.dumps(tenant_config(tenant)), encoding="utf-8")
        source = folder / f"{tenant}.csv"
        source.write_text(source_text(tenant[0], count), encoding="utf-8")
        processes[tenant] = subprocess.Popen(
            [sys.executable, str(driver), str(REPO / "jobs"), "--config", str(config), "--warehouse", warehouse,
             "--master", "local[1]", "--log-level", "WARNING", str(source), "run-1"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment, cwd=str(REPO),
        )
    outcomes = {}
    for tenant, process in processes.items():
        stdout, stderr = process.communicate(timeout=900)
        summaries = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
        outcomes[tenant] = {"code": process.returncode, "summaries": summaries, "stderr": stderr}
    return warehouse, outcomes


def test_two_tenants_both_succeed(two_tenants):
    _, outcomes = two_tenants

    for tenant, outcome in outcomes.items():
        assert outcome["code"] == 0, (tenant, outcome["summaries"], outcome["stderr"][-3000:])
        assert [summary["job"] for summary in outcome["summaries"]] == ["ingest", "segment"]


def test_two_tenants_exact_counts(spark, two_tenants):
    warehouse, outcomes = two_tenants

    for tenant, count in (("north", 8), ("south", 12)):
        ingest_summary, segment_summary = outcomes[tenant]["summaries"]
        assert ingest_summary["rows_read"] == count + 1
        assert ingest_summary["rows_loaded"] == count
        assert ingest_summary["reason_counts"] == {"invalid_number": 1}
        assert segment_summary["rows_used"] == count
        data = spark.read.format("delta").load(tables.dataset_path(warehouse, tenant, "customers"))
        assert sorted(row["id"] for row in data.collect()) == sorted(f"{tenant[0]}{n}" for n in range(1, count + 1))


def test_two_tenants_tables_exact(spark, two_tenants):
    warehouse, _ = two_tenants

    def table(spec):
        return spark.read.format("delta").load(tables.table_path(warehouse, spec))

    runs = sorted((row["tenant"], row["run_id"], row["status"]) for row in table(tables.RUNS).collect())
    assert runs == [("north", "run-1", "succeeded"), ("south", "run-1", "succeeded")]
    ingests = sorted((row["tenant"], row["status"], row["rows_loaded"]) for row in table(tables.INGESTS).collect())
    assert ingests == [("north", "succeeded", 8), ("south", "succeeded", 12)]
    assignments = table(tables.ASSIGNMENTS).groupBy("tenant").agg(
        F.count(F.lit(1)).alias("rows"), F.countDistinct("record_key").alias("keys"),
        F.min(F.substring("record_key", 1, 1)).alias("first_letter"), F.max(F.substring("record_key", 1, 1)).alias("last_letter"),
    )
    by_tenant = {row["tenant"]: tuple(row)[1:] for row in assignments.collect()}
    assert by_tenant == {"north": (8, 8, "n", "n"), "south": (12, 12, "s", "s")}
    quarantine = sorted((row["tenant"], row["raw"]["id"]) for row in table(tables.QUARANTINE).collect())
    assert quarantine == [("north", "nbad"), ("south", "sbad")]


# --- one tenant, two writers at once ------------------------------------------------------------------


def run_both(first, second) -> list:
    """Run two callables at the same time; return each one's result or the exception it raised."""
    def outcome(action):
        try:
            return action()
        except Exception as error:  # a lost write conflict is an allowed outcome, checked by the caller
            return error

    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(outcome, first), pool.submit(outcome, second)]
        return [future.result() for future in futures]


@pytest.fixture(scope="module")
def one_tenant(spark, tmp_path_factory):
    folder = tmp_path_factory.mktemp("one_tenant")
    warehouse = str(folder / "warehouse")
    config = parse_config(tenant_config("acme"), "acme.yaml")
    source = folder / "base.csv"
    source.write_text("id,spend\nc1,1.0\nc2,2.0\nc3,50.0\nc4,51.0\n", encoding="utf-8")
    run_ingest(spark, config, str(source), warehouse)
    return config, warehouse, folder


def test_same_tenant_two_runs_at_once(spark, one_tenant):
    config, warehouse, _ = one_tenant

    outcomes = run_both(lambda: run_segment(spark, config, warehouse, run_id="run-a"),
                        lambda: run_segment(spark, config, warehouse, run_id="run-b"))

    runs = spark.read.format("delta").load(tables.table_path(warehouse, tables.RUNS))
    assignments = spark.read.format("delta").load(tables.table_path(warehouse, tables.ASSIGNMENTS))
    for run_id, outcome in zip(("run-a", "run-b"), outcomes):
        statuses = [row["status"] for row in runs.filter(F.col("run_id") == run_id).collect()]
        keys = [row["record_key"] for row in assignments.filter(F.col("run_id") == run_id).collect()]
        if isinstance(outcome, Exception):
            assert statuses == ["failed"], (run_id, outcome)
            assert keys == [], run_id
        else:
            assert statuses == ["succeeded"], run_id
            assert sorted(keys) == ["c1", "c2", "c3", "c4"], run_id
    # Both runs only write their own partitions and retry ledger conflicts, so both succeed.
    assert not any(isinstance(outcome, Exception) for outcome in outcomes), outcomes


def test_same_data_set_two_ingests_at_once(spark, one_tenant):
    config, warehouse, folder = one_tenant
    first = folder / "first.csv"
    first.write_text("id,spend\nc4,9.0\nc5,5.0\nc6,6.0\n", encoding="utf-8")
    second = folder / "second.csv"
    second.write_text("id,spend\nc6,7.0\nc7,70.0\n", encoding="utf-8")

    outcomes = run_both(lambda: run_ingest(spark, config, str(first), warehouse, ingest_id="first"),
                        lambda: run_ingest(spark, config, str(second), warehouse, ingest_id="second"))

    data = spark.read.format("delta").load(tables.dataset_path(warehouse, "acme", "customers"))
    keys = [row["id"] for row in data.collect()]
    assert len(keys) == len(set(keys)), sorted(keys)
    expected = {"c1", "c2", "c3", "c4"}
    ledger = spark.read.format("delta").load(tables.table_path(warehouse, tables.INGESTS))
    quarantine = spark.read.format("delta").load(tables.table_path(warehouse, tables.QUARANTINE))
    for ingest_id, loaded_keys, outcome in (("first", {"c5", "c6"}, outcomes[0]), ("second", {"c6", "c7"}, outcomes[1])):
        statuses = [row["status"] for row in ledger.filter(F.col("ingest_id") == ingest_id).collect()]
        if isinstance(outcome, Exception):
            assert statuses == ["failed"], (ingest_id, outcome)
            assert quarantine.filter(F.col("ingest_id") == ingest_id).count() == 0
        else:
            assert statuses == ["succeeded"], ingest_id
            expected |= loaded_keys
    # c6 is in both files: whichever ingest committed second either saw it as loaded or lost the conflict.
    assert set(keys) == expected
    assert not all(isinstance(outcome, Exception) for outcome in outcomes), outcomes
    # keep_first keeps the loaded c4, not the 9.0 of first.csv.
    assert data.filter(F.col("id") == "c4").first()["spend"] == 51.0
