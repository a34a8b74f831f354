"""The import contracts of pyproject.toml (`[tool.importlinter]`) hold, and leave no module out.

`lint-imports` checks which module may import which: the layers from the entry points down to `mm.errors`,
who may import `mm.train`, and that the product never needs the synthetic world. Running it here makes
`make test` fail with its report. The other tests keep a new module from slipping past the contracts: a
folder of Python files without `__init__.py` is invisible to import-linter (as `mm/train` once was), and a
module no contract names is checked by none.
"""

from __future__ import annotations

import os
import pkgutil
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("mm", "encoders", "bridge", "demos")
CONTRACTS = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]["contracts"]
# Top-level parts of `mm` that no layer names, and why: mm.configs is data (it imports nothing); mm.train
# (whose `recipe` drives mm.loading) has a contract of its own.
UNLAYERED = {"mm.configs", "mm.train"}
# Who may import mm.train directly (the train contract's source list must name everything else).
TRAIN_IMPORTERS = {"mm.cli", "mm.loading", "mm.train"}


def _top_level() -> set[str]:
    """Every module and package directly under `mm`, plus the other root packages."""
    found = {f"mm.{m.name}" for m in pkgutil.iter_modules([str(ROOT / "mm")])}
    return found | set(PACKAGES[1:])


def _contract(kind: str, forbidding: str | None = None) -> dict:
    """The one contract of this type (of type "forbidden": the one that forbids `forbidding`)."""
    found = [c for c in CONTRACTS if c["type"] == kind and (forbidding is None or forbidding in c["forbidden_modules"])]
    assert len(found) == 1, f"{len(found)} {kind} contracts for {forbidding}"
    return found[0]


def test_import_contracts_hold():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if lint is None:
        pytest.fail("lint-imports not found: install the dev extra (pip install -e '.[dev]')", pytrace=False)
    env = {**os.environ, "COLUMNS": "160"}  # the report's lines unwrapped
    r = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    if r.returncode != 0:
        report = r.stdout[r.stdout.find("Contracts"):] if "Contracts" in r.stdout else r.stdout
        pytest.fail(f"import contracts broken (lint-imports):\n{report}{r.stderr}", pytrace=False)


def test_every_folder_of_python_files_is_a_package():
    missing = [str(d.relative_to(ROOT)) for name in PACKAGES for d in [ROOT / name, *(ROOT / name).rglob("*")]
               if d.is_dir() and d.name != "__pycache__" and any(d.glob("*.py")) and not (d / "__init__.py").exists()]
    assert not missing, f"no __init__.py, so import-linter cannot see these: {missing}"


def test_every_module_is_in_a_layer():
    layered = {m.strip() for layer in _contract("layers")["layers"] for m in re.split(r"[|:]", layer)}
    assert not layered - _top_level(), f"layers name modules that do not exist: {sorted(layered - _top_level())}"
    unplaced = _top_level() - layered - UNLAYERED
    assert not unplaced, f"put these in a layer of [tool.importlinter] in pyproject.toml: {sorted(unplaced)}"


def test_the_train_contract_names_every_other_module():
    sources = set(_contract("forbidden", "mm.train")["source_modules"])
    assert sources == _top_level() - TRAIN_IMPORTERS, (
        f"missing: {sorted(_top_level() - TRAIN_IMPORTERS - sources)}, "
        f"allowed to import mm.train or unknown: {sorted(sources - (_top_level() - TRAIN_IMPORTERS))}")
