"""Stable segment keys: match a run's segments to the previous run of the same data set.

MLlib numbers clusters arbitrarily, so segment 2 of one run can be segment 5 of
the next. Each run is matched to the data set's previous succeeded run, and a
matched segment inherits that run's key ("S1", "S2", ...). Unmatched segments
get keys never used before for the data set, so a retired key is not reused.

Matching is an optimal one-to-one assignment (Hungarian method, scipy):
- clustering runs with the same features: centres compared in this run's scaled
  space, the previous run's centres being mapped there from original units;
- otherwise (rule runs, changed features): largest overlap of record keys.
A rule segment with the same name and rule as in the previous run is matched to
it before the assignment.

Segments are then flagged from the flows of record keys between the two runs:
- merged: at least two previous segments each sent MIN_FLOW_SHARE of their rows here;
- split: the previous segment this one mostly came from sent MIN_FLOW_SHARE of its rows
  to at least two segments of this run;
- kept / new: matched or not; retired: a previous segment that nothing matched.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from itertools import chain
from typing import Callable, Optional

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from stratify_spark import tables
from stratify_spark.clustering import SEGMENT_COLUMN
from stratify_spark.keys import RECORD_KEY_COLUMN
from stratify_spark.runs import latest_succeeded_run

KEY_PREFIX = "S"
MIN_FLOW_SHARE = 0.3
_KEY_PATTERN = re.compile(r"^S(\d+)\Z")


@dataclass(frozen=True)
class KeyRow:
    """One row of the segment_keys table (without tenant, data set and run id)."""

    segment_id: Optional[int]
    segment_key: str
    reference_segment_key: Optional[str]
    status: str
    overlap: Optional[float]
    centre_distance: Optional[float]


@dataclass(frozen=True)
class SegmentKeys:
    """The keys of one run: a key per segment id, the table rows, and the run they were matched to."""

    keys: dict[int, str]
    rows: list[KeyRow]
    reference_run_id: Optional[str]
    match_method: str

    def key_column(self, segment_column: str = SEGMENT_COLUMN) -> Column:
        """Return a column that maps a segment id to its stable key."""
        pairs = chain.from_iterable((F.lit(segment_id), F.lit(key)) for segment_id, key in sorted(self.keys.items()))
        return F.create_map(*pairs)[F.col(segment_column)]


def key_number(key: str) -> Optional[int]:
    match = _KEY_PATTERN.match(key or "")
    return int(match.group(1)) if match else None


def centre_distance(left: list[float], right: list[float], measure: str) -> float:
    """Euclidean distance, or 1 - cosine similarity for 'cosine' (1 when either centre is all zeros)."""
    if measure == "cosine":
        dot = sum(a * b for a, b in zip(left, right))
        norms = math.sqrt(sum(a * a for a in left)) * math.sqrt(sum(b * b for b in right))
        return 1.0 - dot / norms if norms > 0 else 1.0
    return math.sqrt(sum((a - b) ** 2 for a, b in zip(left, right)))


def plan_keys(
    current_ids: list[int],
    previous_keys: dict[int, str],
    flows: dict[tuple[int, int], int],
    distances: Optional[dict[tuple[int, int], float]],
    next_number: int,
    fixed: Optional[dict[int, int]] = None,
) -> list[KeyRow]:
    """Decide every segment's key and status; pure Python on small tables.

    `previous_keys` maps the previous run's segment ids to their keys, `flows` maps
    (previous id, current id) to the number of record keys in both, and `distances`
    maps the same pairs to centre distances (None to match by overlap). `fixed` maps
    current ids to previous ids that are matched before the assignment (rule
    segments with the same name and rule).
    """
    from scipy.optimize import linear_sum_assignment

    current_ids = sorted(current_ids)
    matches: dict[int, int] = dict(fixed or {})
    open_current = [current for current in current_ids if current not in matches]
    open_previous = [previous for previous in sorted(previous_keys) if previous not in matches.values()]
    if open_current and open_previous:
        if distances is not None:
            cost = [[distances[(previous, current)] for current in open_current] for previous in open_previous]
        else:
            cost = [[-flows.get((previous, current), 0) for current in open_current] for previous in open_previous]
        for row, column in zip(*linear_sum_assignment(cost)):
            previous, current = open_previous[row], open_current[column]
            # By overlap, a pair that shares no record is not a match.
            if distances is not None or flows.get((previous, current), 0) > 0:
                matches[current] = previous
    previous_ids = sorted(previous_keys)

    previous_totals = {previous: sum(n for (p, _), n in flows.items() if p == previous) for previous in previous_ids}
    current_totals = {current: sum(n for (_, c), n in flows.items() if c == current) for current in current_ids}

    def feeds(previous: int, current: int) -> bool:
        total = previous_totals.get(previous, 0)
        return total > 0 and flows.get((previous, current), 0) / total >= MIN_FLOW_SHARE

    rows = []
    for current in current_ids:
        feeders = [previous for previous in previous_ids if feeds(previous, current)]
        main_source = max(previous_ids, key=lambda previous: flows.get((previous, current), 0), default=None)
        if main_source is not None and flows.get((main_source, current), 0) == 0:
            main_source = None
        matched = matches.get(current)
        reference = matched if matched is not None else main_source

        if matched is not None:
            key = previous_keys[matched]
        else:
            key = f"{KEY_PREFIX}{next_number}"
            next_number += 1

        if len(feeders) >= 2:
            status = "merged"
        elif main_source is not None and sum(feeds(main_source, other) for other in current_ids) >= 2 \
                and feeds(main_source, current):
            status = "split"
        elif matched is not None:
            status = "kept"
        else:
            status = "new"

        overlap = None
        if reference is not None and current_totals.get(current):
            overlap = flows.get((reference, current), 0) / current_totals[current]
        distance = distances[(matched, current)] if distances is not None and matched is not None else None
        rows.append(KeyRow(current, key, previous_keys[reference] if reference is not None else None, status,
                           overlap, distance))

    matched_previous = set(matches.values())
    for previous in previous_ids:
        if previous not in matched_previous:
            rows.append(KeyRow(None, previous_keys[previous], previous_keys[previous], "retired", None, None))
    return rows


def flow_counts(current: DataFrame, previous: DataFrame) -> DataFrame:
    """Count record keys per (previous segment, current segment); both inputs have record_key and segment_id."""
    return (
        current.select(RECORD_KEY_COLUMN, F.col(SEGMENT_COLUMN).alias("current"))
        .join(previous.select(RECORD_KEY_COLUMN, F.col(SEGMENT_COLUMN).alias("previous")), RECORD_KEY_COLUMN)
        .groupBy("previous", "current")
        .count()
    )


def assign_segment_keys(
    spark: SparkSession,
    warehouse: str,
    tenant: str,
    dataset: str,
    run_id: str,
    current: DataFrame,
    current_ids: list[int],
    centres: Optional[dict[int, list[float]]] = None,
    to_scaled: Optional[Callable[[dict[str, float]], Optional[list[float]]]] = None,
    distance_measure: str = "euclidean",
    rules: Optional[dict[int, tuple[str, str]]] = None,
) -> SegmentKeys:
    """Match this run's segments to the previous succeeded run and return their stable keys.

    `current` has record_key and segment_id. `centres` are this run's centres in scaled
    space by segment id. `to_scaled` maps a previous centre, given in original units by
    feature name, into that space, and returns None when the features differ. `rules`
    maps a rule run's segment ids to (name, rule text): a segment whose name and rule
    are the same as in the previous run keeps its key whatever the overlap, because
    the rule, not the customers in it, defines the segment.
    """
    previous_run = latest_succeeded_run(spark, warehouse, tenant, dataset, exclude_run_id=run_id)
    used_numbers = [key_number(row["segment_key"]) for row in _dataset_keys(spark, warehouse, tenant, dataset, run_id)]
    next_number = max([number for number in used_numbers if number is not None], default=0) + 1

    previous_keys: dict[int, str] = {}
    if previous_run is not None:
        previous_keys = {
            row["segment_id"]: row["segment_key"]
            for row in tables.read_run_rows(spark, warehouse, tables.SEGMENT_KEYS, tenant, previous_run["run_id"])
            .where(F.col("segment_id").isNotNull()).select("segment_id", "segment_key").collect()
        }
    if not previous_keys:
        rows = [KeyRow(segment_id, f"{KEY_PREFIX}{next_number + index}", None, "new", None, None)
                for index, segment_id in enumerate(sorted(current_ids))]
        return SegmentKeys({row.segment_id: row.segment_key for row in rows}, rows, None, "none")

    previous_id = previous_run["run_id"]
    previous_assignments = tables.read_run_rows(spark, warehouse, tables.ASSIGNMENTS, tenant, previous_id)
    flows = {(row["previous"], row["current"]): int(row["count"])
             for row in flow_counts(current, previous_assignments).collect()}

    distances = None
    if centres is not None and to_scaled is not None:
        previous_centres = _previous_centres(spark, warehouse, tenant, previous_id)
        scaled = {segment_id: to_scaled(centre) for segment_id, centre in previous_centres.items()}
        if set(scaled) >= set(previous_keys) and all(value is not None for value in scaled.values()):
            distances = {(previous, current_id): centre_distance(scaled[previous], centres[current_id],
                                                                 distance_measure)
                         for previous in previous_keys for current_id in current_ids}

    fixed: dict[int, int] = {}
    if rules:
        previous_rules = _previous_rules(spark, warehouse, tenant, previous_id)
        by_rule = {rule: segment_id for segment_id, rule in previous_rules.items() if segment_id in previous_keys}
        fixed = {current_id: by_rule[rule] for current_id, rule in rules.items()
                 if current_id in current_ids and rule in by_rule}

    rows = plan_keys(current_ids, previous_keys, flows, distances, next_number, fixed)
    keys = {row.segment_id: row.segment_key for row in rows if row.segment_id is not None}
    method = "centres" if distances is not None else "overlap"
    if fixed:
        method = "rules" if len(fixed) == len(current_ids) else "rules+overlap"
    return SegmentKeys(keys, rows, previous_id, method)


def key_rows_df(spark: SparkSession, tenant: str, dataset: str, run_id: str, keys: SegmentKeys) -> DataFrame:
    """Return the segment_keys rows of one run as a DataFrame with the table's schema."""
    return tables.rows_df(spark, tables.SEGMENT_KEYS, [
        {"tenant": tenant, "dataset": dataset, "run_id": run_id, "segment_id": row.segment_id,
         "segment_key": row.segment_key, "reference_run_id": keys.reference_run_id,
         "reference_segment_key": row.reference_segment_key, "status": row.status, "overlap": row.overlap,
         "centre_distance": row.centre_distance, "match_method": keys.match_method}
        for row in keys.rows
    ])


