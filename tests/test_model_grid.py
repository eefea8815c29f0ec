"""The model grid fits the protein (issue 32): chosen by ``train`` from the reference's extent, or given with
--box / --apix; recorded in the checkpoint and used by ``sample`` and ``fit``."""

import json

import pytest

import cryosampler.cli as cli
from cryosampler.io.atomic_files import read_ensemble, read_structure, write_pdb
from cryosampler.io.grid import BOX_MARGIN, MapGrid, grid_for
from cryosampler.model.checkpoint import load_checkpoint, model_from_checkpoint

from conftest import make_helix
from test_cli_train import one_line_error, torchrun_train
from test_ingest import write_user_map


def test_proteins_that_fit_the_papers_grid_keep_it():
    assert grid_for(20.0) == MapGrid() and grid_for(62.0 - BOX_MARGIN) == MapGrid()


def test_larger_proteins_get_larger_then_coarser_grids():
    assert grid_for(60.0) == MapGrid(size=80, apix=2.0, resolution=8.0)
    assert grid_for(75.0) == MapGrid(size=96, apix=2.0, resolution=8.0)
    assert grid_for(110.0) == MapGrid(size=128, apix=2.0, resolution=8.0)
    big = grid_for(140.0)
    assert big.size == 128 and big.apix == 2.5 and big.resolution == 10.0
    for radius in (20.0, 60.0, 75.0, 110.0, 150.0, 300.0):
        grid = grid_for(radius)
        assert (grid.size // 2 - 1) * grid.apix >= radius + BOX_MARGIN  # every atom within the voxel centres


def test_a_given_box_or_voxel_size_is_kept_and_the_other_chosen():
    assert grid_for(30.0, box=96) == MapGrid(size=96, apix=2.0, resolution=8.0)
    assert grid_for(100.0, box=64).apix == 3.5
    assert grid_for(30.0, apix=1.5) == MapGrid(size=64, apix=1.5, resolution=8.0)
    assert grid_for(30.0, box=80, apix=1.0) == MapGrid(size=80, apix=1.0, resolution=8.0)


@pytest.mark.parametrize("box, apix, match", [(100, None, "multiple of 16"), (64, 1.0, "holds atoms up to 31 Å"),
                                              (None, -2.0, "positive number")])
def test_a_grid_that_cannot_be_is_refused(box, apix, match):
    with pytest.raises(ValueError, match=match):
        grid_for(40.0, box=box, apix=apix)


@pytest.fixture(scope="module")
def long_protein(tmp_path_factory):
    """A 100-residue helix, 150 Å long (too long for the 128 Å box), fitted into one map of its own."""
    root = tmp_path_factory.mktemp("long")
    helix = make_helix(100, name="long")
    write_pdb(root / "long.pdb", helix, helix.coords + 100.0)
    reference = read_structure(root / "long.pdb")
    (root / "maps").mkdir()
    write_user_map(root / "maps" / "vol_000.mrc", reference.coords, reference.atomic_numbers, 3.0, (72, 72, 72))
    return root / "long.pdb", root / "maps"


@pytest.mark.slow
@pytest.mark.parametrize("family, preset", [("latent", "smoke"), ("map", "smoke")])
def test_a_150_angstrom_protein_trains_samples_and_fits(long_protein, tmp_path, family, preset, capsys):
    reference, maps = long_protein
    run = tmp_path / "run"
    assert cli.main(["train", "--family", family, "--preset", preset, "--reference", str(reference), "--maps",
                     str(maps), "-o", str(run), "--steps", "2", "--batch-size", "1", "--device", "cpu"]) == 0
    assert "model grid 96³ × 2 Å (192 Å box" in capsys.readouterr().err
    state = load_checkpoint(run / "checkpoint.pt")
    assert model_from_checkpoint(state).config.grid == MapGrid(size=96, apix=2.0, resolution=8.0)
    assert json.loads((run / "config.json").read_text())["model_config"]["grid"]["size"] == 96
    out = tmp_path / "ensemble.pdb"
    assert cli.main(["sample", "--checkpoint", str(run / "checkpoint.pt"), "--reference", str(reference), "-n", "2",
                     "--steps", "2", "-o", str(out), "--quiet", "--allow-poor-fit"]) == 0
    assert read_ensemble(out, read_structure(reference)).shape == (2, 500, 3)
    assert cli.main(["fit", "--checkpoint", str(run / "checkpoint.pt"), "--reference", str(reference), "--maps",
                     str(maps), "-o", str(tmp_path / "fitted"), "--quiet"]) == 0


def test_train_refuses_a_box_that_cannot_hold_the_reference(long_protein, tmp_path, capsys):
    reference, maps = long_protein
    assert cli.main(["train", "--reference", str(reference), "--maps", str(maps), "-o", str(tmp_path / "run"),
                     "--box", "64", "--apix", "2", "--steps", "1", "--quiet"]) == 2
    assert "--box 64 × --apix 2 Å holds atoms up to 62 Å from the centre, the reference reaches 75 Å" in \
        one_line_error(capsys)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()



@pytest.mark.slow
def test_torchrun_trains_a_long_protein_on_its_grid(long_protein, tmp_path):
    reference, maps = long_protein
    out = tmp_path / "run"
    result = torchrun_train("--family", "map", "--preset", "smoke", "--reference", str(reference), "--maps", str(maps),
                            "-o", str(out), "--steps", "2", "--batch-size", "2", "--device", "cpu")
    assert result.stderr.count("model grid 96³ × 2 Å") == 1  # rank 0 alone says it
    config = json.loads((out / "config.json").read_text())
    assert config["processes"] == 2 and config["model_config"]["grid"]["size"] == 96
