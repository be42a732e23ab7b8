"""Delta table locations, schemas and writers shared by every job.

Layout under the warehouse root:

    datasets/<tenant>/<dataset>/   one Delta table per tenant data set
    tables/<name>/                 shared tables, partitioned by tenant (see TABLES)

Tenant ids, data set names and run ids reach paths and predicates only after
the patterns in `stratify_spark.config` have accepted them.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from typing import Callable, Optional, TypeVar

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from stratify_spark.config import validate_identifier, validate_run_id

logger = logging.getLogger(__name__)

SCHEMA_NAME = "stratify"

_T = TypeVar("_T")


@dataclass(frozen=True)
class TableSpec:
    """A shared table: its name in the SQL schema, its columns and its partition columns."""

    name: str
    schema: T.StructType
    partition_by: tuple[str, ...]


def _fields(*fields: tuple[str, T.DataType]) -> T.StructType:
    return T.StructType([T.StructField(name, data_type, True) for name, data_type in fields])


INGESTS = TableSpec(
    "ingests",
    _fields(
        ("tenant", T.StringType()), ("dataset", T.StringType()), ("ingest_id", T.StringType()),
        ("mode", T.StringType()), ("source_path", T.StringType()), ("status", T.StringType()),
        ("error", T.StringType()), ("started_at", T.TimestampType()), ("finished_at", T.TimestampType()),
        ("seconds", T.DoubleType()), ("rows_read", T.LongType()), ("rows_loaded", T.LongType()),
        ("rows_quarantined", T.LongType()), ("duplicate_keys", T.LongType()),
        ("reason_counts", T.MapType(T.StringType(), T.LongType())), ("data_version", T.LongType()),
    ),
    ("tenant",),
)

QUARANTINE = TableSpec(
    "quarantine",
    _fields(
        ("tenant", T.StringType()), ("dataset", T.StringType()), ("ingest_id", T.StringType()),
        ("source_file", T.StringType()), ("reason_code", T.StringType()), ("reason", T.StringType()),
        ("raw", T.MapType(T.StringType(), T.StringType())), ("quarantined_at", T.TimestampType()),
    ),
    ("tenant", "dataset"),
)

RUNS = TableSpec(
    "runs",
    _fields(
        ("tenant", T.StringType()), ("dataset", T.StringType()), ("run_id", T.StringType()),
        ("status", T.StringType()), ("error", T.StringType()), ("algorithm", T.StringType()),
        ("parameters", T.StringType()), ("config", T.StringType()), ("data_version", T.LongType()),
        ("created_at", T.TimestampType()), ("started_at", T.TimestampType()),
        ("finished_at", T.TimestampType()), ("seconds", T.DoubleType()), ("rows_input", T.LongType()),
        ("rows_used", T.LongType()), ("rows_dropped", T.LongType()), ("k_requested", T.IntegerType()),
        ("k_produced", T.IntegerType()),
    ),
    ("tenant",),
)

ASSIGNMENTS = TableSpec(
    "assignments",
    _fields(
        ("tenant", T.StringType()), ("dataset", T.StringType()), ("run_id", T.StringType()),
        ("record_key", T.StringType()), ("segment_id", T.IntegerType()), ("distance", T.DoubleType()),
    ),
    ("tenant", "run_id"),
)

SEGMENT_PROFILES = TableSpec(
    "segment_profiles",
    _fields(
        ("tenant", T.StringType()), ("dataset", T.StringType()), ("run_id", T.StringType()),
        ("segment_id", T.IntegerType()), ("segment_name", T.StringType()), ("rule", T.StringType()),
        ("size", T.LongType()), ("share", T.DoubleType()), ("feature", T.StringType()), ("mean", T.DoubleType()), ("stddev", T.DoubleType()),
        ("min", T.DoubleType()), ("p25", T.DoubleType()), ("median", T.DoubleType()),
        ("p75", T.DoubleType()), ("max", T.DoubleType()), ("null_rate", T.DoubleType()),
        ("centre", T.DoubleType()), ("overall_mean", T.DoubleType()), ("z_score", T.DoubleType()),
    ),
    ("tenant", "run_id"),
)

RUN_METRICS = TableSpec(
    "run_metrics",
    _fields(
        ("tenant", T.StringType()), ("dataset", T.StringType()), ("run_id", T.StringType()),
        ("metric", T.StringType()), ("value", T.DoubleType()), ("detail", T.StringType()),
    ),
    ("tenant", "run_id"),
)

# The rules a rule or rfm run used, in order. segment_id is the rule's position, and the default comes last.
RUN_RULES = TableSpec(
    "run_rules",
    _fields(
        ("tenant", T.StringType()), ("dataset", T.StringType()), ("run_id", T.StringType()),
        ("segment_id", T.IntegerType()), ("segment_name", T.StringType()), ("rule", T.StringType()),
        ("is_default", T.BooleanType()),
    ),
    ("tenant", "run_id"),
)

# Quantile cut points of each band of a run. source_run_id names the earlier run they were taken from, if any.
RUN_CUT_POINTS = TableSpec(
    "run_cut_points",
    _fields(
        ("tenant", T.StringType()), ("dataset", T.StringType()), ("run_id", T.StringType()),
        ("band", T.StringType()), ("feature", T.StringType()), ("bands", T.IntegerType()),
        ("descending", T.BooleanType()), ("cut_points", T.ArrayType(T.DoubleType())),
        ("source_run_id", T.StringType()),
    ),
    ("tenant", "run_id"),
)

# One row per (run, record key, band): the feature value and the band score it got.
RUN_SCORES = TableSpec(
    "run_scores",
    _fields(
        ("tenant", T.StringType()), ("dataset", T.StringType()), ("run_id", T.StringType()),
        ("record_key", T.StringType()), ("band", T.StringType()), ("feature", T.StringType()),
        ("value", T.DoubleType()), ("score", T.IntegerType()),
    ),
    ("tenant", "run_id"),
)

# One row per entity feature build: which transactions version it read and which rows it left out, by reason.
ENTITY_BUILDS = TableSpec(
    "entity_builds",
    _fields(
        ("tenant", T.StringType()), ("dataset", T.StringType()), ("build_id", T.StringType()),
        ("source_dataset", T.StringType()), ("source_version", T.LongType()), ("reference_date", T.DateType()),
        ("status", T.StringType()), ("error", T.StringType()), ("started_at", T.TimestampType()),
        ("finished_at", T.TimestampType()), ("seconds", T.DoubleType()), ("rows_read", T.LongType()),
        ("rows_used", T.LongType()), ("rows_excluded", T.LongType()),
        ("exclusion_counts", T.MapType(T.StringType(), T.LongType())), ("entities", T.LongType()),
        ("entities_without_purchase", T.LongType()), ("data_version", T.LongType()),
    ),
    ("tenant",),
)

TABLES = (INGESTS, QUARANTINE, RUNS, ASSIGNMENTS, SEGMENT_PROFILES, RUN_METRICS, RUN_RULES, RUN_CUT_POINTS, RUN_SCORES,
          ENTITY_BUILDS)
RUN_RESULT_TABLES = (ASSIGNMENTS, SEGMENT_PROFILES, RUN_METRICS)


def table_path(warehouse: str, spec: TableSpec) -> str:
    return f"{warehouse}/tables/{spec.name}"


def dataset_path(warehouse: str, tenant: str, dataset: str) -> str:
    validate_identifier(tenant, "tenant id")
    validate_identifier(dataset, "data set name")
    return f"{warehouse}/datasets/{tenant}/{dataset}"


def run_predicate(tenant: str, run_id: str) -> str:
    """Return the SQL predicate that selects one run's partition; both ids are validated first."""
    validate_identifier(tenant, "tenant id")
    validate_run_id(run_id)
    return f"tenant = '{tenant}' AND run_id = '{run_id}'"


