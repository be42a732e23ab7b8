"""Benchmark: many small tenants in one jobs/batch.py submission against one submission per tenant.

    .venv/bin/python scripts/bench_many_tenants.py                    # 50 tenants, 200 rows each
    .venv/bin/python scripts/bench_many_tenants.py --separate 10      # time only 10 separate submissions

Generates the tenants' configs (conf/demo.yaml with another tenant id) and demo
CSV files under --workdir. It then times one submission of jobs/batch.py with
--step both over all of them, and --separate submissions with one config each,
each into its own fresh warehouse. With --separate below --tenants, the total
for one submission per tenant is extrapolated from the mean and labelled as an
estimate. Prints one JSON line with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

from stratify_spark.demo import write_demo_csv

ROOT = Path(__file__).resolve().parent.parent


def generate_tenants(folder: Path, tenants: int, rows: int) -> list[Path]:
    """Write one demo CSV and one config per tenant; return the config paths in order."""
    template = yaml.safe_load((ROOT / "conf" / "demo.yaml").read_text(encoding="utf-8"))
    configs = []
    for number in range(tenants):
        tenant = f"bench_{number:03d}"
        source = write_demo_csv(folder / "data" / f"{tenant}.csv", rows, seed=number)
        config = {**template, "tenant": tenant, "source": {**template["source"], "path": str(source)}}
        path = folder / "configs" / f"{tenant}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        configs.append(path)
    return configs


def submit_batch(config_args: list[str], warehouse: Path, summary_file: Path, master: str) -> tuple[float, dict]:
    """Submit jobs/batch.py once; return wall seconds and its JSON summary."""
    command = [str(ROOT / "scripts" / "submit.sh"), "--master", master, str(ROOT / "jobs" / "batch.py"),
               *config_args, "--step", "both", "--warehouse", str(warehouse), "--summary-file", str(summary_file),
               "--log-level", "WARNING"]
    started = time.monotonic()
    completed = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"})
    seconds = time.monotonic() - started
    if not summary_file.exists():
        raise SystemExit(f"error: the submission wrote no summary (exit code {completed.returncode}):\n"
                         f"{completed.stdout[-3000:]}")
    return seconds, json.loads(summary_file.read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=50, help="tenants to generate (default 50)")
    parser.add_argument("--rows", type=int, default=200, help="customers per tenant (default 200)")
    parser.add_argument("--separate", type=int, default=None,
                        help="separate submissions to time (default: one per tenant)")
    parser.add_argument("--master", default="local[2]", help="Spark master of every submission (default local[2])")
    parser.add_argument("--workdir", type=Path, default=ROOT / ".cache" / "bench-many-tenants",
                        help="folder for the generated data and warehouses; emptied first")
    args = parser.parse_args(argv)
    separate = args.tenants if args.separate is None else min(args.separate, args.tenants)

    shutil.rmtree(args.workdir, ignore_errors=True)
    configs = generate_tenants(args.workdir, args.tenants, args.rows)
    print(f"bench: {args.tenants} tenants of {args.rows} rows in {args.workdir}", file=sys.stderr)

    one_seconds, one_summary = submit_batch(["--config-dir", str(args.workdir / "configs")],
                                            args.workdir / "warehouse-one", args.workdir / "one.json", args.master)
    print(f"bench: one submission: {one_seconds:.1f} s, {one_summary['succeeded']} succeeded", file=sys.stderr)

    separate_seconds = []
    separate_failed = 0
    for number, config in enumerate(configs[:separate], start=1):
        seconds, summary = submit_batch(["--config", str(config)], args.workdir / f"warehouse-{number:03d}",
                                        args.workdir / f"separate-{number:03d}.json", args.master)
        separate_seconds.append(seconds)
        separate_failed += summary["failed"]
        print(f"bench: separate submission {number} of {separate}: {seconds:.1f} s", file=sys.stderr)

    mean_separate = statistics.mean(separate_seconds) if separate_seconds else None
    report = {
        "tenants": args.tenants, "rows_per_tenant": args.rows, "master": args.master, "cpus": os.cpu_count(),
        "one_submission_seconds": round(one_seconds, 1),
        "one_submission_seconds_per_tenant": round(one_seconds / args.tenants, 2),
        "one_submission_batch_seconds": one_summary["seconds"],
        "one_submission_succeeded": one_summary["succeeded"],
        "separate_submissions_timed": separate,
        "separate_failed": separate_failed,
        "separate_seconds_per_tenant": round(mean_separate, 2) if mean_separate is not None else None,
        "separate_seconds_total": round(sum(separate_seconds), 1),
        "separate_total_is_estimate": separate < args.tenants,
        "separate_seconds_total_for_all": round(mean_separate * args.tenants, 1) if mean_separate else None,
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
