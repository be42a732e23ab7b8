"""Reading and casting source files: typed values, reason codes, record keys and duplicate policies.

Every test writes its own small file under tmp_path and runs reader.read_raw,
casting.tag_rows and ingest.tag_source on it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F
from pyspark.sql import types as T

from stratify_spark.casting import tag_rows
from stratify_spark.config import parse_config
from stratify_spark.errors import InputError
from stratify_spark.ingest import quarantined_rows, run_ingest, tag_source
from stratify_spark.reader import CORRUPT_COLUMN, read_raw


def make_config(columns: list[dict], key: dict | None = None, csv: dict | None = None):
    data = {
        "tenant": "acme",
        "dataset": "customers",
        "source": {"format": "csv", "csv": csv or {}},
        "columns": columns,
    }
    if key is not None:
        data["key"] = key
    return parse_config(data)


def write_file(tmp_path: Path, text: str, encoding: str = "utf-8", name: str = "source.csv") -> str:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return str(path)


def tagged(spark, config, path: str):
    return tag_source(read_raw(spark, config, path), config)


def reasons_by(df, key: str) -> dict:
    """Return {key value: reason_code} for every row."""
    return {row[key]: row["reason_code"] for row in df.select(key, "reason_code").collect()}


# --- Brazilian CSV: separator, decimal comma, dates, Latin-1 --------------------------------------

BRAZIL_COLUMNS = [
    {"name": "id", "type": "long"},
    {"name": "city", "source": "cidade", "type": "string"},
    {"name": "amount", "source": "valor", "type": "decimal(12,2)", "decimal_separator": ",",
     "thousands_separator": "."},
    {"name": "closed_on", "source": "data", "type": "date", "format": "dd/MM/yyyy"},
    {"name": "opened_on", "source": "abertura", "type": "date", "format": "d/M/yyyy"},
]

BRAZIL_CSV = (
    "id;cidade;valor;data;abertura\n"
    "1;São Paulo;1.234,56;31/12/2023;5/1/2024\n"
    "2;Belém;9.999.999.999,99;29/02/2024;29/2/2024\n"
    "3;Rio de Janeiro;-0,5;01/01/2024;15/11/2023\n"
    "4;;;;\n"
)


def test_brazilian_csv_typed_values(spark, tmp_path):
    config = make_config(BRAZIL_COLUMNS, key={"columns": ["id"]},
                         csv={"delimiter": ";", "encoding": "ISO-8859-1"})
    path = write_file(tmp_path, BRAZIL_CSV, encoding="latin-1")

    actual = tagged(spark, config, path).select("id", "city", "amount", "closed_on", "opened_on", "reason_code")

    schema = T.StructType([
        T.StructField("id", T.LongType()),
        T.StructField("city", T.StringType()),
        T.StructField("amount", T.DecimalType(12, 2)),
        T.StructField("closed_on", T.DateType()),
        T.StructField("opened_on", T.DateType()),
        T.StructField("reason_code", T.StringType()),
    ])
    expected = spark.createDataFrame([
        (1, "São Paulo", Decimal("1234.56"), dt.date(2023, 12, 31), dt.date(2024, 1, 5), None),
        (2, "Belém", Decimal("9999999999.99"), dt.date(2024, 2, 29), dt.date(2024, 2, 29), None),
        (3, "Rio de Janeiro", Decimal("-0.50"), dt.date(2024, 1, 1), dt.date(2023, 11, 15), None),
        (4, None, None, None, None, None),
    ], schema)
    assert_df_equality(actual, expected, ignore_nullable=True, ignore_row_order=True)


def test_brazilian_amount_too_large(spark, tmp_path):
    config = make_config(BRAZIL_COLUMNS, key={"columns": ["id"]},
                         csv={"delimiter": ";", "encoding": "ISO-8859-1"})
    text = "id;cidade;valor;data;abertura\n1;Natal;10.000.000.000,00;;\n"
    path = write_file(tmp_path, text, encoding="latin-1")

    rows = {row["id"]: row for row in tagged(spark, config, path).collect()}

    assert rows[1]["reason_code"] == "out_of_range"
    assert rows[1]["reason"] == "column 'amount': value '10.000.000.000,00' is out of range for decimal(12,2)"
    assert rows[1]["amount"] is None


def test_utf8_bom_header(spark, tmp_path):
    config = make_config([{"name": "id", "type": "integer"}, {"name": "nome", "type": "string"}],
                         key={"columns": ["id"]})
    path = write_file(tmp_path, "\ufeffid,nome\n1,José\n2,\n", encoding="utf-8")

    rows = tagged(spark, config, path).select("id", "nome", "reason_code").orderBy("id").collect()

    assert [tuple(row) for row in rows] == [(1, "José", None), (2, None, None)]


def test_utf8_bom_header_multi_line(spark, tmp_path):
    config = make_config([{"name": "id", "type": "integer"}, {"name": "nome", "type": "string"}],
                         key={"columns": ["id"]}, csv={"multi_line": True})
    path = write_file(tmp_path, '\ufeffid,nome\n1,"José\nda Silva"\n2,Ana\n', encoding="utf-8")

    rows = tagged(spark, config, path).select("id", "nome", "reason_code").orderBy("id").collect()

    assert [tuple(row) for row in rows] == [(1, "José\nda Silva", None), (2, "Ana", None)]


# --- encodings --------------------------------------------------------------------------------------


def test_latin1_read_as_utf8_undecodable(spark, tmp_path):
    config = make_config([{"name": "id", "type": "integer"}, {"name": "city", "type": "string"}],
                         key={"columns": ["id"]})
    path = write_file(tmp_path, "id,city\n1,São Paulo\n2,Recife\n", encoding="latin-1")

    rows = {row["id"]: row for row in tagged(spark, config, path).collect()}

    assert rows[1]["reason_code"] == "undecodable_text"
    assert rows[1]["reason"] == ("column 'city': text does not decode as UTF-8; declare the file's encoding "
                                 "in source.csv.encoding")
    assert rows[2]["reason_code"] is None
    assert rows[2]["city"] == "Recife"


def test_latin1_declared_decodes(spark, tmp_path):
    config = make_config([{"name": "id", "type": "integer"}, {"name": "city", "type": "string"}],
                         key={"columns": ["id"]}, csv={"encoding": "ISO-8859-1"})
    path = write_file(tmp_path, "id,city\n1,São Paulo\n", encoding="latin-1")

    row = tagged(spark, config, path).first()

    assert row["city"] == "São Paulo"
    assert row["reason_code"] is None


def test_tag_rows_skips_encoding_check(spark, tmp_path):
    config = make_config([{"name": "id", "type": "integer"}, {"name": "city", "type": "string"}])
    path = write_file(tmp_path, "id,city\n1,São\n", encoding="latin-1")

    row = tag_rows(read_raw(spark, config, path), config).first()

    assert row["reason_code"] is None
    assert row["city"] == "S\ufffdo"


# --- numbers ----------------------------------------------------------------------------------------

NUMBER_COLUMNS = [
    {"name": "id", "type": "string"},
    {"name": "small", "type": "integer"},
    {"name": "big", "type": "long"},
    {"name": "ratio", "type": "double"},
    {"name": "price", "type": "decimal(5,2)"},
]
NUMBER_HEADER = "id,small,big,ratio,price\n"


def test_integer_bounds(spark, tmp_path):
    config = make_config(NUMBER_COLUMNS, key={"columns": ["id"]})
    text = NUMBER_HEADER + (
        "max,2147483647,9223372036854775807,,\n"
        "min,-2147483648,-9223372036854775808,,\n"
        "int_over,2147483648,,,\n"
        "int_under,-2147483649,,,\n"
        "long_over,,9223372036854775808,,\n"
        "price_over,,,,1000.00\n"
    )
    path = write_file(tmp_path, text)

    rows = {row["id"]: row for row in tagged(spark, config, path).collect()}

    assert rows["max"]["small"] == 2147483647
    assert rows["max"]["big"] == 9223372036854775807
    assert rows["max"]["reason_code"] is None
    assert rows["min"]["small"] == -2147483648
    assert rows["min"]["big"] == -9223372036854775808
    assert rows["min"]["reason_code"] is None
    assert rows["int_over"]["reason_code"] == "out_of_range"
    assert rows["int_over"]["reason"] == "column 'small': value '2147483648' is out of range for integer"
    assert rows["int_under"]["reason_code"] == "out_of_range"
    assert rows["long_over"]["reason_code"] == "out_of_range"
    assert rows["long_over"]["reason"] == "column 'big': value '9223372036854775808' is out of range for long"
    assert rows["price_over"]["reason_code"] == "out_of_range"


def test_double_overflow_out_of_range(spark, tmp_path):
    config = make_config(NUMBER_COLUMNS, key={"columns": ["id"]})
    path = write_file(tmp_path, NUMBER_HEADER + "huge,,,1e400,\nsmall,,,-2.5e-3,\n")

    rows = {row["id"]: row for row in tagged(spark, config, path).collect()}

    assert rows["small"]["ratio"] == -0.0025
    assert rows["small"]["reason_code"] is None
    # 1e400 does not fit a double; loading it as Infinity would poison every mean and scaling step.
    assert rows["huge"]["reason_code"] == "out_of_range", rows["huge"]


def test_unparsable_number_invalid(spark, tmp_path):
    config = make_config(NUMBER_COLUMNS, key={"columns": ["id"]})
    text = NUMBER_HEADER + (
        "word,abc,,,\n"
        "comma,,,\"12,5\",\n"
        "thousands,,1.234.567,,\n"
        "price_text,,,,n/a\n"
    )
    path = write_file(tmp_path, text)

    rows = {row["id"]: row for row in tagged(spark, config, path).collect()}

    assert rows["word"]["reason_code"] == "invalid_number"
    assert rows["word"]["reason"] == "column 'small': value 'abc' is not a valid integer"
    assert rows["comma"]["reason_code"] == "invalid_number"
    assert rows["comma"]["reason"] == "column 'ratio': value '12,5' is not a valid double"
    assert rows["thousands"]["reason_code"] == "invalid_number"
    assert rows["price_text"]["reason_code"] == "invalid_number"
    assert rows["price_text"]["reason"] == "column 'price': value 'n/a' is not a valid decimal(5,2)"


def test_whole_decimal_text_as_long(spark, tmp_path):
    config = make_config(NUMBER_COLUMNS, key={"columns": ["id"]})
    text = NUMBER_HEADER + (
        "whole,17850.0,17850.0,,\n"
        "negative,-3.000,-3.000,,\n"
        "spaces,  42 ,,,\n"
        "fraction,,12.5,,\n"
        "small_fraction,0.5,,,\n"
    )
    path = write_file(tmp_path, text)

    rows = {row["id"]: row for row in tagged(spark, config, path).collect()}

    assert rows["whole"]["small"] == 17850
    assert rows["whole"]["big"] == 17850
    assert rows["whole"]["reason_code"] is None
    assert rows["negative"]["small"] == -3
    assert rows["negative"]["big"] == -3
    assert rows["spaces"]["small"] == 42
    assert rows["spaces"]["reason_code"] is None
    assert rows["fraction"]["reason_code"] == "invalid_number"
    assert rows["fraction"]["reason"] == "column 'big': value '12.5' is not a valid long"
    assert rows["fraction"]["big"] is None
    assert rows["small_fraction"]["reason_code"] == "invalid_number"


# --- dates, required values, keys, malformed rows ---------------------------------------------------

DATED_COLUMNS = [
    {"name": "id", "type": "string"},
    {"name": "name", "type": "string", "required": True},
    {"name": "joined", "source": "joined_on", "type": "date", "format": "dd/MM/yyyy"},
    {"name": "visits", "type": "integer", "required": True},
]
DATED_HEADER = "id,name,joined_on,visits\n"


def test_bad_date_invalid(spark, tmp_path):
    config = make_config(DATED_COLUMNS, key={"columns": ["id"]})
    text = DATED_HEADER + "a,Ana,2023-12-31,1\nb,Bia,31/02/2023,2\nc,Caio,31/12/2023,3\n"
    path = write_file(tmp_path, text)

    rows = {row["id"]: row for row in tagged(spark, config, path).collect()}

    assert rows["a"]["reason_code"] == "invalid_date"
    assert rows["a"]["reason"] == "column 'joined': value '2023-12-31' does not match date pattern 'dd/MM/yyyy'"
    assert rows["b"]["reason_code"] == "invalid_date"
    assert rows["c"]["reason_code"] is None
    assert rows["c"]["joined"] == dt.date(2023, 12, 31)


def test_bad_date_raw_kept_in_quarantine(spark, tmp_path):
    config = make_config(DATED_COLUMNS, key={"columns": ["id"]})
    path = write_file(tmp_path, DATED_HEADER + "a,Ana,2023-12-31,1\nc,Caio,31/12/2023,3\n")

    quarantine = quarantined_rows(tagged(spark, config, path), config, "ingest-1", dt.datetime(2024, 1, 2, 3, 4, 5))
    rows = quarantine.collect()

    assert len(rows) == 1
    row = rows[0]
    assert row["reason_code"] == "invalid_date"
    assert row["raw"] == {"id": "a", "name": "Ana", "joined_on": "2023-12-31", "visits": "1", CORRUPT_COLUMN: None}
    assert row["tenant"] == "acme"
    assert row["dataset"] == "customers"
    assert row["ingest_id"] == "ingest-1"
    assert row["quarantined_at"] == dt.datetime(2024, 1, 2, 3, 4, 5)
    assert row["source_file"].endswith("/source.csv")


def test_missing_required_value(spark, tmp_path):
    config = make_config(DATED_COLUMNS, key={"columns": ["id"]})
    text = DATED_HEADER + "a,,01/01/2024,1\nb,\"   \",01/01/2024,2\nc,Caio,01/01/2024,\nd,Duda,,4\n"
    path = write_file(tmp_path, text)

    rows = {row["id"]: row for row in tagged(spark, config, path).collect()}

    assert rows["a"]["reason_code"] == "missing_required_value"
    assert rows["a"]["reason"] == "column 'name': required value is missing"
    assert rows["b"]["reason_code"] == "missing_required_value"
    assert rows["c"]["reason_code"] == "missing_required_value"
    assert rows["c"]["reason"] == "column 'visits': required value is missing"
    assert rows["d"]["reason_code"] is None
    assert rows["d"]["joined"] is None


def test_missing_record_key(spark, tmp_path):
    config = make_config(DATED_COLUMNS, key={"columns": ["id"]})
    text = DATED_HEADER + ",Ana,01/01/2024,1\n\" \",Bia,01/01/2024,x\nc,Caio,01/01/2024,3\n"
    path = write_file(tmp_path, text)

    rows = {row["name"]: row for row in tagged(spark, config, path).collect()}

    assert rows["Ana"]["reason_code"] == "missing_record_key"
    assert rows["Ana"]["reason"] == "record key column 'id' is empty"
    # The key check runs before the number check, so the first reason wins.
    assert rows["Bia"]["reason_code"] == "missing_record_key"
    assert rows["Caio"]["reason_code"] is None


def test_composite_key_joined(spark, tmp_path):
    config = make_config(DATED_COLUMNS, key={"columns": ["id", "visits"]})
    path = write_file(tmp_path, DATED_HEADER + "a,Ana,01/01/2024,1\nb,Bia,01/01/2024,\n")

    rows = {row["id"]: row for row in tagged(spark, config, path).collect()}

    assert rows["a"]["record_key"] == "a|1"
    assert rows["b"]["reason_code"] == "missing_record_key"
    assert rows["b"]["reason"] == "record key column 'visits' is empty"


def test_composite_key_separator_in_value(spark, tmp_path):
    # ('a|b', 'c') and ('a', 'b|c') are different records even though both values joined by '|' read a|b|c.
    config = make_config([{"name": "first", "type": "string"}, {"name": "last", "type": "string"}],
                         key={"columns": ["first", "last"], "duplicates": "keep_first"})
    path = write_file(tmp_path, "first,last\na|b,c\na,b|c\n")

    df = tagged(spark, config, path)

    assert [row["reason_code"] for row in df.collect()] == [None, None]
    assert df.select("record_key").distinct().count() == 2


def test_boolean_and_timestamp(spark, tmp_path):
    columns = [
        {"name": "id", "type": "string"},
        {"name": "active", "type": "boolean"},
        {"name": "seen_at", "type": "timestamp", "format": "dd/MM/yyyy HH:mm"},
    ]
    config = make_config(columns, key={"columns": ["id"]})
    text = "id,active,seen_at\na,yes,31/12/2023 23:59\nb,0,\nc,maybe,01/01/2024 00:00\nd,true,2024-01-01 10:00\n"
    path = write_file(tmp_path, text)

    df = tagged(spark, config, path).withColumn("seen_text", F.date_format("seen_at", "yyyy-MM-dd HH:mm"))
    rows = {row["id"]: row for row in df.collect()}

    assert rows["a"]["active"] is True
    assert rows["a"]["seen_text"] == "2023-12-31 23:59"
    assert rows["a"]["reason_code"] is None
    assert rows["b"]["active"] is False
    assert rows["b"]["seen_at"] is None
    assert rows["b"]["reason_code"] is None
    assert rows["c"]["reason_code"] == "invalid_boolean"
    assert rows["c"]["reason"] == "column 'active': value 'maybe' is not a boolean (true/false, yes/no, 1/0)"
    assert rows["d"]["reason_code"] == "invalid_timestamp"
    assert rows["d"]["reason"] == ("column 'seen_at': value '2024-01-01 10:00' does not match timestamp pattern "
                                   "'dd/MM/yyyy HH:mm'")


def test_malformed_rows(spark, tmp_path):
    config = make_config(DATED_COLUMNS, key={"columns": ["id"]})
    text = DATED_HEADER + "a,Ana,01/01/2024,1,extra\nb,Bia\nc,Caio,01/01/2024,3\n"
    path = write_file(tmp_path, text)

    rows = {row["id"]: row for row in tagged(spark, config, path).collect()}

    assert rows["a"]["reason_code"] == "malformed_row"
    assert rows["a"][CORRUPT_COLUMN] == "a,Ana,01/01/2024,1,extra"
    assert rows["b"]["reason_code"] == "malformed_row"
    assert rows["c"]["reason_code"] is None
    assert rows["c"][CORRUPT_COLUMN] is None


def test_missing_source_column(spark, tmp_path):
    config = make_config(DATED_COLUMNS, key={"columns": ["id"]})
    path = write_file(tmp_path, "id,name,joined,visits\na,Ana,01/01/2024,1\n")

    with pytest.raises(InputError, match=r"has no column\(s\) \['joined_on'\] declared in the config"):
        read_raw(spark, config, path)


def test_missing_source_path(spark, tmp_path):
    config = make_config(DATED_COLUMNS, key={"columns": ["id"]})

    with pytest.raises(InputError, match=r"source path not found: .*absent\.csv"):
        read_raw(spark, config, str(tmp_path / "absent.csv"))


# --- duplicate record keys --------------------------------------------------------------------------

DUPLICATE_COLUMNS = [
    {"name": "id", "type": "string"},
    {"name": "seen_on", "type": "date"},
    {"name": "amount", "type": "integer"},
]
DUPLICATE_CSV = (
    "id,seen_on,amount\n"
    "A,2024-03-01,1\n"
    "B,2024-01-01,x\n"
    "A,2024-01-01,2\n"
    "B,2024-02-01,20\n"
    "A,2024-02-01,3\n"
    "C,,30\n"
)


def loaded_amounts(df) -> dict:
    """Return {record key: amount} of the rows that are not quarantined."""
    loaded = df.filter(F.col("reason_code").isNull()).collect()
    return {row["record_key"]: row["amount"] for row in loaded}


def duplicate_count(df) -> int:
    return df.filter(F.col("reason_code") == "duplicate_record_key").count()


def test_duplicates_keep_first(spark, tmp_path):
    config = make_config(DUPLICATE_COLUMNS, key={"columns": ["id"], "duplicates": "keep_first"})
    df = tagged(spark, config, write_file(tmp_path, DUPLICATE_CSV))

    # The first B has an invalid amount, so it takes no part and the second B is kept.
    assert loaded_amounts(df) == {"A": 1, "B": 20, "C": 30}
    assert duplicate_count(df) == 2
    assert reasons_by(df.filter(F.col("id") == "B"), "amount") == {None: "invalid_number", 20: None}


def test_duplicates_keep_last(spark, tmp_path):
    config = make_config(DUPLICATE_COLUMNS, key={"columns": ["id"], "duplicates": "keep_last"})
    df = tagged(spark, config, write_file(tmp_path, DUPLICATE_CSV))

    assert loaded_amounts(df) == {"A": 3, "B": 20, "C": 30}
    assert duplicate_count(df) == 2


def test_duplicates_keep_last_order_by(spark, tmp_path):
    config = make_config(DUPLICATE_COLUMNS,
                         key={"columns": ["id"], "duplicates": "keep_last", "order_by": "seen_on"})
    df = tagged(spark, config, write_file(tmp_path, DUPLICATE_CSV))

    # Latest seen_on of A is 2024-03-01, the first row of the file.
    assert loaded_amounts(df) == {"A": 1, "B": 20, "C": 30}


def test_duplicates_keep_first_order_by(spark, tmp_path):
    config = make_config(DUPLICATE_COLUMNS,
                         key={"columns": ["id"], "duplicates": "keep_first", "order_by": "seen_on"})
    df = tagged(spark, config, write_file(tmp_path, DUPLICATE_CSV))

    assert loaded_amounts(df) == {"A": 2, "B": 20, "C": 30}


def test_duplicates_fail_tags_like_keep_first(spark, tmp_path):
    config = make_config(DUPLICATE_COLUMNS, key={"columns": ["id"], "duplicates": "fail"})
    df = tagged(spark, config, write_file(tmp_path, DUPLICATE_CSV))

    assert loaded_amounts(df) == {"A": 1, "B": 20, "C": 30}
    assert duplicate_count(df) == 2


def test_duplicates_fail_ingest_raises(spark, tmp_path):
    config = make_config(DUPLICATE_COLUMNS, key={"columns": ["id"], "duplicates": "fail"})
    path = write_file(tmp_path, DUPLICATE_CSV)
    warehouse = str(tmp_path / "warehouse")

    with pytest.raises(InputError, match=r"duplicate record keys in acme/customers") as raised:
        run_ingest(spark, config, path, warehouse, ingest_id="ingest-dup")
    message = str(raised.value)
    assert "['A']" in message, message
    assert "['id']" in message, message
    assert "'fail'" in message, message

    ledger = spark.read.format("delta").load(f"{warehouse}/tables/ingests").collect()
    assert [(row["ingest_id"], row["status"]) for row in ledger] == [("ingest-dup", "failed")]
    assert "duplicate record keys" in ledger[0]["error"]


def test_existing_key_loses_keep_first(spark, tmp_path):
    config = make_config(DUPLICATE_COLUMNS, key={"columns": ["id"], "duplicates": "keep_first"})
    raw = read_raw(spark, config, write_file(tmp_path, DUPLICATE_CSV))
    existing = spark.createDataFrame([("A",), ("Z",)], "record_key string")

    df = tag_source(raw, config, existing_keys=existing)

    assert loaded_amounts(df) == {"B": 20, "C": 30}
    assert duplicate_count(df) == 3


def test_existing_key_kept_keep_last(spark, tmp_path):
    config = make_config(DUPLICATE_COLUMNS, key={"columns": ["id"], "duplicates": "keep_last"})
    raw = read_raw(spark, config, write_file(tmp_path, DUPLICATE_CSV))
    existing = spark.createDataFrame([("A",)], "record_key string")

    df = tag_source(raw, config, existing_keys=existing)

    # keep_last replaces the stored row with the newest one, so the batch's last A is loaded.
    assert loaded_amounts(df) == {"A": 3, "B": 20, "C": 30}


# --- generated keys ---------------------------------------------------------------------------------

GENERATED_COLUMNS = [{"name": "name", "type": "string"}, {"name": "amount", "type": "integer"}]
GENERATED_CSV = "name,amount\nAna,10\nAna,10\nBia,\nAna,11\n"


def expected_generated_key(raw_values: list, occurrence: int) -> str:
    """Compute the generated key by hand: SHA-256 of the raw values joined by U+001F, nulls as U+0000."""
    text = "\u001f".join("\u0000" if value is None else value for value in raw_values)
    return f"{hashlib.sha256(text.encode('utf-8')).hexdigest()[:24]}-{occurrence}"


def test_generated_key_values(spark, tmp_path):
    config = make_config(GENERATED_COLUMNS, key={"generate": True})
    df = tagged(spark, config, write_file(tmp_path, GENERATED_CSV))

    keys = sorted(row["record_key"] for row in df.collect())

    expected = sorted([
        expected_generated_key(["Ana", "10"], 1),
        expected_generated_key(["Ana", "10"], 2),
        expected_generated_key(["Bia", None], 1),
        expected_generated_key(["Ana", "11"], 1),
    ])
    assert keys == expected


def test_generated_key_identical_rows_kept(spark, tmp_path):
    config = make_config(GENERATED_COLUMNS, key={"generate": True, "duplicates": "fail"})
    df = tagged(spark, config, write_file(tmp_path, GENERATED_CSV))

    rows = df.collect()
    ana_keys = sorted(row["record_key"] for row in rows if (row["name"], row["amount"]) == ("Ana", 10))

    assert [row["reason_code"] for row in rows] == [None, None, None, None]
    assert len(ana_keys) == 2
    assert ana_keys[0].endswith("-1"), ana_keys
    assert ana_keys[1] == ana_keys[0][:-2] + "-2", ana_keys


def test_generated_key_stable_across_reads(spark, tmp_path):
    config = make_config(GENERATED_COLUMNS, key={"generate": True})
    first_path = write_file(tmp_path, GENERATED_CSV, name="first.csv")
    second_path = write_file(tmp_path, GENERATED_CSV, name="second.csv")

    first = tagged(spark, config, first_path).select("record_key", "name", "amount")
    second = tagged(spark, config, second_path).select("record_key", "name", "amount")
    again = tagged(spark, config, first_path).select("record_key", "name", "amount")

    assert_df_equality(first, again, ignore_row_order=True)
    assert_df_equality(first, second, ignore_row_order=True)


def test_small_ingest_writes_one_file(spark, tmp_path):
    # Twenty keys spread over both shuffle partitions of the key check, and the table still gets one file.
    config = make_config([{"name": "id", "type": "string"}, {"name": "amount", "type": "integer"}],
                         key={"columns": ["id"]})
    path = write_file(tmp_path, "id,amount\n" + "".join(f"k{index},{index}\n" for index in range(20)))
    warehouse = str(tmp_path / "warehouse")

    result = run_ingest(spark, config, path, warehouse)

    files = spark.read.format("delta").load(f"{warehouse}/datasets/acme/customers").inputFiles()
    assert len(files) == 1
    assert result.rows_loaded == 20
