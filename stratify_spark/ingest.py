"""Ingest one tenant data set: read, cast, key, quarantine, and write one Delta version."""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Optional

from pyspark import StorageLevel
from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from stratify_spark.casting import REASON_CODE_COLUMN, REASON_CODES, REASON_COLUMN, raw_values_map, tag_rows, validate_patterns
from stratify_spark.config import DatasetConfig, validate_run_id
from stratify_spark.errors import ConfigError, InputError
from stratify_spark.keys import EXISTING_KEY_COLUMN, RECORD_KEY_COLUMN, declared_key, mark_duplicates, with_generated_key
from stratify_spark.logs import context_logger
from stratify_spark.reader import SOURCE_FILE_COLUMN, explain_read_error, read_raw
from stratify_spark import tables

logger = logging.getLogger(__name__)

INGEST_ID_COLUMN = "ingest_id"
INGESTED_AT_COLUMN = "ingested_at"
RAW_VALUES_COLUMN = "_raw_values"
SAMPLE_SIZE = 5
ROWS_PER_FILE = 250_000


@dataclass
class IngestResult:
    """Counts and version of one finished ingest; `rows_read == rows_loaded + rows_quarantined`."""

    tenant: str
    dataset: str
    ingest_id: str
    mode: str
    source_path: str
    rows_read: int
    rows_loaded: int
    rows_quarantined: int
    duplicate_keys: int
    reason_counts: dict[str, int] = field(default_factory=dict)
    data_version: Optional[int] = None
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


class AllRowsQuarantinedError(InputError):
    """Every source row was quarantined for a reason other than a key already loaded.

    The ingest fails without touching the data table, but its quarantine rows stay, so
    that the user can see why each row was rejected. `counts` contains the ledger counts.
    """

    def __init__(self, message: str, counts: dict) -> None:
        super().__init__(message)
        self.counts = counts


def new_ingest_id() -> str:
    return f"ingest-{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def tag_source(raw: DataFrame, config: DatasetConfig, existing_keys: Optional[DataFrame] = None) -> DataFrame:
    """Return every raw row with typed columns, record key and the reason it is quarantined, if any.

    `existing_keys` has one `record_key` column of keys already in the table; rows
    with those keys are judged by the duplicate policy.
    """
    encoding = config.source.csv_options.encoding if config.source.format == "csv" else None
    if config.source.format == "json":
        encoding = "UTF-8"
    tagged = tag_rows(raw, config, encoding_checked=encoding)
    if config.key is None:
        return tagged

    if config.key.generate:
        tagged = with_generated_key(tagged, config)
    else:
        tagged = tagged.withColumn(RECORD_KEY_COLUMN, declared_key(config.key))
    if existing_keys is not None:
        flagged = existing_keys.select(RECORD_KEY_COLUMN).distinct().withColumn(EXISTING_KEY_COLUMN, F.lit(True))
        tagged = (
            tagged.join(flagged, on=RECORD_KEY_COLUMN, how="left")
            .withColumn(EXISTING_KEY_COLUMN, F.coalesce(F.col(EXISTING_KEY_COLUMN), F.lit(False)))
        )
    return mark_duplicates(tagged, config.key)


def loaded_rows(tagged: DataFrame, config: DatasetConfig, ingest_id: str, ingested_at: dt.datetime) -> DataFrame:
    """Select the rows that fit, in table layout: declared columns, record key, lineage columns."""
    key_columns = [RECORD_KEY_COLUMN] if config.key is not None else []
    return tagged.filter(F.col(REASON_CODE_COLUMN).isNull()).select(
        *key_columns,
        *[column.name for column in config.columns],
        SOURCE_FILE_COLUMN,
        F.lit(ingest_id).alias(INGEST_ID_COLUMN),
        F.lit(ingested_at).cast("timestamp").alias(INGESTED_AT_COLUMN),
    )


