"""Training: a step lowers the loss, resume after a kill equals an uninterrupted run, NaN stops cleanly;
malformed or crafted checkpoints are refused with one line."""

import dataclasses
import re

import numpy as np
import pandas as pd
import pytest
import torch

import cryosampler.training as training
from cryosampler.encoder import ENCODER_PRESETS
from cryosampler.frame import principal_axes_template
from cryosampler.model import CryoSampler, ModelConfig
from cryosampler.render import MapGrid
from cryosampler.mrc import write_mrc
from cryosampler.training import (TrainConfig, load_checkpoint, model_from_checkpoint, save_checkpoint, train,
                                  training_losses)

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


def test_missing_checkpoint_says_which_notebook_to_run(tmp_path):
    with pytest.raises(ValueError, match="02_train"):
        load_checkpoint(tmp_path / "nope.pt")


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
