"""``cryosampler train --maps proteins.csv``: one model of several proteins, each in its own frame; ``sample``
places any reference in its own frame and says how far it is from the proteins the model was trained on."""

import dataclasses
import shutil
import json

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.spatial.transform import Rotation

import cryosampler.cli as cli
from cryosampler.commands.listing import resolve_proteins
from cryosampler.physics.frame import own_frame_template, own_placement, placement
from cryosampler.reference import prepare_reference
from cryosampler.io.atomic_files import read_ensemble, read_structure, write_pdb
from cryosampler.model.checkpoint import load_checkpoint, model_from_checkpoint

from conftest import make_helix
from test_cli_train import TRAIN, one_line_error
from test_ingest import write_user_map


def renamed(structure, residue):
    """The same atoms under another residue name: another sequence for the identity check."""
    return dataclasses.replace(structure, res_names=np.full(structure.n_atoms, residue))


@pytest.fixture(scope="module")
def two_proteins(tmp_path_factory):
    """Two helices (12 Ala; 16 'Lys') fitted into maps of their own frames, and a CSV listing them."""
    root = tmp_path_factory.mktemp("proteins")
    for name, helix, shift in (("ala", make_helix(12), [31.0, -12.5, 58.25]),
                               ("lys", renamed(make_helix(16), "LYS"), [-40.0, 75.5, 12.0])):
        (root / name).mkdir()
        write_pdb(root / name / "model.pdb", helix, helix.coords + shift)
        reference = read_structure(root / name / "model.pdb")
        for k, apix in enumerate((1.5, 2.2)):
            write_user_map(root / name / f"vol_{k}.mrc", reference.coords, reference.atomic_numbers, apix, (48,) * 3)
    pd.DataFrame({"protein": ["ala", "ala", "lys", "lys"],
                  "reference": ["ala/model.pdb", "ala/model.pdb", "lys/model.pdb", "lys/model.pdb"],
                  "map": ["ala/vol_0.mrc", "ala/vol_1.mrc", "lys/vol_0.mrc", "lys/vol_1.mrc"]}
                 ).to_csv(root / "proteins.csv", index=False)
    return root


def train_csv(listing, out, *extra):
    return cli.main(["train", "--maps", str(listing), "-o", str(out), *TRAIN, *extra])


@pytest.fixture(scope="module")
def trained_two(two_proteins, tmp_path_factory):
    """The run folder of one model trained on both proteins of ``two_proteins``."""
    out = tmp_path_factory.mktemp("trained_two") / "run"
    assert train_csv(two_proteins / "proteins.csv", out) == 0
    return out


def sample(checkpoint, reference, output):
    return cli.main(["sample", "--checkpoint", str(checkpoint), "--reference", str(reference), "-n", "2", "--steps",
                     "2", "-o", str(output), "--device", "cpu", "--quiet"])


def test_several_proteins_train_one_model_that_samples_each_in_its_frame(two_proteins, trained_two, tmp_path,
                                                                         capsys):
    out = trained_two
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["template"] is None  # no common frame: each protein in its own
    assert [p["name"] for p in state["proteins"]] == ["ala", "lys"]
    assert state["proteins"][1]["sequence"] == "K" * 16
    config = json.loads((out / "config.json").read_text())
    assert [m["protein"] for m in config["maps"]] == ["ala", "ala", "lys", "lys"]
    assert all(m["correlation"] > 0.9 for m in config["maps"])
    capsys.readouterr()
    for name in ("ala", "lys"):
        reference = read_structure(two_proteins / name / "model.pdb")
        assert sample(out / "checkpoint.pt", two_proteins / name / "model.pdb", tmp_path / f"{name}.pdb") == 0
        samples = read_ensemble(tmp_path / f"{name}.pdb", reference)  # in the reference's own frame
        assert np.sqrt(((samples - reference.coords) ** 2).sum(-1).mean(-1)).max() < 1.0
        err = capsys.readouterr().err
        # No warning about the protein (the barely trained model's samples stay at the reference: that one is expected).
        assert f"nearest training protein {name}, 100% sequence identity" in err and "identical in sequence" not in err


