"""Stability scores: best Jaccard overlaps, their means over subsamples, and the stored rows."""

from __future__ import annotations

import pytest

from stratify_spark.config import KMeansParams, StabilityConfig
from stratify_spark.errors import InputError
from stratify_spark.stability import (
    SegmentOverlap, SubsampleAgreement, best_overlaps, run_stability, stability_rows, summarize,
)


def test_best_overlaps_by_hand():
    # Full segment 0 has 10 rows in the subsample, 8 in refit segment 5 and 2 in refit segment 6.
    # Refit segment 5 has 8 + 1 rows, refit segment 6 has 2 + 9 rows.
    cells = [(0, 5, 8), (0, 6, 2), (1, 5, 1), (1, 6, 9)]

    overlaps = best_overlaps(cells, [0, 1, 2])

    # Segment 0: 8 / (10 + 9 - 8) = 8/11. Segment 1: 9 / (10 + 11 - 9) = 9/12.
    assert overlaps[0] == SegmentOverlap(0, 10, pytest.approx(8 / 11), 5)
    assert overlaps[1] == SegmentOverlap(1, 10, pytest.approx(9 / 12), 6)
    # Segment 2 has no rows in the subsample.
    assert overlaps[2] == SegmentOverlap(2, 0, 0.0, None)


def test_best_overlaps_tie_takes_smaller_id():
    cells = [(0, 7, 5), (0, 3, 5)]

    overlaps = best_overlaps(cells, [0])

    assert overlaps[0].matched_segment_id == 3
    assert overlaps[0].jaccard == pytest.approx(0.5)


def agreement(subsample: int, index: float, jaccards: list[float]) -> SubsampleAgreement:
    return SubsampleAgreement(
        subsample=subsample, rows=100, adjusted_rand_index=index,
        segments=[SegmentOverlap(segment_id, 50, value, segment_id) for segment_id, value in enumerate(jaccards)],
    )


def test_summarize_marks_unstable_segment():
    agreements = [agreement(0, 0.9, [0.95, 0.40]), agreement(1, 0.7, [0.85, 0.50])]

    result = summarize(agreements, [0, 1], min_jaccard=0.5)

    assert result.mean_adjusted_rand_index == pytest.approx(0.8)
    assert result.min_adjusted_rand_index == pytest.approx(0.7)
    assert result.mean_jaccard == {0: pytest.approx(0.9), 1: pytest.approx(0.45)}
    assert result.unstable_segments == [1]


def test_stability_rows_layout():
    result = summarize([agreement(0, 0.9, [0.95, 0.40]), agreement(1, 0.7, [0.85, 0.50])], [0, 1], 0.5)

    rows = stability_rows(result, "acme", "customers", "run-1")

    per_subsample_run = [row for row in rows if row["scope"] == "run" and row["subsample"] is not None]
    assert [(row["subsample"], row["adjusted_rand_index"]) for row in per_subsample_run] == [(0, 0.9), (1, 0.7)]
    mean_run = [row for row in rows if row["scope"] == "run" and row["subsample"] is None]
    assert len(mean_run) == 1
    assert mean_run[0]["adjusted_rand_index"] == pytest.approx(0.8)
    assert mean_run[0]["stable"] is False
    mean_segments = {row["segment_id"]: row for row in rows if row["scope"] == "segment" and row["subsample"] is None}
    assert mean_segments[0]["stable"] is True
    assert mean_segments[1]["stable"] is False
    assert mean_segments[1]["jaccard"] == pytest.approx(0.45)
    assert all(row["tenant"] == "acme" and row["run_id"] == "run-1" for row in rows)


def test_too_small_subsample_rejected(spark):
    features = spark.createDataFrame([("a", 1.0)], "record_key string, x double")
    params = KMeansParams(name="kmeans", k=5)

    with pytest.raises(InputError, match="about 5 rows, fewer than two per segment for k=5"):
        run_stability(features, features, "record_key", params, StabilityConfig(subsamples=2, fraction=0.5),
                      [0, 1, 2, 3, 4], rows_used=10)


@pytest.mark.parametrize(
    "settings, field_name",
    [({"fraction": 1.0}, "fraction"), ({"fraction": 0.0}, "fraction"), ({"subsamples": 1}, "subsamples"),
     ({"min_jaccard": 1.5}, "min_jaccard")],
    ids=["fraction_one", "fraction_zero", "one_subsample", "min_jaccard_above_one"],
)
def test_stability_config_ranges(settings, field_name):
    with pytest.raises(ValueError, match=field_name):
        StabilityConfig(**settings)
