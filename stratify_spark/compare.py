"""Compare two runs of one data set: migration matrix, rows in one run only, segment changes and agreement.

Everything row-sized stays in Spark: the migration matrix is a group-by of the
full outer join of the two runs' assignments, and the agreement scores are
computed from its cells (at most k_a x k_b rows), never from collected labels.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Optional

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from stratify_spark import tables
from stratify_spark.agreement import adjusted_mutual_info, adjusted_rand_index
from stratify_spark.config import validate_identifier, validate_run_id
from stratify_spark.errors import ConfigError, InputError
from stratify_spark.logs import context_logger
from stratify_spark.runs import succeeded_run

logger = logging.getLogger(__name__)

TOP_FLOWS = 5


@dataclass
class CompareResult:
    """Outcome of a comparison. `summary()` returns the job's one-line JSON summary."""

    tenant: str
    dataset: str
    compare_id: str
    run_a: str
    run_b: str
    rows_a: int
    rows_b: int
    rows_both: int
    adjusted_rand_index: Optional[float]
    adjusted_mutual_info: Optional[float]
    largest_flows: list[dict] = field(default_factory=list)
    segment_changes: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "job": "compare", "status": "succeeded", "tenant": self.tenant, "dataset": self.dataset,
            "compare_id": self.compare_id, "run_a": self.run_a, "run_b": self.run_b, "rows_a": self.rows_a,
            "rows_b": self.rows_b, "rows_both": self.rows_both, "adjusted_rand_index": self.adjusted_rand_index,
            "adjusted_mutual_info": self.adjusted_mutual_info, "largest_flows": self.largest_flows,
            "segment_changes": self.segment_changes, "seconds": self.seconds,
        }


def default_compare_id(run_a: str, run_b: str) -> str:
    """Return '<run a>-vs-<run b>', or a digest of it when that is longer than a run id may be."""
    candidate = f"{run_a}-vs-{run_b}"
    if len(candidate) <= 64:
        return candidate
    return "cmp-" + hashlib.sha256(candidate.encode("utf-8")).hexdigest()[:24]


def migrations(a: DataFrame, b: DataFrame) -> DataFrame:
    """Count rows per (segment in run a, segment in run b); a null side means the row is not in that run.

    Both inputs have record_key, segment_id and segment_key. `share_of_a` is the share
    of run a's segment that went to segment b (null for rows only in run b).
    """
    joined = (
        a.select("record_key", F.col("segment_id").alias("segment_id_a"), F.col("segment_key").alias("segment_key_a"))
        .join(b.select("record_key", F.col("segment_id").alias("segment_id_b"),
                       F.col("segment_key").alias("segment_key_b")), "record_key", "full_outer")
    )
    cells = joined.groupBy("segment_id_a", "segment_key_a", "segment_id_b", "segment_key_b").agg(
        F.count(F.lit(1)).alias("rows"))
    # One row per cell, so the window over segment a is small.
    size_a = F.sum("rows").over(Window.partitionBy("segment_id_a"))
    return cells.withColumn("share_of_a", F.when(F.col("segment_id_a").isNotNull(), F.col("rows") / size_a))


def rows_in_one_run(a: DataFrame, b: DataFrame) -> DataFrame:
    """Return the record keys present in only one run, with the run ('a' or 'b') and their segment there."""
    only_a = a.join(b.select("record_key"), "record_key", "left_anti").select(
        "record_key", F.lit("a").alias("present_in"), "segment_id", "segment_key")
    only_b = b.join(a.select("record_key"), "record_key", "left_anti").select(
        "record_key", F.lit("b").alias("present_in"), "segment_id", "segment_key")
    return only_a.unionByName(only_b)


def scale_centre(model: dict, centre: dict[str, float]) -> Optional[list[float]]:
    """Map a centre in original units (by feature name) into a run model's scaled space."""
    values = []
    for feature in model["features"]:
        value = centre.get(feature["name"])
        if value is None:
            return None
        if feature["log1p"]:
            if value <= -1:
                return None
            value = math.log1p(value)
        values.append((value - feature["shift"]) / feature["divisor"])
    return values


