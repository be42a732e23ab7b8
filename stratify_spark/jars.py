"""Resolve the Delta Lake jars once from Maven Central and keep them in a local cache.

`python -m stratify_spark.jars` downloads `io.delta:delta-spark_<spark>_2.13` at
the version of the installed delta-spark package, with its dependencies, through
Spark's own Ivy resolver. It copies the jars that pyspark does not already ship
into the cache folder, so later sessions and `spark-submit --jars` need no network.
The cache folder is `.cache/jars` in the checkout, or STRATIFY_JARS_DIR.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

from stratify_spark.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SCALA_VERSION = "2.13"


def delta_coordinate() -> str:
    """Return the Maven coordinate of the Delta jar that matches the installed pyspark and delta-spark."""
    import pyspark

    spark_minor = ".".join(pyspark.__version__.split(".")[:2])
    delta_version = metadata.version("delta-spark")
    return f"io.delta:delta-spark_{spark_minor}_{SCALA_VERSION}:{delta_version}"


def jars_dir() -> Path:
    """Return the folder that contains the cached jars for the installed Delta version."""
    configured = os.environ.get("STRATIFY_JARS_DIR")
    base = Path(configured) if configured else PROJECT_ROOT / ".cache" / "jars"
    return base / delta_coordinate().replace(":", "_")


def cached_jars() -> list[Path]:
    """Return the cached jar files, or raise ConfigError with the set-up command when there are none."""
    folder = jars_dir()
    jars = sorted(folder.glob("*.jar")) if folder.is_dir() else []
    if not any(jar.name.startswith("io.delta_delta-spark_") for jar in jars):
        raise ConfigError(
            f"Delta Lake jars not found in {folder}; run 'scripts/setup.sh' (or "
            "'python -m stratify_spark.jars') once with network access to Maven Central"
        )
    return jars


def _artifact_name(jar_file_name: str) -> str:
    """Return the artifact id of an Ivy-retrieved jar named 'group_artifact-version.jar'."""
    without_group = jar_file_name.split("_", 1)[-1]
    return re.sub(r"-\d[^-]*(-\d+)?\.jar$", "", without_group)


def _pyspark_jar_artifacts() -> set[str]:
    import pyspark

    shipped = Path(pyspark.__file__).parent / "jars"
    return {re.sub(r"-\d[^-]*(-\d+)?\.jar$", "", jar.name) for jar in shipped.glob("*.jar")}


def resolve_jars(force: bool = False) -> list[Path]:
    """Download the Delta jars into the cache unless they are already there; return the cached jars."""
    folder = jars_dir()
    if not force:
        try:
            return cached_jars()
        except ConfigError:
            pass

    coordinate = delta_coordinate()
    with tempfile.TemporaryDirectory(prefix="stratify-ivy-") as ivy_home:
        # A throwaway session is the one way to run Spark's Ivy resolution from Python.
        script = (
            "from pyspark.sql import SparkSession\n"
            "SparkSession.builder.master('local[1]')"
            f".config('spark.jars.packages', {coordinate!r})"
            f".config('spark.jars.ivy', {ivy_home!r})"
            ".config('spark.ui.enabled', 'false').getOrCreate().stop()\n"
        )
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
        retrieved = sorted((Path(ivy_home) / "jars").glob("*.jar"))
        if result.returncode != 0 or not retrieved:
            tail = "\n".join(result.stderr.strip().splitlines()[-15:])
            raise ConfigError(f"could not resolve {coordinate} from Maven Central:\n{tail}")

        shipped = _pyspark_jar_artifacts()
        staging = folder.with_name(folder.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for jar in retrieved:
            # pyspark already ships newer Hadoop, Parquet, Jackson and log4j jars; adding
            # Delta's older copies would only put a second version on the class path.
            if _artifact_name(jar.name) not in shipped:
                shutil.copy2(jar, staging / jar.name)
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
    return cached_jars()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="download again even when the cache is complete")
    parser.add_argument(
        "--print", dest="print_mode", choices=["dir", "jars"], default="dir",
        help="print the cache folder, or the comma-separated jar list for spark-submit --jars",
    )
    args = parser.parse_args(argv)
    try:
        jars = resolve_jars(force=args.force)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(",".join(str(jar) for jar in jars) if args.print_mode == "jars" else jars_dir())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
