"""jobs/batch.py and stratify_spark.batch: many tenant configs in one session, failures recorded per tenant.

The batch runs five configs, in list-file order:
  alpha  - good: 12 customers in two spend groups, segmented with k=2
  beta   - its source file does not exist, so the ingest fails with bad input (3)
  broken - the config has an unknown key (2) and never reaches Spark
  gamma  - ingests 12 rows but requests k=20, so the segment run fails with bad input (3)
  delta  - good, like alpha with other numbers
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import logging
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from stratify_spark.batch import (BatchResult, TenantOutcome, collect_config_paths, most_severe_exit_code,
                                  prepare_batch)
from stratify_spark.errors import ConfigError

JOBS_DIR = Path(__file__).resolve().parent.parent / "jobs"
RUN_ID = "nightly-1"

CONFIG_TEMPLATE = """\
tenant: {tenant}
dataset: customers
source:
  format: csv
  path: {source}
columns:
  - {{name: customer_id, type: string, required: true}}
  - {{name: spend, type: double}}
  - {{name: visits, type: integer}}
key:
  columns: [customer_id]
  duplicates: fail
ingest:
  mode: overwrite
segment:
  features:
    - {{name: spend}}
    - {{name: visits}}
  scaling: standard
  algorithm: {{name: kmeans, k: {k}, seed: 7, max_iter: 20}}
"""


def write_tenant(folder: Path, tenant: str, k: int = 2, base_spend: float = 10.0, with_source: bool = True) -> Path:
    """Write a tenant's config and, unless `with_source` is False, its CSV of 6 low and 6 high spenders."""
    source = folder / f"{tenant}.csv"
    if with_source:
        lines = ["customer_id,spend,visits"]
        lines += [f"{tenant[0].upper()}L{i},{base_spend + i},{1 + i % 2}" for i in range(6)]
        lines += [f"{tenant[0].upper()}H{i},{base_spend * 100 + i},{20 + i % 3}" for i in range(6)]
        source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = folder / f"{tenant}.yaml"
    config.write_text(CONFIG_TEMPLATE.format(tenant=tenant, source=source, k=k), encoding="utf-8")
    return config


