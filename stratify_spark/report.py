"""Read one run, and optionally one comparison, from the result tables for the HTML run report.

The result tables already hold per-segment aggregates. Spark filters them to
one tenant and run (or comparison), and only those small summary rows reach
the driver. They have one row per run, per (segment, feature), per metric and
per pair of segments. `collect_small` rejects a table that is larger than a summary
should be instead of pulling it in. The report never reads assignments.

`describe_segment` names the segments of clustering runs, which have no rule
names, from their profiles: see its docstring for the wording rules.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Optional

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from stratify_spark import tables
from stratify_spark.config import validate_identifier, validate_run_id
from stratify_spark.errors import InputError
from stratify_spark.report_i18n import Texts

logger = logging.getLogger(__name__)

# More rows than this in one run's or one comparison's summary means a wrong filter, not a real run.
MAX_SUMMARY_ROWS = 100_000

# Summary tables read at the same time by load_run and load_comparison.
READ_THREADS = 3

# A feature describes a segment when its segment mean is at least DESCRIPTION_MIN_Z standard deviations
# from the overall mean, with "somewhat" below DESCRIPTION_STRONG_Z. A description names at most
# DESCRIPTION_FEATURES features.
DESCRIPTION_MIN_Z = 0.25
DESCRIPTION_STRONG_Z = 0.5
DESCRIPTION_FEATURES = 2

# Features with one of these words in their name count days since an event, so a low value means "recent".
RECENCY_NAME_PARTS = ("recency", "days_since")

PROFILE_STATS = ("mean", "stddev", "min", "p25", "median", "p75", "max", "null_rate", "centre", "overall_mean",
                 "z_score")


@dataclass(frozen=True)
class FeatureStats:
    """One feature's statistics in one segment, in original units (a `segment_profiles` row)."""

    feature: str
    mean: Optional[float] = None
    stddev: Optional[float] = None
    min: Optional[float] = None
    p25: Optional[float] = None
    median: Optional[float] = None
    p75: Optional[float] = None
    max: Optional[float] = None
    null_rate: Optional[float] = None
    centre: Optional[float] = None
    overall_mean: Optional[float] = None
    z_score: Optional[float] = None


@dataclass(frozen=True)
class Segment:
    """One segment of a run with its profile; `segment_key` is the stable key when the run has one."""

    segment_id: int
    size: int
    share: float
    segment_key: Optional[str] = None
    segment_name: Optional[str] = None
    rule: Optional[str] = None
    features: tuple[FeatureStats, ...] = ()
    key_status: Optional[str] = None
    is_default: bool = False

    @property
    def key(self) -> str:
        """Return the stable segment key, or the segment id as '#3' for runs without keys."""
        return self.segment_key or f"#{self.segment_id}"


@dataclass(frozen=True)
class Metric:
    """One `run_metrics` row."""

    name: str
    value: Optional[float]
    detail: Optional[str]


@dataclass(frozen=True)
class EntityBuild:
    """The feature build that wrote the data set version a run read, with its excluded rows by reason."""

    build_id: str
    source_dataset: str
    source_version: Optional[int]
    reference_date: Optional[dt.date]
    rows_read: Optional[int]
    rows_used: Optional[int]
    rows_excluded: Optional[int]
    exclusion_counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class CutPoints:
    """The quantile cut points of one band of a rule or RFM run."""

    band: str
    feature: str
    descending: bool
    cut_points: tuple[float, ...]
    source_run_id: Optional[str]


