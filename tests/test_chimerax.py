"""ChimeraX scripts: only a fixed list of commands and options, every file they open exists (relative to the
script, so the folder can be moved), model numbers as opened; contour levels and protein volumes by hand."""

import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest

from cryosampler.io.chimerax import (COMMANDS, PAUSE_FRAMES, VOLUME_PER_DALTON, enclosing_level, ensemble_script,
                                     protein_volume, traverse_script, write_ensemble_script)
from conftest import make_helix

# Each command the scripts may use, with the options it may take (real ChimeraX commands and options: open's
# coordsets, vseries and structureModel; volume's style, level, color and transparency; coordset's pauseFrames).
ALLOWED = {"close": set(), "open": {"coordsets", "vseries", "structureModel"}, "color": set(),
           "volume": {"style", "level", "color", "transparency"}, "view": set(), "coordset": {"pauseFrames"}}


def check_script(path: Path) -> list[list[str]]:
    """The commands of the ChimeraX script ``path`` (comments skipped), each checked: a command and options of
    :data:`ALLOWED`, files that exist relative to the script, model specs of models already opened."""
    commands, n_models = [], 0
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        words = shlex.split(line)
        name, args = words[0], words[1:]
        assert name in ALLOWED, line
        if name in ("close", "view"):
            assert args == [], line
        elif name == "open":
            files = [w for w in args[:next((i for i, w in enumerate(args) if w in ALLOWED["open"]), len(args))]]
            assert files, line
            for file in files:
                assert not Path(file).is_absolute() and (path.parent / file).is_file(), f"{file} of {line!r}"
            options = dict(zip(args[len(files)::2], args[len(files) + 1::2]))
            assert set(options) <= ALLOWED["open"] and len(args) == len(files) + 2 * len(options), line
            assert all(options.get(k, "true") == "true" for k in ("coordsets", "vseries")), line
            if "structureModel" in options:
                assert re.fullmatch(r"#\d+", options["structureModel"]) and int(options["structureModel"][1:]) <= n_models
            else:
                n_models += 1
        else:
            assert re.fullmatch(r"#\d+", args[0]) and 1 <= int(args[0][1:]) <= n_models, line
            if name == "color":
                assert len(args) == 2 and re.fullmatch(r"[a-z]+", args[1]), line
            elif name == "coordset":  # a range of frames, first,last (from 1), played once
                assert re.fullmatch(r"[1-9]\d*,[1-9]\d*", args[1]), line
                options = dict(zip(args[2::2], args[3::2]))
                assert set(options) <= ALLOWED["coordset"] and len(args) == 2 + 2 * len(options), line
                assert int(options.get("pauseFrames", 1)) >= 1, line
            else:
                options = dict(zip(args[1::2], args[2::2]))
                assert set(options) <= ALLOWED["volume"] and len(args) == 1 + 2 * len(options), line
                float(options["level"])
                assert 0 <= float(options.get("transparency", 0)) <= 1
        commands.append(words)
    return commands


def test_the_scripts_commands_are_the_tests_list():
    assert set(COMMANDS) == set(ALLOWED)


def test_a_script_opens_existing_files_by_relative_path_and_survives_a_move(tmp_path):
    run = tmp_path / "project" / "run"
    (run / "maps").mkdir(parents=True)
    reference = tmp_path / "project" / "my reference.pdb"  # a space: paths are quoted
    for path in [reference, run / "ensemble.pdb", *(run / "maps" / f"sample_{k:03d}.mrc" for k in range(3))]:
        path.write_text("")
    maps = sorted((run / "maps").iterdir())
    write_ensemble_script(run / "ensemble.cxc", reference, run / "ensemble.pdb", maps=maps, map_level=0.25)
    commands = check_script(run / "ensemble.cxc")
    assert [c[0] for c in commands] == ["close", "open", "open", "color", "color", "open", "volume", "view"]
    assert commands[1] == ["open", "../my reference.pdb"]
    assert commands[2] == ["open", "ensemble.pdb", "coordsets", "true"]
    assert commands[5] == ["open", "maps/sample_000.mrc", "maps/sample_001.mrc", "maps/sample_002.mrc", "vseries",
                           "true"]
    assert commands[6][:6] == ["volume", "#3", "style", "surface", "level", "0.25"]
    shutil.move(tmp_path / "project", tmp_path / "moved")
    check_script(tmp_path / "moved" / "run" / "ensemble.cxc")


