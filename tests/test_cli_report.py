"""``cryosampler report``: the figure and tables of an ensemble beside its reference, for multi-model and XTC
ensembles; bad inputs and outputs refused in one line (exit 2) with nothing written."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

import cryosampler.cli as cli
from cryosampler.io.atomic_files import EnsembleWriter, write_pdb
from cryosampler.io.trajectory import XTC_PRECISION, XtcWriter

from conftest import make_helix

N_SAMPLES = 5


def one_line_error(capsys) -> str:
    """The single stderr line of a refused run (no traceback)."""
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cryosampler: error: "), lines
    return lines[0]


def files_in(folder) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.fixture
def data(tmp_path):
    """(ensemble.pdb, reference.pdb, state.pdb) of the tiny helix: five noisy samples and one moved state."""
    reference = make_helix(12)
    rng = np.random.default_rng(0)
    samples = reference.coords + rng.normal(scale=0.5, size=(N_SAMPLES, reference.n_atoms, 3))
    with EnsembleWriter(tmp_path / "ensemble.pdb", reference) as out:
        out.write(samples)
    write_pdb(tmp_path / "ref.pdb", reference)
    write_pdb(tmp_path / "open.pdb", reference.with_coords(reference.coords + rng.normal(size=(reference.n_atoms, 3))))
    return tmp_path / "ensemble.pdb", tmp_path / "ref.pdb", tmp_path / "open.pdb"


def report(*args) -> int:
    return cli.main(["report", *map(str, args)])


def test_report_writes_the_figure_and_both_tables_beside_the_ensemble(data, capsys):
    ensemble, reference, state = data
    assert report(ensemble, "--reference", reference, "--states", state) == 0
    folder = ensemble.parent
    assert files_in(folder) == {"ensemble.pdb", "ref.pdb", "open.pdb", "ensemble_report.png", "ensemble_report.pdf",
                                "ensemble_report.csv", "ensemble_report_samples.csv"}
    assert (folder / "ensemble_report.png").read_bytes()[:4] == b"\x89PNG"
    assert (folder / "ensemble_report.pdf").read_bytes()[:4] == b"%PDF"
    residues = pd.read_csv(folder / "ensemble_report.csv", keep_default_na=False)
    assert list(residues["residue"]) == list(range(1, 13)) and set(residues["secondary"]) <= {"H", "E", "C"}
    assert (residues["rmsf"] > 0).all()
    samples = pd.read_csv(folder / "ensemble_report_samples.csv")
    assert list(samples["kind"]) == ["sample"] * N_SAMPLES + ["state"] and samples["name"].iloc[-1] == "open"
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == f"read {N_SAMPLES} samples of ref (60 atoms) from {ensemble} and 1 known states"
    assert err[1].startswith(f"report: {N_SAMPLES} samples of ref, 12 residues: CA RMSF median ") and len(err) == 3
    # 0.5 Å of noise on every atom breaks bonds: the RMSF is breakage, and the report says so (issue 35).
    assert err[2].startswith(f"cryosampler: WARNING: {N_SAMPLES} of {N_SAMPLES} samples fail BioEmu's filter of "
                             "unphysical structures (")


@pytest.mark.parametrize("output,stem", [("out/", "ensemble"), ("out/cam", "cam")])
def test_output_is_a_folder_or_a_prefix_and_quiet_leaves_the_summary(data, capsys, output, stem):
    ensemble, reference, _ = data
    assert report(ensemble, "--reference", reference, "-o", f"{ensemble.parent}/{output}", "--quiet") == 0
    assert files_in(ensemble.parent / "out") == {f"{stem}_report{suffix}" for suffix in
                                                 (".png", ".pdf", ".csv", "_samples.csv")}
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[0].startswith("report: ") and err[1].startswith("cryosampler: WARNING: ")


def test_sound_samples_get_no_warning_and_existing_reports_need_overwrite(tmp_path, capsys):
    reference = make_helix(12)
    rng = np.random.default_rng(0)
    with EnsembleWriter(tmp_path / "ensemble.pdb", reference) as out:
        out.write(reference.coords + rng.normal(scale=0.02, size=(N_SAMPLES, reference.n_atoms, 3)))
    write_pdb(tmp_path / "ref.pdb", reference)
    assert report(tmp_path / "ensemble.pdb", "--reference", tmp_path / "ref.pdb", "--quiet") == 0
    assert "WARNING" not in capsys.readouterr().err
    assert report(tmp_path / "ensemble.pdb", "--reference", tmp_path / "ref.pdb") == 2
    assert one_line_error(capsys) == (f"cryosampler: error: {tmp_path / 'ensemble_report.png'} (written by the report) "
                                      "already exists; pass --overwrite to replace it, or choose another name")
    assert report(tmp_path / "ensemble.pdb", "--reference", tmp_path / "ref.pdb", "--overwrite", "--quiet") == 0


def test_an_xtc_ensemble_with_its_topology_gives_the_multi_model_file_s_report(data, tmp_path):
    ensemble, reference, _ = data
    from cryosampler.io.atomic_files import read_ensemble, read_structure

    structure = read_structure(reference)
    xtc = tmp_path / "xtc" / "ens.xtc"
    xtc.parent.mkdir()
    with XtcWriter(xtc, structure.n_atoms) as out:
        out.write(read_ensemble(ensemble, structure))
    write_pdb(tmp_path / "xtc" / "ens_topology.pdb", structure)
    assert report(xtc, "--reference", reference, "--quiet") == 0
    assert report(ensemble, "--reference", reference, "--quiet") == 0
    from_xtc = pd.read_csv(tmp_path / "xtc" / "ens_report_samples.csv")
    from_pdb = pd.read_csv(tmp_path / "ensemble_report_samples.csv")
    np.testing.assert_allclose(from_xtc["rmsd_reference"], from_pdb["rmsd_reference"], atol=2 * XTC_PRECISION)


def test_a_one_model_ensemble_is_refused(data, tmp_path, capsys):
    _, reference, state = data
    before = files_in(tmp_path)
    assert report(state, "--reference", reference) == 2
    assert one_line_error(capsys) == (f"cryosampler: error: {state} holds 1 sample; a report needs at least 2 "
                                      "(fluctuations and principal components describe how samples differ)")
    assert files_in(tmp_path) == before


def test_an_ensemble_of_other_atoms_is_refused_as_read_ensemble_names_it(data, tmp_path, capsys):
    ensemble, _, _ = data
    write_pdb(tmp_path / "other.pdb", make_helix(10))
    before = files_in(tmp_path)
    assert report(ensemble, "--reference", tmp_path / "other.pdb") == 2
    assert one_line_error(capsys) == (f"cryosampler: error: {ensemble} model 1: atoms do not match the reference (60 "
                                      "atoms, reference other has 50)")
    assert files_in(tmp_path) == before


def test_a_state_without_every_residue_is_refused(data, tmp_path, capsys):
    ensemble, reference, _ = data
    write_pdb(tmp_path / "short.pdb", make_helix(10, first_residue=3))
    before = files_in(tmp_path)
    assert report(ensemble, "--reference", reference, "--states", tmp_path / "short.pdb") == 2
    assert f"{tmp_path / 'short.pdb'}: no CA atom for 2 of the 12 residues" in one_line_error(capsys)
    assert files_in(tmp_path) == before


def test_outputs_that_would_overwrite_an_input_are_refused(data, tmp_path, capsys):
    ensemble, reference, _ = data
    listed = tmp_path / "ensemble_report.csv"  # an input that the default output names
    listed.write_text("kept")
    assert report(ensemble, "--reference", reference, "--states", listed) == 2
    assert one_line_error(capsys) == (f"cryosampler: error: {listed} (written by the report) is the input {listed}; "
                                      "inputs are never overwritten, choose another name")
    assert listed.read_text() == "kept"


@pytest.mark.parametrize("case", ["file name as output", "unknown suffix", "xtc without topology",
                                  "topology for a pdb"])
def test_bad_arguments_are_refused_in_one_line(data, tmp_path, capsys, case):
    ensemble, reference, _ = data
    args = {"file name as output": [ensemble, "-o", tmp_path / "fig.png"],
            "unknown suffix": [tmp_path / "ensemble.dcd"],
            "xtc without topology": [tmp_path / "ens.xtc"],
            "topology for a pdb": [ensemble, "--topology", reference]}[case]
    (tmp_path / "ens.xtc").write_bytes(b"")
    expected = {"file name as output": f"--output {tmp_path / 'fig.png'} is a prefix, not a file name: give --output "
                                       f"{tmp_path / 'fig'} to write fig_report.png and the rest",
                "unknown suffix": f"{tmp_path / 'ensemble.dcd'}: an ensemble is a multi-model .pdb or .cif file",
                "xtc without topology": f"{tmp_path / 'ens_topology.pdb'}: no such topology file; an .xtc ensemble "
                                        "needs the PDB file of its atoms: give --topology",
                "topology for a pdb": f"--topology {reference}: only an .xtc ensemble takes a topology"}[case]
    before = files_in(tmp_path)
    assert report(args[0], "--reference", reference, *args[1:]) == 2
    assert expected in one_line_error(capsys)
    assert files_in(tmp_path) == before


def test_help_lists_report(capsys):
    with pytest.raises(SystemExit):
        cli.main(["-h"])
    assert "plot an ensemble beside its reference" in capsys.readouterr().out
