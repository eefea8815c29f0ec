"""References of several chains (issue 32): --chain A,B / all; chain IDs and residue numbers survive into every
output; no restraint or validity check joins two chains."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

import cryosampler.cli as cli
from cryosampler.evaluation.validate import sample_validity
from cryosampler.io.atomic_files import EnsembleWriter, read_ensemble, read_structure, write_mmcif, write_pdb
from cryosampler.io.trajectory import read_xtc_ensemble
from cryosampler.model.structural_losses import backbone_window_pairs, bond_pairs

from conftest import make_complex
from test_cli_train import one_line_error
from test_ingest import write_user_map


def _two_chains(tmp_path):
    """A PDB file of chains A (residues 1–12) and B (residues 1–10, 15 Å away), both numbered from 1, written by
    the project's writer from a two-chain Structure."""
    path = tmp_path / "complex.pdb"
    write_pdb(path, make_complex(12, 10, spacing=15.0))
    return path


def test_default_is_every_chain_and_one_can_be_named(tmp_path):
    path = _two_chains(tmp_path)
    first = read_structure(path, chain="A")
    assert first.chain_id == "A" and first.n_residues == 12
    np.testing.assert_array_equal(read_structure(path).coords, read_structure(path, chain="all").coords)
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
    # Without --chain, sample takes the chains the model was trained on.
    assert cli.main(["sample", "--checkpoint", str(run / "checkpoint.pt"), "--reference", str(path), "-n", "2",
                     "-o", str(tmp_path / "default.pdb"), "--quiet"]) == 0
    assert read_ensemble(tmp_path / "default.pdb", both).shape == (2, 110, 3)
    # XTC: the topology keeps both chains' IDs and numbers, and the ensemble reads back.
    xtc = tmp_path / "walk.xtc"
    assert cli.main(["sample", "--checkpoint", str(run / "checkpoint.pt"), "--reference", str(path), "-n", "2",
                     "-o", str(xtc), "--quiet"]) == 0
    topology = read_structure(tmp_path / "walk_topology.pdb")
    np.testing.assert_array_equal(topology.chain_ids, both.chain_ids)
    np.testing.assert_array_equal(topology.author_nums, both.author_nums)
    assert read_xtc_ensemble(xtc, tmp_path / "walk_topology.pdb", both).shape == (2, 110, 3)
    # report: one row per residue with its chain and the file's number.
    assert cli.main(["report", str(xtc), "--reference", str(path), "-o", str(tmp_path / "rep"), "--quiet"]) == 0
    residues = pd.read_csv(tmp_path / "rep_report.csv")
    assert list(residues["chain"]) == ["A"] * 12 + ["B"] * 10
    assert list(residues["residue"]) == list(range(1, 13)) + list(range(1, 11))
    # A model of one chain: sample takes that chain of the complex by default, and refuses both.
    single = tmp_path / "single"
    assert cli.main(["train", "--family", "latent", "--preset", "smoke", "--reference", str(path), "--chain", "A",
                     "--maps", str(tmp_path / "maps"), "-o", str(single), "--steps", "2", "--batch-size", "1",
                     "--quiet", "--allow-far-conformation"]) == 0
    assert cli.main(["sample", "--checkpoint", str(single / "checkpoint.pt"), "--reference", str(path), "-n", "2",
                     "-o", str(tmp_path / "a.pdb"), "--quiet"]) == 0
    assert {line[21] for line in (tmp_path / "a.pdb").read_text().splitlines() if line.startswith("ATOM")} == {"A"}
    assert cli.main(["sample", "--checkpoint", str(single / "checkpoint.pt"), "--reference", str(path), "--chain",
                     "all", "-n", "2", "-o", str(tmp_path / "ab.pdb"), "--quiet"]) == 2
    assert "2 chains, but this model was trained on references of 1" in one_line_error(capsys)
    assert not (tmp_path / "ab.pdb").exists()


def _inserted(tmp_path):
    """Chain A: ALA 1, 2, 2A, 2B, 3, then a gap to 7 (an antibody's numbering), as a PDB file."""
    from test_structure import BACKBONE, residue_records

    records = []
    for k, (num, icode) in enumerate([(1, " "), (2, " "), (2, "A"), (2, "B"), (3, " "), (7, " ")]):
        rows = residue_records("ALA", k + 1, BACKBONE, 5 * k + 1)
        records += [r[:22] + f"{num:4d}{icode}" + r[27:] for r in rows]
    path = tmp_path / "inserted.pdb"
    path.write_text("\n".join(records + ["END"]) + "\n")
    return path


