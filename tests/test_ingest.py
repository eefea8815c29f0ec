"""Map ingestion: user maps of any voxel size, box, origin and axis order → the model's grid, and refusals."""

import time

import numpy as np
import pytest
import torch

from conftest import make_helix, make_two_domains
from cryosampler.io.mrc import read_mrc, write_map_file
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


def test_a_masked_map_stays_masked_on_the_grid_and_reads_as_clean():
    """EMDB maps are often masked: exact zeros outside a mask. The filter and the splines of downsampling spread
    density into them; they must stay exactly 0 there, or the read-out measures that ringing as noise (found on
    EMD-21457, a clean 3.2 Å map that read at σ/α = 2.7)."""
    from cryosampler.model.diffusion import DiffusionConfig
    from cryosampler.readout import matched_time

    coords, z = helix_in_map_frame()
    apix, box = 1.05, 80
    origin = coords.mean(0) - box // 2 * apix
    axis = origin[:, None] + np.arange(box)[None] * apix  # (3, box) Å
    points = np.stack(np.meshgrid(*axis, indexing="ij"), -1)  # (box, box, box, 3)
    near = np.min(np.linalg.norm(points[..., None, :] - coords[::4], axis=-1), axis=-1) < 6.0  # a 6 Å zone mask
    noise = np.random.default_rng(0).normal(size=near.shape)
    volume = np.where(near, 1.0 + noise, 0.0)  # noisy inside the mask, exactly 0 outside
    grid = MapGrid(size=32, apix=2.0)
    out = resample_to_grid(volume, apix, origin, grid, coords.mean(0))
    cells = coords.mean(0) + (np.stack(np.indices((32,) * 3), -1) - 16) * grid.apix  # (32, 32, 32, 3) Å
    # Grid points whose eight nearest map voxels (within √3·1.05 Å) all lie outside the mask.
    far = np.min(np.linalg.norm(cells[..., None, :] - coords[::4], axis=-1), axis=-1) > 6.0 + 2 * apix
    assert far.mean() > 0.5 and np.all(out[far] == 0) and np.any(out[~far] != 0)
    rendered = render_density(torch.tensor(coords - coords.mean(0))[None], torch.tensor(z), grid)[0]
    assert float(matched_time(torch.as_tensor(out), rendered, DiffusionConfig())) == 0.0


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


NOT_PLACED = (r"unfitted.mrc: the reference is not placed in the map: a rigid-body fit moves it \S+ Å / \S+° "
              r"\(\S+ Å RMS over its atoms, more than 3\); fit it into the map first \(e.g. ChimeraX fitmap\), then "
              r"retry; for a map of a far conformation superposed on all atoms rather than on a rigid core, pass "
              r"--allow-far-conformation \(command line\)$")


def two_domains_in_map_frame():
    structure, second = make_two_domains()
    return structure.coords + [31.0, -12.5, 58.25], structure, second


def turned(coords, degrees, about):
    """coords (N, 3) turned by ``degrees`` about the y axis through ``about`` (3,)."""
    c, s = np.cos(np.deg2rad(degrees)), np.sin(np.deg2rad(degrees))
    return (coords - about) @ np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]).T + about


@pytest.mark.parametrize("move", ["shift 5 Å", "turn 15°"])
def test_a_reference_not_placed_in_the_map_is_refused(tmp_path, move):
    coords, structure, _ = two_domains_in_map_frame()
    path = tmp_path / "unfitted.mrc"
    write_user_map(path, coords, structure.atomic_numbers, 1.5, (80, 80, 80))
    moved = coords + [0.0, 3.0, 4.0] if move == "shift 5 Å" else turned(coords, 15.0, coords.mean(0))
    with pytest.raises(ValueError, match=NOT_PLACED) as err:
        ingest_map(path, MODEL_GRID, moved, structure.atomic_numbers)
    one_line(err)


def test_a_map_of_another_conformation_is_accepted(tmp_path):
    # The second domain turned about a hinge at the domains' lower edge, the core in place (as particles aligned
    # on the rigid part put it): a state 4 Å from the reference.
    coords, structure, second = two_domains_in_map_frame()
    hinge = np.array([coords[~second, 0].max(), coords[:, 1].mean(), coords[:, 2].min()])
    state = coords.copy()
    state[second] = turned(coords[second], 15.0, hinge)
    assert np.sqrt(np.square(state - coords).sum(1).mean()) == pytest.approx(4.0, abs=0.25)
    path = tmp_path / "other_state.mrc"
    write_user_map(path, state, structure.atomic_numbers, 1.5, (80, 80, 80))
    _, correlation = ingest_map(path, MODEL_GRID, coords, structure.atomic_numbers)
    assert correlation < 0.95  # another conformation indeed


