"""Entity features from transactions: one row per entity with recency, frequency and monetary value.

Every function here maps DataFrames to DataFrames. Reading the transactions
table and writing the entity table happen in `stratify_spark.entity_build`.

Each transaction row is either used or excluded for the first reason that
applies, in the order of EXCLUSION_REASONS:

- missing_entity_key: the entity key is null or blank.
- missing_order_id: the order id is null or blank.
- missing_order_date: the order date or time is null.
- after_reference_date: the order date is on or after the declared reference date.
- cancellation: the order id starts with a declared prefix, or a declared column is negative.
- missing_amount: the amount expression is null (a null operand, an overflow or a division by zero).
- non_positive_amount: the amount is zero or negative (when `exclude.non_positive_amount` is true).
"""

from __future__ import annotations

import datetime as dt
from typing import Optional

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from stratify_spark.config import RESERVED_COLUMNS, EntityFeaturesConfig
from stratify_spark.errors import InputError
from stratify_spark.rules import DATE, NUMBER, TIMESTAMP, Expression, compile_value, spark_type_category

EXCLUSION_REASONS = (
    "missing_entity_key",
    "missing_order_id",
    "missing_order_date",
    "after_reference_date",
    "cancellation",
    "missing_amount",
    "non_positive_amount",
)
EXCLUSION_COLUMN = "exclusion_reason"
ENTITY_KEY_COLUMN = "_entity_key"
ORDER_ID_COLUMN = "_order_id"
ORDER_DATE_COLUMN = "_order_date"
AMOUNT_COLUMN = "_amount"
# Amounts are summed as exact decimals, so a total does not depend on the order in which rows are added.
AMOUNT_TYPE = "decimal(38,6)"


def column_types(schema: T.StructType) -> dict[str, str]:
    """Return the rule-language type of each transactions column that expressions may read.

    Lineage columns that ingest adds (record_key, source_file, ingest_id,
    ingested_at) and columns of types that rules cannot use are left out.
    """
    types = {}
    for field in schema.fields:
        category = spark_type_category(field.dataType)
        if category is not None and field.name not in RESERVED_COLUMNS:
            types[field.name] = category
    return types


def compile_amount(schema: T.StructType, config: EntityFeaturesConfig, where: str) -> Expression:
    """Check the declared columns against the transactions schema and compile the amount expression.

    Raises InputError for a declared column that the table lacks or whose type
    does not fit, and RuleError (a ConfigError) for an invalid amount expression.
    """
    types = column_types(schema)
    present = ", ".join(sorted(types))
    for key, name in (("entity_key", config.entity_key), ("order_id", config.order_id),
                      ("order_time", config.order_time)):
        if name not in types:
            raise InputError(f"{where}: entity_features.{key} names column {name!r}, which the transactions table "
                             f"does not have; columns present: {present}")
    if types[config.order_time] not in (DATE, TIMESTAMP):
        raise InputError(f"{where}: entity_features.order_time column {config.order_time!r} is a "
                         f"{types[config.order_time]}; name a date or timestamp column")
    for name in config.exclude.cancellation_negative_columns:
        if types.get(name) != NUMBER:
            raise InputError(f"{where}: entity_features.exclude.cancellation_negative_columns names {name!r}, which "
                             f"is not a numeric column of the transactions table; columns present: {present}")
    return compile_value(config.amount, types, "entity_features.amount")


def _text_or_null(column: Column) -> Column:
    text = F.trim(column.cast("string"))
    return F.when(text == "", F.lit(None).cast("string")).otherwise(text)