def _dataset_keys(spark: SparkSession, warehouse: str, tenant: str, dataset: str, run_id: str) -> list:
    path = tables.table_path(warehouse, tables.SEGMENT_KEYS)
    if not tables.is_delta_table(spark, path):
        return []
    return (
        spark.read.format("delta").load(path)
        .where((F.col("tenant") == tenant) & (F.col("dataset") == dataset) & (F.col("run_id") != run_id))
        .select("segment_key").distinct().collect()
    )


def _previous_centres(spark: SparkSession, warehouse: str, tenant: str, run_id: str) -> dict[int, dict[str, float]]:
    """Return the previous run's centres in original units, by segment id and feature name (empty for rule runs)."""
    centres: dict[int, dict[str, float]] = {}
    profiles = tables.read_run_rows(spark, warehouse, tables.SEGMENT_PROFILES, tenant, run_id)
    for row in profiles.select(SEGMENT_COLUMN, "feature", "centre").collect():
        if row["centre"] is None:
            return {}
        centres.setdefault(row[SEGMENT_COLUMN], {})[row["feature"]] = row["centre"]
    return centres


def _previous_rules(spark: SparkSession, warehouse: str, tenant: str, run_id: str) -> dict[int, tuple[str, str]]:
    """Return a rule run's (name, rule text) by segment id; empty for a clustering run."""
    profiles = tables.read_run_rows(spark, warehouse, tables.SEGMENT_PROFILES, tenant, run_id)
    return {row[SEGMENT_COLUMN]: (row["segment_name"], row["rule"])
            for row in profiles.where(F.col("segment_name").isNotNull())
            .select(SEGMENT_COLUMN, "segment_name", "rule").distinct().collect()}
