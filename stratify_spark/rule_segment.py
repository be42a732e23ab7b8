"""Rule and RFM runs: quantile bands, ordered rules where the first match wins, and a default segment.

A rule run writes the same tables as a clustering run (runs, assignments,
segment_profiles, run_metrics) plus the rules it used (run_rules), the cut
points of its bands (run_cut_points) and each row's band scores (run_scores).
Segment ids are rule positions: 0 for the first rule, and the number of rules
for the default segment. Assignments have no distance and profiles no centre;
profiles name the segment and show its rule instead.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from stratify_spark import tables
from stratify_spark.bands import BandCuts, compute_cut_points, feature_value, with_band_scores
from stratify_spark.clustering import DISTANCE_COLUMN, SEGMENT_COLUMN
from stratify_spark.config import BandSpec, DatasetConfig, FeatureSpec, RfmParams, RulesParams, validate_run_id
from stratify_spark.errors import ConfigError, InputError
from stratify_spark.features import FeaturePlan, FeatureStats, is_null_feature, raw_feature
from stratify_spark.keys import RECORD_KEY_COLUMN
from stratify_spark.logs import context_logger
from stratify_spark.profiles import PROFILE_COLUMNS, segment_profiles
from stratify_spark.rules import NUMBER, Expression, compile_condition, spark_type_category, type_category
from stratify_spark.runs import RunLedger
from stratify_spark.segment import new_run_id, resolve_version
from stratify_spark.stable_keys import SegmentKeys, assign_segment_keys, key_rows_df

logger = logging.getLogger(__name__)

MATCH_COUNT_COLUMN = "_match_count"
DEFAULT_RULE_TEXT = "(default: rows that match no rule)"
WRITE_THREADS = 3


def match_column(index: int) -> str:
    """Name of the column that is true where rule `index` matches, before first-match resolution."""
    return f"_match{index}"


@dataclass(frozen=True)
class CompiledRule:
    """One rule of a run with its segment id (its position) and its checked condition."""

    segment_id: int
    name: str
    text: str
    expression: Expression


@dataclass
class RuleRunResult:
    """Result of a finished rule run. `summary()` returns the job's one-line JSON summary."""

    tenant: str
    dataset: str
    run_id: str
    data_version: int
    algorithm: str
    rows_input: int
    segments: list[dict] = field(default_factory=list)
    rows_multiple_matches: int = 0
    rows_default: int = 0
    rule_matches: dict[str, int] = field(default_factory=dict)
    cut_points: dict[str, list[float]] = field(default_factory=dict)
    cut_points_from: Optional[str] = None
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "job": "segment", "status": "succeeded", "tenant": self.tenant, "dataset": self.dataset,
            "run_id": self.run_id, "data_version": self.data_version, "algorithm": self.algorithm,
            "k_requested": len(self.segments), "k_produced": sum(1 for s in self.segments if s["size"] > 0),
            "rows_input": self.rows_input, "rows_used": self.rows_input, "rows_dropped": 0,
            "segment_sizes": {segment["segment_name"]: segment["size"] for segment in self.segments},
            "rule_matches": self.rule_matches, "rows_multiple_matches": self.rows_multiple_matches,
            "rows_default": self.rows_default, "cut_points": self.cut_points,
            "cut_points_from": self.cut_points_from, "seconds": self.seconds,
        }


def compile_rules(config: DatasetConfig) -> list[CompiledRule]:
    """Compile the run's rules against the declared columns and the band score columns."""
    params = config.segment.algorithm
    column_types = {column.name: type_category(column.type) for column in config.columns}
    column_types.update({band.name: NUMBER for band in params.band_specs()})
    return [
        CompiledRule(index, rule.name, rule.when,
                     compile_condition(rule.when, column_types, f"segment.algorithm.segments[{index}].when "
                                       f"(rule '{rule.name}')"))
        for index, rule in enumerate(params.segments)
    ]


