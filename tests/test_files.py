import pytest

from cryosampler.io.files import atomic_path, staged_directory


def test_success_renames_onto_target(tmp_path):
    target = tmp_path / "out.txt"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target
        tmp.write_text("new")
        assert not target.exists()  # readers never see a half-written file
    assert target.read_text() == "new"
    assert list(tmp_path.iterdir()) == [target]


def test_failure_leaves_existing_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]


def test_missing_directory_is_named(tmp_path):
    target = tmp_path / "no_such_dir" / "out.pdb"
    with pytest.raises(FileNotFoundError, match="no_such_dir.*does not exist"):
        with atomic_path(target):
            pass


def test_staged_directory_is_created_whole_on_success(tmp_path):
    target = tmp_path / "maps"
    with staged_directory(target, "sample_*.mrc") as tmp:
        (tmp / "sample_000.mrc").write_text("new")
        assert not target.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["maps"]
    assert (target / "sample_000.mrc").read_text() == "new"


def test_staged_directory_replaces_all_matching_files_and_keeps_others(tmp_path):
    target = tmp_path / "maps"
    target.mkdir()
    for name in ("sample_000.mrc", "sample_001.mrc", "notes.txt"):
        (target / name).write_text("old")
    with staged_directory(target, "sample_*.mrc") as tmp:
        (tmp / "sample_000.mrc").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["notes.txt", "sample_000.mrc"]
    assert (target / "sample_000.mrc").read_text() == "new" and (target / "notes.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["maps"]


def test_staged_directory_failure_leaves_the_old_files(tmp_path):
    target = tmp_path / "maps"
    target.mkdir()
    (target / "sample_000.mrc").write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with staged_directory(target, "sample_*.mrc") as tmp:
            (tmp / "sample_000.mrc").write_text("new")
            raise KeyboardInterrupt
    assert [p.name for p in tmp_path.iterdir()] == ["maps"]
    assert (target / "sample_000.mrc").read_text() == "old"
