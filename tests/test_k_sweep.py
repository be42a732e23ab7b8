"""The k sweep: choosing k by each criterion, config validation, and a segment run that sweeps k."""

from __future__ import annotations

import re

import numpy as np
import pytest

from stratify_spark import tables
from stratify_spark.config import parse_config, with_k_sweep
from stratify_spark.errors import ConfigError, InputError
from stratify_spark.ingest import run_ingest
from stratify_spark.k_sweep import SweepPoint, choose_k
from stratify_spark.segment import run_segment


def point(k, cost, silhouette=None, davies_bouldin=None, calinski_harabasz=None) -> SweepPoint:
    return SweepPoint(k=k, k_produced=k, cost=cost, silhouette=silhouette, davies_bouldin=davies_bouldin,
                      calinski_harabasz=calinski_harabasz, iterations=5, seconds=0.1)


POINTS = [
    point(2, 100.0, silhouette=0.50, davies_bouldin=0.90, calinski_harabasz=120.0),
    point(3, 40.0, silhouette=0.70, davies_bouldin=0.60, calinski_harabasz=300.0),
    point(4, 30.0, silhouette=0.55, davies_bouldin=0.50, calinski_harabasz=280.0),
    point(5, 25.0, silhouette=0.45, davies_bouldin=0.70, calinski_harabasz=260.0),
]


def test_choose_highest_silhouette():
    k, reason = choose_k(POINTS, "silhouette")

    assert k == 3
    assert reason == ("silhouette: k=3 has the highest value, 0.7000 (next best k=4 with 0.5500); "
                      "silhouette uses the squared Euclidean distance")


def test_choose_lowest_davies_bouldin():
    k, reason = choose_k(POINTS, "davies_bouldin")

    assert k == 4
    assert reason == "davies_bouldin: k=4 has the lowest value, 0.5000 (next best k=3 with 0.6000)"


def test_choose_highest_calinski_harabasz():
    k, _ = choose_k(POINTS, "calinski_harabasz")

    assert k == 3


def test_choose_elbow():
    # On axes scaled to [0, 1] the line runs from (2, 1) to (5, 0). At k=3 the cost is at
    # (40 - 25) / 75 = 0.2 while the line is at 2/3, a gap of 0.467, the largest.
    k, reason = choose_k(POINTS, "elbow")

    assert k == 3
    assert "0.467 below the straight line from k=2 to k=5" in reason


def test_elbow_flat_cost_keeps_smallest_k():
    flat = [point(2, 10.0), point(3, 10.0), point(4, 12.0)]

    k, reason = choose_k(flat, "elbow")

    assert k == 2
    assert "does not fall" in reason


def test_tie_goes_to_smaller_k():
    tied = [point(2, 9.0, silhouette=0.6), point(3, 5.0, silhouette=0.6), point(4, 4.0, silhouette=0.5)]

    k, _ = choose_k(tied, "silhouette")

    assert k == 2


def test_undefined_scores_skipped():
    partly = [point(2, 9.0), point(3, 5.0, davies_bouldin=0.8), point(4, 4.0, davies_bouldin=0.9)]

    k, _ = choose_k(partly, "davies_bouldin")

    assert k == 3


def test_no_defined_score_rejected():
    with pytest.raises(InputError, match="no k with a defined silhouette"):
        choose_k([point(2, 1.0), point(3, 1.0)], "silhouette")


def base_config(**segment_overrides) -> dict:
    segment = {"features": [{"name": "x"}, {"name": "y"}], "algorithm": {"name": "kmeans", "k": 2, "seed": 3}}
    segment.update(segment_overrides)
    return {
        "tenant": "acme",
        "dataset": "blobs",
        "source": {"format": "csv"},
        "columns": [
            {"name": "customer_id", "type": "string", "required": True},
            {"name": "x", "type": "double"},
            {"name": "y", "type": "double"},
        ],
        "key": {"columns": ["customer_id"]},
        "segment": segment,
    }


