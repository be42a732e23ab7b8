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
        ("segment_key", T.StringType()),
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
        ("segment_key", T.StringType()),
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


# Stable segment keys: each run's segments matched to the previous succeeded run of the same data set.
# A retired segment (in the reference run, matched by none of this run's) has a null segment_id.
SEGMENT_KEYS = TableSpec(
    "segment_keys",
    _fields(
        ("tenant", T.StringType()), ("dataset", T.StringType()), ("run_id", T.StringType()),
        ("segment_id", T.IntegerType()), ("segment_key", T.StringType()), ("reference_run_id", T.StringType()),
        ("reference_segment_key", T.StringType()), ("status", T.StringType()), ("overlap", T.DoubleType()),
        ("centre_distance", T.DoubleType()), ("match_method", T.StringType()),
    ),
    ("tenant", "run_id"),
)

# The frozen model of a clustering run: feature transforms, scaling and centres in scaled space, as JSON.
RUN_MODELS = TableSpec(
    "run_models",
    _fields(
        ("tenant", T.StringType()), ("dataset", T.StringType()), ("run_id", T.StringType()),
        ("algorithm", T.StringType()), ("distance_measure", T.StringType()), ("model", T.StringType()),
    ),
    ("tenant", "run_id"),
)

# One row per compared pair of runs, with agreement scores.
COMPARISONS = TableSpec(
    "comparisons",
    _fields(
        ("tenant", T.StringType()), ("dataset", T.StringType()), ("compare_id", T.StringType()),
        ("run_a", T.StringType()), ("run_b", T.StringType()), ("data_version_a", T.LongType()),
        ("data_version_b", T.LongType()), ("algorithm_a", T.StringType()), ("algorithm_b", T.StringType()),
        ("rows_a", T.LongType()), ("rows_b", T.LongType()), ("rows_both", T.LongType()),
        ("rows_only_a", T.LongType()), ("rows_only_b", T.LongType()), ("adjusted_rand_index", T.DoubleType()),
        ("adjusted_mutual_info", T.DoubleType()), ("created_at", T.TimestampType()),
    ),
    ("tenant", "compare_id"),
)

# The migration matrix: rows in segment a of run a and segment b of run b. A null side means "not in that run".
COMPARISON_MIGRATIONS = TableSpec(
    "comparison_migrations",
    _fields(
        ("tenant", T.StringType()), ("dataset", T.StringType()), ("compare_id", T.StringType()),
        ("segment_id_a", T.IntegerType()), ("segment_key_a", T.StringType()), ("segment_id_b", T.IntegerType()),
        ("segment_key_b", T.StringType()), ("rows", T.LongType()), ("share_of_a", T.DoubleType()),
    ),
    ("tenant", "compare_id"),
)

# Per stable segment key: size and share in each run, and how far its centre moved (clustering runs).
COMPARISON_SEGMENTS = TableSpec(
    "comparison_segments",
    _fields(
        ("tenant", T.StringType()), ("dataset", T.StringType()), ("compare_id", T.StringType()),
        ("segment_key", T.StringType()), ("segment_id_a", T.IntegerType()), ("segment_id_b", T.IntegerType()),
        ("size_a", T.LongType()), ("size_b", T.LongType()), ("share_a", T.DoubleType()), ("share_b", T.DoubleType()),
        ("size_change", T.LongType()), ("share_change", T.DoubleType()), ("centre_drift", T.DoubleType()),
        ("centre_change", T.MapType(T.StringType(), T.DoubleType())),
    ),
    ("tenant", "compare_id"),
)

# Record keys present in only one of the two compared runs.
COMPARISON_ONLY_ROWS = TableSpec(
    "comparison_only_rows",
    _fields(
        ("tenant", T.StringType()), ("dataset", T.StringType()), ("compare_id", T.StringType()),
        ("record_key", T.StringType()), ("present_in", T.StringType()), ("segment_id", T.IntegerType()),
        ("segment_key", T.StringType()),
    ),
    ("tenant", "compare_id"),
)

# Rows scored against an earlier run's frozen model, without refitting.
SCORES = TableSpec(
    "scores",
    _fields(
        ("tenant", T.StringType()), ("dataset", T.StringType()), ("score_id", T.StringType()),
        ("model_run_id", T.StringType()), ("data_version", T.LongType()), ("record_key", T.StringType()),
        ("segment_id", T.IntegerType()), ("segment_key", T.StringType()), ("distance", T.DoubleType()),
        ("second_distance", T.DoubleType()), ("margin", T.DoubleType()), ("is_outlier", T.BooleanType()),
        ("outlier_threshold", T.DoubleType()), ("scored_at", T.TimestampType()),
    ),
    ("tenant", "score_id"),
)