def narrowed_rows(tagged: DataFrame, config: DatasetConfig) -> DataFrame:
    """Keep only what the quarantine and data writes read: typed columns, key, lineage and reasons.

    The raw text is kept only for rejected rows, as the map the quarantine stores.
    A persisted copy of a large source then stores each good value once.
    """
    key_columns = [RECORD_KEY_COLUMN] if RECORD_KEY_COLUMN in tagged.columns else []
    existing = [EXISTING_KEY_COLUMN] if EXISTING_KEY_COLUMN in tagged.columns else []
    return tagged.select(
        *key_columns,
        *[column.name for column in config.columns],
        SOURCE_FILE_COLUMN,
        *existing,
        REASON_CODE_COLUMN,
        REASON_COLUMN,
        F.when(F.col(REASON_CODE_COLUMN).isNotNull(), raw_values_map(config)).alias(RAW_VALUES_COLUMN),
    )


def quarantined_rows(tagged: DataFrame, config: DatasetConfig, ingest_id: str, ingested_at: dt.datetime) -> DataFrame:
    """Select the rows that do not fit, in the layout of the quarantine table.

    `tagged` is the output of `tag_source` or of `narrowed_rows`.
    """
    raw = F.col(RAW_VALUES_COLUMN) if RAW_VALUES_COLUMN in tagged.columns else raw_values_map(config)
    return tagged.filter(F.col(REASON_CODE_COLUMN).isNotNull()).select(
        F.lit(config.tenant).alias("tenant"),
        F.lit(config.dataset).alias("dataset"),
        F.lit(ingest_id).alias("ingest_id"),
        F.col(SOURCE_FILE_COLUMN).alias("source_file"),
        F.col(REASON_CODE_COLUMN).alias("reason_code"),
        F.col(REASON_COLUMN).alias("reason"),
        raw.alias("raw"),
        F.lit(ingested_at).cast("timestamp").alias("quarantined_at"),
    )


def _check_schema_compatible(spark: SparkSession, path: str, loaded: DataFrame) -> None:
    existing = {field.name: field.dataType for field in spark.read.format("delta").load(path).schema.fields}
    problems = []
    for column in loaded.schema.fields:
        if column.name in existing and existing[column.name] != column.dataType:
            problems.append(
                f"column '{column.name}' is {existing[column.name].simpleString()} in the table "
                f"but the config declares {column.dataType.simpleString()}"
            )
    added = sorted(set(field.name for field in loaded.schema.fields) - set(existing))
    removed = sorted(set(existing) - set(field.name for field in loaded.schema.fields))
    if added or removed:
        problems.append(f"columns differ from the table (new: {added}, missing: {removed})")
    if problems:
        raise InputError(
            f"cannot append to {path}: " + "; ".join(problems)
            + ". Ingest with --mode overwrite to replace the table, or keep the declared types"
        )


def _fail_on_duplicates(tagged: DataFrame, config: DatasetConfig) -> None:
    duplicates = tagged.filter(F.col(REASON_CODE_COLUMN) == "duplicate_record_key")
    is_existing = F.col(EXISTING_KEY_COLUMN) if EXISTING_KEY_COLUMN in tagged.columns else F.lit(False)
    sample = (
        duplicates.select(RECORD_KEY_COLUMN, is_existing.alias("is_existing")).distinct()
        .orderBy("is_existing", RECORD_KEY_COLUMN).limit(2 * SAMPLE_SIZE).collect()
    )
    if not sample:
        return
    in_table = [row[RECORD_KEY_COLUMN] for row in sample if row["is_existing"]][:SAMPLE_SIZE]
    in_batch = [row[RECORD_KEY_COLUMN] for row in sample if not row["is_existing"]][:SAMPLE_SIZE]
    problems = []
    if in_batch:
        problems.append(f"keys repeated within the source files, for example {in_batch}")
    if in_table:
        problems.append(f"keys already loaded in the table, for example {in_table}")
    key_columns = config.key.columns or "generated from the row content"
    raise InputError(
        f"duplicate record keys in {config.tenant}/{config.dataset} (key: {key_columns}) and the duplicate "
        f"policy is 'fail': {'; '.join(problems)}. Remove the duplicates from the files, set key.duplicates "
        "to keep_first or keep_last, or ingest with --mode overwrite to replace the table"
    )