def load_job(name: str):
    spec = importlib.util.spec_from_file_location(f"stratify_job_{name}", JOBS_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BATCH_JOB = load_job("batch")


@pytest.fixture(autouse=True, scope="module")
def restore_package_logging():
    """Undo configure_logging of the job, whose handler points at a stream that pytest closes."""
    package_logger = logging.getLogger("stratify_spark")
    saved = (package_logger.handlers[:], package_logger.level, package_logger.propagate)
    yield
    package_logger.handlers[:], package_logger.level, package_logger.propagate = saved


@pytest.fixture(scope="module")
def batch(spark, tmp_path_factory):
    """Run the five-config batch once through jobs/batch.py and keep its exit code, summary and warehouse."""
    folder = tmp_path_factory.mktemp("batch")
    warehouse = str(folder / "warehouse")
    configs = [
        write_tenant(folder, "alpha"),
        write_tenant(folder, "beta", with_source=False),
        folder / "broken.yaml",
        write_tenant(folder, "gamma", k=20),
        write_tenant(folder, "delta", base_spend=30.0),
    ]
    configs[2].write_text(
        (folder / "alpha.yaml").read_text(encoding="utf-8").replace("tenant: alpha", "tenant: broken\ncolour: red"),
        encoding="utf-8",
    )
    config_list = folder / "tenants.txt"
    config_list.write_text("# nightly tenants\n\n" + "\n".join(str(path) for path in configs) + "\n", encoding="utf-8")
    summary_file = folder / "summary.json"

    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        code = BATCH_JOB.main(["--config-list", str(config_list), "--step", "both", "--run-id", RUN_ID,
                               "--warehouse", warehouse, "--summary-file", str(summary_file),
                               "--log-level", "WARNING"])
    lines = [line for line in output.getvalue().splitlines() if line.strip()]
    return {"code": code, "lines": lines, "summary": json.loads(lines[-1]), "warehouse": warehouse,
            "summary_file": summary_file, "folder": folder}


def outcome_of(batch, tenant: str) -> dict:
    matches = [outcome for outcome in batch["summary"]["outcomes"] if outcome["tenant"] == tenant]
    assert len(matches) == 1, f"expected one outcome for {tenant}, got {matches!r}"
    return matches[0]


def read_table(spark, warehouse: str, name: str):
    return spark.read.format("delta").load(f"{warehouse}/tables/{name}")


# --- the batch job ---------------------------------------------------------------------------------


def test_batch_exit_code_most_severe(batch):
    # Tenant codes are 0, 3, 2, 3, 0; bad config (2) ranks above bad input (3).
    assert batch["code"] == 2


def test_batch_prints_one_summary_line(batch):
    assert len(batch["lines"]) == 1


def test_batch_summary_counts(batch):
    summary = batch["summary"]
    assert summary["job"] == "batch"
    assert summary["status"] == "partially_failed"
    assert summary["step"] == "both"
    assert summary["exit_code"] == 2
    assert summary["tenants"] == 5
    assert summary["succeeded"] == 2
    assert summary["failed"] == 3
    assert summary["skipped"] == 0


def test_batch_keeps_config_order(batch):
    configs = [Path(outcome["config"]).stem for outcome in batch["summary"]["outcomes"]]
    assert configs == ["alpha", "beta", "broken", "gamma", "delta"]


def test_batch_summary_file_matches(batch):
    assert json.loads(batch["summary_file"].read_text(encoding="utf-8")) == batch["summary"]


def test_batch_good_tenants_succeed(batch):
    for tenant in ("alpha", "delta"):
        outcome = outcome_of(batch, tenant)
        assert outcome["status"] == "succeeded", outcome
        assert outcome["exit_code"] == 0
        assert outcome["error"] is None
        assert outcome["steps"]["ingest"]["rows_loaded"] == 12
        assert outcome["steps"]["segment"]["run_id"] == RUN_ID
        assert outcome["steps"]["segment"]["k_produced"] == 2
        assert sorted(outcome["steps"]["segment"]["segment_sizes"].values()) == [6, 6]


def test_batch_missing_source_is_bad_input(batch):
    outcome = outcome_of(batch, "beta")
    assert outcome["status"] == "failed"
    assert outcome["failed_step"] == "ingest"
    assert outcome["exit_code"] == 3
    assert "source path not found" in outcome["error"]
    assert "segment" not in outcome["steps"]


def test_batch_bad_config_never_runs(batch):
    outcome = [item for item in batch["summary"]["outcomes"] if item["config"].endswith("broken.yaml")][0]
    assert outcome["status"] == "failed"
    assert outcome["failed_step"] == "config"
    assert outcome["exit_code"] == 2
    assert outcome["tenant"] is None
    assert "colour" in outcome["error"]


def test_batch_segment_failure_is_bad_input(batch):
    outcome = outcome_of(batch, "gamma")
    assert outcome["status"] == "failed"
    assert outcome["failed_step"] == "segment"
    assert outcome["exit_code"] == 3
    assert "k is 20" in outcome["error"]
    assert outcome["steps"]["ingest"]["rows_loaded"] == 12


def test_batch_ingest_ledger(spark, batch):
    rows = {row["tenant"]: row for row in read_table(spark, batch["warehouse"], "ingests").collect()}
    assert set(rows) == {"alpha", "beta", "gamma", "delta"}
    assert rows["beta"]["status"] == "failed"
    assert "source path not found" in rows["beta"]["error"]
    for tenant in ("alpha", "gamma", "delta"):
        assert rows[tenant]["status"] == "succeeded"
        assert rows[tenant]["rows_loaded"] == 12


def test_batch_run_ledger(spark, batch):
    rows = {row["tenant"]: row for row in read_table(spark, batch["warehouse"], "runs").collect()}
    assert set(rows) == {"alpha", "gamma", "delta"}
    assert {tenant: rows[tenant]["run_id"] for tenant in rows} == {tenant: RUN_ID for tenant in rows}
    assert rows["alpha"]["status"] == "succeeded"
    assert rows["delta"]["status"] == "succeeded"
    assert rows["gamma"]["status"] == "failed"
    assert "k is 20" in rows["gamma"]["error"]


def test_batch_assignments_per_tenant(spark, batch):
    assignments = read_table(spark, batch["warehouse"], "assignments").filter(F.col("run_id") == RUN_ID)
    by_segment = {
        (row["tenant"], row["segment_id"]): sorted(row["keys"])
        for row in assignments.groupBy("tenant", "segment_id").agg(F.collect_list("record_key").alias("keys")).collect()
    }
    for tenant, prefix in (("alpha", "A"), ("delta", "D")):
        groups = sorted(keys for (owner, _), keys in by_segment.items() if owner == tenant)
        assert groups == [[f"{prefix}H{i}" for i in range(6)], [f"{prefix}L{i}" for i in range(6)]]
    assert not [key for key in by_segment if key[0] == "gamma"]


def test_batch_refresh_skips_unchanged(batch):
    """A second segment-only batch with --refresh finds alpha's and delta's data unchanged since their runs."""
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        code = BATCH_JOB.main(["--config", str(batch["folder"] / "alpha.yaml"),
                               "--config", str(batch["folder"] / "delta.yaml"), "--step", "segment", "--refresh",
                               "--exit-code-when-unchanged", "4", "--warehouse", batch["warehouse"],
                               "--log-level", "WARNING"])
    summary = json.loads(output.getvalue().strip().splitlines()[-1])

    assert code == 4
    assert summary["status"] == "succeeded"
    assert summary["skipped"] == 2
    for outcome in summary["outcomes"]:
        assert outcome["status"] == "skipped", outcome
        assert outcome["exit_code"] == 4
        assert outcome["steps"]["segment"]["last_run_id"] == RUN_ID


def test_batch_without_configs_is_bad_config(tmp_path, capsys):
    code = BATCH_JOB.main(["--warehouse", str(tmp_path / "warehouse"), "--log-level", "ERROR"])
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert code == 2
    assert summary["status"] == "failed"
    assert "no configs to run" in summary["error"]


# --- building blocks without Spark -----------------------------------------------------------------


@pytest.mark.parametrize("codes, expected", [
    ([], 0),
    ([0, 0], 0),
    ([0, 4], 4),
    ([4, 3, 0], 3),
    ([3, 2, 4], 2),
    ([2, 1, 3], 1),
])
def test_most_severe_exit_code(codes, expected):
    assert most_severe_exit_code(codes) == expected


def test_collect_paths_order(tmp_path):
    folder = tmp_path / "tenants"
    folder.mkdir()
    for name in ("b.yaml", "a.yml", "notes.txt"):
        (folder / name).write_text("", encoding="utf-8")
    config_list = tmp_path / "list.txt"
    config_list.write_text("# comment\n\n  x.yaml  \ny.yaml\n", encoding="utf-8")

    paths = collect_config_paths(["first.yaml"], [str(folder)], [str(config_list)])

    assert paths == [Path("first.yaml"), folder / "a.yml", folder / "b.yaml", Path("x.yaml"), Path("y.yaml")]


def test_collect_paths_missing_folder(tmp_path):
    with pytest.raises(ConfigError, match="config folder not found"):
        collect_config_paths(config_dirs=[str(tmp_path / "absent")])


def test_collect_paths_empty_folder(tmp_path):
    with pytest.raises(ConfigError, match="no \\*.yaml or \\*.yml files"):
        collect_config_paths(config_dirs=[str(tmp_path)])


def test_collect_paths_missing_list(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config list"):
        collect_config_paths(config_lists=[str(tmp_path / "absent.txt")])


def test_prepare_rejects_repeated_dataset(tmp_path):
    config = write_tenant(tmp_path, "alpha")
    copy = tmp_path / "alpha-again.yaml"
    copy.write_text(config.read_text(encoding="utf-8"), encoding="utf-8")

    tasks = prepare_batch([config, copy])

    assert tasks[0].config is not None
    assert tasks[0].outcome.status == "pending"
    assert tasks[1].config is None
    assert tasks[1].outcome.exit_code == 2
    assert "already in this batch" in tasks[1].outcome.error


def test_prepare_missing_config_file(tmp_path):
    tasks = prepare_batch([tmp_path / "absent.yaml"])

    assert tasks[0].config is None
    assert tasks[0].outcome.failed_step == "config"
    assert tasks[0].outcome.exit_code == 2
    assert "config file not found" in tasks[0].outcome.error


@pytest.mark.parametrize("statuses, expected", [
    (["succeeded", "skipped"], "succeeded"),
    (["succeeded", "failed"], "partially_failed"),
    (["failed", "failed"], "failed"),
])
def test_batch_status_from_outcomes(statuses, expected):
    outcomes = [TenantOutcome(config_path=f"{number}.yaml", status=status, exit_code=1 if status == "failed" else 0)
                for number, status in enumerate(statuses)]
    assert BatchResult(step="segment", outcomes=outcomes).summary()["status"] == expected
