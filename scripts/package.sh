#!/usr/bin/env bash
# Build dist/stratify_spark-<version>.zip, the package for spark-submit --py-files,
# and print its absolute path:
#   scripts/submit.sh --master spark://127.0.0.1:7077 --py-files "$(scripts/package.sh)" jobs/ingest.py ...
# The zip contains the stratify_spark package only. Its dependencies (pyyaml, pydantic,
# delta-spark) must be installed in the driver's Python, and executors need pyspark only.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
if [ ! -x "$root/.venv/bin/python" ]; then
  echo "error: $root/.venv is missing; run scripts/setup.sh first" >&2
  exit 2
fi

"$root/.venv/bin/python" - "$root" <<'PY'
import re
import sys
import zipfile
from pathlib import Path

root = Path(sys.argv[1])
version = re.search(r'^version\s*=\s*"([^"]+)"', (root / "pyproject.toml").read_text(), re.M).group(1)
target = root / "dist" / f"stratify_spark-{version}.zip"
target.parent.mkdir(exist_ok=True)

# Write to a temporary name first, because a running submission may be reading the old zip.
partial = target.with_suffix(".zip.partial")
with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
    for source in sorted((root / "stratify_spark").rglob("*.py")):
        archive.write(source, source.relative_to(root).as_posix())
partial.replace(target)
print(target)
PY
