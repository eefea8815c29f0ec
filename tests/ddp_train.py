"""Run under ``torchrun --nproc-per-node 2 --standalone tests/ddp_train.py OUT_DIR`` by test_distributed.py.

Three trainings of the tiny problem, each through train() as a user would launch it:
  OUT_DIR/identical: 3 steps; each rank saves its DDP model's parameters as rank{R}.pt;
  OUT_DIR/one_step:  1 step of the global batch 8 (4 per rank); OUT_DIR/one_step_rotated: the same with
                     rotation augmentation;
  OUT_DIR/resume:    killed (on both ranks) in step 3 of 4, after the checkpoint at step 2.
"""

import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

sys.path.insert(0, str(Path(__file__).parent))

import cryosampler.training as training
from conftest import make_helix, tiny_examples
from test_distributed import CONFIGS, MODEL

from cryosampler.physics.frame import principal_axes_template

wrapped = []


class Recording(DistributedDataParallel):
    """DistributedDataParallel that keeps a reference to itself, to read this rank's trained parameters."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        wrapped.append(self)


training.DistributedDataParallel = Recording
out = Path(sys.argv[1])
structure = make_helix()
examples, template = tiny_examples(structure), principal_axes_template(structure)

training.train(examples, MODEL, CONFIGS["identical"], template, out / "identical", progress=False)
rank = int(__import__("os").environ["RANK"])
assert len(wrapped) == 1 and dist.is_initialized()  # train() joined torchrun's group
torch.save(wrapped[0].module.state_dict(), out / "identical" / f"rank{rank}.pt")

training.train(examples, MODEL, CONFIGS["one_step"], template, out / "one_step", progress=False)
training.train(examples, MODEL, CONFIGS["one_step_rotated"], template, out / "one_step_rotated", progress=False)

real, calls = training.training_losses, []


def dies_in_step_three(*args, **kwargs):
    calls.append(1)
    if len(calls) == 3:
        raise KeyboardInterrupt("simulated kill")
    return real(*args, **kwargs)


training.training_losses = dies_in_step_three
try:
    training.train(examples, MODEL, CONFIGS["resume"], template, out / "resume", progress=False)
except KeyboardInterrupt:
    pass
