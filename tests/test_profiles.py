"""Segment profiles: size, share and statistics in original units, checked against hand-worked numbers.

Data set (segment: key a b c), c is constant:

    0: k1 1 10 5 | k2 2 null 5 | k3 3 30 5 | k4 null 40 5
    1: k5 10 50 5 | k6 20 50 5 | k7 30 50 5 | k8 40 50 5
    2: k9 100 0 5

Overall (nulls skipped): a has mean 206 / 8 = 25.75 and squared deviations
summing to 7709.5, so sample stddev sqrt(7709.5 / 7); b has mean 280 / 8 = 35
and squared deviations summing to 2800, so sample stddev sqrt(2800 / 7) = 20;
c has stddev 0, so its z-score is undefined.
"""

from __future__ import annotations

import math

import pytest
from chispa import assert_approx_df_equality
from pyspark.sql import functions as F
from pyspark.sql import types as T

from stratify_spark.config import SegmentConfig
from stratify_spark.features import apply_feature_plan, fit_feature_plan, with_raw_features
from stratify_spark.profiles import PROFILE_COLUMNS, segment_profiles, summarize_segments

ROWS = [
    ("k1", 1.0, 10.0, 5.0, 0),
    ("k2", 2.0, None, 5.0, 0),
    ("k3", 3.0, 30.0, 5.0, 0),
    ("k4", None, 40.0, 5.0, 0),
    ("k5", 10.0, 50.0, 5.0, 1),
    ("k6", 20.0, 50.0, 5.0, 1),
    ("k7", 30.0, 50.0, 5.0, 1),
    ("k8", 40.0, 50.0, 5.0, 1),
    ("k9", 100.0, 0.0, 5.0, 2),
]
A_STDDEV = math.sqrt(7709.5 / 7)
B_STDDEV = 20.0
CENTRES = [[2.5, 25.0, 5.0], [24.0, 50.0, 5.0], [100.0, 0.0, 5.0]]

PROFILE_SCHEMA = T.StructType([
    T.StructField("segment_id", T.IntegerType()),
    T.StructField("size", T.LongType()),
    T.StructField("share", T.DoubleType()),
    T.StructField("feature", T.StringType()),
    *[T.StructField(name, T.DoubleType()) for name in PROFILE_COLUMNS[4:]],
])


@pytest.fixture(scope="module")
def assigned_and_plan(spark):
    """Return the hand-assigned feature rows and the feature plan of the data set above."""
    df = spark.createDataFrame(ROWS, "record_key string, a double, b double, c double, segment_id int")
    config = SegmentConfig.model_validate({
        "features": [{"name": "a", "missing": "mean"}, {"name": "b", "missing": "median"}, {"name": "c"}],
        "scaling": "standard",
        "algorithm": {"name": "kmeans", "k": 3},
    })
    raw = with_raw_features(df, "record_key", list(config.features))
    plan = fit_feature_plan(raw, config, "acme/customers run r1")
    segments = df.select("record_key", "segment_id")
    assigned = apply_feature_plan(raw, plan).join(segments, on="record_key").cache()
    return assigned, plan


@pytest.fixture(scope="module")
def profile_rows(assigned_and_plan):
    assigned, plan = assigned_and_plan
    rows = segment_profiles(assigned, plan, CENTRES).collect()
    return {(row["segment_id"], row["feature"]): row for row in rows}


