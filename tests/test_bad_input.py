"""Bad input through run_ingest and run_segment: each case ends in a clear error or in quarantined rows.

Every test makes its own small file and warehouse under tmp_path, and checks the
error text, the ledger row and that nothing already stored changed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import logging
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from stratify_spark import tables
from stratify_spark.config import parse_config
from stratify_spark.errors import InputError
from stratify_spark.features import apply_feature_plan, fit_feature_plan, with_raw_features
from stratify_spark.ingest import run_ingest, tag_source
from stratify_spark.reader import read_raw
from stratify_spark.segment import run_segment

JOBS_DIR = Path(__file__).resolve().parent.parent / "jobs"


def config_of(columns: list[dict], key: dict | None = None, csv: dict | None = None, segment: dict | None = None,
              dataset: str = "customers"):
    data = {"tenant": "acme", "dataset": dataset, "source": {"format": "csv", "csv": csv or {}}, "columns": columns}
    if key is not None:
        data["key"] = key
    if segment is not None:
        data["segment"] = segment
    return parse_config(data, "acme.yaml")


CUSTOMER_COLUMNS = [{"name": "id", "type": "string", "required": True}, {"name": "visits", "type": "integer"}]


def customers(visits_type: str = "integer", duplicates: str = "keep_first"):
    columns = [CUSTOMER_COLUMNS[0], {"name": "visits", "type": visits_type}]
    return config_of(columns, key={"columns": ["id"], "duplicates": duplicates})


def write(folder: Path, name: str, text: str, encoding: str = "utf-8") -> str:
    path = folder / name
    path.write_bytes(text.encode(encoding))
    return str(path)


def data_rows(spark, warehouse: str, dataset: str = "customers") -> dict:
    data = spark.read.format("delta").load(tables.dataset_path(warehouse, "acme", dataset))
    return {row["id"]: row["visits"] for row in data.collect()}


def ingest_rows(spark, warehouse: str, ingest_id: str) -> list:
    ledger = spark.read.format("delta").load(tables.table_path(warehouse, tables.INGESTS))
    return ledger.filter(F.col("ingest_id") == ingest_id).collect()


def quarantine_rows(spark, warehouse: str, ingest_id: str) -> list:
    quarantine = spark.read.format("delta").load(tables.table_path(warehouse, tables.QUARANTINE))
    return quarantine.filter(F.col("ingest_id") == ingest_id).collect()


def table_version(spark, warehouse: str, dataset: str = "customers") -> int:
    return tables.current_version(spark, tables.dataset_path(warehouse, "acme", dataset))


# --- headers ----------------------------------------------------------------------------------------

ODD_HEADER_COLUMNS = [
    {"name": "first_a", "source": "a0", "type": "integer"},
    {"name": "second_a", "source": "a1", "type": "integer"},
    {"name": "unnamed", "source": "_c2", "type": "integer"},
    {"name": "b_c", "source": "b.c", "type": "integer"},
    {"name": "first_name", "source": "First Name", "type": "string"},
]
ODD_HEADER = "a,a,,b.c,First Name\n"


def test_repeated_blank_dotted_spaced_headers(spark, tmp_path):
    config = config_of(ODD_HEADER_COLUMNS, key={"columns": ["first_a"]})
    path = write(tmp_path, "odd.csv", ODD_HEADER + "1,2,3,4,Ana\n5,6,7,8,Bia Lima\n")

    rows = tag_source(read_raw(spark, config, path), config).orderBy("first_a").collect()

    assert [(row["first_a"], row["second_a"], row["unnamed"], row["b_c"], row["first_name"]) for row in rows] == [
        (1, 2, 3, 4, "Ana"), (5, 6, 7, 8, "Bia Lima")]
    assert [row["reason_code"] for row in rows] == [None, None]


def test_repeated_headers_checked_across_files(spark, tmp_path):
    config = config_of(ODD_HEADER_COLUMNS, key={"columns": ["first_a"]})
    folder = tmp_path / "files"
    folder.mkdir()
    write(folder, "1.csv", ODD_HEADER + "1,2,3,4,Ana\n")
    write(folder, "2.csv", "a,a,,b.c,Last Name\n5,6,7,8,Lima\n")

    with pytest.raises(InputError, match=r"do not share one header: \['file:.*/[12]\.csv'\] lack the header") as raised:
        read_raw(spark, config, str(folder))
    # Which file Spark reads first is not fixed; the other one must be named, with the first one's header.
    message = str(raised.value)
    if "/1.csv'] lack" in message:
        assert "'Last Name']" in message, message
    else:
        assert "'First Name']" in message, message


def test_header_differs_between_files(spark, tmp_path):
    warehouse = str(tmp_path / "warehouse")
    folder = tmp_path / "files"
    folder.mkdir()
    write(folder, "1.csv", "id,visits\nc1,1\n")
    write(folder, "2.csv", "visits,id\n2,c2\n")

    with pytest.raises(InputError, match=r"CSV file 'file:.*\.csv' has the header \[.*\] but the first file read "
                                         r"has \[.*\]\. Every file of one ingest needs the same columns"):
        run_ingest(spark, customers(), str(folder), warehouse, ingest_id="mixed-headers")

    [ledger] = ingest_rows(spark, warehouse, "mixed-headers")
    assert ledger["status"] == "failed"
    assert "has the header" in ledger["error"]
    assert not tables.is_delta_table(spark, tables.dataset_path(warehouse, "acme", "customers"))


# --- encodings ----------------------------------------------------------------------------------------


def test_undecodable_text_counted(spark, tmp_path):
    warehouse = str(tmp_path / "warehouse")
    config = config_of([{"name": "id", "type": "string"}, {"name": "city", "type": "string"}], key={"columns": ["id"]})
    path = write(tmp_path, "cities.csv", "id,city\n1,São Paulo\n2,Recife\n", encoding="latin-1")

    result = run_ingest(spark, config, path, warehouse, ingest_id="latin1-as-utf8")

    assert result.reason_counts == {"undecodable_text": 1}
    assert result.rows_loaded == 1
    [ledger] = ingest_rows(spark, warehouse, "latin1-as-utf8")
    assert ledger["reason_counts"] == {"undecodable_text": 1}
    [quarantined] = quarantine_rows(spark, warehouse, "latin1-as-utf8")
    assert quarantined["raw"]["id"] == "1"
    assert quarantined["reason"].endswith("declare the file's encoding in source.csv.encoding")


# --- empty and fully rejected files -------------------------------------------------------------------


def test_header_only_file_rejected(spark, tmp_path):
    warehouse = str(tmp_path / "warehouse")
    run_ingest(spark, customers(), write(tmp_path, "first.csv", "id,visits\nc1,1\n"), warehouse)
    before = table_version(spark, warehouse)

    with pytest.raises(InputError, match=r"header\.csv' has no data rows \(at most a header line\); nothing was "
                                         r"ingested and the data table is unchanged"):
        run_ingest(spark, customers(), write(tmp_path, "header.csv", "id,visits\n"), warehouse,
                   mode="overwrite", ingest_id="header-only")

    assert table_version(spark, warehouse) == before
    assert data_rows(spark, warehouse) == {"c1": 1}
    assert [row["status"] for row in ingest_rows(spark, warehouse, "header-only")] == ["failed"]


def test_all_rows_quarantined_keeps_table(spark, tmp_path):
    warehouse = str(tmp_path / "warehouse")
    run_ingest(spark, customers(), write(tmp_path, "first.csv", "id,visits\nc1,1\nc2,2\n"), warehouse)
    before = table_version(spark, warehouse)
    bad = write(tmp_path, "bad.csv", "id,visits\nc3,three\nc4,4.5\n")

    with pytest.raises(InputError, match=r"all 2 row\(s\) of '.*bad\.csv' were quarantined \(\{'invalid_number': 2\}\)"
                                         r", so the data table is unchanged"):
        run_ingest(spark, customers(), bad, warehouse, mode="overwrite", ingest_id="all-bad")

    assert table_version(spark, warehouse) == before
    assert data_rows(spark, warehouse) == {"c1": 1, "c2": 2}
    [ledger] = ingest_rows(spark, warehouse, "all-bad")
    assert ledger["status"] == "failed"
    assert ledger["rows_read"] == 2
    assert ledger["rows_loaded"] == 0
    assert ledger["rows_quarantined"] == 2
    quarantined = {row["raw"]["id"]: row["reason_code"] for row in quarantine_rows(spark, warehouse, "all-bad")}
    assert quarantined == {"c3": "invalid_number", "c4": "invalid_number"}


def test_resent_file_all_duplicates_succeeds(spark, tmp_path):
    warehouse = str(tmp_path / "warehouse")
    path = write(tmp_path, "same.csv", "id,visits\nc1,1\nc2,2\n")
    first = run_ingest(spark, customers(), path, warehouse)

    again = run_ingest(spark, customers(), path, warehouse, ingest_id="resent")

    assert again.rows_loaded == 0
    assert again.reason_counts == {"duplicate_record_key": 2}
    assert again.data_version == first.data_version
    assert table_version(spark, warehouse) == first.data_version
    assert [row["status"] for row in ingest_rows(spark, warehouse, "resent")] == ["succeeded"]


# --- a column that changes between appends ------------------------------------------------------------


def test_values_no_longer_fit_quarantined(spark, tmp_path):
    warehouse = str(tmp_path / "warehouse")
    run_ingest(spark, customers(), write(tmp_path, "first.csv", "id,visits\nc1,1\n"), warehouse)

    result = run_ingest(spark, customers(), write(tmp_path, "second.csv", "id,visits\nc2,2.5\nc3,3\n"), warehouse,
                        ingest_id="now-decimal")

    assert result.reason_counts == {"invalid_number": 1}
    assert data_rows(spark, warehouse) == {"c1": 1, "c3": 3}
    [quarantined] = quarantine_rows(spark, warehouse, "now-decimal")
    assert quarantined["reason"] == "column 'visits': value '2.5' is not a valid integer"


def test_declared_type_change_rejected(spark, tmp_path):
    warehouse = str(tmp_path / "warehouse")
    run_ingest(spark, customers(), write(tmp_path, "first.csv", "id,visits\nc1,1\n"), warehouse)
    before = table_version(spark, warehouse)
    second = write(tmp_path, "second.csv", "id,visits\nc2,2\n")

    with pytest.raises(InputError, match=r"column 'visits' is int in the table but the config declares bigint\. "
                                         r"Ingest with --mode overwrite to replace the table"):
        run_ingest(spark, customers("long"), second, warehouse, ingest_id="now-long")

    assert table_version(spark, warehouse) == before
    assert data_rows(spark, warehouse) == {"c1": 1}
    assert [row["status"] for row in ingest_rows(spark, warehouse, "now-long")] == ["failed"]
    assert quarantine_rows(spark, warehouse, "now-long") == []

    run_ingest(spark, customers("long"), second, warehouse, mode="overwrite")
    data = spark.read.format("delta").load(tables.dataset_path(warehouse, "acme", "customers"))
    assert dict(data.dtypes)["visits"] == "bigint"
    assert data_rows(spark, warehouse) == {"c2": 2}


def test_ingest_id_reuse_rejected(spark, tmp_path):
    warehouse = str(tmp_path / "warehouse")
    run_ingest(spark, customers(), write(tmp_path, "first.csv", "id,visits\nc1,x\nc2,2\n"), warehouse, ingest_id="i1")

    with pytest.raises(Exception, match=r"ingest id 'i1' was already used for acme/customers \(status succeeded"):
        run_ingest(spark, customers(), write(tmp_path, "second.csv", "id,visits\nc3,3\n"), warehouse, ingest_id="i1")

    assert len(quarantine_rows(spark, warehouse, "i1")) == 1
    assert len(ingest_rows(spark, warehouse, "i1")) == 1


# --- missing values -----------------------------------------------------------------------------------


@pytest.mark.parametrize("policy, expected", [
    ("mean", {"k1": 1.0, "k2": 2.0, "k3": 3.0, "k4": 10.0, "k5": 4.0, "k6": 4.0}),
    ("median", {"k1": 1.0, "k2": 2.0, "k3": 3.0, "k4": 10.0, "k5": 2.0, "k6": 2.0}),
    ("drop", {"k1": 1.0, "k2": 2.0, "k3": 3.0, "k4": 10.0}),
])
def test_null_and_nan_under_policy(spark, policy, expected):
    config = config_of([{"name": "id", "type": "string"}, {"name": "x", "type": "double"}], key={"columns": ["id"]},
                       segment={"features": [{"name": "x", "missing": policy}], "scaling": "none",
                                "algorithm": {"name": "kmeans", "k": 2}})
    df = spark.createDataFrame([("k1", 1.0), ("k2", 2.0), ("k3", 3.0), ("k4", 10.0), ("k5", None),
                                ("k6", float("nan"))], "record_key string, x double")
    raw = with_raw_features(df, "record_key", list(config.segment.features))

    plan = fit_feature_plan(raw, config.segment, "acme/customers run r1")
    scaled = {row["record_key"]: row["_s0"] for row in apply_feature_plan(raw, plan).collect()}

    assert scaled == expected
    assert plan.features[0].null_count == 2
    assert plan.rows_dropped == (2 if policy == "drop" else 0)


# --- segmenting degenerate data -----------------------------------------------------------------------

POINT_COLUMNS = [{"name": "id", "type": "string"}, {"name": "x", "type": "double"}, {"name": "y", "type": "double"}]


def points_config(dataset: str, k: int, distance: str = "euclidean", scaling: str = "standard"):
    return config_of(POINT_COLUMNS, key={"columns": ["id"]}, dataset=dataset, segment={
        "features": [{"name": "x"}, {"name": "y"}], "scaling": scaling,
        "algorithm": {"name": "kmeans", "k": k, "seed": 7, "distance_measure": distance},
    })


def run_result_rows(spark, warehouse: str, spec, run_id: str):
    path = tables.table_path(warehouse, spec)
    if not tables.is_delta_table(spark, path):
        return []
    data = spark.read.format("delta").load(path)
    return data.filter((F.col("tenant") == "acme") & (F.col("run_id") == run_id)).collect()


def run_row(spark, warehouse: str, run_id: str):
    runs = spark.read.format("delta").load(tables.table_path(warehouse, tables.RUNS))
    [row] = runs.filter((F.col("tenant") == "acme") & (F.col("run_id") == run_id)).collect()
    return row


def metric_values(spark, warehouse: str, run_id: str) -> dict:
    rows = run_result_rows(spark, warehouse, tables.RUN_METRICS, run_id)
    return {row["metric"]: (row["value"], row["detail"]) for row in rows}


@pytest.fixture(scope="module")
def degenerate_warehouse(spark, tmp_path_factory):
    """Two data sets: 'pairs' has two distinct points, 'flat' has three copies of one point."""
    folder = tmp_path_factory.mktemp("degenerate")
    warehouse = str(folder / "warehouse")
    pairs = write(folder, "pairs.csv", "id,x,y\na,1,1\nb,1,1\nc,5,5\nd,5,5\ne,5,5\n")
    flat = write(folder, "flat.csv", "id,x,y\na,2,3\nb,2,3\nc,2,3\n")
    run_ingest(spark, points_config("pairs", 3), pairs, warehouse)
    run_ingest(spark, points_config("flat", 2), flat, warehouse)
    return warehouse


def test_k_above_distinct_points_recorded(spark, degenerate_warehouse):
    result = run_segment(spark, points_config("pairs", 3), degenerate_warehouse, run_id="pairs-k3")

    assert result.k_requested == 3
    assert result.k_produced == 2
    row = run_row(spark, degenerate_warehouse, "pairs-k3")
    assert row["status"] == "succeeded"
    assert row["k_requested"] == 3
    assert row["k_produced"] == 2
    metrics = metric_values(spark, degenerate_warehouse, "pairs-k3")
    assert metrics["k_produced"][0] == 2.0
    assert metrics["k_requested"][0] == 3.0
    profiles = run_result_rows(spark, degenerate_warehouse, tables.SEGMENT_PROFILES, "pairs-k3")
    sizes = sorted(row["size"] for row in profiles if row["feature"] == "x")
    assert sizes == [2, 3]


def test_single_segment_silhouette_undefined(spark, degenerate_warehouse):
    result = run_segment(spark, points_config("flat", 2), degenerate_warehouse, run_id="flat-k2")

    assert result.k_produced == 1
    assert result.metrics["silhouette"] is None
    metrics = metric_values(spark, degenerate_warehouse, "flat-k2")
    assert metrics["silhouette"] == (None, "distance: squared_euclidean (undefined with fewer than two segments)")
    assert run_row(spark, degenerate_warehouse, "flat-k2")["k_produced"] == 1


def test_cosine_zero_vector_rejected(spark, degenerate_warehouse):
    # Standard scaling puts every row of 'flat' at the mean, so every feature vector is all zeros.
    with pytest.raises(InputError, match=r"3 row\(s\) have an all-zero feature vector after scaling \(for example "
                                         r"record keys \[.*'a'.*\]\), and cosine distance is undefined for them"):
        run_segment(spark, points_config("flat", 2, distance="cosine"), degenerate_warehouse, run_id="flat-cosine")

    row = run_row(spark, degenerate_warehouse, "flat-cosine")
    assert row["status"] == "failed"
    assert "cosine distance is undefined" in row["error"]
    for spec in tables.RUN_RESULT_TABLES:
        assert run_result_rows(spark, degenerate_warehouse, spec, "flat-cosine") == [], spec.name


# --- the ingest job with a missing source ------------------------------------------------------------


def load_job(name: str):
    spec = importlib.util.spec_from_file_location(f"bad_input_job_{name}", JOBS_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def restore_package_logging():
    """Undo configure_logging of the jobs, whose handler points at a stream that pytest closes."""
    package_logger = logging.getLogger("stratify_spark")
    saved = (package_logger.handlers[:], package_logger.level, package_logger.propagate)
    yield
    package_logger.handlers[:], package_logger.level, package_logger.propagate = saved


def test_missing_source_path_exit_code(spark, tmp_path, restore_package_logging):
    warehouse = str(tmp_path / "warehouse")
    config_path = tmp_path / "acme.yaml"
    config_path.write_text("tenant: acme\ndataset: customers\nsource: {format: csv}\ncolumns:\n"
                           "  - {name: id, type: string}\n", encoding="utf-8")
    output = io.StringIO()

    with contextlib.redirect_stdout(output):
        code = load_job("ingest").main(["--config", str(config_path), "--warehouse", warehouse,
                                        "--source", str(tmp_path / "absent.csv"), "--ingest-id", "no-file",
                                        "--log-level", "ERROR"])

    assert code == 3
    summary = json.loads(output.getvalue().strip().splitlines()[-1])
    assert summary["status"] == "failed"
    assert summary["error"].startswith("source path not found: ")
    assert "absent.csv" in summary["error"]
    assert [row["status"] for row in ingest_rows(spark, warehouse, "no-file")] == ["failed"]


# --- source columns named like Spark's own ---------------------------------------------------------------


def test_spark_named_headers_load(spark, tmp_path):
    # _metadata would hide Spark's file metadata, and _corrupt_record is the name of Spark's malformed-row marker.
    columns = [*CUSTOMER_COLUMNS, {"name": "note", "source": "_corrupt_record", "type": "string"}]
    config = config_of(columns, key={"columns": ["id"]})
    path = write(tmp_path, "odd.csv", "id,visits,_metadata,_corrupt_record\na,1,x,first\nb,2,y,second\nc,3,z\n")
    warehouse = str(tmp_path / "warehouse")

    result = run_ingest(spark, config, path, warehouse, ingest_id="ingest-odd")

    loaded = spark.read.format("delta").load(tables.dataset_path(warehouse, "acme", "customers"))
    rows = {row["id"]: (row["visits"], row["note"], row["source_file"]) for row in loaded.collect()}
    assert rows == {"a": (1, "first", f"file:{path}"), "b": (2, "second", f"file:{path}")}
    assert result.reason_counts == {"malformed_row": 1}
    assert [row["raw"]["id"] for row in quarantine_rows(spark, warehouse, "ingest-odd")] == ["c"]


def test_short_row_undeclared_column(spark, tmp_path):
    # The file's 'extra' column is not declared, and the row with too few fields must still be malformed.
    path = write(tmp_path, "short.csv", "id,visits,extra\na,1,x\nb,2\n")
    warehouse = str(tmp_path / "warehouse")

    result = run_ingest(spark, customers(), path, warehouse, ingest_id="ingest-short")

    assert data_rows(spark, warehouse) == {"a": 1}
    assert result.reason_counts == {"malformed_row": 1}
