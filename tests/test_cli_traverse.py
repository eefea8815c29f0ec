"""``cryosampler traverse``: a latent model's walk between two maps or along a principal component, written as a
multi-model file, an XTC of the same frames, a per-frame table and a ChimeraX script; and its one-line refusals."""

import shutil

import numpy as np
import pandas as pd
import pytest

import cryosampler.cli as cli
from cryosampler.io.atomic_files import read_ensemble, read_structure
from cryosampler.io.trajectory import XTC_PRECISION, read_xtc_ensemble
from cryosampler.latent_sampling import decode_in_reference_frame
from cryosampler.model.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from cryosampler.reference import prepare_reference

from test_chimerax import check_script
from test_cli_latent import latent_run  # noqa: F401 (a fixture)
from test_cli_train import one_line_error, user_data  # noqa: F401 (a fixture)


def traverse(checkpoint, reference, *args):
    return cli.main(["traverse", "--checkpoint", str(checkpoint), "--reference", str(reference), *map(str, args),
                     "--device", "cpu", "--quiet"])


def latents(table: pd.DataFrame) -> np.ndarray:
    return table[[c for c in table.columns if c.startswith("z")]].to_numpy()


def test_between_two_training_maps_writes_the_walk_from_one_to_the_other(latent_run, tmp_path,  # noqa: F811
                                                                         capsys):
    reference, _, out = latent_run
    walk = tmp_path / "walk.pdb"
    assert traverse(out / "checkpoint.pt", reference, "--between", 0, 1, "--frames", 5, "-o", walk) == 0
    assert {p.name for p in tmp_path.iterdir()} == {"walk.pdb", "walk.xtc", "walk.csv", "walk.cxc"}
    structure = read_structure(reference)
    frames = read_ensemble(walk, structure)
    assert frames.shape == (5, structure.n_atoms, 3)
    np.testing.assert_allclose(read_xtc_ensemble(tmp_path / "walk.xtc", walk, structure), frames, atol=XTC_PRECISION)
    # The ends are the two training maps' latents, decoded, in the reference's frame (PDB: 0.001 Å).
    model = model_from_checkpoint(load_checkpoint(out / "checkpoint.pt"))
    ends = decode_in_reference_frame(model, prepare_reference(model, structure), model.map_mean.numpy())
    np.testing.assert_allclose(frames[[0, -1]], ends, atol=1e-3)
    table = pd.read_csv(tmp_path / "walk.csv")
    assert table["frame"].tolist() == [1, 2, 3, 4, 5] and table["t"].tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    np.testing.assert_allclose(latents(table)[[0, -1]], model.map_mean.numpy(), atol=1e-6)
    assert table["rmsd_to_first"].iloc[0] == pytest.approx(0.0, abs=1e-6)
    assert {"rmsd_to_reference", "clashes", "bond_dev_rmsd", "bioemu_physical"} <= set(table.columns)
    commands = check_script(tmp_path / "walk.cxc")
    assert commands[-1][:3] == ["coordset", "#2", "1,5"]
    err = capsys.readouterr().err
    assert "wrote 5 frames" in err and "training map 0" in err and "chimerax" in err


def test_between_a_listed_path_and_a_map_file_encodes_the_file(latent_run, tmp_path):  # noqa: F811
    reference, maps, out = latent_run
    state = load_checkpoint(out / "checkpoint.pt")
    copy = tmp_path / "copy_of_vol_001.mrc.gz"  # another path: not the listed one, so ingested and encoded
    shutil.copy(maps / "vol_001.mrc.gz", copy)
    walk = tmp_path / "walk.pdb"
    assert traverse(out / "checkpoint.pt", reference, "--between", state["maps"][0]["map"], copy, "--frames", 3,
                    "-o", walk) == 0
    table = pd.read_csv(tmp_path / "walk.csv")
    model = model_from_checkpoint(state)
    np.testing.assert_allclose(latents(table)[0], model.map_mean[0].numpy(), atol=1e-6)
    # The file is ingested and encoded as training did it: its latent is the training map's.
    np.testing.assert_allclose(latents(table)[-1], model.map_mean[1].numpy(), atol=1e-3)


def test_the_first_principal_component_of_two_maps_runs_from_one_to_the_other(latent_run, tmp_path):  # noqa: F811
    reference, _, out = latent_run
    walk = tmp_path / "walk.cif"
    assert traverse(out / "checkpoint.pt", reference, "--pc", 1, "--frames", 4, "-o", walk) == 0
    assert {p.name for p in tmp_path.iterdir()} == {"walk.cif", "walk.xtc", "walk_topology.pdb", "walk.csv",
                                                    "walk.cxc"}
    structure = read_structure(reference)
    frames = read_ensemble(walk, structure)
    assert frames.shape[0] == 4
    np.testing.assert_allclose(read_xtc_ensemble(tmp_path / "walk.xtc", tmp_path / "walk_topology.pdb", structure),
                               frames, atol=XTC_PRECISION)
    table = pd.read_csv(tmp_path / "walk.csv")
    assert table["projection"].is_monotonic_increasing and table["projection"].iloc[0] < 0
    # Two points lie on their own first component: the walk's ends are the two maps' latents, in some order.
    means = model_from_checkpoint(load_checkpoint(out / "checkpoint.pt")).map_mean.numpy()
    ends = latents(table)[[0, -1]]
    order = [0, 1] if np.abs(ends[0] - means[0]).max() < np.abs(ends[0] - means[1]).max() else [1, 0]
    np.testing.assert_allclose(ends, means[order], atol=1e-4)
    check_script(tmp_path / "walk.cxc")


