"""Benchmark scenarios that measure the segment engine against bare MLlib, scikit-learn and pandas.

Each scenario runs both sides in one process on the same generated data and prints
one JSON line with the seconds, the ratios and a description of the machine. The
figures and the commands behind them are recorded in docs/benchmarks.md.

    .venv/bin/python scripts/benchmark.py p1 --rows 1000000 --features 8 --k 8
    .venv/bin/python scripts/benchmark.py p2 --rows 1000000 --features 20 --k 8
    .venv/bin/python scripts/benchmark.py p3 --rows 5000000 --features 8 --k 8
    .venv/bin/python scripts/benchmark.py p4 --rows 1000000 --rows-large 10000000
    .venv/bin/python scripts/benchmark.py p5 --rows 1000000 --features 8
    .venv/bin/python scripts/benchmark.py p7
    .venv/bin/python scripts/benchmark.py p8 --rows 1000000 --features 8 --k 8

Generated data goes under --data-dir (default /tmp/stratify-bench) and is reused by
later runs with the same size. Spark runs on local[2] bound to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
# scikit-learn and numpy get the same 2 cores as Spark's local[2].
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")

import numpy as np  # noqa: E402
from pyspark.sql import DataFrame, SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from stratify_spark import tables  # noqa: E402
from stratify_spark.clustering import assign, fit  # noqa: E402
from stratify_spark.config import parse_config  # noqa: E402
from stratify_spark.features import FEATURES_VECTOR, apply_feature_plan, fit_feature_plan, with_raw_features  # noqa: E402
from stratify_spark.session import build_session  # noqa: E402

KEY = "customer_id"


def machine() -> dict:
    """Describe the machine: CPU model, cores, memory, load and library versions."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    import pyspark
    import sklearn

    return {
        "cpu": cpu, "cores": os.cpu_count(), "memory_gb": memory_gb, "load_1_5_15": list(os.getloadavg()),
        "python": platform.python_version(), "pyspark": pyspark.__version__, "sklearn": sklearn.__version__,
        "spark_master": "local[2]",
    }


def session(warehouse: str, shuffle_partitions: int, extra_conf: dict[str, str]) -> SparkSession:
    return build_session("stratify-benchmark", master="local[2]", warehouse=warehouse, extra_conf={
        "spark.ui.enabled": "false",
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.driver.memory": os.environ.get("BENCH_DRIVER_MEMORY", "6g"),
        "spark.sql.shuffle.partitions": str(shuffle_partitions),
        **extra_conf,
    })


def spark_conf_pair(text: str) -> tuple[str, str]:
    """Parse one --spark-conf KEY=VALUE argument."""
    key, separator, value = text.partition("=")
    if not separator or not key.startswith("spark."):
        raise argparse.ArgumentTypeError(f"invalid --spark-conf {text!r}: expected spark.KEY=VALUE, "
                                         "for example spark.io.compression.codec=zstd")
    return key, value


def timed(action: Callable[[], object]) -> tuple[float, object]:
    started = time.perf_counter()
    value = action()
    return time.perf_counter() - started, value


def materialize(df: DataFrame) -> None:
    """Compute every column of every row without keeping the result."""
    df.write.format("noop").mode("overwrite").save()


def centres(features: int, k: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 4.0, (k, features))


