"""References of several chains (issue 32): --chain A,B / all; chain IDs and residue numbers survive into every
output; no restraint or validity check joins two chains."""

import numpy as np
import pytest

import cryosampler.cli as cli
from cryosampler.evaluation.validate import sample_validity
from cryosampler.io.atomic_files import EnsembleWriter, read_ensemble, read_structure, write_mmcif, write_pdb
from cryosampler.io.structure import Structure
from cryosampler.model.structural_losses import backbone_window_pairs, bond_pairs

from conftest import make_helix
from test_cli_train import one_line_error
from test_ingest import write_user_map


def _two_chains(tmp_path):
    """A PDB file of chains A (residues 1–12) and B (residues 1–10, 15 Å away), both numbered from 1, written by
    the project's writer from a two-chain Structure."""
    a, b = make_helix(12), make_helix(10)
    joined = Structure(
        coords=np.concatenate([a.coords, b.coords + [15.0, 0.0, 0.0]]),
        elements=np.concatenate([a.elements, b.elements]),
        atomic_numbers=np.concatenate([a.atomic_numbers, b.atomic_numbers]),
        atom_names=np.concatenate([a.atom_names, b.atom_names]), res_names=np.concatenate([a.res_names, b.res_names]),
        res_nums=np.concatenate([a.res_nums, b.res_nums + 100]), chain_id="A,B", name="complex",
        chain_ids=np.array(["A"] * a.n_atoms + ["B"] * b.n_atoms),
        author_nums=np.concatenate([a.res_nums, b.res_nums]))
    path = tmp_path / "complex.pdb"
    write_pdb(path, joined)
    return path


def test_default_is_the_first_chain_and_all_reads_both(tmp_path):
    path = _two_chains(tmp_path)
    first = read_structure(path)
    assert first.chain_id == "A" and first.n_residues == 12
    both = read_structure(path, chain="all")
    assert both.chain_id == "A,B" and both.n_residues == 22 and both.n_atoms == 110
    assert list(dict.fromkeys(both.chain_ids)) == ["A", "B"]
    assert list(both.author_nums[both.chain_ids == "B"][::5]) == list(range(1, 11))
    # Internal numbers: B follows A's 12 with a gap, so no two chains' residues are consecutive.
    numbers = both.res_nums[::5]
    assert list(numbers[:12]) == list(range(1, 13)) and list(numbers[12:]) == list(range(14, 24))
    assert read_structure(path, chain="B,A").chain_id == "A,B"  # file order
    np.testing.assert_array_equal(read_structure(path, chain="A,B").coords, both.coords)


@pytest.mark.parametrize("suffix, write", [(".pdb", write_pdb), (".cif", write_mmcif)])
def test_chain_ids_and_numbers_round_trip(tmp_path, suffix, write):
    both = read_structure(_two_chains(tmp_path), chain="all")
    out = tmp_path / f"out{suffix}"
    write(out, both, both.coords + 1.0)
    again = read_structure(out, chain="all")
    np.testing.assert_array_equal(again.chain_ids, both.chain_ids)
    np.testing.assert_array_equal(again.author_nums, both.author_nums)
    np.testing.assert_array_equal(again.res_nums, both.res_nums)
    np.testing.assert_allclose(again.coords, both.coords + 1.0, atol=1e-3)
    with EnsembleWriter(tmp_path / f"ens{suffix}", both) as writer:
        writer.write(np.stack([both.coords, both.coords + 2.0]))
    models = read_ensemble(tmp_path / f"ens{suffix}", both)
    assert models.shape == (2, 110, 3)


def test_no_restraint_or_validity_check_joins_two_chains(tmp_path):
    both = read_structure(_two_chains(tmp_path), chain="all")
    pairs = backbone_window_pairs(both.backbone_index, res_nums=both.backbone_res_nums).reshape(-1, 2).numpy()
    assert len(pairs) and np.all(both.chain_ids[pairs[:, 0]] == both.chain_ids[pairs[:, 1]])
    bonds = bond_pairs(both.coords, both.res_nums, both.atom_names)
    assert len(bonds) and np.all(both.chain_ids[bonds[:, 0]] == both.chain_ids[bonds[:, 1]])
    # The chains lie 15 Å apart: were their ends joined, the validity check would see a chain break.
    assert sample_validity(both.coords[None], both)["chain_breaks"].iloc[0] == 0


@pytest.mark.parametrize("chain, match", [("C", r"no protein chain 'C'; protein chains here: A \(12 residues\), "
                                               r"B \(10 residues\)"), ("A,,B", "once each"), ("A,A", "once each")])
def test_bad_chain_lists_are_refused(tmp_path, chain, match):
    with pytest.raises(ValueError, match=match):
        read_structure(_two_chains(tmp_path), chain=chain)


@pytest.mark.slow
def test_train_sample_fit_with_two_chains_keep_their_ids(tmp_path, capsys):
    path = _two_chains(tmp_path)
    both = read_structure(path, chain="all")
    (tmp_path / "maps").mkdir()
    write_user_map(tmp_path / "maps" / "vol_000.mrc", both.coords, both.atomic_numbers, 2.0, (48, 48, 48))
    run = tmp_path / "run"
    assert cli.main(["train", "--family", "latent", "--preset", "smoke", "--reference", str(path), "--chain", "all",
                     "--maps", str(tmp_path / "maps"), "-o", str(run), "--steps", "2", "--batch-size", "1",
                     "--quiet"]) == 0
    out = tmp_path / "ensemble.pdb"
    assert cli.main(["sample", "--checkpoint", str(run / "checkpoint.pt"), "--reference", str(path), "--chain", "all",
                     "-n", "2", "-o", str(out), "--quiet"]) == 0
    chains = {line[21] for line in out.read_text().splitlines() if line.startswith("ATOM")}
    assert chains == {"A", "B"}
    assert read_ensemble(out, both).shape == (2, 110, 3)
    assert cli.main(["fit", "--checkpoint", str(run / "checkpoint.pt"), "--reference", str(path), "--chain", "all",
                     "--maps", str(tmp_path / "maps"), "-o", str(tmp_path / "fitted"), "--quiet"]) == 0
    assert cli.main(["sample", "--checkpoint", str(run / "checkpoint.pt"), "--reference", str(path), "--chain", "Z",
                     "-n", "2", "-o", str(tmp_path / "x.pdb"), "--quiet"]) == 2
    assert "no protein chain 'Z'" in one_line_error(capsys)
