"""Agreement scores: the adjusted Rand index and adjusted mutual information must equal scikit-learn's."""

from __future__ import annotations

import numpy as np
import pytest
from pyspark.sql import types as T
from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score

from stratify_spark.agreement import adjusted_mutual_info, adjusted_rand_index, contingency
from stratify_spark.errors import ConfigError, InputError

TOLERANCE = 1e-9
LABEL_SCHEMA = T.StructType([
    T.StructField("record_key", T.StringType()),
    T.StructField("segment_id", T.IntegerType()),
])


def labels_df(spark, labels):
    return spark.createDataFrame([(f"r{index}", int(label)) for index, label in enumerate(labels)], LABEL_SCHEMA)


def scores(spark, left_labels, right_labels) -> tuple[float, float]:
    left = labels_df(spark, left_labels)
    right = labels_df(spark, right_labels).withColumnRenamed("segment_id", "other_segment_id")
    table = contingency(left, right, "record_key", "segment_id", "other_segment_id")
    return (
        adjusted_rand_index(table, "segment_id", "other_segment_id"),
        adjusted_mutual_info(table, "segment_id", "other_segment_id"),
    )


def random_labelings() -> dict[str, tuple[list[int], list[int]]]:
    generator = np.random.default_rng(7)
    cases = {}
    for size, left_k, right_k in [(60, 3, 3), (200, 5, 4), (500, 8, 8), (37, 2, 6)]:
        cases[f"random_{size}_{left_k}x{right_k}"] = (
            list(generator.integers(0, left_k, size)), list(generator.integers(0, right_k, size)),
        )
    # Related labelings: the right side copies the left one and relabels 20% of the records.
    left = generator.integers(0, 5, 300)
    right = np.where(generator.random(300) < 0.2, generator.integers(0, 5, 300), (left + 2) % 5)
    cases["related_300_5x5"] = (list(left), list(right))
    return cases


DEGENERATE = {
    "one_cluster_both_sides": ([0] * 10, [0] * 10),
    "one_cluster_left_only": ([0] * 10, [0, 1] * 5),
    "one_cluster_right_only": ([0, 1, 2, 0, 1, 2, 0, 1, 2, 0], [3] * 10),
    "identical": ([0, 0, 1, 1, 2, 2, 2, 3], [0, 0, 1, 1, 2, 2, 2, 3]),
    "identical_permuted_ids": ([0, 0, 1, 1, 2, 2, 2, 3], [7, 7, 4, 4, 9, 9, 9, 1]),
    "singletons_both_sides": (list(range(8)), list(range(8))),
    "singletons_left_one_cluster_right": (list(range(8)), [0] * 8),
    "single_record": ([3], [5]),
    "two_records_split_and_joined": ([0, 1], [0, 0]),
    "complementary": ([0, 0, 0, 0, 1, 1, 1, 1], [0, 1, 0, 1, 0, 1, 0, 1]),
}


@pytest.mark.parametrize(
    "left_labels, right_labels",
    list(random_labelings().values()) + list(DEGENERATE.values()),
    ids=list(random_labelings().keys()) + list(DEGENERATE.keys()),
)
def test_scores_equal_sklearn(spark, left_labels, right_labels):
    expected_ari = adjusted_rand_score(left_labels, right_labels)
    expected_ami = adjusted_mutual_info_score(left_labels, right_labels)

    ari, ami = scores(spark, left_labels, right_labels)

    assert abs(ari - expected_ari) <= TOLERANCE, f"ARI {ari!r}, scikit-learn {expected_ari!r}"
    assert abs(ami - expected_ami) <= TOLERANCE, f"AMI {ami!r}, scikit-learn {expected_ami!r}"