@dataclass(frozen=True)
class RunSummary:
    """Everything the report shows about one run."""

    tenant: str
    dataset: str
    run_id: str
    status: str
    algorithm: str
    parameters: dict[str, Any]
    data_version: Optional[int]
    finished_at: Optional[dt.datetime]
    seconds: Optional[float]
    rows_input: Optional[int]
    rows_used: Optional[int]
    rows_dropped: Optional[int]
    k_requested: Optional[int]
    k_produced: Optional[int]
    segments: tuple[Segment, ...]
    metrics: tuple[Metric, ...] = ()
    entity_build: Optional[EntityBuild] = None
    cut_points: tuple[CutPoints, ...] = ()
    retired_keys: tuple[str, ...] = ()

    @property
    def is_rule_run(self) -> bool:
        return self.algorithm in ("rules", "rfm")

    @property
    def features(self) -> list[str]:
        """Return the profiled features in the order of the first profiled segment."""
        profiled = next((segment for segment in self.segments if segment.features), None)
        return [stats.feature for stats in profiled.features] if profiled else []

    @property
    def recency_features(self) -> set[str]:
        """Return the features for which a low value means a recent event."""
        names = {name for name in self.features if any(part in name.lower() for part in RECENCY_NAME_PARTS)}
        if self.algorithm == "rfm" and isinstance(self.parameters.get("recency"), str):
            names.add(self.parameters["recency"])
        names.update(band.feature for band in self.cut_points if band.descending)
        return names


@dataclass(frozen=True)
class Migration:
    """Rows that were in segment a of run a and in segment b of run b; a None side means not in that run."""

    segment_id_a: Optional[int]
    segment_key_a: Optional[str]
    segment_id_b: Optional[int]
    segment_key_b: Optional[str]
    rows: int
    share_of_a: Optional[float]


@dataclass(frozen=True)
class SegmentChange:
    """The change of one segment key's size, share and centre from run a to run b."""

    segment_key: str
    segment_id_a: Optional[int]
    segment_id_b: Optional[int]
    size_a: Optional[int]
    size_b: Optional[int]
    share_a: Optional[float]
    share_b: Optional[float]
    size_change: Optional[int]
    share_change: Optional[float]
    centre_drift: Optional[float]


@dataclass(frozen=True)
class ComparisonSummary:
    """One comparison of two runs, with the segments of both runs for labels."""

    compare_id: str
    run_a: str
    run_b: str
    data_version_a: Optional[int]
    data_version_b: Optional[int]
    algorithm_a: Optional[str]
    algorithm_b: Optional[str]
    rows_a: Optional[int]
    rows_b: Optional[int]
    rows_both: Optional[int]
    rows_only_a: Optional[int]
    rows_only_b: Optional[int]
    adjusted_rand_index: Optional[float]
    adjusted_mutual_info: Optional[float]
    migrations: tuple[Migration, ...]
    segment_changes: tuple[SegmentChange, ...]
    segments_a: tuple[Segment, ...]
    segments_b: tuple[Segment, ...]


def table_frame(spark: SparkSession, warehouse: str, name: str) -> Optional[DataFrame]:
    """Return the shared table `name` as a DataFrame, or None when it does not exist yet.

    The path is built like `tables.table_path`, by name, because the comparison
    tables have no TableSpec in every version of `tables`.
    """
    path = f"{warehouse}/tables/{name}"
    if not tables.is_delta_table(spark, path):
        return None
    return spark.read.format("delta").load(path)


def collect_small(df: DataFrame, table_name: str) -> list[dict[str, Any]]:
    """Collect a summary DataFrame as dicts, or raise InputError when it has more rows than a summary has."""
    rows = df.limit(MAX_SUMMARY_ROWS + 1).collect()
    if len(rows) > MAX_SUMMARY_ROWS:
        raise InputError(f"the filtered table {table_name} has more than {MAX_SUMMARY_ROWS:,} rows, which is not "
                         "a summary; check that the result tables were written by this version of the jobs")
    return [row.asDict() for row in rows]


def _required_table(spark: SparkSession, warehouse: str, name: str, fix: str) -> DataFrame:
    df = table_frame(spark, warehouse, name)
    if df is None:
        raise InputError(f"the result table {name} does not exist under {warehouse}/tables; {fix}")
    return df


