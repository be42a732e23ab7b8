#!/usr/bin/env bash
# Set up everything the jobs and tests need: a virtual environment in .venv with the
# package and its test extra, and the Delta Lake jars cached in .cache/jars.
# Safe to run again: each step is skipped or repeated without harm.
set -euo pipefail
cd "$(dirname "$0")/.."

python_bin="${PYTHON:-python3}"
if ! "$python_bin" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  echo "error: Python 3.10 or newer is needed as '$python_bin'; set PYTHON=/path/to/python3" >&2
  exit 2
fi
if ! command -v java >/dev/null 2>&1 && [ -z "${JAVA_HOME:-}" ]; then
  echo "error: Java 17 is needed by Spark 4; install a JDK 17 and put java on PATH or set JAVA_HOME" >&2
  exit 2
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$python_bin" -m venv .venv
fi
echo "setup: installing the package and test tools into .venv"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test]"

echo "setup: caching the Delta Lake jars"
.venv/bin/python -m stratify_spark.jars
