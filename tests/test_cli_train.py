"""``cryosampler train``: a user's maps (own voxel size, box, origin, axis order) → a checkpoint that
``cryosampler sample`` uses; bad input is refused in one line before anything is written; torchrun works."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import cryosampler.cli as cli
import cryosampler.readout as readout
from cryosampler.io.mrc import read_mrc, write_map_file
from cryosampler.commands.listing import resolve_maps
from cryosampler.evaluation.validate import sample_validity
from cryosampler.io.atomic_files import read_ensemble, read_structure, write_pdb
from cryosampler.model.checkpoint import load_checkpoint, model_from_checkpoint

from conftest import make_helix
from test_ingest import write_clipped_map, write_user_map

SHIFT = np.array([31.0, -12.5, 58.25])  # the fitted model sits anywhere in the maps' frame
TRAIN = ["--family", "map", "--steps", "2", "--batch-size", "2", "--preset", "smoke", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def user_data(tmp_path_factory):
    """A 12-residue helix fitted into two maps of its own (1.5 Å, axes z y x; 2.7 Å, gzip, origin in N?START)
    with slightly different conformations: the reference PDB and the maps folder."""
    root = tmp_path_factory.mktemp("user")
    helix = make_helix(12)
    write_pdb(root / "model.pdb", helix, helix.coords + SHIFT)
    reference = read_structure(root / "model.pdb")
    maps = root / "maps"
    maps.mkdir()
    generator = np.random.default_rng(0)
    for apix, box, axes, name, use_start in [(1.5, (60, 56, 64), (3, 2, 1), "vol_000.mrc", False),
                                             (2.7, (40, 44, 42), (1, 2, 3), "vol_001.mrc.gz", True)]:
        state = reference.coords + generator.normal(scale=0.3, size=reference.coords.shape)
        write_user_map(maps / name, state, reference.atomic_numbers, apix, box, axes=axes, use_start=use_start)
    return root / "model.pdb", maps


def train(reference, maps, out, *extra):
    return cli.main(["train", "--reference", str(reference), "--maps", *map(str, maps), "-o", str(out), *TRAIN,
                     *extra])


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("cryosampler: error: ") and "Traceback" not in "\n".join(err)
    return err[-1]


def test_train_on_user_maps_then_sample_in_the_reference_frame(user_data, tmp_path, capsys):
    reference, maps = user_data
    out = tmp_path / "run"
    assert train(reference, [maps], out) == 0
    assert {p.name for p in out.iterdir()} >= {"checkpoint.pt", "train_log.csv", "config.json"}
    assert len(pd.read_csv(out / "train_log.csv")) == 2
    config = json.loads((out / "config.json").read_text())
    assert [Path(m["map"]).name for m in config["maps"]] == ["vol_000.mrc", "vol_001.mrc.gz"]
    assert all(m["correlation"] > 0.9 and m["scale"] > 0 for m in config["maps"])
    err = capsys.readouterr().err
    assert "cryosampler sample --checkpoint" in err
    assert "map 1/2" not in err  # --quiet: no line per map
    # New models get the mixture of renders with the floored loss weight, and the checkpoint says so.
    assert config["model_config"]["encoder"]["components"] == 2
    assert config["model_config"]["diffusion"]["weight_floor"] == 1.0
    assert model_from_checkpoint(load_checkpoint(out / "checkpoint.pt")).config.encoder.components == 2

    ensemble = tmp_path / "ensemble.pdb"
    assert cli.main(["sample", "--checkpoint", str(out / "checkpoint.pt"), "--reference", str(reference), "-n", "2",
                     "--steps", "2", "-o", str(ensemble), "--device", "cpu", "--quiet",
                     "--maps-dir", str(tmp_path / "maps")]) == 0
    structure = read_structure(reference)
    samples = read_ensemble(ensemble, structure)  # (2, N, 3), written in the reference's (maps') frame
    # Two steps from zero-initialised offsets: the samples are the reference, placed back where it was.
    assert np.sqrt(((samples - structure.coords) ** 2).sum(-1).mean(-1)).max() < 1.0
    volume, apix, origin = read_mrc(tmp_path / "maps" / "sample_000.mrc")  # also in the reference's frame
    np.testing.assert_allclose(np.asarray(origin) + (volume.shape[0] // 2) * apix, structure.coords.mean(0),
                               atol=1e-3)


def test_the_papers_single_structure_is_still_one_option_away(user_data, tmp_path):
    reference, maps = user_data
    assert train(reference, [maps], tmp_path / "run", "--components", "1", "--weight-floor", "0") == 0
    config = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    model = model_from_checkpoint(config)
    assert model.config.encoder.components == 1 and model.config.diffusion.weight_floor == 0.0


def test_an_out_with_a_run_is_refused_unless_resume(user_data, tmp_path, capsys):
    reference, maps = user_data
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(b"earlier run")
    assert train(reference, [maps], out) == 2
    line = one_line_error(capsys)
    assert "already holds a run" in line and "pass --resume" in line
    assert (out / "checkpoint.pt").read_bytes() == b"earlier run" and sorted(os.listdir(out)) == ["checkpoint.pt"]


def test_resume_needs_a_checkpoint(user_data, tmp_path, capsys):
    reference, maps = user_data
    assert train(reference, [maps], tmp_path / "new", "--resume") == 2
    assert "holds no checkpoint.pt" in one_line_error(capsys)


def test_resume_of_a_finished_run_changes_nothing(user_data, tmp_path):
    reference, maps = user_data
    out = tmp_path / "run"
    assert train(reference, [maps], out) == 0
    config = (out / "config.json").read_text()
    assert train(reference, [maps], out, "--resume") == 0  # already at its last step: nothing left to do
    assert len(pd.read_csv(out / "train_log.csv")) == 2 and (out / "config.json").read_text() == config


def test_a_map_that_does_not_hold_the_reference_is_refused_before_any_output(user_data, tmp_path, capsys):
    reference, maps = user_data
    far = tmp_path / "far.mrc"
    helix = read_structure(reference)
    write_user_map(far, helix.coords + 200.0, helix.atomic_numbers, 2.0, (40, 40, 40))
    out = tmp_path / "run"
    assert train(reference, [maps / "vol_000.mrc", far], out) == 2
    line = one_line_error(capsys)
    assert str(far) in line and "does not contain the reference" in line
    assert not out.exists()


def test_a_map_the_reference_is_not_fitted_into_is_refused(user_data, tmp_path, capsys):
    reference, _ = user_data
    helix = read_structure(reference)
    moved = tmp_path / "moved.mrc"
    write_user_map(moved, helix.coords + [5.0, 0.0, 0.0], helix.atomic_numbers, 2.0, (48, 48, 48))
    assert train(reference, [moved], tmp_path / "run") == 2
    line = one_line_error(capsys)
    assert str(moved) in line and "not placed in the map: a rigid-body fit moves it 5.0 Å" in line
    assert "fit it into the map first" in line and "--allow-far-conformation" in line
    assert not (tmp_path / "run").exists()


def note(old: str, new: str) -> str:
    """The line a deprecated spelling prints on stderr."""
    return f"cryosampler: note: {old} is deprecated and will be removed in the next release; use {new}"


@pytest.mark.parametrize("spelling", ["new", "deprecated"])
def test_allow_far_conformation_accepts_a_map_of_another_conformation_but_keeps_the_floor(user_data, tmp_path, capsys,
                                                                                          spelling):
    """A map whose atoms moved (here rigidly by 5 Å, which the rigid-body fit notices) is taken with
    --allow-far-conformation; a map with nothing of the reference in it is still refused. The deprecated
    spellings (--skip-fit-probes, --out) work alike, each with one note."""
    reference, _ = user_data
    helix = read_structure(reference)
    moved = tmp_path / "moved.mrc"
    write_user_map(moved, helix.coords + [5.0, 0.0, 0.0], helix.atomic_numbers, 2.0, (48, 48, 48))
    allow = "--allow-far-conformation" if spelling == "new" else "--skip-fit-probes"
    if spelling == "new":
        assert train(reference, [moved], tmp_path / "run", allow) == 0
    else:
        assert cli.main(["train", "--reference", str(reference), "--maps", str(moved), "--out", str(tmp_path / "run"),
                         *TRAIN, allow]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if "deprecated" in line]
    assert notes == ([] if spelling == "new" else [note("--out", "-o/--output"),
                                                    note("--skip-fit-probes", "--allow-far-conformation")])
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert 0.1 < config["maps"][0]["correlation"] < 0.99
    noise = tmp_path / "noise.mrc"
    write_user_map(noise, helix.coords + [30.0, 30.0, 30.0], helix.atomic_numbers, 2.0, (80, 80, 80))
    assert train(reference, [noise], tmp_path / "run2", allow) == 2
    assert "map–model correlation" in one_line_error(capsys)


@pytest.mark.filterwarnings("ignore:Data array contains NaN:RuntimeWarning")  # mrcfile, on writing the test map
def test_a_map_with_nan_voxels_is_refused_in_one_line_before_any_output(user_data, tmp_path, capsys):
    reference, maps = user_data
    holes = tmp_path / "holes.mrc"
    volume, apix, origin = read_mrc(maps / "vol_000.mrc")
    volume[:2, :3, :2] = np.nan
    write_map_file(holes, volume, apix, origin)
    out = tmp_path / "run"
    assert train(reference, [maps / "vol_000.mrc", holes], out) == 2
    line = one_line_error(capsys)
    assert f"{holes}: the map has 12 NaN/infinite voxels of {volume.size:,}; replace them" in line
    assert not out.exists()


def test_a_box_that_clips_one_atom_is_trained_on_and_fitted_with_a_one_line_warning(user_data, tmp_path, capsys):
    reference, _ = user_data
    helix = read_structure(reference)
    clipped = tmp_path / "clipped.mrc"
    outside = write_clipped_map(clipped, helix.coords, helix.atomic_numbers, 1 / 60)
    assert outside.sum() == 1
    expected = [f"cryosampler: WARNING: {clipped}: 1 of 60 atoms of the reference lie outside the map's box "
                f"(residues {helix.res_nums[outside][0]}); they meet no density there and are held only by the "
                "model's geometry"]
    assert train(reference, [clipped], tmp_path / "run") == 0
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if "WARNING" in line] == expected
    assert "UserWarning" not in err and "warnings.warn" not in err
    assert fit(tmp_path / "run" / "checkpoint.pt", reference, [clipped], tmp_path / "clipped.pdb") == 0
    assert [line for line in capsys.readouterr().err.splitlines() if "WARNING" in line] == expected
    assert read_ensemble(tmp_path / "clipped.pdb", helix).shape == (1, 60, 3)


@pytest.mark.parametrize("case", ["empty folder", "not a map", "missing", "out is a file"])
def test_bad_maps_and_out_are_one_line_errors(user_data, tmp_path, capsys, case):
    reference, maps = user_data
    given, out = [maps], tmp_path / "run"
    if case == "empty folder":
        (tmp_path / "empty").mkdir()
        given, expected = [tmp_path / "empty"], "holds no map"
    elif case == "not a map":
        given, expected = [reference], "not a map"
    elif case == "missing":
        given, expected = [tmp_path / "nothing.mrc"], "no such file"
    else:
        out.write_text("keep me")
        expected = f"--output {out} is a file"  # the option's current spelling
    assert train(reference, given, out) == 2
    assert expected in one_line_error(capsys)
    if case == "out is a file":
        assert out.read_text() == "keep me"


def test_a_csv_listing_gives_its_maps_and_refuses_mixed_proteins(user_data, tmp_path):
    reference, maps = user_data
    listing = maps / "maps.csv"
    pd.DataFrame({"protein": "helix", "reference": "../model.pdb", "map": ["vol_000.mrc", "vol_001.mrc.gz"]}
                 ).to_csv(listing, index=False)
    assert resolve_maps([listing], reference) == [maps / "vol_000.mrc", maps / "vol_001.mrc.gz"]
    mixed = tmp_path / "mixed.csv"
    pd.DataFrame({"protein": ["helix", "other"], "map": [str(maps / "vol_000.mrc")] * 2}).to_csv(mixed, index=False)
    with pytest.raises(ValueError, match="several proteins"):
        resolve_maps([mixed], reference)
    other = tmp_path / "other.csv"
    pd.DataFrame({"reference": "elsewhere.pdb", "map": [str(maps / "vol_000.mrc")]}).to_csv(other, index=False)
    with pytest.raises(ValueError, match="cannot share one reference"):
        resolve_maps([other], reference)
    listing.unlink()


def torchrun_train(*args: str) -> subprocess.CompletedProcess:
    """``cryosampler train ARGS`` under torchrun with two gloo processes on the CPU; asserts it succeeded."""
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")  # gloo on the CPU even on a GPU machine
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--standalone",
                             "-m", "cryosampler", "train", *args], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.mark.slow
def test_torchrun_trains_with_two_processes(user_data, tmp_path):
    reference, maps = user_data
    out = tmp_path / "run"
    result = torchrun_train("--reference", str(reference), "--maps", str(maps), "-o", str(out), *TRAIN)
    assert len(pd.read_csv(out / "train_log.csv")) == 2
    assert json.loads((out / "config.json").read_text())["processes"] == 2
    assert result.stderr.count("trained 2 steps") == 1  # rank 0 alone reports


@pytest.fixture(scope="module")
def trained(user_data, tmp_path_factory):
    reference, maps = user_data
    out = tmp_path_factory.mktemp("trained") / "run"
    assert train(reference, [maps], out) == 0
    return out / "checkpoint.pt"


def fit(checkpoint, reference, maps, output, *extra):
    return cli.main(["fit", "--checkpoint", str(checkpoint), "--reference", str(reference), "--maps",
                     *map(str, maps), "-o", str(output), "--device", "cpu", *extra])


def test_fit_writes_one_model_per_map_in_the_map_frame(user_data, trained, tmp_path, capsys):
    reference, maps = user_data
    structure = read_structure(reference)
    assert fit(trained, reference, [maps / "vol_000.mrc"], tmp_path / "vol_000.pdb") == 0
    model = read_ensemble(tmp_path / "vol_000.pdb", structure)[0]
    assert np.sqrt(((model - structure.coords) ** 2).sum(-1).mean()) < 1.0  # in the maps' frame, near the reference
    err = capsys.readouterr().err
    assert "map–model correlation" in err and "validity: 1 model, " in err
    validity = pd.read_csv(tmp_path / "vol_000_validity.csv")
    assert len(validity) == 1 and list(validity.columns[:3]) == ["map", "model", "clashes"]
    assert validity.loc[0, "model"] == str(tmp_path / "vol_000.pdb")
    assert validity.loc[0, "clashes"] == sample_validity(model[None], structure).loc[0, "clashes"]

    out = tmp_path / "fits"
    assert fit(trained, reference, [maps], out) == 0
    table = pd.read_csv(out / "fit.csv")
    assert sorted(p.name for p in out.iterdir()) == ["fit.csv", "validity.csv", "vol_000.pdb", "vol_001.pdb"]
    assert list(table.columns) == ["map", "model", "correlation_reference", "correlation_fitted",
                                   "rmsd_to_reference"]
    assert (table["correlation_reference"] > 0.9).all() and table["correlation_fitted"].between(-1, 1).all()
    np.testing.assert_allclose(read_ensemble(out / "vol_000.pdb", structure)[0], model, atol=1e-3)
    validity = pd.read_csv(out / "validity.csv")  # one row per fitted model, named as in fit.csv
    assert validity[["map", "model"]].equals(table[["map", "model"]])
    assert "validity: 2 models, " in capsys.readouterr().err


def test_fit_takes_the_deprecated_map_with_a_note_and_quiet_leaves_the_summary(user_data, trained, tmp_path, capsys):
    reference, maps = user_data
    output = tmp_path / "vol_000.pdb"
    assert cli.main(["fit", "--checkpoint", str(trained), "--reference", str(reference), "--map",
                     str(maps / "vol_000.mrc"), "-o", str(output), "--device", "cpu", "--quiet"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0] == note("--map", "--maps")
    assert not any(line.startswith("map 1/1") for line in err)  # --quiet: no line per map
    assert err[1].startswith("fitted 1 map(s) in ") and err[2].startswith("validity: 1 model, ") and len(err) == 3
    structure = read_structure(reference)
    assert read_ensemble(output, structure).shape == (1, structure.n_atoms, 3)


def test_fit_refine_and_recycle_write_the_refined_models_and_both_correlations(user_data, trained, tmp_path,
                                                                               capsys):
    reference, maps = user_data
    structure = read_structure(reference)
    out = tmp_path / "fits"
    assert fit(trained, reference, [maps], out, "--refine", "--recycle", "1", "--resolution", "6") == 0
    table = pd.read_csv(out / "fit.csv")
    assert list(table.columns) == ["map", "model", "correlation_reference", "correlation_readout",
                                   "correlation_fitted", "rmsd_to_reference"]
    # Refinement raises the correlation it maximises (at 6 Å here; the table's is at the model's 8 Å).
    assert (table["correlation_fitted"] > table["correlation_readout"]).all()
    models = read_ensemble(out / "vol_000.pdb", structure)
    validity = pd.read_csv(out / "validity.csv")
    assert (validity["clashes"] == 0).all() and (validity["bond_dev_rmsd"] < 0.05).all()
    assert np.sqrt(((models[0] - structure.coords) ** 2).sum(-1).mean()) < 1.5  # near the maps' structures
    err = capsys.readouterr().err
    assert "(read out) → " in err and "(refined from the read-out)" in err and "--refine renders" not in err
    assert fit(trained, reference, [maps / "vol_000.mrc"], tmp_path / "at_8.pdb", "--refine") == 0
    assert ("cryosampler: note: --refine renders the models at the model's 8 Å; for maps of higher resolution give "
            "theirs, e.g. --resolution 3.5") in capsys.readouterr().err


def test_fit_normal_modes_keeps_the_refined_model_that_fits_better(user_data, trained, tmp_path):
    reference, maps = user_data
    out = tmp_path / "fits"
    assert fit(trained, reference, [maps / "vol_000.mrc"], out, "--refine", "--normal-modes") == 0
    table = pd.read_csv(out / "fit.csv")
    assert list(table.columns)[-1] == "start" and table.loc[0, "start"] in ("read-out", "normal modes")


@pytest.mark.parametrize("option, expected", [
    (["--recycle", "-1"], "--recycle -1 must be 0 or more"),
    (["--refine", "--resolution", "0"], "--resolution 0.0 must be a positive"),
    (["--resolution", "4"], "pass --refine too"),
    (["--normal-modes"], "--normal-modes chooses between starts of refinement; pass --refine too")])
def test_fit_refuses_bad_refinement_options_before_any_output(user_data, trained, tmp_path, capsys, option,
                                                              expected):
    reference, maps = user_data
    assert fit(trained, reference, [maps], tmp_path / "fits", *option) == 2
    assert expected in one_line_error(capsys)
    assert not (tmp_path / "fits").exists()


@pytest.mark.parametrize("case", ["output is the reference", "several maps to one file", "folder not empty",
                                  "validity table is the listing"])
def test_fit_refuses_outputs_that_would_overwrite_or_mix(user_data, trained, tmp_path, capsys, case):
    reference, maps = user_data
    given, output = [maps / "vol_000.mrc"], tmp_path / "out"
    if case == "output is the reference":
        output, expected = reference, "inputs are never overwritten"
    elif case == "validity table is the listing":
        listing = tmp_path / "fit_validity.csv"
        listing.write_text(f"map\n{maps / 'vol_000.mrc'}\n")
        given, output, expected = [listing], tmp_path / "fit.pdb", "is the input"
    elif case == "several maps to one file":
        given, output, expected = [maps], tmp_path / "all.pdb", "give a folder"
    else:
        output.mkdir()
        (output / "keep.txt").write_text("mine")
        given, expected = [maps], "is not empty"
    before = reference.read_bytes()
    assert fit(trained, reference, given, output) == 2
    assert expected in one_line_error(capsys)
    assert reference.read_bytes() == before
    if case == "folder not empty":
        assert sorted(p.name for p in output.iterdir()) == ["keep.txt"]
    if case == "validity table is the listing":
        assert listing.read_text() == f"map\n{maps / 'vol_000.mrc'}\n" and not output.exists()


def test_fit_names_models_after_their_maps_and_refuses_two_that_collide(user_data, trained, tmp_path, capsys):
    from cryosampler.commands.fit import model_name
    assert model_name(Path("vol_1.5A.mrc")) == "vol_1.5A.pdb" and model_name(Path("b.MAP.gz")) == "b.pdb"
    reference, maps = user_data
    twin = tmp_path / "other"
    twin.mkdir()
    (twin / "vol_000.mrc").write_bytes((maps / "vol_000.mrc").read_bytes())
    assert fit(trained, reference, [maps / "vol_000.mrc", twin / "vol_000.mrc"], tmp_path / "fits") == 2
    assert "would both be written as vol_000.pdb" in one_line_error(capsys)
    assert not (tmp_path / "fits").exists()


@pytest.mark.parametrize("case", ["batch over processes", "empty map column", "protein names with a gap",
                                  "negative loss-weight floor"])
def test_more_bad_training_input_is_one_line_before_any_output(user_data, tmp_path, capsys, monkeypatch, case):
    reference, maps = user_data
    given, extra = [maps], []
    if case == "batch over processes":
        monkeypatch.setenv("WORLD_SIZE", "3")  # as torchrun --nproc-per-node 3 sets it
        expected = "does not split evenly over 3 processes"
    elif case == "negative loss-weight floor":
        extra, expected = ["--weight-floor", "-1"], "--weight-floor -1.0 must be a number ≥ 0"
    elif case == "empty map column":
        listing = tmp_path / "maps.csv"
        listing.write_text("protein,map\nhelix,\n")
        given, expected = [listing], "names no map"
    else:
        listing = tmp_path / "maps.csv"
        pd.DataFrame({"protein": ["a", None, "b"], "map": [str(maps / "vol_000.mrc")] * 3}).to_csv(listing,
                                                                                                    index=False)
        given, expected = [listing], "several proteins (a, b)"
    out = tmp_path / "run"
    assert train(reference, given, out, *extra) == 2
    assert expected in one_line_error(capsys)
    assert not out.exists()


def test_fit_relax_relaxes_the_model_and_says_so(user_data, trained, tmp_path, capsys):
    pytest.importorskip("openmm")
    reference, maps = user_data
    structure = read_structure(reference)
    assert fit(trained, reference, [maps / "vol_000.mrc"], tmp_path / "plain.pdb") == 0
    capsys.readouterr()
    assert cli.main(["fit", "--checkpoint", str(trained), "--reference", str(reference), "--maps",
                     str(maps / "vol_000.mrc"), "-o", str(tmp_path / "relaxed.pdb"), "--device", "cpu", "--quiet",
                     "--relax"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[1].startswith("relaxed 1 model (Amber14, implicit solvent, heavy atoms restrained) in ") and \
        " → 0.0, heavy atoms moved " in err[1], err
    plain, relaxed = (read_ensemble(tmp_path / name, structure)[0] for name in ("plain.pdb", "relaxed.pdb"))
    assert np.sqrt(np.mean(np.sum((relaxed - plain) ** 2, axis=1))) > 0.01  # the fitted model, relaxed
    assert list(pd.read_csv(tmp_path / "relaxed_validity.csv")["clashes"]) == [0]


# A user's work (issue 35): one overwrite rule, a claim on each output, interrupted runs that keep their work.

def start_train(reference, maps, out, steps, *extra) -> subprocess.Popen:
    """``cryosampler train`` of ``steps`` smoke steps in a process of its own, a progress line per step on stdout."""
    return subprocess.Popen([sys.executable, "-m", "cryosampler", "train", "--reference", str(reference), "--maps",
                             str(maps), "-o", str(out), "--steps", str(steps), "--batch-size", "2", "--preset", "smoke",
                             "--device", "cpu", "--quiet", "--log-every", "1", "--family", "map", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=os.environ | {"PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"})


def wait_for_step(process: subprocess.Popen, step: int) -> None:
    for line in process.stdout:
        if line.startswith(f"step {step}/"):
            return
    raise AssertionError(f"no step {step}: {process.communicate()[1]}")


def test_ctrl_c_at_step_20_saves_the_run_and_resume_ends_as_an_uninterrupted_run(user_data, tmp_path):
    reference, maps = user_data
    out = tmp_path / "run"
    process = start_train(reference, maps, out, 60, "--checkpoint-every", "1000")  # no checkpoint but Ctrl-C's
    wait_for_step(process, 20)
    process.send_signal(signal.SIGINT)
    err = process.communicate(timeout=120)[1]
    stopped = load_checkpoint(out / "checkpoint.pt")["step"]  # the step under way ends first
    assert process.returncode == 130 and 20 <= stopped < 60, err
    assert err.strip().splitlines()[-1] == (f"cryosampler: interrupted: stopped after step {stopped} of 60; the run is "
                                            f"saved in {out / 'checkpoint.pt'} and continues from there with --resume")
    assert len(pd.read_csv(out / "train_log.csv")) == stopped
    # The resumed and the uninterrupted run are processes of their own too, with the same thread count as the
    # interrupted one (start_train): weights are bit-identical only at one thread count.
    resumed_run = start_train(reference, maps, out, 60, "--resume", "--checkpoint-every", "7")  # may change
    err = resumed_run.communicate(timeout=120)[1]
    assert resumed_run.returncode == 0, err
    assert f"trained {60 - stopped} steps (resumed at step {stopped}, now at 60) on 2 maps" in err
    whole_run = start_train(reference, maps, tmp_path / "whole", 60)
    err = whole_run.communicate(timeout=120)[1]
    assert whole_run.returncode == 0, err
    resumed, whole = load_checkpoint(out / "checkpoint.pt"), load_checkpoint(tmp_path / "whole" / "checkpoint.pt")
    assert all(torch.equal(resumed["ema"][k], whole["ema"][k]) for k in whole["ema"])
    assert len(pd.read_csv(out / "train_log.csv")) == 60


def test_a_second_train_into_a_folder_in_use_is_refused_in_one_line(user_data, tmp_path):
    reference, maps = user_data
    out = tmp_path / "run"
    first = start_train(reference, maps, out, 5000, "--seed", "1")  # stopped by SIGTERM below
    try:
        wait_for_step(first, 1)
        second = subprocess.run([sys.executable, "-m", "cryosampler", "train", "--reference", str(reference),
                                 "--maps", str(maps), "-o", str(out), *TRAIN, "--seed", "2"], capture_output=True,
                                text=True, timeout=300)
        assert second.returncode == 2 and second.stderr.strip().splitlines() == [
            f"cryosampler: error: {out} is being written by another cryosampler run (process {first.pid}); wait for "
            "it to end, or choose another output"]
        first.send_signal(signal.SIGTERM)  # saves as Ctrl-C does
        err = first.communicate(timeout=120)[1]
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 130 and "continues from there with --resume" in err
    assert json.loads((out / "config.json").read_text())["train_config"]["seed"] == 1
    assert load_checkpoint(out / "checkpoint.pt")["train_config"]["seed"] == 1
    assert not (tmp_path / ".run.lock").exists()


def test_a_folder_with_a_users_config_or_log_is_refused_unless_overwrite(user_data, tmp_path, capsys):
    reference, maps = user_data
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text("{\"mine\": 1}\n")
    assert train(reference, [maps], out) == 2
    line = one_line_error(capsys)
    assert f"--output {out} holds config.json but no checkpoint.pt" in line and "pass --overwrite" in line
    assert (out / "config.json").read_text() == "{\"mine\": 1}\n" and sorted(os.listdir(out)) == ["config.json"]
    assert train(reference, [maps], out, "--overwrite") == 0
    assert "mine" not in json.loads((out / "config.json").read_text())
    assert train(reference, [maps], out) == 2 and "pass --resume to continue it, --overwrite" in one_line_error(capsys)
    assert train(reference, [maps], out, "--resume", "--overwrite") == 2
    assert "give one of them" in one_line_error(capsys)
    (out / "checkpoint.pt").unlink()  # as a run killed before its first checkpoint leaves it
    assert train(reference, [maps], out, "--resume") == 2
    assert "holds no checkpoint.pt to continue" in (line := one_line_error(capsys)) and "pass --overwrite" in line


def test_train_quiet_prints_no_step_line_and_the_hint_quotes_paths_with_spaces(user_data, tmp_path, capsys):
    reference, maps = user_data
    out = tmp_path / "my run"
    assert train(reference, [maps], out) == 0
    printed = capsys.readouterr()
    assert "step " not in printed.out
    assert f"cryosampler sample --checkpoint '{out / 'checkpoint.pt'}' --reference {reference} " in printed.err


def test_fit_and_sample_refuse_an_existing_output_file_unless_overwrite(user_data, trained, tmp_path, capsys):
    reference, maps = user_data
    theirs = tmp_path / "theirs.pdb"
    theirs.write_text("a user's file\n")
    assert fit(trained, reference, [maps / "vol_000.mrc"], theirs, "--quiet") == 2
    assert f"--output {theirs} already exists; pass --overwrite to replace it" in one_line_error(capsys)
    sample = ["sample", "--checkpoint", str(trained), "--reference", str(reference), "-n", "2", "--steps", "2",
              "-o", str(theirs), "--device", "cpu", "--quiet"]
    assert cli.main(sample) == 2
    assert f"--output {theirs} already exists; pass --overwrite to replace it" in one_line_error(capsys)
    assert theirs.read_text() == "a user's file\n" and sorted(os.listdir(tmp_path)) == ["theirs.pdb"]
    assert fit(trained, reference, [maps / "vol_000.mrc"], theirs, "--quiet", "--overwrite") == 0
    assert len(read_ensemble(theirs, read_structure(reference))) == 1
    assert cli.main(sample + ["--overwrite"]) == 0 and len(read_ensemble(theirs, read_structure(reference))) == 2


def test_an_interrupted_fit_keeps_its_finished_models_and_resume_fits_only_the_rest(user_data, trained, tmp_path,
                                                                                  monkeypatch, capsys):
    reference, maps = user_data
    assert fit(trained, reference, [maps], tmp_path / "whole", "--quiet") == 0
    real, calls = readout.fit_map, []

    def interrupted_at_the_second_map(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(readout, "fit_map", interrupted_at_the_second_map)
    out = tmp_path / "fitted"
    assert fit(trained, reference, [maps], out, "--quiet") == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"cryosampler: interrupted: kept the models of 1 of 2 maps in {out}; the same command with --resume fits the "
        "rest")
    assert sorted(os.listdir(out)) == ["fit.csv", "validity.csv", "vol_000.pdb"]
    assert list(pd.read_csv(out / "fit.csv")["map"]) == [str(maps / "vol_000.mrc")]
    monkeypatch.setattr(readout, "fit_map", real)
    assert fit(trained, reference, [maps], out, "--quiet") == 2
    assert "pass --resume to finish an interrupted fit there" in one_line_error(capsys)
    assert fit(trained, reference, [maps], out, "--resume") == 0
    err = capsys.readouterr().err
    assert "map 1/2" not in err and "map 2/2" in err and "fitted 1 map(s) (1 more kept from the interrupted fit)" in err
    for name in ("fit.csv", "validity.csv", "vol_000.pdb", "vol_001.pdb"):
        assert (out / name).read_text().replace(str(out), "") == (tmp_path / "whole" / name).read_text().replace(
            str(tmp_path / "whole"), ""), name
    assert fit(trained, reference, [maps], out, "--overwrite", "--quiet") == 0
    assert sorted(os.listdir(out)) == ["fit.csv", "validity.csv", "vol_000.pdb", "vol_001.pdb"]


def test_sample_removes_the_temporaries_a_killed_run_left_of_its_output(user_data, trained, tmp_path, capsys):
    reference, _ = user_data
    stale = tmp_path / f".prev.pdb.{'0f' * 16}.tmp"
    stale.write_text("MODEL 1\n")  # what kill -9 leaves while the ensemble is being written
    assert cli.main(["sample", "--checkpoint", str(trained), "--reference", str(reference), "-n", "2", "--steps", "2",
                     "-o", str(tmp_path / "prev.pdb"), "--device", "cpu", "--quiet"]) == 0
    assert f"cryosampler: note: removed {stale}, a temporary file left by a killed run" in capsys.readouterr().err
    assert not stale.exists() and not any(p.name.startswith(".") for p in tmp_path.iterdir())


def test_fit_refuses_a_reference_the_model_cannot_place_without_naming_an_option_it_lacks(user_data, trained,
                                                                                         tmp_path, capsys):
    reference, maps = user_data
    structure = read_structure(reference)
    stretched = tmp_path / "stretched.pdb"
    write_pdb(stretched, structure, structure.coords.mean(0) + 4 * (structure.coords - structure.coords.mean(0)))
    assert fit(trained, stretched, [maps / "vol_000.mrc"], tmp_path / "out.pdb") == 2
    line = one_line_error(capsys)
    assert "CA atoms fit the model's template at" in line and "allow-poor-fit" not in line


def test_quiet_says_what_it_hides_in_each_command(capsys):
    hidden = {"train": "progress bar and step lines", "sample": "progress bar", "fit": "a line per map",
              "report": "the line saying what was read", "traverse": "a line per map file encoded"}
    for command, what in hidden.items():
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        assert f"no progress output ({what})" in " ".join(capsys.readouterr().out.split())


def test_the_command_lines_defaults_are_the_training_configs():
    from cryosampler.commands import train as command
    from cryosampler.training import TrainConfig

    from cryosampler.model import encoder

    assert (command.STEPS, command.CHECKPOINT_EVERY, command.LOG_EVERY) == (
        TrainConfig().steps, TrainConfig().checkpoint_every, TrainConfig().log_every)
    assert (command.FULL_ATTENTION_TOKENS, command.ATTENTION_WINDOW) == (encoder.FULL_ATTENTION_TOKENS,
                                                                        encoder.ATTENTION_WINDOW)


def test_overwrite_is_refused_under_torchrun(user_data, tmp_path, capsys, monkeypatch):
    reference, maps = user_data
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert train(reference, [maps], tmp_path / "run", "--overwrite") == 2
    assert "--overwrite is not taken under torchrun" in one_line_error(capsys)