def latest_succeeded_run(spark: SparkSession, warehouse: str, tenant: str, dataset: str) -> str:
    """Return the id of the data set's most recently finished succeeded run."""
    validate_identifier(tenant, "tenant id")
    validate_identifier(dataset, "data set name")
    runs = _required_table(spark, warehouse, tables.RUNS.name, "run jobs/segment.py first")
    latest = (
        runs.filter((F.col("tenant") == tenant) & (F.col("dataset") == dataset) & (F.col("status") == "succeeded"))
        .orderBy(F.col("finished_at").desc_nulls_last(), F.col("created_at").desc_nulls_last())
        .select("run_id").first()
    )
    if latest is None:
        raise InputError(f"no succeeded run of {tenant}/{dataset} in {warehouse}; run jobs/segment.py for it first")
    return latest["run_id"]


def load_run(spark: SparkSession, warehouse: str, tenant: str, dataset: str, run_id: str) -> RunSummary:
    """Read one succeeded run's row, segments, profiles, metrics, cut points and feature build."""
    validate_identifier(tenant, "tenant id")
    validate_identifier(dataset, "data set name")
    validate_run_id(run_id)
    where = f"{tenant}/{dataset} run {run_id}"

    runs = _required_table(spark, warehouse, tables.RUNS.name, "run jobs/segment.py first")
    run_rows = collect_small(runs.filter((F.col("tenant") == tenant) & (F.col("run_id") == run_id)), "runs")
    if not run_rows:
        raise InputError(f"run {run_id} of tenant {tenant} not found in {warehouse}; "
                         f"{_known_runs_hint(runs, tenant, dataset)}")
    run = run_rows[0]
    if run["dataset"] != dataset:
        raise InputError(f"run {run_id} of tenant {tenant} belongs to data set {run['dataset']}, not {dataset}; "
                         f"pass --dataset {run['dataset']}")
    if run["status"] != "succeeded":
        raise InputError(f"{where} has status {run['status']!r}; a report needs a succeeded run, so run it again or "
                         f"pick another run ({_known_runs_hint(runs, tenant, dataset)})")

    # The reads do not depend on one another. Most of each one's time is the driver loading that
    # table's Delta log and planning, so a few of them run at the same time.
    with ThreadPoolExecutor(max_workers=READ_THREADS, thread_name_prefix="report-read") as pool:
        segments_read = pool.submit(_load_segments, spark, warehouse, tenant, run_id, where)
        rules_read = pool.submit(_load_rules, spark, warehouse, tenant, run_id)
        keys_read = pool.submit(_load_key_statuses, spark, warehouse, tenant, run_id)
        metrics_read = pool.submit(_load_metrics, spark, warehouse, tenant, run_id)
        cut_points_read = pool.submit(_load_cut_points, spark, warehouse, tenant, run_id)
        build_read = pool.submit(_load_entity_build, spark, warehouse, tenant, dataset, run["data_version"])

    segments = _with_declared_rules(segments_read.result(), rules_read.result())
    key_statuses, retired = keys_read.result()
    if key_statuses:
        segments = tuple(_with_key_status(segment, key_statuses) for segment in segments)

    return RunSummary(
        tenant=tenant, dataset=dataset, run_id=run_id, status=run["status"], algorithm=run["algorithm"],
        parameters=_parse_json(run["parameters"]), data_version=run["data_version"],
        finished_at=run["finished_at"], seconds=run["seconds"], rows_input=run["rows_input"],
        rows_used=run["rows_used"], rows_dropped=run["rows_dropped"], k_requested=run["k_requested"],
        k_produced=run["k_produced"], segments=segments, metrics=metrics_read.result(),
        entity_build=build_read.result(), cut_points=cut_points_read.result(), retired_keys=retired,
    )