def generated(spark: SparkSession, data_dir: Path, rows: int, features: int, k: int, fmt: str = "parquet",
              uniform: bool = False) -> str:
    """Write (once) `rows` Gaussian blobs around k centres with unit spread, or uniform noise, and return the path."""
    shape = "uniform" if uniform else "blobs"
    path = data_dir / f"{shape}_{rows}x{features}_k{k}.{fmt}"
    if (path / "_SUCCESS").exists():
        return str(path)
    if path.exists():
        shutil.rmtree(path)
    partitions = max(2, rows // 1_000_000)
    centre_values = centres(features, k, seed=17)
    cluster = (F.col("id") % k).cast("int") + 1
    columns = [F.concat(F.lit("c"), F.col("id").cast("string")).alias(KEY)]
    for dimension in range(features):
        centre = F.element_at(F.array(*[F.lit(float(value)) for value in centre_values[:, dimension]]), cluster)
        value = F.rand(seed=100 + dimension) if uniform else F.randn(seed=100 + dimension) + centre
        columns.append(value.alias(f"x{dimension}"))
    df = spark.range(0, rows, numPartitions=partitions).select(*columns)
    writer = df.write.mode("overwrite")
    if fmt == "csv":
        writer.option("header", True).csv(str(path))
    else:
        writer.parquet(str(path))
    return str(path)


def dataset_config(features: int, k: int, scaling: str, max_iter: int, tol: float, algorithm: str = "kmeans",
                   extra_segment: dict | None = None) -> dict:
    algorithm_params = {"name": algorithm, "k": k, "seed": 1, "max_iter": max_iter}
    if algorithm == "kmeans":
        algorithm_params["tol"] = tol
    segment = {"features": [{"name": f"x{index}"} for index in range(features)], "scaling": scaling,
               "algorithm": algorithm_params, **(extra_segment or {})}
    return {
        "tenant": "bench", "dataset": f"blobs_{features}", "source": {"format": "csv"},
        "columns": [{"name": KEY, "type": "string", "required": True}]
        + [{"name": f"x{index}", "type": "double"} for index in range(features)],
        "key": {"columns": [KEY]}, "segment": segment,
    }


def product_features(spark: SparkSession, path: str, config) -> tuple[DataFrame, object, float]:
    data = spark.read.parquet(path)
    raw = with_raw_features(data, KEY, list(config.segment.features))
    seconds, plan = timed(lambda: fit_feature_plan(raw, config.segment, "benchmark"))
    return apply_feature_plan(raw, plan), plan, seconds


def bare_kmeans(spark: SparkSession, path: str, features: int, k: int, max_iter: int, tol: float, solver: str,
                cache: bool = False) -> dict:
    from pyspark.ml.clustering import KMeans
    from pyspark.ml.feature import VectorAssembler

    data = spark.read.parquet(path)
    vectors = VectorAssembler(inputCols=[f"x{index}" for index in range(features)], outputCol="v").transform(data)
    if cache:
        vectors = vectors.select(KEY, "v").cache()
        materialize(vectors)
    estimator = KMeans(featuresCol="v", k=k, seed=1, maxIter=max_iter, tol=tol, solver=solver)
    fit_seconds, model = timed(lambda: estimator.fit(vectors))
    transform_seconds, _ = timed(lambda: materialize(model.transform(vectors).select(KEY, "prediction")))
    if cache:
        vectors.unpersist()
    return {"solver": solver, "cached_input": cache, "fit_s": fit_seconds, "transform_s": transform_seconds,
            "total_s": fit_seconds + transform_seconds, "iterations": model.summary.numIter}


def scenario_p1(spark: SparkSession, args) -> dict:
    """P1: the segment job's KMeans stage against the fastest bare MLlib configuration, fit plus transform.

    The sides run in alternating order over `--repeats` rounds, and each side keeps its
    best total, so that warm-up and drifting load do not favour whichever runs last.
    """
    path = generated(spark, args.data_dir, args.rows, args.features, args.k)
    # scaling none: both sides cluster the same numbers, so they run the same iterations.
    config = parse_config(dataset_config(args.features, args.k, "none", args.max_iter, args.tol), "benchmark")
    params = config.segment.algorithm
    features, plan, plan_seconds = product_features(spark, path, config)

    def bare_round() -> list[dict]:
        runs = [bare_kmeans(spark, path, args.features, args.k, args.max_iter, args.tol, solver)
                for solver in ("row", "block", "auto")]
        if args.include_cached:
            runs.append(bare_kmeans(spark, path, args.features, args.k, args.max_iter, args.tol, "row", cache=True))
        return runs

    def product_round() -> dict:
        fit_seconds, result = timed(lambda: fit(features, params))
        transform_seconds, _ = timed(lambda: materialize(
            assign(features, result, "euclidean", args.features).select(KEY, "segment_id", "distance")))
        return {"fit_s": fit_seconds, "transform_s": transform_seconds, "total_s": fit_seconds + transform_seconds,
                "iterations": result.iterations}

    bare: list[dict] = []
    products: list[dict] = []
    for round_index in range(args.repeats):
        if round_index % 2 == 0:
            bare.extend(bare_round())
            products.append(product_round())
        else:
            products.append(product_round())
            bare.extend(bare_round())
    product = {**min(products, key=lambda run: run["total_s"]), "feature_plan_s": plan_seconds}
    fastest = min(bare, key=lambda run: run["total_s"])
    return {"product": product, "product_rounds": products, "bare": bare, "fastest_bare": fastest,
            "ratio_product_to_fastest_bare": product["total_s"] / fastest["total_s"]}


def spark_seconds_per_iteration(spark: SparkSession, path: str, features: int, k: int, solver: str,
                                long_iterations: int) -> dict:
    """Seconds per iteration from two fits with different iteration counts, so fixed costs cancel out."""
    short = bare_kmeans(spark, path, features, k, 2, 0.0, solver)
    long = bare_kmeans(spark, path, features, k, long_iterations, 0.0, solver)
    iterations = long["iterations"] - short["iterations"]
    return {"solver": solver, "short": short, "long": long,
            "per_iteration_s": (long["fit_s"] - short["fit_s"]) / iterations if iterations > 0 else None}


def sklearn_seconds_per_iteration(points: np.ndarray, k: int) -> dict:
    """Seconds per Lloyd iteration of scikit-learn on 2 threads, from fits of 2 and 32 iterations.

    Both fits start from the same centres (the first k points), so initialisation costs
    nothing and cancels out. Each fit runs 3 times and keeps its fastest time, because
    one iteration takes only hundredths of a second at a million rows.
    """
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    start = points[:k].copy()
    results = {}
    with threadpool_limits(limits=2):
        for max_iter in (2, 32):
            runs = []
            for _ in range(3):
                model = KMeans(n_clusters=k, init=start, n_init=1, max_iter=max_iter, tol=0.0, algorithm="lloyd")
                seconds, _ = timed(lambda: model.fit(points))
                runs.append(seconds)
            results[max_iter] = (min(runs), model.n_iter_)
    iterations = results[32][1] - results[2][1]
    return {"fit_2_s": results[2][0], "fit_32_s": results[32][0], "iterations_32": results[32][1],
            "per_iteration_s": (results[32][0] - results[2][0]) / iterations if iterations > 0 else None}


def load_points(path: str, features: int) -> np.ndarray:
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=[f"x{index}" for index in range(features)])
    return np.column_stack([table.column(index).to_numpy() for index in range(features)])


