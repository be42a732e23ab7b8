"""Failure paths: write conflicts, empty files, too few rows, keep_last counts and config error paths."""

from __future__ import annotations

import pytest
from delta.exceptions.base import ConcurrentAppendException

from stratify_spark import tables
from stratify_spark.config import parse_config
from stratify_spark.errors import ConfigError, InputError
from stratify_spark.ingest import run_ingest
from stratify_spark.reader import read_raw
from stratify_spark.segment import run_segment


def base_config(**overrides) -> dict:
    config = {
        "tenant": "acme",
        "dataset": "customers",
        "source": {"format": "csv"},
        "columns": [
            {"name": "customer_id", "type": "string", "required": True},
            {"name": "spend", "type": "double"},
        ],
        "key": {"columns": ["customer_id"], "duplicates": "keep_last"},
        "segment": {"features": [{"name": "spend"}], "algorithm": {"name": "kmeans", "k": 3}},
    }
    config.update(overrides)
    return config


def test_retry_on_append_conflict():
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise ConcurrentAppendException("a concurrent MERGE added data")
        return "done"

    assert tables.retry_on_conflict(flaky, "runs") == "done"
    assert len(calls) == 2


def test_retry_gives_up_after_attempts():
    def always_conflicts() -> None:
        raise ConcurrentAppendException("a concurrent MERGE added data")

    with pytest.raises(ConcurrentAppendException):
        tables.retry_on_conflict(always_conflicts, "runs", attempts=2)


def test_error_path_without_union_tag():
    config = base_config(segment={"features": [{"name": "spend"}], "algorithm": {"name": "kmeans", "k": 1}})
    with pytest.raises(ConfigError) as raised:
        parse_config(config, "acme.yaml")
    message = str(raised.value)
    assert "segment.algorithm.k: invalid value 1" in message, message
    assert "kmeans.k" not in message, message


def test_cross_field_error_not_dumped():
    config = base_config(segment={"features": [{"name": "customer_id"}], "algorithm": {"name": "kmeans", "k": 2}})
    with pytest.raises(ConfigError, match="feature 'customer_id' has type string") as raised:
        parse_config(config, "acme.yaml")
    assert "'tenant'" not in str(raised.value), str(raised.value)


def test_empty_file_named(spark, tmp_path):
    source = tmp_path / "empty.csv"
    source.write_text("", encoding="utf-8")
    config = parse_config(base_config(), "acme.yaml")
    with pytest.raises(InputError, match="empty or has no header"):
        read_raw(spark, config, str(source))


def test_fewer_rows_than_k(spark, tmp_path):
    warehouse = str(tmp_path / "warehouse")
    source = tmp_path / "two.csv"
    source.write_text("customer_id,spend\nc1,1.5\nc2,\n", encoding="utf-8")
    config = parse_config(base_config(), "acme.yaml")
    run_ingest(spark, config, str(source), warehouse)

    with pytest.raises(InputError, match="only 2 row\\(s\\) to segment but k is 3"):
        run_segment(spark, parse_config(base_config(segment={
            "features": [{"name": "spend", "missing": "mean"}], "algorithm": {"name": "kmeans", "k": 3},
        }), "acme.yaml"), warehouse, run_id="too-few")

    runs = spark.read.format("delta").load(tables.table_path(warehouse, tables.RUNS))
    row = runs.filter("run_id = 'too-few'").select("status", "error").first()
    assert row["status"] == "failed"
    assert "k is 3" in row["error"], row["error"]


def test_keep_last_counts_replaced_keys(spark, tmp_path):
    warehouse = str(tmp_path / "warehouse")
    first = tmp_path / "first.csv"
    first.write_text("customer_id,spend\nc1,1.0\nc2,2.0\n", encoding="utf-8")
    second = tmp_path / "second.csv"
    second.write_text("customer_id,spend\nc1,9.0\nc3,3.0\n", encoding="utf-8")
    config = parse_config(base_config(), "acme.yaml")

    run_ingest(spark, config, str(first), warehouse)
    result = run_ingest(spark, config, str(second), warehouse)

    assert result.duplicate_keys == 1
    assert result.rows_loaded == 2
    data = spark.read.format("delta").load(tables.dataset_path(warehouse, "acme", "customers"))
    spends = {row["customer_id"]: row["spend"] for row in data.collect()}
    assert spends == {"c1": 9.0, "c2": 2.0, "c3": 3.0}


def test_count_mismatch_restores_table(spark, tmp_path, monkeypatch):
    from stratify_spark import ingest

    warehouse = str(tmp_path / "warehouse")
    first = tmp_path / "first.csv"
    first.write_text("customer_id,spend\nc1,1.0\nc2,2.0\n", encoding="utf-8")
    second = tmp_path / "second.csv"
    second.write_text("customer_id,spend\nc1,9.0\nc3,3.0\nc4,oops\n", encoding="utf-8")
    config = parse_config(base_config(), "acme.yaml")
    run_ingest(spark, config, str(first), warehouse)

    real_write = ingest._write_data

    def write_then_miscount(*args, **kwargs):
        written, version, replaced = real_write(*args, **kwargs)
        return written + 1, version, replaced

    # Stands in for source files that change between the quarantine pass and the data pass.
    monkeypatch.setattr(ingest, "_write_data", write_then_miscount)
    with pytest.raises(InputError, match="row counts do not add up"):
        run_ingest(spark, config, str(second), warehouse, ingest_id="changed-files")

    data = spark.read.format("delta").load(tables.dataset_path(warehouse, "acme", "customers"))
    spends = {row["customer_id"]: row["spend"] for row in data.collect()}
    assert spends == {"c1": 1.0, "c2": 2.0}
    ledger = spark.read.format("delta").load(tables.table_path(warehouse, tables.INGESTS))
    assert ledger.filter("ingest_id = 'changed-files'").first()["status"] == "failed"
    quarantine = spark.read.format("delta").load(tables.table_path(warehouse, tables.QUARANTINE))
    assert quarantine.filter("ingest_id = 'changed-files'").count() == 0