@pytest.mark.parametrize(
    "sweep, message",
    [
        ({"k_min": 5, "k_max": 3}, "k_min (5) must not exceed k_max (3)"),
        ({"k_min": 2, "k_max": 3, "criterion": "elbow"}, "at least three values of k"),
        ({"k_min": 2, "k_max": 60}, "at most 50 are allowed"),
        ({"k_min": 1, "k_max": 4}, "k_sweep.k_min"),
        ({"k_max": 4, "criterion": "gap"}, "k_sweep.criterion"),
        ({"k_max": 4, "window": 3}, "window"),
    ],
    ids=["reversed", "elbow_too_short", "too_many_fits", "k_min_below_2", "unknown_criterion", "unknown_key"],
)
def test_sweep_config_rejected(sweep, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config(base_config(k_sweep=sweep), "blobs.yaml")


def test_sweep_on_rules_rejected():
    config = base_config(k_sweep={"k_max": 4}, algorithm={
        "name": "rules", "segments": [{"name": "high", "when": "x > 1"}],
    })
    config["segment"]["features"] = [{"name": "x", "missing": "fail"}]

    with pytest.raises(ConfigError, match="k_sweep and stability apply to kmeans and bisecting_kmeans"):
        parse_config(config, "blobs.yaml")


def test_k_sweep_flag_sets_range():
    config = parse_config(base_config(k_sweep={"k_max": 4, "criterion": "davies_bouldin"}), "blobs.yaml")

    swept = with_k_sweep(config, "blobs.yaml", "3:6")

    assert swept.segment.k_sweep.k_min == 3
    assert swept.segment.k_sweep.k_max == 6
    assert swept.segment.k_sweep.criterion == "davies_bouldin"
    with pytest.raises(ConfigError, match="expected K_MIN:K_MAX"):
        with_k_sweep(config, "blobs.yaml", "3-6")


def write_blobs(path, rows_per_blob: int = 30) -> None:
    generator = np.random.default_rng(11)
    centres = [(0.0, 0.0), (10.0, 0.0), (0.0, 10.0)]
    lines = ["customer_id,x,y"]
    for blob, (cx, cy) in enumerate(centres):
        for index in range(rows_per_blob):
            x, y = generator.normal((cx, cy), 0.5)
            lines.append(f"c{blob}_{index},{x:.4f},{y:.4f}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_segment_run_sweeps_k_and_checks_stability(spark, tmp_path):
    warehouse = str(tmp_path / "warehouse")
    source = tmp_path / "blobs.csv"
    write_blobs(source)
    config = parse_config(base_config(
        k_sweep={"k_min": 2, "k_max": 4, "criterion": "silhouette"},
        stability={"subsamples": 2, "fraction": 0.8, "seed": 5},
    ), "blobs.yaml")
    run_ingest(spark, config, str(source), warehouse)

    result = run_segment(spark, config, warehouse, run_id="sweep-1")

    summary = result.summary()
    assert result.k_produced == 3
    assert summary["k_chosen"] == 3
    assert summary["k_chosen_reason"].startswith("silhouette: k=3 has the highest value")
    assert [row["k"] for row in summary["k_sweep"]["table"]] == [2, 3, 4]

    sweep = {row["k"]: row for row in tables.read_run_rows(spark, warehouse, tables.RUN_K_SWEEP, "acme", "sweep-1")
             .collect()}
    assert sorted(sweep) == [2, 3, 4]
    assert [k for k, row in sweep.items() if row["chosen"]] == [3]
    assert sweep[3]["reason"] == summary["k_chosen_reason"]
    assert sweep[2]["reason"] is None
    assert sweep[3]["silhouette"] > sweep[2]["silhouette"]
    assert sweep[3]["silhouette"] > sweep[4]["silhouette"]
    assert sweep[3]["davies_bouldin"] < sweep[2]["davies_bouldin"]
    assert sweep[3]["cost"] < sweep[2]["cost"]

    metrics = {row["metric"]: row for row in tables.read_run_rows(spark, warehouse, tables.RUN_METRICS, "acme",
                                                                  "sweep-1").collect()}
    assert metrics["k_chosen"]["value"] == 3.0
    assert metrics["k_chosen"]["detail"] == summary["k_chosen_reason"]

    # Three blobs 10 apart with spread 0.5: every refit finds the same three groups.
    assert metrics["stability_ari_mean"]["value"] == pytest.approx(1.0, abs=1e-12)
    assert metrics["unstable_segments"]["value"] == 0.0
    stability = tables.read_run_rows(spark, warehouse, tables.RUN_STABILITY, "acme", "sweep-1")
    means = {row["segment_id"]: row for row in stability.filter("scope = 'segment' AND subsample IS NULL").collect()}
    assert sorted(means) == [0, 1, 2]
    for segment_id, row in means.items():
        assert row["jaccard"] == pytest.approx(1.0, abs=1e-12), segment_id
        assert row["stable"] is True, segment_id
    per_subsample = stability.filter("scope = 'run' AND subsample IS NOT NULL").collect()
    assert sorted(row["subsample"] for row in per_subsample) == [0, 1]
    assert summary["stability"]["unstable_segments"] == []

    # The same run id again without sweep or stability: their rows go, and k_chosen is the config's k.
    plain = run_segment(spark, parse_config(base_config(), "blobs.yaml"), warehouse, run_id="sweep-1")

    assert plain.summary()["k_chosen"] == 2
    assert "k_sweep" not in plain.summary()
    metrics = {row["metric"]: row for row in tables.read_run_rows(spark, warehouse, tables.RUN_METRICS, "acme",
                                                                  "sweep-1").collect()}
    assert metrics["k_chosen"]["value"] == 2.0
    assert metrics["k_chosen"]["detail"] == "k from the config; the run has no k sweep"
    assert "stability_ari_mean" not in metrics
    assert tables.read_run_rows(spark, warehouse, tables.RUN_K_SWEEP, "acme", "sweep-1").count() == 0
    assert tables.read_run_rows(spark, warehouse, tables.RUN_STABILITY, "acme", "sweep-1").count() == 0