def is_delta_table(spark: SparkSession, path: str) -> bool:
    from delta.tables import DeltaTable

    return DeltaTable.isDeltaTable(spark, path)


def retry_on_conflict(action: Callable[[], _T], what: str, attempts: int = 5) -> _T:
    """Run `action`, retrying when a concurrent Delta commit conflicts with it.

    Two jobs that create the same shared table, or update the same table at the
    same moment, lose the optimistic-concurrency race at most a few times.
    """
    from delta.exceptions import base as delta_errors

    # The conflict classes Delta raises do not share a base class besides PySparkException.
    conflicts = (
        delta_errors.DeltaConcurrentModificationException, delta_errors.ConcurrentWriteException,
        delta_errors.MetadataChangedException, delta_errors.ProtocolChangedException,
        delta_errors.ConcurrentAppendException, delta_errors.ConcurrentDeleteReadException,
        delta_errors.ConcurrentDeleteDeleteException, delta_errors.ConcurrentTransactionException,
    )
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except conflicts as error:
            if attempt == attempts:
                raise
            logger.warning("concurrent Delta commit on %s (attempt %d of %d), retrying: %s",
                           what, attempt, attempts, str(error).splitlines()[0])
            time.sleep(0.5 * attempt)
        except Exception as error:  # Concurrent table creation surfaces as a plain analysis error.
            if attempt == attempts or "already exists" not in str(error).lower():
                raise
            logger.warning("table %s was created concurrently (attempt %d of %d), retrying", what, attempt, attempts)
            time.sleep(0.5 * attempt)
    raise AssertionError("unreachable")


