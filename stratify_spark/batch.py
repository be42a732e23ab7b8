"""Run the ingest step, the segment step or both for many tenant configs in one Spark session.

Small tenants each spend most of a separate submission on starting Spark, so a
batch starts one session and runs the tenants in turn. A tenant that fails does
not stop the others. Its ingest or run is recorded as failed in `stratify.ingests`
or `stratify.runs` by the step itself, exactly as when the step runs alone, and
the batch summary lists every tenant's outcome.

The batch's exit code is 0 when no tenant failed, else the most severe tenant code
in this order: 1 (run failed), 2 (bad config), 3 (bad input), 4 (nothing to do).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from pyspark.sql import SparkSession

from stratify_spark.config import DatasetConfig, load_config, validate_run_id
from stratify_spark.errors import ConfigError, ExitCode, StratifyError
from stratify_spark.ingest import run_ingest
from stratify_spark.logs import context_logger
from stratify_spark.refresh import refresh_decision
from stratify_spark.segment import run_segment

logger = logging.getLogger(__name__)

STEPS = ("ingest", "segment", "both")
CONFIG_SUFFIXES = (".yaml", ".yml")
# Most severe first. A run failure comes first because it needs an operator, while
# config and input problems name the file to fix, and "nothing to do" is not a failure.
SEVERITY = (ExitCode.RUN_FAILED, ExitCode.BAD_CONFIG, ExitCode.BAD_INPUT, ExitCode.NOTHING_TO_DO)
MAX_ERROR_CHARS = 2000


@dataclass
class TenantOutcome:
    """Outcome of one config of the batch; `steps` maps a step name to that step's summary."""

    config_path: str
    tenant: Optional[str] = None
    dataset: Optional[str] = None
    status: str = "pending"
    exit_code: int = int(ExitCode.SUCCESS)
    failed_step: Optional[str] = None
    error: Optional[str] = None
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0

    def fail(self, step: str, exit_code: int, error: str) -> None:
        self.status = "failed"
        self.failed_step = step
        self.exit_code = int(exit_code)
        self.error = error[:MAX_ERROR_CHARS]

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.config_path, "tenant": self.tenant, "dataset": self.dataset, "status": self.status,
            "exit_code": self.exit_code, "failed_step": self.failed_step, "error": self.error,
            "steps": self.steps, "seconds": self.seconds,
        }


@dataclass
class TenantTask:
    """One config to run: its outcome so far, and the parsed config unless loading it failed."""

    outcome: TenantOutcome
    config: Optional[DatasetConfig]


@dataclass
class BatchResult:
    """Outcome of a whole batch; `summary()` returns the job's one-line JSON summary."""

    step: str
    outcomes: list[TenantOutcome]
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        return most_severe_exit_code(outcome.exit_code for outcome in self.outcomes)

    def summary(self) -> dict[str, Any]:
        counts = {status: sum(1 for outcome in self.outcomes if outcome.status == status)
                  for status in ("succeeded", "skipped", "failed")}
        if counts["failed"] == 0:
            status = "succeeded"
        elif counts["failed"] == len(self.outcomes):
            status = "failed"
        else:
            status = "partially_failed"
        return {
            "job": "batch", "status": status, "step": self.step, "exit_code": self.exit_code,
            "tenants": len(self.outcomes), **counts, "seconds": self.seconds,
            "outcomes": [outcome.to_dict() for outcome in self.outcomes],
        }


def most_severe_exit_code(codes: Iterable[int]) -> int:
    """Return 0 when every code is 0, else the code that comes first in SEVERITY."""
    present = set(int(code) for code in codes)
    for code in SEVERITY:
        if int(code) in present:
            return int(code)
    unknown = sorted(present - {int(ExitCode.SUCCESS)})
    return unknown[0] if unknown else int(ExitCode.SUCCESS)


