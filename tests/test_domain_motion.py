"""The domain-motion benchmark's data: a synthetic wheel for the reading and its errors (no network), and the
real wheel (skipped when it cannot be downloaded) for issue 9's cases and their fit in the map box."""

import zipfile

import numpy as np
import pandas as pd
import pytest

from cryosampler.experiments import domain_motion as dm
from cryosampler.experiments.downloads import DownloadUnavailable
from cryosampler.evaluation.validate import validity_table
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
    with pytest.raises(DownloadUnavailable, match=r"not found; download it with: python -m pip download --no-deps "
                                         r"bioemu-benchmarks==0\.0\.2\.post1 -d .*empty"):
        dm.benchmark_wheel(tmp_path / "empty", download=False)


def test_failed_download_is_one_line_naming_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # pip as if offline: no index to download from
    with pytest.raises(DownloadUnavailable) as err:  # the one failure the tests may skip on
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


def _two_state_case(tmp_path):
    """Case "P00001": state i a helix, state j the same helix bent and moved rigidly, named by their state ids."""
    from scipy.spatial.transform import Rotation

    helix = make_helix(12)
    bent = helix.coords + (helix.coords[:, 2:3] / 8.0) ** 2 * [1.5, 0.0, 0.0]
    rotation = Rotation.from_euler("xyz", [20, -40, 75], degrees=True).as_matrix()
    states = {"1ABC_A": with_coords(helix, helix.coords, "1ABC_A"),
              "2XYZ_B": with_coords(helix, bent @ rotation.T + [12.0, -3.0, 5.0], "2XYZ_B")}
    return dm.Case("P00001", "1ABC_A", "2XYZ_B", states["1ABC_A"].sequence), states, bent


def test_dataset_table_by_hand(tmp_path):
    case, states, _ = _two_state_case(tmp_path)
    i, j = states["1ABC_A"], states["2XYZ_B"]
    table = dm.dataset_table({"P00001": case}, {"P00001": "held out"}, states)
    assert list(table.columns) == ["protein", "split", "state_i", "state_j", "residues_i", "residues_j", "ca_rmsd",
                                   "backbone_rmsd", "box_margin"]
    row = table.iloc[0]
    assert (row["protein"], row["split"], row["state_i"], row["state_j"]) == ("P00001", "held out", "1ABC_A", "2XYZ_B")
    ca, backbone = i.backbone_index[:, 1], i.backbone_index.ravel()  # the helices pair whole
    assert row["ca_rmsd"] == pytest.approx(rmsd(i.coords[ca], j.coords[ca]), abs=1e-6) and row["ca_rmsd"] > 0.3
    assert row["backbone_rmsd"] == pytest.approx(rmsd(i.coords[backbone], j.coords[backbone]), abs=1e-6)
    assert row["box_margin"] == pytest.approx(min(dm.box_margin(i), dm.box_margin(j)))
    with pytest.raises(ValueError, match="1ABC_A: reaches"):  # too small a box is refused, not tabled
        dm.dataset_table({"P00001": case}, {"P00001": "train"}, states, MapGrid(size=16, apix=2.0, resolution=8.0))


