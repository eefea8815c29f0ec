"""The command line, run as ``python -m cryosampler`` in a subprocess: outputs, refused inputs and outputs
(one line, exit code 2, nothing written), run-time failures (exit 1) and Ctrl-C (exit 130)."""

import errno
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import gemmi
import numpy as np
import pytest
import torch

import mdtraj
import pandas as pd

import cryosampler.cli as cli
from cryosampler.evaluation.validate import sample_validity
from cryosampler.io.atomic_files import read_ensemble, read_structure, write_pdb
from cryosampler.io.structure import Structure
from cryosampler.io.trajectory import XTC_PRECISION
from cryosampler.model.checkpoint import save_checkpoint

from conftest import checkpoint_state, make_helix, tiny_model
from test_chimerax import check_script


def run_cli(*args, prefix: list[str] = ()) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, sys.executable, "-m", "cryosampler", "sample", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def one_error_line(result: subprocess.CompletedProcess, code: int = 2) -> str:
    """The single stderr line of a refused run (no traceback)."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code and len(lines) == 1, result.stderr
    return lines[0]


def files_in(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.fixture
def inputs(tiny_structure, tiny_checkpoint):
    """(checkpoint, reference) in one folder; the reference is the tiny model's own template."""
    reference = tiny_checkpoint.parent / "ref.pdb"
    write_pdb(reference, tiny_structure)
    return tiny_checkpoint, reference


@pytest.mark.parametrize("suffix", [".pdb", ".cif"])
def test_sample_writes_a_multi_model_ensemble_and_maps(inputs, tmp_path, suffix):
    checkpoint, reference = inputs
    out = tmp_path / "out" / f"ensemble{suffix}"
    result = run_cli("--checkpoint", checkpoint, "--reference", reference, "-n", 3, "--batch-size", 2,
                     "--steps", 3, "-o", out, "--maps-dir", tmp_path / "maps", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "wrote 3 samples" in result.stderr and "CA fit to the model's template 0.00 Å RMSD" in result.stderr
    ensemble = read_ensemble(out, read_structure(reference))
    assert ensemble.shape == (3, read_structure(reference).n_atoms, 3)
    assert sorted(files_in(tmp_path / "maps")) == ["sample_000.mrc", "sample_001.mrc", "sample_002.mrc"]
    assert not gemmi.read_structure(str(out)).cell.is_crystal()
    assert sorted(files_in(out.parent)) == sorted(["ensemble.cxc", f"ensemble{suffix}", "ensemble_validity.csv"])
    # One row per sample, as the library computes it on the written ensemble (written to 0.001 Å).
    table = pd.read_csv(out.parent / "ensemble_validity.csv")
    expected = sample_validity(ensemble, read_structure(reference))
    assert list(table.columns) == list(expected.columns) and list(table["sample"]) == [0, 1, 2]
    assert list(table["clashes"]) == list(expected["clashes"])
    assert list(table["bioemu_physical"]) == list(expected["bioemu_physical"])
    assert re.search(r"^validity: 3 samples, .* \d/3 pass BioEmu's filter; per sample in .*ensemble_validity.csv$",
                     result.stderr, re.M), result.stderr
    commands = check_script(out.parent / "ensemble.cxc")
    opened = [c[1:] for c in commands if c[0] == "open"]
    assert opened[:2] == [["../ref.pdb"], [f"ensemble{suffix}", "coordsets", "true"]]
    assert opened[2] == ["../maps/sample_000.mrc", "../maps/sample_001.mrc", "../maps/sample_002.mrc", "vseries",
                         "true"]


def test_sample_writes_an_xtc_trajectory_with_its_topology_equal_to_the_pdb_ensemble(inputs, tmp_path, capsys):
    checkpoint, reference = inputs
    common = ["sample", "--checkpoint", str(checkpoint), "--reference", str(reference), "-n", "3", "--batch-size",
              "2", "--steps", "2", "--seed", "5", "--quiet"]
    assert cli.main([*common, "-o", str(tmp_path / "pdb" / "ens.pdb")]) == 0
    assert cli.main([*common, "--format", "xtc", "-o", str(tmp_path / "xtc" / "ens.xtc")]) == 0
    assert "(atoms in " in capsys.readouterr().err
    assert sorted(files_in(tmp_path / "xtc")) == ["ens.cxc", "ens.xtc", "ens_topology.pdb", "ens_validity.csv"]
    structure = read_structure(reference)
    trajectory = mdtraj.load(str(tmp_path / "xtc" / "ens.xtc"), top=str(tmp_path / "xtc" / "ens_topology.pdb"))
    np.testing.assert_allclose(trajectory.xyz * 10.0, read_ensemble(tmp_path / "pdb" / "ens.pdb", structure),
                               atol=XTC_PRECISION)
    np.testing.assert_allclose(read_structure(tmp_path / "xtc" / "ens_topology.pdb").coords, structure.coords,
                               atol=1e-3)
    commands = check_script(tmp_path / "xtc" / "ens.cxc")
    assert ["open", "ens_topology.pdb"] in commands and ["open", "ens.xtc", "structureModel", "#2"] in commands
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "xtc" / "ens_validity.csv"),
                                  pd.read_csv(tmp_path / "pdb" / "ens_validity.csv"))


