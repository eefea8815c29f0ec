"""The domain-motion benchmark's data: a synthetic wheel for the reading and its errors (no network), and the
real wheel (skipped when it cannot be downloaded) for issue 9's cases and their fit in the map box."""

import zipfile

import numpy as np
import pandas as pd
import pytest

from cryosampler.experiments import domain_motion as dm
from cryosampler.io.grid import MapGrid
from cryosampler.io.atomic_files import write_pdb
from cryosampler.physics.superpose import rmsd
from conftest import make_helix


def _fake_wheel(tmp_path, helix_files=("1ABC_A", "2XYZ_B")):
    """A wheel with one test case "P00001" (states 1abc_A, 2XYZ_B, the first spelled lower-case as in the
    real references.csv) whose files are 10-residue helices."""
    wheel = tmp_path / dm.WHEEL_NAME
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(f"{dm._ASSETS}/references.csv", "test_case,pdbidchain_i,pdbidchain_j\nP00001,1abc_A,2XYZ_B\n")
        archive.writestr(f"{dm._ASSETS}/testcases.csv", "test_case,sequence\nP00001,AAAAAAAAAA\n")
        for state in helix_files:
            write_pdb(tmp_path / "tmp.pdb", make_helix(10))
            archive.write(tmp_path / "tmp.pdb", f"{dm._ASSETS}/reference/P00001/{state}.pdb")
    return wheel


def test_read_cases_and_state_from_a_wheel(tmp_path):
    wheel = _fake_wheel(tmp_path)
    cases = dm.read_cases(wheel)
    assert cases == {"P00001": dm.Case("P00001", "1ABC_A", "2XYZ_B", "AAAAAAAAAA")}
    structure = dm.read_state(wheel, "P00001", "1abc_A")
    assert structure.name == "1ABC_A" and structure.n_residues == 10
    np.testing.assert_allclose(structure.coords, make_helix(10).coords, atol=1e-3)  # PDB's 3 decimals


def test_read_state_errors_name_the_case_state_or_file(tmp_path):
    wheel = _fake_wheel(tmp_path, helix_files=("1ABC_A",))
    with pytest.raises(ValueError, match=r"no domain-motion test case 'P99999'; cases: P00001"):
        dm.read_state(wheel, "P99999", "1ABC_A")
    with pytest.raises(ValueError, match=r"test case P00001 has states 1ABC_A and 2XYZ_B, not '3DEF_A'"):
        dm.read_state(wheel, "P00001", "3DEF_A")
    with pytest.raises(ValueError, match=r"no file .*reference/P00001/2XYZ_B\.pdb"):
        dm.read_state(wheel, "P00001", "2XYZ_B")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / dm.WHEEL_NAME).write_text("not a zip")
    with pytest.raises(ValueError, match=r"cannot read the wheel .*download it again"):
        dm.read_cases(tmp_path / "broken" / dm.WHEEL_NAME)


def test_missing_wheel_names_the_cache_and_the_pip_command(tmp_path):
    with pytest.raises(ValueError, match=r"not found; download it with: python -m pip download --no-deps "
                                         r"bioemu-benchmarks==0\.0\.2\.post1 -d .*empty"):
        dm.benchmark_wheel(tmp_path / "empty", download=False)


def test_failed_download_is_one_line_naming_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # pip as if offline: no index to download from
    with pytest.raises(ValueError) as err:
        dm.benchmark_wheel(tmp_path / "cache")
    message = str(err.value)
    assert "\n" not in message
    assert f"cannot download bioemu-benchmarks==0.0.2.post1 into {tmp_path / 'cache'}" in message
    assert "python -m pip download --no-deps" in message
    assert not list((tmp_path / "cache").glob("*.whl"))


def test_box_margin_by_hand():
    helix = make_helix(10)
    radius = np.linalg.norm(helix.coords - helix.coords.mean(0), axis=1).max()
    # 64³ at 2 Å: voxel centres span [-64, 62] Å, so the nearer edge is 62 Å away.
    assert dm.box_margin(helix) == pytest.approx(62.0 - radius)
    assert dm.box_margin(helix, MapGrid(size=16, apix=2.0)) == pytest.approx(14.0 - radius)


def test_check_fits_box_refuses_a_protein_too_large():
    long_helix = make_helix(60)  # ~90 Å long: radius ~45 Å
    with pytest.raises(ValueError, match=r"tiny: reaches -?\d+\.\d Å from the edge of the 32³ × 2 Å box"):
        dm.check_fits_box(long_helix, MapGrid(size=32, apix=2.0))
    assert dm.check_fits_box(long_helix) > dm.MIN_BOX_MARGIN


def test_issue_cases_are_the_wheels(benchmark_wheel):
    cases = dm.read_cases(benchmark_wheel)
    for name, states in {**dm.TRAIN_CASES, **dm.HELD_OUT_CASES}.items():
        assert (cases[name].state_i, cases[name].state_j) == states
    assert not set(dm.TRAIN_CASES) & set(dm.HELD_OUT_CASES)


