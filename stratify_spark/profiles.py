"""Segment profiles in original units and the short segment summary that jobs print."""

from __future__ import annotations

from typing import Optional

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from stratify_spark.clustering import SEGMENT_COLUMN
from stratify_spark.features import FeaturePlan, is_null_feature, raw_feature

PERCENTILE_ACCURACY = 10000
PROFILE_COLUMNS = (
    SEGMENT_COLUMN, "size", "share", "feature", "mean", "stddev", "min", "p25", "median", "p75", "max",
    "null_rate", "centre", "overall_mean", "z_score",
)


def _per_segment_value(values: list[Optional[float]]) -> Column:
    """Pick the value of the row's segment from a list indexed by segment id."""
    return F.element_at(F.array(*[F.lit(value).cast("double") for value in values]), F.col(SEGMENT_COLUMN) + 1)


def segment_profiles(assigned: DataFrame, plan: FeaturePlan,
                     centres: Optional[list[list[float]]] = None) -> DataFrame:
    """Return one row per (segment, feature) with size, share and statistics in original units.

    Statistics skip missing values, so an imputed value never shows up as data;
    `null_rate` is the share of the segment's rows whose value was missing.
    Standard deviations are sample ones (n - 1). Quartiles come from
    percentile_approx with accuracy 10000, so each is a value of the column.
    `centres` are in original units, indexed by segment id; `z_score` is
    (segment mean - overall mean) / overall standard deviation.
    """
    aggregates = [F.count(F.lit(1)).alias("size")]
    for index in range(len(plan.features)):
        value = F.col(raw_feature(index))
        aggregates.append(F.struct(
            F.avg(value).alias("mean"),
            F.stddev_samp(value).alias("stddev"),
            F.min(value).alias("min"),
            F.percentile_approx(value, [0.25, 0.5, 0.75], PERCENTILE_ACCURACY).alias("quartiles"),
            F.max(value).alias("max"),
            F.avg(F.col(is_null_feature(index)).cast("double")).alias("null_rate"),
        ).alias(f"f{index}"))
    per_segment = assigned.groupBy(SEGMENT_COLUMN).agg(*aggregates)

    feature_rows = F.array(*[
        F.struct(F.lit(index).alias("index"), F.lit(stats.spec.name).alias("feature"), F.col(f"f{index}").alias("stats"))
        for index, stats in enumerate(plan.features)
    ])
    # per_segment has one row per segment, so a window over all of it is cheap.
    total = F.sum("size").over(Window.partitionBy())
    # The share is computed before the explode, so the window sums one row per segment.
    with_share = per_segment.withColumn("share", F.col("size") / total)
    long = with_share.select(SEGMENT_COLUMN, "size", "share", F.explode(feature_rows).alias("f"))

    overall_means = F.element_at(F.array(*[F.lit(stats.mean).cast("double") for stats in plan.features]), F.col("f.index") + 1)
    overall_stds = F.element_at(F.array(*[F.lit(stats.stddev).cast("double") for stats in plan.features]), F.col("f.index") + 1)
    if centres is not None:
        centre = F.element_at(
            F.array(*[_per_segment_value([centre[index] for centre in centres]) for index in range(len(plan.features))]),
            F.col("f.index") + 1,
        )
    else:
        centre = F.lit(None).cast("double")

    return long.select(
        F.col(SEGMENT_COLUMN).cast("int").alias(SEGMENT_COLUMN),
        F.col("size").cast("long").alias("size"),
        "share",
        F.col("f.feature").alias("feature"),
        F.col("f.stats.mean").alias("mean"),
        F.col("f.stats.stddev").alias("stddev"),
        F.col("f.stats.min").alias("min"),
        F.col("f.stats.quartiles")[0].alias("p25"),
        F.col("f.stats.quartiles")[1].alias("median"),
        F.col("f.stats.quartiles")[2].alias("p75"),
        F.col("f.stats.max").alias("max"),
        F.col("f.stats.null_rate").alias("null_rate"),
        centre.alias("centre"),
        overall_means.alias("overall_mean"),
        F.when(overall_stds > 0, (F.col("f.stats.mean") - overall_means) / overall_stds).alias("z_score"),
    )


def summarize_segments(profile_rows: list[dict], top_features: int = 3) -> list[dict]:
    """Turn collected profile rows into one summary per segment: size, share and distinguishing features.

    A feature sets a segment apart by its absolute z-score; the sign tells high from low.
    """
    segments: dict[int, dict] = {}
    for row in profile_rows:
        summary = segments.setdefault(row[SEGMENT_COLUMN], {
            "segment_id": row[SEGMENT_COLUMN], "size": row["size"], "share": row["share"], "features": [],
        })
        if row["z_score"] is not None:
            summary["features"].append((row["feature"], row["z_score"], row["mean"]))
    result = []
    for segment_id in sorted(segments):
        summary = segments[segment_id]
        ranked = sorted(summary["features"], key=lambda item: -abs(item[1]))[:top_features]
        summary["distinguishing"] = [
            f"{'high' if z > 0 else 'low'} {name} (mean {mean:,.4g}, {z:+.2f} sd)" for name, z, mean in ranked
        ]
        del summary["features"]
        result.append(summary)
    return result


def format_segment_table(summaries: list[dict]) -> str:
    """Render segment summaries as a fixed-width text table for the job log."""
    lines = [f"{'segment':>7}  {'size':>10}  {'share':>6}  distinguishing features"]
    for summary in summaries:
        lines.append(
            f"{summary['segment_id']:>7}  {summary['size']:>10,}  {summary['share']:>6.1%}  "
            + "; ".join(summary["distinguishing"])
        )
    return "\n".join(lines)