def test_fit_table_scores_each_map_against_the_state_it_shows(tmp_path):
    case, states, _ = _two_state_case(tmp_path)
    i, j = states["1ABC_A"], states["2XYZ_B"]
    # A fit of the state-i map that returns state i, and of the state-j map that returns state j superposed.
    write_pdb(tmp_path / "fit_i.pdb", i)
    write_pdb(tmp_path / "fit_j.pdb", i, dm.superposed_state(j, i))
    pd.DataFrame({"map": [str(tmp_path / "maps" / "1ABC_A.mrc"), str(tmp_path / "maps" / "2XYZ_B.mrc")],
                  "model": [str(tmp_path / "fit_i.pdb"), str(tmp_path / "fit_j.pdb")],
                  "correlation_reference": [0.9, 0.7], "correlation_fitted": [0.95, 0.93]}).to_csv(
        tmp_path / "fit.csv", index=False)
    table = dm.fit_table({"P00001": tmp_path}, {"P00001": case}, states)
    assert list(table["protein"]) == ["P00001"] * 2 and list(table["map"]) == ["1ABC_A", "2XYZ_B"]
    assert table["rmsd_reference"].iloc[0] == pytest.approx(0.0, abs=1e-3)
    expected = dm.dataset_table({"P00001": case}, {"P00001": "train"}, states)["backbone_rmsd"].iloc[0]
    assert table["rmsd_reference"].iloc[1] == pytest.approx(expected, abs=1e-6) and expected > 0.3
    np.testing.assert_allclose(table["rmsd_fitted"], 0.0, atol=2e-3)  # PDB's 3 decimals
    assert list(table["correlation_fitted"]) == [0.95, 0.93]
    assert "rmsd_refined" not in table
    # A refinement of the state-j map only, that returned state i: scored against j, state i's row left empty.
    refined = tmp_path / "refined"
    refined.mkdir()
    pd.DataFrame({"map": [str(tmp_path / "maps" / "2XYZ_B.mrc")], "model": [str(tmp_path / "fit_i.pdb")],
                  "correlation_reference": [0.7], "correlation_fitted": [0.99]}).to_csv(refined / "fit.csv", index=False)
    table = dm.fit_table({"P00001": tmp_path}, {"P00001": case}, states, refined_dirs={"P00001": refined})
    assert np.isnan(table["rmsd_refined"].iloc[0]) and np.isnan(table["correlation_refined"].iloc[0])
    assert table["rmsd_refined"].iloc[1] == pytest.approx(expected, abs=2e-3)
    assert table["correlation_refined"].iloc[1] == 0.99
    np.testing.assert_allclose(table["rmsd_fitted"], 0.0, atol=2e-3)  # the read-out columns are unchanged


def test_anm_trials_skip_held_out_directions_and_repeat_with_the_seed(tmp_path):
    _, states, _ = _two_state_case(tmp_path)
    directions = [("P00001", "train", "1ABC_A", ("1ABC_A", "2XYZ_B")), ("P00002", "held out", "1ABC_A", ("2XYZ_B",))]
    trials = dm.anm_trials(directions, states, n_samples=3, seed=4, amplitudes=(0.5, 2.0))
    assert list(trials.columns) == ["protein", "split", "amplitude", "best_rmsd_other"]
    assert list(trials["protein"]) == ["P00001"] * 2 and list(trials["amplitude"]) == [0.5, 2.0]
    assert np.all(trials["best_rmsd_other"] > 0)
    pd.testing.assert_frame_equal(trials, dm.anm_trials(directions, states, n_samples=3, seed=4, amplitudes=(0.5, 2.0)))
    view = dm.anm_trials_table(trials)
    assert list(view.columns) == ["P00001", "mean"] and list(view.index) == [0.5, 2.0]


def test_score_table_rows_methods_and_coverage(tmp_path):
    _, states, _ = _two_state_case(tmp_path)
    i = states["1ABC_A"]
    samples = np.stack([i.coords, dm.superposed_state(states["2XYZ_B"], i)])  # one sample on each state
    directions = [("P00001", "train", "1ABC_A", ("1ABC_A", "2XYZ_B")), ("P00002", "held out", "1ABC_A", ("2XYZ_B",))]
    table = dm.score_table(directions, states, {"1ABC_A": samples}, {"1ABC_A": 2.5}, anm_amplitude=1.0,
                           n_samples=3, seed=0)
    assert len(table) == 2 * 3 + 3  # (2 targets + 1 target) × 3 methods
    assert list(table["method"].unique()) == ["CryoSampler", "ANM", "static reference"]
    ours = table[(table["method"] == "CryoSampler") & (table["split"] == "train")]
    np.testing.assert_allclose(ours["best_rmsd"], 0.0, atol=2e-3)
    assert list(ours["occupancy"]) == pytest.approx([0.5, 0.5]) and list(ours["sample_seconds"]) == [2.5, 2.5]
    static = table[table["method"] == "static reference"]
    assert list(static["n_samples"]) == [1, 1, 1] and static["sample_seconds"].isna().all()
    assert list(table[table["method"] == "ANM"]["n_samples"]) == [3, 3, 3]
    assert table[table["split"] == "held out"]["occupancy"].isna().all()
    assert np.array_equal(table["coverage_3A"], (table["best_rmsd"] < 3.0).astype(float))
    assert np.array_equal(table["coverage_1A"], (table["best_rmsd"] < 1.0).astype(float))
    assert "rotation augmentation off" in dm.score_footnote(10, "smoke", False, 0, 1.5)
    assert "1.5 Å amplitude" in dm.score_footnote(10, "smoke", True, 0, 1.5)