def test_profiles_match_hand_numbers(spark, assigned_and_plan):
    assigned, plan = assigned_and_plan

    actual = segment_profiles(assigned, plan, CENTRES).select(*PROFILE_COLUMNS)

    # Quartiles are values of the column: the smallest v with at least p of the values <= v.
    expected = spark.createDataFrame([
        # segment, size, share, feature, mean, stddev, min, p25, median, p75, max, null_rate, centre,
        # overall_mean, z_score
        (0, 4, 4 / 9, "a", 2.0, 1.0, 1.0, 1.0, 2.0, 3.0, 3.0, 0.25, 2.5, 25.75, (2.0 - 25.75) / A_STDDEV),
        (0, 4, 4 / 9, "b", 80 / 3, math.sqrt(700 / 3), 10.0, 10.0, 30.0, 40.0, 40.0, 0.25, 25.0, 35.0, -5 / 12),
        (0, 4, 4 / 9, "c", 5.0, 0.0, 5.0, 5.0, 5.0, 5.0, 5.0, 0.0, 5.0, 5.0, None),
        (1, 4, 4 / 9, "a", 25.0, math.sqrt(500 / 3), 10.0, 10.0, 20.0, 30.0, 40.0, 0.0, 24.0, 25.75,
         (25.0 - 25.75) / A_STDDEV),
        (1, 4, 4 / 9, "b", 50.0, 0.0, 50.0, 50.0, 50.0, 50.0, 50.0, 0.0, 50.0, 35.0, 0.75),
        (1, 4, 4 / 9, "c", 5.0, 0.0, 5.0, 5.0, 5.0, 5.0, 5.0, 0.0, 5.0, 5.0, None),
        (2, 1, 1 / 9, "a", 100.0, None, 100.0, 100.0, 100.0, 100.0, 100.0, 0.0, 100.0, 25.75,
         (100.0 - 25.75) / A_STDDEV),
        (2, 1, 1 / 9, "b", 0.0, None, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 35.0, -1.75),
        (2, 1, 1 / 9, "c", 5.0, None, 5.0, 5.0, 5.0, 5.0, 5.0, 0.0, 5.0, 5.0, None),
    ], PROFILE_SCHEMA)
    assert_approx_df_equality(actual, expected, 1e-9, ignore_nullable=True, ignore_row_order=True)


def test_profile_size_and_share(profile_rows):
    assert profile_rows[(0, "a")]["size"] == 4
    assert profile_rows[(2, "a")]["size"] == 1
    assert abs(profile_rows[(2, "b")]["share"] - 1 / 9) <= 1e-12, profile_rows[(2, "b")]["share"]


def test_profile_skips_imputed_values(profile_rows):
    # k4 has no a; the mean policy imputes 25.75 for clustering, but the profile mean is of 1, 2, 3.
    row = profile_rows[(0, "a")]

    assert row["mean"] == 2.0
    assert row["null_rate"] == 0.25
    assert row["max"] == 3.0


def test_profile_quartiles_of_four(profile_rows):
    row = profile_rows[(1, "a")]

    assert row["p25"] == 10.0
    assert row["median"] == 20.0
    assert row["p75"] == 30.0


def test_profile_quartiles_with_null(profile_rows):
    # b of segment 0 is 10, 30, 40 after the null is skipped.
    row = profile_rows[(0, "b")]

    assert row["p25"] == 10.0
    assert row["median"] == 30.0
    assert row["p75"] == 40.0


def test_profile_single_row_segment(profile_rows):
    row = profile_rows[(2, "a")]

    assert row["stddev"] is None
    assert row["min"] == 100.0
    assert row["median"] == 100.0
    assert row["max"] == 100.0


def test_profile_z_score_values(profile_rows):
    actual = profile_rows[(2, "b")]["z_score"]

    assert abs(actual - (-1.75)) <= 1e-9, actual


def test_profile_z_score_constant_feature(profile_rows):
    assert profile_rows[(1, "c")]["z_score"] is None


def test_profile_centre_by_segment(profile_rows):
    assert profile_rows[(0, "a")]["centre"] == 2.5
    assert profile_rows[(1, "a")]["centre"] == 24.0
    assert profile_rows[(1, "b")]["centre"] == 50.0


def test_profile_without_centres(assigned_and_plan):
    assigned, plan = assigned_and_plan

    rows = segment_profiles(assigned, plan).collect()

    assert [row["centre"] for row in rows] == [None] * 9


def test_profile_shares_sum_to_one(spark, assigned_and_plan):
    assigned, plan = assigned_and_plan
    profiles = segment_profiles(assigned, plan)

    total = profiles.filter(F.col("feature") == "a").agg(F.sum("share")).first()[0]

    assert abs(total - 1.0) <= 1e-12, total


def test_summary_ranks_by_z_score(profile_rows):
    summaries = summarize_segments([row.asDict() for row in profile_rows.values()], top_features=1)

    assert [summary["segment_id"] for summary in summaries] == [0, 1, 2]
    assert [summary["size"] for summary in summaries] == [4, 4, 1]
    # Segment 0: |z(a)| = 23.75 / 33.19 = 0.72 beats |z(b)| = 0.42.
    assert summaries[0]["distinguishing"] == ["low a (mean 2, -0.72 sd)"]
    assert summaries[1]["distinguishing"] == ["high b (mean 50, +0.75 sd)"]
    assert summaries[2]["distinguishing"] == ["high a (mean 100, +2.24 sd)"]
