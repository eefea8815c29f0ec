"""The tree is clean under ruff with pyproject.toml's rules (defects, not style): ./run_all.sh --test runs the linter
through this test."""

import importlib.util
import subprocess
import sys

import pytest

from cryosampler.experiments.profiles import repo_root


def ruff(*args: str, source: str | None = None) -> subprocess.CompletedProcess:
    """``python -m ruff check`` in the repository (its pyproject.toml), no cache written."""
    if importlib.util.find_spec("ruff") is None:
        pytest.fail("ruff is not installed; it is in the [test] extra: pip install -e '.[test]'")
    return subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", *args],
                          cwd=repo_root(), input=source, capture_output=True, text=True, timeout=300)


def test_ruff_finds_nothing_in_the_tree():
    result = ruff()
    assert result.returncode == 0, f"ruff check (cryosampler/, tests/, benchmarks/, notebooks/):\n" \
                                   f"{result.stdout}{result.stderr}"


def test_the_rules_catch_the_defects_they_are_chosen_for():
    # Guard against a configuration that passes because it checks nothing.
    source = ("import os\n\n\n"
              "def f(x=[]):\n"
              "    unused = 1\n"
              "    return [lambda: k for k in x] + undefined_name\n")
    result = ruff("--stdin-filename", "cryosampler/probe.py", "-", source=source)
    codes = {line.split(": ")[1].split()[0] for line in result.stdout.splitlines() if "probe.py:" in line}
    assert {"F401", "F841", "F821", "B006", "B023"} <= codes, result.stdout + result.stderr
