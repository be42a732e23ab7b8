"""Cast raw text columns to the declared schema and tag every row that does not fit.

`tag_rows` is a pure DataFrame-to-DataFrame step: it keeps every input row and adds
the typed columns, a `reason_code` and a human-readable `reason`. A null
reason means the row fits; anything else sends the row to quarantine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from stratify_spark.config import ColumnSpec, DatasetConfig
from stratify_spark.errors import ConfigError
from stratify_spark.reader import CORRUPT_COLUMN, free_column_name, raw_column

REASON_CODE_COLUMN = "reason_code"
REASON_COLUMN = "reason"
CHECK_COLUMN_PREFIX = "__check_"

# Every reason code the ingest can give, in the order the checks run.
REASON_CODES = (
    "malformed_row",
    "undecodable_text",
    "missing_record_key",
    "missing_required_value",
    "invalid_number",
    "out_of_range",
    "invalid_date",
    "invalid_timestamp",
    "invalid_boolean",
    "duplicate_record_key",
)

DEFAULT_DATE_FORMAT = "yyyy-MM-dd"
INTEGRAL_BOUNDS = {"integer": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}


@dataclass(frozen=True)
class ColumnCheck:
    """One check of one column: the condition that fails the row, its code and message."""

    fails: Column
    code: str
    message: Column


def _blank_to_null(value: Column) -> Column:
    return F.when(F.trim(value) == "", F.lit(None).cast("string")).otherwise(value)


def _normalized_number(value: Column, spec: ColumnSpec) -> Column:
    text = F.trim(value)
    if spec.thousands_separator is not None:
        text = F.replace(text, F.lit(spec.thousands_separator), F.lit(""))
    if spec.decimal_separator != ".":
        text = F.replace(text, F.lit(spec.decimal_separator), F.lit("."))
    return text


def _quoted(value: Column) -> Column:
    return F.concat(F.lit("'"), F.substring(value, 1, 80), F.lit("'"))


def parse_column(value: Column, spec: ColumnSpec, honour_formats: bool = True) -> tuple[Column, list[ColumnCheck]]:
    """Return the typed value of one raw text column and the checks that quarantine bad values.

    `honour_formats` is False for Parquet sources, whose values arrive as Spark's own
    text rendering of typed values rather than as text written by a person.
    """
    text = _blank_to_null(value)
    is_present = text.isNotNull()
    checks: list[ColumnCheck] = []
    label = F.lit(f"column '{spec.name}': value ")

    if spec.required:
        checks.append(ColumnCheck(~is_present, "missing_required_value",
                                  F.lit(f"column '{spec.name}': required value is missing")))

    if spec.type == "string":
        return value, checks

    if spec.is_numeric:
        number_text = _normalized_number(text, spec) if honour_formats else F.trim(text)
        as_wide = number_text.try_cast("decimal(38,6)")
        is_plain_number = as_wide.isNotNull() | number_text.try_cast("double").isNotNull()
        parsed = number_text.try_cast(spec.type)
        if spec.type in ("integer", "long"):
            # Exports often write whole numbers as 17850.0; accept them, but not 12.5.
            parsed = F.coalesce(parsed, F.when(as_wide == F.floor(as_wide), as_wide.try_cast(spec.type)))
            bounds = INTEGRAL_BOUNDS[spec.type]
            is_out_of_range = (as_wide < bounds[0]) | (as_wide > bounds[1])
        elif spec.type == "double":
            # Java parses '1e400' as Infinity instead of failing, so an infinite result is out of range.
            is_infinite = F.abs(parsed) == F.lit(float("inf"))
            parsed = F.when(~is_infinite, parsed)
            is_out_of_range = is_infinite
        else:
            is_out_of_range = is_plain_number
        is_out_of_range = F.coalesce(is_out_of_range, F.lit(False))
        checks.append(ColumnCheck(is_present & parsed.isNull() & is_out_of_range, "out_of_range",
                                  F.concat(label, _quoted(value), F.lit(f" is out of range for {spec.type}"))))
        checks.append(ColumnCheck(is_present & parsed.isNull() & ~is_out_of_range, "invalid_number",
                                  F.concat(label, _quoted(value), F.lit(f" is not a valid {spec.type}"))))
        return parsed, checks

    if spec.type in ("date", "timestamp"):
        pattern = spec.format if honour_formats else None
        trimmed = F.trim(text)
        if spec.type == "date":
            parsed = F.to_date(F.try_to_timestamp(trimmed, F.lit(pattern or DEFAULT_DATE_FORMAT)))
        elif pattern:
            parsed = F.try_to_timestamp(trimmed, F.lit(pattern))
        else:
            parsed = trimmed.try_cast("timestamp")
        expected = f" does not match {spec.type} pattern '{pattern or DEFAULT_DATE_FORMAT}'" if pattern or spec.type == "date" \
            else " is not an ISO-8601 timestamp"
        checks.append(ColumnCheck(is_present & parsed.isNull(), f"invalid_{spec.type}",
                                  F.concat(label, _quoted(value), F.lit(expected))))
        return parsed, checks

    parsed = F.trim(text).try_cast("boolean")
    checks.append(ColumnCheck(is_present & parsed.isNull(), "invalid_boolean",
                              F.concat(label, _quoted(value), F.lit(" is not a boolean (true/false, yes/no, 1/0)"))))
    return parsed, checks


def validate_patterns(spark: SparkSession, config: DatasetConfig) -> None:
    """Raise ConfigError for a date or timestamp pattern that Spark cannot use, before reading any file."""
    for spec in config.columns:
        if spec.format is None:
            continue
        try:
            spark.range(1).select(F.try_to_timestamp(F.lit("2024-01-01"), F.lit(spec.format))).collect()
        except Exception as error:
            first_line = str(error).strip().splitlines()[0]
            raise ConfigError(
                f"column '{spec.name}': invalid {spec.type} pattern {spec.format!r} ({first_line}); "
                "use Spark datetime pattern letters such as dd/MM/yyyy or yyyy-MM-dd HH:mm:ss"
            ) from None


def tag_rows(raw: DataFrame, config: DatasetConfig, encoding_checked: Optional[str] = None) -> DataFrame:
    """Add the typed declared columns and the first failing reason to every raw row.

    `encoding_checked` names the declared character set when text that failed to
    decode (Java puts U+FFFD in its place) must be quarantined instead of loaded.
    """
    honour_formats = config.source.format != "parquet"
    key_columns = set(config.key.columns or []) if config.key else set()
    typed: list[Column] = []
    checks: list[ColumnCheck] = [
        ColumnCheck(F.col(CORRUPT_COLUMN).isNotNull(), "malformed_row",
                    F.lit("row does not have the columns of the header (wrong number of fields or bad quoting)")),
    ]

    for index, spec in enumerate(config.columns):
        value = F.col(raw_column(index))
        if encoding_checked and spec.type == "string":
            checks.append(ColumnCheck(F.coalesce(F.contains(value, F.lit("\ufffd")), F.lit(False)), "undecodable_text",
                                      F.lit(f"column '{spec.name}': text does not decode as {encoding_checked}; "
                                            "declare the file's encoding in source.csv.encoding")))
        if spec.name in key_columns:
            checks.append(ColumnCheck(_blank_to_null(value).isNull(), "missing_record_key",
                                      F.lit(f"record key column '{spec.name}' is empty")))
        parsed, column_checks = parse_column(value, spec, honour_formats)
        checks.extend(column_checks)
        typed.append(parsed.alias(spec.name))

    ordered = sorted(checks, key=lambda check: REASON_CODES.index(check.code))
    # The reason chains read one boolean column per check. Written inline, they repeated every parse in
    # each CASE WHEN branch, and tagging 1M rows x 9 columns took 23 s instead of 4.4 s (2 cores).
    flag_names = [f"{CHECK_COLUMN_PREFIX}{index}" for index in range(len(ordered))]
    flagged = raw.select("*", *typed, *[check.fails.alias(name) for check, name in zip(ordered, flag_names)])
    reason_code = F.lit(None).cast("string")
    reason = F.lit(None).cast("string")
    for check, name in reversed(list(zip(ordered, flag_names))):
        reason_code = F.when(F.col(name), F.lit(check.code)).otherwise(reason_code)
        reason = F.when(F.col(name), check.message).otherwise(reason)
    return flagged.select(*raw.columns, *[spec.name for spec in config.columns],
                          reason_code.alias(REASON_CODE_COLUMN), reason.alias(REASON_COLUMN))


def raw_values_map(config: DatasetConfig) -> Column:
    """Return a map column of source column name to raw text, as stored in quarantine."""
    keys: list[Column] = []
    values: list[Column] = []
    seen: set[str] = set()
    for index, spec in enumerate(config.columns):
        if spec.source_name not in seen:
            seen.add(spec.source_name)
            keys.append(F.lit(spec.source_name))
            values.append(F.col(raw_column(index)))
    # The malformed-row text goes under _corrupt_record, or under more underscores when a source column has that name.
    keys.append(F.lit(free_column_name(CORRUPT_COLUMN, list(seen))))
    values.append(F.col(CORRUPT_COLUMN))
    return F.map_from_arrays(F.array(*keys), F.array(*values))
