"""Segment stability: refit on random subsamples and measure the agreement with the full fit.

Each subsample draws a declared share of the rows without replacement and is
refitted with the same algorithm and k, and a seed of its own. On the rows of
the subsample, the refit's labels are compared with the full fit's:

- per run, the adjusted Rand index of the two labelings;
- per segment of the full fit, the best Jaccard overlap |S & T| / |S | T| with any
  segment T of the refit, where S is the segment restricted to the subsample.

The means over the subsamples are the stability scores. A segment whose mean best
Jaccard overlap is below `min_jaccard` is marked unstable: the refits do not find it
again as one segment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from stratify_spark import tables
from stratify_spark.agreement import adjusted_rand_index, contingency
from stratify_spark.clustering import SEGMENT_COLUMN, fit
from stratify_spark.config import BisectingKMeansParams, KMeansParams, StabilityConfig
from stratify_spark.errors import InputError
from stratify_spark.k_sweep import SweepResult, sweep_rows, sweep_summary

REFIT_COLUMN = "refit_segment_id"


@dataclass(frozen=True)
class SegmentOverlap:
    """Best Jaccard overlap of one full-fit segment with a segment of one refit."""

    segment_id: int
    rows: int
    jaccard: float
    matched_segment_id: Optional[int]


@dataclass(frozen=True)
class SubsampleAgreement:
    """Agreement of one subsample refit with the full fit, on the rows of the subsample."""

    subsample: int
    rows: int
    adjusted_rand_index: float
    segments: list[SegmentOverlap]


@dataclass(frozen=True)
class StabilityResult:
    """Per-subsample agreements and their means. `unstable_segments` lists the full-fit segment ids below min_jaccard."""

    subsamples: list[SubsampleAgreement]
    min_jaccard: float
    mean_adjusted_rand_index: float
    min_adjusted_rand_index: float
    mean_jaccard: dict[int, float] = field(default_factory=dict)
    unstable_segments: list[int] = field(default_factory=list)


def best_overlaps(cells: list[tuple[int, int, int]], segment_ids: list[int]) -> list[SegmentOverlap]:
    """Return, per full-fit segment, the refit segment with the largest Jaccard overlap.

    `cells` are (full segment, refit segment, rows) counts. A segment with no rows in
    the subsample gets overlap 0 and no match. Ties go to the smaller refit segment id.
    """
    full_sizes: dict[int, int] = {}
    refit_sizes: dict[int, int] = {}
    for full_id, refit_id, rows in cells:
        full_sizes[full_id] = full_sizes.get(full_id, 0) + rows
        refit_sizes[refit_id] = refit_sizes.get(refit_id, 0) + rows

    overlaps = []
    for segment_id in segment_ids:
        best, matched = 0.0, None
        for full_id, refit_id, rows in sorted(cells, key=lambda cell: cell[1]):
            if full_id != segment_id:
                continue
            jaccard = rows / (full_sizes[full_id] + refit_sizes[refit_id] - rows)
            if jaccard > best:
                best, matched = jaccard, refit_id
        overlaps.append(SegmentOverlap(segment_id, full_sizes.get(segment_id, 0), best, matched))
    return overlaps


def run_stability(features: DataFrame, full_labels: DataFrame, key_column: str,
                  params: Union[KMeansParams, BisectingKMeansParams], stability: StabilityConfig,
                  segment_ids: list[int], rows_used: int, log=None) -> StabilityResult:
    """Refit on `stability.subsamples` subsamples of `features` and score each refit against `full_labels`.

    `full_labels` contains `key_column` and `segment_id` of the full fit. Only the k x k
    contingency table of each refit reaches the driver. Raises InputError when a
    subsample is expected to hold fewer than two rows per segment.
    """
    expected_rows = rows_used * stability.fraction
    if expected_rows < 2 * params.k:
        raise InputError(
            f"stability subsamples would hold about {expected_rows:.0f} rows, fewer than two per segment for k={params.k}; "
            f"raise stability.fraction or remove the stability section"
        )
    spark = features.sparkSession

    agreements = []
    for subsample in range(stability.subsamples):
        seed = stability.seed + subsample
        sample = features.sample(withReplacement=False, fraction=stability.fraction, seed=seed)
        refit = fit(sample, params.model_copy(update={"seed": seed}))
        refit_labels = refit.model.transform(sample).select(key_column, F.col(SEGMENT_COLUMN).alias(REFIT_COLUMN))

        # Collect the k x k table once and score the small local copy, so the join runs once per subsample.
        table = contingency(full_labels, refit_labels, key_column, SEGMENT_COLUMN, REFIT_COLUMN)
        cells = [(int(row[SEGMENT_COLUMN]), int(row[REFIT_COLUMN]), int(row["n"])) for row in table.collect()]
        local_table = spark.createDataFrame(cells, f"{SEGMENT_COLUMN} int, {REFIT_COLUMN} int, n long")
        agreement = SubsampleAgreement(
            subsample=subsample, rows=sum(cell[2] for cell in cells),
            adjusted_rand_index=adjusted_rand_index(local_table, SEGMENT_COLUMN, REFIT_COLUMN),
            segments=best_overlaps(cells, segment_ids),
        )
        if log is not None:
            log.info("stability: subsample %d of %d (%d rows) adjusted_rand_index=%.4f", subsample + 1,
                     stability.subsamples, agreement.rows, agreement.adjusted_rand_index)
        agreements.append(agreement)

    return summarize(agreements, segment_ids, stability.min_jaccard)


def summarize(agreements: list[SubsampleAgreement], segment_ids: list[int], min_jaccard: float) -> StabilityResult:
    """Average the per-subsample agreements and mark the segments below min_jaccard."""
    indexes = [agreement.adjusted_rand_index for agreement in agreements]
    mean_jaccard = {}
    for position, segment_id in enumerate(segment_ids):
        values = [agreement.segments[position].jaccard for agreement in agreements]
        mean_jaccard[segment_id] = sum(values) / len(values)
    return StabilityResult(
        subsamples=agreements, min_jaccard=min_jaccard,
        mean_adjusted_rand_index=sum(indexes) / len(indexes), min_adjusted_rand_index=min(indexes),
        mean_jaccard=mean_jaccard,
        unstable_segments=[segment_id for segment_id, value in mean_jaccard.items() if value < min_jaccard],
    )


def stability_rows(result: StabilityResult, tenant: str, dataset: str, run_id: str) -> list[dict]:
    """Return the rows of the run_stability table: per subsample, then the means (subsample null)."""
    base = {"tenant": tenant, "dataset": dataset, "run_id": run_id}
    rows = []
    for agreement in result.subsamples:
        rows.append({**base, "scope": "run", "segment_id": None, "subsample": agreement.subsample,
                     "rows": agreement.rows, "adjusted_rand_index": agreement.adjusted_rand_index,
                     "jaccard": None, "matched_segment_id": None, "stable": None})
        for overlap in agreement.segments:
            rows.append({**base, "scope": "segment", "segment_id": overlap.segment_id,
                         "subsample": agreement.subsample, "rows": overlap.rows, "adjusted_rand_index": None,
                         "jaccard": overlap.jaccard, "matched_segment_id": overlap.matched_segment_id,
                         "stable": None})
    rows.append({**base, "scope": "run", "segment_id": None, "subsample": None,
                 "rows": sum(agreement.rows for agreement in result.subsamples),
                 "adjusted_rand_index": result.mean_adjusted_rand_index, "jaccard": None,
                 "matched_segment_id": None, "stable": not result.unstable_segments})
    for segment_id, value in result.mean_jaccard.items():
        rows.append({**base, "scope": "segment", "segment_id": segment_id, "subsample": None, "rows": None,
                     "adjusted_rand_index": None, "jaccard": value, "matched_segment_id": None,
                     "stable": value >= result.min_jaccard})
    return rows


def stability_summary(result: StabilityResult) -> dict:
    """Return the stability scores as they appear in the job's JSON summary."""
    return {
        "subsamples": len(result.subsamples),
        "adjusted_rand_index_mean": result.mean_adjusted_rand_index,
        "adjusted_rand_index_min": result.min_adjusted_rand_index,
        "segment_jaccard_mean": {str(segment_id): value for segment_id, value in result.mean_jaccard.items()},
        "min_jaccard": result.min_jaccard,
        "unstable_segments": result.unstable_segments,
    }