def scored_rows(params: Union[RulesParams, RfmParams]) -> Optional[Column]:
    """Return the condition of the rows that get band scores and make the cut points, or None for all rows.

    RFM scores only rows with a recency, that is customers with a purchase. The
    others (frequency 0, monetary 0) get null scores and land in the default
    segment, so they neither pull the cut points down nor score as buyers.
    """
    if isinstance(params, RfmParams):
        return F.col(params.recency).isNotNull()
    return None


def assign_segments(df: DataFrame, rules: list[CompiledRule]) -> DataFrame:
    """Add one match flag per rule, the number of rules that match, and the first matching rule's segment id.

    A condition that is null for a row (a missing value) does not match it. Rows
    that match no rule get the default segment id, which is the number of rules.
    """
    flags = [rule.expression.condition().alias(match_column(rule.segment_id)) for rule in rules]
    flagged = df.select("*", *flags)

    match_count = F.lit(0)
    first_match: Optional[Column] = None
    for rule in rules:
        is_match = F.col(match_column(rule.segment_id))
        match_count = match_count + is_match.cast("int")
        first_match = F.when(is_match, F.lit(rule.segment_id)) if first_match is None \
            else first_match.when(is_match, F.lit(rule.segment_id))
    segment_id = first_match.otherwise(F.lit(len(rules))).cast("int")
    return flagged.withColumn(MATCH_COUNT_COLUMN, match_count).withColumn(SEGMENT_COLUMN, segment_id)


def coverage_aggregates(rules: list[CompiledRule]) -> list[Column]:
    """Return aggregates of `assign_segments` output: rows, matches per rule, multi-matches and segment sizes."""
    aggregates = [
        F.count(F.lit(1)).alias("rows"),
        F.count_if(F.col(MATCH_COUNT_COLUMN) > 1).alias("multiple_matches"),
    ]
    aggregates += [F.count_if(F.col(match_column(rule.segment_id))).alias(f"matches{rule.segment_id}")
                   for rule in rules]
    aggregates += [F.count_if(F.col(SEGMENT_COLUMN) == segment_id).alias(f"size{segment_id}")
                   for segment_id in range(len(rules) + 1)]
    return aggregates


def _profile_features(config: DatasetConfig) -> list[FeatureSpec]:
    """Return the profiled columns: the configured features, then each band's score."""
    features = list(config.segment.features)
    names = {feature.name for feature in features}
    features += [FeatureSpec(name=band.name) for band in config.segment.algorithm.band_specs() if band.name not in names]
    return features


def _check_table_columns(data: DataFrame, config: DatasetConfig, needed: list[str], where: str) -> None:
    """Raise InputError when the table lacks a needed column or stores it with another type than declared."""
    if RECORD_KEY_COLUMN not in data.columns:
        raise InputError(f"{where}: the data set table has no record_key column; declare 'key' in the config and "
                         "ingest again with --mode overwrite")
    declared = {column.name: column for column in config.columns}
    stored = {item.name: item.dataType for item in data.schema.fields}
    for name in needed:
        if name not in stored:
            raise InputError(f"{where}: column {name!r} is declared in the config but missing from the data set "
                             f"table; columns present: {', '.join(sorted(stored))}. Ingest or build the data set again")
        expected = type_category(declared[name].type)
        actual = spark_type_category(stored[name])
        if expected != actual:
            raise InputError(f"{where}: column {name!r} is declared as {declared[name].type} but the table stores "
                             f"{stored[name].simpleString()}; ingest or build the data set again with this config")


