"""The one place that builds Spark sessions for jobs, scripts and tests."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Mapping, Optional

from pyspark.sql import SparkSession

from stratify_spark.errors import ConfigError
from stratify_spark.jars import cached_jars

logger = logging.getLogger(__name__)

DEFAULT_WAREHOUSE = "warehouse"
URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def resolve_warehouse(warehouse: Optional[str] = None) -> str:
    """Return the warehouse root: the argument, else STRATIFY_WAREHOUSE, else ./warehouse.

    Local paths become absolute so that every executor reads the same folder.
    URIs such as hdfs:// or s3a:// are returned unchanged.
    """
    root = warehouse or os.environ.get("STRATIFY_WAREHOUSE") or DEFAULT_WAREHOUSE
    if URI_SCHEME.match(root):
        return root.rstrip("/")
    return str(Path(root).expanduser().resolve())


def configure_builder(
    builder: SparkSession.Builder,
    warehouse: str,
    extra_conf: Optional[Mapping[str, str]] = None,
) -> SparkSession.Builder:
    """Add the Delta extension, catalog, jars and the project's defaults to a session builder."""
    required = {
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.warehouse.dir": f"{warehouse}/spark-warehouse",
        # Dates and timestamps in source files carry no zone; parse them the same way everywhere.
        "spark.sql.session.timeZone": "UTC",
        # With CSV column pruning, Spark skips the field count check when a file has columns the config
        # does not declare, so a row with too few fields would load with nulls instead of being quarantined.
        "spark.sql.csv.parser.columnPruning.enabled": "false",
    }
    # Defaults that spark-submit --conf may override. Delta rebuilds table state with
    # snapshotPartitions shuffle tasks (default 50). On 2 cores that made a one-row
    # replaceWhere on a small table take about 5 s instead of about 1 s.
    defaults = {
        "spark.sql.shuffle.partitions": "8",
        "spark.databricks.delta.snapshotPartitions": "4",
        "spark.ui.showConsoleProgress": "false",
    }
    submitted = _submitted_conf()
    conf = {key: value for key, value in defaults.items() if key not in submitted}
    # Under spark-submit the class path came from --jars, so only a session that Python
    # launches (tests, scripts) adds the cached Delta jars.
    if "PYSPARK_GATEWAY_PORT" not in os.environ:
        conf["spark.jars"] = ",".join(str(jar) for jar in cached_jars())
    conf.update(extra_conf or {})
    conf.update(required)
    for key, value in conf.items():
        builder = builder.config(key, value)
    return builder


def _submitted_conf() -> dict[str, str]:
    """Return the conf that spark-submit passed to this driver, or {} when Python launches Spark."""
    if "PYSPARK_GATEWAY_PORT" not in os.environ:
        return {}
    from pyspark import SparkConf

    return dict(SparkConf().getAll())


def build_session(
    app_name: str,
    master: Optional[str] = None,
    warehouse: Optional[str] = None,
    extra_conf: Optional[Mapping[str, str]] = None,
) -> SparkSession:
    """Create (or reuse) the Spark session with Delta enabled and check that Delta is usable.

    Under spark-submit the master comes from the command line, so `master` is only
    applied when given. The Delta jars must then be passed with --jars; a session
    without them fails here with the command that fixes it.
    """
    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    if master and master.startswith("local") and "PYSPARK_GATEWAY_PORT" not in os.environ:
        # A local session needs no other interface. The JVM that pyspark starts reads
        # SPARK_LOCAL_IP for its driver and UI addresses, else it binds to the host's address.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    spark = configure_builder(builder, resolve_warehouse(warehouse), extra_conf).getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("STRATIFY_SPARK_LOG_LEVEL", "WARN"))
    _check_delta_available(spark)
    return spark


def _check_delta_available(spark: SparkSession) -> None:
    jvm = spark.sparkContext._jvm
    loader = jvm.Thread.currentThread().getContextClassLoader()
    try:
        jvm.java.lang.Class.forName("io.delta.sql.DeltaSparkSessionExtension", False, loader)
    except Exception:
        raise ConfigError(
            "Delta Lake classes are not on the driver class path; run 'scripts/setup.sh' and submit with "
            "'--jars \"$(python -m stratify_spark.jars --print jars)\"' (or use scripts/submit.sh)"
        ) from None
