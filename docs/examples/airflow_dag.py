"""Example Airflow DAG for Stratify on Spark (an example, not a dependency of the project).

Assumes Airflow 2.6 or newer with apache-airflow-providers-apache-spark, this checkout
at /opt/stratify on every Airflow worker with scripts/setup.sh and scripts/package.sh
run once, and a Spark connection "spark_stratify" whose host is the master URL
(for example spark://127.0.0.1:7077).
"""

from __future__ import annotations

import datetime as dt
import glob

from airflow import DAG
from airflow.operators.bash import BashOperator
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

PROJECT = "/opt/stratify"
WAREHOUSE = "/data/warehouse"
DELTA_JARS = ",".join(sorted(glob.glob(f"{PROJECT}/.cache/jars/*/*.jar")))
PACKAGE = sorted(glob.glob(f"{PROJECT}/dist/stratify_spark-*.zip"))[-1:]
SPARK_CONF = {"spark.executor.memory": "2g", "spark.pyspark.python": f"{PROJECT}/.venv/bin/python"}


def stratify_job(task_id: str, job: str, *arguments: str) -> SparkSubmitOperator:
    """Submit one of the project's jobs with the Delta jars and the package zip."""
    return SparkSubmitOperator(
        task_id=task_id,
        conn_id="spark_stratify",
        application=f"{PROJECT}/jobs/{job}.py",
        application_args=[*arguments, "--warehouse", WAREHOUSE],
        jars=DELTA_JARS,
        py_files=",".join(PACKAGE),
        conf=SPARK_CONF,
        env_vars={"PYSPARK_DRIVER_PYTHON": f"{PROJECT}/.venv/bin/python"},
        name=f"stratify-{task_id}",
    )


with DAG(
    dag_id="stratify_nightly",
    start_date=dt.datetime(2024, 6, 1),
    schedule="15 2 * * *",
    catchup=False,
    max_active_runs=1,
) as dag:
    ingest = stratify_job("ingest_cards", "ingest", "--config", f"{PROJECT}/conf/cc_general.yaml",
                          "--source", "/data/incoming/cards/*.csv")
    segment = stratify_job("segment_cards", "segment", "--config", f"{PROJECT}/conf/cc_general.yaml",
                           "--run-id", "cards-{{ ds }}")

    # Many small tenants share one submission; the task fails when any tenant failed (exit code 1, 2 or 3).
    small_tenants = stratify_job("small_tenants", "batch", "--config-dir", f"{PROJECT}/conf/tenants",
                                 "--step", "both", "--run-id", "nightly-{{ ds }}")

    # Segments the wholesale data set only when a separate feed changed it since its last run. Nothing
    # to do exits 4 here, which Airflow records as skipped, not failed.
    refresh_wholesale = BashOperator(
        task_id="refresh_wholesale",
        bash_command=(f"cd {PROJECT} && scripts/submit.sh jobs/segment.py --config conf/wholesale_customers.yaml "
                      f"--warehouse {WAREHOUSE} --refresh --exit-code-when-unchanged 4"),
        skip_on_exit_code=4,
    )

    ingest >> segment