@pytest.mark.parametrize("suffix, write", [(".pdb", write_pdb), (".cif", write_mmcif)])
def test_insertion_codes_survive_reading_and_writing(tmp_path, suffix, write):
    import gemmi

    structure = read_structure(_inserted(tmp_path))
    residues = structure.residue_starts[:-1]
    assert list(structure.author_nums[residues]) == [1, 2, 2, 2, 3, 7]
    assert list(structure.insertion_codes[residues]) == ["", "", "A", "B", "", ""]
    # Internal numbers: one per residue, in order, and the gap before 7 kept (no restraint bridges it).
    assert list(structure.res_nums[residues]) == [1, 2, 3, 4, 5, 9]
    out = tmp_path / f"out{suffix}"
    write(out, structure)
    seqids = [str(r.seqid) for r in gemmi.read_structure(str(out))[0]["A"]]
    assert seqids == ["1", "2", "2A", "2B", "3", "7"]
    again = read_structure(out)
    np.testing.assert_array_equal(again.insertion_codes, structure.insertion_codes)
    np.testing.assert_array_equal(again.res_nums, structure.res_nums)
    assert read_ensemble(out, structure).shape == (1, structure.n_atoms, 3)


def test_what_is_left_out_is_said_in_one_line(tmp_path):
    from test_structure import atom_record, chain_records

    records = (chain_records("A", 1, 4, 1, y=0.0) + [atom_record(30, "FE", "HEM", 101, (0.0, 5.0, 5.0), "FE", het=True),
                                                     atom_record(31, "O", "HOH", 201, (0.0, 9.0, 5.0), "O", het=True)]
               + ["TER"] + chain_records("B", 1, 4, 40, y=20.0)
               + [atom_record(60, "S", "SO4", 1, (9.0, 9.0, 9.0), "S", het=True, chain="L")])
    path = tmp_path / "ligands.pdb"
    path.write_text("\n".join(records + ["END"]) + "\n")
    with pytest.warns(UserWarning) as caught:
        both = read_structure(path)
    assert both.chain_id == "A,B"
    (message,) = [str(w.message) for w in caught]
    assert message == (f"{path}: left out 2 non-protein residue(s) (HEM, SO4) and 1 water(s): CryoSampler models "
                       "protein chains only")
    with pytest.warns(UserWarning, match=r"left out 2 non-protein residue\(s\) \(HEM, SO4\) and 1 water"):
        read_structure(path, chain="A")
    with pytest.warns(UserWarning, match=r"left out 1 non-protein residue\(s\) \(SO4\):"):
        read_structure(path, chain="B")  # chain A's ligand and water went with chain A


def test_a_one_chain_model_has_no_chain_embedding_and_a_complex_model_starts_as_if_it_had_none():
    import torch

    from cryosampler.model.autoencoder import AUTOENCODER_PRESETS, AtomicDecoder
    from cryosampler.model.encoder import ENCODER_PRESETS, AtomicEncoder
    from cryosampler.model.featurize import collate, featurize

    joined = make_complex(6, 5)
    batch = collate([featurize(joined, joined.coords - joined.coords.mean(0))])
    assert batch.token_chain.tolist() == [[0] * 6 + [1] * 5]
    smoke = ENCODER_PRESETS["smoke"]
    for chains, expected in ((1, False), (2, True)):
        torch.manual_seed(0)
        encoder = AtomicEncoder(dataclasses.replace(smoke, chains=chains), 16, 2.0)
        assert any("chain" in k for k in encoder.state_dict()) == expected
        torch.manual_seed(0)
        decoder = AtomicDecoder(dataclasses.replace(AUTOENCODER_PRESETS["smoke"], chains=chains))
        assert any("chain" in k for k in decoder.state_dict()) == expected
        if chains == 1:
            base_encoder, base_decoder = encoder.state_dict(), decoder.state_dict()
    # Made without drawing random numbers: every other weight starts as in the one-chain model.
    for k, v in base_encoder.items():
        torch.testing.assert_close(encoder.state_dict()[k], v, rtol=0, atol=0)
    for k, v in base_decoder.items():
        torch.testing.assert_close(decoder.state_dict()[k], v, rtol=0, atol=0)
    # Trained, the second chain's slot moves and the first chain's stays zero.
    z = torch.randn(1, AUTOENCODER_PRESETS["smoke"].latent_dim, generator=torch.Generator().manual_seed(1))
    decoder.head[-1].weight.data.normal_(generator=torch.Generator().manual_seed(2))
    decoder(z, batch).square().sum().backward()
    grad = decoder.chain.weight.grad
    assert torch.all(grad[0] == 0) and grad[1].abs().sum() > 0


@pytest.mark.slow
def test_torchrun_trains_a_complex_with_its_chain_embedding_and_windows(tmp_path):
    import torch

    from cryosampler.model.checkpoint import load_checkpoint
    from test_cli_train import torchrun_train

    path = _two_chains(tmp_path)
    both = read_structure(path)
    (tmp_path / "maps").mkdir()
    write_user_map(tmp_path / "maps" / "vol_000.mrc", both.coords, both.atomic_numbers, 2.0, (48, 48, 48))
    out = tmp_path / "run"
    torchrun_train("--family", "map", "--preset", "smoke", "--reference", str(path), "--maps", str(tmp_path / "maps"),
                   "-o", str(out), "--steps", "2", "--batch-size", "2", "--device", "cpu", "--attention-window", "8")
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["model_config"]["encoder"]["chains"] == 2
    assert state["model_config"]["encoder"]["attention_window"] == 8
    embedding = state["model"]["encoder.chain.weight"]
    assert torch.all(embedding[0] == 0) and embedding[1].abs().sum() > 0  # trained, the first chain's slot stays 0


