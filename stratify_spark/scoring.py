"""Score rows against an earlier run's frozen model, without refitting.

Clustering runs: the stored transforms (imputation, log1p, scaling) and centres
from `run_models` place each row in the run's scaled space. The row goes to the
nearest centre. It gets its distance, the distance to the second nearest centre
and the margin between the two. It is flagged as an outlier when the distance
is above a declared percentile of the run's own training distances.

Rule runs: the run's rules and stored band cut points assign the segment.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Optional

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from stratify_spark import tables
from stratify_spark.clustering import SEGMENT_COLUMN
from stratify_spark.config import DatasetConfig, parse_config, validate_run_id
from stratify_spark.errors import InputError
from stratify_spark.keys import RECORD_KEY_COLUMN
from stratify_spark.logs import context_logger
from stratify_spark.runs import succeeded_run
from stratify_spark.segment import resolve_version

logger = logging.getLogger(__name__)

ROWS_ALL = "all"
ROWS_CHANGED = "changed"


@dataclass
class ScoreResult:
    """Outcome of a scoring. `summary()` returns the job's one-line JSON summary."""

    tenant: str
    dataset: str
    score_id: str
    model_run_id: str
    data_version: int
    rows_scored: int
    rows_unscored: int
    rows_outliers: int
    outlier_threshold: Optional[float]
    segment_counts: dict[str, int]
    seconds: float

    def summary(self) -> dict[str, Any]:
        return {"job": "score", "status": "succeeded", **{key: value for key, value in self.__dict__.items()}}


def _scaled(model: dict) -> list[Column]:
    """Return each feature in the model's scaled space, null where a 'drop' feature is missing."""
    columns = []
    for feature in model["features"]:
        value = F.col(feature["name"]).cast("double")
        value = F.when(F.isnan(value), F.lit(None).cast("double")).otherwise(value)
        if feature["impute_value"] is not None:
            value = F.coalesce(value, F.lit(feature["impute_value"]))
        if feature["log1p"]:
            value = F.log1p(value)
        columns.append((value - F.lit(feature["shift"])) / F.lit(feature["divisor"]))
    return columns


def _distance(values: list[Column], centre: list[float], measure: str) -> Column:
    if measure == "cosine":
        dot = sum((value * F.lit(c) for value, c in zip(values[1:], centre[1:])), values[0] * F.lit(centre[0]))
        row_norm = F.sqrt(sum((F.pow(value, 2) for value in values[1:]), F.pow(values[0], 2)))
        centre_norm = sum(c * c for c in centre) ** 0.5
        return F.when(row_norm * F.lit(centre_norm) > 0, F.lit(1.0) - dot / (row_norm * F.lit(centre_norm)))
    squares = [F.pow(value - F.lit(c), 2) for value, c in zip(values, centre)]
    return F.sqrt(sum(squares[1:], squares[0]))


def score_with_model(rows: DataFrame, model: dict) -> DataFrame:
    """Add segment_id, distance, second_distance and margin to rows that have the model's feature columns.

    Segment ids follow the model's centre order, as MLlib's do. A row with a missing
    value under the 'drop' policy gets null columns: it cannot be placed.
    """
    scaled = _scaled(model)
    distances = F.array(*[
        F.struct(_distance(scaled, centre, model["distance_measure"]).alias("d"), F.lit(index).alias("id"))
        for index, centre in enumerate(model["centres"])
    ])
    # Sorting structs orders by distance first, then by centre index, like MLlib's first-minimum rule.
    ranked = F.array_sort(F.filter(distances, lambda item: item["d"].isNotNull()))
    with_ranked = rows.withColumn("_ranked", ranked)
    nearest = F.element_at(F.col("_ranked"), 1)
    second = F.when(F.size("_ranked") >= 2, F.element_at(F.col("_ranked"), 2)["d"])
    return with_ranked.select(
        *rows.columns,
        F.when(F.size("_ranked") > 0, nearest["id"]).cast("int").alias(SEGMENT_COLUMN),
        F.when(F.size("_ranked") > 0, nearest["d"]).alias("distance"),
        second.alias("second_distance"),
        (second - F.when(F.size("_ranked") > 0, nearest["d"])).alias("margin"),
    )


def changed_rows(current: DataFrame, reference: DataFrame, columns: list[str]) -> DataFrame:
    """Rows of `current` whose key is new or whose `columns` differ from the `reference` version."""
    def fingerprint(df: DataFrame) -> DataFrame:
        return df.select(RECORD_KEY_COLUMN, F.xxhash64(*[F.col(name) for name in columns]).alias("_fingerprint"))

    unchanged = fingerprint(current).join(fingerprint(reference), [RECORD_KEY_COLUMN, "_fingerprint"], "left_semi")
    return current.join(unchanged.select(RECORD_KEY_COLUMN), RECORD_KEY_COLUMN, "left_anti")