def test_an_xtc_ensemble_opens_into_its_topology_and_one_map_is_no_series(tmp_path):
    for name in ("ref.pdb", "ens.xtc", "ens_topology.pdb", "sample_000.mrc"):
        (tmp_path / name).write_text("")
    write_ensemble_script(tmp_path / "ens.cxc", tmp_path / "ref.pdb", tmp_path / "ens.xtc",
                          topology=tmp_path / "ens_topology.pdb", maps=[tmp_path / "sample_000.mrc"], map_level=1.0)
    commands = check_script(tmp_path / "ens.cxc")
    assert ["open", "ens_topology.pdb"] in commands and ["open", "ens.xtc", "structureModel", "#2"] in commands
    assert ["open", "sample_000.mrc"] in commands
    without_maps = ensemble_script(tmp_path / "ens.cxc", tmp_path / "ref.pdb", tmp_path / "ens.xtc",
                                   topology=tmp_path / "ens_topology.pdb")
    assert "volume" not in without_maps and "#3" not in without_maps


def test_a_traversal_script_plays_its_frames_once_and_says_how_to_record_them(tmp_path):
    for name in ("ref.pdb", "walk.pdb"):
        (tmp_path / name).write_text("")
    (tmp_path / "walk.cxc").write_text(traverse_script(tmp_path / "walk.cxc", tmp_path / "ref.pdb",
                                                       tmp_path / "walk.pdb", 12, tmp_path / "walk.mp4"))
    commands = check_script(tmp_path / "walk.cxc")
    assert commands[2] == ["open", "walk.pdb", "coordsets", "true"]
    assert commands[-1] == ["coordset", "#2", "1,12", "pauseFrames", str(PAUSE_FRAMES)]
    recording = (tmp_path / "walk.cxc").read_text().splitlines()[-1]
    assert recording.startswith("#   movie record; coordset #2 1,12") and 'movie encode "walk.mp4"' in recording
    assert f"wait {12 * PAUSE_FRAMES}" in recording


def test_the_checker_catches_a_missing_file_and_an_unknown_command(tmp_path):
    (tmp_path / "a.cxc").write_text('open "missing.pdb"\n')
    with pytest.raises(AssertionError, match="missing.pdb"):
        check_script(tmp_path / "a.cxc")
    (tmp_path / "b.cxc").write_text("cartoon\n")
    with pytest.raises(AssertionError):
        check_script(tmp_path / "b.cxc")
    (tmp_path / "c.pdb").write_text("")
    (tmp_path / "c.cxc").write_text('open "c.pdb"\nvolume #2 level 1\n')
    with pytest.raises(AssertionError):  # no model #2 was opened
        check_script(tmp_path / "c.cxc")


def test_enclosing_level_encloses_the_given_volume():
    volume = np.random.default_rng(0).permutation(np.arange(1000.0)).reshape(10, 10, 10)
    # 2 Å voxels of 8 Å³: 50 voxels enclose 400 Å³, the values 950–999.
    assert enclosing_level(volume, 400.0, 2.0) == 950.0
    assert enclosing_level(volume, 1e9, 2.0) == 0.0 and enclosing_level(volume, 0.0, 2.0) == 999.0


def test_protein_volume_counts_a_dalton_per_hydrogen():
    helix = make_helix(4)  # poly-alanine: C3H5NO per residue, 71 Da
    assert protein_volume(helix) == pytest.approx(4 * 71 * VOLUME_PER_DALTON)
