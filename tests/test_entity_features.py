"""Entity features from transactions: exclusions by reason, recency, frequency and monetary value by hand."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from stratify_spark.config import EntityFeaturesConfig, parse_config
from stratify_spark.entity_features import (
    EXCLUSION_COLUMN, aggregate_entities, compile_amount, default_reference_date, summarize_exclusions,
    tag_exclusions,
)
from stratify_spark.errors import ConfigError, InputError
from stratify_spark.rules import RuleError

WHERE = "shop/customers build b1"
SCHEMA = ("invoice_no string, stock_code string, quantity int, invoice_date timestamp, unit_price decimal(10,3), "
          "customer_id string, country string, source_file string")


def ts(day: int, hour: int = 12, minute: int = 0) -> dt.datetime:
    return dt.datetime(2010, 12, day, hour, minute)


# (invoice, quantity, time, unit price, customer) and the reason each row is left out, if any.
TRANSACTIONS = [
    ("536365", 6, ts(1, 8, 26), "2.550", "17850.0", None),
    ("536365", 2, ts(1, 8, 26), "0.100", "17850.0", None),
    ("536400", 3, ts(5, 10), "0.100", "17850.0", None),
    ("C536401", -1, ts(6), "2.550", "17850.0", "cancellation"),
    ("536402", 1, ts(7), "1.000", None, "missing_entity_key"),
    ("536403", 1, ts(7), "1.000", "  ", "missing_entity_key"),
    ("536404", 10, ts(8), "1.250", " 12345.0 ", None),
    ("536405", 5, ts(8), "0.000", "12345.0", "non_positive_amount"),
    ("536406", -2, ts(9), "1.000", "12345.0", "cancellation"),
    ("536407", 1, ts(9, 23, 59), "100.000", "C3", None),
    ("536408", 1, None, "1.000", "C3", "missing_order_date"),
    ("536409", 1, ts(3), None, "C3", "missing_amount"),
    (None, 1, ts(3), "1.000", "C3", "missing_order_id"),
    ("C536410", -1, ts(4), "1.000", None, "missing_entity_key"),
    ("A563185", 1, ts(2), "-11062.060", None, "missing_entity_key"),
    ("A5", 1, ts(2), "-5.000", "C3", "non_positive_amount"),
    ("C536499", -3, ts(4), "2.000", "K9", "cancellation"),
]


def entity_config(**changes) -> EntityFeaturesConfig:
    values = {
        "source_dataset": "transactions",
        "entity_key": "customer_id",
        "order_id": "invoice_no",
        "order_time": "invoice_date",
        "amount": "quantity * unit_price",
        "exclude": {"cancellation_order_prefixes": ["C"], "cancellation_negative_columns": ["quantity"]},
    }
    values.update(changes)
    return EntityFeaturesConfig.model_validate(values)


@pytest.fixture(scope="module")
def transactions(spark):
    rows = [(invoice, "85123A", quantity, time, Decimal(price) if price else None, customer, "United Kingdom",
             "file:/day.csv") for invoice, quantity, time, price, customer, _ in TRANSACTIONS]
    return spark.createDataFrame(rows, SCHEMA)


def tag(transactions, config, reference_date=None):
    amount = compile_amount(transactions.schema, config, WHERE)
    return tag_exclusions(transactions, config, amount, reference_date)


def entities_by_key(transactions, config, reference_date):
    tagged = tag(transactions, config, reference_date)
    reference = reference_date or default_reference_date(summarize_exclusions(tagged).first()["latest_order_date"])
    rows = aggregate_entities(tagged, config, reference).collect()
    return {row["customer_id"]: row.asDict() for row in rows}


# --- exclusions -------------------------------------------------------------------------------------


def test_reason_per_row(transactions):
    reasons = [row[EXCLUSION_COLUMN] for row in tag(transactions, entity_config()).collect()]

    assert reasons == [expected for *_, expected in TRANSACTIONS]


def test_exclusion_counts(transactions):
    summary = summarize_exclusions(tag(transactions, entity_config())).first()

    assert summary["rows_read"] == 17
    assert summary["rows_used"] == 5
    assert summary["missing_entity_key"] == 4
    assert summary["missing_order_id"] == 1
    assert summary["missing_order_date"] == 1
    assert summary["after_reference_date"] == 0
    assert summary["cancellation"] == 3
    assert summary["missing_amount"] == 1
    assert summary["non_positive_amount"] == 2
    assert summary["entities"] == 4
    assert summary["entities_without_purchase"] == 1
    assert summary["latest_order_date"] == dt.date(2010, 12, 9)


def test_first_reason_wins(transactions):
    # C536410 is a cancellation without a customer: it counts once, as missing_entity_key.
    rows = tag(transactions, entity_config()).collect()

    assert rows[13][EXCLUSION_COLUMN] == "missing_entity_key"


def test_no_cancellation_rules_declared(transactions):
    config = entity_config(exclude={})

    reasons = [row[EXCLUSION_COLUMN] for row in tag(transactions, config).collect()]

    # Without declared cancellations, C536401 and 536406 have negative amounts instead.
    assert reasons[3] == "non_positive_amount"
    assert reasons[8] == "non_positive_amount"


def test_non_positive_amounts_kept_when_allowed(transactions):
    config = entity_config(exclude={"cancellation_order_prefixes": ["C"], "cancellation_negative_columns": ["quantity"],
                                    "non_positive_amount": False})

    entities = entities_by_key(transactions, config, None)

    assert entities["12345.0"]["frequency"] == 2
    assert entities["12345.0"]["monetary"] == 12.5
    assert entities["C3"]["monetary"] == 95.0


# --- features by hand -------------------------------------------------------------------------------


def test_entities_by_hand(transactions):
    entities = entities_by_key(transactions, entity_config(), None)

    # The reference date is the day after the latest transaction (2010-12-09).
    assert entities == {
        "17850.0": {"customer_id": "17850.0", "recency_days": 5, "frequency": 2, "monetary": 15.8,
                    "first_purchase": dt.date(2010, 12, 1), "last_purchase": dt.date(2010, 12, 5)},
        "12345.0": {"customer_id": "12345.0", "recency_days": 2, "frequency": 1, "monetary": 12.5,
                    "first_purchase": dt.date(2010, 12, 8), "last_purchase": dt.date(2010, 12, 8)},
        "C3": {"customer_id": "C3", "recency_days": 1, "frequency": 1, "monetary": 100.0,
               "first_purchase": dt.date(2010, 12, 9), "last_purchase": dt.date(2010, 12, 9)},
        # K9 only cancelled an order, so it has no purchase but keeps its row.
        "K9": {"customer_id": "K9", "recency_days": None, "frequency": 0, "monetary": 0.0,
               "first_purchase": None, "last_purchase": None},
    }


def test_monetary_sum_exact(spark):
    # Ten amounts of 0.1 sum to exactly 1.0, where doubles would give 0.9999999999999999.
    rows = [(f"9{index}", "x", 1, ts(1), Decimal("0.100"), "K1", "UK", "f") for index in range(10)]
    df = spark.createDataFrame(rows, SCHEMA)

    entities = entities_by_key(df, entity_config(), None)

    assert entities["K1"]["monetary"] == 1.0
    assert entities["K1"]["frequency"] == 10


def test_declared_reference_date_excludes_later_rows(transactions):
    config = entity_config()
    tagged = tag(transactions, config, dt.date(2010, 12, 6))

    summary = summarize_exclusions(tagged).first()
    entities = {row["customer_id"]: row for row in aggregate_entities(tagged, config, dt.date(2010, 12, 6)).collect()}

    # Rows of 6, 8 and 9 December (C536401, 536404, 536405, 536406, 536407) are on or after the date.
    assert summary["after_reference_date"] == 5
    assert entities["17850.0"]["recency_days"] == 1
    assert entities["12345.0"]["frequency"] == 0
    assert entities["12345.0"]["recency_days"] is None


def test_default_reference_date():
    assert default_reference_date(dt.date(2011, 12, 9)) == dt.date(2011, 12, 10)
    assert default_reference_date(dt.date(2011, 12, 31)) == dt.date(2012, 1, 1)


def test_date_order_column(spark):
    df = spark.createDataFrame([("1", 2, dt.date(2011, 1, 1), Decimal("3.000"), "K")],
                               "invoice_no string, quantity int, invoice_date date, unit_price decimal(10,3), "
                               "customer_id string")

    entities = entities_by_key(df, entity_config(), None)

    assert entities["K"]["recency_days"] == 1
    assert entities["K"]["monetary"] == 6.0


# --- declared columns against the transactions table ---------------------------------------------------


def test_missing_entity_key_column(transactions):
    config = entity_config(entity_key="client_id")

    with pytest.raises(InputError, match=r"entity_features.entity_key names column 'client_id', which the "
                                         r"transactions table does not have; columns present: country, customer_id"):
        compile_amount(transactions.schema, config, WHERE)


def test_order_time_must_be_date(transactions):
    with pytest.raises(InputError, match=r"order_time column 'country' is a string; name a date or timestamp column"):
        compile_amount(transactions.schema, entity_config(order_time="country"), WHERE)


def test_negative_column_must_be_number(transactions):
    config = entity_config(exclude={"cancellation_negative_columns": ["country"]})

    with pytest.raises(InputError, match=r"cancellation_negative_columns names 'country', which is not a numeric"):
        compile_amount(transactions.schema, config, WHERE)


def test_amount_cannot_read_lineage_columns(transactions):
    with pytest.raises(RuleError, match=r"unknown column 'source_file'"):
        compile_amount(transactions.schema, entity_config(amount="quantity * source_file"), WHERE)


def test_amount_type_checked(transactions):
    with pytest.raises(RuleError, match=r"'\*' needs a number but column 'country' is a string"):
        compile_amount(transactions.schema, entity_config(amount="quantity * country"), WHERE)


# --- the entity data set's config -----------------------------------------------------------------------


def entity_data_set(**changes) -> dict:
    data = {
        "tenant": "shop",
        "dataset": "customers",
        "entity_features": {"source_dataset": "transactions", "entity_key": "customer_id", "order_id": "invoice_no",
                            "order_time": "invoice_date", "amount": "quantity * unit_price"},
    }
    data.update(changes)
    return data


def test_config_fills_in_columns_and_key():
    config = parse_config(entity_data_set(), "shop.yaml")

    assert [(column.name, column.type) for column in config.columns] == [
        ("customer_id", "string"), ("recency_days", "integer"), ("frequency", "long"), ("monetary", "double"),
        ("first_purchase", "date"), ("last_purchase", "date")]
    assert config.key.columns == ["customer_id"]
    assert config.source is None


def test_config_reference_date_as_text_or_date():
    quoted = entity_data_set()
    quoted["entity_features"] = {**quoted["entity_features"], "reference_date": "2011-12-10"}

    config = parse_config(quoted, "shop.yaml")

    assert config.entity_features.reference_date == dt.date(2011, 12, 10)


def test_config_source_rejected_for_entity_data_set():
    with pytest.raises(ConfigError, match=r"source: a data set built by entity_features has no source files"):
        parse_config(entity_data_set(source={"format": "csv"}), "shop.yaml")


def test_config_other_columns_rejected():
    data = entity_data_set(columns=[{"name": "customer_id", "type": "string"}])

    with pytest.raises(ConfigError, match=r"columns: a data set built by entity_features has the columns"):
        parse_config(data, "shop.yaml")


def test_config_source_required_without_entity_features():
    data = {"tenant": "shop", "dataset": "customers", "columns": [{"name": "a", "type": "string"}]}

    with pytest.raises(ConfigError, match=r"shop.yaml: invalid config \(1 problem\(s\)\):\n  - source: required key "
                                          r"is missing"):
        parse_config(data, "shop.yaml")


def test_config_amount_syntax_checked():
    data = entity_data_set()
    data["entity_features"] = {**data["entity_features"], "amount": "quantity * (unit_price"}

    with pytest.raises(ConfigError, match=r"entity_features.amount: expected '\)' to close the '\(' at position 12"):
        parse_config(data, "shop.yaml")


def test_config_empty_prefix_rejected():
    data = entity_data_set()
    data["entity_features"] = {**data["entity_features"], "exclude": {"cancellation_order_prefixes": [""]}}

    with pytest.raises(ConfigError, match=r"an empty prefix would mark every order as cancelled"):
        parse_config(data, "shop.yaml")
