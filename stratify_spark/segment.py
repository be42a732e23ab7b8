"""One segmentation run: pinned data version, features, clustering, and all result tables."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Optional

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from stratify_spark import tables
from stratify_spark.clustering import DISTANCE_COLUMN, SEGMENT_COLUMN, assign, fit, silhouette
from stratify_spark.config import DatasetConfig, validate_run_id
from stratify_spark.errors import ConfigError, InputError
from stratify_spark.features import apply_feature_plan, fit_feature_plan, scaled_feature, with_raw_features
from stratify_spark.keys import RECORD_KEY_COLUMN
from stratify_spark.logs import context_logger
from stratify_spark.profiles import PROFILE_COLUMNS, format_segment_table, segment_profiles, summarize_segments
from stratify_spark.runs import RunLedger
from stratify_spark.stable_keys import assign_segment_keys, key_rows_df
from stratify_spark.k_sweep import run_k_sweep
from stratify_spark.stability import run_stability, write_run_evaluation

logger = logging.getLogger(__name__)

WRITE_THREADS = 3


@dataclass
class RunResult:
    """Outcome of a finished run; `summary()` returns the job's one-line JSON summary."""

    tenant: str
    dataset: str
    run_id: str
    data_version: int
    algorithm: str
    k_requested: int
    k_produced: int
    rows_input: int
    rows_used: int
    rows_dropped: int
    metrics: dict[str, Optional[float]] = field(default_factory=dict)
    silhouette_distance: str = ""
    segments: list[dict] = field(default_factory=list)
    segment_keys: dict[int, str] = field(default_factory=dict)
    seconds: float = 0.0
    # k_chosen with its reason, and the k sweep and stability scores when the config declares them.
    evaluation: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            **self.evaluation,
            "job": "segment", "status": "succeeded", "tenant": self.tenant, "dataset": self.dataset,
            "run_id": self.run_id, "data_version": self.data_version, "algorithm": self.algorithm,
            "k_requested": self.k_requested, "k_produced": self.k_produced, "rows_input": self.rows_input,
            "rows_used": self.rows_used, "rows_dropped": self.rows_dropped, "metrics": self.metrics,
            "silhouette_distance": self.silhouette_distance,
            "segment_sizes": {str(segment["segment_id"]): segment["size"] for segment in self.segments},
            "segment_keys": {str(segment_id): key for segment_id, key in sorted(self.segment_keys.items())},
            "seconds": self.seconds,
        }


def new_run_id() -> str:
    return f"run-{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def resolve_version(spark: SparkSession, path: str, requested: Optional[int], where: str) -> int:
    """Return the Delta version to read: the requested one if it exists, else the latest."""
    latest = tables.current_version(spark, path)
    if latest is None:
        raise InputError(f"{where}: no data set table at {path}; ingest it first with jobs/ingest.py")
    if requested is None:
        return latest
    if requested < 0 or requested > latest:
        raise InputError(f"{where}: data version {requested} does not exist; versions 0 to {latest} exist")
    return requested


