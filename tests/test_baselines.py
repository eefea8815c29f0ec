"""Baseline importers on small files written in AlphaFlow's and Boltz's output layouts."""

from pathlib import Path

import numpy as np
import pytest

from conftest import make_helix
from cryosampler.experiments.baselines import (BASELINE_COMMANDS, BASELINE_METHODS, find_baseline_outputs, read_alphaflow,
                                   read_baseline, read_boltz)
from cryosampler.io.atomic_files import write_mmcif, write_pdb
from cryosampler.evaluation.tables import TABLE1_METHODS


def _with_hydrogens(pdb_text: str) -> str:
    """Add an amide H after every backbone N, as AlphaFlow's PDB writer may."""
    lines = []
    for line in pdb_text.splitlines():
        lines.append(line)
        if line.startswith("ATOM") and line[12:16] == " N  ":
            lines.append(line[:12] + " H  " + line[16:30] + "  10.000  10.000  10.000" + line[54:76] + " H")
    return "\n".join(lines) + "\n"


def _shifted_models(structure, n_models):
    """(n_models, N, 3): model k is the structure shifted by k Å along x, so its order is readable."""
    return np.stack([structure.coords + [k, 0.0, 0.0] for k in range(n_models)])


def test_read_alphaflow_multi_model_pdb(tmp_path):
    helix = make_helix()
    path = tmp_path / "4CLN.pdb"
    write_pdb(path, helix, _shifted_models(helix, 3))
    structure, coords = read_alphaflow(path)
    assert coords.shape == (3, helix.n_atoms, 3)
    np.testing.assert_allclose(coords, _shifted_models(helix, 3), atol=1e-3)
    np.testing.assert_array_equal(structure.atom_names, helix.atom_names)


def test_read_alphaflow_drops_hydrogens(tmp_path):
    helix = make_helix()
    plain, with_h = tmp_path / "plain.pdb", tmp_path / "with_h.pdb"
    write_pdb(plain, helix, _shifted_models(helix, 3))
    with_h.write_text(_with_hydrogens(plain.read_text()))
    assert with_h.read_text().count(" H   ALA") == 3 * 10
    structure, coords = read_alphaflow(with_h)
    np.testing.assert_array_equal(structure.atom_names, helix.atom_names)
    np.testing.assert_array_equal(coords, read_alphaflow(plain)[1])


def test_read_alphaflow_errors_name_the_file(tmp_path):
    with pytest.raises(ValueError, match="missing.pdb"):
        read_alphaflow(tmp_path / "missing.pdb")
    # Model 2 lacks the last residue.
    full, short = tmp_path / "full.pdb", tmp_path / "short.pdb"
    write_pdb(full, make_helix(10))
    write_pdb(short, make_helix(9))
    atoms = [[line for line in p.read_text().splitlines() if line.startswith("ATOM")] for p in (full, short)]
    mixed = tmp_path / "mixed.pdb"
    models = [f"MODEL {m + 1:8d}\n" + "\n".join(a) + "\nENDMDL\n" for m, a in enumerate(atoms)]
    mixed.write_text("".join(models) + "END\n")
    with pytest.raises(ValueError, match=r"mixed\.pdb model 2.*do not match"):
        read_alphaflow(mixed)


def _write_boltz(folder: Path, name: str, ks, structure=None):
    folder.mkdir(parents=True, exist_ok=True)
    structure = structure or make_helix()
    for k in ks:
        write_mmcif(folder / f"{name}_model_{k}.cif", structure, structure.coords + [k, 0.0, 0.0])


def test_read_boltz_orders_models_numerically(tmp_path):
    predictions = tmp_path / "predictions"
    _write_boltz(predictions / "X", "X", range(11))
    (predictions / "X" / "confidence_X_model_0.json").write_text("{}")
    for folder in (predictions, predictions / "X"):
        structure, coords = read_boltz(folder, "X")
        assert coords.shape == (11, structure.n_atoms, 3)
        # Row k is model_k (model_10 last, not after model_1): its x-shift is k Å.
        np.testing.assert_allclose(coords.mean(1)[:, 0] - structure.coords.mean(0)[0], np.arange(11), atol=1e-3)


def test_read_boltz_errors(tmp_path):
    with pytest.raises(ValueError, match=str(tmp_path / "nowhere" / "X")):
        read_boltz(tmp_path / "nowhere", "X")
    _write_boltz(tmp_path / "gap" / "X", "X", [0, 1, 3])
    with pytest.raises(ValueError, match="X_model_2.cif is missing"):
        read_boltz(tmp_path / "gap", "X")
    folder = tmp_path / "mismatch" / "X"
    _write_boltz(folder, "X", [0, 1])
    _write_boltz(folder, "X", [2], structure=make_helix(9))
    with pytest.raises(ValueError, match=r"X_model_2\.cif.*do not match"):
        read_boltz(folder, "X")


def test_find_baseline_outputs(tmp_path):
    assert find_baseline_outputs(tmp_path, "4CLN") == {}
    (tmp_path / "alphaflow").mkdir()
    write_pdb(tmp_path / "alphaflow" / "4CLN.pdb", make_helix())
    boltz = tmp_path / "boltz" / "boltz_results_boltz_input" / "predictions" / "4CLN"
    _write_boltz(boltz, "4CLN", [0])
    found = find_baseline_outputs(tmp_path, "4CLN")
    assert found == {"alphaflow": tmp_path / "alphaflow" / "4CLN.pdb", "boltz": boltz}
    assert read_boltz(found["boltz"], "4CLN")[1].shape[0] == 1
    assert find_baseline_outputs(tmp_path, "1EXR") == {}
    _write_boltz(tmp_path / "boltz" / "predictions" / "4CLN", "4CLN", [0])
    with pytest.raises(ValueError, match="several Boltz predictions"):
        find_baseline_outputs(tmp_path, "4CLN")


def test_every_found_output_reads_and_names_a_table1_row(tmp_path):
    helix = make_helix()
    (tmp_path / "alphaflow").mkdir()
    write_pdb(tmp_path / "alphaflow" / "4CLN.pdb", helix, _shifted_models(helix, 3))
    _write_boltz(tmp_path / "boltz" / "predictions" / "4CLN", "4CLN", [0, 1])
    found = find_baseline_outputs(tmp_path, "4CLN")
    assert set(found) == set(BASELINE_METHODS)
    shapes = {kind: read_baseline(kind, path, "4CLN")[1].shape for kind, path in found.items()}
    assert shapes == {"alphaflow": (3, helix.n_atoms, 3), "boltz": (2, helix.n_atoms, 3)}
    assert set(BASELINE_METHODS.values()) <= set(TABLE1_METHODS)
    with pytest.raises(ValueError, match="unknown baseline output kind 'colabfold'"):
        read_baseline("colabfold", found["boltz"], "4CLN")


def test_commands_produce_the_documented_layout():
    alphaflow, boltz = BASELINE_COMMANDS["alphaflow"], BASELINE_COMMANDS["boltz"]
    assert "--samples 16" in alphaflow and "--outpdb <root>/alphaflow" in alphaflow
    assert "--diffusion_samples 16" in boltz and "--out_dir <root>/boltz" in boltz and "--output_format mmcif" in boltz
