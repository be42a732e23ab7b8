"""Shared command-line plumbing for the `jobs/` entry points: arguments, errors, exit codes, summary."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

from stratify_spark.errors import ExitCode, StratifyError
from stratify_spark.logs import configure_logging

logger = logging.getLogger(__name__)


def base_parser(description: str, config_required: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", required=config_required,
                        help="YAML config of one tenant data set, e.g. conf/demo.yaml")
    parser.add_argument(
        "--warehouse", default=None,
        help="warehouse root folder or URI (default: $STRATIFY_WAREHOUSE, else ./warehouse)",
    )
    parser.add_argument(
        "--master", default=None,
        help="Spark master when run with plain python (spark-submit sets it with its own --master)",
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument(
        "--summary-file", default=None,
        help="also write the JSON summary to this file; spark-submit merges Python's stderr into stdout, "
             "so the file is the clean way for a scheduler to read it",
    )
    return parser


def print_summary(summary: dict[str, Any], summary_file: Optional[str] = None) -> None:
    """Print the one-line JSON summary as the job's last stdout line, and write it to `summary_file` if given.

    Logs go to stderr, but spark-submit merges the Python driver's stderr into its
    stdout, so under spark-submit the summary is the last line rather than the only one.
    """
    line = json.dumps(summary, default=str, sort_keys=True)
    if summary_file:
        try:
            Path(summary_file).write_text(line + "\n", encoding="utf-8")
        except OSError as error:
            logger.error("could not write the summary file %s: %s", summary_file, error)
    print(line, flush=True)


def run_job(job: str, body: Callable[[], dict[str, Any]], log_level: str = "INFO",
            summary_file: Optional[str] = None) -> int:
    """Run a job body, print its JSON summary, and map failures to exit codes with a clear message."""
    configure_logging(log_level)
    started = time.monotonic()
    try:
        summary = body()
    except StratifyError as error:
        print(f"error: {error}", file=sys.stderr)
        print_summary({"job": job, "status": "failed", "exit_code": int(error.exit_code),
                       "error": str(error), "seconds": round(time.monotonic() - started, 3)}, summary_file)
        return int(error.exit_code)
    except Exception as error:  # an unexpected failure still gets a summary line and a non-zero code
        logger.exception("%s job failed unexpectedly", job)
        print(f"error: {job} failed: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}",
              file=sys.stderr)
        print_summary({"job": job, "status": "failed", "exit_code": int(ExitCode.RUN_FAILED),
                       "error": f"{type(error).__name__}: {error}"[:2000],
                       "seconds": round(time.monotonic() - started, 3)}, summary_file)
        return int(ExitCode.RUN_FAILED)
    print_summary(summary, summary_file)
    # A job that had nothing to do (a refresh with unchanged data) may ask for its own code.
    return int(summary.get("exit_code", ExitCode.SUCCESS))