def run_ingest(
    spark: SparkSession,
    config: DatasetConfig,
    source_path: str,
    warehouse: str,
    mode: Optional[str] = None,
    ingest_id: Optional[str] = None,
) -> IngestResult:
    """Ingest the source files into the tenant data set table; record the ingest in `ingests`.

    Quarantined rows are written before the data, so a failure in between loses no
    row. A failed ingest is recorded as failed, its data write (if any) is undone, and
    its quarantine rows are removed again, except when every row was quarantined: then
    they stay to show why. A source without data rows, or whose rows were all
    quarantined, leaves the data table unchanged.
    """
    mode = mode or config.ingest.mode
    if mode not in ("append", "overwrite"):
        raise ConfigError(f"invalid ingest mode {mode!r}; allowed: append, overwrite")
    ingest_id = validate_run_id(ingest_id or new_ingest_id(), "ingest id")
    _check_ingest_id_unused(spark, warehouse, config, ingest_id)
    log = context_logger(logger, config.tenant, config.dataset, ingest_id)
    started = time.monotonic()
    started_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    path = tables.dataset_path(warehouse, config.tenant, config.dataset)
    log.info("ingest started: source=%s format=%s mode=%s table=%s", source_path, config.source.format, mode, path)

    ledger = {
        "tenant": config.tenant, "dataset": config.dataset, "ingest_id": ingest_id, "mode": mode,
        "source_path": source_path, "started_at": started_at,
    }
    wrote_quarantine = False
    tagged: Optional[DataFrame] = None
    written_version: Optional[int] = None
    previous_version: Optional[int] = None
    try:
        validate_patterns(spark, config)
        raw = read_raw(spark, config, source_path)

        table_exists = tables.is_delta_table(spark, path)
        previous_version = tables.current_version(spark, path) if table_exists else None
        existing_keys = None
        if config.key is not None and table_exists and mode == "append":
            existing_keys = spark.read.format("delta").load(path).select(RECORD_KEY_COLUMN)
        # The duplicate check, the quarantine write and the data write each read every row. Without
        # the persisted copy each of them would parse the files and sort by key again.
        tagged = narrowed_rows(tag_source(raw, config, existing_keys), config).persist(StorageLevel.MEMORY_AND_DISK)
        if config.key is not None and config.key.duplicates == "fail":
            _fail_on_duplicates(tagged, config)

        loaded = loaded_rows(tagged, config, ingest_id, started_at)
        if table_exists and mode == "append":
            _check_schema_compatible(spark, path, loaded)

        # One pass counts what was read and why rows were rejected; the data write is checked against it.
        observation = Observation("ingest_counts")
        observed = tagged.observe(
            observation,
            F.count(F.lit(1)).alias("rows_read"),
            F.count_if(F.col(REASON_CODE_COLUMN).isNull()).alias("rows_ok"),
            *[F.count_if(F.col(REASON_CODE_COLUMN) == code).alias(code) for code in REASON_CODES],
        )
        wrote_quarantine = True
        tables.append_rows(spark, warehouse, tables.QUARANTINE, quarantined_rows(observed, config, ingest_id, started_at))
        counts = observation.get
        log.info("quarantine written: rows_read=%d rows_ok=%d", counts["rows_read"], counts["rows_ok"])
        reason_counts = {code: int(counts[code]) for code in REASON_CODES if counts[code]}
        rows_quarantined = sum(reason_counts.values())
        if counts["rows_read"] == 0:
            raise InputError(f"source {source_path!r} has no data rows (at most a header line); nothing was "
                             "ingested and the data table is unchanged. Check the export that produced the file")
        if counts["rows_ok"] == 0:
            _reject_all_quarantined(source_path, ingest_id, counts["rows_read"], reason_counts)
            rows_loaded, version, rows_replaced = 0, previous_version, 0
            log.info("every row is a duplicate of a loaded key; the data table is unchanged")
        else:
            # The persisted rows keep the key sort's partitions, which would give a small table many tiny files.
            files = max(1, math.ceil(counts["rows_ok"] / ROWS_PER_FILE))
            rows_loaded, version, rows_replaced = _write_data(spark, config, loaded.coalesce(files), path, mode,
                                                              table_exists)
            written_version = version
        if rows_loaded != counts["rows_ok"] or counts["rows_read"] != rows_loaded + rows_quarantined:
            raise InputError(
                f"row counts do not add up: read {counts['rows_read']}, loaded {rows_loaded}, quarantined "
                f"{rows_quarantined}; the source files probably changed during the ingest, so the data table "
                "was put back as it was. Re-run the ingest once the files are stable"
            )

        result = IngestResult(
            tenant=config.tenant, dataset=config.dataset, ingest_id=ingest_id, mode=mode, source_path=source_path,
            rows_read=int(counts["rows_read"]), rows_loaded=rows_loaded, rows_quarantined=rows_quarantined,
            # keep_last replaces rows already in the table; those keys are duplicates too.
            duplicate_keys=reason_counts.get("duplicate_record_key", 0) + rows_replaced, reason_counts=reason_counts,
            data_version=version, seconds=round(time.monotonic() - started, 3),
        )
        _record_ingest(spark, warehouse, {
            **ledger, "status": "succeeded", "rows_read": result.rows_read, "rows_loaded": result.rows_loaded,
            "rows_quarantined": result.rows_quarantined, "duplicate_keys": result.duplicate_keys,
            "reason_counts": reason_counts, "data_version": version, "seconds": result.seconds,
        })
        log.info("ingest succeeded: rows_read=%d rows_loaded=%d rows_quarantined=%d rows_replaced=%d version=%s "
                 "seconds=%.1f", result.rows_read, result.rows_loaded, result.rows_quarantined, rows_replaced,
                 version, result.seconds)
        if result.rows_quarantined and result.rows_quarantined * 2 >= result.rows_read:
            log.warning("%d of %d rows were quarantined (%s); check stratify.quarantine for ingest %s",
                        result.rows_quarantined, result.rows_read, reason_counts, ingest_id)
        return result
    except Exception as error:
        explained = explain_read_error(error, source_path)
        log.error("ingest failed: %s", explained or error)
        if written_version is not None:
            try:
                _undo_data_write(spark, path, previous_version, written_version, log)
            except Exception as cleanup_error:  # keep the original error, because the ledger records the failure
                log.error("could not put the data table back after the failed ingest: %s", cleanup_error)
        keeps_quarantine = isinstance(error, AllRowsQuarantinedError)
        if wrote_quarantine and not keeps_quarantine:
            try:
                _delete_quarantine(spark, warehouse, config, ingest_id)
            except Exception as cleanup_error:  # keep the original error, because the ledger records the failure
                log.error("could not remove quarantine rows of the failed ingest: %s", cleanup_error)
        counts = error.counts if keeps_quarantine else {}
        _record_ingest(spark, warehouse, {**ledger, **counts, "status": "failed",
                                          "error": str(explained or error)[:4000],
                                          "seconds": round(time.monotonic() - started, 3)})
        if explained is not None:
            raise explained from None
        raise
    finally:
        if tagged is not None:
            tagged.unpersist()