def segment_changes(profiles_a: list[dict], profiles_b: list[dict], model_b: Optional[dict]) -> list[dict]:
    """Pair the two runs' segments by stable key: size and share change, and centre movement.

    Profiles are collected profile rows (one per segment and feature, small). Centre
    drift is the Euclidean distance between the two centres in run b's scaled space.
    `centre_change` is b minus a per feature, in original units. Both are null
    unless both runs are clustering runs on the same features.
    """
    def by_key(rows: list[dict]) -> dict[str, dict]:
        segments: dict[str, dict] = {}
        for row in rows:
            key = row["segment_key"] or f"#{row['segment_id']}"
            segment = segments.setdefault(key, {"segment_id": row["segment_id"], "size": row["size"],
                                                "share": row["share"], "centre": {}})
            if row["centre"] is not None:
                segment["centre"][row["feature"]] = row["centre"]
        return segments

    a, b = by_key(profiles_a), by_key(profiles_b)
    changes = []
    for key in sorted(set(a) | set(b), key=lambda item: (len(item), item)):
        left, right = a.get(key), b.get(key)
        size_a = left["size"] if left else 0
        size_b = right["size"] if right else 0
        share_a = left["share"] if left else 0.0
        share_b = right["share"] if right else 0.0
        drift, change = None, None
        if left and right and left["centre"] and right["centre"] and set(left["centre"]) == set(right["centre"]):
            change = {name: right["centre"][name] - left["centre"][name] for name in sorted(right["centre"])}
            if model_b is not None:
                scaled_a, scaled_b = scale_centre(model_b, left["centre"]), scale_centre(model_b, right["centre"])
                if scaled_a is not None and scaled_b is not None:
                    drift = math.sqrt(sum((x - y) ** 2 for x, y in zip(scaled_a, scaled_b)))
        changes.append({
            "segment_key": key, "segment_id_a": left["segment_id"] if left else None,
            "segment_id_b": right["segment_id"] if right else None, "size_a": size_a, "size_b": size_b,
            "share_a": share_a, "share_b": share_b, "size_change": size_b - size_a,
            "share_change": share_b - share_a, "centre_drift": drift, "centre_change": change,
        })
    return changes


def run_compare(spark: SparkSession, warehouse: str, tenant: str, dataset: str, run_a: str, run_b: str,
                compare_id: Optional[str] = None) -> CompareResult:
    """Compare two succeeded runs of one data set and replace the comparison's rows in the four comparison tables."""
    validate_identifier(tenant, "tenant id")
    validate_identifier(dataset, "data set name")
    validate_run_id(run_a)
    validate_run_id(run_b)
    if run_a == run_b:
        raise ConfigError(f"--run-a and --run-b are both {run_a!r}; compare two different runs")
    compare_id = validate_run_id(compare_id or default_compare_id(run_a, run_b))
    log = context_logger(logger, tenant, dataset, compare_id)
    started = time.monotonic()

    ledger_a = succeeded_run(spark, warehouse, tenant, dataset, run_a)
    ledger_b = succeeded_run(spark, warehouse, tenant, dataset, run_b)
    log.info("compare started: run_a=%s (data version %s, %s) run_b=%s (data version %s, %s)", run_a,
             ledger_a["data_version"], ledger_a["algorithm"], run_b, ledger_b["data_version"], ledger_b["algorithm"])

    # Rows: one pass over the two runs' assignments gives the matrix with the one-run rows on null sides.
    assignments_a = tables.read_run_rows(spark, warehouse, tables.ASSIGNMENTS, tenant, run_a)
    assignments_b = tables.read_run_rows(spark, warehouse, tables.ASSIGNMENTS, tenant, run_b)
    matrix = [row.asDict() for row in migrations(assignments_a, assignments_b).collect()]
    rows_a = sum(cell["rows"] for cell in matrix if cell["segment_id_a"] is not None)
    rows_b = sum(cell["rows"] for cell in matrix if cell["segment_id_b"] is not None)
    both = [cell for cell in matrix if cell["segment_id_a"] is not None and cell["segment_id_b"] is not None]
    rows_both = sum(cell["rows"] for cell in both)
    if rows_a == 0 or rows_b == 0:
        raise InputError(f"{tenant}/{dataset}: run {run_a if rows_a == 0 else run_b!r} has no assignments; "
                         "re-run it with jobs/segment.py before comparing")

    # Agreement: from the cells of rows present in both runs.
    ari = ami = None
    if rows_both:
        contingency = spark.createDataFrame([(cell["segment_id_a"], cell["segment_id_b"], cell["rows"]) for cell in both],
                                            "a int, b int, n long")
        ari = adjusted_rand_index(contingency, "a", "b")
        ami = adjusted_mutual_info(contingency, "a", "b")
    else:
        log.warning("the two runs share no record key; agreement scores are null")

    profile_columns = ["segment_id", "segment_key", "size", "share", "feature", "centre"]
    profiles_a = [row.asDict() for row in tables.read_run_rows(
        spark, warehouse, tables.SEGMENT_PROFILES, tenant, run_a).select(*profile_columns).collect()]
    profiles_b = [row.asDict() for row in tables.read_run_rows(
        spark, warehouse, tables.SEGMENT_PROFILES, tenant, run_b).select(*profile_columns).collect()]
    model_b = load_model(spark, warehouse, tenant, run_b)
    changes = segment_changes(profiles_a, profiles_b, model_b)

    # Write: each table replaces this comparison's partition, so re-running a compare id replaces it.
    ids = [F.lit(tenant).alias("tenant"), F.lit(dataset).alias("dataset"), F.lit(compare_id).alias("compare_id")]
    comparison_row = {
        "tenant": tenant, "dataset": dataset, "compare_id": compare_id, "run_a": run_a, "run_b": run_b,
        "data_version_a": ledger_a["data_version"], "data_version_b": ledger_b["data_version"],
        "algorithm_a": ledger_a["algorithm"], "algorithm_b": ledger_b["algorithm"], "rows_a": rows_a,
        "rows_b": rows_b, "rows_both": rows_both, "rows_only_a": rows_a - rows_both, "rows_only_b": rows_b - rows_both,
        "adjusted_rand_index": ari, "adjusted_mutual_info": ami,
        "created_at": dt.datetime.now(dt.timezone.utc).replace(tzinfo=None),
    }
    matrix_df = tables.rows_df(spark, tables.COMPARISON_MIGRATIONS,
                               [{**cell, "tenant": tenant, "dataset": dataset, "compare_id": compare_id}
                                for cell in matrix])
    segments_df = tables.rows_df(spark, tables.COMPARISON_SEGMENTS,
                                 [{**change, "tenant": tenant, "dataset": dataset, "compare_id": compare_id}
                                  for change in changes])
    tables.replace_run_rows(spark, warehouse, tables.COMPARISON_MIGRATIONS, tenant, compare_id, matrix_df)
    tables.replace_run_rows(spark, warehouse, tables.COMPARISON_SEGMENTS, tenant, compare_id, segments_df)
    tables.replace_run_rows(spark, warehouse, tables.COMPARISON_ONLY_ROWS, tenant, compare_id,
                            rows_in_one_run(assignments_a, assignments_b).select(*ids, "*"))
    # The comparisons row goes last: a comparison listed there has all its other rows written.
    tables.replace_run_rows(spark, warehouse, tables.COMPARISONS, tenant, compare_id,
                            tables.rows_df(spark, tables.COMPARISONS, [comparison_row]))

    flows = largest_flows(matrix)
    moved = sorted((change for change in changes), key=lambda change: -abs(change["share_change"]))
    seconds = round(time.monotonic() - started, 3)
    log.info("compare succeeded in %.1f s: rows in both runs %d, only in %s %d, only in %s %d, ARI %s, AMI %s\n%s",
             seconds, rows_both, run_a, rows_a - rows_both, run_b, rows_b - rows_both, _fmt(ari), _fmt(ami),
             describe(flows, moved[:TOP_FLOWS]))
    return CompareResult(
        tenant=tenant, dataset=dataset, compare_id=compare_id, run_a=run_a, run_b=run_b, rows_a=rows_a,
        rows_b=rows_b, rows_both=rows_both, adjusted_rand_index=ari, adjusted_mutual_info=ami,
        largest_flows=flows,
        segment_changes=[{key: change[key] for key in ("segment_key", "size_a", "size_b", "share_change")}
                         for change in moved[:TOP_FLOWS]],
        seconds=seconds,
    )


