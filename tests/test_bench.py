"""The benchmark command is a product too: run with tiny counts, it still starts everything it
measures and prints every figure beside its goal."""

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
    "--front-door-seconds",
    "0.3",
    "--front-door-concurrency",
    "2",
    "--lifecycles",
    "2",
    "--lifecycle-concurrency",
    "2",
    "--logins-seconds",
    "0.5",
    "--login-concurrency",
    "1",
    "--rate",
    "2",
    "--open-loop-seconds",
    "1",
]


def test_the_bench_command_prints_every_figure_against_its_goal():
    result = subprocess.run(
        [sys.executable, "bench/run.py", *TINY],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    summary = result.stdout.split("measured vs goal:", 1)[1].splitlines()
    for goal in GOALS.values():
        line = next(line for line in summary if line.strip().startswith(f"{goal.name}:"))
        assert f"(goal >= {goal.floor:g})" in line
        assert " 0 errors" in line, line
    assert any("registration lifecycles:" in line and "goal >=" in line for line in summary)
    assert any("registration submit p99:" in line and "goal <=" in line for line in summary)


def test_the_capacity_bench_shows_every_swept_table_back_to_nothing_after_each_sweep():
    result = subprocess.run(
        [sys.executable, "bench/capacity.py", "--tables", "--rounds", "2", "--per-round", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("round")).split()[1:]
    below = lines[lines.index(next(line for line in lines if line.startswith("round"))) + 1 :]
    rounds = [line.split() for line in below if line.strip()[:1].isdigit()]
    assert len(rounds) == 2
    for cells in rounds:
        pairs = [cells[i : i + 3] for i in range(1, len(cells), 3)]
        assert len(pairs) == len(header) and all(pair[1] == "/" for pair in pairs), cells
        for table, (_during, _slash, after_sweep) in zip(header, pairs, strict=True):
            if table.startswith("*") or table in ("oidc_refresh_tokens", "oidc_grants"):
                continue  # kept on purpose: the bench's offline grants (and so their refresh
                # tokens) last 90 days, longer than the 40 days it ages the tables by
            assert after_sweep == "0", (table, cells)


def test_the_registration_bench_prints_cpu_history_and_latency_against_their_goals():
    result = subprocess.run(
        [
            sys.executable,
            "bench/registration.py",
            *("--lifecycles", "2", "--concurrency", "2", "--rate", "2"),
            *("--open-loop-seconds", "1", "--idle-seconds", "0.5"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    out = result.stdout
    for figure in ("CPU per lifecycle", "history of one lifecycle", "registration submit at"):
        line = next(line for line in out.splitlines() if line.startswith(figure))
        assert "goal" in line, line
    assert "'user confirmed' e-mails sent twice: 0" in out