def _known_runs_hint(runs: DataFrame, tenant: str, dataset: str) -> str:
    recent = collect_small(
        runs.filter((F.col("tenant") == tenant) & (F.col("dataset") == dataset) & (F.col("status") == "succeeded"))
        .orderBy(F.col("finished_at").desc_nulls_last()).select("run_id").limit(5),
        "runs",
    )
    if not recent:
        return f"{tenant}/{dataset} has no succeeded run yet"
    return "latest succeeded runs: " + ", ".join(row["run_id"] for row in recent)


def _run_filter(tenant: str, run_id: str):
    return (F.col("tenant") == tenant) & (F.col("run_id") == run_id)


def _load_segments(spark: SparkSession, warehouse: str, tenant: str, run_id: str, where: str) -> tuple[Segment, ...]:
    profiles = _required_table(spark, warehouse, tables.SEGMENT_PROFILES.name, "run jobs/segment.py first")
    rows = collect_small(profiles.filter(_run_filter(tenant, run_id)), "segment_profiles")
    if not rows:
        raise InputError(f"{where} has no rows in segment_profiles; run it again with jobs/segment.py")

    by_segment: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        by_segment.setdefault(row["segment_id"], []).append(row)

    segments = []
    for segment_id in sorted(by_segment):
        feature_rows = by_segment[segment_id]
        first = feature_rows[0]
        segments.append(Segment(
            segment_id=segment_id, size=int(first["size"]), share=float(first["share"]),
            segment_key=first.get("segment_key"), segment_name=first.get("segment_name"), rule=first.get("rule"),
            features=tuple(FeatureStats(feature=row["feature"], **{name: row[name] for name in PROFILE_STATS})
                           for row in feature_rows),
        ))
    return _order_features(segments)


def _order_features(segments: list[Segment]) -> tuple[Segment, ...]:
    """Give every segment the same feature order: the order the features first appear in."""
    order: dict[str, int] = {}
    for segment in segments:
        for stats in segment.features:
            order.setdefault(stats.feature, len(order))
    return tuple(
        replace(segment, features=tuple(sorted(segment.features, key=lambda stats: order[stats.feature])))
        for segment in segments
    )


def _load_rules(spark: SparkSession, warehouse: str, tenant: str, run_id: str) -> list[dict[str, Any]]:
    rules = table_frame(spark, warehouse, tables.RUN_RULES.name)
    if rules is None:
        return []
    return collect_small(rules.filter(_run_filter(tenant, run_id)), "run_rules")


def _with_declared_rules(segments: tuple[Segment, ...], rules: list[dict[str, Any]]) -> tuple[Segment, ...]:
    """Mark the default segment of a rule run and add its declared segments that received no rows.

    Profiles exist only for segments with rows, so an empty rule segment comes from `run_rules` alone.
    """
    if not rules:
        return segments
    by_id = {segment.segment_id: segment for segment in segments}
    merged = []
    for rule in sorted(rules, key=lambda row: row["segment_id"]):
        segment = by_id.pop(rule["segment_id"], None)
        if segment is None:
            segment = Segment(segment_id=rule["segment_id"], size=0, share=0.0, segment_name=rule["segment_name"],
                              rule=rule["rule"])
        merged.append(replace(segment, is_default=bool(rule["is_default"])))
    return tuple(merged) + tuple(by_id.values())


def _load_key_statuses(spark: SparkSession, warehouse: str, tenant: str,
                       run_id: str) -> tuple[dict[str, str], tuple[str, ...]]:
    """Return each segment key's status in this run and the keys this run retired, when keys exist."""
    keys = table_frame(spark, warehouse, "segment_keys")
    if keys is None:
        return {}, ()
    rows = collect_small(keys.filter(_run_filter(tenant, run_id)).select("segment_id", "segment_key", "status"),
                         "segment_keys")
    statuses = {row["segment_key"]: row["status"] for row in rows if row["segment_id"] is not None}
    retired = tuple(sorted(row["segment_key"] for row in rows if row["segment_id"] is None))
    return statuses, retired


