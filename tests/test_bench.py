"""The benchmark command is a product too: run with tiny counts, the one command (`make bench`)
still starts everything it measures and prints every figure beside its goal."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from front_door import GOALS  # noqa: E402

pytestmark = pytest.mark.system

ROOT = Path(__file__).resolve().parent.parent
TINY = [
    *("--front-door-seconds", "0.3", "--front-door-concurrency", "2"),
    *("--lifecycles", "2", "--concurrency", "2", "--idle-seconds", "0.5"),
    *("--logins-seconds", "0.5", "--login-concurrency", "1"),
    *("--rate", "2", "--open-loop-seconds", "1"),
    *("--waiting", "6", "--cache", "2"),
    *("--rounds", "2", "--per-round", "2"),
    *("--scale-lifecycles", "2", "--scale-concurrency", "2"),
]
STACK_FIGURES = (
    "registration CPU per lifecycle",
    "registration lifecycles:",
    "registration history:",
    "registration submit p99:",
    "confirmation click to 'user confirmed' e-mail p99:",
    "worker RSS with 10000 waiting",
)
ALWAYS_MET = (
    "'user confirmed' e-mails sent twice: 0",
    "bounded tables:",
    "scale-out:",
)
"""Figures that hold at any count: nothing sent twice, every swept table back to 0 after each
sweep, every applicant of the scale-out part with exactly its two e-mails."""


def test_the_one_bench_command_prints_every_figure_against_its_goal():
    result = subprocess.run(
        [sys.executable, "bench/run.py", *TINY],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    summary = result.stdout.split("measured vs goal", 1)[1].splitlines()
    assert "load average" in summary[0]
    for goal in GOALS.values():
        line = next(line for line in summary if line.strip().startswith(f"{goal.name}:"))
        assert f"(goal >= {goal.floor:g})" in line
        assert " 0 errors" in line, line
    for figure in STACK_FIGURES:
        line = figure_line(summary, figure)
        assert "(goal " in line and line.endswith(("met", "NOT MET")), line
    for figure in ALWAYS_MET:
        assert figure_line(summary, figure).endswith(" met"), summary


def figure_line(summary: list[str], figure: str) -> str:
    found = [line for line in summary if line.strip().startswith(figure)]
    assert found, (figure, summary)
    return found[0]
