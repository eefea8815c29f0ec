import os

import pytest

from cryosampler.io.files import atomic_path, claim_output, staged_directory


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


def test_a_claimed_output_is_refused_to_a_second_claim_and_released_after(tmp_path):
    out = tmp_path / "run"
    with claim_output(out):
        assert (tmp_path / ".run.lock").read_text().strip() == str(os.getpid())
        # flock locks belong to an open file, so a second claim conflicts even in the same process.
        with pytest.raises(ValueError, match=rf"{out} is being written by another cryosampler run \(process "
                                             rf"{os.getpid()}\)"):
            with claim_output(out):
                pass
    assert not (tmp_path / ".run.lock").exists()
    with claim_output(out):  # released: claimed again at once
        pass


def test_a_claim_makes_missing_folders_and_removes_them_when_nothing_was_written(tmp_path):
    with claim_output(tmp_path / "a" / "b" / "out.pdb"):
        assert (tmp_path / "a" / "b").is_dir()
    assert not (tmp_path / "a").exists()
    with claim_output(tmp_path / "a" / "b" / "out.pdb"):
        (tmp_path / "a" / "b" / "out.pdb").write_text("x")
    assert (tmp_path / "a" / "b" / "out.pdb").is_file()


def test_a_claim_removes_temporaries_a_killed_run_left_of_its_outputs_only(tmp_path):
    stale = [tmp_path / f".ens.pdb.{'a' * 32}.tmp", tmp_path / f".ens_validity.csv.{'b' * 32}.tmp"]
    for path in stale:
        path.write_text("half")
    (tmp_path / f".maps.{'c' * 32}.tmp").mkdir()
    others = [tmp_path / f".other.pdb.{'d' * 32}.tmp", tmp_path / ".ens.pdb.notours.tmp"]
    for path in others:
        path.write_text("keep")
    with claim_output(tmp_path / "ens.pdb", [tmp_path / "ens_validity.csv", tmp_path / "maps"]) as removed:
        assert sorted(removed) == sorted([*stale, tmp_path / f".maps.{'c' * 32}.tmp"])
    assert not any(path.exists() for path in removed) and all(path.exists() for path in others)
