"""Quality scores computed in Spark must equal scikit-learn's on the same data and labels."""

from __future__ import annotations

import numpy as np
import pytest
from pyspark.ml.linalg import Vectors, VectorUDT
from pyspark.sql import types as T
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score

from stratify_spark.errors import InputError
from stratify_spark.quality import quality_scores

TOLERANCE = 1e-9
SCHEMA = T.StructType([T.StructField("features", VectorUDT()), T.StructField("segment_id", T.IntegerType())])


def blobs(seed: int, rows: int, dimensions: int, segments: int) -> tuple[np.ndarray, np.ndarray]:
    generator = np.random.default_rng(seed)
    centres = generator.normal(0.0, 4.0, (segments, dimensions))
    labels = generator.integers(0, segments, rows)
    points = centres[labels] + generator.normal(0.0, 1.0, (rows, dimensions))
    return points, labels


def assigned_df(spark, points: np.ndarray, labels) -> object:
    return spark.createDataFrame(
        [(Vectors.dense([float(value) for value in point]), int(label)) for point, label in zip(points, labels)], SCHEMA,
    )


def relative_gap(actual: float, expected: float) -> float:
    return abs(actual - expected) / max(1.0, abs(expected))


@pytest.mark.parametrize(
    "seed, rows, dimensions, segments",
    [(1, 120, 3, 4), (2, 200, 8, 6), (3, 40, 2, 2)],
    ids=["4_segments_3d", "6_segments_8d", "2_segments_2d"],
)
def test_scores_equal_sklearn(spark, seed, rows, dimensions, segments):
    points, labels = blobs(seed, rows, dimensions, segments)

    scores = quality_scores(assigned_df(spark, points, labels), "features", "segment_id")

    expected_db = davies_bouldin_score(points, labels)
    expected_ch = calinski_harabasz_score(points, labels)
    expected_silhouette = silhouette_score(points, labels, metric="sqeuclidean")
    assert relative_gap(scores.davies_bouldin, expected_db) <= TOLERANCE, (scores.davies_bouldin, expected_db)
    assert relative_gap(scores.calinski_harabasz, expected_ch) <= TOLERANCE, (scores.calinski_harabasz, expected_ch)
    assert relative_gap(scores.silhouette, expected_silhouette) <= TOLERANCE, (scores.silhouette, expected_silhouette)
    assert scores.segments == segments
    assert scores.rows == rows


def test_within_sum_of_squares_by_hand(spark):
    points = np.array([[0.0, 0.0], [2.0, 0.0], [10.0, 10.0], [10.0, 12.0], [10.0, 14.0]])
    labels = [0, 0, 1, 1, 1]

    scores = quality_scores(assigned_df(spark, points, labels), "features", "segment_id")

    # Segment 0: centroid (1, 0), squared distances 1 + 1. Segment 1: centroid (10, 12), 4 + 0 + 4.
    assert scores.within_sum_of_squares == pytest.approx(10.0, abs=1e-12)
    assert scores.calinski_harabasz == pytest.approx(calinski_harabasz_score(points, labels), rel=TOLERANCE)


def test_sparse_labels_and_singleton(spark):
    points, _ = blobs(5, 30, 3, 3)
    labels = [7] * 12 + [3] * 17 + [42]

    scores = quality_scores(assigned_df(spark, points, labels), "features", "segment_id")

    assert scores.davies_bouldin == pytest.approx(davies_bouldin_score(points, labels), rel=TOLERANCE)
    assert scores.calinski_harabasz == pytest.approx(calinski_harabasz_score(points, labels), rel=TOLERANCE)
    expected_silhouette = silhouette_score(points, labels, metric="sqeuclidean")
    assert scores.silhouette == pytest.approx(expected_silhouette, rel=TOLERANCE)


def test_same_points_give_sklearn_limits(spark):
    points = np.array([[1.0, 1.0]] * 4 + [[5.0, 5.0]] * 4)
    labels = [0] * 4 + [1] * 4

    scores = quality_scores(assigned_df(spark, points, labels), "features", "segment_id")

    assert scores.davies_bouldin == davies_bouldin_score(points, labels) == 0.0
    assert scores.calinski_harabasz == calinski_harabasz_score(points, labels) == 1.0


def test_single_segment_scores_undefined(spark):
    points, _ = blobs(6, 10, 2, 1)

    scores = quality_scores(assigned_df(spark, points, [0] * 10), "features", "segment_id")

    assert scores.segments == 1
    assert scores.silhouette is None
    assert scores.davies_bouldin is None
    assert scores.calinski_harabasz is None
    expected_within = float(((points - points.mean(axis=0)) ** 2).sum())
    assert scores.within_sum_of_squares == pytest.approx(expected_within, rel=1e-12)


def test_missing_column_rejected(spark):
    points, labels = blobs(7, 4, 2, 2)

    with pytest.raises(InputError, match="'cluster'"):
        quality_scores(assigned_df(spark, points, labels), "features", "cluster")
