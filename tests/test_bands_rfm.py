"""Quantile bands, the tie rule and the RFM preset, checked against scores worked out by hand."""

from __future__ import annotations

import pytest

from stratify_spark.bands import BandCuts, compute_cut_points, quantile_levels, with_band_scores
from stratify_spark.config import BandSpec, RfmParams, parse_config
from stratify_spark.errors import InputError
from stratify_spark.rule_segment import (
    MATCH_COUNT_COLUMN, assign_segments, compile_rules, coverage_aggregates, scored_rows,
)

WHERE = "shop/customers run r1"
SCHEMA = "record_key string, recency_days int, frequency long, monetary double"

# Ten customers (key, recency_days, frequency, monetary) with ties on recency (c03, c04) and frequency.
CUSTOMERS = [
    ("c01", 1, 1, 60.00),
    ("c02", 3, 12, 5200.00),
    ("c03", 10, 5, 950.00),
    ("c04", 10, 8, 610.25),
    ("c05", 30, 2, 1800.50),
    ("c06", 45, 1, 15.00),
    ("c07", 90, 5, 410.00),
    ("c08", 120, 3, 220.00),
    ("c09", 200, 1, 180.00),
    ("c10", 365, 1, 95.00),
]

# Worked out by hand. With 10 values, the cut points of 5 bands are the 2nd, 4th, 6th and
# 8th smallest values (ceil(q * 10) for q = 0.2, 0.4, 0.6, 0.8):
#   recency   1, 3, 10, 10, 30, 45, 90, 120, 200, 365          -> 3, 10, 45, 120
#   frequency 1, 1, 1, 1, 2, 3, 5, 5, 8, 12                    -> 1, 1, 3, 5
#   monetary  15, 60, 95, 180, 220, 410, 610.25, 950, 1800.5, 5200 -> 60, 180, 410, 950
# F and M: score = 1 + cut points strictly below the value; R: score = 5 - that number.
# For example frequency 2 has the cut points 1 and 1 below it, so it scores 3 and no
# customer scores F = 2; recency 10 has only 3 below it, so both c03 and c04 score R = 4.
EXPECTED_CUT_POINTS = {
    "r_score": (3.0, 10.0, 45.0, 120.0),
    "f_score": (1.0, 1.0, 3.0, 5.0),
    "m_score": (60.0, 180.0, 410.0, 950.0),
}
EXPECTED_SCORES = {
    "c01": (5, 1, 1),
    "c02": (5, 5, 5),
    "c03": (4, 4, 4),
    "c04": (4, 5, 4),
    "c05": (3, 3, 5),
    "c06": (3, 1, 1),
    "c07": (2, 4, 3),
    "c08": (2, 3, 3),
    "c09": (1, 1, 2),
    "c10": (1, 1, 2),
}
# First matching rule of the RFM preset for each customer, by hand from the scores above.
EXPECTED_SEGMENTS = {
    "c01": "new_customers",      # also potential_loyalists
    "c02": "champions",          # also loyal_customers
    "c03": "champions",          # also loyal_customers
    "c04": "champions",          # also loyal_customers
    "c05": "need_attention",
    "c06": "about_to_sleep",
    "c07": "at_risk",            # cannot_lose_them needs m_score >= 4
    "c08": "at_risk",
    "c09": "hibernating",
    "c10": "hibernating",
}


def rfm_config(**algorithm):
    return parse_config({
        "tenant": "shop",
        "dataset": "customers",
        "source": {"format": "csv"},
        "columns": [
            {"name": "customer_id", "type": "string"},
            {"name": "recency_days", "type": "integer"},
            {"name": "frequency", "type": "long"},
            {"name": "monetary", "type": "double"},
        ],
        "key": {"columns": ["customer_id"]},
        "segment": {
            "features": [{"name": "recency_days"}, {"name": "frequency"}, {"name": "monetary"}],
            "algorithm": {"name": "rfm", **algorithm},
        },
    }, "shop.yaml")


def scores_by_key(df, cuts, eligible=None):
    rows = with_band_scores(df, cuts, eligible).collect()
    return {row["record_key"]: tuple(row[band.name] for band in cuts) for row in rows}


@pytest.fixture(scope="module")
def customers(spark):
    return spark.createDataFrame(CUSTOMERS, SCHEMA)


@pytest.fixture(scope="module")
def rfm_cuts(customers):
    return compute_cut_points(customers, RfmParams(name="rfm").band_specs(), WHERE)