def load_cut_points(spark: SparkSession, warehouse: str, config: DatasetConfig, source_run_id: str,
                    specs: list[BandSpec], where: str) -> list[BandCuts]:
    """Return the cut points that run `source_run_id` of the same tenant and data set stored for each band.

    Raises ConfigError when that run did not succeed, stored no cut points, or
    stored them for another feature, band count or direction.
    """
    validate_run_id(source_run_id)
    runs_path = tables.table_path(warehouse, tables.RUNS)
    cuts_path = tables.table_path(warehouse, tables.RUN_CUT_POINTS)
    same_run = ((F.col("tenant") == config.tenant) & (F.col("dataset") == config.dataset)
                & (F.col("run_id") == source_run_id))
    status = None
    if tables.is_delta_table(spark, runs_path):
        row = spark.read.format("delta").load(runs_path).filter(same_run).select("status").first()
        status = row["status"] if row else None
    if status != "succeeded":
        found = f"its status is {status}" if status else "no such run exists"
        raise ConfigError(f"{where}: cut_points_from {source_run_id!r} cannot be used because {found} for "
                          f"{config.tenant}/{config.dataset}; pass a succeeded rules or rfm run of this data set")

    stored: dict[str, Any] = {}
    if tables.is_delta_table(spark, cuts_path):
        stored = {row["band"]: row for row in spark.read.format("delta").load(cuts_path).filter(same_run).collect()}
    result = []
    for spec in specs:
        row = stored.get(spec.name)
        cuts = BandCuts(row["band"], row["feature"], row["bands"], row["descending"],
                        tuple(row["cut_points"])) if row else None
        if cuts is None or not cuts.matches(spec):
            requested = BandCuts.from_spec(spec, ()).describe()
            found = cuts.describe() if cuts else "nothing"
            raise ConfigError(f"{where}: run {source_run_id!r} stored {found} for band {spec.name!r}, but this run "
                              f"needs {requested}; use a run with the same bands, or remove cut_points_from")
        result.append(cuts)
    return result


