"""Export one run for BI tools: record key plus a `segment` column, and the segment profiles, as CSV or JSON."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from stratify_spark import tables
from stratify_spark.errors import ConfigError, InputError
from stratify_spark.logs import context_logger
from stratify_spark.runs import succeeded_run

logger = logging.getLogger(__name__)

FORMATS = ("csv", "json")


@dataclass
class ExportResult:
    tenant: str
    dataset: str
    run_id: str
    output: str
    format: str
    rows: int
    profile_rows: int

    def summary(self) -> dict[str, Any]:
        return {"job": "export", "status": "succeeded", **self.__dict__}


def export_assignments(assignments: DataFrame, segment_names: DataFrame) -> DataFrame:
    """Return record_key, segment (the stable key, or the segment id for runs without keys), segment_id and name."""
    return (
        assignments.join(segment_names, "segment_id", "left")
        .select("record_key", F.coalesce("segment_key", F.col("segment_id").cast("string")).alias("segment"),
                "segment_id", "segment_name", "distance")
    )


def run_export(spark: SparkSession, warehouse: str, tenant: str, dataset: str, run_id: str, output: str,
               file_format: str = "csv", overwrite: bool = False) -> ExportResult:
    """Write the run's assignments to `<output>/assignments/` and profiles to `<output>/profiles/` as part files."""
    if file_format not in FORMATS:
        raise ConfigError(f"export format {file_format!r} is not supported; use one of {', '.join(FORMATS)}")
    log = context_logger(logger, tenant, dataset, run_id)
    succeeded_run(spark, warehouse, tenant, dataset, run_id)

    assignments = tables.read_run_rows(spark, warehouse, tables.ASSIGNMENTS, tenant, run_id)
    profiles = tables.read_run_rows(spark, warehouse, tables.SEGMENT_PROFILES, tenant, run_id).drop("tenant")
    names = profiles.select("segment_id", "segment_name").distinct()
    exported = export_assignments(assignments, names)

    mode = "overwrite" if overwrite else "errorifexists"
    try:
        for name, frame in (("assignments", exported), ("profiles", profiles.orderBy("segment_id", "feature"))):
            writer = frame.write.mode(mode)
            if file_format == "csv":
                writer.option("header", "true").csv(f"{output}/{name}")
            else:
                writer.json(f"{output}/{name}")
    except Exception as error:
        if "already exists" in str(error).lower():
            raise InputError(f"export folder {output}/ already has an export; choose another --output or pass "
                             "--overwrite") from error
        raise

    rows = assignments.count()
    profile_rows = profiles.count()
    log.info("exported %d assignments and %d profile rows to %s as %s", rows, profile_rows, output, file_format)
    return ExportResult(tenant, dataset, run_id, output, file_format, rows, profile_rows)
