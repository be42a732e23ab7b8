#!/usr/bin/env bash
# Set everything up (scripts/setup.sh) and run the test suite; extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# Test files are spread over PYTEST_WORKERS processes (default 2), each with its own Spark
# session; --dist loadfile keeps a file's module fixtures in one process.
exec .venv/bin/python -m pytest -n "${PYTEST_WORKERS:-2}" --dist loadfile "$@"