def run_rule_segment(
    spark: SparkSession,
    config: DatasetConfig,
    warehouse: str,
    run_id: Optional[str] = None,
    data_version: Optional[int] = None,
) -> RuleRunResult:
    """Segment the data set at one Delta version with bands and rules, and write every result table.

    The run moves through pending, running, succeeded or failed like a
    clustering run. Results of the same run id are replaced, and a failed run's
    results are deleted.
    """
    params = config.segment.algorithm
    run_id = validate_run_id(run_id or new_run_id())
    where = f"{config.tenant}/{config.dataset} run {run_id}"
    log = context_logger(logger, config.tenant, config.dataset, run_id)
    started = time.monotonic()
    rules = compile_rules(config)
    specs = params.band_specs()
    profile_features = _profile_features(config)

    ledger = RunLedger(spark, warehouse, config, run_id)
    ledger.record(status="pending", algorithm=params.name, parameters=params.model_dump_json(),
                  config=config.model_dump_json(), k_requested=params.k)
    assigned: Optional[DataFrame] = None
    try:
        path = tables.dataset_path(warehouse, config.tenant, config.dataset)
        version = resolve_version(spark, path, data_version, where)
        ledger.record(status="running", data_version=version, started_at=ledger.now())
        log.info("rule run started: algorithm=%s rules=%d bands=%d data_version=%d", params.name, len(rules),
                 len(specs), version)

        data = spark.read.format("delta").option("versionAsOf", version).load(path)
        band_names = {spec.name for spec in specs}
        needed = sorted({name for rule in rules for name in rule.expression.columns if name not in band_names}
                        | {spec.feature for spec in specs}
                        | {feature.name for feature in config.segment.features})
        _check_table_columns(data, config, needed, where)
        rows = data.select(F.col(RECORD_KEY_COLUMN).cast("string").alias(RECORD_KEY_COLUMN), *needed)

        eligible = scored_rows(params)
        if params.cut_points_from:
            cuts = load_cut_points(spark, warehouse, config, params.cut_points_from, specs, where)
        else:
            cuts = compute_cut_points(rows if eligible is None else rows.filter(eligible), specs, where)
        log.info("cut points (%s): %s", f"from run {params.cut_points_from}" if params.cut_points_from else "computed",
                 {band.name: list(band.cut_points) for band in cuts})

        scored = with_band_scores(rows, cuts, eligible)
        profile_columns = []
        for index, feature in enumerate(profile_features):
            profile_columns.append(feature_value(feature.name).alias(raw_feature(index)))
            profile_columns.append(feature_value(feature.name).isNull().alias(is_null_feature(index)))
        assigned = assign_segments(scored.select("*", *profile_columns), rules).persist(StorageLevel.MEMORY_AND_DISK)

        # One pass: coverage, segment sizes and the overall statistics that profiles compare against.
        totals = assigned.agg(*coverage_aggregates(rules), *_overall_statistics(len(profile_features))).first()
        rows_input = int(totals["rows"])
        if rows_input == 0:
            raise InputError(f"{where}: the data set has no rows to segment; ingest or build it first")
        plan = _profile_plan(totals, profile_features)
        segments = _segments(totals, rules, params.default)
        rule_matches = {rule.name: int(totals[f"matches{rule.segment_id}"]) for rule in rules}
        rows_default = segments[-1]["size"]
        log.info("rules applied: rows=%d multiple_matches=%d default=%d", rows_input, totals["multiple_matches"],
                 rows_default)

        metric_rows = _metric_rows(rows_input, segments, rule_matches, int(totals["multiple_matches"]), params.k)
        # Empty rule segments get no key: a key names a group of rows that exists in the run.
        segment_keys = assign_segment_keys(
            spark, warehouse, config.tenant, config.dataset, run_id, assigned.select(RECORD_KEY_COLUMN, SEGMENT_COLUMN),
            [segment["segment_id"] for segment in segments if segment["size"] > 0],
            rules={segment["segment_id"]: (segment["segment_name"], segment["rule"] or DEFAULT_RULE_TEXT)
                   for segment in segments},
        )
        log.info("segment keys (%s, reference run %s): %s", segment_keys.match_method,
                 segment_keys.reference_run_id, {row.segment_key: row.status for row in segment_keys.rows})
        _write_results(spark, warehouse, config, run_id, assigned, cuts, segments, plan, metric_rows,
                       params.cut_points_from, segment_keys)

        seconds = round(time.monotonic() - started, 3)
        k_produced = sum(1 for segment in segments if segment["size"] > 0)
        ledger.record(status="succeeded", finished_at=ledger.now(), seconds=seconds, rows_input=rows_input,
                      rows_used=rows_input, rows_dropped=0, k_produced=k_produced)
        log.info("rule run succeeded in %.1f s; segments:\n%s", seconds, format_rule_segments(segments))
        return RuleRunResult(
            tenant=config.tenant, dataset=config.dataset, run_id=run_id, data_version=version,
            algorithm=params.name, rows_input=rows_input, segments=segments,
            rows_multiple_matches=int(totals["multiple_matches"]), rows_default=rows_default,
            rule_matches=rule_matches, cut_points={band.name: list(band.cut_points) for band in cuts},
            cut_points_from=params.cut_points_from, seconds=seconds,
        )
    except Exception as error:
        log.error("rule run failed: %s", error)
        ledger.record_failure(error, tables.ALL_RUN_TABLES, round(time.monotonic() - started, 3), log)
        raise
    finally:
        if assigned is not None:
            assigned.unpersist()


def _overall_statistics(feature_count: int) -> list[Column]:
    """Return the per-column null count, mean, standard deviation and minimum over all rows."""
    statistics = []
    for index in range(feature_count):
        value = F.col(raw_feature(index))
        statistics += [F.count_if(value.isNull()).alias(f"nulls{index}"), F.avg(value).alias(f"mean{index}"),
                       F.stddev_samp(value).alias(f"std{index}"), F.min(value).alias(f"min{index}")]
    return statistics


def _profile_plan(totals, profile_features: list[FeatureSpec]) -> FeaturePlan:
    """Return a feature plan that profiles values as they are: no imputation, no scaling, no dropped row."""
    stats = tuple(
        FeatureStats(spec=feature, null_count=int(totals[f"nulls{index}"]), mean=totals[f"mean{index}"],
                     stddev=totals[f"std{index}"], minimum=totals[f"min{index}"], impute_value=None,
                     shift=0.0, divisor=1.0)
        for index, feature in enumerate(profile_features)
    )
    return FeaturePlan(features=stats, scaling="none", rows_input=int(totals["rows"]), rows_dropped=0)


