"""The k sweep: fit every k of a declared range, score each fit, and choose k by a declared criterion."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Optional, Union

from pyspark.sql import DataFrame

from stratify_spark.clustering import SEGMENT_COLUMN, ClusteringResult, fit
from stratify_spark.config import BisectingKMeansParams, KMeansParams, KSweepConfig
from stratify_spark.errors import InputError
from stratify_spark.features import FEATURES_VECTOR
from stratify_spark.quality import quality_scores

ClusteringParams = Union[KMeansParams, BisectingKMeansParams]


@dataclass(frozen=True)
class SweepPoint:
    """Scores of the fit at one k. The quality scores are None when fewer than two segments got rows."""

    k: int
    k_produced: int
    cost: float
    silhouette: Optional[float]
    davies_bouldin: Optional[float]
    calinski_harabasz: Optional[float]
    iterations: Optional[int]
    seconds: float


@dataclass(frozen=True)
class SweepResult:
    """The whole sweep table, the chosen k, the reason for the choice in words, and the fitted model per k."""

    points: list[SweepPoint]
    criterion: str
    chosen_k: int
    reason: str
    fits: dict[int, ClusteringResult] = field(default_factory=dict, repr=False)


def sweep_points(features: DataFrame, params: ClusteringParams, k_min: int, k_max: int,
                 log=None) -> tuple[list[SweepPoint], dict[int, ClusteringResult]]:
    """Fit `params` at every k from k_min to k_max, score each fit, and return the scores and the fits.

    The cost is the model's training cost. Silhouette (squared Euclidean),
    Davies-Bouldin and Calinski-Harabasz come from `quality.quality_scores`.
    """
    points = []
    fits = {}
    for k in range(k_min, k_max + 1):
        started = time.monotonic()
        result = fit(features, params.model_copy(update={"k": k}))
        labelled = result.model.transform(features).select(FEATURES_VECTOR, SEGMENT_COLUMN)
        scores = quality_scores(labelled, FEATURES_VECTOR, SEGMENT_COLUMN)
        point = SweepPoint(
            k=k, k_produced=scores.segments, cost=result.training_cost, silhouette=scores.silhouette,
            davies_bouldin=scores.davies_bouldin, calinski_harabasz=scores.calinski_harabasz,
            iterations=result.iterations, seconds=round(time.monotonic() - started, 3),
        )
        if log is not None:
            log.info("k sweep: k=%d cost=%.6g silhouette=%s davies_bouldin=%s calinski_harabasz=%s (%.1f s)",
                     k, point.cost, point.silhouette, point.davies_bouldin, point.calinski_harabasz, point.seconds)
        points.append(point)
        fits[k] = result
    return points, fits


def _elbow(points: list[SweepPoint]) -> tuple[SweepPoint, float]:
    """Return the point farthest below the straight line from the first to the last cost, on axes scaled to [0, 1].

    The distance is measured along the cost axis, so it is the drop in cost that
    the curve has made ahead of a linear decline.
    """
    first, last = points[0], points[-1]
    k_span = last.k - first.k
    cost_span = first.cost - last.cost
    best, best_gap = points[0], -math.inf
    for point in points:
        linear = 1.0 - (point.k - first.k) / k_span
        actual = (point.cost - last.cost) / cost_span
        gap = linear - actual
        if gap > best_gap + 1e-12:
            best, best_gap = point, gap
    return best, best_gap


def choose_k(points: list[SweepPoint], criterion: str) -> tuple[int, str]:
    """Return the k the criterion picks and the reason, in one sentence.

    Ties go to the smaller k. Points whose scores are undefined (fewer than two
    segments) are skipped by the score criteria. Raises InputError when no point
    has a defined score.
    """
    if criterion == "elbow":
        if points[0].cost <= points[-1].cost:
            return points[0].k, (f"elbow: the cost does not fall from k={points[0].k} to k={points[-1].k}, "
                                 f"so the smallest k is kept")
        point, gap = _elbow(points)
        reason = (f"elbow: k={point.k} is where the cost curve bends most, {gap:.3f} below the straight line from "
                  f"k={points[0].k} to k={points[-1].k} with both axes scaled to [0, 1]")
        return point.k, reason

    scored = [point for point in points if getattr(point, criterion) is not None]
    if not scored:
        raise InputError(f"the k sweep has no k with a defined {criterion} because every fit produced fewer than two "
                         f"segments; check the features for constant columns or choose k by hand")
    lower_is_better = criterion == "davies_bouldin"
    best = scored[0]
    for point in scored[1:]:
        value, best_value = getattr(point, criterion), getattr(best, criterion)
        if (value < best_value) if lower_is_better else (value > best_value):
            best = point
    ranked = sorted(scored, key=lambda point: getattr(point, criterion), reverse=not lower_is_better)
    runner_up = ranked[1] if len(ranked) > 1 else None
    direction = "lowest" if lower_is_better else "highest"
    reason = f"{criterion}: k={best.k} has the {direction} value, {getattr(best, criterion):.4f}"
    if runner_up is not None:
        reason += f" (next best k={runner_up.k} with {getattr(runner_up, criterion):.4f})"
    if criterion == "silhouette":
        reason += "; silhouette uses the squared Euclidean distance"
    return best.k, reason


def run_k_sweep(features: DataFrame, params: ClusteringParams, sweep: KSweepConfig, rows_used: int,
                log=None) -> SweepResult:
    """Sweep k over the declared range and choose k. Raises InputError when there are fewer rows than k_max."""
    if rows_used < sweep.k_max:
        raise InputError(f"only {rows_used} row(s) to segment but the k sweep goes up to k_max={sweep.k_max}; "
                         f"lower k_max to at most {rows_used}")
    points, fits = sweep_points(features, params, sweep.k_min, sweep.k_max, log)
    chosen_k, reason = choose_k(points, sweep.criterion)
    return SweepResult(points=points, criterion=sweep.criterion, chosen_k=chosen_k, reason=reason, fits=fits)


def sweep_rows(result: SweepResult, tenant: str, dataset: str, run_id: str) -> list[dict]:
    """Return the rows of the run_k_sweep table for one run."""
    return [
        {"tenant": tenant, "dataset": dataset, "run_id": run_id, "k": point.k, "k_produced": point.k_produced,
         "cost": point.cost, "silhouette": point.silhouette, "davies_bouldin": point.davies_bouldin,
         "calinski_harabasz": point.calinski_harabasz, "iterations": point.iterations, "seconds": point.seconds,
         "criterion": result.criterion, "chosen": point.k == result.chosen_k,
         "reason": result.reason if point.k == result.chosen_k else None}
        for point in result.points
    ]


def sweep_summary(result: SweepResult) -> dict:
    """Return the sweep as it appears in the job's JSON summary."""
    return {
        "criterion": result.criterion, "k_chosen": result.chosen_k, "reason": result.reason,
        "table": [
            {"k": point.k, "cost": point.cost, "silhouette": point.silhouette,
             "davies_bouldin": point.davies_bouldin, "calinski_harabasz": point.calinski_harabasz}
            for point in result.points
        ],
    }
