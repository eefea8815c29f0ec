"""Real EMDB maps with their deposited models (ccpem-utils' test data): the download cache, and ``train`` and
``fit`` run on one of them as a user would."""

import pandas as pd
import pytest

import cryosampler.cli as cli
from cryosampler.experiments import experimental_maps
from cryosampler.experiments.downloads import DownloadUnavailable
from cryosampler.experiments.experimental_maps import FILES, experimental_map_files

FAST = ["--steps", "1", "--batch-size", "1", "--preset", "smoke", "--device", "cpu", "--quiet"]


def test_missing_files_name_the_cache_and_the_pip_command(tmp_path):
    with pytest.raises(DownloadUnavailable, match=r"not found; download it with: python -m pip download --no-deps "
                                         r"ccpem-utils==0\.0\.1\.dev34 -d .*experimental_maps"):
        experimental_maps.experimental_map_files(tmp_path, download=False)
    assert not (tmp_path / "experimental_maps").exists()


def test_a_wheel_with_another_sha256_is_refused_in_one_line_and_leaves_no_files(tmp_path):
    folder = tmp_path / "experimental_maps"
    folder.mkdir()
    (folder / experimental_maps.WHEEL_NAME).write_bytes(b"not the wheel")
    with pytest.raises(ValueError, match=r"ccpem_utils-0\.0\.1\.dev34-py3-none-any\.whl: SHA-256 is not that of "
                                         r"ccpem-utils==0\.0\.1\.dev34 .*delete it and run again") as err:
        experimental_maps.experimental_map_files(tmp_path, download=False)
    assert not isinstance(err.value, DownloadUnavailable) and "\n" not in str(err.value)
    assert [p.name for p in folder.iterdir()] == [experimental_maps.WHEEL_NAME]


def test_a_damaged_cached_file_is_an_error_when_only_looking(experimental_maps, tmp_path):
    folder = tmp_path / "experimental_maps"
    folder.mkdir()
    for name, path in experimental_maps.items():
        (folder / name).write_bytes(path.read_bytes())
    assert experimental_map_files(tmp_path, download=False) == {
        n: folder / n for n in FILES}
    (folder / "5me2.pdb").write_text("ATOM")
    with pytest.raises(ValueError, match=r"5me2\.pdb: SHA-256 is not that of ccpem-utils==0\.0\.1\.dev34's") as err:
        experimental_map_files(tmp_path, download=False)
    assert not isinstance(err.value, DownloadUnavailable)


def test_every_entry_names_cached_files():
    assert {name for e in experimental_maps.EXPERIMENTAL_MAPS for name in (e.map_file, e.model_file)} == \
        set(experimental_maps.FILES)


def test_train_and_fit_on_a_real_map_with_its_origin_in_origin_or_nstart(experimental_maps, tmp_path, capsys):
    """EMD-21457's N-terminal-domain box with PDB 6VYB's domain: both header conventions ingest alike, 3 atoms of
    residue 52 outside the box are taken with a warning, and the read-out stays at the deposited model."""
    model = experimental_maps["6vyb_Ndom.pdb"]
    maps = [experimental_maps[name] for name in ("emd_21457_seg.mrc", "emd_21457_seg_nstart.mrc")]
    run = tmp_path / "run"
    assert cli.main(["train", "--reference", str(model), "--maps", *map(str, maps), "-o", str(run), *FAST]) == 0
    assert "3 of 1573 atoms of the reference lie outside the map's box (residues 52)" in capsys.readouterr().err
    assert cli.main(["fit", "--checkpoint", str(run / "checkpoint.pt"), "--reference", str(model),
                     "--maps", *map(str, maps), "-o", str(tmp_path / "fit"), "--quiet"]) == 0
    table = pd.read_csv(tmp_path / "fit" / "fit.csv")
    # The same box read from either header: the same correlation, and a real 3.2 Å map fits its model well.
    assert table.correlation_reference.iloc[0] == pytest.approx(table.correlation_reference.iloc[1], abs=1e-6)
    assert table.correlation_reference.iloc[0] > 0.5
    assert (table.rmsd_to_reference < 1.0).all()  # one smoke step barely moves the reference


def test_a_real_map_whose_origin_was_lost_is_refused_in_one_line(experimental_maps, tmp_path, capsys):
    model, the_map = experimental_maps["6vyb_Ndom.pdb"], experimental_maps["emd_21457_seg_orig0.mrc"]
    assert cli.main(["train", "--reference", str(model), "--maps", str(the_map), "-o", str(tmp_path / "run"),
                     *FAST]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"cryosampler: error: {the_map}: the map does not contain the reference: 1573 of "
                              "1573 atoms lie outside its box")
    assert not (tmp_path / "run").exists()
