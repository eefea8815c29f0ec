"""How the computation runs: the device named by ``--device`` and torchrun's process group.

Device specs: ``auto`` (CUDA when a GPU is present, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``.
Under ``torchrun`` (``WORLD_SIZE`` > 1) :func:`distributed` joins the process group that torchrun's
environment describes: backend gloo on the CPU, nccl on CUDA, one GPU per process (``LOCAL_RANK``).
"""

from __future__ import annotations

import atexit
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["resolve_device", "Distributed", "distributed", "torchrun_rank", "torchrun_world_size"]

def resolve_device(spec: str | torch.device) -> torch.device:
    """``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` → torch.device; ValueError for a bad spec or a missing GPU.

    ``auto`` is ``cuda`` (the current GPU) when CUDA is available, else ``cpu``. Nothing falls back to the
    CPU silently: asking for a GPU that is not there is an error.
    """
    # torch is imported where it is used: the command line reads torchrun's environment (torchrun_rank,
    # torchrun_world_size) to check its arguments before it loads torch, which takes seconds.
    import torch

    text = str(spec).strip().lower()
    if text == "auto":
        text = "cuda" if torch.cuda.is_available() else "cpu"
    match = re.fullmatch(r"cpu|cuda(?::(\d+))?", text)
    if match is None:
        raise ValueError(f"device {str(spec)!r} is not one of auto, cpu, cuda, cuda:N (N a GPU number)")
    if text == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError(f"device {str(spec)!r}: CUDA is not available here (no GPU, or a CPU-only torch); "
                         "use --device cpu or auto")
    count = torch.cuda.device_count()
    index = torch.cuda.current_device() if match.group(1) is None else int(match.group(1))
    if index >= count:
        raise ValueError(f"device {str(spec)!r}: there {'is' if count == 1 else 'are'} only {count} GPU(s), "
                         f"cuda:0 to cuda:{count - 1}")
    return torch.device("cuda", index)


@dataclass(frozen=True)
class Distributed:
    """This process's place in a torchrun job (rank 0 of 1 without torchrun)."""

    rank: int
    world_size: int
    device: torch.device  # this process's device: under torchrun on CUDA, cuda:LOCAL_RANK

    @property
    def active(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, str(default))
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer (set by torchrun)") from None


def torchrun_world_size() -> int:
    """The number of processes torchrun started (``WORLD_SIZE``), 1 without torchrun."""
    return _env_int("WORLD_SIZE", 1)


def torchrun_rank() -> int:
    """This process's rank among them (``RANK``), 0 without torchrun."""
    return _env_int("RANK", 0)


def distributed(device: torch.device) -> Distributed:
    """Join torchrun's process group when ``WORLD_SIZE`` > 1, unless this process has joined already.

    gloo on the CPU, nccl on CUDA, where each process takes ``cuda:LOCAL_RANK``. Without torchrun (or with
    one process) nothing is set up: rank 0 of 1 on ``device``. The group is left at the process's exit,
    not before: torchrun's store keeps a left group's addresses, and a rank that joins again before the
    others have left can connect to a stale one and wait forever.
    """
    import torch
    import torch.distributed as dist

    if torchrun_world_size() <= 1:
        return Distributed(0, 1, device)
    if not dist.is_available():
        raise ValueError("WORLD_SIZE > 1 (torchrun) but this torch has no torch.distributed")
    if device.type == "cuda":
        device = torch.device("cuda", _env_int("LOCAL_RANK", 0))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        atexit.register(dist.destroy_process_group)
    return Distributed(dist.get_rank(), dist.get_world_size(), device)
