"""End to end: transactions CSV -> ingest -> entity features -> RFM and rule runs in a Delta warehouse."""

from __future__ import annotations

import datetime as dt
import shutil

import pytest
from pyspark.sql import functions as F

from stratify_spark import tables
from stratify_spark.config import parse_config, with_cut_points_from
from stratify_spark.entity_build import run_entity_build
from stratify_spark.errors import ConfigError
from stratify_spark.ingest import run_ingest
from stratify_spark.rule_segment import load_cut_points
from stratify_spark.segment import run_segment

REFERENCE_DATE = dt.date(2011, 12, 10)

# The hand-made customers of test_bands_rfm.py (key, recency_days, frequency, monetary), turned
# into transactions below, with the R, F, M scores and preset segments worked out by hand there.
CUSTOMERS = [
    ("c01", 1, 1, "60.00"), ("c02", 3, 12, "5200.00"), ("c03", 10, 5, "950.00"), ("c04", 10, 8, "610.25"),
    ("c05", 30, 2, "1800.50"), ("c06", 45, 1, "15.00"), ("c07", 90, 5, "410.00"), ("c08", 120, 3, "220.00"),
    ("c09", 200, 1, "180.00"), ("c10", 365, 1, "95.00"),
]
EXPECTED_SCORES = {
    "c01": (5, 1, 1), "c02": (5, 5, 5), "c03": (4, 4, 4), "c04": (4, 5, 4), "c05": (3, 3, 5),
    "c06": (3, 1, 1), "c07": (2, 4, 3), "c08": (2, 3, 3), "c09": (1, 1, 2), "c10": (1, 1, 2),
}
EXPECTED_SEGMENTS = {
    "c01": "new_customers", "c02": "champions", "c03": "champions", "c04": "champions",
    "c05": "need_attention", "c06": "about_to_sleep", "c07": "at_risk", "c08": "at_risk",
    "c09": "hibernating", "c10": "hibernating",
}
NEWCOMERS = [("c11", 2, 20, "9000.00"), ("c12", 4, 15, "7000.00"), ("c13", 5, 9, "3000.00"),
             ("c14", 6, 10, "4000.00"), ("c15", 8, 11, "2500.00")]

TRANSACTIONS_CONFIG = {
    "tenant": "shop",
    "dataset": "transactions",
    "source": {"format": "csv"},
    "columns": [
        {"name": "invoice_no", "type": "string", "required": True},
        {"name": "quantity", "type": "integer"},
        {"name": "invoice_date", "type": "timestamp", "format": "yyyy-MM-dd HH:mm:ss"},
        {"name": "unit_price", "type": "decimal(10,3)"},
        {"name": "customer_id", "type": "string"},
    ],
    "ingest": {"mode": "append"},
}


def customers_config(algorithm: dict) -> dict:
    return {
        "tenant": "shop",
        "dataset": "customers",
        "entity_features": {
            "source_dataset": "transactions", "entity_key": "customer_id", "order_id": "invoice_no",
            "order_time": "invoice_date", "amount": "quantity * unit_price", "reference_date": REFERENCE_DATE,
            "exclude": {"cancellation_order_prefixes": ["C"], "cancellation_negative_columns": ["quantity"]},
        },
        "segment": {"features": [{"name": "recency_days"}, {"name": "frequency"}, {"name": "monetary"}],
                    "algorithm": algorithm},
    }


def transaction_lines(customers) -> list[str]:
    """Return CSV lines that give each customer its recency, frequency and monetary value.

    A customer with frequency f has f one-line invoices on consecutive days. All but
    the last cost 1.000, and the last one brings the total to the monetary value.
    """
    lines = []
    for key, recency, frequency, monetary in customers:
        last = REFERENCE_DATE - dt.timedelta(days=recency)
        for number in range(frequency):
            day = last - dt.timedelta(days=frequency - 1 - number)
            price = "1.000" if number < frequency - 1 else str(float(monetary) - (frequency - 1))
            lines.append(f"{key}-{number},1,{day} 10:00:00,{price},{key}")
    return lines