def ensure_table(spark: SparkSession, warehouse: str, spec: TableSpec) -> str:
    """Create the shared table if it does not exist yet and return its path."""
    from delta.tables import DeltaTable

    path = table_path(warehouse, spec)

    def create() -> None:
        (
            DeltaTable.createIfNotExists(spark)
            .location(path)
            .addColumns(spec.schema)
            .partitionedBy(*spec.partition_by)
            .execute()
        )

    if not is_delta_table(spark, path):
        retry_on_conflict(create, spec.name)
    return path


def append_rows(spark: SparkSession, warehouse: str, spec: TableSpec, df: DataFrame) -> None:
    """Append rows to a shared table, in the table's column order."""
    path = ensure_table(spark, warehouse, spec)
    ordered = df.select(*[field.name for field in spec.schema.fields])
    retry_on_conflict(lambda: ordered.write.format("delta").mode("append").save(path), spec.name)


def replace_run_rows(spark: SparkSession, warehouse: str, spec: TableSpec, tenant: str, run_id: str,
                     df: DataFrame) -> None:
    """Replace one run's rows in a shared table in one commit, leaving every other run untouched."""
    path = ensure_table(spark, warehouse, spec)
    ordered = df.select(*[field.name for field in spec.schema.fields])
    writer = (
        ordered.write.format("delta").mode("overwrite")
        .option("replaceWhere", run_predicate(tenant, run_id))
    )
    retry_on_conflict(lambda: writer.save(path), spec.name)


def delete_run_rows(spark: SparkSession, warehouse: str, spec: TableSpec, tenant: str, run_id: str) -> None:
    """Delete one run's rows from a shared table, if the table exists."""
    from delta.tables import DeltaTable

    path = table_path(warehouse, spec)
    if is_delta_table(spark, path):
        predicate = run_predicate(tenant, run_id)
        retry_on_conflict(lambda: DeltaTable.forPath(spark, path).delete(predicate), spec.name)


def rows_df(spark: SparkSession, spec: TableSpec, rows: list[dict]) -> DataFrame:
    """Build a small DataFrame with the table's schema from Python dicts (ledger rows, not data)."""
    names = [field.name for field in spec.schema.fields]
    return spark.createDataFrame([tuple(row.get(name) for name in names) for row in rows], spec.schema)


def registration_statements(table_paths: list[tuple[str, str]], schema_name: str = SCHEMA_NAME) -> list[str]:
    """Return the SQL that registers (name, path) pairs as `<schema>.<name>` Delta tables by location."""
    statements = [f"CREATE SCHEMA IF NOT EXISTS {schema_name}"]
    for name, path in table_paths:
        escaped = path.replace("\\", "\\\\").replace("'", "\\'")
        statements.append(f"CREATE TABLE IF NOT EXISTS {schema_name}.{name} USING delta LOCATION '{escaped}'")
    return statements


def register_tables(spark: SparkSession, warehouse: str, schema_name: str = SCHEMA_NAME) -> list[str]:
    """Register every existing shared table as `<schema>.<name>` by location; return the names.

    Registering by location at session start works with any catalog, including the
    in-memory one, so no job depends on a shared metastore.
    """
    existing = [(spec.name, table_path(warehouse, spec)) for spec in TABLES
                if is_delta_table(spark, table_path(warehouse, spec))]
    for statement in registration_statements(existing, schema_name):
        spark.sql(statement)
    return [f"{schema_name}.{name}" for name, _ in existing]


def main(argv: Optional[list[str]] = None) -> int:
    """Print the registration SQL for the tables that exist under a local warehouse (used by scripts/spark-sql.sh)."""
    import argparse
    import os

    from stratify_spark.session import resolve_warehouse

    parser = argparse.ArgumentParser(description="Print SQL that registers the result tables by location.")
    parser.add_argument("--warehouse", default=None, help="warehouse root (default: $STRATIFY_WAREHOUSE or ./warehouse)")
    args = parser.parse_args(argv)
    warehouse = resolve_warehouse(args.warehouse)
    is_local = "://" not in warehouse
    pairs = [(spec.name, table_path(warehouse, spec)) for spec in TABLES
             if not is_local or os.path.isdir(os.path.join(table_path(warehouse, spec), "_delta_log"))]
    if not pairs:
        print(f"warning: no result tables under {warehouse}; run the jobs first or set STRATIFY_WAREHOUSE",
              file=sys.stderr)
    for statement in registration_statements(pairs):
        print(statement + ";")
    return 0


def latest_commit(spark: SparkSession, path: str) -> tuple[int, dict[str, str]]:
    """Return the newest Delta version of a table and that commit's operation metrics."""
    from delta.tables import DeltaTable

    row = DeltaTable.forPath(spark, path).history(1).select("version", "operationMetrics").first()
    return int(row["version"]), dict(row["operationMetrics"] or {})


def current_version(spark: SparkSession, path: str) -> Optional[int]:
    if not is_delta_table(spark, path):
        return None
    return latest_commit(spark, path)[0]


if __name__ == "__main__":
    raise SystemExit(main())
