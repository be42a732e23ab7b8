"""Quantile bands (n-tiles): cut points per feature and the integer score each row gets.

Cut points. For n bands a feature gets n - 1 cut points, at the quantiles 1/n,
2/n, ..., (n-1)/n of its non-null values, from Spark's percentile_approx with
accuracy BAND_ACCURACY. Each cut point is a value of the column. With exact
ranks, the cut point at quantile q is the ceil(q * count)-th smallest value,
and Spark documents a rank error of at most count / accuracy. In a check with
Spark 4.2, accuracy 100,000 and random values on 4 partitions, the result
equalled the exact rule for 4,338, 9,999 and 30,000 values, but not for
100,000 and 300,000.

Tie rule. score = 1 + (number of cut points strictly below the value); with
`descending`, score = n - (that number), so low values score high. A value
equal to a cut point therefore lands in the band below that cut point, and
equal values always get equal scores. When many rows share a value, cut points
repeat and the scores between them stay unused (frequency often skips 2 when
most customers ordered once). A missing or NaN value gets a null score.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from stratify_spark.config import BandSpec
from stratify_spark.errors import InputError

BAND_ACCURACY = 100_000


@dataclass(frozen=True)
class BandCuts:
    """The cut points of one band, computed in a run or taken from an earlier run."""

    name: str
    feature: str
    bands: int
    descending: bool
    cut_points: tuple[float, ...]

    @classmethod
    def from_spec(cls, spec: BandSpec, cut_points: Sequence[float]) -> "BandCuts":
        return cls(spec.name, spec.feature, spec.bands, spec.descending, tuple(float(value) for value in cut_points))

    def matches(self, spec: BandSpec) -> bool:
        """Return whether these cut points were made for the same band name, feature, count and direction."""
        return (self.name, self.feature, self.bands, self.descending) == (
            spec.name, spec.feature, spec.bands, spec.descending)

    def describe(self) -> str:
        direction = ", descending" if self.descending else ""
        return f"{self.name} = bands({self.feature}, {self.bands}{direction})"


def quantile_levels(bands: int) -> list[float]:
    """Return the quantiles of the n - 1 cut points of n bands: 1/n, 2/n, ..., (n-1)/n."""
    return [index / bands for index in range(1, bands)]


def feature_value(feature: str) -> Column:
    """Return a feature as a double, with NaN turned into null so that it gets no score."""
    value = F.col(feature).cast("double")
    return F.when(F.isnan(value), F.lit(None).cast("double")).otherwise(value)


def compute_cut_points(df: DataFrame, specs: Sequence[BandSpec], where: str) -> list[BandCuts]:
    """Compute the cut points of every band in one aggregation pass over `df`.

    Raises InputError when a banded feature has no non-null value.
    """
    if not specs:
        return []
    aggregates = [
        F.percentile_approx(feature_value(spec.feature), quantile_levels(spec.bands), BAND_ACCURACY).alias(f"cuts{index}")
        for index, spec in enumerate(specs)
    ]
    row = df.agg(*aggregates).first()

    result = []
    for index, spec in enumerate(specs):
        cut_points = row[f"cuts{index}"]
        if cut_points is None:
            raise InputError(f"{where}: band {spec.name!r} cannot be computed because column {spec.feature!r} has no "
                             "values; fill the column or remove the band")
        result.append(BandCuts.from_spec(spec, cut_points))
    return result


def band_score(cuts: BandCuts) -> Column:
    """Return the integer score of each row under the tie rule of this module (null for a missing value)."""
    value = feature_value(cuts.feature)
    below = F.lit(0)
    for cut_point in cuts.cut_points:
        below = below + F.when(value > F.lit(cut_point), 1).otherwise(0)
    score = (F.lit(cuts.bands) - below) if cuts.descending else (F.lit(1) + below)
    return F.when(value.isNull(), F.lit(None)).otherwise(score).cast("int")


def with_band_scores(df: DataFrame, cuts: Sequence[BandCuts], eligible: Optional[Column] = None) -> DataFrame:
    """Add one integer score column per band, named after the band.

    Rows where `eligible` is not true get null scores.
    """
    scores = [band_score(band) for band in cuts]
    if eligible is not None:
        scores = [F.when(eligible, score) for score in scores]
    return df.select("*", *[score.alias(band.name) for score, band in zip(scores, cuts)])
