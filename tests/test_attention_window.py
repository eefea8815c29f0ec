"""Attention within windows of residues (model.encoder.DiTBlock's ``window``), which `train` uses for large
references (model.encoder.default_attention_window), and its command-line option."""

import pytest
import torch

import cryosampler.cli as cli
from cryosampler.model.encoder import DiTBlock, default_attention_window

from test_cli_train import one_line_error
from test_chains import _two_chains
from test_ingest import write_user_map


def _block(window: int, shifted: bool) -> DiTBlock:
    torch.manual_seed(0)
    block = DiTBlock(16, 2, 2.0, window, shifted)
    for p in block.parameters():  # adaLN-Zero starts as the identity: give every weight a value
        torch.nn.init.normal_(p, std=0.3)
    return block


def _inputs(B=2, T=21, C=16):
    g = torch.Generator().manual_seed(1)
    return torch.randn(B, T, C, generator=g), torch.randn(B, C, generator=g)


@pytest.mark.parametrize("shifted", [False, True])
def test_windows_are_full_attention_on_each_stretch_of_tokens(shifted):
    x, cond = _inputs()
    windowed, full = _block(6, shifted), _block(0, False)
    full.load_state_dict(windowed.state_dict())
    mask = torch.ones(x.shape[:2], dtype=torch.bool)
    got = windowed(x, cond, mask)
    # The same block without windows, run on each window alone (the first one half as long when shifted): the token
    # mixing is attention's only, so each window's outputs are those of full attention over that window.
    edges = [0, 3, 9, 15, 21] if shifted else [0, 6, 12, 18, 21]
    parts = [full(x[:, a:b], cond, mask[:, a:b]) for a, b in zip(edges[:-1], edges[1:])]
    torch.testing.assert_close(got, torch.cat(parts, dim=1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shifted", [False, True])
def test_a_protein_s_windows_do_not_depend_on_what_is_padded_into_its_batch(shifted):
    x, cond = _inputs(T=12)
    block = _block(4, shifted)
    mask = torch.ones(x.shape[:2], dtype=torch.bool)
    mask[1, 5:] = False  # the second protein has 5 tokens, padded to the batch's 12
    out = block(x, cond, mask)
    # Alone, it gives what it gives in the batch, whatever the padding holds; nothing is NaN even where a whole
    # window is padding.
    alone = block(x[1:, :5], cond[1:], mask[1:, :5])
    torch.testing.assert_close(out[1:, :5], alone, rtol=1e-5, atol=1e-5)
    changed = x.clone()
    changed[1, 5:] = 100.0
    torch.testing.assert_close(block(changed, cond, mask)[1, :5], out[1, :5], rtol=1e-5, atol=1e-5)
    assert torch.isfinite(out).all()


def test_one_unshifted_window_as_long_as_the_chain_is_full_attention():
    x, cond = _inputs(T=12)
    windowed, full = _block(12, False), _block(0, False)
    full.load_state_dict(windowed.state_dict())
    mask = torch.ones(x.shape[:2], dtype=torch.bool)
    torch.testing.assert_close(windowed(x, cond, mask), full(x, cond, mask), rtol=1e-5, atol=1e-5)


def test_train_chooses_windows_only_for_large_references_and_takes_the_option(tmp_path, capsys):
    from cryosampler.model.checkpoint import load_checkpoint

    assert default_attention_window(2048) == 0 and default_attention_window(2049) == 256
    path = _two_chains(tmp_path)
    from cryosampler.io.atomic_files import read_structure

    both = read_structure(path)
    (tmp_path / "maps").mkdir()
    write_user_map(tmp_path / "maps" / "vol_000.mrc", both.coords, both.atomic_numbers, 2.0, (48, 48, 48))
    common = ["--reference", str(path), "--maps", str(tmp_path / "maps"), "--steps", "2", "--batch-size", "1",
              "--preset", "smoke"]
    assert cli.main(["train", *common, "-o", str(tmp_path / "odd"), "--attention-window", "3", "--quiet"]) == 2
    assert "--attention-window 3: give an even number of tokens" in one_line_error(capsys)
    assert not (tmp_path / "odd").exists()
    assert cli.main(["train", *common, "-o", str(tmp_path / "run"), "--attention-window", "8"]) == 0
    assert "attention within windows of 8 tokens (22 residue tokens;" in capsys.readouterr().err
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert state["model_config"]["autoencoder"]["attention_window"] == 8
    out = tmp_path / "ensemble.pdb"
    assert cli.main(["sample", "--checkpoint", str(tmp_path / "run" / "checkpoint.pt"), "--reference", str(path),
                     "-n", "2", "-o", str(out), "--quiet"]) == 0
    assert cli.main(["train", *common, "-o", str(tmp_path / "full"), "--quiet"]) == 0
    assert load_checkpoint(tmp_path / "full" / "checkpoint.pt")["model_config"]["autoencoder"]["attention_window"] == 0


@pytest.mark.parametrize("family", ["latent", "map"])
def test_resume_refuses_another_attention_window_in_one_line(tmp_path, capsys, family):
    path = _two_chains(tmp_path)
    from cryosampler.io.atomic_files import read_structure

    both = read_structure(path)
    (tmp_path / "maps").mkdir()
    write_user_map(tmp_path / "maps" / "vol_000.mrc", both.coords, both.atomic_numbers, 2.0, (48, 48, 48))
    common = ["--family", family, "--reference", str(path), "--maps", str(tmp_path / "maps"), "--steps", "2",
              "--batch-size", "1", "--preset", "smoke", "-o", str(tmp_path / "run"), "--quiet"]
    assert cli.main(["train", *common, "--attention-window", "8"]) == 0
    assert cli.main(["train", *common, "--resume"]) == 2
    assert "attention_window: 8 → 0" in one_line_error(capsys)
