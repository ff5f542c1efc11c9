"""Prints the slowest tests of every pass `make test` ran, read from their JUnit reports.

Usage: python scripts/slowest_tests.py REPORT.xml [REPORT.xml ...] [--top 25]
"""

from __future__ import annotations

import argparse
import xml.etree.ElementTree as ET  # noqa: S405 (our own pytest's reports, not untrusted input)
from pathlib import Path


def timings(report: Path) -> list[tuple[float, str]]:
    """(seconds, test id) for each test case of one report, named after the report's pass."""
    root = ET.parse(report).getroot()  # noqa: S314
    label = report.stem
    return [
        (float(case.get("time", 0)), f"[{label}] {case.get('classname')}::{case.get('name')}")
        for case in root.iter("testcase")
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    cases = sorted(
        (case for report in args.reports if report.exists() for case in timings(report)),
        reverse=True,
    )
    print(f"The {min(args.top, len(cases))} slowest of {len(cases)} tests run by make test:")
    for seconds, name in cases[: args.top]:
        print(f"{seconds:8.2f}s  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