def test_help_runs_as_a_module():
    result = subprocess.run([sys.executable, "-m", "cryosampler", "sample", "--help"], capture_output=True,
                            text=True, check=True)
    assert "--checkpoint" in result.stdout and "--reference" in result.stdout and "--allow-map-overwrite" in result.stdout


# Inputs are never overwritten (item 1).


@pytest.mark.parametrize("form", ["same path", "./ form", "symlink to it", "through a linked folder", "checkpoint"])
def test_output_that_is_an_input_is_refused(inputs, tmp_path, form, monkeypatch):
    checkpoint, reference = inputs
    monkeypatch.chdir(tmp_path)
    out = {"same path": reference, "./ form": f"./{reference.name}"}.get(form)
    if form == "symlink to it":
        out = tmp_path / "link.pdb"
        out.symlink_to(reference)
    if form == "through a linked folder":
        (tmp_path / "linked").symlink_to(tmp_path, target_is_directory=True)
        out = tmp_path / "linked" / reference.name
    if form == "checkpoint":
        out = checkpoint.with_suffix(".pdb")
        os.link(checkpoint, out)  # a hard link: the same file under a .pdb name
    before = {p: p.read_bytes() for p in (reference, checkpoint)}
    line = one_error_line(run_cli("--checkpoint", checkpoint, "--reference", reference, "-o", out, "--quiet"))
    assert "inputs are never overwritten" in line and str(Path(out)) in line
    assert {p: p.read_bytes() for p in before} == before


