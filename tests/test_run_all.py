"""run_all.sh's arguments: plain usage text, and bad arguments refused before anything is set up."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "run_all.sh"


def run_copy(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """Run a copy of run_all.sh alone in ``tmp_path``: if it got past its argument check it could only fail
    there (no pyproject.toml, no python), never set up a venv or run tests in the repository."""
    script = tmp_path / "run_all.sh"
    shutil.copy(SCRIPT, script)
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "PYTHON": "false"})


@pytest.mark.parametrize("args, message", [
    (["--test", "extra"], "run_all.sh: unexpected argument 'extra' (at most one option; try --help)"),
    (["--help", "extra"], "run_all.sh: unexpected argument 'extra' (at most one option; try --help)"),
    (["extra"], "run_all.sh: unknown option 'extra' (try --help)"),
])
def test_bad_arguments_exit_2_with_one_line(tmp_path, args, message):
    result = run_copy(tmp_path, *args)
    assert result.returncode == 2, result.stderr
    assert result.stderr == message + "\n" and result.stdout == ""
    assert [p.name for p in tmp_path.iterdir()] == ["run_all.sh"]  # nothing set up


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_is_plain_usage_text(tmp_path, flag):
    result = run_copy(tmp_path, flag)
    assert result.returncode == 0 and result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0] == "Usage: ./run_all.sh [--extras | --extras-only | --test | --setup | --help]"
    assert not any(line.lstrip().startswith("#") for line in lines)
    for option in ("--extras", "--extras-only", "--test", "--setup", "-h, --help", "$CRYOSAMPLER_PDB_DIR"):
        assert option in result.stdout
    assert [p.name for p in tmp_path.iterdir()] == ["run_all.sh"]


def test_extras_only_without_the_notebooks_results_is_refused_before_set_up(tmp_path):
    result = run_copy(tmp_path, "--extras-only")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == ("run_all.sh: results/full/data/dataset.csv is missing: the extras read the notebooks' "
                             "full-profile results; run ./run_all.sh first (or ./run_all.sh --extras for both)\n")
    assert [p.name for p in tmp_path.iterdir()] == ["run_all.sh"]  # nothing set up


def test_extras_name_only_existing_scripts():
    """Each extra is one existing benchmark script run with python (docs/reproduce.md's manifest lists its files)."""
    text = SCRIPT.read_text()
    block = text[text.index("EXTRAS=("):text.index(")", text.index("EXTRAS=(") + len("EXTRAS=("))]
    entries = re.findall(r'"(\w+)\|python (benchmarks/\w+\.py)[^"]*"', block)
    assert len(entries) == block.count('"') // 2 >= 5
    for _, script in entries:
        assert (SCRIPT.parent / script).is_file(), script
