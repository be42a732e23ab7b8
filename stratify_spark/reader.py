"""Read source files as raw text columns, with the file name and a malformed-row marker.

Every declared column is read as a string; nothing is inferred. Casting to the
declared types happens in `stratify_spark.casting`, where a value that does not
fit sends its row to quarantine instead of failing the job.
"""

from __future__ import annotations

import glob
import logging
import re
from typing import Optional
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


def explain_read_error(error: BaseException, path: str) -> Optional[InputError]:
    """Return an InputError for a source file that Spark failed to read for a known reason, else None.

    Spark checks each CSV file's header only when a task reads the file, so a file whose
    header differs from the first file's fails inside a later write with a long JVM trace.
    """
    text = str(error)
    if "CSV header does not conform to the schema" not in text:
        return None
    details = dict(re.findall(r"^\s*(Header|Schema|CSV file): (.*)$", text, flags=re.MULTILINE))
    return InputError(
        f"CSV file {details.get('CSV file', path)!r} has the header [{details.get('Header', '?')}] but the first "
        f"file read has [{details.get('Schema', '?')}]. Every file of one ingest needs the same columns in the "
        "same order; ingest the files separately or fix their headers"
    )


def free_column_name(name: str, source_columns: list[str]) -> str:
    """Return `name`, prefixed with underscores until no source column has it (compared as Spark does, ignoring case)."""
    lowered = {column.lower() for column in source_columns}
    while name.lower() in lowered:
        name = "_" + name
    return name


def _csv_reader(spark: SparkSession, config: DatasetConfig, corrupt_column: str = CORRUPT_COLUMN):
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
        .option("columnNameOfCorruptRecord", corrupt_column)
        .option("recursiveFileLookup", False)
    )


def _source_header(spark: SparkSession, config: DatasetConfig, path: str) -> tuple[list[str], list[str]]:
    """Return the column names of the source as Spark names them, and the header exactly as written.

    Without a header line both are the declared source names, in declared order.
    """
    options = config.source.csv_options
    if not options.header:
        declared = [column.source_name for column in config.columns]
        return declared, declared
    reader = _csv_reader(spark, config)
    # Spark 4.2 drops a UTF-8 byte-order mark itself; these strips only guard readers that keep it.
    names = [name.lstrip("\ufeff") for name in reader.load(path).columns]
    first_line = reader.option("header", False).load(path).first()
    written = [(value or "").lstrip("\ufeff") for value in first_line] if first_line is not None else []
    return names, written


def _check_headers_match(spark: SparkSession, config: DatasetConfig, path: str, written: list[str]) -> None:
    """Raise InputError naming the files that have no line equal to the first file's header.

    Used only when Spark cannot compare the headers itself because it renamed repeated
    or blank names. The check reads every file once more.
    """
    schema = T.StructType([T.StructField(f"_h{index}", T.StringType(), True) for index in range(len(written))])
    lines = _csv_reader(spark, config).option("header", False).schema(schema).load(path)
    is_header = F.lit(True)
    for index, name in enumerate(written):
        is_header = is_header & F.coalesce(F.col(f"_h{index}") == F.lit(name), F.lit(name == ""))
    per_file = lines.groupBy(lines.metadataColumn("_metadata").getField("file_path").alias("file")).agg(F.max(is_header).alias("has_header"))
    different = [row["file"] for row in per_file.filter(~F.col("has_header")).orderBy("file").limit(5).collect()]
    if different:
        raise InputError(
            f"CSV files under {path!r} do not share one header: {different} lack the header {written}. "
            "Every file of one ingest needs the same columns in the same order; ingest them separately "
            "or fix their headers"
        )


def read_raw(spark: SparkSession, config: DatasetConfig, path: str) -> DataFrame:
    """Read the source as `_raw_<i>` string columns in declared order, plus source file and markers.

    Raises InputError when a declared source column is missing from the files.
    """
    check_source_exists(path)
    source_format = config.source.format
    # A source column may itself be called _corrupt_record, and then Spark's marker gets another name.
    corrupt_column = CORRUPT_COLUMN

    try:
        if source_format == "csv":
            header, written = _source_header(spark, config, path)
            corrupt_column = free_column_name(CORRUPT_COLUMN, header)
            schema = T.StructType(
                [T.StructField(name, T.StringType(), True) for name in header]
                + [T.StructField(corrupt_column, T.StringType(), True)]
            )
            # enforceSchema=False makes Spark check every file's header against the first file's.
            # Spark compares the header as written with the schema, so a header whose repeated or
            # blank names Spark renamed (a,a -> a0,a1) would never match: check those files here.
            renamed = header != written
            df = (_csv_reader(spark, config, corrupt_column).option("enforceSchema", renamed)
                  .schema(schema).load(path))
            if renamed and len(df.inputFiles()) > 1:
                _check_headers_match(spark, config, path, written)
        elif source_format == "json":
            header = [column.source_name for column in config.columns]
            corrupt_column = free_column_name(CORRUPT_COLUMN, header)
            schema = T.StructType(
                [T.StructField(name, T.StringType(), True) for name in dict.fromkeys(header)]
                + [T.StructField(corrupt_column, T.StringType(), True)]
            )
            df = (
                spark.read.format("json").schema(schema)
                .option("mode", "PERMISSIVE").option("columnNameOfCorruptRecord", corrupt_column)
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
    corrupt = F.col(corrupt_column) if source_format in ("csv", "json") else F.lit(None).cast("string")
    return df.select(
        *selected,
        corrupt.alias(CORRUPT_COLUMN),
        # Through metadataColumn, because a source column called _metadata hides Spark's own.
        df.metadataColumn("_metadata").getField("file_path").alias(SOURCE_FILE_COLUMN),
        F.monotonically_increasing_id().alias(ROW_POSITION_COLUMN),
    )
