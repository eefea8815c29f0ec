"""The command line on a small structure: output file, errors, no partial output."""

import subprocess
import sys

import pytest

from cryosampler.cli import main
from cryosampler.structure import read_ensemble, read_structure, write_pdb

from conftest import make_helix


@pytest.fixture
def checkpoint(tiny_checkpoint):
    return tiny_checkpoint


def test_sample_writes_a_multi_model_ensemble(checkpoint, tiny_structure, tmp_path):
    reference = tmp_path / "ref.pdb"
    write_pdb(reference, tiny_structure)
    out = tmp_path / "out" / "ensemble.pdb"
    code = main(["sample", "--checkpoint", str(checkpoint), "--reference", str(reference), "-n", "3",
                 "--steps", "3", "-o", str(out), "--maps-dir", str(tmp_path / "maps"), "--quiet"])
    assert code == 0
    ensemble = read_ensemble(out, read_structure(reference))
    assert ensemble.shape == (3, tiny_structure.n_atoms, 3)
    assert len(list((tmp_path / "maps").glob("sample_*.mrc"))) == 3


def test_too_large_reference_fails_cleanly_without_output(checkpoint, tmp_path, capsys):
    reference = tmp_path / "long.pdb"
    write_pdb(reference, make_helix(30, "long"))
    out = tmp_path / "ensemble.pdb"
    code = main(["sample", "--checkpoint", str(checkpoint), "--reference", str(reference), "-o", str(out),
                 "--quiet"])
    assert code == 2
    assert "box" in capsys.readouterr().err
    assert not out.exists()


def test_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    code = main(["sample", "--checkpoint", str(tmp_path / "none.pt"), "--reference", "x.pdb", "-o",
                 str(tmp_path / "o.pdb")])
    assert code == 2
    assert "none.pt" in capsys.readouterr().err


def test_help_runs_as_a_module():
    result = subprocess.run([sys.executable, "-m", "cryosampler", "sample", "--help"], capture_output=True,
                            text=True, check=True)
    assert "--checkpoint" in result.stdout and "--reference" in result.stdout