def scenario_p2(spark: SparkSession, args) -> dict:
    """P2: seconds per KMeans iteration against scikit-learn limited to 2 threads.

    Uniform noise has no clusters to converge to, so both sides run every iteration
    they are given; on blobs scikit-learn stopped after 2 iterations.
    """
    path = generated(spark, args.data_dir, args.rows, args.features, args.k, uniform=True)
    spark_runs = [spark_seconds_per_iteration(spark, path, args.features, args.k, solver, args.long_iterations)
                  for solver in ("row", "block")]
    # A difference at or below zero means the fixed part of the fits varied by more than the iterations cost.
    measured = [run for run in spark_runs if run["per_iteration_s"] is not None and run["per_iteration_s"] > 0]
    best = min(measured, key=lambda run: run["per_iteration_s"]) if measured else None
    points = load_points(path, args.features)
    reference = sklearn_seconds_per_iteration(points, args.k)
    return {"spark": spark_runs, "sklearn": reference,
            "ratio_spark_to_sklearn_per_iteration":
                best["per_iteration_s"] / reference["per_iteration_s"] if best and reference["per_iteration_s"] else None}


def pandas_pipeline(csv_path: str, features: int, k: int, max_iter: int, tol: float, out_dir: Path) -> dict:
    """Do what ingest plus segment do, with pandas and scikit-learn: load, key check, scale, fit, assign, profile."""
    import glob

    import pandas as pd
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    started = time.perf_counter()
    frames = [pd.read_csv(name, dtype={KEY: str}) for name in sorted(glob.glob(f"{csv_path}/*.csv"))]
    data = pd.concat(frames, ignore_index=True)
    data = data.drop_duplicates(subset=[KEY], keep="first")
    data.to_parquet(out_dir / "pandas_data.parquet")
    names = [f"x{index}" for index in range(features)]
    values = data[names].to_numpy()
    scaled = (values - values.mean(axis=0)) / values.std(axis=0, ddof=1)
    with threadpool_limits(limits=2):
        model = KMeans(n_clusters=k, n_init=1, max_iter=max_iter, tol=tol, algorithm="lloyd", random_state=1)
        labels = model.fit_predict(scaled)
    distance = np.sqrt(((scaled - model.cluster_centers_[labels]) ** 2).sum(axis=1))
    assignments = pd.DataFrame({KEY: data[KEY].to_numpy(), "segment_id": labels, "distance": distance})
    assignments.to_parquet(out_dir / "pandas_assignments.parquet")
    grouped = data[names].groupby(labels)
    profiles = pd.concat({"mean": grouped.mean(), "std": grouped.std(), "min": grouped.min(),
                          "p25": grouped.quantile(0.25), "median": grouped.median(), "p75": grouped.quantile(0.75),
                          "max": grouped.max()}, axis=1)
    profiles.to_parquet(out_dir / "pandas_profiles.parquet")
    return {"total_s": time.perf_counter() - started, "iterations": int(model.n_iter_), "rows": len(data)}


