"""Training: a step lowers the loss, resume after a kill equals an uninterrupted run, NaN stops cleanly;
malformed or crafted checkpoints are refused with one line."""

import dataclasses
import errno
import os
import re

import numpy as np
import pandas as pd
import pytest
import torch

import cryosampler.model.checkpoint as checkpoint_module
import cryosampler.training as training
from cryosampler.model.encoder import ENCODER_PRESETS
from cryosampler.physics.frame import principal_axes_template
from cryosampler.model.denoiser import CryoSampler, ModelConfig
from cryosampler.io.mrc import write_mrc
from cryosampler.io.grid import MapGrid
from cryosampler.model.structural_losses import structural_loss
from cryosampler.training import TrainConfig, train, training_losses
from cryosampler.model.checkpoint import CHECKPOINT_FORMAT, load_checkpoint, model_from_checkpoint, save_checkpoint

from conftest import TINY_GRID, checkpoint_state, tiny_examples, tiny_model

MODEL = ModelConfig(encoder=ENCODER_PRESETS["smoke"], grid=MapGrid(**TINY_GRID))
CONFIG = TrainConfig(steps=6, batch_size=2, warmup=1, checkpoint_every=3, lr=1e-3)


def test_one_step_reduces_the_loss_on_a_tiny_problem(tiny_structure):
    examples = tiny_examples(tiny_structure)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = CryoSampler(MODEL, training.estimate_sigma_data(examples), principal_axes_template(tiny_structure))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2)
    index = torch.tensor([0, 1])
    before = training_losses(model, examples, index, CONFIG, torch.Generator().manual_seed(5))["loss"]
    optimizer.zero_grad()
    before.backward()
    optimizer.step()
    after = training_losses(model, examples, index, CONFIG, torch.Generator().manual_seed(5))["loss"]
    assert after < before


def test_training_loss_is_denoise_plus_the_eq6_function(tiny_structure, monkeypatch):
    # The structural part of the trained loss must come from structural_loss (the tested eq. 6), not a copy.
    examples = tiny_examples(tiny_structure)
    model = CryoSampler(MODEL, training.estimate_sigma_data(examples), principal_axes_template(tiny_structure))
    calls = []

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return structural_loss(*args, **kwargs)

    monkeypatch.setattr(training, "structural_loss", spy)
    config = dataclasses.replace(CONFIG, lambda_r=0.3, lambda_b=2.0)
    losses = training_losses(model, examples, torch.tensor([0, 1]), config, torch.Generator().manual_seed(5))
    assert len(calls) == 1 and (calls[0]["lambda_r"], calls[0]["lambda_b"]) == (0.3, 2.0)
    torch.testing.assert_close(losses["loss"],
                               losses["denoise"] + 0.3 * losses["residue"] + 2.0 * losses["backbone"])


def test_resume_after_a_kill_matches_an_uninterrupted_run(tiny_structure, tmp_path, monkeypatch):
    examples = tiny_examples(tiny_structure)
    template = principal_axes_template(tiny_structure)
    train(examples, MODEL, CONFIG, template, tmp_path / "straight", progress=False)

    real = training.training_losses
    calls = {"n": 0}

    def dies_at_step_five(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt("simulated kill")
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "training_losses", dies_at_step_five)
    with pytest.raises(KeyboardInterrupt):
        train(examples, MODEL, CONFIG, template, tmp_path / "killed", progress=False)
    assert load_checkpoint(tmp_path / "killed" / "checkpoint.pt")["step"] == 3
    monkeypatch.setattr(training, "training_losses", real)
    train(examples, MODEL, CONFIG, template, tmp_path / "killed", progress=False)

    a = load_checkpoint(tmp_path / "straight" / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "killed" / "checkpoint.pt")
    assert a["step"] == b["step"] == CONFIG.steps
    for key in ("model", "ema"):
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), (key, name)
    log_a = pd.read_csv(tmp_path / "straight" / "train_log.csv")
    log_b = pd.read_csv(tmp_path / "killed" / "train_log.csv")
    assert list(log_b["step"]) == list(range(1, CONFIG.steps + 1))
    pd.testing.assert_frame_equal(log_a.drop(columns="seconds"), log_b.drop(columns="seconds"))


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tiny_structure, tmp_path, monkeypatch):
    examples = tiny_examples(tiny_structure)
    real = training.training_losses
    calls = {"n": 0}

    def nan_at_step_five(*args, **kwargs):
        calls["n"] += 1
        losses = real(*args, **kwargs)
        if calls["n"] == 5:
            losses["loss"] = losses["loss"] * float("nan")
        return losses

    monkeypatch.setattr(training, "training_losses", nan_at_step_five)
    with pytest.raises(FloatingPointError, match="step 4"):
        train(examples, MODEL, CONFIG, principal_axes_template(tiny_structure), tmp_path, progress=False)
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["step"] == 3
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_checkpoint_rebuilds_the_model(tiny_structure, tmp_path):
    examples = tiny_examples(tiny_structure)
    config = dataclasses.replace(CONFIG, steps=2, checkpoint_every=2)
    ema = train(examples, MODEL, config, principal_axes_template(tiny_structure), tmp_path, progress=False)
    rebuilt = model_from_checkpoint(load_checkpoint(tmp_path / "checkpoint.pt"))
    for (name, p), q in zip(ema.state_dict().items(), rebuilt.state_dict().values()):
        assert torch.equal(p, q), name