def _segments(totals, rules: list[CompiledRule], default: str) -> list[dict]:
    """Return id, name, rule text (None for the default), size and share of every segment, default last."""
    names = [rule.name for rule in rules] + [default]
    texts = [rule.text for rule in rules] + [None]
    rows_input = int(totals["rows"])
    return [
        {"segment_id": segment_id, "segment_name": names[segment_id], "rule": texts[segment_id],
         "size": int(totals[f"size{segment_id}"]), "share": totals[f"size{segment_id}"] / rows_input}
        for segment_id in range(len(names))
    ]


def _run_columns(config: DatasetConfig, run_id: str) -> list[Column]:
    return [F.lit(config.tenant).alias("tenant"), F.lit(config.dataset).alias("dataset"), F.lit(run_id).alias("run_id")]


def _write_results(spark: SparkSession, warehouse: str, config: DatasetConfig, run_id: str, assigned: DataFrame,
                   cuts: list[BandCuts], segments: list[dict], plan: FeaturePlan, metric_rows: list[tuple],
                   cut_points_from: Optional[str], segment_keys: SegmentKeys) -> None:
    """Replace this run's rows in every result table, several tables at a time.

    Each table gets its own Delta commit, and the commits do not depend on one
    another. Six one-row replaceWhere commits (Spark 4.2, local[2], on 2 cores
    shared with other jobs) took 19 to 41 s one after another and 10 to 18 s
    three at a time.
    """
    run_columns = _run_columns(config, run_id)
    tenant = config.tenant

    def write_assignments() -> None:
        tables.replace_run_rows(spark, warehouse, tables.ASSIGNMENTS, tenant, run_id, assigned.select(
            *run_columns, RECORD_KEY_COLUMN, SEGMENT_COLUMN, F.lit(None).cast("double").alias(DISTANCE_COLUMN),
            segment_keys.key_column().alias("segment_key"),
        ))

    def write_scores() -> None:
        if not cuts:
            tables.delete_run_rows(spark, warehouse, tables.RUN_SCORES, tenant, run_id)
            return
        scores = F.explode(F.array(*[
            F.struct(F.lit(band.name).alias("band"), F.lit(band.feature).alias("feature"),
                     feature_value(band.feature).alias("value"), F.col(band.name).alias("score"))
            for band in cuts
        ])).alias("s")
        tables.replace_run_rows(spark, warehouse, tables.RUN_SCORES, tenant, run_id, assigned.select(
            *run_columns, RECORD_KEY_COLUMN, scores,
        ).select(*run_columns, RECORD_KEY_COLUMN, "s.band", "s.feature", "s.value", "s.score"))

    def write_cut_points() -> None:
        if not cuts:
            tables.delete_run_rows(spark, warehouse, tables.RUN_CUT_POINTS, tenant, run_id)
            return
        cut_rows = [{"tenant": tenant, "dataset": config.dataset, "run_id": run_id, "band": band.name,
                     "feature": band.feature, "bands": band.bands, "descending": band.descending,
                     "cut_points": list(band.cut_points), "source_run_id": cut_points_from} for band in cuts]
        tables.replace_run_rows(spark, warehouse, tables.RUN_CUT_POINTS, tenant, run_id,
                                tables.rows_df(spark, tables.RUN_CUT_POINTS, cut_rows))

    def write_profiles() -> None:
        by_id = {segment["segment_id"]: segment for segment in segments}
        profile_rows = [row.asDict() for row in segment_profiles(assigned, plan).collect()]
        profile_schema = T.StructType([field for field in tables.SEGMENT_PROFILES.schema.fields
                                       if field.name in PROFILE_COLUMNS + ("segment_name", "rule")])
        names = [field.name for field in profile_schema.fields]
        enriched = [{**row, "segment_name": by_id[row[SEGMENT_COLUMN]]["segment_name"],
                     "rule": by_id[row[SEGMENT_COLUMN]]["rule"] or DEFAULT_RULE_TEXT}
                    for row in profile_rows]
        profile_df = spark.createDataFrame([tuple(row[name] for name in names) for row in enriched], profile_schema)
        tables.replace_run_rows(spark, warehouse, tables.SEGMENT_PROFILES, tenant, run_id,
                                profile_df.select(*run_columns, *names,
                                                  segment_keys.key_column().alias("segment_key")))

    def write_keys() -> None:
        tables.replace_run_rows(spark, warehouse, tables.SEGMENT_KEYS, tenant, run_id,
                                key_rows_df(spark, tenant, config.dataset, run_id, segment_keys))

    def write_rules() -> None:
        rule_rows = [{"tenant": tenant, "dataset": config.dataset, "run_id": run_id,
                      "segment_id": segment["segment_id"], "segment_name": segment["segment_name"],
                      "rule": segment["rule"], "is_default": segment["rule"] is None} for segment in segments]
        tables.replace_run_rows(spark, warehouse, tables.RUN_RULES, tenant, run_id,
                                tables.rows_df(spark, tables.RUN_RULES, rule_rows))

    def write_metrics() -> None:
        tables.replace_run_rows(spark, warehouse, tables.RUN_METRICS, tenant, run_id,
                                spark.createDataFrame(metric_rows, "metric string, value double, detail string")
                                .select(*run_columns, "metric", "value", "detail"))

    def clear_clustering_rows() -> None:
        tables.delete_rows_of_run(spark, warehouse, tables.CLUSTERING_RUN_TABLES, tenant, run_id)

    actions = (write_assignments, write_scores, write_cut_points, write_profiles, write_rules, write_metrics,
               write_keys, clear_clustering_rows)
    with ThreadPoolExecutor(max_workers=WRITE_THREADS, thread_name_prefix="rule-run-write") as pool:
        futures = [pool.submit(action) for action in actions]
    for future in futures:
        future.result()