def scenario_p3(spark: SparkSession, args) -> dict:
    """P3: CSV to Delta to segments and profiles, against a pandas plus scikit-learn script doing the same."""
    from stratify_spark.ingest import run_ingest
    from stratify_spark.segment import run_segment

    csv_path = generated(spark, args.data_dir, args.rows, args.features, args.k, fmt="csv")
    warehouse = args.data_dir / f"p3_warehouse_{args.rows}"
    if warehouse.exists():
        shutil.rmtree(warehouse)
    config = parse_config(dataset_config(args.features, args.k, "standard", args.max_iter, args.tol), "benchmark")
    ingest_seconds, _ = timed(lambda: run_ingest(spark, config, csv_path, str(warehouse)))
    segment_seconds, result = timed(lambda: run_segment(spark, config, str(warehouse), run_id="p3"))
    product = {"ingest_s": ingest_seconds, "segment_s": segment_seconds, "total_s": ingest_seconds + segment_seconds,
               "rows_used": result.rows_used}
    if args.skip_pandas:
        return {"product": product}
    out_dir = args.data_dir / "p3_pandas"
    out_dir.mkdir(parents=True, exist_ok=True)
    reference = pandas_pipeline(csv_path, args.features, args.k, args.max_iter, args.tol, out_dir)
    return {"product": product, "pandas": reference, "ratio_product_to_pandas": product["total_s"] / reference["total_s"]}


def product_stage(spark: SparkSession, path: str, features: int, k: int, max_iter: int, tol: float) -> dict:
    """Feature plan, fit and assignment of the segment job on one Parquet input."""
    config = parse_config(dataset_config(features, k, "standard", max_iter, tol), "benchmark")
    features_df, plan, plan_seconds = product_features(spark, path, config)
    fit_seconds, result = timed(lambda: fit(features_df, config.segment.algorithm))
    transform_seconds, _ = timed(lambda: materialize(
        assign(features_df, result, "euclidean", features).select(KEY, "segment_id", "distance")))
    total = plan_seconds + fit_seconds + transform_seconds
    return {"feature_plan_s": plan_seconds, "fit_s": fit_seconds, "transform_s": transform_seconds, "total_s": total,
            "iterations": result.iterations}


def scenario_p4(spark: SparkSession, args) -> dict:
    """P4: time per row of the segment job's stages at two sizes; the ratio should stay near 1."""
    runs = {}
    for rows in (args.rows, args.rows_large):
        path = generated(spark, args.data_dir, rows, args.features, args.k)
        stage = product_stage(spark, path, args.features, args.k, args.max_iter, 0.0)
        stage["seconds_per_million_rows"] = stage["total_s"] / rows * 1e6
        runs[str(rows)] = stage
    small, large = runs[str(args.rows)], runs[str(args.rows_large)]
    return {"runs": runs, "ratio_per_row_large_to_small": large["seconds_per_million_rows"]
            / small["seconds_per_million_rows"]}