def test_validity_rows_cover_every_reference_method_and_both_experimental_states(tmp_path):
    _, states, _ = _two_state_case(tmp_path)
    i, j = states["1ABC_A"], states["2XYZ_B"]
    clashing = i.coords.copy()
    clashing[-1] = clashing[0]  # last residue's CB on the first residue's N: a clash
    ensembles = {"1ABC_A": np.stack([i.coords, clashing]), "2XYZ_B": j.coords[None]}
    directions = [("P00001", "train", "1ABC_A", ("1ABC_A", "2XYZ_B")),
                  ("P00002", "held out", "1ABC_A", ("2XYZ_B",)), ("P00002", "held out", "2XYZ_B", ("1ABC_A",))]
    rows = dm.validity_ensembles(directions, states, ensembles, anm_amplitude=1.0, n_samples=3, seed=0)
    table = validity_table(rows)
    assert list(table.columns[:4]) == ["protein", "split", "reference", "method"]
    methods = ["CryoSampler", "ANM", "static reference"]
    assert list(table["method"]) == methods + ["experimental state"] * 2 + methods * 2 + ["experimental state"] * 2
    assert list(table["reference"]) == (["1ABC_A"] * 4 + ["2XYZ_B"]) + (["1ABC_A"] * 3 + ["2XYZ_B"] * 3
                                                                      + ["1ABC_A", "2XYZ_B"])
    assert list(table["samples"]) == [2, 3, 1, 1, 1] + [2, 3, 1, 1, 3, 1, 1, 1]
    ours = table.iloc[0]
    assert ours["clashes_per_sample"] > 0 and ours["bioemu_pass"] == 0.5
    # ANM is drawn as score_table draws it: the same samples for the same seed.
    anm = dm.method_samples(i, ensembles["1ABC_A"], 1.0, 3, 0)["ANM"]
    assert table.iloc[1]["bond_dev_max"] == validity_table([({}, anm, i)]).iloc[0]["bond_dev_max"]
    experimental = table[table["method"] == "experimental state"]
    assert (experimental[["clashes_per_sample", "bond_dev_max", "angle_dev_max"]] == 0).all().all()
    assert "experimental state" in dm.VALIDITY_FOOTNOTE and "clashes_per_sample" in dm.VALIDITY_FOOTNOTE


def _scores():
    """Scores of one training protein (targets A = reference, B) and two held-out directions, one method."""
    return pd.DataFrame({"split": ["train", "train", "held out", "held out"], "method": ["M"] * 4,
                         "reference": ["A", "A", "C", "D"], "target": ["A", "B", "D", "C"],
                         "best_rmsd": [0.5, 4.0, 2.0, 6.0], "occupancy": [0.75, 0.25, np.nan, np.nan]})


def test_summary_table_by_hand():
    summary = dm.summary_table(_scores())
    train, held_out = summary.iloc[0], summary.iloc[1]
    assert list(summary["split"]) == ["train", "held out"] and list(summary["target states"]) == [2, 2]
    assert train["mean best RMSD"] == 2.25 and train["mean best RMSD, other state"] == 4.0
    assert (train["coverage at 1 Å"], train["coverage at 3 Å"]) == (0.5, 0.5)
    assert (held_out["coverage at 1 Å"], held_out["coverage at 3 Å"]) == (0.0, 0.5)
    assert held_out["mean best RMSD, other state"] == 4.0
    assert train["AUC 0–10 Å"] == pytest.approx(1 - (0.5 + 4.0) / 2 / 10, abs=0.02)  # mean of 1 − r / 10
    assert train["occupancy of state i"] == 0.75 and np.isnan(held_out["occupancy of state i"])


