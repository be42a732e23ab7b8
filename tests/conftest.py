"""Shared fixtures: one Spark session for the whole test run, with a warehouse under tmp."""

from __future__ import annotations

import pytest

from stratify_spark.session import build_session


@pytest.fixture(scope="session")
def warehouse(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("warehouse"))


@pytest.fixture(scope="session")
def spark(warehouse):
    session = build_session(
        "stratify-tests",
        master="local[2]",
        warehouse=warehouse,
        extra_conf={
            "spark.ui.enabled": "false",
            "spark.sql.shuffle.partitions": "2",
            "spark.default.parallelism": "2",
            "spark.databricks.delta.snapshotPartitions": "2",
        },
    )
    yield session
    session.stop()
