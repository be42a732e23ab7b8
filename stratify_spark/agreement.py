"""Agreement between two labelings of the same records: contingency table, adjusted Rand index, adjusted mutual information.

Both scores follow scikit-learn 1.9 (`adjusted_rand_score`, `adjusted_mutual_info_score`
with `average_method="arithmetic"`), including its degenerate cases. They are computed
from the contingency table, which has one row per pair of labels that occur together,
so its size is bounded by k_left x k_right and never by the number of records.
"""

from __future__ import annotations

import math

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from stratify_spark.errors import ConfigError, InputError

COUNT_COLUMN = "n"

# The hypergeometric terms of the expected mutual information are summed over
# mean +- HOEFFDING_SPREAD * sqrt(min(a, b)) only. Hoeffding's bound for sampling
# without replacement puts the probability outside that window below 2 * exp(-50),
# so the truncation changes the expected mutual information by less than 1e-20 per cluster pair.
HOEFFDING_SPREAD = 5.0

FLOAT_EPSILON = float(np.finfo(np.float64).eps)


def _require_columns(df: DataFrame, columns: list[str], role: str) -> None:
    missing = [name for name in columns if name not in df.columns]
    if missing:
        raise InputError(
            f"{role} has no column {missing!r}; its columns are {df.columns!r}. "
            f"Pass the name of an existing column."
        )


def contingency(left: DataFrame, right: DataFrame, key: str, left_label: str, right_label: str) -> DataFrame:
    """Count the records per (left label, right label) pair, joining the two labelings on `key`.

    Returns the columns (`left_label`, `right_label`, `n`) with one row per pair
    that occurs. The inner join keeps only keys present on both sides, and a null
    label is a label of its own. `key` must be unique on each side, because a key
    that occurs twice is counted once per matching pair of rows.
    """
    if left_label == right_label:
        raise ConfigError(
            f"left_label and right_label are both {left_label!r}; the contingency table needs two distinct "
            f"column names. Rename the label column on one side first, e.g. with withColumnRenamed."
        )
    for label in (left_label, right_label):
        if label in (key, COUNT_COLUMN):
            raise ConfigError(
                f"label column {label!r} clashes with the key {key!r} or the count column {COUNT_COLUMN!r}; "
                f"rename it before building the contingency table."
            )
    _require_columns(left, [key, left_label], "left DataFrame")
    _require_columns(right, [key, right_label], "right DataFrame")

    joined = left.select(key, left_label).join(right.select(key, right_label), on=key, how="inner")
    return joined.groupBy(left_label, right_label).agg(F.count(F.lit(1)).alias(COUNT_COLUMN))


def _pairs(column: str) -> F.Column:
    """n choose 2, as an exact decimal so that the sums cannot overflow a long."""
    value = F.col(column).cast("decimal(38,0)")
    return value * (value - F.lit(1)) / F.lit(2)


def _check_table(table: DataFrame, left_label: str, right_label: str) -> None:
    if left_label == right_label:
        raise ConfigError(
            f"left_label and right_label are both {left_label!r}; pass the two label columns of the contingency table."
        )
    _require_columns(table, [left_label, right_label, COUNT_COLUMN], "contingency table")


def _pair_sums(table: DataFrame, left_label: str, right_label: str) -> tuple[int, int, int, int]:
    """Sum n choose 2 over the cells, the left sizes and the right sizes in Spark, and return them with N."""
    # cube() yields the cells, the left sizes, the right sizes and the total in one aggregation.
    # grouping_id() marks each row: 0 cell, 1 left size, 2 right size, 3 total.
    sizes = table.cube(left_label, right_label).agg(
        F.sum(COUNT_COLUMN).alias("size"), F.min(COUNT_COLUMN).alias("smallest"), F.grouping_id().alias("level"),
    )
    sums = {
        row["level"]: row
        for row in sizes.groupBy("level").agg(
            F.sum(_pairs("size")).alias("pairs"), F.sum("size").alias("total"), F.min("smallest").alias("smallest"),
        ).collect()
    }
    if 3 not in sums or not sums[3]["total"]:
        raise InputError(
            "the contingency table is empty, so the two labelings share no key; check that both sides "
            "cover the same records and that the key columns match."
        )
    if sums[3]["smallest"] < 0:
        raise InputError(
            f"the contingency table has a negative count ({sums[3]['smallest']}); counts must be >= 0. "
            f"Build the table with contingency()."
        )
    return int(sums[0]["pairs"]), int(sums[1]["pairs"]), int(sums[2]["pairs"]), int(sums[3]["total"])