# --- cut points and scores ------------------------------------------------------------------------------


def test_quantile_levels():
    assert quantile_levels(5) == [0.2, 0.4, 0.6, 0.8]
    assert quantile_levels(2) == [0.5]


def test_rfm_cut_points_by_hand(rfm_cuts):
    assert {band.name: band.cut_points for band in rfm_cuts} == EXPECTED_CUT_POINTS


def test_rfm_recency_descending(rfm_cuts):
    assert [(band.name, band.descending) for band in rfm_cuts] == [
        ("r_score", True), ("f_score", False), ("m_score", False)]


def test_rfm_scores_by_hand(customers, rfm_cuts):
    actual = scores_by_key(customers, rfm_cuts)

    for key, expected in EXPECTED_SCORES.items():
        assert actual[key] == expected, f"{key}: got (R, F, M) = {actual[key]}, expected {expected}"


def test_tie_rule_on_cut_points(spark):
    df = spark.createDataFrame([(f"k{value}", value) for value in (9.99, 10.0, 10.01, 20.0, 20.01, -1.0)],
                               "record_key string, x double")
    cuts = [BandCuts("x_band", "x", 3, False, (10.0, 20.0)),
            BandCuts("x_reversed", "x", 3, True, (10.0, 20.0))]

    actual = scores_by_key(df, cuts)

    assert actual == {"k9.99": (1, 3), "k10.0": (1, 3), "k10.01": (2, 2), "k20.0": (2, 2), "k20.01": (3, 1),
                      "k-1.0": (1, 3)}


def test_equal_values_equal_scores(spark):
    # Seven equal values out of ten make three of the four cut points 5.0, so all seven score 1.
    values = [5.0] * 7 + [6.0, 7.0, 8.0]
    df = spark.createDataFrame([(f"k{index}", value) for index, value in enumerate(values)],
                               "record_key string, x double")
    cuts = compute_cut_points(df, [BandSpec(name="x_band", feature="x", bands=5)], WHERE)

    actual = scores_by_key(df, cuts)

    assert cuts[0].cut_points == (5.0, 5.0, 5.0, 6.0)
    assert sorted(actual.values()) == [(1,)] * 7 + [(4,), (5,), (5,)]


def test_missing_and_nan_get_null_score(spark):
    df = spark.createDataFrame([("a", 1.0), ("b", None), ("c", float("nan")), ("d", 3.0)],
                               "record_key string, x double")
    cuts = compute_cut_points(df, [BandSpec(name="x_band", feature="x", bands=2)], WHERE)

    actual = scores_by_key(df, cuts)

    assert cuts[0].cut_points == (1.0,)
    assert actual == {"a": (1,), "b": (None,), "c": (None,), "d": (2,)}


def test_feature_without_values_rejected(spark):
    df = spark.createDataFrame([("a", None), ("b", None)], "record_key string, x double")

    with pytest.raises(InputError, match=r"band 'x_band' cannot be computed because column 'x' has no values"):
        compute_cut_points(df, [BandSpec(name="x_band", feature="x", bands=4)], WHERE)


def test_frozen_cut_points_keep_unchanged_score(spark, customers, rfm_cuts):
    # Five new, recent, frequent, big spenders shift every cut point; c03 does not change.
    newcomers = [("c11", 2, 20, 9000.0), ("c12", 4, 15, 7000.0), ("c13", 5, 9, 3000.0), ("c14", 6, 10, 4000.0),
                 ("c15", 8, 11, 2500.0)]
    version_two = spark.createDataFrame(CUSTOMERS + newcomers, SCHEMA)
    recomputed = compute_cut_points(version_two, RfmParams(name="rfm").band_specs(), WHERE)

    frozen_scores = scores_by_key(version_two, rfm_cuts)
    recomputed_scores = scores_by_key(version_two, recomputed)

    assert frozen_scores["c03"] == EXPECTED_SCORES["c03"]
    # By hand: 15 values put the cut points at the 3rd, 6th, 9th and 12th smallest.
    assert recomputed_scores["c03"] == (3, 3, 3)