def test_missing_checkpoint_says_which_command_writes_one(tmp_path):
    with pytest.raises(ValueError, match="give the checkpoint.pt that cryosampler train wrote"):
        load_checkpoint(tmp_path / "nope.pt")


LOG_CONFIG = dataclasses.replace(CONFIG, steps=12, checkpoint_every=10)


def killed_at_step_eleven(examples, template, out_dir, monkeypatch):
    """Train LOG_CONFIG until a kill in step 11: checkpoint at step 10, log rows 1-10."""
    real = training.training_losses
    calls = {"n": 0}

    def dies(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 11:
            raise KeyboardInterrupt("simulated kill")
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "training_losses", dies)
    with pytest.raises(KeyboardInterrupt):
        train(examples, MODEL, LOG_CONFIG, template, out_dir, progress=False)
    monkeypatch.setattr(training, "training_losses", real)
    assert load_checkpoint(out_dir / "checkpoint.pt")["step"] == 10


@pytest.mark.parametrize("damage, kept_steps", [
    # A kill while flushing row 11 after the checkpoint: "1" is the start of "11,...", without a line end.
    (lambda text: text + "1", list(range(1, 13))),
    # A garbled row among those the checkpoint covers.
    (lambda text: text.replace("\n5,", "\n5,@@,", 1), [1, 2, 3, 4] + list(range(6, 13))),
], ids=["partial_last_line", "garbage_row"])
def test_resume_drops_partial_and_malformed_log_lines(tiny_structure, tmp_path, monkeypatch, damage, kept_steps):
    examples = tiny_examples(tiny_structure)
    template = principal_axes_template(tiny_structure)
    killed_at_step_eleven(examples, template, tmp_path, monkeypatch)
    log_path = tmp_path / "train_log.csv"
    text = log_path.read_text()
    assert text.endswith("\n") and text.count("\n") == 11  # header and rows 1-10
    log_path.write_text(damage(text))
    with pytest.warns(UserWarning, match=r"train_log.csv: dropped 1 partial or malformed line"):
        train(examples, MODEL, LOG_CONFIG, template, tmp_path, progress=False)
    log = pd.read_csv(log_path)
    assert list(log["step"]) == kept_steps
    assert list(log.columns) == training.LOG_COLUMNS and log.notna().all().all()
    assert log.drop(columns="step").dtypes.eq(float).all()


def test_resume_refuses_a_log_that_is_not_a_training_log(tiny_structure, tmp_path, monkeypatch):
    examples = tiny_examples(tiny_structure)
    template = principal_axes_template(tiny_structure)
    killed_at_step_eleven(examples, template, tmp_path, monkeypatch)
    log_path = tmp_path / "train_log.csv"
    log_path.write_text("name,value\nmine,1\n")
    with pytest.raises(ValueError, match="is not a CryoSampler training log"):
        train(examples, MODEL, LOG_CONFIG, template, tmp_path, progress=False)
    assert log_path.read_text() == "name,value\nmine,1\n"