@pytest.mark.parametrize("name", [*dm.TRAIN_CASES, *dm.HELD_OUT_CASES])
def test_every_state_is_backbone_only_and_fits_the_box(benchmark_wheel, name):
    for state in (dm.TRAIN_CASES | dm.HELD_OUT_CASES)[name]:
        structure = dm.read_state(benchmark_wheel, name, state)
        assert set(structure.atom_names) == {"N", "CA", "C", "O"} and structure.n_atoms == 4 * structure.n_residues
        # Numbered consecutively, from 1 or a few residues later (1GGG_A from 2, 3ZSF_A from 4): the two
        # states' numbers need not agree, hence the pairing by sequence alignment in metrics.
        assert np.all(np.diff(structure.backbone_res_nums) == 1) and 1 <= structure.backbone_res_nums[0] <= 4
        assert dm.check_fits_box(structure) >= dm.MIN_BOX_MARGIN


def test_directions_of_training_and_held_out_cases():
    case = dm.Case("P00001", "1ABC_A", "2XYZ_B", "AAAA")
    assert dm.directions(case, "train") == [("1ABC_A", ("1ABC_A", "2XYZ_B"))]
    assert dm.directions(case, "held out") == [("1ABC_A", ("2XYZ_B",)), ("2XYZ_B", ("1ABC_A",))]
    with pytest.raises(ValueError, match="split must be 'train' or 'held out', got 'val'"):
        dm.directions(case, "val")


def test_superposed_state_undoes_a_rigid_motion():
    from scipy.spatial.transform import Rotation

    helix = make_helix(12)
    rotation = Rotation.from_euler("xyz", [40, -75, 120], degrees=True).as_matrix()
    state = with_coords(helix, helix.coords @ rotation.T + [30.0, -5.0, 12.0], "moved")
    np.testing.assert_allclose(dm.superposed_state(state, helix), helix.coords, atol=1e-3)  # PDB's 3 decimals


def test_superposed_state_pairs_states_of_other_lengths_by_sequence(tmp_path):
    import dataclasses

    from scipy.spatial.transform import Rotation

    from cryosampler.io.atomic_files import read_structure

    helix = make_helix(12)
    residues = ["MET", "LYS", "TRP", "GLU", "ASP", "PHE", "GLY", "HIS", "ILE", "ASN", "PRO", "TYR"]
    helix = dataclasses.replace(helix, res_names=np.repeat(residues, np.diff(helix.residue_starts)))
    rotation = Rotation.from_euler("xyz", [10, 60, -35], degrees=True).as_matrix()
    write_pdb(tmp_path / "full.pdb", helix, helix.coords @ rotation.T + [-8.0, 3.0, 20.0])
    # The state lacks the first two residues (as a deposited chain may) and is numbered from 1 again.
    lines = [line for line in (tmp_path / "full.pdb").read_text().splitlines(keepends=True)
             if not (line.startswith("ATOM") and int(line[22:26]) <= 2)]
    (tmp_path / "trimmed.pdb").write_text("".join(line[:22] + f"{int(line[22:26]) - 2:4d}" + line[26:]
                                                  if line.startswith("ATOM") else line for line in lines))
    state = read_structure(tmp_path / "trimmed.pdb")
    assert state.sequence == helix.sequence[2:] and state.res_nums[0] == 1
    kept = helix.residue_starts[2]  # the reference's atoms of residues 3-12
    np.testing.assert_allclose(dm.superposed_state(state, helix), helix.coords[kept:], atol=2e-3)


def with_coords(structure, coords, name):
    """``structure`` with other coordinates and name, written and read again (derived fields stay consistent)."""
    import tempfile
    from pathlib import Path

    from cryosampler.io.atomic_files import read_structure
    with tempfile.TemporaryDirectory() as tmp:
        write_pdb(Path(tmp) / f"{name}.pdb", structure, coords)
        return read_structure(Path(tmp) / f"{name}.pdb")


def test_score_samples_by_hand():
    helix = make_helix(10)
    target = with_coords(helix, helix.coords, "target")
    rng = np.random.default_rng(1)
    near = helix.coords + rng.normal(0, 0.5, helix.coords.shape)  # ~0.9 Å from the target
    far = helix.coords + rng.normal(0, 2.0, helix.coords.shape)  # ~3.5 Å
    other = with_coords(helix, far, "other")
    scored = dm.score_samples(np.stack([near, far, near]), helix, [target, other])
    backbone = helix.backbone_index.ravel()  # N, CA, C, O of every residue: the helices pair whole
    expected_near = rmsd(near[backbone], target.coords[backbone])  # the independent Kabsch RMSD
    assert list(scored["target"]) == ["target", "other"]
    assert scored["best_rmsd"].iloc[0] == pytest.approx(expected_near, abs=1e-9) and expected_near > 0.5
    assert scored["best_rmsd"].iloc[1] == pytest.approx(0.0, abs=1e-3)
    assert list(scored["covered"]) == [True, True] and list(scored["occupancy"]) == pytest.approx([2 / 3, 1 / 3])
    single = dm.score_samples(far[None], helix, [target], threshold=1.0)
    assert not single["covered"].iloc[0] and np.isnan(single["occupancy"].iloc[0])  # no other state to share with


def test_anm_amplitude_is_chosen_on_training_proteins_only():
    trials = pd.DataFrame({"amplitude": [1.0, 2.0, 1.0, 2.0, 1.0, 2.0],
                           "split": ["train", "train", "train", "train", "held out", "held out"],
                           "best_rmsd_other": [3.0, 2.0, 3.0, 2.5, 0.1, 9.0]})
    assert dm.choose_anm_amplitude(trials) == 2.0  # held-out rows would favour 1.0
    with pytest.raises(ValueError, match="no training-protein trials"):
        dm.choose_anm_amplitude(trials[trials["split"] == "held out"])
