"""Record keys: built from declared columns or generated from row content, and duplicate handling."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from stratify_spark.casting import REASON_CODE_COLUMN, REASON_COLUMN
from stratify_spark.config import DatasetConfig, KeyConfig
from stratify_spark.reader import ROW_POSITION_COLUMN, SOURCE_FILE_COLUMN, raw_column

RECORD_KEY_COLUMN = "record_key"
KEY_SEPARATOR = "|"
EXISTING_KEY_COLUMN = "_is_existing_key"
_CONTENT_HASH = "_content_hash"
_DUPLICATE_RANK = "_duplicate_rank"


def declared_key(key: KeyConfig) -> Column:
    """Return the record key of declared key columns: the value itself, or values joined with '|'.

    In a composite key, '\\' and '|' inside a value are escaped with a backslash, so
    ('a|b', 'c') and ('a', 'b|c') give different keys.
    """
    columns = [F.col(name).cast("string") for name in key.columns or []]
    if len(columns) == 1:
        return columns[0]
    escaped = [F.replace(F.replace(column, F.lit("\\"), F.lit("\\\\")), F.lit(KEY_SEPARATOR), F.lit("\\" + KEY_SEPARATOR))
               for column in columns]
    return F.concat_ws(KEY_SEPARATOR, *escaped)


def with_generated_key(df: DataFrame, config: DatasetConfig) -> DataFrame:
    """Add a record key derived from the raw values of the row, stable across re-ingests of the same file.

    Identical rows share a content hash, so each gets its occurrence number after
    the hash. Any order among identical rows yields the same set of keys.
    """
    parts = [F.coalesce(F.col(raw_column(index)), F.lit("\u0000")) for index in range(len(config.columns))]
    content_hash = F.substring(F.sha2(F.concat_ws("\u001f", *parts), 256), 1, 24)
    occurrence = F.row_number().over(Window.partitionBy(_CONTENT_HASH).orderBy(_CONTENT_HASH))
    return (
        df.withColumn(_CONTENT_HASH, content_hash)
        .withColumn(RECORD_KEY_COLUMN, F.concat(F.col(_CONTENT_HASH), F.lit("-"), occurrence.cast("string")))
        .drop(_CONTENT_HASH)
    )


def mark_duplicates(df: DataFrame, key: KeyConfig) -> DataFrame:
    """Tag rows that lose under the duplicate policy with reason `duplicate_record_key`.

    Only rows without an earlier reason take part. Rows are ordered by `order_by`
    when declared, else by source file and position in the file. `keep_first`
    keeps the first row of each key and `keep_last` the last. With `keep_first`, a
    key that is already in the table (column `_is_existing_key`, when present)
    makes every new row of that key lose. The policy `fail` tags like
    `keep_first`, and the ingest fails when any row is tagged.
    """
    ascending = key.duplicates != "keep_last"
    order_columns: list[Column] = []
    if key.order_by:
        column = F.col(key.order_by)
        order_columns.append(column.asc_nulls_first() if ascending else column.desc_nulls_last())
    for name in (SOURCE_FILE_COLUMN, ROW_POSITION_COLUMN):
        order_columns.append(F.col(name).asc() if ascending else F.col(name).desc())

    is_candidate = F.col(REASON_CODE_COLUMN).isNull()
    window = Window.partitionBy(RECORD_KEY_COLUMN, is_candidate).orderBy(*order_columns)
    loses = is_candidate & (F.row_number().over(window) > 1)
    if EXISTING_KEY_COLUMN in df.columns and ascending:
        loses = loses | (is_candidate & F.col(EXISTING_KEY_COLUMN))

    marked = df.withColumn(_DUPLICATE_RANK, loses)
    is_loser = F.col(_DUPLICATE_RANK)
    message = F.concat(
        F.lit("record key '"), F.col(RECORD_KEY_COLUMN),
        F.lit(f"' appears more than once (in this batch or already loaded); duplicate policy is {key.duplicates}"),
    )
    return (
        marked.withColumn(REASON_CODE_COLUMN, F.when(is_loser, F.lit("duplicate_record_key")).otherwise(F.col(REASON_CODE_COLUMN)))
        .withColumn(REASON_COLUMN, F.when(is_loser, message).otherwise(F.col(REASON_COLUMN)))
        .drop(_DUPLICATE_RANK)
    )
