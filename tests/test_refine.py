"""Real-space refinement: it converges to the structure a map shows, removes a clash, keeps the reference's bonds,
and refuses bad input."""

import dataclasses

import numpy as np
import pytest
import torch

from cryosampler.evaluation.validate import CLASH_CUTOFF, sample_validity
from cryosampler.io.grid import MapGrid
from cryosampler.physics.render import render_density
from cryosampler.physics.superpose import rmsd
from cryosampler.refine import REFINE_PRESETS, RefineConfig, clash_pairs, refine

from conftest import make_helix, make_two_domains

GRID = MapGrid(size=32, apix=2.0, resolution=8.0)


def render(coords: np.ndarray, atomic_numbers: np.ndarray, grid: MapGrid = GRID) -> np.ndarray:
    return render_density(torch.tensor(coords)[None], torch.tensor(atomic_numbers), grid)[0].numpy()


def smooth_displacement(coords: np.ndarray, amount: float, wavelength: float = 40.0) -> np.ndarray:
    """A displacement field (N, 3) Å that varies over ``wavelength`` Å (bonds barely stretch), ``amount`` Å RMS."""
    k = 2 * np.pi / wavelength
    field = np.stack([np.sin(k * coords[:, 1] + 0.3), np.cos(k * coords[:, 2] - 0.5),
                      np.sin(k * coords[:, 0] + 1.1)], axis=1) + [0.4, -0.3, 0.2]
    return field * amount / np.sqrt((field ** 2).sum(1).mean())


def test_refinement_converges_to_the_structure_of_a_synthetic_map_from_3_angstrom_away():
    structure, _ = make_two_domains()
    volume = render(structure.coords, structure.atomic_numbers)
    start = structure.coords + smooth_displacement(structure.coords, 3.0)  # every atom moved, 3 Å RMS
    assert rmsd(start, structure.coords) > 2.4  # most of it is not rigid: superposition takes out little
    result = refine(start, structure, volume, GRID)
    assert rmsd(result.coords, structure.coords) < 0.3
    assert result.correlation_end > result.correlation_start and result.correlation_end > 0.999
    log = result.log
    assert list(log["step"]) == list(range(RefineConfig().steps + 1))
    assert log["loss"].iloc[-1] < log["loss"].iloc[0] and log["correlation"].iloc[-1] == result.correlation_end


def test_refinement_is_deterministic_and_zero_steps_leave_the_start():
    structure = make_helix(12)
    volume = render(structure.coords + [1.0, 0.0, 0.0], structure.atomic_numbers)
    config = dataclasses.replace(REFINE_PRESETS["smoke"], steps=5)
    first, second = (refine(structure.coords, structure, volume, GRID, config) for _ in range(2))
    np.testing.assert_array_equal(first.coords, second.coords)
    assert first.log.equals(second.log) and len(first.log) == 6
    still = refine(structure.coords, structure, volume, GRID, RefineConfig(steps=0))
    np.testing.assert_allclose(still.coords, structure.coords, atol=1e-5)
    assert still.correlation_start == still.correlation_end


def test_stages_before_the_last_render_no_sharper_than_the_coarse_resolution():
    structure = make_helix(12)
    sharp = dataclasses.replace(GRID, resolution=4.0)
    volume = render(structure.coords + [1.0, 0.0, 0.0], structure.atomic_numbers, sharp)
    config = RefineConfig(steps=4, stages=(0.5, 1.0), coarse_resolution=8.0)
    coarse = refine(structure.coords, structure, volume, sharp, config).log
    at_map = refine(structure.coords, structure, volume, sharp, dataclasses.replace(config, coarse_resolution=0.0))
    # Step 1 starts from the same model: only the resolution of the first stage's render differs.
    assert at_map.log["correlation"].iloc[0] == pytest.approx(at_map.correlation_start)
    assert abs(coarse["correlation"].iloc[0] - at_map.correlation_start) > 0.05


def test_the_clash_term_removes_a_planted_clash():
    structure, _ = make_two_domains()
    # Move one helix of the second domain onto the core until atoms of residues far apart overlap.
    moved = structure.coords.copy()
    helix = slice(24 * 5 * 4, 24 * 5 * 5)  # residues 97–120 (5 atoms per residue)
    moved[helix] += [-12.5, 0.0, 0.0]
    before = sample_validity(moved[None], structure).loc[0, "clashes"]
    assert before > 0
    volume = render(moved, structure.atomic_numbers)  # the map shows the clash too: only the clash term objects
    config = RefineConfig(steps=30)
    with_term = refine(moved, structure, volume, GRID, config)
    without = refine(moved, structure, volume, GRID, dataclasses.replace(config, clash_weight=0.0))
    assert sample_validity(with_term.coords[None], structure).loc[0, "clashes"] == 0
    assert sample_validity(without.coords[None], structure).loc[0, "clashes"] > 0
    assert len(clash_pairs(moved, structure.res_nums, CLASH_CUTOFF)) == before


def test_restraints_keep_the_reference_bonds_where_the_map_pulls_apart():
    structure = make_helix(12)
    # A map of the helix stretched by 20 % along its axis: the map alone would stretch every bond.
    stretched = structure.coords * [1.0, 1.0, 1.2]
    volume = render(stretched, structure.atomic_numbers)
    config = RefineConfig(steps=40)
    held = refine(structure.coords, structure, volume, GRID, config)
    free = refine(structure.coords, structure, volume, GRID,
                  dataclasses.replace(config, residue_weight=0.0, backbone_weight=0.0, bond_weight=0.0))
    bonds_held = sample_validity(held.coords[None], structure).loc[0, "bond_dev_rmsd"]
    bonds_free = sample_validity(free.coords[None], structure).loc[0, "bond_dev_rmsd"]
    assert bonds_held < 0.05 < bonds_free
    assert free.correlation_end > held.correlation_end  # the restraints cost some fit, as they should


@pytest.mark.parametrize("case", ["coords", "volume", "constant", "config"])
def test_bad_input_is_a_one_line_value_error(case):
    structure = make_helix(12)
    volume, coords = render(structure.coords, structure.atomic_numbers), structure.coords
    if case == "coords":
        coords, expected = coords[:-1], "coords0 must be"
    elif case == "volume":
        volume, expected = volume[:-1], "volume must be"
    elif case == "constant":
        volume, expected = np.ones_like(volume), "the map is constant"
    else:
        with pytest.raises(ValueError, match="RefineConfig.clash_weight must be"):
            RefineConfig(clash_weight=-1.0)
        return
    with pytest.raises(ValueError, match=expected):
        refine(coords, structure, volume, GRID, REFINE_PRESETS["smoke"])
