"""scripts/thrift-server.sh: result tables queried over JDBC with beeline, the server bound to 127.0.0.1 only.

The warehouse gets a 12-row ingest and one run-ledger row from the shared test
session. The server starts on a free port, and the module stops it also after a failure.
"""

from __future__ import annotations

import csv
import io
import os
import re
import socket
import subprocess
from pathlib import Path

import pytest

from stratify_spark.config import parse_config
from stratify_spark.ingest import run_ingest
from stratify_spark.runs import RunLedger

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "thrift-server.sh"
BEELINE = ROOT / ".venv" / "bin" / "beeline"
PROMPT = re.compile(r"^\d+: jdbc:hive2://[^>]*> ")

CONFIG = {
    "tenant": "jdbc_shop",
    "dataset": "customers",
    "source": {"format": "csv"},
    "columns": [{"name": "customer_id", "type": "string", "required": True}, {"name": "spend", "type": "double"}],
    "key": {"columns": ["customer_id"]},
    "segment": {"features": [{"name": "spend"}], "algorithm": {"name": "kmeans", "k": 2}},
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def script_env() -> dict[str, str]:
    return {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_MASTER": "local[1]",
            "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}


def listening_addresses(port: int) -> set[str]:
    """Return the local addresses with a listening TCP socket on `port`, read from /proc/net."""
    addresses = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table, encoding="ascii") as handle:
            next(handle)
            for line in handle:
                fields = line.split()
                address, hex_port = fields[1].split(":")
                if int(hex_port, 16) == port and fields[3] == "0A":
                    addresses.add(address)
    return addresses


@pytest.fixture(scope="module")
def result_warehouse(spark, tmp_path_factory):
    folder = tmp_path_factory.mktemp("thrift")
    source = folder / "customers.csv"
    source.write_text("customer_id,spend\n" + "".join(f"J{i:02d},{10 * i}.5\n" for i in range(12)), encoding="utf-8")
    config = parse_config(CONFIG, "thrift test config")
    root = str(folder / "warehouse")
    run_ingest(spark, config, str(source), root, ingest_id="ingest-jdbc")
    RunLedger(spark, root, config, "run-jdbc").record(status="succeeded", algorithm="kmeans", k_requested=2,
                                                      k_produced=2, rows_used=12)
    return root


@pytest.fixture(scope="module")
def server(result_warehouse, tmp_path_factory):
    state_dir = tmp_path_factory.mktemp("thrift-state")
    port = free_port()
    try:
        started = subprocess.run(
            [str(SCRIPT), "start", "--port", str(port), "--warehouse", result_warehouse, "--dir", str(state_dir),
             "--timeout", "240"],
            env=script_env(), capture_output=True, text=True, timeout=300,
        )
        assert started.returncode == 0, f"thrift-server.sh start failed:\n{started.stderr}"
        yield {"port": port, "dir": state_dir}
    finally:
        subprocess.run([str(SCRIPT), "stop", "--dir", str(state_dir)], env=script_env(),
                       capture_output=True, text=True, timeout=120)


def beeline(port: int, sql: str) -> list[dict[str, str]]:
    """Run one query with beeline and return its rows as dicts keyed by column name."""
    completed = subprocess.run(
        [str(BEELINE), "-u", f"jdbc:hive2://127.0.0.1:{port}", "--silent=true", "--outputformat=csv2",
         "--showHeader=true", "-e", sql],
        env=script_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=180,
    )
    assert completed.returncode == 0, f"beeline failed:\n{completed.stdout}\n{completed.stderr}"
    # Without a terminal, beeline writes its prompt in front of the header line.
    lines = [PROMPT.sub("", line) for line in completed.stdout.splitlines()
             if line and not line.startswith("WARNING:")]
    return list(csv.DictReader(io.StringIO("\n".join(lines))))


def test_thrift_serves_runs_table(server):
    rows = beeline(server["port"], "SELECT tenant, run_id, status, k_produced, rows_used FROM stratify.runs")
    assert rows == [{"tenant": "jdbc_shop", "run_id": "run-jdbc", "status": "succeeded", "k_produced": "2",
                     "rows_used": "12"}]


def test_thrift_serves_ingest_counts(server):
    rows = beeline(server["port"], "SELECT ingest_id, rows_read, rows_loaded FROM stratify.ingests "
                                   "WHERE tenant = 'jdbc_shop'")
    assert rows == [{"ingest_id": "ingest-jdbc", "rows_read": "12", "rows_loaded": "12"}]


def test_thrift_binds_loopback_only(server):
    addresses = listening_addresses(server["port"])
    # 127.0.0.1 as /proc/net/tcp writes it, or as an IPv4-mapped IPv6 address in /proc/net/tcp6.
    assert addresses
    assert addresses <= {"0100007F", "0000000000000000FFFF00000100007F"}, addresses


def test_thrift_status_running(server):
    status = subprocess.run([str(SCRIPT), "status", "--dir", str(server["dir"])], env=script_env(),
                            capture_output=True, text=True, timeout=30)
    assert status.returncode == 0
    assert status.stdout.startswith("running (pid ")
