"""``cryosampler train --family latent``, and sample, fit and the checkpoint with a latent model: weights from the
maps CSV, the population report, stage 1 reused, and one-line refusals."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

import cryosampler.cli as cli
from cryosampler.io.atomic_files import read_ensemble, read_structure
from cryosampler.model.checkpoint import family_of, load_checkpoint, model_from_checkpoint, save_checkpoint
from cryosampler.model.latent_model import LatentModel

from test_cli_train import one_line_error, user_data  # noqa: F401 (a fixture)

LATENT = ["--family", "latent", "--preset", "smoke", "--steps", "3", "--batch-size", "2", "--device", "cpu",
          "--quiet"]


def listing(maps, weights, path):
    """A maps CSV with a weight column beside the maps folder."""
    names = sorted(p.name for p in maps.iterdir())
    pd.DataFrame({"map": [f"{maps.name}/{n}" for n in names], "weight": weights}).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def latent_run(user_data, tmp_path_factory):  # noqa: F811
    reference, maps = user_data
    out = tmp_path_factory.mktemp("latent") / "run"
    csv = listing(maps, ["300", "100"], maps.parent / "weighted.csv")
    assert cli.main(["train", "--reference", str(reference), "--maps", str(csv), "-o", str(out), *LATENT]) == 0
    return reference, maps, out


def test_train_writes_a_latent_checkpoint_with_the_maps_weights(latent_run):
    _, _, out = latent_run
    state = load_checkpoint(out / "checkpoint.pt")
    assert family_of(state) == "latent" and state["stage"] == 2
    assert [m["weight"] for m in state["maps"]] == [300.0, 100.0]
    model = model_from_checkpoint(state)
    assert isinstance(model, LatentModel)
    assert model.map_weight.tolist() == [300.0, 100.0] and model.map_mean.shape == (2, 4)
    log = pd.read_csv(out / "train_log.csv")
    assert (log["stage"] == 1).sum() == 3 and (log["stage"] == 2).sum() > 0
    config = json.loads((out / "config.json").read_text())
    assert config["family"] == "latent" and [m["weight"] for m in config["maps"]] == [300.0, 100.0]


def test_sample_writes_the_ensemble_and_the_populations_against_the_weights(latent_run, tmp_path, capsys):
    reference, _, out = latent_run
    ensemble = tmp_path / "ensemble.pdb"
    assert cli.main(["sample", "--checkpoint", str(out / "checkpoint.pt"), "--reference", str(reference), "-n", "6",
                     "-o", str(ensemble), "--device", "cpu", "--quiet"]) == 0
    samples = read_ensemble(ensemble, read_structure(reference))
    assert samples.shape[0] == 6 and np.isfinite(samples).all()
    populations = pd.read_csv(tmp_path / "ensemble_populations.csv")
    assert list(populations["weight_share"]) == [0.75, 0.25]
    assert populations["sample_share"].sum() == pytest.approx(1.0)
    err = capsys.readouterr().err
    assert "populations (each sample counted at its nearest training map" in err and "0.75 asked" in err
    assert len(pd.read_csv(tmp_path / "ensemble_validity.csv")) == 6


def test_sample_is_deterministic_for_a_seed(latent_run, tmp_path):
    reference, _, out = latent_run
    runs = []
    for name in ("a.pdb", "b.pdb"):
        assert cli.main(["sample", "--checkpoint", str(out / "checkpoint.pt"), "--reference", str(reference), "-n",
                         "3", "--seed", "4", "-o", str(tmp_path / name), "--quiet"]) == 0
        runs.append(read_ensemble(tmp_path / name, read_structure(reference)))
    np.testing.assert_array_equal(runs[0], runs[1])


def test_fit_reads_out_each_map_through_the_autoencoder(latent_run, tmp_path):
    reference, maps, out = latent_run
    fitted = tmp_path / "fitted"
    assert cli.main(["fit", "--checkpoint", str(out / "checkpoint.pt"), "--reference", str(reference), "--maps",
                     str(maps), "-o", str(fitted), "--device", "cpu", "--quiet"]) == 0
    table = pd.read_csv(fitted / "fit.csv")
    assert len(table) == 2 and table["correlation_fitted"].notna().all()


def test_stage1_from_trains_stage_2_alone_with_new_weights(latent_run, tmp_path, capsys):
    reference, maps, out = latent_run
    csv = listing(maps, ["1", "3"], tmp_path / "reweighted.csv")
    # The CSV lives elsewhere: its map paths are relative to it.
    pd.DataFrame({"map": [str(p) for p in sorted(maps.iterdir())], "weight": [1, 3]}).to_csv(csv, index=False)
    new = tmp_path / "reweighted"
    assert cli.main(["train", "--reference", str(reference), "--maps", str(csv), "-o", str(new), *LATENT,
                     "--stage1-from", str(out / "checkpoint.pt")]) == 0
    before, after = (model_from_checkpoint(load_checkpoint(p / "checkpoint.pt")) for p in (out, new))
    for key, value in before.autoencoder.state_dict().items():
        assert torch.equal(value, after.autoencoder.state_dict()[key]), key
    assert after.map_weight.tolist() == [1.0, 3.0]
    assert set(pd.read_csv(new / "train_log.csv")["stage"]) == {2}
    assert "stage 2 on stage 1 of" in capsys.readouterr().err


def test_a_stage_1_checkpoint_is_resumed_into_stage_2_and_refused_by_sample(latent_run, tmp_path, capsys):
    reference, maps, out = latent_run
    state = load_checkpoint(out / "checkpoint.pt")
    run = tmp_path / "run"
    run.mkdir()
    save_checkpoint(run / "checkpoint.pt", {**state, "stage": 1})
    assert cli.main(["sample", "--checkpoint", str(run / "checkpoint.pt"), "--reference", str(reference), "-n", "2",
                     "-o", str(tmp_path / "e.pdb"), "--quiet"]) == 2
    assert "holds stage 1 of a latent model only" in one_line_error(capsys)
    assert not (tmp_path / "e.pdb").exists()
    assert cli.main(["train", "--reference", str(reference), "--maps", str(maps), "-o", str(run), *LATENT,
                     "--resume"]) == 0
    assert load_checkpoint(run / "checkpoint.pt")["stage"] == 2


@pytest.mark.parametrize("weights, message", [
    (["2", "-1"], "weight '-1' of map maps/vol_001.mrc.gz is not a number ≥ 0"),
    (["2", "many"], "weight 'many' of map maps/vol_001.mrc.gz is not a number ≥ 0"),
    (["0", "0"], "every map's weight is 0"),
])
def test_bad_weights_are_refused_in_one_line_before_any_output(user_data, tmp_path, capsys, weights,  # noqa: F811
                                                                message):
    reference, maps = user_data
    csv = listing(maps, weights, maps.parent / "bad_weights.csv")
    out = tmp_path / "run"
    assert cli.main(["train", "--reference", str(reference), "--maps", str(csv), "-o", str(out), *LATENT]) == 2
    assert message in one_line_error(capsys)
    assert not out.exists()


def test_a_map_without_a_weight_beside_weighted_ones_is_refused(user_data, tmp_path, capsys):  # noqa: F811
    reference, maps = user_data
    first = sorted(maps.iterdir())[0]
    csv = tmp_path / "one.csv"
    pd.DataFrame({"map": [str(first)], "weight": [5]}).to_csv(csv, index=False)
    assert cli.main(["train", "--reference", str(reference), "--maps", str(csv), str(sorted(maps.iterdir())[1]),
                     "-o", str(tmp_path / "run"), *LATENT]) == 2
    assert "has no weight, but other maps have one" in one_line_error(capsys)


@pytest.mark.parametrize("extra, message", [
    (["--components", "3"], "--components applies to the map family"),
    (["--rotate"], "--rotate applies to the map family"),
    (["--preset", "paper"], "the latent family's presets are default, smoke"),
])
def test_map_family_options_are_refused_with_the_latent_family(user_data, tmp_path, capsys, extra,  # noqa: F811
                                                                message):
    reference, maps = user_data
    assert cli.main(["train", "--reference", str(reference), "--maps", str(maps), "-o", str(tmp_path / "run"),
                     *LATENT, *extra]) == 2
    assert message in one_line_error(capsys)
    assert not (tmp_path / "run").exists()


def test_stage1_from_a_map_family_checkpoint_is_refused(user_data, tiny_checkpoint, tmp_path, capsys):  # noqa: F811
    reference, maps = user_data
    assert cli.main(["train", "--reference", str(reference), "--maps", str(maps), "-o", str(tmp_path / "run"),
                     *LATENT, "--stage1-from", str(tiny_checkpoint)]) == 2
    assert "holds a map-family model" in one_line_error(capsys)


def test_sample_refuses_maps_dir_for_a_latent_model(latent_run, tmp_path, capsys):
    reference, _, out = latent_run
    assert cli.main(["sample", "--checkpoint", str(out / "checkpoint.pt"), "--reference", str(reference), "-n", "2",
                     "-o", str(tmp_path / "e.pdb"), "--maps-dir", str(tmp_path / "maps"), "--quiet"]) == 2
    assert "samples structures, not maps" in one_line_error(capsys)


def test_train_builds_the_latent_family_unless_told_otherwise(user_data, tmp_path):  # noqa: F811
    reference, maps = user_data
    out = tmp_path / "run"
    assert cli.main(["train", "--reference", str(reference), "--maps", str(maps), "-o", str(out), "--preset", "smoke",
                     "--steps", "2", "--batch-size", "2", "--device", "cpu", "--quiet"]) == 0
    assert family_of(load_checkpoint(out / "checkpoint.pt")) == "latent"


def test_checkpoints_written_before_the_family_entry_load_as_map_models(tiny_checkpoint):
    state = load_checkpoint(tiny_checkpoint)
    assert "family" not in state and family_of(state) == "map"
    assert not isinstance(model_from_checkpoint(state), LatentModel)


def test_an_unknown_family_is_refused_in_one_line(tiny_checkpoint, tmp_path):
    path = tmp_path / "future.pt"
    save_checkpoint(path, {**load_checkpoint(tiny_checkpoint), "family": "flow"})
    with pytest.raises(ValueError, match="unknown model family 'flow'"):
        load_checkpoint(path)


def test_each_latent_decodes_to_one_valid_structure(latent_run):
    from cryosampler.evaluation.validate import sample_validity
    from cryosampler.latent_sampling import iter_reference_latent_samples
    from cryosampler.reference import prepare_reference

    reference_path, _, out = latent_run
    model = model_from_checkpoint(load_checkpoint(out / "checkpoint.pt"))
    reference = read_structure(reference_path)
    placed = prepare_reference(model, reference)
    [(coords, latents)] = list(iter_reference_latent_samples(model, placed, 5, seed=3))
    assert coords.shape == (5, reference.n_atoms, 3) and latents.shape == (5, 4)
    again = placed.place.inverse().apply(model.decode(torch.as_tensor(latents), placed.protein).numpy().astype(float))
    np.testing.assert_allclose(again, coords, atol=1e-4)  # the latent alone decides the structure
    assert sample_validity(coords, reference)["bioemu_physical"].all()


@pytest.mark.parametrize("change, message", [
    (lambda s: {k: v for k, v in s.items() if k != "maps"}, "no maps entry for a latent model"),
    (lambda s: {**s, "proteins": "adk"}, "its proteins entry is not a list of names and sequences"),
    (lambda s: {**s, "weights": {k: v for k, v in s["weights"].items() if k != "map_mean"}},
     "its weights do not match its model_config, e.g. map_mean"),
    (lambda s: {**s, "maps": s["maps"][:1]}, "its weights do not match its model_config, e.g. map_mean"),
])
def test_a_damaged_latent_checkpoint_is_refused_in_one_line(latent_run, tmp_path, change, message):
    _, _, out = latent_run
    path = tmp_path / "damaged.pt"
    save_checkpoint(path, change(load_checkpoint(out / "checkpoint.pt")))
    with pytest.raises(ValueError, match=message):
        load_checkpoint(path)