def _with_key_status(segment: Segment, statuses: dict[str, str]) -> Segment:
    return replace(segment, key_status=statuses.get(segment.segment_key))


def _load_metrics(spark: SparkSession, warehouse: str, tenant: str, run_id: str) -> tuple[Metric, ...]:
    metrics = table_frame(spark, warehouse, tables.RUN_METRICS.name)
    if metrics is None:
        return ()
    rows = collect_small(metrics.filter(_run_filter(tenant, run_id)).orderBy("metric"), "run_metrics")
    return tuple(Metric(row["metric"], row["value"], row["detail"]) for row in rows)


def _load_cut_points(spark: SparkSession, warehouse: str, tenant: str, run_id: str) -> tuple[CutPoints, ...]:
    cut_points = table_frame(spark, warehouse, tables.RUN_CUT_POINTS.name)
    if cut_points is None:
        return ()
    rows = collect_small(cut_points.filter(_run_filter(tenant, run_id)).orderBy("band"), "run_cut_points")
    return tuple(CutPoints(row["band"], row["feature"], bool(row["descending"]), tuple(row["cut_points"] or ()),
                           row["source_run_id"]) for row in rows)


def _load_entity_build(spark: SparkSession, warehouse: str, tenant: str, dataset: str,
                       data_version: Optional[int]) -> Optional[EntityBuild]:
    """Return the succeeded feature build that wrote `data_version` of the data set, if one did."""
    builds = table_frame(spark, warehouse, tables.ENTITY_BUILDS.name)
    if builds is None or data_version is None:
        return None
    row = (
        builds.filter((F.col("tenant") == tenant) & (F.col("dataset") == dataset)
                      & (F.col("data_version") == data_version) & (F.col("status") == "succeeded"))
        .orderBy(F.col("finished_at").desc_nulls_last()).first()
    )
    if row is None:
        return None
    return EntityBuild(
        build_id=row["build_id"], source_dataset=row["source_dataset"], source_version=row["source_version"],
        reference_date=row["reference_date"], rows_read=row["rows_read"], rows_used=row["rows_used"],
        rows_excluded=row["rows_excluded"], exclusion_counts=dict(row["exclusion_counts"] or {}),
    )


def _parse_json(text: Optional[str]) -> dict[str, Any]:
    if not text:
        return {}
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        logger.warning("the run's parameters are not valid JSON; the report leaves them out: %.200s", text)
        return {}
    return parsed if isinstance(parsed, dict) else {}


