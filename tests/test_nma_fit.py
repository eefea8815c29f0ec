"""Normal-mode flexible fitting: it recovers the amplitude of a mode that made a map, and refuses bad input."""

import numpy as np
import pytest
import torch

from cryosampler.io.grid import MapGrid
from cryosampler.physics.nma import anm_modes
from cryosampler.physics.nma_fit import NMA_FIT_PRESETS, NmaFitConfig, nma_fit
from cryosampler.physics.render import render_density
from cryosampler.physics.superpose import rmsd

from conftest import make_two_domains

GRID = MapGrid(size=32, apix=2.0, resolution=8.0)


def test_the_fit_recovers_the_amplitude_of_the_mode_that_made_the_map():
    structure, _ = make_two_domains()
    modes, _ = anm_modes(structure, 3)
    amplitude = 1.5  # Å RMSD along the second mode alone
    truth = structure.coords + np.sqrt(structure.n_atoms) * amplitude * modes[1]
    volume = render_density(torch.tensor(truth)[None], torch.tensor(structure.atomic_numbers), GRID)[0].numpy()
    result = nma_fit(structure, structure.coords, volume, GRID, NmaFitConfig(modes=3, rounds=1, steps=20))
    np.testing.assert_allclose(result.amplitudes, [[0.0, amplitude, 0.0]], atol=0.05)
    assert rmsd(result.coords, truth) < 0.1 < rmsd(structure.coords, truth)
    assert result.correlation_end > 0.999 > result.correlation_start
    assert list(result.log.columns) == ["round", "step", "correlation"] and len(result.log) == 20


def test_more_rounds_recompute_the_modes_and_the_fit_is_deterministic():
    structure, _ = make_two_domains()
    volume = render_density(torch.tensor(structure.coords + [1.0, 0.0, 0.0])[None],
                            torch.tensor(structure.atomic_numbers), GRID)[0].numpy()
    config = NmaFitConfig(modes=2, rounds=2, steps=3)
    first, second = (nma_fit(structure, structure.coords, volume, GRID, config) for _ in range(2))
    np.testing.assert_array_equal(first.coords, second.coords)
    assert first.amplitudes.shape == (2, 2) and list(first.log["round"]) == [1, 1, 1, 2, 2, 2]


@pytest.mark.parametrize("case", ["coords", "volume", "constant", "config"])
def test_bad_input_is_a_one_line_value_error(case):
    structure, _ = make_two_domains()
    volume, coords = np.random.default_rng(0).normal(size=(GRID.size,) * 3), structure.coords
    if case == "coords":
        coords, expected = coords[:-1], "coords0 must be"
    elif case == "volume":
        volume, expected = volume[:-1], "volume must be"
    elif case == "constant":
        volume, expected = np.zeros_like(volume), "the map is constant"
    else:
        with pytest.raises(ValueError, match="NmaFitConfig.modes must be a positive int"):
            NmaFitConfig(modes=0)
        return
    with pytest.raises(ValueError, match=expected):
        nma_fit(structure, coords, volume, GRID, NMA_FIT_PRESETS["smoke"])
