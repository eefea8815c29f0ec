"""MRC I/O: round trips, axis order, origin vs start indices, CCP4/gzip files, refusals; checked from raw headers
written with mrcfile."""

import mrcfile
import numpy as np
import pytest

import cryosampler.io.mrc
from cryosampler.io.mrc import read_mrc, write_map_file, write_mrc
from cryosampler.io.grid import MapGrid


def test_round_trip_values_apix_origin(tmp_path):
    grid = MapGrid(size=10, apix=1.5)
    volume = np.random.default_rng(0).normal(size=(10, 10, 10)).astype(np.float32)
    path = tmp_path / "map.mrc"
    write_mrc(path, volume, grid, origin=(3.0, -2.5, 7.25))
    back, apix, origin = read_mrc(path)
    np.testing.assert_array_equal(back, volume)
    assert back.dtype == np.float32
    assert apix == 1.5
    assert origin == (3.0, -2.5, 7.25)


def test_default_origin_is_the_grid_origin(tmp_path):
    grid = MapGrid(size=8, apix=2.0)
    write_mrc(tmp_path / "map.mrc", np.zeros((8, 8, 8)), grid)
    assert read_mrc(tmp_path / "map.mrc")[2] == (-8.0, -8.0, -8.0)


def test_bright_voxel_keeps_its_index_and_position(tmp_path):
    grid = MapGrid(size=8, apix=2.0)
    i, j, k = 1, 5, 3
    volume = np.zeros((8, 8, 8), np.float32)
    volume[i, j, k] = 1.0
    path = tmp_path / "map.mrc"
    write_mrc(path, volume, grid, origin=grid.origin)

    back, _, _ = read_mrc(path)
    assert np.unravel_index(back.argmax(), back.shape) == (i, j, k)

    # Independently: raw mrcfile data is [section, row, column] = [z, y, x]; a viewer places column c of
    # row r of section s at ORIGIN + (NXSTART + c, NYSTART + r, NZSTART + s) * voxel size.
    with mrcfile.open(path) as mrc:
        s, r, c = np.unravel_index(mrc.data.argmax(), mrc.data.shape)
        h, v = mrc.header, mrc.voxel_size
        assert (int(h.mapc), int(h.mapr), int(h.maps)) == (1, 2, 3)
        position = (float(h.origin.x) + (int(h.nxstart) + c) * float(v.x),
                    float(h.origin.y) + (int(h.nystart) + r) * float(v.y),
                    float(h.origin.z) + (int(h.nzstart) + s) * float(v.z))
    expected = tuple(o + n * grid.apix for o, n in zip(grid.origin, (i, j, k)))
    assert position == pytest.approx(expected)
    assert expected == pytest.approx((-6.0, 2.0, -2.0))


def test_accepts_torch_volumes(tmp_path):
    torch = pytest.importorskip("torch")
    grid = MapGrid(size=4)
    volume = torch.arange(64, dtype=torch.float64).reshape(4, 4, 4).requires_grad_()
    write_mrc(tmp_path / "map.mrc", volume, grid)
    np.testing.assert_array_equal(read_mrc(tmp_path / "map.mrc")[0], volume.detach().numpy())


@pytest.mark.parametrize("shape", [(8, 8, 7), (8, 8), (6, 6, 6)])
def test_wrong_shape_raises(tmp_path, shape):
    with pytest.raises(ValueError, match=r"\(8, 8, 8\)"):
        write_mrc(tmp_path / "map.mrc", np.zeros(shape), MapGrid(size=8))
    assert list(tmp_path.iterdir()) == []


def test_non_finite_volume_raises(tmp_path):
    volume = np.zeros((4, 4, 4))
    volume[1, 2, 3] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        write_mrc(tmp_path / "map.mrc", volume, MapGrid(size=4))


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "absent.mrc"
    with pytest.raises(ValueError, match="absent.mrc"):
        read_mrc(path)


def test_corrupt_file_names_the_path(tmp_path):
    path = tmp_path / "junk.mrc"
    path.write_bytes(b"not a map" * 200)
    with pytest.raises(ValueError, match="junk.mrc"):
        read_mrc(path)