def load_model(spark: SparkSession, warehouse: str, tenant: str, run_id: str) -> Optional[dict]:
    """Return a clustering run's frozen model (transforms, scaling, centres), or None for a rule run."""
    row = tables.read_run_rows(spark, warehouse, tables.RUN_MODELS, tenant, run_id).select("model").first()
    return json.loads(row["model"]) if row is not None else None


def largest_flows(matrix: list[dict], top: int = TOP_FLOWS) -> list[dict]:
    """Return the largest moves between two different segment keys, largest first."""
    moves = [cell for cell in matrix
             if cell["segment_id_a"] is not None and cell["segment_id_b"] is not None
             and cell["segment_key_a"] != cell["segment_key_b"]]
    moves.sort(key=lambda cell: (-cell["rows"], str(cell["segment_key_a"]), str(cell["segment_key_b"])))
    return [{"from": cell["segment_key_a"], "to": cell["segment_key_b"], "rows": cell["rows"],
             "share_of_from": cell["share_of_a"]} for cell in moves[:top]]


def describe(flows: list[dict], changes: list[dict]) -> str:
    """Return the readable end-of-job summary: largest flows and the segments that grew or shrank most."""
    lines = ["largest flows between segments:"]
    if not flows:
        lines.append("  none: every row that is in both runs kept its segment key")
    for flow in flows:
        lines.append(f"  {flow['from']} -> {flow['to']}: {flow['rows']:,} rows "
                     f"({flow['share_of_from']:.1%} of {flow['from']})")
    lines.append("segments that grew or shrank most (share of rows):")
    for change in changes:
        lines.append(f"  {change['segment_key']}: {change['size_a']:,} -> {change['size_b']:,} rows, "
                     f"share {change['share_a']:.1%} -> {change['share_b']:.1%} ({change['share_change']:+.1%})")
    return "\n".join(lines)


def _fmt(value: Optional[float]) -> str:
    return "null" if value is None else f"{value:.6f}"
