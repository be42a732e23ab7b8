"""Integration: a standalone master and two workers on 127.0.0.1, with ingest and segment submitted to them.

The cluster comes from scripts/cluster-start.sh on free ports in a temporary folder
and is stopped by scripts/cluster-stop.sh when the module ends, also after a failure.
The jobs go through scripts/submit.sh with the package zip from scripts/package.sh
in --py-files, as a scheduler would submit them.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from stratify_spark.demo import write_demo_csv

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
ROWS = 300
RUN_ID = "cluster-run"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def loopback_env() -> dict[str, str]:
    return {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"}


def stop_cluster(state_dir: Path) -> None:
    """Stop the cluster, then SIGKILL any process it started that is still alive."""
    subprocess.run([str(SCRIPTS / "cluster-stop.sh"), "--dir", str(state_dir)], env=loopback_env(),
                   capture_output=True, text=True, timeout=120)
    for pid_file in (state_dir / "pids").glob("*.pid"):
        try:
            os.kill(int(pid_file.read_text().strip()), 9)
        except (ProcessLookupError, ValueError):
            pass


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    state_dir = tmp_path_factory.mktemp("cluster")
    port, webui_port = free_port(), free_port()
    try:
        started = subprocess.run(
            [str(SCRIPTS / "cluster-start.sh"), "--workers", "2", "--worker-cores", "1", "--worker-memory", "1g",
             "--port", str(port), "--webui-port", str(webui_port), "--dir", str(state_dir), "--timeout", "180"],
            env=loopback_env(), capture_output=True, text=True, timeout=240,
        )
        assert started.returncode == 0, f"cluster-start.sh failed:\n{started.stderr}"
        yield {"master": started.stdout.strip().splitlines()[-1], "dir": state_dir, "port": port}
    finally:
        stop_cluster(state_dir)


@pytest.fixture(scope="module")
def submitted(cluster, tmp_path_factory):
    """Submit ingest, then segment, of 300 generated customers to the cluster; keep exit codes and summaries."""
    folder = tmp_path_factory.mktemp("cluster-jobs")
    warehouse = str(folder / "warehouse")
    source = write_demo_csv(folder / "customers.csv", ROWS, seed=11)
    package = subprocess.run([str(SCRIPTS / "package.sh")], capture_output=True, text=True, check=True,
                             timeout=60).stdout.strip()
    spark_args = ["--master", cluster["master"], "--py-files", package,
                  "--conf", "spark.executor.memory=512m", "--conf", "spark.ui.enabled=false"]

    result = {"warehouse": warehouse, "package": package}
    for job, extra in (("ingest", ["--source", str(source), "--ingest-id", "ingest-cluster"]),
                       ("segment", ["--run-id", RUN_ID])):
        summary_file = folder / f"{job}.json"
        completed = subprocess.run(
            [str(SCRIPTS / "submit.sh"), *spark_args, str(ROOT / "jobs" / f"{job}.py"),
             "--config", str(ROOT / "conf" / "demo.yaml"), "--warehouse", warehouse,
             "--summary-file", str(summary_file), *extra],
            cwd=folder, env=loopback_env(), capture_output=True, text=True, timeout=600,
        )
        result[f"{job}_code"] = completed.returncode
        result[f"{job}_output"] = completed.stdout[-4000:] + completed.stderr[-4000:]
        result[f"{job}_summary"] = json.loads(summary_file.read_text()) if summary_file.exists() else {}
    return result


def read_table(spark, warehouse: str, name: str):
    return spark.read.format("delta").load(f"{warehouse}/tables/{name}")


def test_cluster_has_two_workers(cluster):
    logs = sorted(path.name for path in (cluster["dir"] / "logs").glob("worker-*.log"))
    assert logs == ["worker-1.log", "worker-2.log"]
    assert cluster["master"] == f"spark://127.0.0.1:{cluster['port']}"


def test_cluster_ingest_succeeds(submitted):
    assert submitted["ingest_code"] == 0, submitted["ingest_output"]
    assert submitted["ingest_summary"]["status"] == "succeeded"
    assert submitted["ingest_summary"]["rows_read"] == ROWS
    assert submitted["ingest_summary"]["rows_loaded"] == ROWS


def test_cluster_segment_succeeds(submitted):
    assert submitted["segment_code"] == 0, submitted["segment_output"]
    assert submitted["segment_summary"]["status"] == "succeeded"
    assert submitted["segment_summary"]["run_id"] == RUN_ID
    assert submitted["segment_summary"]["k_produced"] == 4


def test_cluster_data_table(spark, submitted):
    data = spark.read.format("delta").load(f"{submitted['warehouse']}/datasets/demo/customers")
    assert data.count() == ROWS
    assert data.select("record_key").distinct().count() == ROWS
    assert data.filter(F.col("ingest_id") != "ingest-cluster").count() == 0


def test_cluster_run_ledger(spark, submitted):
    runs = read_table(spark, submitted["warehouse"], "runs").filter(F.col("run_id") == RUN_ID).collect()
    assert len(runs) == 1
    assert runs[0]["status"] == "succeeded"
    assert runs[0]["rows_used"] == ROWS
    assert runs[0]["k_produced"] == 4


def test_cluster_assignments(spark, submitted):
    assignments = read_table(spark, submitted["warehouse"], "assignments").filter(F.col("run_id") == RUN_ID)
    sizes = {row["segment_id"]: row["count"] for row in assignments.groupBy("segment_id").count().collect()}
    assert sum(sizes.values()) == ROWS
    assert assignments.select("record_key").distinct().count() == ROWS
    assert sorted(sizes) == [0, 1, 2, 3]
    assert {str(segment): size for segment, size in sizes.items()} == submitted["segment_summary"]["segment_sizes"]


def test_cluster_executors_got_package(cluster, submitted):
    """Each application's executors ran in a worker folder that received the package zip and the Delta jar."""
    zip_name = Path(submitted["package"]).name
    executor_dirs = [path for path in (cluster["dir"] / "work").glob("worker-*/app-*/*") if path.is_dir()]
    assert executor_dirs, "no executor folders under the workers' work directories"
    for executor_dir in executor_dirs:
        names = {path.name for path in executor_dir.iterdir()}
        assert zip_name in names, f"{executor_dir} lacks {zip_name}: {sorted(names)}"
        assert any(name.startswith("io.delta_delta-spark_") for name in names), sorted(names)
    applications = {path.parent.name for path in executor_dirs}
    assert len(applications) == 2