@pytest.fixture(scope="module")
def warehouse_runs(spark, tmp_path_factory):
    """Ingest two versions of the transactions, build customers after each, and run RFM on each version."""
    root = tmp_path_factory.mktemp("rule-runs")
    warehouse = str(root / "warehouse")
    transactions = parse_config(TRANSACTIONS_CONFIG, "transactions.yaml")
    rfm = parse_config(customers_config({"name": "rfm"}), "customers.yaml")
    header = "invoice_no,quantity,invoice_date,unit_price,customer_id"
    excluded = [
        "X1,1,2011-12-01 10:00:00,5.000,",                  # missing_entity_key
        "Cc01-0,-1,2011-12-09 10:00:00,60.000,c01",        # cancellation
        "Z1,1,2011-12-07 10:00:00,0.000,c02",              # non_positive_amount
        "L1,1,2011-12-10 10:00:00,99.000,c05",             # after_reference_date
        "Cc99-0,-2,2011-11-01 10:00:00,7.500,c99",         # cancellation: c99 never bought anything
    ]
    first = root / "first.csv"
    first.write_text("\n".join([header, *transaction_lines(CUSTOMERS), *excluded]) + "\n")
    second = root / "second.csv"
    second.write_text("\n".join([header, *transaction_lines(NEWCOMERS)]) + "\n")

    run_ingest(spark, transactions, str(first), warehouse)
    first_build = run_entity_build(spark, rfm, warehouse, build_id="build-1")
    first_run = run_segment(spark, rfm, warehouse, run_id="rfm-v1")

    run_ingest(spark, transactions, str(second), warehouse)
    second_build = run_entity_build(spark, rfm, warehouse, build_id="build-2")
    frozen = with_cut_points_from(rfm, "customers.yaml", "rfm-v1")
    frozen_run = run_segment(spark, frozen, warehouse, run_id="rfm-v2-frozen")
    return {"warehouse": warehouse, "config": rfm, "builds": (first_build, second_build),
            "runs": (first_run, frozen_run)}


def read(spark, warehouse: str, spec, run_id: str | None = None):
    df = spark.read.format("delta").load(tables.table_path(warehouse, spec)).filter(F.col("tenant") == "shop")
    return df.filter(F.col("run_id") == run_id) if run_id else df


def scores(spark, warehouse: str, run_id: str) -> dict[str, tuple]:
    rows = read(spark, warehouse, tables.RUN_SCORES, run_id).collect()
    by_key: dict[str, dict] = {}
    for row in rows:
        by_key.setdefault(row["record_key"], {})[row["band"]] = row["score"]
    return {key: (bands["r_score"], bands["f_score"], bands["m_score"]) for key, bands in by_key.items()}


# --- entity features ----------------------------------------------------------------------------------


def test_build_counts_exclusions(warehouse_runs):
    first_build, _ = warehouse_runs["builds"]

    assert first_build.exclusion_counts == {"missing_entity_key": 1, "cancellation": 2, "non_positive_amount": 1,
                                            "after_reference_date": 1}
    assert first_build.rows_read == 44
    assert first_build.rows_used == 39
    assert first_build.entities == 11
    assert first_build.entities_without_purchase == 1


def test_build_recorded(spark, warehouse_runs):
    rows = read(spark, warehouse_runs["warehouse"], tables.ENTITY_BUILDS).orderBy("build_id").collect()

    assert [(row["build_id"], row["status"], row["source_version"], row["data_version"]) for row in rows] == [
        ("build-1", "succeeded", 0, 0), ("build-2", "succeeded", 1, 1)]
    assert rows[0]["reference_date"] == REFERENCE_DATE
    assert rows[1]["entities"] == 16


# --- the RFM run --------------------------------------------------------------------------------------


def test_scores_from_transactions_by_hand(spark, warehouse_runs):
    actual = scores(spark, warehouse_runs["warehouse"], "rfm-v1")

    # c99 has no purchase, so it gets no score and takes no part in the cut points.
    assert actual == {**EXPECTED_SCORES, "c99": (None, None, None)}


def test_each_customer_in_one_segment(spark, warehouse_runs):
    assignments = read(spark, warehouse_runs["warehouse"], tables.ASSIGNMENTS, "rfm-v1")

    keys = [row["record_key"] for row in assignments.collect()]

    assert sorted(keys) == sorted([*EXPECTED_SEGMENTS, "c99"])


def test_segments_by_hand(spark, warehouse_runs):
    warehouse = warehouse_runs["warehouse"]
    names = read(spark, warehouse, tables.RUN_RULES, "rfm-v1").select("segment_id", "segment_name")
    assignments = read(spark, warehouse, tables.ASSIGNMENTS, "rfm-v1").join(names, "segment_id")

    actual = {row["record_key"]: row["segment_name"] for row in assignments.collect()}

    assert actual == {**EXPECTED_SEGMENTS, "c99": "other"}