def collect_config_paths(configs: Iterable[str] = (), config_dirs: Iterable[str] = (),
                         config_lists: Iterable[str] = ()) -> list[Path]:
    """Return the config files to run: each --config, then each folder's YAML files by name, then each list file.

    A list file names one config per line; blank lines and lines starting with '#'
    are ignored. Relative paths are relative to the current folder, as everywhere else.
    """
    paths = [Path(config) for config in configs]
    for folder in map(Path, config_dirs):
        if not folder.is_dir():
            raise ConfigError(f"config folder not found: {folder}; pass a folder that contains *.yaml files")
        found = sorted(path for path in folder.iterdir() if path.suffix in CONFIG_SUFFIXES and path.is_file())
        if not found:
            raise ConfigError(f"no *.yaml or *.yml files in config folder {folder}")
        paths.extend(found)
    for list_file in map(Path, config_lists):
        try:
            lines = list_file.read_text(encoding="utf-8").splitlines()
        except OSError as error:
            raise ConfigError(f"cannot read config list {list_file}: {error}; pass a text file with one "
                              "config path per line") from None
        paths.extend(Path(line.strip()) for line in lines if line.strip() and not line.strip().startswith("#"))
    if not paths:
        raise ConfigError("no configs to run; pass --config FILE (repeatable), --config-dir DIR or --config-list FILE")
    return paths


def prepare_batch(paths: Iterable[Path]) -> list[TenantTask]:
    """Load and validate every config without Spark; a config that fails becomes a failed outcome.

    A tenant data set named by two configs fails the second time, because both
    would write the same table in one batch.
    """
    tasks = []
    seen: dict[tuple[str, str], str] = {}
    for path in paths:
        outcome = TenantOutcome(config_path=str(path))
        try:
            config = load_config(path)
        except ConfigError as error:
            outcome.fail("config", ExitCode.BAD_CONFIG, str(error))
            tasks.append(TenantTask(outcome, None))
            continue

        outcome.tenant, outcome.dataset = config.tenant, config.dataset
        key = (config.tenant, config.dataset)
        if key in seen:
            outcome.fail("config", ExitCode.BAD_CONFIG,
                         f"{path}: data set {config.tenant}/{config.dataset} is already in this batch from "
                         f"{seen[key]}; run each data set once per batch")
            tasks.append(TenantTask(outcome, None))
            continue
        seen[key] = str(path)
        tasks.append(TenantTask(outcome, config))
    return tasks


def run_batch(
    tasks: list[TenantTask],
    step: str,
    warehouse: str,
    get_session: Callable[[], SparkSession],
    run_id: Optional[str] = None,
    refresh: bool = False,
    exit_code_when_unchanged: int = int(ExitCode.SUCCESS),
) -> BatchResult:
    """Run `step` ("ingest", "segment" or "both") for every loaded config, in order, in one session.

    `get_session` is called once, and only if at least one config loaded. With
    `run_id`, every tenant's segment run gets that id, which is safe because run ids
    are unique per tenant, not across tenants. With `refresh`, a tenant whose data
    version has not moved since its last succeeded run is skipped with
    `exit_code_when_unchanged` (0 or 4), as `jobs/segment.py --refresh` does.
    """
    if step not in STEPS:
        raise ConfigError(f"invalid step {step!r}; allowed: {', '.join(STEPS)}")
    if exit_code_when_unchanged not in (ExitCode.SUCCESS, ExitCode.NOTHING_TO_DO):
        raise ConfigError(f"invalid exit code for an unchanged refresh: {exit_code_when_unchanged}; allowed: 0, 4")
    if run_id is not None:
        validate_run_id(run_id)
    started = time.monotonic()

    runnable = [task for task in tasks if task.config is not None]
    spark = get_session() if runnable else None
    stopped_after: Optional[str] = None
    for number, task in enumerate(runnable, start=1):
        outcome = task.outcome
        if stopped_after is not None:
            outcome.fail("session", ExitCode.RUN_FAILED,
                         f"not run: the Spark session stopped while running {stopped_after}; submit the batch again")
            continue
        log = context_logger(logger, task.config.tenant, task.config.dataset, run_id or "-")
        log.info("batch tenant %d of %d started: config=%s step=%s", number, len(runnable), outcome.config_path, step)
        _run_tenant(spark, task.config, outcome, step, warehouse, log,
                    {"run_id": run_id, "refresh": refresh, "exit_code_when_unchanged": exit_code_when_unchanged})
        if outcome.status == "failed" and not _session_alive(spark):
            stopped_after = f"{outcome.tenant}/{outcome.dataset}"
            log.error("the Spark session stopped; the remaining tenants are marked failed without running")

    result = BatchResult(step=step, outcomes=[task.outcome for task in tasks],
                         seconds=round(time.monotonic() - started, 3))
    summary = result.summary()
    logger.info("batch finished in %.1f s: %d succeeded, %d skipped, %d failed, exit code %d",
                result.seconds, summary["succeeded"], summary["skipped"], summary["failed"], result.exit_code)
    return result


