"""Silhouette: Spark's value must equal scikit-learn's with the squared Euclidean distance."""

from __future__ import annotations

import numpy as np
import pytest
from pyspark.ml.linalg import Vectors, VectorUDT
from pyspark.sql import types as T
from sklearn.metrics import silhouette_score

from stratify_spark.clustering import silhouette

POINTS = [
    [0.0, 0.0, 1.0],
    [0.5, 0.2, 1.5],
    [1.0, -0.3, 0.0],
    [4.0, 4.0, -1.0],
    [4.5, 3.0, -2.0],
    [5.2, 4.1, -1.5],
    [-3.0, 5.0, 2.0],
    [-2.5, 6.0, 2.5],
    [-2.0, 5.5, 3.0],
    [10.0, 10.0, 10.0],
]
SCHEMA = T.StructType([T.StructField("features", VectorUDT()), T.StructField("segment_id", T.IntegerType())])


def assigned_df(spark, labels: list[int]):
    return spark.createDataFrame([(Vectors.dense(point), label) for point, label in zip(POINTS, labels)], SCHEMA)


@pytest.mark.parametrize(
    "labels",
    [
        [0, 0, 0, 1, 1, 1, 2, 2, 2, 1],
        [0, 0, 0, 1, 1, 1, 2, 2, 2, 3],
        [0, 1, 0, 1, 0, 1, 0, 1, 0, 1],
    ],
    ids=["three_segments", "with_single_point", "mixed"],
)
def test_silhouette_equals_sklearn(spark, labels):
    expected = silhouette_score(np.array(POINTS), labels, metric="sqeuclidean")

    actual, distance = silhouette(assigned_df(spark, labels), "euclidean", len(set(labels)))

    assert distance == "squared_euclidean"
    assert abs(actual - expected) <= 1e-9, f"silhouette {actual!r}, scikit-learn {expected!r}"


def test_silhouette_single_segment(spark):
    value, distance = silhouette(assigned_df(spark, [0] * len(POINTS)), "euclidean", 1)

    assert value is None
    assert distance == "squared_euclidean (undefined with fewer than two segments)"


def test_silhouette_cosine_name(spark):
    value, distance = silhouette(assigned_df(spark, [0] * len(POINTS)), "cosine", 1)

    assert value is None
    assert distance == "cosine (undefined with fewer than two segments)"
