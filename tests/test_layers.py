"""The layers import only downward, read from the source with `ast` (nothing is imported): the
domain, the Temporal plumbing, mail, the shared activities and the processes never import the
web tier or the command line, so a worker needs neither on disk, and no package reaches up."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

LEVELS = {
    "portal": 0,
    "temporal": 1,
    "mail": 1,
    "activities": 2,
    "processes": 3,
    "web": 4,
    "worker": 5,
    "cli": 6,
}
"""Lower imports nothing higher, and packages on one level do not import each other; the
worker (worker.py) and the command line that runs it are the entry points on top."""

PACKAGES = [name for name in LEVELS if name != "worker"]


def imported_packages(path: Path) -> set[str]:
    """The first-party top-level names a module imports, at any depth (lazy imports count)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found |= {name.split(".")[0] for name in names} & set(LEVELS)
    return found


def sources(package: str) -> list[Path]:
    if package == "worker":
        return [ROOT / "worker.py"]
    return sorted(path for path in (ROOT / package).rglob("*.py") if "migrations" not in path.parts)


def reaching_up(package: str) -> list[str]:
    level = LEVELS[package]
    return [
        f"{path.relative_to(ROOT)} imports {other}"
        for path in sources(package)
        for other in sorted(imported_packages(path))
        if other != package and LEVELS[other] >= level
    ]


@pytest.mark.parametrize("package", [p for p, level in LEVELS.items() if level < LEVELS["web"]])
def test_the_domain_and_the_processes_never_import_web_or_cli(package):
    assert not [
        line
        for path in sources(package)
        for line in [f"{path.relative_to(ROOT)} imports {name}" for name in imported_packages(path)]
        if line.endswith((" web", " cli", " worker"))
    ]


@pytest.mark.parametrize("package", list(LEVELS))
def test_no_package_imports_one_above_it_or_beside_it(package):
    assert reaching_up(package) == []


def test_every_package_in_the_wheel_has_a_level():
    """A new top-level package must say where it sits before the check above can guard it."""
    pyproject = (ROOT / "pyproject.toml").read_text()
    listed = pyproject.split("[tool.setuptools.packages.find]")[1].split("]")[0]
    assert {name.strip(' "*') for name in listed.split("[")[1].split(",")} == set(PACKAGES)