TABLES = (INGESTS, QUARANTINE, RUNS, ASSIGNMENTS, SEGMENT_PROFILES, RUN_METRICS, RUN_RULES, RUN_CUT_POINTS, RUN_SCORES,
          ENTITY_BUILDS, SEGMENT_KEYS, RUN_MODELS, COMPARISONS, COMPARISON_MIGRATIONS, COMPARISON_SEGMENTS,
          COMPARISON_ONLY_ROWS, SCORES)
RUN_RESULT_TABLES = (ASSIGNMENTS, SEGMENT_PROFILES, RUN_METRICS, SEGMENT_KEYS, RUN_MODELS)

# One row per k of a run's k sweep. chosen marks the k the run segmented with, and reason explains the choice.
RUN_K_SWEEP = TableSpec(
    "run_k_sweep",
    _fields(
        ("tenant", T.StringType()), ("dataset", T.StringType()), ("run_id", T.StringType()),
        ("k", T.IntegerType()), ("k_produced", T.IntegerType()), ("cost", T.DoubleType()),
        ("silhouette", T.DoubleType()), ("davies_bouldin", T.DoubleType()), ("calinski_harabasz", T.DoubleType()),
        ("iterations", T.IntegerType()), ("seconds", T.DoubleType()), ("criterion", T.StringType()),
        ("chosen", T.BooleanType()), ("reason", T.StringType()),
    ),
    ("tenant", "run_id"),
)

# Stability of a run: per subsample refit, the adjusted Rand index against the full fit (scope 'run') and,
# per segment of the full fit, its best Jaccard overlap with a refit segment (scope 'segment').
# Rows with a null subsample are means over all subsamples.
RUN_STABILITY = TableSpec(
    "run_stability",
    _fields(
        ("tenant", T.StringType()), ("dataset", T.StringType()), ("run_id", T.StringType()),
        ("scope", T.StringType()), ("segment_id", T.IntegerType()), ("subsample", T.IntegerType()),
        ("rows", T.LongType()), ("adjusted_rand_index", T.DoubleType()), ("jaccard", T.DoubleType()),
        ("matched_segment_id", T.IntegerType()), ("stable", T.BooleanType()),
    ),
    ("tenant", "run_id"),
)

TABLES = TABLES + (RUN_K_SWEEP, RUN_STABILITY)
RUN_RESULT_TABLES = RUN_RESULT_TABLES + (RUN_K_SWEEP, RUN_STABILITY)
# Tables that only one kind of run writes. Each run clears the other kind's tables, because an earlier
# run with the same id may have been of the other kind.
RULE_RUN_TABLES = (RUN_RULES, RUN_CUT_POINTS, RUN_SCORES)
CLUSTERING_RUN_TABLES = (RUN_MODELS, RUN_K_SWEEP, RUN_STABILITY)
# Every table with rows per run, of either kind. A failed run of either kind clears its id in all of them.
ALL_RUN_TABLES = RUN_RESULT_TABLES + RULE_RUN_TABLES
COMPARISON_TABLES = (COMPARISONS, COMPARISON_MIGRATIONS, COMPARISON_SEGMENTS, COMPARISON_ONLY_ROWS)


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
            # While another job creates the table, its folder has files but no commit yet.
            message = str(error).lower()
            created_concurrently = "already exists" in message or "is not empty and also not a delta table" in message
            if attempt == attempts or not created_concurrently:
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
    retry_on_conflict(lambda: ordered.write.format("delta").mode("append").option("mergeSchema", "true").save(path),
                      spec.name)


def partition_predicate(spec: TableSpec, tenant: str, value: str) -> str:
    """Return the predicate that selects one tenant's rows of one run, comparison or scoring.

    The second partition column of `spec` (run_id, compare_id or score_id) is matched
    to `value`; both ids are validated before they reach the SQL text.
    """
    validate_identifier(tenant, "tenant id")
    validate_run_id(value)
    column = spec.partition_by[1]
    return f"tenant = '{tenant}' AND {column} = '{value}'"


def replace_run_rows(spark: SparkSession, warehouse: str, spec: TableSpec, tenant: str, run_id: str,
                     df: DataFrame) -> None:
    """Replace one run's rows in a shared table in one commit, leaving every other run untouched.

    For the comparison and score tables `run_id` is the compare or score id. Columns
    added to a table's spec in a later release are added to an existing table here
    (mergeSchema), so older warehouses keep working without a manual migration.
    """
    path = ensure_table(spark, warehouse, spec)
    ordered = df.select(*[field.name for field in spec.schema.fields])
    writer = (
        ordered.write.format("delta").mode("overwrite")
        .option("replaceWhere", partition_predicate(spec, tenant, run_id))
        .option("mergeSchema", "true")
    )
    retry_on_conflict(lambda: writer.save(path), spec.name)


