"""The run ledger: one row per run in the `runs` table, moved through its statuses with MERGE."""

from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from pyspark.sql import SparkSession

from stratify_spark import tables
from stratify_spark.config import DatasetConfig, validate_identifier, validate_run_id

STATUSES = ("pending", "running", "succeeded", "failed")


class RunLedger:
    """Keeps one run's row in memory and writes it whole on every status change."""

    def __init__(self, spark: SparkSession, warehouse: str, config: DatasetConfig, run_id: str) -> None:
        self.spark = spark
        self.warehouse = warehouse
        self.row: dict[str, Any] = {
            "tenant": validate_identifier(config.tenant, "tenant id"),
            "dataset": validate_identifier(config.dataset, "data set name"),
            "run_id": validate_run_id(run_id),
            "created_at": self.now(),
        }

    @staticmethod
    def now() -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)

    def record(self, **changes: Any) -> None:
        """Apply `changes` to the run row and upsert it into `runs` (keyed by tenant and run id)."""
        from delta.tables import DeltaTable

        status = changes.get("status")
        if status is not None and status not in STATUSES:
            raise ValueError(f"unknown run status {status!r}; known: {STATUSES}")
        if status in ("pending", "running"):
            changes.setdefault("error", None)
        self.row.update(changes)

        path = tables.ensure_table(self.spark, self.warehouse, tables.RUNS)
        source = tables.rows_df(self.spark, tables.RUNS, [self.row])
        # The literal tenant in the condition lets Delta see that runs of other tenants cannot conflict.
        condition = f"t.tenant = '{self.row['tenant']}' AND t.run_id = s.run_id"

        def merge() -> None:
            (
                DeltaTable.forPath(self.spark, path).alias("t")
                .merge(source.alias("s"), condition)
                .whenMatchedUpdateAll()
                .whenNotMatchedInsertAll()
                .execute()
            )

        tables.retry_on_conflict(merge, tables.RUNS.name)

    def record_failure(self, error: BaseException, result_tables: tuple, seconds: float, log) -> None:
        """Delete the run's partial rows from `result_tables`, then record the run as failed with the error."""
        for spec in result_tables:
            try:
                tables.delete_run_rows(self.spark, self.warehouse, spec, self.row["tenant"], self.row["run_id"])
            except Exception as cleanup_error:  # the failed status below is recorded all the same
                log.error("could not delete partial %s rows: %s", spec.name, cleanup_error)
        self.record(status="failed", error=str(error)[:4000], finished_at=self.now(), seconds=seconds)


def latest_succeeded_run(spark: SparkSession, warehouse: str, tenant: str, dataset: str,
                         exclude_run_id: Optional[str] = None) -> Optional[dict[str, Any]]:
    """Return the ledger row of the data set's most recently finished succeeded run, or None.

    `exclude_run_id` leaves out the run being made, so re-running a run id aligns it
    with the run before it rather than with itself.
    """
    from pyspark.sql import functions as F

    path = tables.table_path(warehouse, tables.RUNS)
    if not tables.is_delta_table(spark, path):
        return None
    validate_identifier(tenant, "tenant id")
    validate_identifier(dataset, "data set name")
    runs = (
        spark.read.format("delta").load(path)
        .where((F.col("tenant") == tenant) & (F.col("dataset") == dataset) & (F.col("status") == "succeeded"))
    )
    if exclude_run_id is not None:
        runs = runs.where(F.col("run_id") != validate_run_id(exclude_run_id))
    row = runs.orderBy(F.col("finished_at").desc(), F.col("run_id").desc()).first()
    return row.asDict() if row is not None else None


def succeeded_run(spark: SparkSession, warehouse: str, tenant: str, dataset: str, run_id: str) -> dict[str, Any]:
    """Return the ledger row of one succeeded run of the data set, or raise InputError saying what exists."""
    from pyspark.sql import functions as F

    from stratify_spark.errors import InputError

    validate_run_id(run_id)
    path = tables.table_path(warehouse, tables.RUNS)
    row = None
    if tables.is_delta_table(spark, path):
        row = (
            spark.read.format("delta").load(path)
            .where((F.col("tenant") == validate_identifier(tenant, "tenant id")) & (F.col("run_id") == run_id))
            .first()
        )
    if row is None:
        raise InputError(f"run {run_id!r} of tenant {tenant!r} is not in the runs table; list the runs with "
                         f"SELECT run_id, status FROM stratify.runs WHERE tenant = '{tenant}'")
    if row["dataset"] != dataset:
        raise InputError(f"run {run_id!r} belongs to data set {row['dataset']!r}, not {dataset!r}; "
                         "compare and score runs of the same data set")
    if row["status"] != "succeeded":
        raise InputError(f"run {run_id!r} has status {row['status']!r}, not 'succeeded'; "
                         f"only finished runs can be used (error: {row['error']})")
    return row.asDict()
