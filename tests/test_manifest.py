"""Tests for cryosampler.experiments.manifest: resolution against the shared PDB directory and offline download."""

import logging
import shutil
from pathlib import Path

import pytest

from cryosampler.experiments.manifest import (
    ENV_VAR,
    describe_missing,
    find_entry,
    load_manifest,
    pdb_dir_from_env,
    require_splits,
    resolve_manifest,
)

EXPECTED = {
    "1EXR": ("train", "1EXR", False),
    "1OOJ": ("train", "3CLN", True),
    "1RFJ": ("train", "1CLL", True),
    "1UP5": ("train", "1CLM", True),
    "4CLN": ("val", "4CLN", False),
    "1PRW": ("test_ood", "1PRW", False),
}


def test_load_manifest():
    frame = load_manifest("paper")
    assert list(frame.columns) == ["slot", "split", "substitute", "note"]
    assert list(frame["slot"]) == ["1EXR", "1OOJ", "1RFJ", "1UP5", "4CLN", "5A2H", "1PRW"]
    assert (frame["note"] != "").all()
    with pytest.raises(ValueError, match="unknown manifest"):
        load_manifest("nope")


def test_pdb_dir_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env"))
    assert pdb_dir_from_env() == tmp_path / "env"
    assert pdb_dir_from_env(tmp_path / "explicit") == tmp_path / "explicit"
    monkeypatch.delenv(ENV_VAR)
    assert pdb_dir_from_env() is None


def test_resolve_paper_manifest(pdb_dir):
    frame = resolve_manifest("paper", pdb_dir=pdb_dir)
    assert list(frame.columns) == ["slot", "split", "used_id", "path", "substituted", "note"]
    got = {row.slot: (row.split, row.used_id, row.substituted) for row in frame.itertuples()}
    assert got == EXPECTED
    for row in frame.itertuples():
        assert Path(row.path).is_file() and Path(row.path).name.lower().startswith(row.used_id.lower())
    assert [m["slot"] for m in frame.attrs["missing"]] == ["5A2H"]


def test_resolve_reads_env(pdb_dir, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(pdb_dir))
    assert set(resolve_manifest()["slot"]) == set(EXPECTED)


def test_describe_missing(pdb_dir):
    message = describe_missing(resolve_manifest(pdb_dir=pdb_dir))
    assert "5A2H" in message and str(pdb_dir) in message
    assert ENV_VAR in message and "download=True" in message


def test_nothing_missing_describes_empty(tmp_path):
    for pdb_id in ["1exr", "1ooj", "1rfj", "1up5", "4cln", "5a2h", "1prw"]:
        (tmp_path / f"{pdb_id}.cif").write_text("data_x\n")
    frame = resolve_manifest(pdb_dir=tmp_path)
    assert not frame["substituted"].any() and describe_missing(frame) == ""


def test_find_entry_name_variants(tmp_path):
    (tmp_path / "1ABC.cif.gz").write_bytes(b"x")
    (tmp_path / "pdb2xyz.ent").write_text("x")
    assert find_entry("1abc", tmp_path) == tmp_path / "1ABC.cif.gz"
    assert find_entry("2XYZ", tmp_path) == tmp_path / "pdb2xyz.ent"
    assert find_entry("3XYZ", tmp_path) is None
    with pytest.raises(ValueError, match="invalid PDB ID"):
        find_entry("../etc", tmp_path)


def test_find_entry_prefers_pdb_dir_over_cache(tmp_path):
    (tmp_path / "dir").mkdir()
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "1ABC.cif").write_text("x")
    assert find_entry("1ABC", tmp_path / "dir", tmp_path / "cache") == tmp_path / "cache" / "1ABC.cif"
    (tmp_path / "dir" / "1abc.pdb").write_text("x")
    assert find_entry("1ABC", tmp_path / "dir", tmp_path / "cache") == tmp_path / "dir" / "1abc.pdb"


def test_download_from_file_url(pdb_dir, tmp_path):
    server = tmp_path / "server"
    server.mkdir()
    shutil.copy(pdb_dir / "1exr.cif", server / "1EXR.cif")
    cache = tmp_path / "cache"
    path = find_entry("1exr", None, cache, download=True, base_url=server.as_uri())
    assert path == cache / "1EXR.cif"
    assert path.read_bytes() == (pdb_dir / "1exr.cif").read_bytes()
    assert [p.name for p in cache.iterdir()] == ["1EXR.cif"]  # no temp file left behind
    # The cached copy is found without downloading again.
    assert find_entry("1EXR", None, cache) == path


def test_download_failure_returns_none(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="cryosampler.experiments.manifest"):
        got = find_entry("9ZZZ", None, tmp_path / "cache", download=True, base_url=(tmp_path / "empty").as_uri())
    assert got is None
    assert "9ZZZ" in caplog.text
    with pytest.raises(ValueError, match="cache_dir"):
        find_entry("9ZZZ", None, None, download=True)


def test_resolve_with_download(pdb_dir, tmp_path):
    server = tmp_path / "server"
    server.mkdir()
    # Pretend RCSB serves 5A2H: any mmCIF bytes will do for resolution.
    shutil.copy(pdb_dir / "4cln.pdb", server / "5A2H.cif")
    frame = resolve_manifest(pdb_dir=pdb_dir, cache_dir=tmp_path / "cache", download=True, base_url=server.as_uri())
    row = frame.set_index("slot").loc["5A2H"]
    assert row.used_id == "5A2H" and not row.substituted
    assert frame.attrs["missing"] == []


def test_no_directory_configured(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    with pytest.raises(ValueError, match=ENV_VAR):
        resolve_manifest()


def test_nonexistent_directory(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        resolve_manifest(pdb_dir=tmp_path / "absent")


def test_nonexistent_directory_that_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file, not a directory"):
        resolve_manifest(pdb_dir=tmp_path / "file")


def test_require_splits_names_missing_entries_and_where_it_looked(tmp_path):
    frame = resolve_manifest(pdb_dir=tmp_path, cache_dir=tmp_path / "cache")
    with pytest.raises(ValueError, match=r"no train or val protein found: missing 1EXR \(train\), 1OOJ or 3CLN "
                                         r"\(train\), .*4CLN \(val\)") as err:
        require_splits(frame)
    message = str(err.value)
    assert f"looked in {tmp_path} and {tmp_path / 'cache'}" in message
    assert ENV_VAR in message and "download = True fetches them" in message and "\n" not in message


def test_require_splits_names_the_lacking_split(pdb_dir, tmp_path):
    shutil.copy(pdb_dir / "4cln.pdb", tmp_path / "4cln.pdb")
    frame = resolve_manifest(pdb_dir=tmp_path)
    with pytest.raises(ValueError, match=r"no train protein found: missing 1EXR \(train\)"):
        require_splits(frame)
    require_splits(frame, splits=("val",))
    require_splits(resolve_manifest(pdb_dir=pdb_dir))  # 5A2H is missing, but 4CLN fills the val split


def test_require_splits_after_failed_download(tmp_path):
    frame = resolve_manifest(pdb_dir=tmp_path, cache_dir=tmp_path / "cache", download=True,
                             base_url=(tmp_path / "offline").as_uri())
    with pytest.raises(ValueError, match=r"downloading them failed \(offline\?"):
        require_splits(frame)