def test_log_rewrite_on_resume_is_atomic(tiny_structure, tmp_path, monkeypatch):
    examples = tiny_examples(tiny_structure)
    template = principal_axes_template(tiny_structure)
    killed_at_step_eleven(examples, template, tmp_path, monkeypatch)
    log_path = tmp_path / "train_log.csv"
    before = log_path.read_bytes()

    def refuse(src, dst):
        raise OSError("disk full")

    # A failure while the log is rewritten (a kill, a full disk) must leave the previous log whole.
    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        train(examples, MODEL, LOG_CONFIG, template, tmp_path, progress=False)
    monkeypatch.undo()
    assert log_path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt", "train_log.csv"]


class _RunsCode:
    """Unpickles by calling open(marker, "w"): a stand-in for a checkpoint crafted to run code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def test_checkpoint_that_would_run_code_is_refused_without_running_it(tiny_structure, tmp_path):
    marker = tmp_path / "code_ran"
    state = checkpoint_state(tiny_model(tiny_structure))
    state["payload"] = _RunsCode(marker)
    torch.save(state, tmp_path / "crafted.pt")
    with pytest.raises(ValueError, match=r"crafted.pt is not a CryoSampler checkpoint \(.*could run code"):
        load_checkpoint(tmp_path / "crafted.pt")
    assert not marker.exists()


def _truncated(path, state):
    save_checkpoint(path, state)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _mismatched_weights(path, state):
    # The smoke encoder's weights under a config that builds the default encoder.
    config = dataclasses.replace(MODEL, encoder=ENCODER_PRESETS["default"])
    save_checkpoint(path, dict(state, model_config=config.to_dict()))


def _unknown_encoder_field(path, state):
    config = state["model_config"]
    save_checkpoint(path, dict(state, model_config=dict(config, encoder=dict(config["encoder"], kernel=3))))


BAD_CHECKPOINTS = {
    "truncated": (_truncated, "truncated"),
    "empty": (lambda path, state: path.write_bytes(b""), "truncated"),
    "text": (lambda path, state: path.write_text("step,loss\n1,0.5\n"), "not a PyTorch file"),
    "mrc map": (lambda path, state: write_mrc(path, np.zeros((16, 16, 16), np.float32), MODEL.grid),
                "not a PyTorch file"),
    "not a dict": (lambda path, state: torch.save([state["model"]], path), "holds a list"),
    "missing key": (lambda path, state: save_checkpoint(path, {k: v for k, v in state.items() if k != "template"}),
                    "no template entry"),
    "unknown config field": (_unknown_encoder_field, "unreadable model_config"),
    "weights of another model": (_mismatched_weights, "weights do not match its model_config"),
}


@pytest.mark.parametrize("case", list(BAD_CHECKPOINTS))
def test_malformed_checkpoint_is_one_clear_error(case, tiny_structure, tmp_path):
    write, reason = BAD_CHECKPOINTS[case]
    path = tmp_path / "bad.pt"
    write(path, checkpoint_state(tiny_model(tiny_structure)))
    with pytest.raises(ValueError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert message.startswith(f"{path} is not a CryoSampler checkpoint (") and "\n" not in message
    assert re.search(reason, message), message


def test_resuming_from_a_sampling_only_checkpoint_is_one_clear_error(tiny_structure, tmp_path):
    save_checkpoint(tmp_path / "checkpoint.pt", checkpoint_state(tiny_model(tiny_structure)))
    before = (tmp_path / "checkpoint.pt").read_bytes()
    with pytest.raises(ValueError, match=r"checkpoint.pt cannot be resumed: it has no optimizer, generator, "
                                         r"train_config .*move it away"):
        train(tiny_examples(tiny_structure), MODEL, CONFIG, principal_axes_template(tiny_structure), tmp_path,
              progress=False)
    assert (tmp_path / "checkpoint.pt").read_bytes() == before


def test_bf16_autocast_trains_a_step_with_a_finite_loss_and_fp32_is_the_default(tiny_structure):
    examples = tiny_examples(tiny_structure)
    model = tiny_model(tiny_structure)
    index, losses = torch.tensor([0, 1]), {}
    for precision in ("fp32", "bf16"):
        config = dataclasses.replace(CONFIG, precision=precision)
        losses[precision] = training_losses(model, examples, index, config, torch.Generator().manual_seed(5))
        losses[precision]["loss"].backward()
        assert torch.isfinite(losses[precision]["loss"])
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        model.zero_grad()
    default = training_losses(model, examples, index, CONFIG, torch.Generator().manual_seed(5))
    assert TrainConfig().precision == "fp32" and torch.equal(default["loss"], losses["fp32"]["loss"])
    # bf16 rounds the encoder's arithmetic: a different, nearby loss (the renderer and the loss stay float32).
    assert losses["bf16"]["loss"].dtype == torch.float32
    assert losses["bf16"]["loss"] != losses["fp32"]["loss"]
    torch.testing.assert_close(losses["bf16"]["loss"], losses["fp32"]["loss"], rtol=0.05, atol=0)


@pytest.mark.parametrize("setting, message", [(dict(precision="fp16"), "precision must be one of fp32, bf16"),
                                              (dict(log_every=0), "log_every must be a positive")])
def test_bad_training_settings_are_refused(setting, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(CONFIG, **setting)


def test_a_progress_line_every_log_every_steps_and_at_the_end(tiny_structure, tmp_path, capsys):
    config = dataclasses.replace(CONFIG, steps=5, log_every=2, checkpoint_every=5)
    train(tiny_examples(tiny_structure), MODEL, config, principal_axes_template(tiny_structure), tmp_path,
          progress=False)
    lines = capsys.readouterr().out.strip().splitlines()
    log = pd.read_csv(tmp_path / "train_log.csv")
    assert [int(re.match(r"step (\d+)/5  ", line).group(1)) for line in lines] == [2, 4, 5]
    for line, step in zip(lines, (2, 4, 5)):
        row = log[log["step"] == step].iloc[0]
        assert re.fullmatch(r"step \d/5  loss \S+  denoise \S+  residue \S+  backbone \S+  \d+\.\d\d s/step  "
                            r"ETA \d+ (s|min)", line), line
        assert float(line.split("  loss ")[1].split()[0]) == pytest.approx(row["loss"], rel=1e-3)


def test_a_checkpoint_older_than_the_precision_and_log_settings_resumes(tiny_structure, tmp_path, monkeypatch):
    examples = tiny_examples(tiny_structure)
    template = principal_axes_template(tiny_structure)
    killed_at_step_eleven(examples, template, tmp_path, monkeypatch)
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    old = {k: v for k, v in state["train_config"].items() if k not in ("precision", "log_every")}
    old_state = {k: v for k, v in state.items() if k != "generator_device"}
    save_checkpoint(tmp_path / "checkpoint.pt", dict(old_state, train_config=old))
    # log_every does not change the weights, so it may differ on resume; precision does, so it may not.
    with pytest.raises(ValueError, match="other training settings"):
        train(examples, MODEL, dataclasses.replace(LOG_CONFIG, precision="bf16"), template, tmp_path, progress=False)
    train(examples, MODEL, dataclasses.replace(LOG_CONFIG, log_every=3), template, tmp_path, progress=False)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == LOG_CONFIG.steps


def test_a_sampled_features_checkpoint_from_before_the_alignment_fix_is_refused(tiny_structure, tmp_path):
    state = checkpoint_state(tiny_model(tiny_structure))
    assert state["model_config"]["encoder"]["volume_features"] == "sampled"
    old = {k: v for k, v in state.items() if k != "format"}  # what train() wrote before the fix
    save_checkpoint(tmp_path / "old.pt", old)
    with pytest.raises(ValueError, match="trained before the encoder's feature-alignment fix"):
        load_checkpoint(tmp_path / "old.pt")
    save_checkpoint(tmp_path / "new.pt", state)
    assert load_checkpoint(tmp_path / "new.pt")["format"] == CHECKPOINT_FORMAT


def test_a_full_disk_while_saving_a_checkpoint_names_the_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    # /dev/full answers every write with ENOSPC; torch's own file writer would say "unexpected pos" instead.
    monkeypatch.setattr(checkpoint_module, "open", lambda path, mode: open("/dev/full", mode), raising=False)
    path = tmp_path / "checkpoint.pt"
    with pytest.raises(OSError) as error:
        save_checkpoint(path, {"weights": torch.zeros(100_000)})
    assert error.value.errno == errno.ENOSPC and error.value.filename == str(path)
    assert "No space left on device" in str(error.value) and list(tmp_path.iterdir()) == []