def test_calmodulin_4_angstrom_states_are_accepted(tmp_path, shared_pdb):
    """4CLN's ANM states 4 Å from it, notebook 01's training maps: a rigid-body fit turns the reference by about
    10° after the lobes' twist, but moves its atoms only about 2 Å."""
    from cryosampler.physics.nma import simulate_motion

    reference = read_structure(shared_pdb("4cln.pdb"))
    motion = simulate_motion(reference)
    for name, state in (("state_a.mrc", motion.state_a), ("state_b.mrc", motion.state_b)):
        write_user_map(tmp_path / name, state, reference.atomic_numbers, 1.5, (100, 100, 100))
        ingest_map(tmp_path / name, MODEL_GRID, reference.coords, reference.atomic_numbers)


def test_another_structure_s_map_is_refused(tmp_path):
    coords, z = helix_in_map_frame()
    path = tmp_path / "unfitted.mrc"
    # The helix placed 20 Å away from the one the map shows.
    write_user_map(path, coords + [20.0, 0.0, 0.0], z, 1.0, (96, 96, 96), shift=(-12.0, 0.0, 0.0))
    with pytest.raises(ValueError, match=r"unfitted.mrc: the reference is not (fitted into|placed in) the map") as err:
        ingest_map(path, MODEL_GRID, coords, z)
    one_line(err)


def write_clipped_map(path, coords, atomic_numbers, share) -> np.ndarray:
    """Write ``coords`` (N, 3) Å rendered into a map whose box leaves out the ``share`` of the atoms (or the
    next few more, where atoms tie) farthest along x; return which atoms it leaves out, (N,) bool."""
    apix = 1.5
    extent = np.ptp(coords, 0) + 20.0  # Å, a margin of 10 Å beyond the atoms
    box = tuple(int(b) for b in np.ceil(extent / apix))
    gridding = gridding_around(coords, apix, box)
    x = np.unique(coords[:, 0])[::-1]  # distinct values, largest first
    k = int(np.argmax([(coords[:, 0] >= v).sum() >= share * len(coords) for v in x]))
    edge = (x[k] + x[k + 1]) / 2  # Å, where the box's last voxel centre along x goes
    delta = np.array([edge - (gridding.corner[0] + box[0] - 1) * apix, 0.0, 0.0])
    volume = render_gridded(coords - delta, atomic_numbers, gridding, 8.0)
    write_map_file(path, volume, apix, origin=tuple(np.array(gridding.corner) * apix + delta))
    return coords[:, 0] > edge


def expand(ranges: str) -> list[int]:
    """"1–3, 7" → [1, 2, 3, 7]."""
    numbers = []
    for part in ranges.split(", "):
        first, _, last = part.partition("–")
        numbers += range(int(first), int(last or first) + 1)
    return numbers


def test_a_box_that_clips_a_few_atoms_is_accepted_with_a_warning(tmp_path):
    path = tmp_path / "clipped.mrc"
    coords, structure, _ = two_domains_in_map_frame()
    outside = write_clipped_map(path, coords, structure.atomic_numbers, 0.01)
    count = int(outside.sum())
    assert 0.01 <= count / len(coords) <= 0.02
    with pytest.warns(UserWarning, match=rf"clipped.mrc: {count} of 720 atoms of the reference lie outside the map's "
                                         r"box \(residues ([\d–, ]+)\); they meet no density there") as record:
        volume, correlation = ingest_map(path, MODEL_GRID, coords, structure.atomic_numbers,
                                         res_nums=structure.res_nums)
    message = str(record[0].message)
    assert "\n" not in message
    named = expand(message.split("(residues ")[1].split(")")[0])
    assert named == sorted(set(structure.res_nums[outside]))
    # The model's grid beyond the map's box (which ends before the first atom left out) is zero.
    beyond = (np.arange(64) - 32) * 2.0 + coords.mean(0)[0] > coords[outside, 0].min()
    assert beyond.any() and np.all(volume[beyond] == 0) and np.any(volume[~beyond]) and correlation > 0.9


def test_a_box_that_clips_more_than_2_percent_is_refused(tmp_path):
    path = tmp_path / "clipped.mrc"
    coords, structure, _ = two_domains_in_map_frame()
    outside = write_clipped_map(path, coords, structure.atomic_numbers, 0.05)
    assert outside.mean() >= 0.05
    with pytest.raises(ValueError, match=rf"clipped.mrc: the map does not contain the reference: {outside.sum()} of "
                                         r"720 atoms lie outside its box \(.*\), more than the 2% allowed") as err:
        ingest_map(path, MODEL_GRID, coords, structure.atomic_numbers, res_nums=structure.res_nums)
    one_line(err)


@pytest.mark.filterwarnings("ignore:Data array contains NaN:RuntimeWarning")  # mrcfile, on writing the test map
def test_a_map_with_nan_or_infinite_voxels_is_refused(tmp_path):
    coords, z = helix_in_map_frame()
    path = tmp_path / "holes.mrc"
    write_user_map(path, coords, z, 2.0, (32, 32, 32))
    volume, apix, origin = read_mrc(path)
    volume[0, :3, 0] = np.nan
    volume[5, 5, 5] = np.inf
    write_map_file(path, volume, apix, origin)
    with pytest.raises(ValueError, match=r"holes.mrc: the map has 4 NaN/infinite voxels of 32,768; replace them") \
            as err:
        ingest_map(path, MODEL_GRID, coords, z)
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