def _check_ingest_id_unused(spark: SparkSession, warehouse: str, config: DatasetConfig, ingest_id: str) -> None:
    """Raise ConfigError when the ledger already has an ingest of this data set with `ingest_id`.

    A re-used id would mix two ingests' quarantine rows, and the clean-up of a failed
    ingest deletes every quarantine row of its id.
    """
    path = tables.table_path(warehouse, tables.INGESTS)
    if not tables.is_delta_table(spark, path):
        return
    earlier = (
        spark.read.format("delta").load(path)
        .filter((F.col("tenant") == config.tenant) & (F.col("dataset") == config.dataset)
                & (F.col("ingest_id") == ingest_id))
        .select("status", "started_at").limit(1).collect()
    )
    if earlier:
        raise ConfigError(
            f"ingest id {ingest_id!r} was already used for {config.tenant}/{config.dataset} (status "
            f"{earlier[0]['status']}, started {earlier[0]['started_at']}); pass a new --ingest-id or omit it "
            "to have one generated"
        )


def _reject_all_quarantined(source_path: str, ingest_id: str, rows_read: int, reason_counts: dict[str, int]) -> None:
    """Raise AllRowsQuarantinedError unless every rejected row only repeats a key that is already loaded."""
    if set(reason_counts) == {"duplicate_record_key"}:
        return
    raise AllRowsQuarantinedError(
        f"all {rows_read} row(s) of {source_path!r} were quarantined ({reason_counts}), so the data table is "
        f"unchanged. See why with SELECT reason, raw FROM stratify.quarantine WHERE ingest_id = '{ingest_id}', "
        "then fix the file or the declared columns and ingest again",
        {"rows_read": rows_read, "rows_loaded": 0, "rows_quarantined": sum(reason_counts.values()),
         "duplicate_keys": reason_counts.get("duplicate_record_key", 0), "reason_counts": reason_counts},
    )


