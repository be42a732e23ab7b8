"""JSON and Parquet sources go through the same casting and quarantine as CSV."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import types as T

from stratify_spark.config import parse_config
from stratify_spark.ingest import tag_source
from stratify_spark.reader import read_raw


def config_for(source_format: str):
    return parse_config({
        "tenant": "acme",
        "dataset": "orders",
        "source": {"format": source_format},
        "columns": [
            {"name": "order_id", "type": "string", "required": True},
            {"name": "amount", "type": "double"},
            {"name": "placed", "type": "date"},
        ],
        "key": {"columns": ["order_id"]},
    }, f"{source_format}.yaml")


def tagged_rows(spark, source_format: str, path: str) -> dict:
    tagged = tag_source(read_raw(spark, config_for(source_format), path), config_for(source_format))
    return {row["record_key"]: row for row in tagged.collect()}


def test_json_lines_typed_and_quarantined(spark, tmp_path):
    source = tmp_path / "orders.json"
    source.write_text(
        '{"order_id": "o1", "amount": 12.5, "placed": "2024-02-29"}\n'
        '{"order_id": "o2", "amount": "abc", "placed": "2024-03-01"}\n'
        '{"order_id": "o3", "amount": null, "placed": "2024-13-01"}\n'
        '{"order_id": "o4", "amount": 1\n',
        encoding="utf-8",
    )

    rows = tagged_rows(spark, "json", str(source))

    assert rows["o1"]["reason_code"] is None
    assert rows["o1"]["amount"] == 12.5
    assert rows["o1"]["placed"] == dt.date(2024, 2, 29)
    assert rows["o2"]["reason_code"] == "invalid_number"
    assert rows["o3"]["reason_code"] == "invalid_date"
    malformed = [row for key, row in rows.items() if key not in ("o1", "o2", "o3")]
    assert [row["reason_code"] for row in malformed] == ["malformed_row"]


def test_parquet_typed_columns_kept(spark, tmp_path):
    schema = T.StructType([
        T.StructField("order_id", T.StringType()),
        T.StructField("amount", T.StringType()),
        T.StructField("placed", T.DateType()),
    ])
    path = str(tmp_path / "orders.parquet")
    spark.createDataFrame(
        [("o1", "7.25", dt.date(2023, 12, 31)), ("o2", "n/a", None), (None, "1", dt.date(2024, 1, 1))], schema,
    ).write.parquet(path)

    tagged = tag_source(read_raw(spark, config_for("parquet"), path), config_for("parquet"))
    rows = {row["order_id"]: row for row in tagged.collect()}

    assert rows["o1"]["reason_code"] is None
    assert rows["o1"]["amount"] == 7.25
    assert rows["o1"]["placed"] == dt.date(2023, 12, 31)
    assert rows["o2"]["reason_code"] == "invalid_number"
    assert rows[None]["reason_code"] == "missing_record_key"