def _run_tenant(spark: SparkSession, config: DatasetConfig, outcome: TenantOutcome, step: str, warehouse: str,
                log: logging.LoggerAdapter, segment_options: dict[str, Any]) -> None:
    """Run one tenant's steps and record the result in `outcome`; a tenant's failure is recorded, not raised."""
    started = time.monotonic()
    steps = ("ingest", "segment") if step == "both" else (step,)
    current = steps[0]
    try:
        for current in steps:
            spark.sparkContext.setJobDescription(f"batch {current} {config.tenant}/{config.dataset}")
            if current == "ingest":
                outcome.steps["ingest"] = _ingest(spark, config, outcome.config_path, warehouse)
            else:
                outcome.steps["segment"] = _segment(spark, config, warehouse, **segment_options)
    except StratifyError as error:
        outcome.fail(current, error.exit_code, str(error))
        log.error("batch tenant failed in %s with exit code %d: %s", current, outcome.exit_code, error)
    except Exception as error:  # Spark and Delta errors of one tenant must not end the batch.
        first_line = str(error).splitlines()[0] if str(error) else ""
        outcome.fail(current, ExitCode.RUN_FAILED, f"{type(error).__name__}: {first_line}")
        log.exception("batch tenant failed unexpectedly in %s", current)
    else:
        statuses = {summary.get("status") for summary in outcome.steps.values()}
        outcome.status = "skipped" if statuses == {"skipped"} else "succeeded"
        if outcome.status == "skipped":
            outcome.exit_code = int(outcome.steps["segment"]["exit_code"])
    finally:
        if _session_alive(spark):
            spark.sparkContext.setJobDescription(None)
        outcome.seconds = round(time.monotonic() - started, 3)


def _ingest(spark: SparkSession, config: DatasetConfig, config_path: str, warehouse: str) -> dict[str, Any]:
    if config.source is None:
        raise ConfigError(f"{config_path}: {config.tenant}/{config.dataset} is built by entity_features, not "
                          "ingested; run it with --step segment after jobs/features.py")
    if not config.source.path:
        raise ConfigError(f"{config_path}: no source.path; a batch ingest reads each tenant's files from "
                          "source.path, so set it in the config")
    result = run_ingest(spark, config, config.source.path, warehouse)
    return {"job": "ingest", "status": "succeeded", **result.to_dict()}


def _segment(spark: SparkSession, config: DatasetConfig, warehouse: str, run_id: Optional[str], refresh: bool,
             exit_code_when_unchanged: int) -> dict[str, Any]:
    if refresh:
        decision = refresh_decision(spark, warehouse, config)
        if not decision.run:
            return decision.skipped_summary(config, exit_code_when_unchanged)
    return run_segment(spark, config, warehouse, run_id=run_id).summary()


def _session_alive(spark: SparkSession) -> bool:
    try:
        return not spark.sparkContext._jsc.sc().isStopped()
    except Exception:  # a lost Py4J connection means the driver JVM is gone
        return False
