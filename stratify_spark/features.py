"""Feature preparation for clustering: missing values, log1p, scaling and the feature vector.

`fit_feature_plan` computes, in two aggregation passes, everything the
transformation needs (imputation values, scaling statistics, overall means).
`apply_feature_plan` is then a pure, per-row DataFrame transformation, and the
plan can turn centres in scaled space back into original units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from pyspark.ml.feature import VectorAssembler
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from stratify_spark.config import FeatureSpec, SegmentConfig
from stratify_spark.errors import InputError

FEATURES_VECTOR = "features"


def raw_feature(index: int) -> str:
    """Name of the feature in original units, with NaN turned into null."""
    return f"_x{index}"


def scaled_feature(index: int) -> str:
    """Name of the feature after imputation, log1p and scaling."""
    return f"_s{index}"


def is_null_feature(index: int) -> str:
    return f"_is_null{index}"


@dataclass(frozen=True)
class FeatureStats:
    """Statistics of one feature in original units, nulls excluded.

    `null_count` and `impute_value` are taken over all input rows; `mean`, `stddev`
    and `minimum` over the rows that are segmented (after the 'drop' policy).
    """

    spec: FeatureSpec
    null_count: int
    mean: Optional[float]
    stddev: Optional[float]
    minimum: Optional[float]
    impute_value: Optional[float]
    shift: float
    divisor: float


@dataclass(frozen=True)
class FeaturePlan:
    """Everything needed to turn rows into scaled feature vectors and centres back into units."""

    features: tuple[FeatureStats, ...]
    scaling: str
    rows_input: int
    rows_dropped: int

    @property
    def names(self) -> list[str]:
        return [stats.spec.name for stats in self.features]

    @property
    def rows_used(self) -> int:
        return self.rows_input - self.rows_dropped

    def to_scaled(self, centre: dict[str, float]) -> Optional[list[float]]:
        """Map a centre given in original units by feature name into this plan's scaled space.

        Returns None when the features differ from this plan's, or a value lies outside log1p's domain.
        """
        if set(centre) != set(self.names):
            return None
        values = []
        for stats in self.features:
            value = centre[stats.spec.name]
            if stats.spec.log1p:
                if value is None or value <= -1:
                    return None
                value = math.log1p(value)
            values.append((value - stats.shift) / stats.divisor)
        return values

    def to_model(self) -> dict:
        """Return the transforms as plain data, for the run_models table and for scoring without refitting."""
        return {
            "scaling": self.scaling,
            "features": [
                {"name": stats.spec.name, "log1p": stats.spec.log1p, "missing": stats.spec.missing,
                 "impute_value": stats.impute_value, "shift": stats.shift, "divisor": stats.divisor}
                for stats in self.features
            ],
        }

    def to_original_units(self, centre: list[float]) -> list[float]:
        """Map a centre from scaled space back to original units (undo scaling, then log1p)."""
        values = []
        for stats, value in zip(self.features, centre):
            unscaled = value * stats.divisor + stats.shift
            values.append(math.expm1(unscaled) if stats.spec.log1p else unscaled)
        return values


def _as_double(df: DataFrame, name: str) -> Column:
    value = F.col(name).cast("double")
    return F.when(F.isnan(value), F.lit(None).cast("double")).otherwise(value)


def with_raw_features(df: DataFrame, key_column: str, features: list[FeatureSpec]) -> DataFrame:
    """Select the key and each feature as a double in original units, NaN counted as missing."""
    missing = [feature.name for feature in features if feature.name not in df.columns]
    if missing:
        raise InputError(f"feature column(s) {missing} not found in the data set; columns present: {df.columns}")
    return df.select(
        F.col(key_column),
        *[_as_double(df, feature.name).alias(raw_feature(index)) for index, feature in enumerate(features)],
    )


def _transformed(index: int, stats_spec: FeatureSpec, impute_value: Optional[float]) -> Column:
    value = F.col(raw_feature(index))
    if impute_value is not None:
        value = F.coalesce(value, F.lit(impute_value))
    if stats_spec.log1p:
        value = F.log1p(value)
    return value


def fit_feature_plan(raw: DataFrame, config: SegmentConfig, where: str) -> FeaturePlan:
    """Compute imputation values and scaling statistics; fail early on a policy the data breaks.

    `raw` comes from `with_raw_features`. `where` names the data set in errors.
    """
    features = config.features
    drop_indexes = [index for index, feature in enumerate(features) if feature.missing == "drop"]
    any_dropped_null = F.lit(False)
    for index in drop_indexes:
        any_dropped_null = any_dropped_null | F.col(raw_feature(index)).isNull()

    # Pass 1: counts, raw moments and medians in original units.
    aggregates = [F.count(F.lit(1)).alias("rows"), F.count_if(any_dropped_null).alias("dropped")]
    for index in range(len(features)):
        column = F.col(raw_feature(index))
        aggregates += [
            F.count_if(column.isNull()).alias(f"nulls{index}"),
            F.avg(column).alias(f"mean{index}"),
            F.stddev_samp(column).alias(f"std{index}"),
            F.min(column).alias(f"min{index}"),
            F.percentile_approx(column, 0.5, 10000).alias(f"median{index}"),
        ]
    first = raw.agg(*aggregates).first()

    if first["rows"] == 0:
        raise InputError(f"{where}: the data set has no rows to segment; ingest data first")
    problems = []
    impute_values: list[Optional[float]] = []
    for index, feature in enumerate(features):
        nulls = first[f"nulls{index}"]
        if feature.missing == "fail" and nulls:
            problems.append(
                f"feature '{feature.name}' has {nulls} missing (null or NaN) value(s) and its missing policy is "
                "'fail'; set missing to drop, mean or median"
            )
        if nulls == first["rows"]:
            problems.append(f"feature '{feature.name}' has no values at all; remove it from the features")
        if feature.log1p and first[f"min{index}"] is not None and first[f"min{index}"] < 0:
            problems.append(
                f"feature '{feature.name}' has negative values (minimum {first[f'min{index}']}) and log1p needs "
                "values >= 0; turn log1p off for it"
            )
        impute = {"mean": first[f"mean{index}"], "median": first[f"median{index}"]}.get(feature.missing)
        impute_values.append(impute)
    if problems:
        raise InputError(f"{where}: " + "; ".join(problems))
    if first["rows"] == first["dropped"]:
        raise InputError(f"{where}: every row has a missing feature value under the 'drop' policy; nothing is left")

    # Pass 2: scaling statistics of the transformed values over the rows that are kept.
    kept = raw.filter(~any_dropped_null) if drop_indexes else raw
    scale_aggregates = []
    for index, feature in enumerate(features):
        value = _transformed(index, feature, impute_values[index])
        raw_value = F.col(raw_feature(index))
        scale_aggregates += [
            F.avg(raw_value).alias(f"raw_mean{index}"),
            F.stddev_samp(raw_value).alias(f"raw_std{index}"),
            F.min(raw_value).alias(f"raw_min{index}"),
            F.avg(value).alias(f"mean{index}"),
            F.stddev_samp(value).alias(f"std{index}"),
            F.min(value).alias(f"min{index}"),
            F.max(value).alias(f"max{index}"),
        ]
    second = kept.agg(*scale_aggregates).first()

    stats = []
    for index, feature in enumerate(features):
        shift, divisor = 0.0, 1.0
        if config.scaling == "standard":
            shift = second[f"mean{index}"]
            divisor = second[f"std{index}"] or 0.0
        elif config.scaling == "minmax":
            shift = second[f"min{index}"]
            divisor = second[f"max{index}"] - second[f"min{index}"]
        # A constant feature carries no information; dividing by 1 keeps it at 0 after the shift.
        if not divisor:
            divisor = 1.0
        stats.append(FeatureStats(
            spec=feature, null_count=int(first[f"nulls{index}"]), mean=second[f"raw_mean{index}"],
            stddev=second[f"raw_std{index}"], minimum=second[f"raw_min{index}"], impute_value=impute_values[index],
            shift=float(shift), divisor=float(divisor),
        ))
    return FeaturePlan(tuple(stats), config.scaling, int(first["rows"]), int(first["dropped"]))


def apply_feature_plan(raw: DataFrame, plan: FeaturePlan) -> DataFrame:
    """Drop rows under the 'drop' policy, add null flags, scaled columns and the feature vector."""
    kept = raw
    for index, stats in enumerate(plan.features):
        if stats.spec.missing == "drop":
            kept = kept.filter(F.col(raw_feature(index)).isNotNull())

    columns = []
    for index, stats in enumerate(plan.features):
        value = _transformed(index, stats.spec, stats.impute_value)
        columns.append(((value - F.lit(stats.shift)) / F.lit(stats.divisor)).alias(scaled_feature(index)))
        columns.append(F.col(raw_feature(index)).isNull().alias(is_null_feature(index)))
    scaled = kept.select("*", *columns)

    assembler = VectorAssembler(
        inputCols=[scaled_feature(index) for index in range(len(plan.features))],
        outputCol=FEATURES_VECTOR,
        handleInvalid="error",
    )
    return assembler.transform(scaled)
