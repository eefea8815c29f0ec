"""Map ingestion: user maps of any voxel size, box, origin and axis order → the model's grid, and refusals."""

import time

import numpy as np
import pytest
import torch

from conftest import make_helix
from cryosampler.io.mrc import write_map_file
from cryosampler.experiments.user_maps import gridding_around, render_gridded, write_gridded
from cryosampler.ingest import ingest_map, model_scale, resample_to_grid
from cryosampler.physics.correlation import map_correlation
from cryosampler.physics.render import render_density
from cryosampler.io.grid import MapGrid
from cryosampler.io.atomic_files import read_structure

MODEL_GRID = MapGrid(size=64, apix=2.0, resolution=8.0)

# (voxel size Å, box (x, y, z) voxels, axis order MAPC MAPR MAPS, file name, origin stored as N?START)
USER_MAPS = [
    (1.0, (100, 96, 110), (1, 2, 3), "vol_000.mrc", False),
    (1.5, (200, 120, 96), (3, 2, 1), "vol_001.map", True),
    (1.5, (96, 128, 112), (2, 3, 1), "vol_002.ccp4", False),
    (2.7, (96, 104, 100), (3, 1, 2), "vol_003.mrc.gz", False),
]


def write_user_map(path, coords, atomic_numbers, apix, box, axes=(1, 2, 3), use_start=False,
                   shift=(7.3, -4.1, 2.6), resolution=8.0):
    """Render ``coords`` (map frame, Å) at ``resolution`` into a box of ``box`` voxels of ``apix`` Å whose centre
    is the atoms' centroid + ``shift``, and write it as a real map file in axis order ``axes``; the origin is
    stored in ORIGIN, or in N?START if ``use_start``."""
    gridding = gridding_around(coords, apix, box, shift, axes, use_start)
    write_gridded(path, render_gridded(coords, atomic_numbers, gridding, resolution), gridding)


def direct_render(coords, atomic_numbers, grid=MODEL_GRID):
    """The reference rendered straight onto the model grid, centred on its centroid: (D, D, D)."""
    return render_density(torch.tensor(coords - coords.mean(0))[None], torch.tensor(atomic_numbers), grid)[0].numpy()


def helix_in_map_frame():
    st = make_helix(12)
    return st.coords + [31.0, -12.5, 58.25], st.atomic_numbers  # a fitted model sits anywhere in the map's frame


@pytest.fixture(params=["helix", "calmodulin"])
def reference(request, shared_pdb):
    if request.param == "helix":
        return helix_in_map_frame()
    st = read_structure(shared_pdb("1cll.pdb"))
    return st.coords, st.atomic_numbers


@pytest.mark.parametrize("apix, box, axes, name, use_start", USER_MAPS, ids=[m[3] for m in USER_MAPS])
def test_user_maps_ingest_to_the_direct_render(tmp_path, reference, apix, box, axes, name, use_start):
    coords, z = reference
    path = tmp_path / name
    write_user_map(path, coords, z, apix, box, axes, use_start)
    start = time.perf_counter()
    volume, correlation = ingest_map(path, MODEL_GRID, coords, z)
    seconds = time.perf_counter() - start
    r = map_correlation(volume[None], direct_render(coords, z)[None])[0, 0]
    print(f"{name}: {apix} Å, box {box}, axes {axes}: r = {r:.5f}, map–model r = {correlation:.5f}, "
          f"{seconds:.2f} s")
    assert volume.shape == (64, 64, 64) and volume.dtype == np.float32
    assert r >= 0.99 and correlation >= 0.99


def test_downsampling_removes_frequencies_above_the_target_nyquist():
    # A 3 Å-period wave packet on a 1 Å map lies beyond the 2 Å grid's Nyquist (4 Å period): sampled directly it
    # would alias to a 6 Å wave of full amplitude. Its 10 Å Gaussian envelope keeps it off the box edges.
    x = np.arange(160) - 80.0
    packet = np.cos(2 * np.pi * x / 3.0) * np.exp(-x**2 / (2 * 10.0**2))
    volume = np.broadcast_to(packet[:, None, None], (160, 160, 160))
    out = resample_to_grid(volume, 1.0, (-80.0, -80.0, -80.0), MapGrid(size=32, apix=2.0), (0.0, 0.0, 0.0))
    assert np.abs(out).max() < 1e-3