def run_segment(
    spark: SparkSession,
    config: DatasetConfig,
    warehouse: str,
    run_id: Optional[str] = None,
    data_version: Optional[int] = None,
) -> RunResult:
    """Segment the data set at one Delta version and write runs, assignments, profiles and metrics.

    The run is recorded as pending, then running, then succeeded or failed. Results
    of the same run id are replaced, never appended. A failed run's results are
    deleted, so readers never see partial results under a finished run.
    """
    if config.segment is None:
        raise ConfigError(f"config for {config.tenant}/{config.dataset} has no 'segment' section")
    if config.segment.algorithm.name in ("rules", "rfm"):
        from stratify_spark.rule_segment import run_rule_segment

        return run_rule_segment(spark, config, warehouse, run_id=run_id, data_version=data_version)
    segment_config = config.segment
    params = segment_config.algorithm
    run_id = validate_run_id(run_id or new_run_id())
    where = f"{config.tenant}/{config.dataset} run {run_id}"
    log = context_logger(logger, config.tenant, config.dataset, run_id)
    started = time.monotonic()

    ledger = RunLedger(spark, warehouse, config, run_id)
    ledger.record(status="pending", algorithm=params.name, parameters=params.model_dump_json(),
                  config=config.model_dump_json(), k_requested=params.k)
    assigned: Optional[DataFrame] = None
    try:
        path = tables.dataset_path(warehouse, config.tenant, config.dataset)
        version = resolve_version(spark, path, data_version, where)
        ledger.record(status="running", data_version=version, started_at=ledger.now())
        log.info("segment started: algorithm=%s k=%d data_version=%d", params.name, params.k, version)

        data = spark.read.format("delta").option("versionAsOf", version).load(path)
        if RECORD_KEY_COLUMN not in data.columns:
            raise InputError(f"{where}: the data set table has no record_key column; declare 'key' in the "
                             "config and ingest again with --mode overwrite")

        # Features: one aggregation pass for imputation, one for scaling, then per-row transforms.
        raw = with_raw_features(data, RECORD_KEY_COLUMN, list(segment_config.features))
        plan = fit_feature_plan(raw, segment_config, where)
        features = apply_feature_plan(raw, plan)
        log.info("features ready: rows_input=%d rows_dropped=%d", plan.rows_input, plan.rows_dropped)
        if plan.rows_used < params.k:
            # MLlib's k-means|| initialisation fails with an index error when there are fewer rows than k.
            raise InputError(f"{where}: only {plan.rows_used} row(s) to segment but k is {params.k}; "
                             f"lower k to at most {plan.rows_used} or ingest more rows")

        # Optional k sweep: fit every k of the declared range, then segment with the k the criterion picks.
        sweep = None
        if segment_config.k_sweep is not None:
            sweep = run_k_sweep(features, params, segment_config.k_sweep, plan.rows_used, log)
            params = params.model_copy(update={"k": sweep.chosen_k})
            log.info("k sweep chose k=%d: %s", sweep.chosen_k, sweep.reason)

        # The sweep already fitted the chosen k with the same parameters and seed, so its model is reused.
        clustering = sweep.fits[sweep.chosen_k] if sweep is not None else fit(features, params)
        dimensions = len(plan.features)
        # Cached after the fit, not before it, because assignments, profiles and silhouette all reuse it.
        # Only the distance reads the scaled columns, which repeat the vector, so they stay out of the cache.
        assigned = (
            assign(features, clustering, params.distance_measure, dimensions)
            .drop(*[scaled_feature(index) for index in range(dimensions)])
            .persist(StorageLevel.MEMORY_AND_DISK)
        )

        centres = [plan.to_original_units(centre) for centre in clustering.centres]
        profile_rows = [row.asDict() for row in segment_profiles(assigned, plan, centres).collect()]
        k_produced = len({row[SEGMENT_COLUMN] for row in profile_rows})
        silhouette_value, silhouette_distance = silhouette(assigned, params.distance_measure, k_produced)
        metrics = {
            "training_cost": clustering.training_cost,
            "silhouette": silhouette_value,
            "iterations": float(clustering.iterations) if clustering.iterations is not None else None,
        }

        # Stable keys: this run's segments matched to the previous succeeded run of the data set.
        produced_ids = sorted({row[SEGMENT_COLUMN] for row in profile_rows})
        segment_keys = assign_segment_keys(
            spark, warehouse, config.tenant, config.dataset, run_id,
            assigned.select(RECORD_KEY_COLUMN, SEGMENT_COLUMN), produced_ids,
            centres={segment_id: clustering.centres[segment_id] for segment_id in produced_ids},
            to_scaled=plan.to_scaled, distance_measure=params.distance_measure,
        )
        log.info("segment keys (%s, reference run %s): %s", segment_keys.match_method,
                 segment_keys.reference_run_id, {row.segment_key: row.status for row in segment_keys.rows})

        run_columns = [F.lit(config.tenant).alias("tenant"), F.lit(config.dataset).alias("dataset"),
                       F.lit(run_id).alias("run_id")]
        # Optional stability refits, computed before the writes so that their metrics join run_metrics.
        stability = None
        if segment_config.stability is not None:
            stability = run_stability(features, assigned.select(RECORD_KEY_COLUMN, SEGMENT_COLUMN), RECORD_KEY_COLUMN,
                                      params, segment_config.stability, produced_ids, plan.rows_used, log)
        profile_df = spark.createDataFrame(
            [tuple(row[name] for name in PROFILE_COLUMNS) for row in profile_rows],
            _profile_schema(),
        )
        model = {**plan.to_model(), "distance_measure": params.distance_measure, "centres": clustering.centres}

        def write_assignments() -> None:
            tables.replace_run_rows(spark, warehouse, tables.ASSIGNMENTS, config.tenant, run_id, assigned.select(
                *run_columns, F.col(RECORD_KEY_COLUMN).alias("record_key"), SEGMENT_COLUMN, DISTANCE_COLUMN,
                segment_keys.key_column().alias("segment_key"),
            ))

        def write_profiles() -> None:
            tables.replace_run_rows(spark, warehouse, tables.SEGMENT_PROFILES, config.tenant, run_id,
                                    profile_df.select(*run_columns, *PROFILE_COLUMNS,
                                                      F.lit(None).cast("string").alias("segment_name"),
                                                      F.lit(None).cast("string").alias("rule"),
                                                      segment_keys.key_column().alias("segment_key")))

        def write_keys() -> None:
            tables.replace_run_rows(spark, warehouse, tables.SEGMENT_KEYS, config.tenant, run_id,
                                    key_rows_df(spark, config.tenant, config.dataset, run_id, segment_keys))

        def write_model() -> None:
            tables.replace_run_rows(spark, warehouse, tables.RUN_MODELS, config.tenant, run_id, tables.rows_df(
                spark, tables.RUN_MODELS,
                [{"tenant": config.tenant, "dataset": config.dataset, "run_id": run_id, "algorithm": params.name,
                  "distance_measure": params.distance_measure, "model": json.dumps(model)}],
            ))

        def clear_rule_rows() -> None:
            tables.delete_rows_of_run(spark, warehouse, tables.RULE_RUN_TABLES, config.tenant, run_id)

        def write_evaluation_and_metrics() -> dict[str, Any]:
            # The k sweep and stability tables first: their metrics (k_chosen with its reason) join run_metrics.
            evaluation_metrics, evaluation_summary = write_run_evaluation(
                spark, warehouse, config.tenant, config.dataset, run_id, params.k, sweep, stability)
            metric_rows = _metric_rows(metrics, silhouette_distance, params.k, k_produced, plan) + evaluation_metrics
            tables.replace_run_rows(spark, warehouse, tables.RUN_METRICS, config.tenant, run_id,
                                    spark.createDataFrame(metric_rows, "metric string, value double, detail string")
                                    .select(*run_columns, "metric", "value", "detail"))
            return evaluation_summary

        # Each table gets its own commit and none depends on another, so they are written a few at a time,
        # as rule runs do (see rule_segment._write_results for the measured gain).
        with ThreadPoolExecutor(max_workers=WRITE_THREADS, thread_name_prefix="segment-run-write") as pool:
            evaluation_future = pool.submit(write_evaluation_and_metrics)
            futures = [pool.submit(action) for action in (write_assignments, write_profiles, write_keys, write_model,
                                                         clear_rule_rows)]
        for future in futures:
            future.result()
        evaluation_summary = evaluation_future.result()

        seconds = round(time.monotonic() - started, 3)
        ledger.record(status="succeeded", finished_at=ledger.now(), seconds=seconds, rows_input=plan.rows_input,
                      rows_used=plan.rows_used, rows_dropped=plan.rows_dropped, k_produced=k_produced)
        summaries = summarize_segments(profile_rows)
        if k_produced < params.k:
            log.warning("only %d of the %d requested segments were produced (too few distinct points)",
                        k_produced, params.k)
        log.info("segment succeeded in %.1f s; segments:\n%s", seconds, format_segment_table(summaries))
        return RunResult(
            tenant=config.tenant, dataset=config.dataset, run_id=run_id, data_version=version,
            algorithm=params.name, k_requested=params.k, k_produced=k_produced, rows_input=plan.rows_input,
            rows_used=plan.rows_used, rows_dropped=plan.rows_dropped, metrics=metrics, segments=summaries,
            silhouette_distance=silhouette_distance, segment_keys=segment_keys.keys,
            seconds=seconds, evaluation=evaluation_summary,
        )
    except Exception as error:
        log.error("segment failed: %s", error)
        ledger.record_failure(error, tables.ALL_RUN_TABLES, round(time.monotonic() - started, 3), log)
        raise
    finally:
        if assigned is not None:
            assigned.unpersist()


def _profile_schema():
    from pyspark.sql import types as T

    by_name = {field.name: field for field in tables.SEGMENT_PROFILES.schema.fields}
    return T.StructType([by_name[name] for name in PROFILE_COLUMNS])


def _metric_rows(metrics: dict[str, Optional[float]], silhouette_distance: str, k_requested: int, k_produced: int,
                 plan) -> list[tuple]:
    details = {
        "training_cost": "sum of squared distances to the nearest centre, in scaled feature space",
        "iterations": "iterations the algorithm ran",
    }
    rows = []
    for name, value in metrics.items():
        rows.append((name, value, details.get(name, f"distance: {silhouette_distance}")))
    rows += [
        ("k_requested", float(k_requested), "segments requested in the config"),
        ("k_produced", float(k_produced), "segments that received at least one row"),
        ("rows_input", float(plan.rows_input), "rows in the data set at the pinned version"),
        ("rows_used", float(plan.rows_used), "rows assigned to a segment"),
        ("rows_dropped", float(plan.rows_dropped), "rows dropped for a missing feature under the 'drop' policy"),
    ]
    return rows