@pytest.mark.parametrize("numbering, internal", [
    ([(1, "B"), (1, "A"), (1, " "), (2, " ")], [1, 2, 3, 4]),  # letters before the plain number (chymotrypsin)
    ([(51, " "), (52, "A"), (53, " ")], [51, 52, 53]),  # a lettered residue without its plain one: no break
    ([(10, " "), (11, " "), (5, " "), (6, " ")], [10, 11, 13, 14]),  # numbering that goes back: a break
])
def test_internal_numbers_follow_the_file_s_order_and_keep_its_gaps(tmp_path, numbering, internal):
    from test_structure import BACKBONE, residue_records

    records = []
    for k, (num, icode) in enumerate(numbering):
        records += [r[:22] + f"{num:4d}{icode}" + r[27:] for r in residue_records("ALA", k + 1, BACKBONE, 5 * k + 1)]
    path = tmp_path / "numbered.pdb"
    path.write_text("\n".join(records + ["END"]) + "\n")
    structure = read_structure(path)
    assert list(structure.res_nums[structure.residue_starts[:-1]]) == internal
    again = tmp_path / "again.pdb"
    write_pdb(again, structure)
    np.testing.assert_array_equal(read_structure(again).res_nums, structure.res_nums)


def test_checkpoints_from_before_chains_were_recorded_keep_their_old_behaviour(tmp_path, capsys):
    from cryosampler.commands import read_model_reference
    from cryosampler.model.checkpoint import config_difference
    from cryosampler.model.denoiser import ModelConfig
    from cryosampler.model.latent_model import LatentModelConfig

    path = _two_chains(tmp_path)
    # Configs written before chain embeddings: no embedding, any number of chains, the same model as chains = 1.
    old = ModelConfig().to_dict()
    del old["encoder"]["chains"]
    assert ModelConfig.from_dict(old).chains == 0
    assert config_difference(ModelConfig.from_dict(old), ModelConfig()) is None
    assert config_difference(ModelConfig(), ModelConfig().with_tokens(2, 0)) == "encoder.chains: 1 → 2"
    latent = LatentModelConfig().to_dict()
    del latent["autoencoder"]["chains"]
    assert LatentModelConfig.from_dict(latent).chains == 0
    # Proteins without a recorded chain: the first protein chain, the default then.
    assert read_model_reference(path, None, {"proteins": [{"name": "x", "sequence": "A"}]}).chain_id == "A"
    assert "reading chain(s) A of its protein chains A, B, as the model was trained" in capsys.readouterr().err
    # Recorded chains: those of the file that a training protein was read with; else every chain.
    recorded = {"proteins": [{"name": "x", "sequence": "A", "chain": "B"}, {"name": "y", "sequence": "A",
                                                                          "chain": "Z"}]}
    assert read_model_reference(path, None, recorded, quiet=True).chain_id == "B"
    assert capsys.readouterr().err == ""
    both = {"proteins": [{"name": "x", "sequence": "A", "chain": "A"}, {"name": "y", "sequence": "A", "chain": "B"}]}
    assert read_model_reference(path, None, both).chain_id == "A,B"
    assert read_model_reference(path, "B", both).chain_id == "B"


def test_a_state_s_residues_are_matched_by_the_file_s_numbers(tmp_path):
    from cryosampler.evaluation.ensemble_analysis import state_ca

    reference = read_structure(_two_chains(tmp_path))
    # The state lacks chain A's first residue: its internal numbers of chain B shift by one; its file numbers do not.
    state = read_structure(_two_chains(tmp_path))
    trimmed = tmp_path / "trimmed.pdb"
    keep = ~((state.chain_ids == "A") & (state.author_nums == 1))
    write_pdb(trimmed, dataclasses.replace(state, coords=state.coords[keep] + 1.0, elements=state.elements[keep],
                                           atomic_numbers=state.atomic_numbers[keep],
                                           atom_names=state.atom_names[keep], res_names=state.res_names[keep],
                                           res_nums=state.res_nums[keep], chain_ids=state.chain_ids[keep],
                                           author_nums=state.author_nums[keep],
                                           insertion_codes=state.insertion_codes[keep]))
    with pytest.raises(ValueError, match=r"trimmed.pdb: no CA atom for 1 of the 22 residues .*\(by residue number: A 1\)"):
        state_ca(read_structure(trimmed), reference, str(trimmed))
    full = state_ca(state, reference, "state")
    np.testing.assert_allclose(full, reference.coords[reference.backbone_index[:, 1]])
