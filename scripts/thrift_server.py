"""Serve the result tables over JDBC: a Spark Thrift server with every table registered as stratify.<name>.

scripts/thrift-server.sh starts this file with spark-submit. It builds a Delta
session whose Hive metastore is a private in-memory Derby database, so the server
never locks a metastore that jobs or spark-sql need. It registers the tables by
location, starts HiveThriftServer2 in the same session and serves until SIGTERM.
Tables that jobs create after the start are missing until the server is restarted.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from stratify_spark.logs import configure_logging
from stratify_spark.session import build_session, resolve_warehouse
from stratify_spark.tables import register_tables

logger = logging.getLogger("stratify_spark.thrift_server")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", default=None,
                        help="warehouse root folder or URI (default: $STRATIFY_WAREHOUSE, else ./warehouse)")
    parser.add_argument("--host", default="127.0.0.1", help="address the JDBC port binds to (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=10000, help="JDBC (Thrift binary) port (default 10000)")
    args = parser.parse_args(argv)
    configure_logging("INFO")

    warehouse = resolve_warehouse(args.warehouse)
    spark = build_session("stratify-thrift-server", warehouse=warehouse, extra_conf={
        "spark.sql.catalogImplementation": "hive",
        "spark.hadoop.javax.jdo.option.ConnectionURL": "jdbc:derby:memory:stratify_thrift;create=true",
        "spark.hadoop.hive.server2.thrift.bind.host": args.host,
        "spark.hadoop.hive.server2.thrift.port": str(args.port),
        "spark.hadoop.hive.server2.transport.mode": "binary",
        "spark.hadoop.hive.server2.logging.operation.enabled": "false",
    })

    names = register_tables(spark, warehouse)
    if not names:
        logger.warning("no result tables under %s yet; run the jobs, then restart the server", warehouse)
    logger.info("registered %d table(s): %s", len(names), ", ".join(names))

    jvm = spark.sparkContext._jvm
    jvm.org.apache.spark.sql.hive.thriftserver.HiveThriftServer2.startWithSparkSession(spark._jsparkSession, True)
    # scripts/thrift-server.sh waits for this line before it reports the server as started.
    logger.info("thrift server ready on jdbc:hive2://%s:%d", args.host, args.port)

    stop = threading.Event()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signal_number, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass
    logger.info("thrift server stopping")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
