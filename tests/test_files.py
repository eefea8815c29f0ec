import pytest

from cryosampler.files import atomic_path


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