def scenario_p5(spark: SparkSession, args) -> dict:
    """P5: the k sweep 2..10 against the sum of single fits, and the share of the quality scores in it."""
    from pyspark.ml.evaluation import ClusteringEvaluator

    from stratify_spark.config import KSweepConfig
    from stratify_spark.k_sweep import run_k_sweep
    from stratify_spark.quality import quality_scores

    path = generated(spark, args.data_dir, args.rows, args.features, args.k)
    config = parse_config(dataset_config(args.features, args.k, "standard", args.max_iter, args.tol), "benchmark")
    features_df, plan, _ = product_features(spark, path, config)
    params = config.segment.algorithm
    sweep_config = KSweepConfig(k_min=2, k_max=10, criterion="silhouette")

    sweep_seconds, sweep = timed(lambda: run_k_sweep(features_df, params, sweep_config, plan.rows_used))
    single = []
    for k in range(2, 11):
        fit_seconds, result = timed(lambda: fit(features_df, params.model_copy(update={"k": k})))
        labelled = result.model.transform(features_df).select(FEATURES_VECTOR, "segment_id")
        quality_seconds, _ = timed(lambda: quality_scores(labelled, FEATURES_VECTOR, "segment_id"))
        evaluator = ClusteringEvaluator(featuresCol=FEATURES_VECTOR, predictionCol="segment_id",
                                        metricName="silhouette", distanceMeasure="squaredEuclidean")
        evaluator_seconds, _ = timed(lambda: evaluator.evaluate(labelled))
        single.append({"k": k, "fit_s": fit_seconds, "quality_s": quality_seconds,
                       "mllib_silhouette_s": evaluator_seconds})
    fits = sum(run["fit_s"] for run in single)
    quality = sum(run["quality_s"] for run in single)
    return {
        "sweep_s": sweep_seconds, "chosen_k": sweep.chosen_k, "single": single, "sum_single_fits_s": fits,
        "ratio_sweep_to_single_fits": sweep_seconds / fits,
        "quality_share_of_sweep": quality / sweep_seconds,
        "mllib_silhouette_share_if_used": sum(run["mllib_silhouette_s"] for run in single) / sweep_seconds,
    }


def files_read(df: DataFrame) -> int:
    """Collect `df` and return the number of files its scans read, from the executed plan's metrics."""
    execution = df._jdf.queryExecution()
    df._jdf.collectAsList()
    plan = execution.executedPlan()
    total = 0
    nodes = [plan]
    while nodes:
        node = nodes.pop()
        if node.nodeName() == "AdaptiveSparkPlan":
            nodes.append(node.executedPlan())
            continue
        metrics = node.metrics()
        if metrics.contains("numFiles"):
            total += int(metrics.apply("numFiles").value())
        children = node.children()
        for index in range(children.size()):
            nodes.append(children.apply(index))
    return total


def scenario_p7(spark: SparkSession, args) -> dict:
    """P7: with 20 runs of 5 tenants in the assignments table, files read by a query for one run."""
    warehouse = args.data_dir / "p7_warehouse"
    if warehouse.exists():
        shutil.rmtree(warehouse)
    for tenant_index in range(5):
        tenant = f"tenant_{tenant_index}"
        for run_index in range(4):
            run_id = f"run-{run_index}"
            rows = spark.range(0, 2000, numPartitions=2).select(
                F.lit(tenant).alias("tenant"), F.lit("customers").alias("dataset"), F.lit(run_id).alias("run_id"),
                F.concat(F.lit("c"), F.col("id").cast("string")).alias("record_key"),
                (F.col("id") % 5).cast("int").alias("segment_id"), F.rand(seed=run_index).alias("distance"),
                F.lit(None).cast("string").alias("segment_key"),
            )
            tables.replace_run_rows(spark, str(warehouse), tables.ASSIGNMENTS, tenant, run_id, rows)
    path = tables.table_path(str(warehouse), tables.ASSIGNMENTS)
    files_in_table = int(spark.sql(f"DESCRIBE DETAIL delta.`{path}`").first()["numFiles"])
    one_run = tables.read_run_rows(spark, str(warehouse), tables.ASSIGNMENTS, "tenant_2", "run-1")
    read = files_read(one_run)
    return {"runs": 20, "tenants": 5, "files_in_table": files_in_table, "files_read": read,
            "share_read": read / files_in_table}