def test_assignments_have_no_distance(spark, warehouse_runs):
    assignments = read(spark, warehouse_runs["warehouse"], tables.ASSIGNMENTS, "rfm-v1")

    assert assignments.filter(F.col("distance").isNotNull()).count() == 0


def test_rules_stored_in_order(spark, warehouse_runs):
    rows = read(spark, warehouse_runs["warehouse"], tables.RUN_RULES, "rfm-v1").orderBy("segment_id").collect()

    assert [row["segment_name"] for row in rows] == [
        "champions", "loyal_customers", "cannot_lose_them", "at_risk", "new_customers", "potential_loyalists",
        "need_attention", "about_to_sleep", "hibernating", "other"]
    assert rows[0]["rule"] == "r_score >= 4 and f_score >= 4 and m_score >= 4"
    assert (rows[-1]["rule"], rows[-1]["is_default"]) == (None, True)


def test_coverage_metrics(spark, warehouse_runs):
    rows = read(spark, warehouse_runs["warehouse"], tables.RUN_METRICS, "rfm-v1").collect()
    metrics = {row["metric"]: row["value"] for row in rows}

    assert metrics["rows_input"] == 11
    assert metrics["rows_multiple_matches"] == 4
    assert metrics["rows_default"] == 1
    assert metrics["rows_matching.champions"] == 3
    assert metrics["rows_matching.loyal_customers"] == 3
    assert metrics["rows_assigned.loyal_customers"] == 0
    assert metrics["rows_matching.potential_loyalists"] == 1
    assert metrics["rows_assigned.hibernating"] == 2
    assert metrics["k_produced"] == 7


def test_profiles_show_rule_not_centre(spark, warehouse_runs):
    profiles = read(spark, warehouse_runs["warehouse"], tables.SEGMENT_PROFILES, "rfm-v1")

    champions = {row["feature"]: row for row in profiles.filter(F.col("segment_name") == "champions").collect()}

    assert sorted(champions) == ["f_score", "frequency", "m_score", "monetary", "r_score", "recency_days"]
    assert champions["monetary"]["rule"] == "r_score >= 4 and f_score >= 4 and m_score >= 4"
    assert champions["monetary"]["centre"] is None
    assert champions["monetary"]["size"] == 3
    assert abs(champions["monetary"]["mean"] - (5200.0 + 950.0 + 610.25) / 3) < 1e-9, champions["monetary"]["mean"]
    assert champions["r_score"]["min"] == 4.0


def test_run_ledger_row(spark, warehouse_runs):
    row = read(spark, warehouse_runs["warehouse"], tables.RUNS, "rfm-v1").first()

    assert (row["status"], row["algorithm"], row["data_version"]) == ("succeeded", "rfm", 0)
    assert (row["k_requested"], row["k_produced"], row["rows_input"]) == (10, 7, 11)
    assert '"r_score >= 4 and f_score >= 4 and m_score >= 4"' in row["parameters"]


def test_cut_points_stored(spark, warehouse_runs):
    rows = read(spark, warehouse_runs["warehouse"], tables.RUN_CUT_POINTS, "rfm-v1").collect()

    stored = {row["band"]: (row["feature"], row["bands"], row["descending"], row["cut_points"], row["source_run_id"])
              for row in rows}

    assert stored == {
        "r_score": ("recency_days", 5, True, [3.0, 10.0, 45.0, 120.0], None),
        "f_score": ("frequency", 5, False, [1.0, 1.0, 3.0, 5.0], None),
        "m_score": ("monetary", 5, False, [60.0, 180.0, 410.0, 950.0], None),
    }


# --- frozen cut points across data versions ----------------------------------------------------------


def test_frozen_run_reads_new_version(warehouse_runs):
    first_run, frozen_run = warehouse_runs["runs"]

    assert (first_run.data_version, frozen_run.data_version) == (0, 1)
    assert frozen_run.cut_points_from == "rfm-v1"
    assert frozen_run.rows_input == 16


def test_frozen_cut_points_copied(spark, warehouse_runs):
    rows = read(spark, warehouse_runs["warehouse"], tables.RUN_CUT_POINTS, "rfm-v2-frozen").collect()

    assert {row["band"]: row["cut_points"] for row in rows} == {
        "r_score": [3.0, 10.0, 45.0, 120.0], "f_score": [1.0, 1.0, 3.0, 5.0], "m_score": [60.0, 180.0, 410.0, 950.0]}
    assert {row["source_run_id"] for row in rows} == {"rfm-v1"}


