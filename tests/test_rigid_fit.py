"""The rigid-body fit of atoms into a map: it finds the motion that misplaced a model, and its optimum is the
rendered map–model correlation's."""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from conftest import make_two_domains
from cryosampler.io.grid import MapGrid
from cryosampler.physics.correlation import map_correlation
from cryosampler.physics.render import render_density
from cryosampler.physics.rigid_fit import rigid_fit

GRID = MapGrid()  # the model's: 64³ × 2 Å, 8 Å


def render(coords, numbers):
    return render_density(torch.tensor(coords)[None], torch.tensor(numbers), GRID)[0].numpy()


def turned(coords, rotvec_degrees):
    """coords (N, 3) turned about their centroid by a rotation vector given in degrees."""
    centroid = coords.mean(0)
    return Rotation.from_rotvec(rotvec_degrees, degrees=True).apply(coords - centroid) + centroid


def rms(a, b):
    return float(np.sqrt(np.square(a - b).sum(1).mean()))


def test_a_model_in_its_own_map_does_not_move():
    structure, _ = make_two_domains()
    fit = rigid_fit(render(structure.coords, structure.atomic_numbers), structure.coords, structure.atomic_numbers,
                    GRID)
    assert fit.shift < 0.1 and fit.turn < 0.5 and fit.displacement < 0.1


@pytest.mark.parametrize("move", ["shift 5 Å", "turn 15°"])
def test_a_misplaced_model_is_moved_back(move):
    structure, _ = make_two_domains()
    coords, numbers = structure.coords, structure.atomic_numbers
    moved = coords + [0.0, 3.0, 4.0] if move == "shift 5 Å" else turned(coords, [0.0, 15.0, 0.0])
    fit = rigid_fit(render(coords, numbers), moved, numbers, GRID)
    assert rms(fit.transform.apply(moved), coords) < 0.2
    assert fit.displacement == pytest.approx(rms(moved, coords), abs=0.2)
    if move == "shift 5 Å":
        assert fit.shift == pytest.approx(5.0, abs=0.1) and fit.turn < 1.0
    else:
        assert fit.shift < 0.2 and fit.turn == pytest.approx(15.0, abs=0.5)


def test_the_optimum_is_that_of_the_rendered_correlation():
    # A map of another conformation (the second domain moved), where the optimum is a compromise: the rendered
    # correlation at the fit beats every small move away from it.
    structure, second = make_two_domains()
    coords, numbers = structure.coords, structure.atomic_numbers
    state = coords.copy()
    state[second] = turned(coords[second], [0.0, 20.0, 0.0])
    volume = render(state, numbers)
    fitted = rigid_fit(volume, coords, numbers, GRID).transform.apply(coords)

    def r(x):
        return map_correlation(volume[None], render(x, numbers)[None])[0, 0]

    nudges = [fitted + step * axis for axis in np.eye(3) for step in (-0.5, 0.5)]
    nudges += [turned(fitted, step * axis) for axis in np.eye(3) for step in (-2.0, 2.0)]
    assert r(fitted) > r(coords)
    assert r(fitted) >= max(r(x) for x in nudges) - 1e-4


def test_a_constant_map_is_refused():
    structure, _ = make_two_domains()
    with pytest.raises(ValueError, match="the map is constant"):
        rigid_fit(np.ones((64, 64, 64)), structure.coords, structure.atomic_numbers, GRID)