def run_score(spark: SparkSession, config: DatasetConfig, warehouse: str, model_run_id: str, score_id: str,
              data_version: Optional[int] = None, rows_mode: str = ROWS_CHANGED,
              outlier_percentile: float = 99.0) -> ScoreResult:
    """Score the data set's new or changed rows (or all rows) with run `model_run_id`'s frozen model."""
    tenant, dataset = config.tenant, config.dataset
    validate_run_id(score_id)
    if not 0 < outlier_percentile < 100:
        raise InputError(f"--outlier-percentile {outlier_percentile} is outside (0, 100); use for example 99")
    log = context_logger(logger, tenant, dataset, score_id)
    started = time.monotonic()
    where = f"{tenant}/{dataset} score {score_id}"

    ledger = succeeded_run(spark, warehouse, tenant, dataset, model_run_id)
    run_config = parse_config(json.loads(ledger["config"]), f"run {model_run_id} (stored config)")
    path = tables.dataset_path(warehouse, tenant, dataset)
    version = resolve_version(spark, path, data_version, where)
    data = spark.read.format("delta").option("versionAsOf", version).load(path)
    if rows_mode == ROWS_CHANGED:
        reference = spark.read.format("delta").option("versionAsOf", ledger["data_version"]).load(path)
        shared = [name for name in data.columns if name in reference.columns and name != RECORD_KEY_COLUMN]
        data = changed_rows(data, reference, shared)
    log.info("scoring %s rows of data version %d with run %s (trained on version %s)", rows_mode, version,
             model_run_id, ledger["data_version"])

    model_row = tables.read_run_rows(spark, warehouse, tables.RUN_MODELS, tenant, model_run_id).first()
    threshold = None
    if model_row is not None:
        model = json.loads(model_row["model"])
        missing = [feature["name"] for feature in model["features"] if feature["name"] not in data.columns]
        if missing:
            raise InputError(f"{where}: feature column(s) {missing} of run {model_run_id} are not in the data set")
        scored = score_with_model(data.select(RECORD_KEY_COLUMN, *[f["name"] for f in model["features"]]), model)
        threshold = tables.read_run_rows(spark, warehouse, tables.ASSIGNMENTS, tenant, model_run_id).agg(
            F.percentile_approx("distance", outlier_percentile / 100.0, 10000)).first()[0]
        outlier = F.when(F.col("distance").isNotNull(), F.col("distance") > F.lit(threshold))
    else:
        scored = _score_with_rules(spark, warehouse, run_config, data, model_run_id, where)
        outlier = F.lit(None).cast("boolean")

    keys = {row["segment_id"]: row["segment_key"] for row in tables.read_run_rows(
        spark, warehouse, tables.SEGMENT_KEYS, tenant, model_run_id).where("segment_id IS NOT NULL").collect()}
    key_column = F.create_map(*[item for segment_id, key in sorted(keys.items())
                                for item in (F.lit(segment_id), F.lit(key))])[F.col(SEGMENT_COLUMN)] \
        if keys else F.lit(None).cast("string")
    output = scored.select(
        F.lit(tenant).alias("tenant"), F.lit(dataset).alias("dataset"), F.lit(score_id).alias("score_id"),
        F.lit(model_run_id).alias("model_run_id"), F.lit(version).cast("long").alias("data_version"),
        F.col(RECORD_KEY_COLUMN).cast("string").alias("record_key"), SEGMENT_COLUMN,
        key_column.alias("segment_key"), "distance", "second_distance", "margin", outlier.alias("is_outlier"),
        F.lit(threshold).cast("double").alias("outlier_threshold"),
        F.lit(dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)).alias("scored_at"),
    )
    tables.replace_run_rows(spark, warehouse, tables.SCORES, tenant, score_id, output)

    counts = tables.read_run_rows(spark, warehouse, tables.SCORES, tenant, score_id).groupBy("segment_key").agg(
        F.count(F.lit(1)).alias("rows"), F.count_if(F.col("is_outlier")).alias("outliers"),
        F.count_if(F.col(SEGMENT_COLUMN).isNull()).alias("unscored")).collect()
    segment_counts = {str(row["segment_key"]): int(row["rows"]) for row in counts if row["segment_key"] is not None}
    rows_unscored = sum(int(row["unscored"]) for row in counts)
    seconds = round(time.monotonic() - started, 3)
    result = ScoreResult(tenant, dataset, score_id, model_run_id, version, sum(segment_counts.values()),
                         rows_unscored, sum(int(row["outliers"]) for row in counts), threshold, segment_counts, seconds)
    log.info("score succeeded in %.1f s: %d rows scored, %d unscored, %d outliers (distance above %s, the "
             "p%g of the training distances); by segment: %s", seconds, result.rows_scored, rows_unscored,
             result.rows_outliers, threshold, outlier_percentile, segment_counts)
    return result


def _score_with_rules(spark: SparkSession, warehouse: str, config: DatasetConfig, data: DataFrame,
                      model_run_id: str, where: str) -> DataFrame:
    """Assign segments with the run's rules and the band cut points it stored."""
    from stratify_spark.bands import with_band_scores
    from stratify_spark.rule_segment import assign_segments, compile_rules, load_cut_points, scored_rows

    params = config.segment.algorithm
    if params.name not in ("rules", "rfm"):
        raise InputError(f"{where}: run {model_run_id} is a {params.name} run without a stored model "
                         "(it was made before models were stored); make a new run to score against")
    rules = compile_rules(config)
    cuts = load_cut_points(spark, warehouse, config, model_run_id, params.band_specs(), where)
    assigned = assign_segments(with_band_scores(data, cuts, scored_rows(params)), rules)
    return assigned.select(
        RECORD_KEY_COLUMN, SEGMENT_COLUMN, F.lit(None).cast("double").alias("distance"),
        F.lit(None).cast("double").alias("second_distance"), F.lit(None).cast("double").alias("margin"),
    )