def _metric_rows(rows_input: int, segments: list[dict], rule_matches: dict[str, int], multiple_matches: int,
                 k_requested: int) -> list[tuple]:
    rows = [
        ("rows_input", float(rows_input), "rows in the data set at the pinned version"),
        ("rows_used", float(rows_input), "rows assigned to a segment; rule runs keep every row"),
        ("rows_dropped", 0.0, "rule runs drop no row"),
        ("k_requested", float(k_requested), "segments declared: the rules and the default segment"),
        ("k_produced", float(sum(1 for segment in segments if segment["size"] > 0)),
         "segments that received at least one row"),
        ("rows_multiple_matches", float(multiple_matches),
         "rows whose conditions matched more than one rule, before first-match resolution"),
        ("rows_default", float(segments[-1]["size"]),
         f"rows that matched no rule and fell to the default segment '{segments[-1]['segment_name']}'"),
    ]
    for segment in segments[:-1]:
        name = segment["segment_name"]
        rows.append((f"rows_matching.{name}", float(rule_matches[name]),
                     f"rows whose condition of rule {segment['segment_id']} '{name}' is true, before first-match "
                     "resolution"))
    for segment in segments:
        rows.append((f"rows_assigned.{segment['segment_name']}", float(segment["size"]),
                     f"rows in segment {segment['segment_id']} '{segment['segment_name']}' after first-match "
                     "resolution"))
    return rows


def format_rule_segments(segments: list[dict]) -> str:
    """Render segment sizes and rules as a fixed-width text table for the job log."""
    lines = [f"{'segment':>7}  {'name':<22}  {'size':>10}  {'share':>6}  rule"]
    for segment in segments:
        lines.append(f"{segment['segment_id']:>7}  {segment['segment_name']:<22}  {segment['size']:>10,}  "
                     f"{segment['share']:>6.1%}  {segment['rule'] or '(default)'}")
    return "\n".join(lines)