@pytest.mark.parametrize("args, message", [
    (["--pc", "0"], "--pc 0: the latent space has 4 dimensions, so components 1 to 4"),
    (["--pc", "5"], "--pc 5: the latent space has 4 dimensions"),
    (["--pc", "2"], "vary along 1 principal component(s) at most"),
    (["--between", "0", "2"], "--between 2: no training map of that index; the checkpoint lists 2 (0 to 1)"),
    (["--between", "0", "0"], "names one map twice"),
    (["--between", "0", "nowhere.mrc"], "--between nowhere.mrc: neither a training map's index"),
])
def test_a_path_that_does_not_exist_is_refused_in_one_line(latent_run, tmp_path, capsys, args,  # noqa: F811
                                                           message):
    reference, _, out = latent_run
    assert traverse(out / "checkpoint.pt", reference, *args, "-o", tmp_path / "walk.pdb") == 2
    assert message in one_line_error(capsys)
    assert list(tmp_path.iterdir()) == []


def test_a_map_family_checkpoint_is_refused(user_data, tiny_checkpoint, tmp_path, capsys):  # noqa: F811
    reference, _ = user_data
    assert traverse(tiny_checkpoint, reference, "--pc", 1, "-o", tmp_path / "walk.pdb") == 2
    assert "traverse needs a latent model; train one with --family latent" in one_line_error(capsys)
    assert not (tmp_path / "walk.pdb").exists()


def test_a_stage_1_checkpoint_is_refused(latent_run, tmp_path, capsys):  # noqa: F811
    reference, _, out = latent_run
    save_checkpoint(tmp_path / "stage1.pt", {**load_checkpoint(out / "checkpoint.pt"), "stage": 1})
    assert traverse(tmp_path / "stage1.pt", reference, "--pc", 1, "-o", tmp_path / "walk.pdb") == 2
    assert "holds stage 1 of a latent model only" in one_line_error(capsys)
    assert not (tmp_path / "walk.pdb").exists()


def test_fewer_than_two_frames_is_a_usage_error(latent_run, tmp_path, capsys):  # noqa: F811
    reference, _, out = latent_run
    with pytest.raises(SystemExit) as raised:
        traverse(out / "checkpoint.pt", reference, "--pc", 1, "--frames", 1, "-o", tmp_path / "walk.pdb")
    assert raised.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--frames: must be an integer ≥ 2, got 1" in err[0]


def test_between_and_pc_together_is_a_usage_error(latent_run, tmp_path, capsys):  # noqa: F811
    reference, _, out = latent_run
    with pytest.raises(SystemExit) as raised:
        traverse(out / "checkpoint.pt", reference, "--pc", 1, "--between", 0, 1, "-o", tmp_path / "walk.pdb")
    assert raised.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


def test_an_existing_output_is_refused_without_overwrite_and_replaced_with_it(latent_run, tmp_path,  # noqa: F811
                                                                               capsys):
    reference, _, out = latent_run
    (tmp_path / "walk.csv").write_text("earlier\n")
    assert traverse(out / "checkpoint.pt", reference, "--pc", 1, "--frames", 2, "-o", tmp_path / "walk.pdb") == 2
    line = one_line_error(capsys)
    assert f"{tmp_path / 'walk.csv'} (written beside --output {tmp_path / 'walk.pdb'}) already exists" in line
    assert "--overwrite" in line and not (tmp_path / "walk.pdb").exists()
    assert traverse(out / "checkpoint.pt", reference, "--pc", 1, "--frames", 2, "-o", tmp_path / "walk.pdb",
                    "--overwrite") == 0
    assert len(pd.read_csv(tmp_path / "walk.csv")) == 2


@pytest.mark.parametrize("output, message", [
    ("input.pdb", "--output {out} is the input {out}; inputs are never overwritten"),
    ("walk.xtc", "--output must end in .pdb or .cif (the .xtc is written beside it)"),
])
def test_an_output_that_is_the_reference_or_no_trajectory_file_is_refused(latent_run, tmp_path, capsys,  # noqa: F811
                                                                          output, message):
    reference, _, out = latent_run
    copy = tmp_path / "input.pdb"
    shutil.copy(reference, copy)
    before = copy.read_text()
    assert traverse(out / "checkpoint.pt", copy, "--between", 0, 1, "-o", tmp_path / output) == 2
    assert message.format(out=tmp_path / output) in one_line_error(capsys)
    assert [p.name for p in tmp_path.iterdir()] == ["input.pdb"] and copy.read_text() == before
