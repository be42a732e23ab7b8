"""Cluster quality scores computed in Spark: silhouette, Davies-Bouldin and Calinski-Harabasz.

All three use the Euclidean geometry of the feature vectors and the centroids of
the labels (the mean of each segment's rows, not a model's centres), as
scikit-learn 1.9 does. The silhouette uses the squared Euclidean distance, as
Spark's ClusteringEvaluator does, so it equals scikit-learn's
`silhouette_score(X, labels, metric="sqeuclidean")`. Two passes over the rows
compute all three: one for the per-segment sums, one for the per-row distances.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from pyspark.ml.functions import vector_to_array
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from stratify_spark.errors import InputError


@dataclass(frozen=True)
class QualityScores:
    """Quality of one labeling. Every score is None when fewer than two segments have rows."""

    segments: int
    rows: int
    silhouette: Optional[float]
    davies_bouldin: Optional[float]
    calinski_harabasz: Optional[float]
    within_sum_of_squares: float


def _coordinate(index: int) -> str:
    return f"_q{index}"


def _sum(terms: list[Column]) -> Column:
    return sum(terms[1:], terms[0])


# The per-row arithmetic is written out term by term (k x d products) instead of with
# array lambdas, because Spark compiles plain column arithmetic to Java code but evaluates
# lambda functions row by row. In `scripts/benchmark.py p5` the lambda form took about 4 times
# as long as MLlib's silhouette alone, and this form 1.3 to 1.8 times, for all three scores.
def _segment_sums(vectors: DataFrame, dimensions: int) -> list:
    """Return per segment: row count, coordinate means and the mean squared norm of its rows."""
    coordinates = [F.col(_coordinate(index)) for index in range(dimensions)]
    return (
        vectors.groupBy("label")
        .agg(
            F.count(F.lit(1)).alias("size"),
            F.array(*[F.avg(value) for value in coordinates]).alias("centroid"),
            F.avg(_sum([value * value for value in coordinates])).alias("mean_squared_norm"),
        )
        .orderBy("label")
        .collect()
    )


def quality_scores(assigned: DataFrame, features_col: str, label_col: str) -> QualityScores:
    """Compute silhouette, Davies-Bouldin and Calinski-Harabasz of the labels in `label_col`.

    `features_col` is an MLlib vector column. Only k x d numbers per segment reach the
    driver, never a row. With a single segment the scores are undefined and None, as
    scikit-learn raises for them.
    """
    for name in (features_col, label_col):
        if name not in assigned.columns:
            raise InputError(f"column {name!r} not found; columns present: {assigned.columns}. Pass an existing column.")
    arrays = assigned.select(vector_to_array(F.col(features_col)).alias("x"), F.col(label_col).alias("label"))
    first = arrays.select(F.size("x").alias("dimensions")).first()
    if first is None:
        raise InputError("quality scores need at least one row, and the input has none")
    dimensions = int(first["dimensions"])
    vectors = arrays.select("label", *[F.col("x")[index].alias(_coordinate(index)) for index in range(dimensions)])
    coordinates = [F.col(_coordinate(index)) for index in range(dimensions)]

    # Pass 1: per-segment size, centroid and mean squared norm (k x d values).
    sums = _segment_sums(vectors, dimensions)
    labels = [row["label"] for row in sums]
    sizes = [int(row["size"]) for row in sums]
    centroids = [[float(value) for value in row["centroid"]] for row in sums]
    rows = sum(sizes)
    if len(labels) < 2:
        return QualityScores(len(labels), rows, None, None, None, _within(vectors, coordinates, centroids))

    # Pass 2: per row, the distance to its own centroid and its silhouette.
    index_of = F.create_map(*[item for position, label in enumerate(labels) for item in (F.lit(label), F.lit(position))])
    own = index_of[F.col("label")]
    squared_norm = _sum([value * value for value in coordinates])
    # Mean squared distance from x to the rows of segment j: |x|^2 - 2 x.c_j + mean(|y|^2 over j).
    mean_squared_to = [
        squared_norm - 2.0 * _sum([value * float(centre) for value, centre in zip(coordinates, centroid)])
        + float(row["mean_squared_norm"])
        for centroid, row in zip(centroids, sums)
    ]
    own_centre = [F.element_at(F.array(*[F.lit(centroid[index]) for centroid in centroids]), own + 1)
                  for index in range(dimensions)]
    own_squared = _sum([(value - centre) * (value - centre) for value, centre in zip(coordinates, own_centre)])
    per_row = vectors.select(own.alias("own"), own_squared.alias("own_squared"),
                             *[value.alias(f"_to{position}") for position, value in enumerate(mean_squared_to)])

    own_size = F.element_at(F.array(*[F.lit(float(size)) for size in sizes]), F.col("own") + 1)
    to_own = F.element_at(F.array(*[F.col(f"_to{position}") for position in range(len(labels))]), F.col("own") + 1)
    # The row itself is at distance 0, so the mean over the other rows of its segment is the sum over n - 1.
    inside = to_own * own_size / (own_size - 1.0)
    # least() skips nulls, so the row's own segment drops out of the minimum.
    nearest_other = F.least(*[F.when(F.col("own") != position, F.col(f"_to{position}"))
                              for position in range(len(labels))])
    silhouette = (
        F.when(own_size <= 1.0, F.lit(0.0))
        .when(F.greatest(inside, nearest_other) <= 0.0, F.lit(0.0))
        .otherwise((nearest_other - inside) / F.greatest(inside, nearest_other))
    )
    per_segment = (
        per_row.groupBy("own")
        .agg(F.sum(F.sqrt("own_squared")).alias("distance_sum"), F.sum("own_squared").alias("squared_sum"),
             F.sum(silhouette).alias("silhouette_sum"))
        .collect()
    )
    distance_sums = [0.0] * len(labels)
    squared_sums = [0.0] * len(labels)
    silhouette_total = 0.0
    for row in per_segment:
        distance_sums[row["own"]] = float(row["distance_sum"])
        squared_sums[row["own"]] = float(row["squared_sum"])
        silhouette_total += float(row["silhouette_sum"])

    within = sum(squared_sums)
    return QualityScores(
        segments=len(labels), rows=rows, silhouette=silhouette_total / rows,
        davies_bouldin=davies_bouldin(centroids, [total / size for total, size in zip(distance_sums, sizes)]),
        calinski_harabasz=calinski_harabasz(centroids, sizes, within),
        within_sum_of_squares=within,
    )


def _within(vectors: DataFrame, coordinates: list[Column], centroids: list[list[float]]) -> float:
    """Sum of squared distances to the centroid for a single segment."""
    if not centroids:
        return 0.0
    squared = _sum([(value - float(centre)) * (value - float(centre)) for value, centre in zip(coordinates, centroids[0])])
    return float(vectors.agg(F.sum(squared)).first()[0])


def _euclidean(left: list[float], right: list[float]) -> float:
    return sum((a - b) ** 2 for a, b in zip(left, right)) ** 0.5


def davies_bouldin(centroids: list[list[float]], mean_distances: list[float]) -> float:
    """Compute Davies-Bouldin from the centroids and each segment's mean Euclidean distance to its centroid.

    As scikit-learn does, returns 0.0 when every mean distance or every centroid
    distance is about 0, and skips pairs of segments with the same centroid.
    """
    if all(abs(value) <= 1e-8 for value in mean_distances):
        return 0.0
    pairs = [_euclidean(a, b) for position, a in enumerate(centroids) for b in centroids[position + 1:]]
    if all(abs(value) <= 1e-8 for value in pairs):
        return 0.0
    worst = []
    for i, centroid in enumerate(centroids):
        ratios = []
        for j, other in enumerate(centroids):
            if i == j:
                continue
            separation = _euclidean(centroid, other)
            ratios.append((mean_distances[i] + mean_distances[j]) / separation if separation > 0 else 0.0)
        worst.append(max(ratios))
    return sum(worst) / len(worst)


def calinski_harabasz(centroids: list[list[float]], sizes: list[int], within: float) -> float:
    """Compute Calinski-Harabasz: between-segment over within-segment dispersion, each per degree of freedom.

    Returns 1.0 when the within-segment dispersion is 0, as scikit-learn does.
    """
    rows = sum(sizes)
    segments = len(sizes)
    dimensions = len(centroids[0])
    overall = [sum(centroid[d] * size for centroid, size in zip(centroids, sizes)) / rows for d in range(dimensions)]
    between = sum(size * _euclidean(centroid, overall) ** 2 for centroid, size in zip(centroids, sizes))
    if within == 0.0:
        return 1.0
    return between * (rows - segments) / (within * (segments - 1.0))