def test_degenerate_values(spark):
    ari, ami = scores(spark, [0] * 6, [0] * 6)
    assert ari == 1.0
    assert ami == 1.0

    ari, ami = scores(spark, [0] * 6, [0, 0, 0, 1, 1, 1])
    assert ari == 0.0
    assert ami == 0.0

    ari, ami = scores(spark, [0, 0, 1, 1], [5, 5, 2, 2])
    assert ari == 1.0
    assert ami == pytest.approx(1.0, abs=TOLERANCE)


def test_large_counts_equal_sklearn(spark):
    # Cells of up to 400,000 records exercise the truncated expected-information sum.
    cells = [(0, 0, 400_000), (0, 1, 150_000), (1, 0, 120_000), (1, 1, 90_000), (1, 2, 30_000), (2, 2, 210_000)]
    table = spark.createDataFrame(cells, "left_segment int, right_segment int, n long")
    left_labels = np.repeat([cell[0] for cell in cells], [cell[2] for cell in cells])
    right_labels = np.repeat([cell[1] for cell in cells], [cell[2] for cell in cells])

    ari = adjusted_rand_index(table, "left_segment", "right_segment")
    ami = adjusted_mutual_info(table, "left_segment", "right_segment")

    expected_ari = adjusted_rand_score(left_labels, right_labels)
    expected_ami = adjusted_mutual_info_score(left_labels, right_labels)
    assert abs(ari - expected_ari) <= TOLERANCE, f"ARI {ari!r}, scikit-learn {expected_ari!r}"
    assert abs(ami - expected_ami) <= TOLERANCE, f"AMI {ami!r}, scikit-learn {expected_ami!r}"


def test_contingency_counts_shared_keys_only(spark):
    left = spark.createDataFrame(
        [("a", 0, "t1"), ("b", 0, "t1"), ("c", 1, "t1"), ("d", 1, "t1"), ("only_left", 1, "t1")],
        "record_key string, segment_id int, tenant string",
    )
    right = spark.createDataFrame(
        [("a", 5, "t1"), ("b", 6, "t1"), ("c", 6, "t1"), ("d", 6, "t1"), ("only_right", 5, "t1")],
        "record_key string, new_segment int, tenant string",
    )

    table = contingency(left, right, "record_key", "segment_id", "new_segment")

    assert table.columns == ["segment_id", "new_segment", "n"]
    counts = {(row["segment_id"], row["new_segment"]): row["n"] for row in table.collect()}
    assert counts == {(0, 5): 1, (0, 6): 1, (1, 6): 2}


def test_contingency_null_label_is_own_group(spark):
    left = spark.createDataFrame([("a", 0), ("b", None), ("c", None)], "record_key string, segment_id int")
    right = spark.createDataFrame([("a", 1), ("b", 1), ("c", 2)], "record_key string, new_segment int")

    table = contingency(left, right, "record_key", "segment_id", "new_segment")

    counts = {(row["segment_id"], row["new_segment"]): row["n"] for row in table.collect()}
    assert counts == {(0, 1): 1, (None, 1): 1, (None, 2): 1}


def test_contingency_same_label_name_rejected(spark):
    left = labels_df(spark, [0, 1])

    with pytest.raises(ConfigError, match="withColumnRenamed"):
        contingency(left, left, "record_key", "segment_id", "segment_id")


def test_contingency_missing_column_rejected(spark):
    left = labels_df(spark, [0, 1])
    right = labels_df(spark, [0, 1]).withColumnRenamed("segment_id", "other")

    with pytest.raises(InputError, match="'missing_label'"):
        contingency(left, right, "record_key", "segment_id", "missing_label")


def test_no_shared_keys_rejected(spark):
    left = spark.createDataFrame([("a", 0)], "record_key string, segment_id int")
    right = spark.createDataFrame([("b", 0)], "record_key string, new_segment int")
    table = contingency(left, right, "record_key", "segment_id", "new_segment")

    with pytest.raises(InputError, match="share no key"):
        adjusted_rand_index(table, "segment_id", "new_segment")
    with pytest.raises(InputError, match="share no key"):
        adjusted_mutual_info(table, "segment_id", "new_segment")
