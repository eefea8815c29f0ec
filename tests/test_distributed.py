"""DistributedDataParallel under torchrun (gloo, two CPU processes): the ranks agree, the global batch does not
depend on the number of processes, and a run resumes on another number of processes."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cryosampler.model.encoder import ENCODER_PRESETS
from cryosampler.physics.frame import principal_axes_template
from cryosampler.model.denoiser import ModelConfig
from cryosampler.io.grid import MapGrid
from cryosampler.training import TrainConfig, train
from cryosampler.model.checkpoint import load_checkpoint

from conftest import TINY_GRID, make_helix, tiny_examples

MODEL = ModelConfig(encoder=ENCODER_PRESETS["smoke"], grid=MapGrid(**TINY_GRID))
CONFIGS = {
    "identical": TrainConfig(steps=3, batch_size=4, warmup=1, checkpoint_every=3, lr=1e-3),
    "one_step": TrainConfig(steps=1, batch_size=8, warmup=1, checkpoint_every=1, lr=1e-3),
    "one_step_rotated": TrainConfig(steps=1, batch_size=8, warmup=1, checkpoint_every=1, lr=1e-3, rotate=True),
    "resume": TrainConfig(steps=4, batch_size=4, warmup=1, checkpoint_every=2, lr=1e-3),
}


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """OUT_DIR of tests/ddp_train.py run by torchrun with two gloo processes, and its stdout."""
    out = tmp_path_factory.mktemp("ddp")
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")  # gloo on the CPU even on a GPU machine
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--standalone",
                             str(Path(__file__).parent / "ddp_train.py"), str(out)],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return out, result.stdout


def _single_process(config_name, out_dir):
    structure = make_helix()
    train(tiny_examples(structure), MODEL, CONFIGS[config_name], principal_axes_template(structure), out_dir,
          progress=False)
    return load_checkpoint(out_dir / "checkpoint.pt")


def test_two_ranks_end_with_identical_parameters_and_rank_zero_alone_writes(two_ranks):
    out, stdout = two_ranks
    rank0, rank1 = (torch.load(out / "identical" / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name
    assert load_checkpoint(out / "identical" / "checkpoint.pt")["step"] == 3
    assert (out / "identical" / "train_log.csv").read_text().count("\n") == 1 + 3
    assert stdout.count("step 3/3 ") == 1  # one progress line: rank 0's


@pytest.mark.parametrize("config_name", ["one_step", "one_step_rotated"])  # rotations drawn alike on every rank
def test_two_ranks_of_batch_four_equal_one_process_of_batch_eight(two_ranks, tmp_path, config_name):
    out, _ = two_ranks
    ddp = load_checkpoint(out / config_name / "checkpoint.pt")
    single = _single_process(config_name, tmp_path)
    for key in ("model", "ema"):
        for name, value in single[key].items():
            torch.testing.assert_close(ddp[key][name], value, rtol=1e-4, atol=1e-6, msg=f"{key} {name}")


def test_a_two_rank_checkpoint_resumes_in_one_process(two_ranks, tmp_path):
    out, _ = two_ranks
    assert load_checkpoint(out / "resume" / "checkpoint.pt")["step"] == 2
    resumed = _single_process("resume", out / "resume")
    straight = _single_process("resume", tmp_path)
    assert resumed["step"] == straight["step"] == 4
    for name, value in straight["model"].items():
        torch.testing.assert_close(resumed["model"][name], value, rtol=1e-4, atol=1e-6, msg=name)
