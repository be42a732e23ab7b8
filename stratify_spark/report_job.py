"""The report job's body: resolve the run and comparison, read them, render the page and write it atomically."""

from __future__ import annotations

import datetime as dt
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from stratify_spark.config import load_config, validate_identifier, validate_run_id
from stratify_spark.errors import ConfigError
from stratify_spark.logs import context_logger
from stratify_spark.report import latest_succeeded_run, load_comparison, load_run
from stratify_spark.report_html import render_report
from stratify_spark.report_i18n import Texts, validate_language
from stratify_spark.session import build_session, resolve_warehouse

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReportRequest:
    """The report job's arguments: a config or a tenant and data set, the ids, the output file and the language."""

    output: str
    config_path: Optional[str] = None
    tenant: Optional[str] = None
    dataset: Optional[str] = None
    run_id: Optional[str] = None
    compare_id: Optional[str] = None
    lang: str = "en"


def resolve_data_set(request: ReportRequest) -> tuple[str, str]:
    """Return the (tenant, data set) of the request, from --config or from --tenant and --dataset."""
    if request.config_path:
        config = load_config(request.config_path)
        for requested, configured, option in ((request.tenant, config.tenant, "--tenant"),
                                              (request.dataset, config.dataset, "--dataset")):
            if requested is not None and requested != configured:
                raise ConfigError(f"{option} {requested!r} does not match {configured!r} in {request.config_path}; "
                                  f"pass either --config or {option}, not both")
        return config.tenant, config.dataset
    if not request.tenant or not request.dataset:
        raise ConfigError("the report needs a data set: pass --config FILE, or both --tenant and --dataset")
    return validate_identifier(request.tenant, "tenant id"), validate_identifier(request.dataset, "data set name")


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to a temporary file next to `path`, then rename it over `path`.

    Readers of `path` get either the old file or the complete new one, never a
    partly written page.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def run_report(request: ReportRequest, warehouse: Optional[str] = None, master: Optional[str] = None) -> dict[str, Any]:
    """Write the report file for the request and return the job's JSON summary."""
    started = time.monotonic()
    texts = Texts(validate_language(request.lang))
    tenant, dataset = resolve_data_set(request)
    if request.run_id is not None:
        validate_run_id(request.run_id)
    if request.compare_id is not None:
        validate_run_id(request.compare_id)
    output = Path(request.output).expanduser().resolve()
    if output.is_dir():
        raise ConfigError(f"--output {request.output} is a folder; give a file name such as "
                          f"{Path(request.output) / 'report.html'}")

    warehouse = resolve_warehouse(warehouse)
    spark = build_session(f"stratify-report-{tenant}-{dataset}", master, warehouse)

    comparison = None
    run_id = request.run_id
    if request.compare_id is not None:
        comparison = load_comparison(spark, warehouse, tenant, dataset, request.compare_id)
        if run_id is None:
            run_id = comparison.run_b
        elif run_id != comparison.run_b:
            raise ConfigError(f"comparison {request.compare_id} compares run {comparison.run_a} with the later run "
                              f"{comparison.run_b}, and its report shows the later run; pass --run-id "
                              f"{comparison.run_b} or leave --run-id out")
    if run_id is None:
        run_id = latest_succeeded_run(spark, warehouse, tenant, dataset)
    log = context_logger(logger, tenant, dataset, run_id)
    log.info("report started: compare_id=%s lang=%s output=%s", request.compare_id, request.lang, output)

    run = load_run(spark, warehouse, tenant, dataset, run_id)
    log.info("summary tables read: %d segments, %d features, %d metrics", len(run.segments), len(run.features),
             len(run.metrics))

    page = render_report(run, texts, comparison, generated_at=dt.datetime.now(dt.timezone.utc))
    write_atomically(output, page)
    seconds = round(time.monotonic() - started, 3)
    log.info("report written: %s (%d bytes) in %.1f s", output, len(page.encode("utf-8")), seconds)

    return {
        "job": "report", "status": "succeeded", "tenant": tenant, "dataset": dataset, "run_id": run_id,
        "compare_id": request.compare_id, "lang": request.lang, "output": str(output),
        "bytes": len(page.encode("utf-8")), "segments": len(run.segments), "seconds": seconds,
    }
