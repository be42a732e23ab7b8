"""Generate the built-in demo data set: customers drawn from four behaviour groups.

    python -m stratify_spark.demo demo-data/customers.csv --rows 5000
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import random
from pathlib import Path

# (share, annual spend, orders per year, days since last order) of each behaviour group.
GROUPS = (
    (0.15, (5200.0, 900.0), (48.0, 8.0), (6.0, 4.0)),
    (0.35, (1400.0, 300.0), (14.0, 3.0), (25.0, 10.0)),
    (0.30, (380.0, 120.0), (4.0, 1.5), (120.0, 40.0)),
    (0.20, (900.0, 250.0), (6.0, 2.0), (320.0, 45.0)),
)
REGIONS = ("north", "south", "east", "west")


def generate_rows(rows: int, seed: int = 7) -> list[dict[str, str]]:
    """Return `rows` customer rows; the same seed gives the same rows."""
    generator = random.Random(seed)
    weights = [group[0] for group in GROUPS]
    first_day = dt.date(2018, 1, 1)
    result = []
    for number in range(1, rows + 1):
        _, spend, orders, recency = generator.choices(GROUPS, weights=weights)[0]
        annual_spend = max(0.0, generator.gauss(*spend))
        order_count = max(1, round(generator.gauss(*orders)))
        result.append({
            "customer_id": f"C{number:06d}",
            "region": generator.choice(REGIONS),
            "signup_date": (first_day + dt.timedelta(days=generator.randrange(0, 2000))).isoformat(),
            "annual_spend": f"{annual_spend:.2f}",
            "orders_per_year": str(order_count),
            "days_since_last_order": str(max(0, round(generator.gauss(*recency)))),
            # A few blanks show the missing-value policy at work.
            "avg_basket": "" if generator.random() < 0.02 else f"{annual_spend / order_count:.2f}",
        })
    return result


def write_demo_csv(path: Path, rows: int, seed: int = 7) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    records = generate_rows(rows, seed)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, help="CSV file to write")
    parser.add_argument("--rows", type=int, default=5000, help="number of customers (default 5000)")
    parser.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    args = parser.parse_args(argv)
    print(write_demo_csv(args.path, args.rows, args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