def test_a_protein_the_model_never_saw_is_sampled_with_a_warning(trained_two, tmp_path, capsys):
    out = trained_two
    other = renamed(make_helix(14), "TRP")
    write_pdb(tmp_path / "other.pdb", other, other.coords + 100.0)
    capsys.readouterr()
    assert sample(out / "checkpoint.pt", tmp_path / "other.pdb", tmp_path / "other_ensemble.pdb") == 0
    err = capsys.readouterr().err
    assert "0% identical in sequence to the nearest protein this model was trained on" in err
    assert "a guess, not a prediction" in err and (tmp_path / "other_ensemble.pdb").is_file()
    write_user_map(tmp_path / "other.mrc", other.coords + 100.0, other.atomic_numbers, 2.0, (40,) * 3)
    assert cli.main(["fit", "--checkpoint", str(out / "checkpoint.pt"), "--reference", str(tmp_path / "other.pdb"),
                     "--maps", str(tmp_path / "other.mrc"), "-o", str(tmp_path / "other_fit.pdb"), "--device",
                     "cpu"]) == 0
    assert "never saw maps of this protein" in capsys.readouterr().err


def test_without_a_protein_column_proteins_are_named_by_their_reference(two_proteins, tmp_path):
    listing = write_listing(tmp_path / "listing.csv", {"reference": ["../" + two_proteins.name + "/ala/model.pdb",
                                                                      "../" + two_proteins.name + "/lys/model.pdb"],
                                                        "map": ["../" + two_proteins.name + "/ala/vol_0.mrc",
                                                                "../" + two_proteins.name + "/lys/vol_0.mrc"]})
    proteins = resolve_proteins([listing], None)
    assert [(name, len(maps)) for name, _, maps in proteins] == [(f"../{two_proteins.name}/ala/model.pdb", 1),
                                                                  (f"../{two_proteins.name}/lys/model.pdb", 1)]


def test_a_one_protein_run_lists_its_protein_and_sample_reports_the_identity(two_proteins, tmp_path, capsys):
    out = tmp_path / "run"
    reference = two_proteins / "lys" / "model.pdb"
    assert cli.main(["train", "--reference", str(reference), "--maps", str(two_proteins / "lys" / "vol_0.mrc"),
                     "-o", str(out), *TRAIN]) == 0
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["template"] is not None and state["proteins"] == [{"name": "model", "sequence": "K" * 16, "chain": "A"}]
    capsys.readouterr()
    assert sample(out / "checkpoint.pt", reference, tmp_path / "lys.pdb") == 0
    err = capsys.readouterr().err
    assert "CA fit to the model's template 0.00 Å RMSD; nearest training protein model, 100% sequence identity" in err


def test_own_placement_is_the_one_protein_templates_placement(two_proteins):
    reference = read_structure(two_proteins / "ala" / "model.pdb")
    own, by_template = own_placement(reference), placement(reference, own_frame_template(reference))
    np.testing.assert_allclose(by_template.rotation, own.rotation, atol=1e-9)
    np.testing.assert_allclose(by_template.apply(reference.coords), own.apply(reference.coords), atol=1e-6)


def write_listing(path, rows):
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("case", ["no reference", "missing csv", "no reference column", "two references",
                                  "one reference twice", "missing reference", "row without reference",
                                  "one map twice"])
def test_bad_protein_listings_are_one_line_before_any_output(two_proteins, tmp_path, capsys, case):
    root = two_proteins
    ala, lys = "ala/model.pdb", "lys/model.pdb"
    listing = root / f"{case.replace(' ', '_')}.csv"
    if case == "no reference":
        given, expected = root / "ala", "--reference is missing"
    elif case == "missing csv":
        given, expected = root / "nowhere.csv", "nowhere.csv: no such file"
    elif case == "no reference column":
        given = write_listing(listing, {"protein": ["ala"], "map": ["ala/vol_0.mrc"]})
        expected = "needs a 'reference' column"
    elif case == "two references":
        given = write_listing(listing, {"protein": ["ala", "ala"], "reference": [ala, lys],
                                        "map": ["ala/vol_0.mrc", "lys/vol_0.mrc"]})
        expected = "protein ala has several references"
    elif case == "one reference twice":
        given = write_listing(listing, {"protein": ["ala", "other"], "reference": [ala, ala],
                                        "map": ["ala/vol_0.mrc", "ala/vol_1.mrc"]})
        expected = "is given for proteins ala and other"
    elif case == "missing reference":
        given = write_listing(listing, {"reference": ["nowhere.pdb"], "map": ["ala/vol_0.mrc"]})
        expected = "reference " + str(root / "nowhere.pdb") + " of protein nowhere.pdb does not exist"
    elif case == "row without reference":
        given = write_listing(listing, {"reference": [ala, None], "map": ["ala/vol_0.mrc", "ala/vol_1.mrc"]})
        expected = "a row has a map but no reference"
    else:
        given = write_listing(listing, {"reference": [ala, lys], "map": ["ala/vol_0.mrc", "ala/vol_0.mrc"]})
        expected = "is listed for proteins ala/model.pdb and lys/model.pdb"
    out = tmp_path / "run"
    assert train_csv(given, out) == 2
    assert expected in one_line_error(capsys)
    assert not out.exists()
    listing.unlink(missing_ok=True)