def load_comparison(spark: SparkSession, warehouse: str, tenant: str, dataset: str,
                    compare_id: str) -> ComparisonSummary:
    """Read one comparison's row, migration matrix and segment changes, plus the earlier run's segments."""
    validate_identifier(tenant, "tenant id")
    validate_identifier(dataset, "data set name")
    validate_run_id(compare_id)
    fix = "run jobs/compare.py first"
    where = f"{tenant}/{dataset} comparison {compare_id}"
    compare_filter = (F.col("tenant") == tenant) & (F.col("compare_id") == compare_id)

    comparisons = _required_table(spark, warehouse, "comparisons", fix)
    rows = collect_small(comparisons.filter(compare_filter), "comparisons")
    if not rows:
        raise InputError(f"{where} not found in {warehouse}; check --compare-id or {fix}")
    row = rows[0]
    if row["dataset"] != dataset:
        raise InputError(f"comparison {compare_id} of tenant {tenant} belongs to data set {row['dataset']}, "
                         f"not {dataset}")

    def read_migrations() -> list[dict[str, Any]]:
        migrations_table = _required_table(spark, warehouse, "comparison_migrations", fix)
        return collect_small(migrations_table.filter(compare_filter), "comparison_migrations")

    def read_changes() -> list[dict[str, Any]]:
        changes_table = table_frame(spark, warehouse, "comparison_segments")
        return [] if changes_table is None else collect_small(changes_table.filter(compare_filter),
                                                               "comparison_segments")

    with ThreadPoolExecutor(max_workers=READ_THREADS, thread_name_prefix="report-read") as pool:
        migrations_read = pool.submit(read_migrations)
        changes_read = pool.submit(read_changes)
        segments_a_read = pool.submit(_load_segments, spark, warehouse, tenant, row["run_a"],
                                      f"{tenant}/{dataset} run {row['run_a']}")
        segments_b_read = pool.submit(_load_segments, spark, warehouse, tenant, row["run_b"],
                                      f"{tenant}/{dataset} run {row['run_b']}")
    migrations, changes = migrations_read.result(), changes_read.result()

    return ComparisonSummary(
        compare_id=compare_id, run_a=row["run_a"], run_b=row["run_b"],
        data_version_a=row["data_version_a"], data_version_b=row["data_version_b"],
        algorithm_a=row["algorithm_a"], algorithm_b=row["algorithm_b"], rows_a=row["rows_a"], rows_b=row["rows_b"],
        rows_both=row["rows_both"], rows_only_a=row["rows_only_a"], rows_only_b=row["rows_only_b"],
        adjusted_rand_index=row["adjusted_rand_index"], adjusted_mutual_info=row["adjusted_mutual_info"],
        migrations=tuple(sorted(
            (Migration(m["segment_id_a"], m["segment_key_a"], m["segment_id_b"], m["segment_key_b"], int(m["rows"]),
                       m["share_of_a"]) for m in migrations),
            key=lambda m: (_sort_id(m.segment_id_a), _sort_id(m.segment_id_b)),
        )),
        segment_changes=tuple(sorted(
            (SegmentChange(**{name: c[name] for name in SegmentChange.__dataclass_fields__}) for c in changes),
            key=lambda c: (_sort_id(c.segment_id_b), _sort_id(c.segment_id_a)),
        )),
        segments_a=segments_a_read.result(),
        segments_b=segments_b_read.result(),
    )


def _sort_id(segment_id: Optional[int]) -> tuple[int, int]:
    """Sort key that puts 'not in this run' (None) after every segment."""
    return (1, 0) if segment_id is None else (0, segment_id)


def describe_segment(segment: Segment, texts: Texts, recency_features: set[str]) -> str:
    """Describe a segment by the features that set it apart, for example 'high monetary, recent'.

    The description names at most DESCRIPTION_FEATURES features, those with the
    largest absolute z-score of at least DESCRIPTION_MIN_Z, strongest first. A
    feature reads "high <name>" or "low <name>" by the sign of its z-score,
    except a recency feature (`recency_features`: days since the last event),
    where a low value reads "recent" and a high one "not recent". Below
    DESCRIPTION_STRONG_Z the words are weaker: "somewhat high <name>", "fairly
    recent", "less recent". A segment with no such feature is "close to average".
    """
    ranked = sorted(
        (stats for stats in segment.features
         if stats.z_score is not None and abs(stats.z_score) >= DESCRIPTION_MIN_Z),
        key=lambda stats: -abs(stats.z_score),
    )[:DESCRIPTION_FEATURES]
    if not ranked:
        return texts("desc_average")

    words = []
    for stats in ranked:
        readable = stats.feature.replace("_", " ")
        strength = "" if abs(stats.z_score) >= DESCRIPTION_STRONG_Z else "_somewhat"
        if stats.feature in recency_features:
            direction = "recent" if stats.z_score < 0 else "not_recent"
        else:
            direction = "high" if stats.z_score > 0 else "low"
        words.append(texts(f"desc{strength}_{direction}", feature=readable))
    return ", ".join(words)


def segment_title(segment: Segment, texts: Texts, recency_features: set[str]) -> str:
    """Return the segment's display name: its rule name, else a description generated from its profile."""
    return segment.segment_name or describe_segment(segment, texts, recency_features)
