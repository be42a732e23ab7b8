"""Logging set-up for jobs and a logger adapter that names the tenant, data set and run."""

from __future__ import annotations

import logging
import sys
from typing import Any, MutableMapping


class ContextAdapter(logging.LoggerAdapter):
    """Prefix every message with tenant, data set and run (or ingest) id."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        extra = self.extra or {}
        prefix = f"[tenant={extra.get('tenant')} dataset={extra.get('dataset')} run={extra.get('run_id')}]"
        return f"{prefix} {msg}", kwargs


def context_logger(logger: logging.Logger, tenant: str, dataset: str, run_id: str) -> ContextAdapter:
    return ContextAdapter(logger, {"tenant": tenant, "dataset": dataset, "run_id": run_id})


def configure_logging(level: str = "INFO") -> None:
    """Send the package's log records to stderr; stdout is kept for the JSON summary line."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    package_logger = logging.getLogger("stratify_spark")
    package_logger.handlers[:] = [handler]
    package_logger.setLevel(level)
    package_logger.propagate = False