def test_a_protein_larger_than_a_given_box_is_refused_before_any_output(tmp_path, capsys):
    long_helix = make_helix(100)  # ~150 Å long: beyond a 128 Å box (without --box the grid grows: test_model_grid)
    write_pdb(tmp_path / "long.pdb", long_helix, long_helix.coords)
    write_user_map(tmp_path / "long.mrc", long_helix.coords, long_helix.atomic_numbers, 4.0, (56,) * 3)
    out = tmp_path / "run"
    assert cli.main(["train", "--reference", str(tmp_path / "long.pdb"), "--maps", str(tmp_path / "long.mrc"),
                     "-o", str(out), "--box", "64", "--apix", "2", *TRAIN]) == 2
    line = one_line_error(capsys)
    assert "--box 64 × --apix 2 Å holds atoms up to 62 Å from the centre" in line
    assert not out.exists()


def test_resume_with_other_proteins_is_refused(two_proteins, trained_two, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(trained_two, out)
    before = (out / "checkpoint.pt").read_bytes()
    assert cli.main(["train", "--reference", str(two_proteins / "ala" / "model.pdb"), "--maps",
                     str(two_proteins / "ala" / "vol_0.mrc"), "-o", str(out), *TRAIN, "--resume"]) == 2
    assert "was trained on proteins ala, lys, not model" in one_line_error(capsys)
    assert (out / "checkpoint.pt").read_bytes() == before


def test_a_checkpoint_with_a_malformed_protein_list_is_refused(trained_two, tmp_path):
    state = torch.load(trained_two / "checkpoint.pt", weights_only=True)
    state["proteins"] = [{"name": "ala"}]
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="its proteins entry is not a list of names and sequences"):
        load_checkpoint(tmp_path / "bad.pt")


def test_a_reference_given_in_another_frame_is_placed_and_sampled_alike(trained_two, tmp_path, shared_pdb):
    # Issue 9: a model of several proteins puts each on its own principal axes, so a rotated and moved copy of
    # a reference lands on the same model-frame coordinates and its samples come back rotated and moved alike.
    # Calmodulin, not a helix: a straight helix is nearly symmetric, and the sign of its principal axes
    # (frame.principal_axes_template) would then hang on the PDB file's rounding.
    path = shared_pdb("1cll.pdb")
    reference = read_structure(path)
    rotation = Rotation.random(random_state=7).as_matrix()
    moved = reference.with_coords(reference.coords @ rotation.T + [12.0, -30.0, 7.5])
    write_pdb(tmp_path / "moved.pdb", moved)
    model = model_from_checkpoint(load_checkpoint(trained_two / "checkpoint.pt"))
    original = prepare_reference(model, reference)
    turned = prepare_reference(model, read_structure(tmp_path / "moved.pdb"))
    # Equal up to the moved file's rounding to 0.001 Å.
    np.testing.assert_allclose(turned.protein.ref_coords.numpy(), original.protein.ref_coords.numpy(), atol=2e-3)
    assert sample(trained_two / "checkpoint.pt", path, tmp_path / "a.pdb") == 0
    assert sample(trained_two / "checkpoint.pt", tmp_path / "moved.pdb", tmp_path / "b.pdb") == 0
    a, b = read_ensemble(tmp_path / "a.pdb", reference), read_ensemble(tmp_path / "b.pdb", moved)
    np.testing.assert_allclose(b, a @ rotation.T + [12.0, -30.0, 7.5], atol=5e-3)


def test_rotate_trains_with_rotation_augmentation(two_proteins, tmp_path):
    assert train_csv(two_proteins / "proteins.csv", tmp_path / "run", "--rotate") == 0
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["train_config"]["rotate"] is True
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train_config"]["rotate"] is True
