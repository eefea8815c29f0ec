"""Rotation augmentation: the 24 cube rotations, a turned map equals the render of the turned atoms (the
independent reference), and training with it draws every rotation and learns."""

import dataclasses

import numpy as np
import pytest
import torch

from cryosampler import training
from cryosampler.augment import CUBE_ROTATIONS, grid_centre, rotate_coords, rotate_examples, rotate_volume
from cryosampler.model.featurize import featurize
from cryosampler.physics.render import render_density
from cryosampler.io.grid import MapGrid
from conftest import make_helix, tiny_examples, tiny_model


def test_the_24_proper_rotations_of_the_cube():
    assert CUBE_ROTATIONS.shape == (24, 3, 3)
    assert torch.equal(CUBE_ROTATIONS[0], torch.eye(3, dtype=torch.float64))
    assert len({tuple(r.flatten().tolist()) for r in CUBE_ROTATIONS}) == 24
    for r in CUBE_ROTATIONS:
        torch.testing.assert_close(r @ r.T, torch.eye(3, dtype=torch.float64))
        assert torch.linalg.det(r) == pytest.approx(1.0)


@pytest.mark.parametrize("size", [16, 15])  # even: the centre is half a voxel off the origin; odd: on it
def test_a_turned_map_is_the_render_of_the_turned_atoms(size):
    grid = MapGrid(size=size, apix=2.0, resolution=6.0)
    coords = torch.tensor(np.random.default_rng(0).uniform(-7, 7, (12, 3)))  # asymmetric cloud, inside the box
    weights = torch.tensor([6.0, 7.0, 8.0] * 4, dtype=torch.float64)
    volume = render_density(coords[None], weights, grid)[0]
    assert grid_centre(grid) == (-1.0 if size % 2 == 0 else 0.0)
    for rotation in CUBE_ROTATIONS:
        expected = render_density(rotate_coords(coords, rotation, grid)[None], weights, grid)[0]
        torch.testing.assert_close(rotate_volume(volume, rotation), expected, atol=1e-9, rtol=0)


def test_rotate_volume_refuses_rotations_off_the_grid_and_mirrors():
    angle = np.pi / 6
    rotation = torch.tensor([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    for off_grid in (rotation, torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)),  # a mirror
                     torch.tensor([[0.6, 0.4, 0.0], [0.0, 0.6, 0.4], [0.4, 0.0, 0.6]])):
        with pytest.raises(ValueError, match="must be one of the 24 CUBE_ROTATIONS"):
            rotate_volume(torch.zeros(4, 4, 4), off_grid)


def test_rotate_examples_turns_each_map_with_its_reference_and_draws_every_rotation():
    grid = MapGrid(size=16, apix=2.0, resolution=8.0)
    helix = make_helix(6)
    protein = featurize(helix, helix.coords - helix.coords.mean(0), tokens="residue")
    volume = render_density(protein.ref_coords[None], protein.atomic_numbers, grid)[0]
    generator = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(40):
        turned, proteins = rotate_examples(volume.expand(4, -1, -1, -1), [protein] * 4, grid, generator)
        for v, p in zip(turned, proteins):
            torch.testing.assert_close(v, render_density(p.ref_coords[None], p.atomic_numbers, grid)[0],
                                       atol=1e-5, rtol=0)
            assert torch.equal(p.atom_type, protein.atom_type) and torch.equal(p.backbone_pairs, protein.backbone_pairs)
            seen.add(tuple(torch.round(p.ref_coords[0] - protein.ref_coords[0], decimals=3).tolist()))
    assert len(seen) == 24  # 160 draws: every rotation came up (the first atom lands at 24 distinct places)


def test_training_losses_with_rotations_train_on_the_turned_maps_and_references(tiny_structure):
    # The loss with rotate=True must be the loss without it on examples turned beforehand with the same draws:
    # the turned maps and the turned references both reach the model.
    examples = tiny_examples(tiny_structure)
    model = tiny_model(tiny_structure)
    config = training.TrainConfig(steps=6, batch_size=2, warmup=1, checkpoint_every=3, lr=1e-3)
    index = torch.tensor([0, 1])
    rotated = training.training_losses(model, examples, index, dataclasses.replace(config, rotate=True),
                                       torch.Generator().manual_seed(5))["loss"]
    generator = torch.Generator().manual_seed(5)
    volumes, proteins = rotate_examples(torch.stack([e.volume for e in examples]), [e.protein for e in examples],
                                        model.config.grid, generator)
    assert not torch.equal(volumes, torch.stack([e.volume for e in examples]))  # seed 5 draws real turns
    turned = [training.TrainingExample(p, v) for p, v in zip(proteins, volumes)]
    by_hand = training.training_losses(model, turned, index, config, generator)["loss"]
    torch.testing.assert_close(rotated, by_hand)
    unturned_references = [training.TrainingExample(e.protein, v) for e, v in zip(examples, volumes)]
    generator = torch.Generator().manual_seed(5)
    rotate_examples(volumes, proteins, model.config.grid, generator)  # the same draws, to keep the stream
    wrong = training.training_losses(model, unturned_references, index, config, generator)["loss"]
    assert not torch.isclose(rotated, wrong)  # the references must turn with the maps
