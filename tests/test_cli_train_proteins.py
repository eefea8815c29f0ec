"""``cryosampler train --maps proteins.csv``: one model of several proteins, each in its own frame; ``sample``
places any reference in its own frame and says how far it is from the proteins the model was trained on."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

import cryosampler.cli as cli
from cryosampler.structure import read_ensemble, read_structure, write_pdb
from cryosampler.training import load_checkpoint

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
    return cli.main(["train", "--maps", str(listing), "--out", str(out), *TRAIN, *extra])


def sample(checkpoint, reference, output):
    return cli.main(["sample", "--checkpoint", str(checkpoint), "--reference", str(reference), "-n", "2", "--steps",
                     "2", "-o", str(output), "--device", "cpu", "--quiet"])


def test_several_proteins_train_one_model_that_samples_each_in_its_frame(two_proteins, tmp_path, capsys):
    out = tmp_path / "run"
    assert train_csv(two_proteins / "proteins.csv", out) == 0
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
        assert f"nearest training protein {name}, 100% sequence identity" in err and "WARNING" not in err


def test_a_protein_the_model_never_saw_is_sampled_with_a_warning(two_proteins, tmp_path, capsys):
    out = tmp_path / "run"
    assert train_csv(two_proteins / "proteins.csv", out) == 0
    other = renamed(make_helix(14), "TRP")
    write_pdb(tmp_path / "other.pdb", other, other.coords + 100.0)
    capsys.readouterr()
    assert sample(out / "checkpoint.pt", tmp_path / "other.pdb", tmp_path / "other_ensemble.pdb") == 0
    err = capsys.readouterr().err
    assert "0% identical in sequence to the nearest protein this model was trained on" in err
    assert "a guess, not a prediction" in err and (tmp_path / "other_ensemble.pdb").is_file()


def write_listing(path, rows):
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("case", ["no reference", "missing csv", "no reference column", "two references", "one reference twice",
                                  "missing reference", "row without reference"])
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
        expected = "reference " + str(root / "nowhere.pdb") + " of protein nowhere does not exist"
    else:
        given = write_listing(listing, {"reference": [ala, None], "map": ["ala/vol_0.mrc", "ala/vol_1.mrc"]})
        expected = "a row has a map but no reference"
    out = tmp_path / "run"
    assert train_csv(given, out) == 2
    assert expected in one_line_error(capsys)
    assert not out.exists()
    listing.unlink(missing_ok=True)