def write_run_evaluation(spark, warehouse: str, tenant: str, dataset: str, run_id: str, k_used: int,
                         sweep: Optional[SweepResult], stability: Optional[StabilityResult]) -> tuple[list[tuple], dict]:
    """Write a run's k sweep and stability rows and return its extra run_metrics rows and JSON summary keys.

    A run without a sweep or without stability deletes the rows that an earlier run
    of the same run id left in that table, so a re-run never shows stale rows.
    """
    metric_rows: list[tuple] = []
    summary: dict = {}

    if sweep is not None:
        tables.replace_run_rows(spark, warehouse, tables.RUN_K_SWEEP, tenant, run_id, tables.rows_df(
            spark, tables.RUN_K_SWEEP, sweep_rows(sweep, tenant, dataset, run_id)))
        metric_rows.append(("k_chosen", float(sweep.chosen_k), sweep.reason))
        summary.update({"k_chosen": sweep.chosen_k, "k_chosen_reason": sweep.reason, "k_sweep": sweep_summary(sweep)})
    else:
        tables.delete_run_rows(spark, warehouse, tables.RUN_K_SWEEP, tenant, run_id)
        reason = "k from the config; the run has no k sweep"
        metric_rows.append(("k_chosen", float(k_used), reason))
        summary.update({"k_chosen": k_used, "k_chosen_reason": reason})

    if stability is not None:
        tables.replace_run_rows(spark, warehouse, tables.RUN_STABILITY, tenant, run_id, tables.rows_df(
            spark, tables.RUN_STABILITY, stability_rows(stability, tenant, dataset, run_id)))
        refits = f"{len(stability.subsamples)} subsample refits against the full fit"
        metric_rows += [
            ("stability_ari_mean", stability.mean_adjusted_rand_index, f"mean adjusted Rand index of {refits}"),
            ("stability_ari_min", stability.min_adjusted_rand_index, f"lowest adjusted Rand index of {refits}"),
            ("unstable_segments", float(len(stability.unstable_segments)),
             f"segments whose mean best Jaccard overlap is below {stability.min_jaccard}: "
             f"{stability.unstable_segments}"),
        ]
        summary["stability"] = stability_summary(stability)
    else:
        tables.delete_run_rows(spark, warehouse, tables.RUN_STABILITY, tenant, run_id)
    return metric_rows, summary