def test_coverage_curves_by_hand():
    curves = dm.coverage_curves(_scores(), np.array([1.0, 5.0, 10.0]))
    assert list(curves.columns) == ["split", "method", "threshold", "coverage"]
    assert list(curves["coverage"]) == [0.5, 1.0, 1.0, 0.0, 0.5, 1.0]
    assert len(dm.coverage_curves(_scores())) == 2 * 100  # coverage.COVERAGE_THRESHOLDS by default


def test_closest_sample_traces_find_the_sample_on_the_target(tmp_path):
    _, states, bent = _two_state_case(tmp_path)
    i, j = states["1ABC_A"], states["2XYZ_B"]
    samples = np.stack([i.coords + 0.8, bent, i.coords])  # the second is the target in the reference's frame
    traces, displacement = dm.closest_sample_traces(samples, i, j)
    assert list(traces) == ["reference 1ABC_A", "target 2XYZ_B", "closest sample to 2XYZ_B (0.0 Å)"]
    ca = i.backbone_index[:, 1]
    np.testing.assert_allclose(traces["reference 1ABC_A"], i.coords[ca])
    np.testing.assert_allclose(traces["closest sample to 2XYZ_B (0.0 Å)"], traces["target 2XYZ_B"], atol=2e-3)
    assert np.all(displacement["reference 1ABC_A"] == 0) and displacement["target 2XYZ_B"].max() > 0.5
    assert displacement["target 2XYZ_B"].shape == (12,)


def _fit_dirs(tmp_path, states):
    """fit.csv folders of protein P00001: the plain read-out returns state i from both maps, the refinement of
    state j's map returns state j (in state i's frame)."""
    i, j = states["1ABC_A"], states["2XYZ_B"]
    write_pdb(tmp_path / "model_i.pdb", i)
    write_pdb(tmp_path / "model_j.pdb", i, dm.superposed_state(j, i))
    maps = [str(tmp_path / "maps" / "1ABC_A.mrc"), str(tmp_path / "maps" / "2XYZ_B.mrc")]
    (tmp_path / "fit").mkdir()
    (tmp_path / "refined").mkdir()
    pd.DataFrame({"map": maps, "model": [str(tmp_path / "model_i.pdb")] * 2, "correlation_reference": [0.9, 0.7],
                  "correlation_fitted": [0.9, 0.7]}).to_csv(tmp_path / "fit" / "fit.csv", index=False)
    pd.DataFrame({"map": maps[1:], "model": [str(tmp_path / "model_j.pdb")], "correlation_reference": [0.7],
                  "correlation_fitted": [0.95]}).to_csv(tmp_path / "refined" / "fit.csv", index=False)
    return {"P00001": tmp_path / "fit"}, {"P00001": tmp_path / "refined"}


def test_fit_ensembles_take_one_read_out_per_map_the_refined_one_where_there_is_one(tmp_path):
    case, states, _ = _two_state_case(tmp_path)
    i, j = states["1ABC_A"], states["2XYZ_B"]
    fit_dirs, refined_dirs = _fit_dirs(tmp_path, states)
    plain = dm.fit_ensembles(fit_dirs, {"P00001": case}, states)
    assert list(plain) == ["1ABC_A"] and plain["1ABC_A"].shape == (2, i.n_atoms, 3)
    np.testing.assert_allclose(plain["1ABC_A"], i.coords[None].repeat(2, 0), atol=1e-3)
    refined = dm.fit_ensembles(fit_dirs, {"P00001": case}, states, refined_dirs)["1ABC_A"]
    np.testing.assert_allclose(refined[0], i.coords, atol=1e-3)  # state i's map: not refined, its read-out kept
    np.testing.assert_allclose(refined[1], dm.superposed_state(j, i), atol=1e-3)
    # Scored as score_table scores CryoSampler: one member on each state, so occupancy 0.5 and both states reached.
    direction = [("P00001", "train", "1ABC_A", ("1ABC_A", "2XYZ_B")), ("P00002", "held out", "3DEF_A", ("4GHI_A",))]
    scores = dm.method_scores(direction, states, {"1ABC_A": refined}, "fit --refine per map")
    assert list(scores.columns) == ["protein", "split", "reference", "target", "method", "n_samples", "best_rmsd",
                                    "coverage_3A", "coverage_1A", "occupancy", "sample_seconds"]
    assert list(scores["protein"]) == ["P00001"] * 2 and scores["sample_seconds"].isna().all()  # no 3DEF_A ensemble
    np.testing.assert_allclose(scores["best_rmsd"], 0.0, atol=2e-3)
    assert list(scores["occupancy"]) == pytest.approx([0.5, 0.5])
    with pytest.raises(ValueError, match="latent: no ensemble of any direction's reference state"):
        dm.method_scores(direction[1:], states, {"1ABC_A": refined}, "latent")


