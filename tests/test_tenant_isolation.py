"""Tenant isolation: hostile ids are rejected before any path or predicate, and tenant A's writes spare tenant B.

Tenants alpha and beta use the same data set name, run id and ingest id on purpose,
so that only the tenant column distinguishes their rows.
"""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F

from stratify_spark import tables
from stratify_spark.config import parse_config, validate_identifier, validate_run_id
from stratify_spark.errors import ConfigError, InputError
from stratify_spark.ingest import run_ingest
from stratify_spark.runs import RunLedger
from stratify_spark.segment import run_segment

HOSTILE_IDS = [
    "../beta",
    "alpha/beta",
    "alpha' OR '1'='1",
    "",
    "\u0430lpha",  # Cyrillic a
    "alpha\n",
    "alpha%2fbeta",
    "a" * 65,
]


def config_data(tenant: str) -> dict:
    return {
        "tenant": tenant,
        "dataset": "customers",
        "source": {"format": "csv"},
        "columns": [{"name": "id", "type": "string", "required": True}, {"name": "spend", "type": "double"}],
        "key": {"columns": ["id"]},
        "segment": {"features": [{"name": "spend"}], "algorithm": {"name": "kmeans", "k": 2, "seed": 1}},
    }


@pytest.mark.parametrize("value", HOSTILE_IDS)
def test_hostile_tenant_rejected(value):
    with pytest.raises(ConfigError, match=r"tenant: invalid value"):
        parse_config({**config_data("alpha"), "tenant": value}, "alpha.yaml")
    with pytest.raises(ConfigError, match=r"invalid tenant id"):
        validate_identifier(value, "tenant id")
    with pytest.raises(ConfigError, match=r"invalid tenant id"):
        tables.dataset_path("/warehouse", value, "customers")


@pytest.mark.parametrize("value", HOSTILE_IDS)
def test_hostile_run_id_rejected(value):
    with pytest.raises(ConfigError, match=r"invalid run id"):
        validate_run_id(value)
    with pytest.raises(ConfigError, match=r"invalid run id"):
        tables.run_predicate("alpha", value)


@pytest.mark.parametrize("value", ["../beta", "x' OR '1'='1", "a/b", "\u0430"])
def test_hostile_ids_rejected_before_writes(spark, tmp_path, value):
    warehouse = tmp_path / "warehouse"
    config = parse_config(config_data("alpha"), "alpha.yaml")
    source = tmp_path / "alpha.csv"
    source.write_text("id,spend\na1,1.0\n", encoding="utf-8")

    with pytest.raises(ConfigError, match=r"invalid ingest id"):
        run_ingest(spark, config, str(source), str(warehouse), ingest_id=value)
    with pytest.raises(ConfigError, match=r"invalid run id"):
        run_segment(spark, config, str(warehouse), run_id=value)
    with pytest.raises(ConfigError, match=r"invalid run id"):
        RunLedger(spark, str(warehouse), config, value)

    assert not warehouse.exists()


# --- writes of one tenant leave the other's rows alone ------------------------------------------------

SHARED_TABLES = (tables.RUNS, tables.INGESTS, tables.QUARANTINE, tables.ASSIGNMENTS, tables.SEGMENT_PROFILES,
                 tables.RUN_METRICS)


def tenant_rows(spark, warehouse: str, tenant: str) -> dict[str, list[str]]:
    """Return every row of `tenant` in the shared tables and its data set, as sorted text."""
    rows = {}
    for spec in SHARED_TABLES:
        data = spark.read.format("delta").load(tables.table_path(warehouse, spec)).filter(F.col("tenant") == tenant)
        rows[spec.name] = sorted(repr(sorted(row.asDict().items())) for row in data.collect())
    data = spark.read.format("delta").load(tables.dataset_path(warehouse, tenant, "customers"))
    rows["data set"] = sorted(repr(sorted(row.asDict().items())) for row in data.collect())
    return rows


