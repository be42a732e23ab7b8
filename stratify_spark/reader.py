"""Read source files as raw text columns, with the file name and a malformed-row marker.

Every declared column is read as a string; nothing is inferred. Casting to the
declared types happens in `stratify_spark.casting`, where a value that does not
fit sends its row to quarantine instead of failing the job.
"""

from __future__ import annotations

import glob
import logging
from urllib.parse import urlparse

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.errors import AnalysisException

from stratify_spark.config import DatasetConfig
from stratify_spark.errors import InputError

logger = logging.getLogger(__name__)

CORRUPT_COLUMN = "_corrupt_record"
SOURCE_FILE_COLUMN = "source_file"
ROW_POSITION_COLUMN = "_row_position"


def raw_column(index: int) -> str:
    """Return the internal name of the raw text of the declared column at `index`."""
    return f"_raw_{index}"


def check_source_exists(path: str) -> None:
    """Raise InputError when a local source path or glob matches no file."""
    parsed = urlparse(path)
    if parsed.scheme not in ("", "file"):
        return
    local = parsed.path if parsed.scheme == "file" else path
    if not glob.glob(local):
        raise InputError(f"source path not found: {path!r}; pass an existing file, folder or glob with --source")


def _csv_reader(spark: SparkSession, config: DatasetConfig):
    options = config.source.csv_options
    return (
        spark.read.format("csv")
        .option("header", options.header)
        .option("sep", options.delimiter)
        .option("quote", options.quote)
        .option("escape", options.escape)
        .option("encoding", options.encoding)
        .option("multiLine", options.multi_line)
        .option("inferSchema", False)
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", CORRUPT_COLUMN)
        .option("recursiveFileLookup", False)
    )


def _source_header(spark: SparkSession, config: DatasetConfig, path: str) -> list[str]:
    """Return the column names of the source: the CSV header as Spark names it, or the declared order."""
    options = config.source.csv_options
    if not options.header:
        return [column.source_name for column in config.columns]
    header = _csv_reader(spark, config).load(path).columns
    # Spark 4.2 drops a UTF-8 byte-order mark itself; this strip only guards readers that keep it.
    return [name.lstrip("\ufeff") for name in header]


def read_raw(spark: SparkSession, config: DatasetConfig, path: str) -> DataFrame:
    """Read the source as `_raw_<i>` string columns in declared order, plus source file and markers.

    Raises InputError when a declared source column is missing from the files.
    """
    check_source_exists(path)
    source_format = config.source.format

    try:
        if source_format == "csv":
            header = _source_header(spark, config, path)
            schema = T.StructType(
                [T.StructField(name, T.StringType(), True) for name in header]
                + [T.StructField(CORRUPT_COLUMN, T.StringType(), True)]
            )
            # enforceSchema=False makes Spark check every file's header against the first file's.
            df = _csv_reader(spark, config).option("enforceSchema", False).schema(schema).load(path)
        elif source_format == "json":
            header = [column.source_name for column in config.columns]
            schema = T.StructType(
                [T.StructField(name, T.StringType(), True) for name in dict.fromkeys(header)]
                + [T.StructField(CORRUPT_COLUMN, T.StringType(), True)]
            )
            df = (
                spark.read.format("json").schema(schema)
                .option("mode", "PERMISSIVE").option("columnNameOfCorruptRecord", CORRUPT_COLUMN)
                .load(path)
            )
        else:
            df = spark.read.format("parquet").load(path)
            header = df.columns
    except AnalysisException as error:
        raise InputError(f"cannot read {source_format} source {path!r}: {str(error).splitlines()[0]}") from None

    if not header:
        raise InputError(f"source {path!r} has no columns: the file is empty or has no header line; "
                         "check the file, or set source.csv.header to false for files without a header")
    missing = [column.source_name for column in config.columns if column.source_name not in header]
    if missing:
        raise InputError(
            f"source {path!r} has no column(s) {missing} declared in the config; columns present: {header}. "
            "Fix the 'source' names in 'columns' (Spark renames repeated headers to name0, name1 and blank "
            "ones to _c<position>)"
        )

    selected = []
    for index, column in enumerate(config.columns):
        value = F.col(f"`{column.source_name}`")
        if source_format == "parquet":
            value = value.cast("string")
        selected.append(value.alias(raw_column(index)))
    corrupt = F.col(CORRUPT_COLUMN) if source_format in ("csv", "json") else F.lit(None).cast("string")
    return df.select(
        *selected,
        corrupt.alias(CORRUPT_COLUMN),
        F.col("_metadata.file_path").alias(SOURCE_FILE_COLUMN),
        F.monotonically_increasing_id().alias(ROW_POSITION_COLUMN),
    )