def scenario_p8(spark: SparkSession, args) -> dict:
    """P8: BisectingKMeans against KMeans at the same k through the segment job's fit.

    BisectingKMeans runs max_iter iterations for every split, without a convergence
    test, and log2(k) levels of splits, so it is timed at several max_iter values
    next to its cost, to show what fewer iterations per split give up.
    """
    path = generated(spark, args.data_dir, args.rows, args.features, args.k)
    results = {}
    variants = [("kmeans", args.max_iter)] + [("bisecting_kmeans", max_iter) for max_iter in (20, 10, 5)]
    for algorithm, max_iter in variants:
        config = parse_config(dataset_config(args.features, args.k, "standard", max_iter, args.tol, algorithm),
                              "benchmark")
        features_df, _, _ = product_features(spark, path, config)
        seconds, result = timed(lambda: fit(features_df, config.segment.algorithm))
        results[f"{algorithm}_max_iter_{max_iter}"] = {
            "fit_s": seconds, "cost": result.training_cost, "iterations": result.iterations,
        }
    kmeans = results[f"kmeans_max_iter_{args.max_iter}"]
    for name, run in results.items():
        run["ratio_to_kmeans"] = run["fit_s"] / kmeans["fit_s"]
        run["cost_to_kmeans"] = run["cost"] / kmeans["cost"]
    return {"runs": results}


def warm_up(spark: SparkSession, data_dir: Path) -> None:
    """Fit once on small data, so that JIT compilation does not land on the first timed side."""
    path = generated(spark, data_dir, 20_000, 4, 4)
    bare_kmeans(spark, path, 4, 4, 5, 1e-4, "row")


SCENARIOS = {"p1": scenario_p1, "p2": scenario_p2, "p3": scenario_p3, "p4": scenario_p4, "p5": scenario_p5,
             "p7": scenario_p7, "p8": scenario_p8}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run one benchmark scenario and print its figures as JSON.")
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of generated data (default 1,000,000)")
    parser.add_argument("--rows-large", type=int, default=10_000_000, help="p4: the larger size (default 10,000,000)")
    parser.add_argument("--features", type=int, default=8, help="feature columns (default 8)")
    parser.add_argument("--k", type=int, default=8, help="segments, and blobs in the generated data (default 8)")
    parser.add_argument("--max-iter", type=int, default=20, help="maximum KMeans iterations (default 20)")
    parser.add_argument("--tol", type=float, default=1e-4, help="KMeans convergence tolerance (default 1e-4)")
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/stratify-bench"),
                        help="folder for generated data and warehouses (default /tmp/stratify-bench)")
    parser.add_argument("--shuffle-partitions", type=int, default=4,
                        help="spark.sql.shuffle.partitions, to raise for tens of millions of rows (default 4)")
    parser.add_argument("--long-iterations", type=int, default=12,
                        help="p2: iterations of the longer Spark fit, against 2 in the shorter one (default 12)")
    parser.add_argument("--repeats", type=int, default=2,
                        help="p1: rounds, alternating which side runs first, each side keeping its best (default 2)")
    parser.add_argument("--include-cached", action="store_true",
                        help="p1: also time bare MLlib on a cached input DataFrame, which is much slower")
    parser.add_argument("--skip-pandas", action="store_true", help="p3: time only the product side")
    parser.add_argument("--spark-conf", type=spark_conf_pair, action="append", default=[], metavar="KEY=VALUE",
                        help="extra Spark setting for the benchmark session, as spark.KEY=VALUE; repeat the option "
                             "for several settings")
    parser.add_argument("--output", type=Path, help="also append the JSON line to this file")
    args = parser.parse_args(argv)

    args.data_dir.mkdir(parents=True, exist_ok=True)
    spark = session(str(args.data_dir / "warehouse"), args.shuffle_partitions, dict(args.spark_conf))
    warm_up(spark, args.data_dir)
    before = machine()
    started = time.perf_counter()
    figures = SCENARIOS[args.scenario](spark, args)
    record = {
        "scenario": args.scenario, "rows": args.rows, "features": args.features, "k": args.k,
        "max_iter": args.max_iter, "tol": args.tol, "shuffle_partitions": args.shuffle_partitions,
        "spark_conf": dict(args.spark_conf),
        "driver_memory": os.environ.get("BENCH_DRIVER_MEMORY", "6g"), "seconds": round(time.perf_counter() - started, 3),
        "machine": before, "load_after": list(os.getloadavg()), "figures": figures,
    }
    line = json.dumps(record)
    print(line)
    if args.output:
        with args.output.open("a", encoding="utf-8") as output:
            output.write(line + "\n")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