def tag_exclusions(transactions: DataFrame, config: EntityFeaturesConfig, amount: Expression,
                   reference_date: Optional[dt.date]) -> DataFrame:
    """Add the entity key, order id, order date, amount and the exclusion reason (null for a used row).

    `reference_date` is the declared reference date. When it is None, no row is
    excluded as after_reference_date: the default reference date is the day
    after the latest transaction, so no row can be on or after it.
    """
    entity_key = _text_or_null(F.col(config.entity_key))
    order_id = _text_or_null(F.col(config.order_id))
    order_date = F.to_date(F.col(config.order_time))
    amount_value = amount.column().try_cast(AMOUNT_TYPE)

    is_cancelled = F.lit(False)
    for prefix in config.exclude.cancellation_order_prefixes:
        is_cancelled = is_cancelled | F.coalesce(order_id.startswith(prefix), F.lit(False))
    for name in config.exclude.cancellation_negative_columns:
        is_cancelled = is_cancelled | F.coalesce(F.col(name) < 0, F.lit(False))

    checks: list[tuple[str, Column]] = [
        ("missing_entity_key", entity_key.isNull()),
        ("missing_order_id", order_id.isNull()),
        ("missing_order_date", order_date.isNull()),
    ]
    if reference_date is not None:
        checks.append(("after_reference_date", order_date >= F.lit(reference_date)))
    checks.append(("cancellation", is_cancelled))
    checks.append(("missing_amount", amount_value.isNull()))
    if config.exclude.non_positive_amount:
        checks.append(("non_positive_amount", amount_value <= 0))

    reason = F.lit(None).cast("string")
    for code, fails in reversed(checks):
        reason = F.when(F.coalesce(fails, F.lit(False)), F.lit(code)).otherwise(reason)
    return transactions.select(
        entity_key.alias(ENTITY_KEY_COLUMN),
        order_id.alias(ORDER_ID_COLUMN),
        order_date.alias(ORDER_DATE_COLUMN),
        amount_value.alias(AMOUNT_COLUMN),
        reason.alias(EXCLUSION_COLUMN),
    )


def summarize_exclusions(tagged: DataFrame) -> DataFrame:
    """Return one row: rows read and used, a count per exclusion reason, entity counts and the latest order date.

    `entities` counts the distinct entity keys, and `entities_without_purchase`
    those whose every row was excluded. The latest order date is taken over every
    row that has one, excluded or not, because the default reference date is the
    day after the latest transaction.
    """
    is_used = F.col(EXCLUSION_COLUMN).isNull()
    entities = F.count_distinct(ENTITY_KEY_COLUMN)
    entities_with_purchase = F.count_distinct(F.when(is_used, F.col(ENTITY_KEY_COLUMN)))
    return tagged.agg(
        F.count(F.lit(1)).alias("rows_read"),
        F.count_if(is_used).alias("rows_used"),
        *[F.count_if(F.col(EXCLUSION_COLUMN) == code).alias(code) for code in EXCLUSION_REASONS],
        entities.alias("entities"),
        (entities - entities_with_purchase).alias("entities_without_purchase"),
        F.max(ORDER_DATE_COLUMN).alias("latest_order_date"),
    )


def default_reference_date(latest_order_date: dt.date) -> dt.date:
    """Return the day after the latest transaction, so the latest buyers have a recency of 1 day."""
    return latest_order_date + dt.timedelta(days=1)


def aggregate_entities(tagged: DataFrame, config: EntityFeaturesConfig, reference_date: dt.date) -> DataFrame:
    """Return one row per entity key in `tag_exclusions` output, computed from the used rows.

    recency_days is the number of days from the last purchase date to the
    reference date. frequency counts distinct order ids, and monetary is the
    exact sum of the amounts, returned as a double. An entity whose every row
    was excluded (only cancellations, for example) keeps its row, with
    frequency 0, monetary 0 and null recency and purchase dates.
    """
    is_used = F.col(EXCLUSION_COLUMN).isNull()
    keyed = tagged.filter(F.col(ENTITY_KEY_COLUMN).isNotNull())
    per_entity = keyed.groupBy(ENTITY_KEY_COLUMN).agg(
        F.count_distinct(F.when(is_used, F.col(ORDER_ID_COLUMN))).alias("frequency"),
        F.coalesce(F.sum(F.when(is_used, F.col(AMOUNT_COLUMN))), F.lit(0).cast(AMOUNT_TYPE)).alias("monetary"),
        F.min(F.when(is_used, F.col(ORDER_DATE_COLUMN))).alias("first_purchase"),
        F.max(F.when(is_used, F.col(ORDER_DATE_COLUMN))).alias("last_purchase"),
    )
    return per_entity.select(
        F.col(ENTITY_KEY_COLUMN).alias(config.entity_key),
        F.datediff(F.lit(reference_date), F.col("last_purchase")).cast("int").alias("recency_days"),
        F.col("frequency").cast("long").alias("frequency"),
        F.col("monetary").cast("double").alias("monetary"),
        F.col("first_purchase"),
        F.col("last_purchase"),
    )