def test_method_scores_match_score_tables_cryosampler_rows(tmp_path):
    _, states, _ = _two_state_case(tmp_path)
    i = states["1ABC_A"]
    samples = np.stack([i.coords, dm.superposed_state(states["2XYZ_B"], i), i.coords + 0.3])
    directions = [("P00001", "train", "1ABC_A", ("1ABC_A", "2XYZ_B")), ("P00002", "held out", "2XYZ_B", ("1ABC_A",))]
    ensembles = {"1ABC_A": samples, "2XYZ_B": states["2XYZ_B"].coords[None]}
    seconds = {"1ABC_A": 2.5, "2XYZ_B": 1.0}
    table = dm.score_table(directions, states, ensembles, seconds, anm_amplitude=1.0, n_samples=3, seed=0)
    ours = table[table["method"] == "CryoSampler"].reset_index(drop=True)
    pd.testing.assert_frame_equal(dm.method_scores(directions, states, ensembles, "CryoSampler", seconds), ours)
    rows = dm.method_validity_ensembles(directions, states, ensembles, "latent family")
    assert [labels for labels, _, _ in rows] == [
        {"protein": "P00001", "split": "train", "reference": "1ABC_A", "method": "latent family"},
        {"protein": "P00002", "split": "held out", "reference": "2XYZ_B", "method": "latent family"}]
    assert rows[0][1] is samples and rows[1][2] is states["2XYZ_B"]


def test_maps_shares_count_maps_by_weight():
    cases = {"P1": dm.Case("P1", "1ABC_A", "2XYZ_B", "A"), "P2": dm.Case("P2", "3DEF_A", "4GHI_A", "A")}
    manifest = pd.DataFrame({"protein": ["P1", "P1", "P2", "P2", "P2"],
                             "map": ["maps/P1/1ABC_A.mrc", "maps/P1/2XYZ_B.mrc", "maps/P2/3DEF_A.mrc",
                                     "maps/P2/4GHI_A.mrc", "maps/P2/4GHI_A.mrc"]})
    assert dm.maps_shares(manifest, cases) == {"P1": 0.5, "P2": pytest.approx(1 / 3)}
    assert dm.maps_shares(manifest.assign(weight=[3.0, 1.0, 1.0, 1.0, 0.0]), cases) == {"P1": 0.75, "P2": 0.5}


def _family_inputs():
    """Scores and validity of two methods: M on a training protein T (state i "A", j "B") and a held-out protein H
    (states "C", "D", both directions); the baseline F on T only, as a fit per map has no held-out rows."""
    cases = {"T": dm.Case("T", "A", "B", "X"), "H": dm.Case("H", "C", "D", "Y")}
    scores = pd.DataFrame({
        "protein": ["T", "T", "H", "H", "T", "T"], "split": ["train"] * 2 + ["held out"] * 2 + ["train"] * 2,
        "reference": ["A", "A", "C", "D", "A", "A"], "target": ["A", "B", "D", "C", "A", "B"],
        "method": ["M"] * 4 + ["F"] * 2, "best_rmsd": [0.4, 1.4, 3.0, 5.0, 0.1, 2.0],
        "occupancy": [0.62, 0.38, np.nan, np.nan, 0.5, 0.5]})
    validity = pd.DataFrame({"protein": ["T", "H", "H", "T"], "method": ["M", "M", "M", "F"],
                             "samples": [10, 10, 30, 2], "bioemu_pass": [1.0, 0.5, 1.0, 0.5]})
    return cases, scores, validity