def test_grid_voxels_outside_the_map_are_zero():
    volume = np.ones((40, 40, 40))
    out = resample_to_grid(volume, 1.0, (0.0, -20.0, -20.0), MapGrid(size=16, apix=2.0), (0.0, 0.0, 0.0))
    # Grid x runs -16 … 14 Å; the map covers x = 0 … 39 Å.
    assert np.all(out[:8] == 0) and np.allclose(out[8:], 1.0, atol=1e-5)


def one_line(err) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


def test_zero_voxel_size_is_refused(tmp_path):
    import mrcfile

    coords, z = helix_in_map_frame()
    path = tmp_path / "novoxel.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.ones((8, 8, 8), np.float32))
    with pytest.raises(ValueError, match=r"novoxel.mrc: voxel size is missing or zero") as err:
        ingest_map(path, MODEL_GRID, coords, z)
    one_line(err)


def test_reference_outside_the_map_is_refused(tmp_path):
    coords, z = helix_in_map_frame()
    path = tmp_path / "elsewhere.mrc"
    write_user_map(path, coords, z, 1.0, (96, 96, 96))
    with pytest.raises(ValueError, match=r"elsewhere.mrc: the map does not contain the reference: 60 of 60 atoms") \
            as err:
        ingest_map(path, MODEL_GRID, coords + [80.0, 0.0, 0.0], z)
    one_line(err)


@pytest.mark.parametrize("move", ["shift 3 Å", "turn 30°", "other map"])
def test_model_not_fitted_into_the_map_is_refused(tmp_path, move):
    coords, z = helix_in_map_frame()
    path = tmp_path / "unfitted.mrc"
    centroid = coords.mean(0)
    if move != "other map":
        write_user_map(path, coords, z, 1.0, (96, 96, 96))
    if move == "shift 3 Å":
        moved = coords + [1.8, -1.8, 1.5]
    elif move == "turn 30°":
        c, s = np.cos(np.pi / 6), np.sin(np.pi / 6)
        moved = (coords - centroid) @ np.array([[1, 0, 0], [0, c, -s], [0, s, c]]).T + centroid
    else:  # a different structure's map: the helix placed 20 Å away from the one the map shows
        write_user_map(path, coords + [20.0, 0.0, 0.0], z, 1.0, (96, 96, 96), shift=(-12.0, 0.0, 0.0))
        moved = coords
    with pytest.raises(ValueError, match=r"unfitted.mrc: the reference is not fitted into the map .*; fit the model "
                                         r"into the map first, e.g. with ChimeraX fitmap(, or, if the map is of "
                                         r"another conformation than the reference, pass --skip-fit-probes "
                                         r"\(command line\))?$") as err:
        ingest_map(path, MODEL_GRID, moved, z)
    one_line(err)


def test_blank_map_is_refused(tmp_path):
    coords, z = helix_in_map_frame()
    path = tmp_path / "blank.mrc"
    write_map_file(path, np.zeros((96, 96, 96)), 1.0, origin=tuple(coords.mean(0) - 48.0))
    with pytest.raises(ValueError, match=r"blank.mrc: the map is zero around the reference"):
        ingest_map(path, MODEL_GRID, coords, z)


def test_box_centre_is_placed_where_the_caller_says(tmp_path):
    coords, z = helix_in_map_frame()
    path = tmp_path / "vol.mrc"
    write_user_map(path, coords, z, 1.5, (96, 100, 104), axes=(2, 1, 3))
    centre = coords.mean(0) + [6.0, -4.0, 2.0]
    volume, _ = ingest_map(path, MODEL_GRID, coords, z, centre=centre)
    expected = render_density(torch.tensor(coords - centre)[None], torch.tensor(z), MODEL_GRID)[0].numpy()
    assert map_correlation(volume[None], expected[None])[0, 0] >= 0.99


def test_reference_larger_than_the_model_box_is_refused(tmp_path):
    st = make_helix(30)  # 45 Å long, the 16 × 2 Å box holds 32 Å
    path = tmp_path / "long.mrc"
    write_user_map(path, st.coords, st.atomic_numbers, 1.0, (96, 96, 96))
    with pytest.raises(ValueError, match=r"long.mrc: the reference: atoms span .* the model's box cannot hold it") \
            as err:
        ingest_map(path, MapGrid(size=16, apix=2.0), st.coords, st.atomic_numbers)
    one_line(err)


def test_model_scale_brings_a_map_to_the_renderer_units():
    coords, numbers = helix_in_map_frame()
    model = coords - coords.mean(0)
    rendered = direct_render(coords, numbers)
    assert model_scale(0.25 * rendered, model, numbers, MODEL_GRID) == pytest.approx(4.0, rel=1e-6)