@pytest.mark.parametrize("damage", ["truncated gzip", "corrupt gzip"])
def test_damaged_compressed_map_names_the_path(tmp_path, damage):
    import gzip
    good = tmp_path / "good.mrc"
    write_mrc(good, np.ones((8, 8, 8)), MapGrid(size=8))
    packed = gzip.compress(good.read_bytes())
    path = tmp_path / "vol_000.mrc.gz"
    path.write_bytes(packed[: len(packed) // 2] if damage == "truncated gzip" else packed[:10] + b"\xff" * 40)
    with pytest.raises(ValueError, match="vol_000.mrc.gz: not a readable MRC map"):
        read_mrc(path)


def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    grid = MapGrid(size=4)
    path = tmp_path / "map.mrc"
    write_mrc(path, np.ones((4, 4, 4)), grid)

    def failing_new(name, *args, **kwargs):
        with open(name, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(cryosampler.io.mrc.mrcfile, "new", failing_new)
    with pytest.raises(OSError, match="disk full"):
        write_mrc(path, np.zeros((4, 4, 4)), grid)
    assert [p.name for p in tmp_path.iterdir()] == ["map.mrc"]
    np.testing.assert_array_equal(read_mrc(path)[0], np.ones((4, 4, 4)))


def test_subnormal_values_are_read_as_zero(tmp_path):
    # A map with subnormal floats would make every later operation on it slow (render.py); they carry no density.
    volume = np.full((4, 4, 4), 1e-40, dtype=np.float32)
    volume[1, 2, 3] = 2.5
    path = tmp_path / "tiny.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(volume.transpose(2, 1, 0).copy())
        mrc.voxel_size = 2.0
    read, _, _ = read_mrc(path)
    assert read[1, 2, 3] == 2.5 and np.count_nonzero(read) == 1


@pytest.mark.parametrize("axes", [(1, 2, 3), (3, 2, 1), (2, 1, 3), (2, 3, 1), (3, 1, 2), (1, 3, 2)])
def test_axis_order_is_transposed_to_xyz(tmp_path, axes):
    volume = np.random.default_rng(1).normal(size=(5, 6, 7)).astype(np.float32)
    path = tmp_path / "swapped.map"
    write_map_file(path, volume, 1.5, axes=axes, start=(2, -3, 4))
    back, apix, origin = read_mrc(path)
    np.testing.assert_array_equal(back, volume)
    assert apix == 1.5
    # ORIGIN is zero, so the start indices place the box, each along its own spatial axis.
    assert origin == pytest.approx((3.0, -4.5, 6.0))


def test_header_origin_wins_over_start_indices(tmp_path):
    path = tmp_path / "both.mrc"
    write_map_file(path, np.ones((4, 4, 4)), 2.0, origin=(10.0, 0.0, -5.0), start=(7, 7, 7))
    assert read_mrc(path)[2] == (10.0, 0.0, -5.0)


@pytest.mark.parametrize("name", ["map.ccp4", "map.map", "map.mrc.gz"])
def test_reads_ccp4_map_and_gzip_files(tmp_path, name):
    volume = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
    write_map_file(tmp_path / name, volume, 1.06, origin=(1.0, 2.0, 3.0))
    back, apix, origin = read_mrc(tmp_path / name)
    np.testing.assert_array_equal(back, volume)
    assert apix == pytest.approx(1.06) and origin == (1.0, 2.0, 3.0)


def test_zero_voxel_size_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "novoxel.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.ones((4, 4, 4), np.float32))  # the cell stays 0 Å: no voxel size
    with pytest.raises(ValueError, match=r"novoxel.mrc: voxel size is missing or zero") as err:
        read_mrc(path)
    assert "\n" not in str(err.value)


def test_non_cubic_voxels_are_refused(tmp_path):
    path = tmp_path / "aniso.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.ones((4, 4, 4), np.float32))
        mrc.voxel_size = (1.0, 1.0, 1.2)
    with pytest.raises(ValueError, match=r"aniso.mrc: voxels must be cubic"):
        read_mrc(path)


def test_damaged_axis_order_is_refused(tmp_path):
    path = tmp_path / "damaged.mrc"
    write_map_file(path, np.ones((4, 4, 4)), 1.0)
    with mrcfile.open(path, mode="r+", permissive=True) as mrc:
        mrc.header.maps = 1
    with pytest.raises(ValueError, match=r"damaged.mrc: .*(permutation|not a readable)"):
        read_mrc(path)


@pytest.mark.filterwarnings("ignore:Data array contains NaN:RuntimeWarning")  # mrcfile, on writing the test map
@pytest.mark.parametrize("name", ["holes.mrc", "holes.mrc.gz"])
def test_nan_or_infinite_voxels_are_refused_with_their_count(tmp_path, name):
    volume = np.ones((128, 128, 128), np.float32)
    volume[0, :10, 0] = np.nan
    volume[3, 4, 5], volume[6, 7, 8] = np.inf, -np.inf
    write_map_file(tmp_path / name, volume, 1.0)
    with pytest.raises(ValueError, match=rf"{name}: the map has 12 NaN/infinite voxels of 2,097,152; replace them "
                                         r"\(e.g. by 0, with numpy.nan_to_num\) and retry$") as err:
        read_mrc(tmp_path / name)
    assert "\n" not in str(err.value)


def test_a_gz_name_on_a_file_that_is_not_gzip_is_called_so(tmp_path):
    path = tmp_path / "vol.mrc.gz"
    path.write_text("not a map at all\n" * 100)
    with pytest.raises(ValueError, match=rf"{path}: not a gzip file, although its name ends in \.gz"):
        read_mrc(path)