def _write_data(spark: SparkSession, config: DatasetConfig, loaded: DataFrame, path: str, mode: str,
                table_exists: bool) -> tuple[int, int, int]:
    """Write the loaded rows as one Delta commit; return rows written, the new version and rows replaced."""
    from delta.tables import DeltaTable

    keyed_append = table_exists and mode == "append" and config.key is not None
    upsert = keyed_append and config.key.duplicates == "keep_last"
    if keyed_append:
        # A MERGE, unlike a blind append, reads the table. Delta therefore rejects it when another
        # ingest added rows in the meantime, so two ingests at once cannot both load the same key.
        merge = (
            DeltaTable.forPath(spark, path).alias("t")
            .merge(loaded.alias("s"), f"t.{RECORD_KEY_COLUMN} = s.{RECORD_KEY_COLUMN}")
        )
        if upsert:
            merge = merge.whenMatchedUpdateAll()
        merge.whenNotMatchedInsertAll().execute()
    else:
        writer = loaded.write.format("delta").mode(mode)
        if mode == "overwrite":
            writer = writer.option("overwriteSchema", "true")
        writer.save(path)

    version, metrics = tables.latest_commit(spark, path)
    replaced = 0
    if keyed_append:
        replaced = int(metrics.get("numTargetRowsUpdated", 0))
        written = int(metrics.get("numTargetRowsInserted", 0)) + replaced
    else:
        written = int(metrics.get("numOutputRows", 0))
    return written, version, replaced


def _undo_data_write(spark: SparkSession, path: str, previous_version: Optional[int], written_version: int,
                     log) -> None:
    """Put the data table back as it was before this ingest: restore the old version, or empty a new table.

    Nothing is restored when another writer committed between the version this ingest
    started from and the current one, because a restore would also undo that commit.
    The error log then names the versions.
    """
    from delta.tables import DeltaTable

    latest = tables.current_version(spark, path)
    expected = 0 if previous_version is None else previous_version + 1
    if latest != written_version or written_version != expected:
        log.error("data table %s was changed by another writer (this ingest started from version %s, wrote "
                  "version %s, latest is %s), so it was not put back; remove this ingest's rows by hand",
                  path, previous_version, written_version, latest)
        return
    table = DeltaTable.forPath(spark, path)
    if previous_version is None:
        table.delete()
    else:
        table.restoreToVersion(previous_version)
    log.warning("data table %s put back to its state before the ingest (version %s)", path, previous_version)


def _delete_quarantine(spark: SparkSession, warehouse: str, config: DatasetConfig, ingest_id: str) -> None:
    from delta.tables import DeltaTable

    path = tables.table_path(warehouse, tables.QUARANTINE)
    if tables.is_delta_table(spark, path):
        predicate = (F.col("tenant") == config.tenant) & (F.col("dataset") == config.dataset) & (F.col("ingest_id") == ingest_id)
        tables.retry_on_conflict(lambda: DeltaTable.forPath(spark, path).delete(predicate), "quarantine")


def _record_ingest(spark: SparkSession, warehouse: str, row: dict) -> None:
    row = {**row, "finished_at": dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)}
    tables.append_rows(spark, warehouse, tables.INGESTS, tables.rows_df(spark, tables.INGESTS, [row]))
