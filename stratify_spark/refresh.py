"""Refresh and reproduce: decide whether a data set needs a new run, and re-run a stored run exactly."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Optional

from pyspark.sql import SparkSession

from stratify_spark import tables
from stratify_spark.config import DatasetConfig, parse_config
from stratify_spark.errors import InputError
from stratify_spark.runs import latest_succeeded_run, succeeded_run


@dataclass(frozen=True)
class RefreshDecision:
    """Whether to run, and why, for a data set's current Delta version."""

    run: bool
    reason: str
    current_version: int
    last_run_id: Optional[str]
    last_data_version: Optional[int]

    def skipped_summary(self, config: DatasetConfig, exit_code: int) -> dict[str, Any]:
        return {"job": "segment", "status": "skipped", "tenant": config.tenant, "dataset": config.dataset,
                "reason": self.reason, "data_version": self.current_version, "last_run_id": self.last_run_id,
                "exit_code": exit_code}


def refresh_decision(spark: SparkSession, warehouse: str, config: DatasetConfig) -> RefreshDecision:
    """Run when the data set's Delta version moved since its last succeeded run, or when it has none."""
    path = tables.dataset_path(warehouse, config.tenant, config.dataset)
    current = tables.current_version(spark, path)
    if current is None:
        raise InputError(f"{config.tenant}/{config.dataset}: no data set table at {path}; ingest it first")
    last = latest_succeeded_run(spark, warehouse, config.tenant, config.dataset)
    if last is None:
        return RefreshDecision(True, "the data set has no succeeded run yet", current, None, None)
    if last["data_version"] == current:
        return RefreshDecision(False, f"data version {current} is unchanged since run {last['run_id']}; nothing to do",
                               current, last["run_id"], last["data_version"])
    return RefreshDecision(True, f"data version moved from {last['data_version']} (run {last['run_id']}) to {current}",
                           current, last["run_id"], last["data_version"])


def stored_run(spark: SparkSession, warehouse: str, config: DatasetConfig, run_id: str) -> tuple[DatasetConfig, int]:
    """Return the config a succeeded run ran with and the data version it read, to run it again."""
    ledger = succeeded_run(spark, warehouse, config.tenant, config.dataset, run_id)
    stored = parse_config(json.loads(ledger["config"]), f"run {run_id} (stored config)")
    return stored, int(ledger["data_version"])


def features_refresh_decision(spark: SparkSession, warehouse: str, config: DatasetConfig) -> RefreshDecision:
    """Rebuild an entity table only when its source data set's Delta version moved since the last succeeded build."""
    from pyspark.sql import functions as F

    source = config.entity_features.source_dataset
    source_path = tables.dataset_path(warehouse, config.tenant, source)
    current = tables.current_version(spark, source_path)
    if current is None:
        raise InputError(f"{config.tenant}/{source}: no data set table at {source_path}; ingest it first")
    builds_path = tables.table_path(warehouse, tables.ENTITY_BUILDS)
    last = None
    if tables.is_delta_table(spark, builds_path):
        last = (
            spark.read.format("delta").load(builds_path)
            .where((F.col("tenant") == config.tenant) & (F.col("dataset") == config.dataset)
                   & (F.col("status") == "succeeded"))
            .orderBy(F.col("finished_at").desc()).first()
        )
    if last is None:
        return RefreshDecision(True, "the entity table has no succeeded build yet", current, None, None)
    if last["source_version"] == current:
        return RefreshDecision(False, f"{source} version {current} is unchanged since build {last['build_id']}; "
                                      "nothing to do", current, last["build_id"], last["source_version"])
    return RefreshDecision(True, f"{source} version moved from {last['source_version']} (build {last['build_id']}) "
                                 f"to {current}", current, last["build_id"], last["source_version"])