@pytest.fixture(scope="module")
def two_tenants(spark, tmp_path_factory):
    """Load beta, snapshot its rows, then run every kind of alpha write with beta's ids; return both snapshots."""
    folder = tmp_path_factory.mktemp("isolation")
    warehouse = str(folder / "warehouse")
    beta = parse_config(config_data("beta"), "beta.yaml")
    alpha = parse_config(config_data("alpha"), "alpha.yaml")
    beta_source = folder / "beta.csv"
    beta_source.write_text("id,spend\nb1,1.0\nb2,2.0\nb3,90.0\nb4,x\n", encoding="utf-8")
    alpha_source = folder / "alpha.csv"
    alpha_source.write_text("id,spend\na1,5.0\na2,6.0\na3,70.0\na4,y\n", encoding="utf-8")
    run_ingest(spark, beta, str(beta_source), warehouse, ingest_id="ingest-1")
    run_segment(spark, beta, warehouse, run_id="run-1")
    before = tenant_rows(spark, warehouse, "beta")

    # Ingest overwrite, a failed ingest (its clean-up deletes quarantine rows) and a segment run with beta's ids.
    run_ingest(spark, alpha, str(alpha_source), warehouse, mode="overwrite", ingest_id="ingest-1")
    header_only = folder / "header.csv"
    header_only.write_text("id,spend\n", encoding="utf-8")
    with pytest.raises(InputError):
        run_ingest(spark, alpha, str(header_only), warehouse, ingest_id="ingest-2")
    run_segment(spark, alpha, warehouse, run_id="run-1")
    alpha_assignments = spark.read.format("delta").load(tables.table_path(warehouse, tables.ASSIGNMENTS)) \
        .filter(F.col("tenant") == "alpha").select("record_key").collect()

    # Replace, delete and the ledger MERGE directly, with the run id beta uses.
    replacement = tables.rows_df(spark, tables.ASSIGNMENTS, [
        {"tenant": "alpha", "dataset": "customers", "run_id": "run-1", "record_key": "a1", "segment_id": 0},
    ])
    tables.replace_run_rows(spark, warehouse, tables.ASSIGNMENTS, "alpha", "run-1", replacement)
    tables.delete_run_rows(spark, warehouse, tables.RUN_METRICS, "alpha", "run-1")
    RunLedger(spark, warehouse, alpha, "run-1").record(status="failed", error="marked failed by the test")
    after = tenant_rows(spark, warehouse, "beta")
    return warehouse, before, after, sorted(row["record_key"] for row in alpha_assignments)


def test_other_tenant_rows_unchanged(two_tenants):
    _, before, after, _ = two_tenants

    for name in before:
        assert after[name] == before[name], name


def test_beta_rows_were_present(two_tenants):
    _, before, _, _ = two_tenants

    assert len(before["data set"]) == 3
    assert len(before["assignments"]) == 3
    assert len(before["quarantine"]) == 1
    assert len(before["runs"]) == 1
    assert len(before["ingests"]) == 1


def test_run_reads_own_tenant_only(two_tenants):
    _, _, _, alpha_keys = two_tenants

    assert alpha_keys == ["a1", "a2", "a3"]


def test_alpha_writes_applied(spark, two_tenants):
    warehouse, _, _, _ = two_tenants
    runs = spark.read.format("delta").load(tables.table_path(warehouse, tables.RUNS))
    assignments = spark.read.format("delta").load(tables.table_path(warehouse, tables.ASSIGNMENTS))
    metrics = spark.read.format("delta").load(tables.table_path(warehouse, tables.RUN_METRICS))

    alpha_runs = runs.filter(F.col("tenant") == "alpha").collect()
    assert [(row["run_id"], row["status"]) for row in alpha_runs] == [("run-1", "failed")]
    alpha_assignments = assignments.filter(F.col("tenant") == "alpha").collect()
    assert [row["record_key"] for row in alpha_assignments] == ["a1"]
    assert metrics.filter(F.col("tenant") == "alpha").count() == 0
