"""Sampling: DDIM + read-out are deterministic given a generator; references are validated and placed."""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from cryosampler.featurize import featurize
from cryosampler.sampling import prepare_reference, sample_ensemble, sample_structure

from conftest import make_helix, tiny_model


def test_ddim_with_a_fixed_generator_is_deterministic(tiny_structure):
    model = tiny_model(tiny_structure)
    protein = featurize(tiny_structure, tiny_structure.coords)
    a = sample_ensemble(model, protein, 3, torch.Generator().manual_seed(1), batch_size=2, n_steps=4)
    b = sample_ensemble(model, protein, 3, torch.Generator().manual_seed(1), batch_size=2, n_steps=4)
    c = sample_ensemble(model, protein, 3, torch.Generator().manual_seed(2), batch_size=2, n_steps=4)
    assert a.coords.shape == (3, tiny_structure.n_atoms, 3) and a.maps.shape == (3, 16, 16, 16)
    np.testing.assert_array_equal(a.coords, b.coords)
    np.testing.assert_array_equal(a.maps, b.maps)
    assert not np.allclose(a.coords, c.coords)


def test_samples_come_back_in_the_input_frame(tiny_structure):
    model = tiny_model(tiny_structure)
    rotation = Rotation.from_euler("xyz", [30, 60, 90], degrees=True).as_matrix()
    moved = tiny_structure.with_coords(tiny_structure.coords @ rotation.T + [100.0, -50.0, 20.0])
    direct, _ = sample_structure(model, tiny_structure, 2, seed=0, n_steps=3)
    placed, _ = sample_structure(model, moved, 2, seed=0, n_steps=3)
    # The same protein in another frame gives the same samples, moved by the same rigid motion.
    np.testing.assert_allclose(placed, direct @ rotation.T + [100.0, -50.0, 20.0], atol=1e-3)


def test_reference_outside_the_box_is_rejected(tiny_structure):
    model = tiny_model(tiny_structure)
    long_chain = make_helix(30, "long")  # 45 Å long: does not fit the 32 Å box
    with pytest.raises(ValueError, match="box"):
        prepare_reference(model, long_chain)


def test_reference_unrelated_to_the_template_is_rejected(tiny_structure):
    model = tiny_model(tiny_structure)
    with pytest.raises(ValueError, match="residue numbers"):
        prepare_reference(model, make_helix(first_residue=501))