def test_rfm_skips_customers_without_purchase(spark, customers):
    # c00 only cancelled orders: no recency, frequency 0, monetary 0.
    without_purchase = spark.createDataFrame([("c00", None, 0, 0.0)], SCHEMA)
    df = customers.unionByName(without_purchase)
    params = RfmParams(name="rfm")
    eligible = scored_rows(params)

    cuts = compute_cut_points(df.filter(eligible), params.band_specs(), WHERE)
    actual = scores_by_key(df, cuts, eligible)

    assert {band.name: band.cut_points for band in cuts} == EXPECTED_CUT_POINTS
    assert actual["c00"] == (None, None, None)
    assert actual["c01"] == EXPECTED_SCORES["c01"]


def test_rules_score_every_row():
    params = parse_config({
        "tenant": "shop", "dataset": "customers", "source": {"format": "csv"},
        "columns": [{"name": "customer_id", "type": "string"}, {"name": "monetary", "type": "double"}],
        "key": {"columns": ["customer_id"]},
        "segment": {"features": [{"name": "monetary"}], "algorithm": {
            "name": "rules", "bands": [{"name": "spend_band", "feature": "monetary", "bands": 4}],
            "segments": [{"name": "top", "when": "spend_band = 4"}]}},
    }, "shop.yaml").segment.algorithm

    assert scored_rows(params) is None


# --- the RFM preset's segments ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def assigned(customers, rfm_cuts):
    rules = compile_rules(rfm_config())
    return rules, assign_segments(with_band_scores(customers, rfm_cuts), rules)


def test_rfm_segments_by_hand(assigned):
    rules, df = assigned
    names = [rule.name for rule in rules] + ["other"]

    actual = {row["record_key"]: names[row["segment_id"]] for row in df.collect()}

    assert actual == EXPECTED_SEGMENTS


def test_rfm_match_counts_by_hand(assigned):
    rules, df = assigned

    counts = {row["record_key"]: row[MATCH_COUNT_COLUMN] for row in df.collect()}

    assert {key for key, count in counts.items() if count > 1} == {"c01", "c02", "c03", "c04"}
    assert {key for key, count in counts.items() if count == 0} == set()


def test_coverage_counts_by_hand(assigned):
    rules, df = assigned

    totals = df.agg(*coverage_aggregates(rules)).first()

    assert totals["rows"] == 10
    assert totals["multiple_matches"] == 4
    assert [totals[f"matches{rule.segment_id}"] for rule in rules] == [3, 3, 0, 2, 1, 1, 1, 1, 2]
    assert [totals[f"size{segment_id}"] for segment_id in range(len(rules) + 1)] == [3, 0, 0, 2, 1, 0, 1, 1, 2, 0]


def test_default_segment_for_null_scores(spark, rfm_cuts):
    df = spark.createDataFrame([("c99", None, 3, 100.0)], SCHEMA)
    rules = compile_rules(rfm_config())

    row = assign_segments(with_band_scores(df, rfm_cuts), rules).first()

    assert row["r_score"] is None
    assert row["segment_id"] == len(rules)
    assert row[MATCH_COUNT_COLUMN] == 0


def test_edited_rfm_rules_take_effect(customers, rfm_cuts):
    config = rfm_config(segments=[{"name": "big", "when": "m_score = 5"}], default="rest")
    rules = compile_rules(config)

    rows = assign_segments(with_band_scores(customers, rfm_cuts), rules).collect()

    assert sorted(row["record_key"] for row in rows if row["segment_id"] == 0) == ["c02", "c05"]


def test_rules_run_default_and_overlap(customers):
    config = parse_config({
        "tenant": "shop", "dataset": "customers", "source": {"format": "csv"},
        "columns": [{"name": "customer_id", "type": "string"}, {"name": "recency_days", "type": "integer"},
                    {"name": "frequency", "type": "long"}, {"name": "monetary", "type": "double"}],
        "key": {"columns": ["customer_id"]},
        "segment": {"features": [{"name": "monetary"}], "algorithm": {
            "name": "rules", "default": "rest",
            "segments": [{"name": "big", "when": "monetary > 1000"}, {"name": "recent", "when": "recency_days <= 10"}],
        }},
    }, "shop.yaml")
    rules = compile_rules(config)

    totals = assign_segments(customers, rules).agg(*coverage_aggregates(rules)).first()

    # big: c02, c05. recent: c01, c02, c03, c04, but big takes c02 first. rest: the other five.
    assert [totals["size0"], totals["size1"], totals["size2"]] == [2, 3, 5]
    assert [totals["matches0"], totals["matches1"]] == [2, 4]
    assert totals["multiple_matches"] == 1
