"""The entity feature step: read a transactions data set at one version, write the entity data set table.

The entity table is replaced as a whole in one Delta commit, so each build is
one version of datasets/<tenant>/<entity data set>. Every build is recorded in
the `entity_builds` table with the rows it read, used and excluded by reason.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Optional

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from stratify_spark import tables
from stratify_spark.config import DatasetConfig, validate_run_id
from stratify_spark.entity_features import (
    EXCLUSION_REASONS, aggregate_entities, compile_amount, default_reference_date, summarize_exclusions,
    tag_exclusions,
)
from stratify_spark.errors import ConfigError, InputError
from stratify_spark.keys import RECORD_KEY_COLUMN
from stratify_spark.logs import context_logger
from stratify_spark.segment import resolve_version

logger = logging.getLogger(__name__)


@dataclass
class EntityBuildResult:
    """Counts and versions of one finished build, where rows_read == rows_used + rows_excluded."""

    tenant: str
    dataset: str
    build_id: str
    source_dataset: str
    source_version: int
    reference_date: dt.date
    rows_read: int
    rows_used: int
    rows_excluded: int
    exclusion_counts: dict[str, int] = field(default_factory=dict)
    entities: int = 0
    entities_without_purchase: int = 0
    data_version: Optional[int] = None
    seconds: float = 0.0

    def summary(self) -> dict:
        return {"job": "features", "status": "succeeded", **asdict(self), "reference_date": self.reference_date.isoformat()}


def new_build_id() -> str:
    return f"features-{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def run_entity_build(
    spark: SparkSession,
    config: DatasetConfig,
    warehouse: str,
    source_version: Optional[int] = None,
    reference_date: Optional[dt.date] = None,
    build_id: Optional[str] = None,
) -> EntityBuildResult:
    """Build the entity data set of `config` from its transactions data set and record the build.

    `source_version` and `reference_date` override the values in
    config.entity_features. Raises ConfigError when the config has no
    entity_features section, and InputError when the transactions table is
    missing, lacks a declared column, or leaves no row after the exclusions.
    """
    entity = config.entity_features
    if entity is None:
        raise ConfigError(f"config for {config.tenant}/{config.dataset} has no 'entity_features' section")
    build_id = validate_run_id(build_id or new_build_id())
    where = f"{config.tenant}/{config.dataset} build {build_id}"
    log = context_logger(logger, config.tenant, config.dataset, build_id)
    started = time.monotonic()
    ledger = {"tenant": config.tenant, "dataset": config.dataset, "build_id": build_id,
              "source_dataset": entity.source_dataset, "started_at": _now()}

    try:
        source_path = tables.dataset_path(warehouse, config.tenant, entity.source_dataset)
        version = resolve_version(spark, source_path, source_version if source_version is not None
                                  else entity.source_version, where)
        ledger["source_version"] = version
        declared_reference = reference_date or entity.reference_date
        log.info("entity features started: source=%s version=%d reference_date=%s", entity.source_dataset, version,
                 declared_reference or "day after the latest transaction")

        transactions = spark.read.format("delta").option("versionAsOf", version).load(source_path)
        amount = compile_amount(transactions.schema, entity, where)
        tagged = tag_exclusions(transactions, entity, amount, declared_reference)

        # Pass 1: counts by reason and the latest order date (for the default reference date).
        counts = summarize_exclusions(tagged).first()
        exclusion_counts = {code: int(counts[code]) for code in EXCLUSION_REASONS if counts[code]}
        if counts["rows_used"] == 0:
            raise InputError(f"{where}: no transaction is left after the exclusions {exclusion_counts or '(none)'} "
                             f"in {entity.source_dataset} version {version}; check entity_features.exclude and the "
                             "reference date")
        reference = declared_reference or default_reference_date(counts["latest_order_date"])
        ledger["reference_date"] = reference
        log.info("exclusions counted: rows_read=%d rows_used=%d by reason %s; entities=%d, of which %d without a "
                 "purchase", counts["rows_read"], counts["rows_used"], exclusion_counts, counts["entities"],
                 counts["entities_without_purchase"])

        # Pass 2: one row per entity, written as one commit that replaces the table.
        entities = aggregate_entities(tagged, entity, reference)
        built_at = _now()
        table_rows = entities.select(
            F.col(entity.entity_key).alias(RECORD_KEY_COLUMN),
            *[column.name for column in config.columns],
            F.lit(build_id).alias("ingest_id"),
            F.lit(built_at).cast("timestamp").alias("ingested_at"),
        )
        path = tables.dataset_path(warehouse, config.tenant, config.dataset)
        table_rows.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(path)
        data_version, metrics = tables.latest_commit(spark, path)

        result = EntityBuildResult(
            tenant=config.tenant, dataset=config.dataset, build_id=build_id, source_dataset=entity.source_dataset,
            source_version=version, reference_date=reference, rows_read=int(counts["rows_read"]),
            rows_used=int(counts["rows_used"]), rows_excluded=int(counts["rows_read"] - counts["rows_used"]),
            exclusion_counts=exclusion_counts, entities=int(metrics.get("numOutputRows", 0)),
            entities_without_purchase=int(counts["entities_without_purchase"]), data_version=data_version, seconds=round(time.monotonic() - started, 3),
        )
        _record_build(spark, warehouse, {
            **ledger, "status": "succeeded", "finished_at": _now(), "seconds": result.seconds,
            "rows_read": result.rows_read, "rows_used": result.rows_used, "rows_excluded": result.rows_excluded,
            "exclusion_counts": exclusion_counts, "entities": result.entities,
            "entities_without_purchase": result.entities_without_purchase, "data_version": data_version,
        })
        log.info("entity features succeeded: entities=%d version=%d seconds=%.1f", result.entities, data_version,
                 result.seconds)
        return result
    except Exception as error:
        log.error("entity features failed: %s", error)
        _record_build(spark, warehouse, {**ledger, "status": "failed", "error": str(error)[:4000],
                                         "finished_at": _now(), "seconds": round(time.monotonic() - started, 3)})
        raise


def _record_build(spark: SparkSession, warehouse: str, row: dict) -> None:
    tables.append_rows(spark, warehouse, tables.ENTITY_BUILDS, tables.rows_df(spark, tables.ENTITY_BUILDS, [row]))