def delete_run_rows(spark: SparkSession, warehouse: str, spec: TableSpec, tenant: str, run_id: str) -> None:
    """Delete one run's (or comparison's, or scoring's) rows from a shared table, if the table exists."""
    from delta.tables import DeltaTable

    path = table_path(warehouse, spec)
    if is_delta_table(spark, path):
        predicate = partition_predicate(spec, tenant, run_id)
        retry_on_conflict(lambda: DeltaTable.forPath(spark, path).delete(predicate), spec.name)


def delete_rows_of_run(spark: SparkSession, warehouse: str, specs: tuple[TableSpec, ...], tenant: str,
                       run_id: str) -> None:
    """Delete one run's rows from each of the tables in `specs` that exist."""
    for spec in specs:
        delete_run_rows(spark, warehouse, spec, tenant, run_id)


def read_run_rows(spark: SparkSession, warehouse: str, spec: TableSpec, tenant: str, run_id: str) -> DataFrame:
    """Read one run's rows of a shared table; the filter on both partition columns prunes other runs' files."""
    path = table_path(warehouse, spec)
    if not is_delta_table(spark, path):
        return spark.createDataFrame([], spec.schema)
    return spark.read.format("delta").load(path).where(partition_predicate(spec, tenant, run_id))


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


_RUN_COLUMNS = ", ".join(field.name for field in RUNS.schema.fields)

# Views for analysts, each created only when the tables it reads exist.
VIEWS = (
    ("latest_runs", ("runs",), f"""
        SELECT {_RUN_COLUMNS} FROM (
            SELECT r.*, row_number() OVER (PARTITION BY tenant, dataset ORDER BY finished_at DESC, run_id DESC) AS rank
            FROM {{schema}}.runs r WHERE status = 'succeeded'
        ) WHERE rank = 1"""),
    ("segment_summary", ("segment_profiles", "segment_keys", "runs"), """
        SELECT p.tenant, p.dataset, p.run_id, r.algorithm, r.data_version, p.segment_id, p.segment_key,
               p.segment_name, p.rule, p.size, p.share, k.status AS key_status,
               k.reference_segment_key
        FROM (SELECT DISTINCT tenant, dataset, run_id, segment_id, segment_key, segment_name, rule, size, share
              FROM {schema}.segment_profiles) p
        JOIN {schema}.runs r ON r.tenant = p.tenant AND r.run_id = p.run_id
        LEFT JOIN {schema}.segment_keys k
          ON k.tenant = p.tenant AND k.run_id = p.run_id AND k.segment_id = p.segment_id"""),
    ("run_comparison", ("comparisons", "comparison_migrations"), """
        SELECT c.tenant, c.dataset, c.compare_id, c.run_a, c.run_b, c.data_version_a, c.data_version_b,
               c.adjusted_rand_index, c.adjusted_mutual_info, m.segment_key_a, m.segment_key_b, m.rows,
               m.share_of_a
        FROM {schema}.comparisons c
        JOIN {schema}.comparison_migrations m ON m.tenant = c.tenant AND m.compare_id = c.compare_id"""),
)


def view_statements(existing: list[str], schema_name: str = SCHEMA_NAME) -> list[str]:
    """Return the CREATE VIEW statements whose tables are all in `existing` (table names)."""
    return [
        f"CREATE OR REPLACE VIEW {schema_name}.{name} AS {body.format(schema=schema_name).strip()}"
        for name, needs, body in VIEWS if set(needs) <= set(existing)
    ]


def register_tables(spark: SparkSession, warehouse: str, schema_name: str = SCHEMA_NAME) -> list[str]:
    """Register every existing shared table as `<schema>.<name>` by location; return the names.

    Registering by location at session start works with any catalog, including the
    in-memory one, so no job depends on a shared metastore.
    """
    existing = [(spec.name, table_path(warehouse, spec)) for spec in TABLES
                if is_delta_table(spark, table_path(warehouse, spec))]
    for statement in registration_statements(existing, schema_name):
        spark.sql(statement)
    for statement in view_statements([name for name, _ in existing], schema_name):
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
    for statement in registration_statements(pairs) + view_statements([name for name, _ in pairs]):
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