def test_frozen_scores_unchanged_customers(spark, warehouse_runs):
    # Recomputed on version 1, the cut points move and c03 scores (3, 3, 3) instead of (4, 4, 4);
    # test_bands_rfm.py works that out by hand.
    warehouse = warehouse_runs["warehouse"]
    before = scores(spark, warehouse, "rfm-v1")
    after = scores(spark, warehouse, "rfm-v2-frozen")

    for key, expected in before.items():
        assert after[key] == expected, f"{key}: frozen run scored {after[key]}, the first run {expected}"


# --- failures and other rule runs ---------------------------------------------------------------------


def test_unknown_cut_points_run_fails(spark, warehouse_runs):
    warehouse = warehouse_runs["warehouse"]
    config = with_cut_points_from(warehouse_runs["config"], "customers.yaml", "rfm-missing")

    with pytest.raises(ConfigError, match=r"cut_points_from 'rfm-missing' cannot be used because no such run exists"):
        run_segment(spark, config, warehouse, run_id="rfm-bad")

    assert read(spark, warehouse, tables.RUNS, "rfm-bad").first()["status"] == "failed"
    assert read(spark, warehouse, tables.ASSIGNMENTS, "rfm-bad").count() == 0


def test_cut_points_of_other_bands_rejected(spark, warehouse_runs):
    config = parse_config(customers_config({"name": "rfm", "bands": 4,
                                            "segments": [{"name": "top", "when": "m_score = 4"}]}), "customers.yaml")
    specs = config.segment.algorithm.band_specs()

    with pytest.raises(ConfigError, match=r"run 'rfm-v1' stored r_score = bands\(recency_days, 5, descending\) for "
                                          r"band 'r_score', but this run needs r_score = bands\(recency_days, 4, "
                                          r"descending\)"):
        load_cut_points(spark, warehouse_runs["warehouse"], config, "rfm-v1", specs, "shop/customers run r9")


def test_cut_points_of_other_data_set_not_found(spark, warehouse_runs):
    config = parse_config({**customers_config({"name": "rfm"}), "dataset": "shoppers"}, "shoppers.yaml")
    specs = config.segment.algorithm.band_specs()

    with pytest.raises(ConfigError, match=r"cut_points_from 'rfm-v1' cannot be used because no such run exists for "
                                          r"shop/shoppers"):
        load_cut_points(spark, warehouse_runs["warehouse"], config, "rfm-v1", specs, "shop/shoppers run r9")


# --- one run id used by both kinds of run -------------------------------------------------------------


def run_count(spark, warehouse: str, spec, run_id: str) -> int:
    path = tables.table_path(warehouse, spec)
    if not tables.is_delta_table(spark, path):
        return 0
    return read(spark, warehouse, spec, run_id).count()


def test_reused_run_id_clears_other_kind(spark, warehouse_runs, tmp_path):
    warehouse = str(tmp_path / "warehouse")
    shutil.copytree(warehouse_runs["warehouse"], warehouse)
    rfm = warehouse_runs["config"]
    kmeans_config = customers_config({"name": "kmeans", "k": 2, "seed": 1})
    # c99 has no purchase, so no recency: the clustering run drops it.
    kmeans_config["segment"]["features"] = [{"name": name, "missing": "drop"}
                                            for name in ("recency_days", "frequency", "monetary")]
    kmeans = parse_config(kmeans_config, "customers.yaml")
    rule_only = (tables.RUN_RULES, tables.RUN_CUT_POINTS, tables.RUN_SCORES)
    # 10 rules, 3 bands, and 3 scores for each of the 16 customers of build-2 (c99 included, with null scores).

    run_segment(spark, rfm, warehouse, run_id="shared-id")
    assert [run_count(spark, warehouse, spec, "shared-id") for spec in rule_only] == [10, 3, 48]
    assert run_count(spark, warehouse, tables.RUN_MODELS, "shared-id") == 0

    run_segment(spark, kmeans, warehouse, run_id="shared-id")
    assert [run_count(spark, warehouse, spec, "shared-id") for spec in rule_only] == [0, 0, 0]
    assert run_count(spark, warehouse, tables.RUN_MODELS, "shared-id") == 1

    run_segment(spark, rfm, warehouse, run_id="shared-id")
    assert [run_count(spark, warehouse, spec, "shared-id") for spec in rule_only] == [10, 3, 48]
    assert run_count(spark, warehouse, tables.RUN_MODELS, "shared-id") == 0