def adjusted_rand_index(table: DataFrame, left_label: str, right_label: str) -> float:
    """Compute the adjusted Rand index of a contingency table built by `contingency`.

    Returns 1.0 when the two labelings group every pair of records the same way,
    which includes one cluster on both sides and one record per cluster on both
    sides, as scikit-learn does. Raises InputError for an empty table.
    """
    _check_table(table, left_label, right_label)
    cell_pairs, left_pairs, right_pairs, total = _pair_sums(table, left_label, right_label)
    all_pairs = total * (total - 1) // 2

    # No pair is split on one side and joined on the other.
    if cell_pairs == left_pairs and cell_pairs == right_pairs:
        return 1.0

    # (index - expected) / (max - expected), multiplied through by all_pairs, in exact integers.
    numerator = 2 * (cell_pairs * all_pairs - left_pairs * right_pairs)
    denominator = left_pairs * (all_pairs - right_pairs) + right_pairs * (all_pairs - left_pairs)
    return numerator / denominator


def _collect_cells(table: DataFrame, left_label: str, right_label: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the non-zero cells as (left index, right index, count) arrays."""
    cells = (
        table.groupBy(left_label, right_label).agg(F.sum(COUNT_COLUMN).alias(COUNT_COLUMN))
        .filter(F.col(COUNT_COLUMN) != 0)
        .collect()
    )
    if not cells:
        raise InputError(
            "the contingency table is empty, so the two labelings share no key; check that both sides "
            "cover the same records and that the key columns match."
        )
    left_index: dict = {}
    right_index: dict = {}
    rows, columns, counts = [], [], []
    for cell in cells:
        count = int(cell[COUNT_COLUMN])
        if count < 0:
            raise InputError(
                f"the contingency table has a negative count ({count}); counts must be >= 0. "
                f"Build the table with contingency()."
            )
        rows.append(left_index.setdefault(cell[left_label], len(left_index)))
        columns.append(right_index.setdefault(cell[right_label], len(right_index)))
        counts.append(count)
    return np.array(rows), np.array(columns), np.array(counts, dtype=np.int64)


def _entropy(sizes: np.ndarray) -> float:
    """Shannon entropy in nats of a labeling with these cluster sizes."""
    total = float(sizes.sum())
    shares = sizes / total
    return float(-np.sum(shares * (np.log(sizes) - math.log(total))))


def _mutual_information(counts: np.ndarray, left_sizes: np.ndarray, right_sizes: np.ndarray,
                        rows: np.ndarray, columns: np.ndarray) -> float:
    if left_sizes.size == 1 or right_sizes.size == 1:
        return 0.0
    total = float(counts.sum())
    shares = counts / total
    outer = left_sizes[rows].astype(np.float64) * right_sizes[columns].astype(np.float64)
    terms = shares * (np.log(counts) - math.log(total)) + shares * (
        -np.log(outer) + math.log(left_sizes.sum()) + math.log(right_sizes.sum())
    )
    terms = np.where(np.abs(terms) < FLOAT_EPSILON, 0.0, terms)
    return max(float(terms.sum()), 0.0)


def _log_hypergeometric(count: int, left_size: int, right_size: int, total: int) -> float:
    """log P(X = count) for X the overlap of random groups of left_size and right_size out of total."""
    return (
        math.lgamma(left_size + 1) + math.lgamma(right_size + 1)
        + math.lgamma(total - left_size + 1) + math.lgamma(total - right_size + 1)
        - math.lgamma(total + 1) - math.lgamma(count + 1) - math.lgamma(left_size - count + 1)
        - math.lgamma(right_size - count + 1) - math.lgamma(total - left_size - right_size + count + 1)
    )


def _expected_mutual_information(left_sizes: np.ndarray, right_sizes: np.ndarray) -> float:
    """Compute the expected mutual information of two random labelings with these cluster sizes.

    It is the sum over cluster pairs (a, b) and overlaps n of (n / N) * log(N n / (a b))
    weighted by the hypergeometric probability of overlap n.
    """
    total = int(left_sizes.sum())
    log_total = math.log(total)
    expected = 0.0
    for left_size in (int(size) for size in left_sizes):
        for right_size in (int(size) for size in right_sizes):
            low = max(1, left_size + right_size - total)
            high = min(left_size, right_size)
            mean = left_size * right_size / total
            spread = HOEFFDING_SPREAD * math.sqrt(min(left_size, right_size))
            low = max(low, int(math.floor(mean - spread)))
            high = min(high, int(math.ceil(mean + spread)))
            if low > high:
                continue

            counts = np.arange(low, high + 1, dtype=np.float64)
            # P(n + 1) / P(n) = (a - n)(b - n) / ((n + 1)(N - a - b + n + 1)), so the log-probabilities
            # are one lgamma evaluation plus a running sum of log ratios.
            steps = counts[:-1]
            log_ratios = (
                np.log(left_size - steps) + np.log(right_size - steps)
                - np.log(steps + 1) - np.log(total - left_size - right_size + steps + 1)
            )
            log_probabilities = _log_hypergeometric(low, left_size, right_size, total) + np.concatenate(
                ([0.0], np.cumsum(log_ratios))
            )
            information = np.log(counts) + log_total - math.log(left_size) - math.log(right_size)
            expected += float(np.sum(counts / total * information * np.exp(log_probabilities)))
    return expected


def adjusted_mutual_info(table: DataFrame, left_label: str, right_label: str) -> float:
    """Compute the adjusted mutual information of a contingency table built by `contingency`.

    The normaliser is the arithmetic mean of the two entropies, scikit-learn's
    default. Returns 1.0 when both sides have a single cluster, and 0.0 when only
    one side does. Raises InputError for an empty table. The table is collected to
    the driver, which is fine because it has at most k_left x k_right rows.
    """
    _check_table(table, left_label, right_label)
    rows, columns, counts = _collect_cells(table, left_label, right_label)
    left_sizes = np.zeros(rows.max() + 1, dtype=np.int64)
    np.add.at(left_sizes, rows, counts)
    right_sizes = np.zeros(columns.max() + 1, dtype=np.int64)
    np.add.at(right_sizes, columns, counts)

    if left_sizes.size == 1 and right_sizes.size == 1:
        return 1.0

    mutual = _mutual_information(counts, left_sizes, right_sizes, rows, columns)
    if left_sizes.size == 1 or right_sizes.size == 1:
        # With one cluster on a side every overlap is fixed, so the expected information is exactly 0.
        expected = 0.0
    else:
        expected = _expected_mutual_information(left_sizes, right_sizes)
    normaliser = (_entropy(left_sizes) + _entropy(right_sizes)) / 2.0

    # scikit-learn keeps the denominator away from zero with the same sign, so a
    # near-zero denominator gives a large score instead of a division error.
    denominator = normaliser - expected
    if denominator < 0:
        denominator = min(denominator, -FLOAT_EPSILON)
    else:
        denominator = max(denominator, FLOAT_EPSILON)
    return (mutual - expected) / denominator