@pytest.mark.parametrize("case", ["validity table", "script", "topology", "format and suffix differ", "maps dir"])
def test_files_written_beside_the_output_never_overwrite_an_input(inputs, tmp_path, case):
    checkpoint, reference = inputs
    out, extra = tmp_path / "ens.pdb", []
    if case in ("validity table", "script"):
        os.link(checkpoint, tmp_path / {"validity table": "ens_validity.csv", "script": "ens.cxc"}[case])
        expected = "inputs are never overwritten"
    elif case == "topology":
        out = tmp_path / "ens.xtc"
        shutil.copy(reference, tmp_path / "ens_topology.pdb")
        reference = tmp_path / "ens_topology.pdb"
        expected = f"{reference} (written beside --output {out}) is the input {reference}"
    elif case == "format and suffix differ":
        extra, expected = ["--format", "xtc"], "--format xtc writes a .xtc file; give --output ens.xtc"
    else:
        extra, expected = ["--maps-dir", tmp_path / "ens.cxc"], "is ens.cxc, written beside --output"
    before = {p: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    line = one_error_line(run_cli("--checkpoint", checkpoint, "--reference", reference, "-o", out, *extra,
                                  "--quiet"))
    assert expected in line
    assert {p: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before


def test_maps_dir_that_is_the_output_or_a_file_is_refused(inputs, tmp_path):
    checkpoint, reference = inputs
    out = tmp_path / "ensemble.pdb"
    line = one_error_line(run_cli("--checkpoint", checkpoint, "--reference", reference, "-o", out,
                                  "--maps-dir", out, "--quiet"))
    assert "is the --output file" in line
    before = reference.read_bytes()
    line = one_error_line(run_cli("--checkpoint", checkpoint, "--reference", reference, "-o", out,
                                  "--maps-dir", reference, "--quiet"))
    assert f"--maps-dir {reference} is a file" in line
    assert reference.read_bytes() == before and not out.exists()


# Output problems are found before the model is loaded (item 4).


@pytest.fixture
def permissions_apply() -> list[str]:
    """Command prefix under which file permissions apply: root ignores them unless it drops CAP_DAC_OVERRIDE."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot make a directory read-only to the CLI")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


@pytest.mark.parametrize("which", ["output", "maps"])
def test_read_only_output_directory_is_refused(inputs, tmp_path, permissions_apply, which):
    checkpoint, reference = inputs
    read_only = tmp_path / "read_only"
    read_only.mkdir()
    read_only.chmod(0o555)
    out = (read_only if which == "output" else tmp_path) / "ensemble.pdb"
    maps = (read_only if which == "maps" else tmp_path) / "maps"
    result = run_cli("--checkpoint", checkpoint, "--reference", reference, "-o", out, "--maps-dir", maps,
                     "--quiet", prefix=permissions_apply)
    assert f"cannot write in directory {read_only}" in one_error_line(result)
    assert files_in(tmp_path) == {"checkpoint.pt", "ref.pdb", "read_only"}


@pytest.mark.parametrize("case", ["parent is a file", "output is a directory", "maps-dir below a file"])
def test_unwritable_output_path_is_refused_before_the_model_is_loaded(tmp_path, case):
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "a_dir.pdb").mkdir()
    out = {"parent is a file": tmp_path / "a_file" / "ensemble.pdb",
           "output is a directory": tmp_path / "a_dir.pdb"}.get(case, tmp_path / "ensemble.pdb")
    maps = tmp_path / "a_file" / "maps"
    # The checkpoint does not exist: the output is checked first, so that is the error.
    line = one_error_line(run_cli("--checkpoint", tmp_path / "none.pt", "--reference", tmp_path / "none.pdb",
                                  "-o", out, "--maps-dir", maps))
    expected = {"parent is a file": f"--output {out}: {tmp_path / 'a_file'} is a file",
                "output is a directory": f"--output {out} is a directory",
                "maps-dir below a file": f"--maps-dir {maps}: {tmp_path / 'a_file'} is a file"}[case]
    assert expected in line
    assert files_in(tmp_path) == {"a_file", "a_dir.pdb"}


@pytest.mark.parametrize("allow", ["--allow-map-overwrite", "--force"])  # --force: the deprecated spelling
def test_maps_of_an_earlier_run_are_refused_or_all_replaced_with_allow_map_overwrite(inputs, tmp_path, allow):
    checkpoint, reference = inputs
    maps = tmp_path / "maps"
    maps.mkdir()
    for k in range(5):
        (maps / f"sample_{k:03d}.mrc").write_text("old")
    (maps / "notes.txt").write_text("mine")
    args = ["--checkpoint", checkpoint, "--reference", reference, "-n", 2, "--steps", 2, "-o",
            tmp_path / "ensemble.pdb", "--maps-dir", maps, "--quiet"]
    line = one_error_line(run_cli(*args))
    assert "already holds 5 sample_*.mrc maps" in line and "pass --allow-map-overwrite to replace them" in line
    assert not (tmp_path / "ensemble.pdb").exists() and len(list(maps.iterdir())) == 6
    result = run_cli(*args, allow)
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if "deprecated" in line]
    assert notes == ([] if allow == "--allow-map-overwrite" else
                     ["cryosampler: note: --force is deprecated and will be removed in the next release; use "
                      "--allow-map-overwrite"])
    assert sorted(files_in(maps)) == ["notes.txt", "sample_000.mrc", "sample_001.mrc"]
    assert (maps / "sample_000.mrc").stat().st_size > 1024 and (maps / "notes.txt").read_text() == "mine"


# Checkpoints (items 2 and 5) and sizes (item 6).


def test_checkpoint_that_would_run_code_is_refused_by_the_cli(inputs, tmp_path):
    _, reference = inputs
    crafted, marker = tmp_path / "crafted.pt", tmp_path / "code_ran"
    crafted.write_bytes(_pickle_that_creates(marker))
    line = one_error_line(run_cli("--checkpoint", crafted, "--reference", reference, "-o", tmp_path / "o.pdb"))
    assert line.startswith(f"cryosampler: error: {crafted} is not a CryoSampler checkpoint (")
    assert not marker.exists() and not (tmp_path / "o.pdb").exists()


def _pickle_that_creates(marker: Path) -> bytes:
    """A torch.save file whose unpickling (weights_only=False) would create ``marker``."""

    class Payload:
        def __reduce__(self):
            return open, (str(marker), "w")

    path = marker.with_suffix(".tmp")
    torch.save({"payload": Payload()}, path)
    data = path.read_bytes()
    path.unlink()
    return data


def test_not_a_checkpoint_is_one_line(inputs, tmp_path):
    _, reference = inputs
    line = one_error_line(run_cli("--checkpoint", reference, "--reference", reference, "-o", tmp_path / "o.pdb"))
    assert f"{reference} is not a CryoSampler checkpoint (not a PyTorch file" in line


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    line = one_error_line(run_cli("--checkpoint", tmp_path / "none.pt", "--reference", "x.pdb", "-o",
                                  tmp_path / "o.pdb"))
    assert "none.pt" in line


@pytest.mark.parametrize("option,value,problem", [("--batch-size", "0", "must be an integer ≥ 1, got 0"),
                                                  ("--batch-size", "-2", "must be an integer ≥ 1, got -2"),
                                                  ("--steps", "1", "must be an integer ≥ 2, got 1"),
                                                  ("--steps", "ten", "'ten' is not an integer"),
                                                  ("-n", "0", "must be an integer ≥ 1, got 0")])
def test_bad_sizes_are_usage_errors(tmp_path, option, value, problem):
    line = one_error_line(run_cli("--checkpoint", "c.pt", "--reference", "r.pdb", "-o", tmp_path / "o.pdb",
                                  option, value))
    assert line.startswith("cryosampler sample: error: argument ") and problem in line


# References the model cannot take (items 8 and 11).


def test_too_large_reference_names_the_file_and_the_extent(inputs, tmp_path):
    checkpoint, _ = inputs
    reference = tmp_path / "long.pdb"
    write_pdb(reference, make_helix(30, "long"))
    out = tmp_path / "ensemble.pdb"
    line = one_error_line(run_cli("--checkpoint", checkpoint, "--reference", reference, "-o", out, "--quiet"))
    assert f"error: {reference}: atoms span 4" in line and "Å" in line and "32.0 Å" in line
    assert "structure 0 of the batch" not in line and not out.exists()


def test_reference_that_fits_the_template_poorly_needs_allow_poor_fit(shared_pdb, tmp_path):
    checkpoint = tmp_path / "calmodulin.pt"
    model = tiny_model(read_structure(shared_pdb("1exr.pdb")), grid=dict(size=24, apix=4.0, resolution=8.0))
    save_checkpoint(checkpoint, checkpoint_state(model))
    helix = tmp_path / "helix.pdb"
    write_pdb(helix, make_helix(60, "helix"))  # residues 1–60, as calmodulin is numbered
    out = tmp_path / "ensemble.pdb"
    args = ["--checkpoint", checkpoint, "--reference", helix, "-n", 1, "--steps", 2, "-o", out, "--quiet"]
    line = one_error_line(run_cli(*args))
    assert f"{helix}: CA atoms fit the model's template at 19.6 Å RMSD" in line and "--allow-poor-fit" in line
    assert not out.exists()
    result = run_cli(*args, "--allow-poor-fit")
    assert result.returncode == 0, result.stderr
    assert "WARNING" in result.stderr and "19.6 Å" in result.stderr
    assert "CA fit to the model's template 19.63 Å RMSD" in result.stderr and out.exists()


# Failures while running (item 7).


def _run_main(inputs, tmp_path, **extra) -> tuple[int, Path]:
    checkpoint, reference = inputs
    out = tmp_path / "run" / "ensemble.pdb"
    code = cli.main(["sample", "--checkpoint", str(checkpoint), "--reference", str(reference), "-n", "4",
                     "--batch-size", "2", "--steps", "2", "-o", str(out), "--maps-dir", str(tmp_path / "run" / "maps"),
                     "--quiet"])
    return code, out


def test_write_error_is_one_line_naming_the_path_and_leaves_nothing(inputs, tmp_path, monkeypatch, capsys):
    import cryosampler.io.mrc

    def disk_full(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(cryosampler.io.mrc, "write_mrc", disk_full)
    code, _ = _run_main(inputs, tmp_path)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "sample_000.mrc: No space left on device" in err[0]
    assert files_in(tmp_path / "run") == set()


def test_out_of_memory_suggests_a_smaller_batch(inputs, tmp_path, monkeypatch, capsys):
    import cryosampler.sampling

    def out_of_memory(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 68719476736 bytes.\nmore detail")
        yield

    monkeypatch.setattr(cryosampler.sampling, "iter_reference_samples", out_of_memory)
    code, _ = _run_main(inputs, tmp_path)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "can't allocate memory" in err[0] and "smaller --batch-size" in err[0]
    assert files_in(tmp_path / "run") == set()


def test_ctrl_c_exits_130_and_leaves_no_output(inputs, tmp_path):
    checkpoint, reference = inputs
    out, maps = tmp_path / "ensemble.pdb", tmp_path / "maps"
    # Far more samples than the test waits for; memory stays bounded by the batch.
    process = subprocess.Popen([sys.executable, "-m", "cryosampler", "sample", "--checkpoint", str(checkpoint),
                                "--reference", str(reference), "-n", "100000", "--batch-size", "1", "--steps", "20",
                                "-o", str(out), "--maps-dir", str(maps), "--quiet"],
                               stderr=subprocess.PIPE, text=True,
                               # As from a terminal: a test runner started in the background (CI, nohup) passes
                               # SIGINT on as ignored, and Python then never raises KeyboardInterrupt. (PLW1509:
                               # signal.signal takes no lock that another thread of the test runner could hold.)
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # noqa: PLW1509
    try:
        # Wait until a first model is in the temporary ensemble file: sampling is under way.
        deadline = time.monotonic() + 120
        while not any(p.stat().st_size for p in tmp_path.glob(".ensemble.pdb.*.tmp")):
            assert process.poll() is None, process.stderr.read()
            assert time.monotonic() < deadline, "sampling did not start"
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130 and stderr.strip().splitlines() == ["cryosampler: interrupted"], stderr
    assert files_in(tmp_path) == {"checkpoint.pt", "ref.pdb"}


def test_sample_summarises_the_ensemble_and_warns_when_it_stays_at_the_reference(inputs, tmp_path, capsys):
    # The tiny model is barely trained: every sample is the reference to within a tenth of an Å.
    checkpoint, reference = inputs
    code = cli.main(["sample", "--checkpoint", str(checkpoint), "--reference", str(reference), "-n", "3",
                     "--steps", "2", "-o", str(tmp_path / "ensemble.pdb"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 0
    assert re.search(r"^ensemble: RMSD to the reference 0\.0\d–0\.0\d Å \(median 0\.0\d Å\); 1 cluster at 2 Å CA "
                     r"RMSD, of 3 samples$", err, re.M), err
    # The reference's own geometry, to within a tenth of an Å: no clashes, no breaks, BioEmu's filter passed.
    assert re.search(r"^validity: 3 samples, 0\.0 clashes < 2\.2 Å and 0\.0 chain breaks \(CA–CA > 4\.2 Å\) per "
                     r"sample \(reference 0 clashes\), bond lengths ±0\.\d{3} Å and angles ±\d+\.\d° rms from the "
                     r"reference, 3/3 "
                     r"pass BioEmu's filter; per sample in .*ensemble_validity\.csv$", err, re.M), err
    warning = [line for line in err.splitlines() if "WARNING" in line]
    assert len(warning) == 1 and "the samples did not leave the reference: all 3 lie within 0.5 Å" in warning[0]


# --relax (physics/relax.py; OpenMM is an optional extra).


def _sample(inputs, out, *extra) -> int:
    checkpoint, reference = inputs
    return cli.main(["sample", "--checkpoint", str(checkpoint), "--reference", str(reference), "-n", "2", "--steps",
                     "2", "-o", str(out), "--quiet", *extra])


def test_relax_without_openmm_says_how_to_install_it_and_writes_nothing(inputs, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "openmm", None)  # import openmm fails, as where it is not installed
    assert _sample(inputs, tmp_path / "run" / "ensemble.pdb", "--relax") == 2
    assert capsys.readouterr().err.splitlines() == [
        "cryosampler: error: --relax needs OpenMM, which is not installed: pip install -e '.[relax]'"]
    assert not (tmp_path / "run").exists()


def test_relax_refuses_a_backbone_only_reference_in_one_line(inputs, tmp_path, capsys):
    checkpoint, _ = inputs
    helix = make_helix()
    keep = helix.atom_names != "CB"
    backbone = tmp_path / "backbone.pdb"
    write_pdb(backbone, Structure(coords=helix.coords[keep], elements=helix.elements[keep],
                                  atomic_numbers=helix.atomic_numbers[keep], atom_names=helix.atom_names[keep],
                                  res_names=helix.res_names[keep], res_nums=helix.res_nums[keep], chain_id="A",
                                  name="backbone"))
    assert _sample((checkpoint, backbone), tmp_path / "run" / "ensemble.pdb", "--relax") == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"cryosampler: error: {backbone}: a backbone-only model"), err
    assert not (tmp_path / "run").exists()


def test_sample_relax_relaxes_every_sample_and_says_so(inputs, tmp_path, capsys):
    pytest.importorskip("openmm")
    assert _sample(inputs, tmp_path / "plain.pdb") == 0
    capsys.readouterr()
    assert _sample(inputs, tmp_path / "relaxed.pdb", "--relax") == 0
    err = capsys.readouterr().err
    assert re.search(r"^relaxed 2 samples \(Amber14, implicit solvent, heavy atoms restrained\) in \d+\.\d s per "
                     r"sample: clashes < 2\.2 Å per sample \d+\.\d → 0\.0, heavy atoms moved \d\.\d\d Å rms "
                     r"\(largest model \d\.\d\d Å\)$", err, re.M), err
    reference = read_structure(inputs[1])
    plain, relaxed = (read_ensemble(tmp_path / name, reference) for name in ("plain.pdb", "relaxed.pdb"))
    moved = np.sqrt(np.mean(np.sum((relaxed - plain) ** 2, axis=2), axis=1))  # (2,) Å
    assert np.all(moved > 0.01), moved  # the same samples, each relaxed
    validity = pd.read_csv(tmp_path / "relaxed_validity.csv")
    assert list(validity["clashes"]) == [0, 0]