def test_family_metrics_and_tables_by_hand():
    cases, scores, validity = _family_inputs()
    metrics = dm.family_metrics(scores, validity, cases, {"M": "model", "F": "fit"})
    assert list(metrics.columns) == ["protein", "split", "method", "closest_i", "closest_j", "occupancy_i",
                                     "bioemu_pass"]
    assert list(zip(metrics["protein"], metrics["method"])) == [("T", "model"), ("H", "model"), ("T", "fit")]
    assert list(metrics["closest_i"]) == [0.4, 5.0, 0.1] and list(metrics["closest_j"]) == [1.4, 3.0, 2.0]
    assert metrics["occupancy_i"].iloc[0] == 0.62 and np.isnan(metrics["occupancy_i"].iloc[1])
    assert list(metrics["bioemu_pass"]) == [1.0, pytest.approx((5 + 30) / 40), 0.5]  # pooled over the samples
    with pytest.raises(ValueError, match="no scores of method 'latent'"):
        dm.family_metrics(scores, validity, cases, {"latent": "latent family"})

    table = dm.families_table(metrics, {"T": 0.5})
    assert list(table.columns) == ["protein", "split", "maps' share of i",
                                   *[f"{m}: {c}" for m in ("model", "fit") for c in
                                     ("closest to i (Å)", "closest to j (Å)", "occupancy of i", "BioEmu pass")]]
    assert list(table["protein"]) == ["T", "H"] and list(table["split"]) == ["train", "held out"]
    assert table["maps' share of i"].iloc[0] == 0.5 and np.isnan(table["maps' share of i"].iloc[1])
    assert table["fit: closest to j (Å)"].iloc[0] == 2.0 and table.filter(like="fit:").iloc[1].isna().all()
    markdown = dm.families_markdown(table)
    assert list(markdown.columns) == ["protein", "split", "maps' share of i",
                                      "model: to i / to j (Å) · occupancy of i · BioEmu pass",
                                      "fit: to i / to j (Å) · occupancy of i · BioEmu pass"]
    assert list(markdown.iloc[0]) == ["T", "train", "0.50", "0.40 / 1.40 · 0.62 · 100%", "0.10 / 2.00 · 0.50 · 50%"]
    assert list(markdown.iloc[1]) == ["H", "held out", "not applicable (no maps)", "5.00 / 3.00 · — · 88%",
                                      "not applicable"]
    footnote = dm.families_footnote(800, "default", 16, 900, "default", 100, 0)
    assert "900 stage-1 steps" in footnote and "not applicable to held-out proteins" in footnote


def test_families_summary_counts_the_aims_per_method():
    cases, scores, validity = _family_inputs()
    metrics = dm.family_metrics(scores, validity, cases, {"M": "model", "F": "fit"})
    summary = dm.families_summary(metrics, {"T": 0.5})
    assert list(summary.columns) == ["method", "training proteins", "reach both states", "occupancy within tolerance",
                                     "both", "BioEmu pass ≥ aim", "held out: mean closest (Å)"]
    model, fit = summary.iloc[0], summary.iloc[1]
    assert (model["reach both states"], model["occupancy within tolerance"], model["both"]) == (1, 0, 0)  # 0.62
    assert model["BioEmu pass ≥ aim"] == 1 and model["held out: mean closest (Å)"] == 4.0
    assert (fit["reach both states"], fit["occupancy within tolerance"], fit["both"]) == (0, 1, 0)  # 2.0 Å > 1.5
    assert fit["BioEmu pass ≥ aim"] == 0 and np.isnan(fit["held out: mean closest (Å)"])
    # A protein of its own aim (calmodulin's 2.0 Å), and occupancy 0.40 exactly at the edge of ± 0.10.
    fit_met = dm.families_summary(metrics.assign(occupancy_i=[0.4, np.nan, 0.6]), {"T": 0.5},
                                  reach_by_protein={"T": 2.0}).iloc[1]
    assert (fit_met["reach both states"], fit_met["occupancy within tolerance"], fit_met["both"]) == (1, 1, 1)
    assert "P0DP23" in dm.FAMILIES_SUMMARY_FOOTNOTE and "± 0.10" in dm.FAMILIES_SUMMARY_FOOTNOTE
