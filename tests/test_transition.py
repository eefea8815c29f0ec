"""The adenylate kinase DIMS path: its download cache and what is read from it."""

import hashlib
import io
import tarfile

import numpy as np
import pytest

from cryosampler.experiments import transition
from cryosampler.experiments.downloads import DownloadUnavailable
from cryosampler.physics.superpose import rmsd


def test_missing_files_name_the_cache_and_the_pip_command(tmp_path):
    with pytest.raises(DownloadUnavailable, match=r"not found; download it with: python -m pip download --no-deps "
                                         r"MDAnalysisTests==2\.11\.0 -d .*adk_dims"):
        transition.adk_files(tmp_path, download=False)
    assert not (tmp_path / "adk_dims").exists()


def test_a_damaged_archive_is_one_line_naming_it_and_leaves_no_files(tmp_path):
    (tmp_path / "adk_dims").mkdir()
    (tmp_path / "adk_dims" / transition.SDIST_NAME).write_bytes(b"not a tar archive")
    with pytest.raises(ValueError, match=r"mdanalysistests-2\.11\.0\.tar\.gz: SHA-256 is not that of "
                                         r"MDAnalysisTests==2\.11\.0 .*delete it and run again") as err:
        transition.adk_files(tmp_path, download=False)
    assert not isinstance(err.value, DownloadUnavailable) and "\n" not in str(err.value)
    assert [p.name for p in (tmp_path / "adk_dims").iterdir()] == [transition.SDIST_NAME]


def _fake_sdist(path, contents: dict[str, bytes]):
    """A tar.gz laid out as the MDAnalysisTests sdist, with ``contents`` {cached name: bytes}."""
    root = transition.SDIST_NAME.removesuffix(".tar.gz")
    with tarfile.open(path, "w:gz") as archive:
        for name, data in contents.items():
            info = tarfile.TarInfo(f"{root}/{transition._MEMBERS[name]}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def _fake_download(monkeypatch, tmp_path, contents: dict[str, bytes]) -> list:
    """pip_download as if it fetched a fake sdist holding ``contents``; the pinned hashes become theirs."""
    monkeypatch.setattr(transition, "FILE_SHA256", {n: hashlib.sha256(f"{n} intact".encode()).hexdigest()
                                                    for n in transition.FILES})
    calls = []

    def pip_download(requirement, filename, cache, download=True, *, sha256):
        calls.append(requirement)
        cache.mkdir(parents=True, exist_ok=True)
        return _fake_sdist(cache / filename, contents)

    monkeypatch.setattr(transition, "pip_download", pip_download)
    return calls


def test_a_damaged_cached_file_is_taken_out_of_a_new_download(tmp_path, monkeypatch):
    calls = _fake_download(monkeypatch, tmp_path, {n: f"{n} intact".encode() for n in transition.FILES})
    folder = tmp_path / "adk_dims"
    folder.mkdir()
    for name in transition.FILES:
        (folder / name).write_bytes(f"{name} intact".encode())
    assert transition.adk_files(tmp_path) == {n: folder / n for n in transition.FILES} and calls == []
    (folder / "adk_dims.dcd").write_bytes(b"adk_dims.dcd cut sh")
    with pytest.raises(ValueError, match=r"adk_dims\.dcd: SHA-256 is not that of MDAnalysisTests==2\.11\.0's") as err:
        transition.adk_files(tmp_path, download=False)  # only looking: refused, not taken for offline
    assert not isinstance(err.value, DownloadUnavailable)
    transition.adk_files(tmp_path)
    assert calls == ["MDAnalysisTests==2.11.0"] and (folder / "adk_dims.dcd").read_bytes() == b"adk_dims.dcd intact"
    assert sorted(p.name for p in folder.iterdir()) == sorted(transition.FILES)  # the archive deleted


def test_a_file_still_wrong_in_the_new_download_is_an_error_not_a_skip(tmp_path, monkeypatch):
    contents = {n: f"{n} intact".encode() for n in transition.FILES} | {"adk_open.pdb": b"another file"}
    _fake_download(monkeypatch, tmp_path, contents)
    with pytest.raises(ValueError, match=r"adk_open\.pdb: SHA-256 .* even when taken out of .*tar\.gz again") as err:
        transition.adk_files(tmp_path)
    assert not isinstance(err.value, DownloadUnavailable) and "\n" not in str(err.value)


def test_an_archive_without_a_file_is_an_error_not_a_skip(tmp_path, monkeypatch):
    _fake_download(monkeypatch, tmp_path, {"adk_dims.dcd": b"adk_dims.dcd intact"})
    with pytest.raises(ValueError, match=r"cannot take the adenylate kinase files .*delete .*adk_dims") as err:
        transition.adk_files(tmp_path)
    assert not isinstance(err.value, DownloadUnavailable)


def test_cached_files_are_used_without_download(tmp_path, adk_files):
    (tmp_path / "adk_dims").mkdir()
    for name, path in adk_files.items():
        (tmp_path / "adk_dims" / name).write_bytes(path.read_bytes())
    assert transition.adk_files(tmp_path, download=False) == {n: tmp_path / "adk_dims" / n for n in transition.FILES}


def test_the_path_is_the_issues_closed_to_open_motion(adk_files):
    path = transition.read_adk_path(adk_files)
    top = path.topology
    assert path.frames.shape == (98, 1656, 3) and top.n_atoms == 1656 and top.n_residues == 214
    assert set(top.elements) == {"C", "N", "O", "S"}
    assert top.sequence.startswith("MRIILLGAPGAGKGTQAQ")
    ca = top.backbone_index[:, 1]
    assert rmsd(path.closed[ca], path.opened[ca]) == pytest.approx(6.9, abs=0.05)  # 1AKE ↔ 4AKE, issue 10
    # The path starts and ends near the crystal structures (CA 0.46 and 0.50 Å with mdtraj).
    assert rmsd(path.frames[0][ca], path.closed[ca]) < 0.6 and rmsd(path.frames[-1][ca], path.opened[ca]) < 0.6
    # Superposed on the CORE domain: it moves little (side chains included, < 2.5 Å) while LID and NMP move.
    core = np.isin(top.res_nums, transition.CORE_RESIDUES)
    core_move = np.sqrt(((path.frames[:, core] - path.frames[0, core]) ** 2).sum(-1).mean(-1))
    lid = (top.res_nums >= 122) & (top.res_nums <= 159)
    lid_move = np.sqrt(((path.frames[-1, lid] - path.frames[0, lid]) ** 2).sum(-1).mean())
    assert core_move.max() < 2.5 and lid_move > 4 * core_move.max(), (core_move.max(), lid_move)
