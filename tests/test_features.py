"""Feature preparation: missing-value policies, log1p, scaling and the way back to original units."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest
from chispa import assert_df_equality
from pyspark.ml.linalg import Vectors
from pyspark.sql import types as T

from stratify_spark.config import SegmentConfig
from stratify_spark.errors import InputError
from stratify_spark.features import apply_feature_plan, fit_feature_plan, with_raw_features

TOLERANCE = 1e-9


def segment_config(features: list[dict], scaling: str = "standard") -> SegmentConfig:
    return SegmentConfig.model_validate({
        "features": features, "scaling": scaling, "algorithm": {"name": "kmeans", "k": 2},
    })


def one_feature_df(spark, values: list):
    """Return rows k1, k2, ... with one double column `x` holding `values`."""
    rows = [(f"k{number}", value) for number, value in enumerate(values, start=1)]
    return spark.createDataFrame(rows, "record_key string, x double")


def prepare(spark, values: list, feature: dict, scaling: str = "standard"):
    """Fit and apply a plan for one feature `x`; return the plan and {key: scaled value}."""
    config = segment_config([{"name": "x", **feature}], scaling)
    raw = with_raw_features(one_feature_df(spark, values), "record_key", list(config.features))
    plan = fit_feature_plan(raw, config, "acme/customers run r1")
    scaled = {row["record_key"]: row["_s0"] for row in apply_feature_plan(raw, plan).collect()}
    return plan, scaled


def assert_close(actual: float, expected: float, label: str) -> None:
    assert actual is not None, f"{label}: got None, expected {expected}"
    assert abs(actual - expected) <= TOLERANCE, f"{label}: got {actual!r}, expected {expected!r}"


# --- raw features -----------------------------------------------------------------------------------


def test_raw_features_as_double(spark):
    schema = "record_key string, spend decimal(10,2), orders long, ratio double, region string"
    df = spark.createDataFrame([
        ("a", Decimal("1234.56"), 3, 0.5, "north"),
        ("b", None, 9223372036854775807, float("nan"), "south"),
        ("c", Decimal("-0.01"), None, None, None),
    ], schema)
    config = segment_config([{"name": "spend"}, {"name": "orders"}, {"name": "ratio"}])

    actual = with_raw_features(df, "record_key", list(config.features))

    expected = spark.createDataFrame([
        ("a", 1234.56, 3.0, 0.5),
        ("b", None, 9.223372036854776e18, None),
        ("c", -0.01, None, None),
    ], "record_key string, _x0 double, _x1 double, _x2 double")
    assert_df_equality(actual, expected, ignore_nullable=True, ignore_row_order=True)


def test_raw_features_missing_column(spark):
    config = segment_config([{"name": "spend"}])

    with pytest.raises(InputError, match=r"feature column\(s\) \['spend'\] not found in the data set"):
        with_raw_features(one_feature_df(spark, [1.0]), "record_key", list(config.features))


# --- missing-value policies -------------------------------------------------------------------------


def test_missing_drop_counts_rows(spark):
    plan, scaled = prepare(spark, [1.0, None, 3.0, float("nan"), 5.0], {"missing": "drop"}, scaling="none")

    assert plan.rows_input == 5
    assert plan.rows_dropped == 2
    assert plan.rows_used == 3
    assert plan.features[0].null_count == 2
    assert scaled == {"k1": 1.0, "k3": 3.0, "k5": 5.0}


def test_missing_drop_any_feature(spark):
    df = spark.createDataFrame([
        ("k1", 1.0, 10.0, None),
        ("k2", None, 20.0, 1.0),
        ("k3", 3.0, None, 2.0),
        ("k4", 4.0, 40.0, 3.0),
    ], "record_key string, a double, b double, c double")
    config = segment_config([{"name": "a", "missing": "drop"}, {"name": "b", "missing": "drop"},
                             {"name": "c", "missing": "mean"}], scaling="none")
    raw = with_raw_features(df, "record_key", list(config.features))

    plan = fit_feature_plan(raw, config, "acme/customers run r1")
    kept_keys = sorted(row["record_key"] for row in apply_feature_plan(raw, plan).collect())

    assert plan.rows_dropped == 2
    assert kept_keys == ["k1", "k4"]


def test_missing_mean_imputes(spark):
    plan, scaled = prepare(spark, [1.0, 2.0, 3.0, 10.0, None], {"missing": "mean"}, scaling="none")

    assert plan.features[0].impute_value == 4.0
    assert plan.features[0].mean == 4.0
    assert plan.rows_dropped == 0
    assert scaled == {"k1": 1.0, "k2": 2.0, "k3": 3.0, "k4": 10.0, "k5": 4.0}


def test_missing_median_imputes(spark):
    # percentile_approx returns a value of the column: the smallest v with at least half the values <= v.
    plan, scaled = prepare(spark, [1.0, 2.0, 3.0, 10.0, float("nan")], {"missing": "median"}, scaling="none")

    assert plan.features[0].impute_value == 2.0
    assert scaled == {"k1": 1.0, "k2": 2.0, "k3": 3.0, "k4": 10.0, "k5": 2.0}


def test_null_flag_column(spark):
    config = segment_config([{"name": "x", "missing": "mean"}], scaling="none")
    raw = with_raw_features(one_feature_df(spark, [1.0, None, float("nan")]), "record_key", list(config.features))

    rows = apply_feature_plan(raw, fit_feature_plan(raw, config, "w")).collect()

    assert {row["record_key"]: row["_is_null0"] for row in rows} == {"k1": False, "k2": True, "k3": True}


def test_missing_fail_names_feature(spark):
    with pytest.raises(InputError, match=r"acme/customers run r1: feature 'x' has 2 missing \(null or NaN\) "
                       r"value\(s\) and its missing policy is 'fail'"):
        prepare(spark, [1.0, None, 3.0, float("nan")], {"missing": "fail"})


def test_missing_fail_without_nulls(spark):
    plan, scaled = prepare(spark, [1.0, 3.0], {"missing": "fail"}, scaling="none")

    assert plan.features[0].null_count == 0
    assert scaled == {"k1": 1.0, "k2": 3.0}


def test_all_values_missing_rejected(spark):
    with pytest.raises(InputError, match=r"feature 'x' has no values at all"):
        prepare(spark, [None, float("nan")], {"missing": "mean"})


def test_all_rows_dropped_rejected(spark):
    df = spark.createDataFrame([("k1", None, 1.0), ("k2", 2.0, None)], "record_key string, a double, b double")
    config = segment_config([{"name": "a", "missing": "drop"}, {"name": "b", "missing": "drop"}])
    raw = with_raw_features(df, "record_key", list(config.features))

    with pytest.raises(InputError, match=r"every row has a missing feature value under the 'drop' policy"):
        fit_feature_plan(raw, config, "w")


def test_no_rows_rejected(spark):
    config = segment_config([{"name": "x"}])
    raw = with_raw_features(spark.createDataFrame([], "record_key string, x double"), "record_key",
                            list(config.features))

    with pytest.raises(InputError, match=r"w: the data set has no rows to segment"):
        fit_feature_plan(raw, config, "w")


# --- log1p --------------------------------------------------------------------------------------------


def test_log1p_negative_rejected(spark):
    with pytest.raises(InputError, match=r"feature 'x' has negative values \(minimum -0\.5\) and log1p needs "
                       r"values >= 0"):
        prepare(spark, [0.0, -0.5, 3.0, None], {"missing": "mean", "log1p": True})


def test_log1p_values(spark):
    plan, scaled = prepare(spark, [0.0, math.e - 1, None], {"missing": "drop", "log1p": True}, scaling="none")

    assert_close(scaled["k1"], 0.0, "log1p(0)")
    assert_close(scaled["k2"], 1.0, "log1p(e - 1)")
    assert plan.rows_dropped == 1


# --- scaling ----------------------------------------------------------------------------------------


def test_standard_scaling_values(spark):
    # Imputed values 2, 4, 4, 4, 5, 5, 7, 9, 5: mean 5, sample variance 32 / 8 = 4, so stddev 2.
    values = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0, None]
    plan, scaled = prepare(spark, values, {"missing": "mean"}, scaling="standard")

    assert_close(plan.features[0].shift, 5.0, "shift")
    assert_close(plan.features[0].divisor, 2.0, "divisor")
    expected = {"k1": -1.5, "k2": -0.5, "k3": -0.5, "k4": -0.5, "k5": 0.0, "k6": 0.0, "k7": 1.0, "k8": 2.0,
                "k9": 0.0}
    for key, value in expected.items():
        assert_close(scaled[key], value, f"scaled {key}")


def test_standard_scaling_sample_stddev(spark):
    # 1, 2, 3, 4: mean 2.5, sample variance 5 / 3.
    plan, scaled = prepare(spark, [1.0, 2.0, 3.0, 4.0], {}, scaling="standard")

    stddev = math.sqrt(5 / 3)
    assert_close(plan.features[0].divisor, stddev, "divisor")
    assert_close(scaled["k1"], -1.5 / stddev, "scaled k1")
    assert_close(scaled["k4"], 1.5 / stddev, "scaled k4")


def test_minmax_scaling_values(spark):
    # Median of 10, 20, 40 is 20, imputed for k4; min 10 and max 40 give (x - 10) / 30.
    plan, scaled = prepare(spark, [10.0, 20.0, 40.0, None], {"missing": "median"}, scaling="minmax")

    assert_close(plan.features[0].shift, 10.0, "shift")
    assert_close(plan.features[0].divisor, 30.0, "divisor")
    assert_close(scaled["k1"], 0.0, "scaled k1")
    assert_close(scaled["k2"], 1 / 3, "scaled k2")
    assert_close(scaled["k3"], 1.0, "scaled k3")
    assert_close(scaled["k4"], 1 / 3, "scaled k4")


def test_minmax_after_log1p(spark):
    # log1p gives 0, 1, 2, so min 0 and max 2.
    values = [0.0, math.e - 1, math.e ** 2 - 1]
    plan, scaled = prepare(spark, values, {"log1p": True}, scaling="minmax")

    assert_close(plan.features[0].shift, 0.0, "shift")
    assert_close(plan.features[0].divisor, 2.0, "divisor")
    assert_close(scaled["k2"], 0.5, "scaled k2")
    assert_close(scaled["k3"], 1.0, "scaled k3")


def test_no_scaling_keeps_values(spark):
    plan, scaled = prepare(spark, [-3.0, 0.0, 1e12], {}, scaling="none")

    assert plan.features[0].shift == 0.0
    assert plan.features[0].divisor == 1.0
    assert scaled == {"k1": -3.0, "k2": 0.0, "k3": 1e12}


@pytest.mark.parametrize("scaling", ["standard", "minmax"])
def test_constant_column_scaled_to_zero(spark, scaling):
    plan, scaled = prepare(spark, [7.0, 7.0, None, 7.0], {"missing": "mean"}, scaling=scaling)

    assert plan.features[0].divisor == 1.0
    assert plan.features[0].shift == 7.0
    assert scaled == {"k1": 0.0, "k2": 0.0, "k3": 0.0, "k4": 0.0}


def test_single_row_scaled_to_zero(spark):
    plan, scaled = prepare(spark, [42.0], {}, scaling="standard")

    assert plan.features[0].divisor == 1.0
    assert scaled == {"k1": 0.0}


def test_feature_vector_matches_columns(spark):
    df = spark.createDataFrame([("k1", 1.0, 100.0), ("k2", 3.0, None), ("k3", 5.0, 300.0)],
                               "record_key string, a double, b double")
    config = segment_config([{"name": "a"}, {"name": "b", "missing": "mean"}], scaling="minmax")
    raw = with_raw_features(df, "record_key", list(config.features))

    rows = apply_feature_plan(raw, fit_feature_plan(raw, config, "w")).collect()
    vectors = {row["record_key"]: row["features"] for row in rows}

    # a: (a - 1) / 4; b: mean 200 imputed for k2, then (b - 100) / 200.
    assert vectors == {
        "k1": Vectors.dense([0.0, 0.0]),
        "k2": Vectors.dense([0.5, 0.5]),
        "k3": Vectors.dense([1.0, 1.0]),
    }


def test_plan_keeps_original_stats(spark):
    plan, _ = prepare(spark, [1.0, 2.0, 6.0, None], {"missing": "median", "log1p": True})

    stats = plan.features[0]
    assert stats.null_count == 1
    assert_close(stats.mean, 3.0, "mean")
    assert_close(stats.stddev, math.sqrt(7.0), "stddev")
    assert stats.minimum == 1.0
    assert stats.impute_value == 2.0
    assert plan.names == ["x"]
    assert plan.scaling == "standard"


# --- back to original units -------------------------------------------------------------------------


def test_original_units_standard(spark):
    df = spark.createDataFrame([
        ("k1", 0.0, 10.0),
        ("k2", math.e - 1, 20.0),
        ("k3", math.e ** 2 - 1, 30.0),
    ], "record_key string, a double, b double")
    config = segment_config([{"name": "a", "log1p": True}, {"name": "b"}], scaling="standard")
    raw = with_raw_features(df, "record_key", list(config.features))
    plan = fit_feature_plan(raw, config, "w")

    # a: log1p gives 0, 1, 2 with mean 1 and sample stddev 1; b: mean 20 and sample stddev 10.
    centre = plan.to_original_units([0.5, -1.5])

    assert_close(centre[0], math.expm1(1.5), "feature a")
    assert_close(centre[1], 5.0, "feature b")


def test_original_units_minmax(spark):
    plan, _ = prepare(spark, [0.0, math.e - 1, math.e ** 2 - 1], {"log1p": True}, scaling="minmax")

    assert_close(plan.to_original_units([0.0])[0], 0.0, "minimum")
    assert_close(plan.to_original_units([0.5])[0], math.e - 1, "middle")
    assert_close(plan.to_original_units([1.0])[0], math.e ** 2 - 1, "maximum")


def test_original_units_round_trip(spark):
    values = [3.0, 0.0, 250.5, 12.0, None]
    config = segment_config([{"name": "x", "missing": "median", "log1p": True}], scaling="standard")
    raw = with_raw_features(one_feature_df(spark, values), "record_key", list(config.features))
    plan = fit_feature_plan(raw, config, "w")

    rows = apply_feature_plan(raw, plan).collect()
    restored = {row["record_key"]: plan.to_original_units([row["_s0"]])[0] for row in rows}

    # k5 was missing, so it comes back as the median of 0, 3, 12, 250.5.
    expected = {"k1": 3.0, "k2": 0.0, "k3": 250.5, "k4": 12.0, "k5": 3.0}
    for key, value in expected.items():
        assert_close(restored[key], value, f"restored {key}")


def test_original_units_constant_column(spark):
    plan, _ = prepare(spark, [7.0, 7.0], {}, scaling="standard")

    assert plan.to_original_units([0.0]) == [7.0]
