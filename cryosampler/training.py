"""Training loop (A.1): AdamW, EMA, gradient clipping, checkpoints (:mod:`cryosampler.model.checkpoint`) with
exact resume; on the CPU, one GPU, or several processes under torchrun (DistributedDataParallel)."""

from __future__ import annotations

import contextlib
import copy
import csv
import dataclasses
import math
import signal
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from cryosampler.augment import rotate_examples
from cryosampler.device import Distributed, distributed, resolve_device
from cryosampler.io.files import atomic_path
from cryosampler.model.checkpoint import CHECKPOINT_FORMAT, config_difference, load_checkpoint, save_checkpoint
from cryosampler.model.denoiser import CryoSampler, ModelConfig, check_precision
from cryosampler.model.diffusion import add_noise, denoise_loss, sample_times
from cryosampler.model.featurize import ProteinFeatures, collate
from cryosampler.model.structural_losses import structural_loss
from cryosampler.physics.frame import Template

__all__ = ["TrainConfig", "TRAIN_PRESETS", "TrainingExample", "estimate_sigma_data", "train", "TrainingInterrupted",
           "LOG_COLUMNS", "check_weights", "draw_weighted"]

LOSS_TERMS = ["loss", "denoise", "residue", "backbone"]
LOG_COLUMNS = ["step", *LOSS_TERMS, "grad_norm", "lr", "seconds"]


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings. Named presets in ``TRAIN_PRESETS``."""

    steps: int = 3000  # measured time per step and in all: docs/performance.md
    batch_size: int = 8
    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup: int = 100  # linear learning-rate warm-up steps, then cosine decay to 10 %
    # EMA decay, ramped as min(ema_decay, (1 + k) / (10 + k)) at step k: a fixed 0.999 from step 0 still
    # carried the untrained weights after a full run (docs/design.md, "EMA warm-up").
    ema_decay: float = 0.999
    grad_clip: float = 1.0  # max global gradient norm
    # λ_R, λ_B (eq. 6). ANM end states do not keep the reference's backbone distances, and eq. 5 is a
    # per-voxel mean here: with λ = 1 the structural terms fought the maps (docs/design.md, "Loss weights").
    lambda_r: float = 0.01
    lambda_b: float = 0.01
    # Also written at the end, and at the end of the step when SIGINT (Ctrl-C) or SIGTERM arrives. Does not
    # change the weights.
    checkpoint_every: int = 250
    seed: int = 0
    # Encoder arithmetic, "fp32" or "bf16" (autocast of the encoder only; CryoSampler.atoms says why).
    # fp32 until notebook 02's fp32-vs-bf16 loss curves show bf16 loses nothing.
    precision: str = "fp32"
    # A progress line (step, loss terms, s/step, ETA) on stdout every log_every steps: papermill and
    # ./run_all.sh show it while training runs. Does not change the weights.
    log_every: int = 100
    # Turn each training map and its reference by one of the cube's 24 rotations, drawn per example
    # (augment.py says why these). Off for the calmodulin models, whose proteins share one template frame,
    # and for notebook 06's model of seven proteins, which learned its own maps far worse with it in the
    # steps the hour allows (docs/results.md, "Domain motions of real proteins").
    rotate: bool = False

    def __post_init__(self):
        check_precision(self.precision)
        if self.log_every < 1:
            raise ValueError(f"TrainConfig.log_every must be a positive number of steps, got {self.log_every}")
        if self.checkpoint_every < 1:
            raise ValueError(f"TrainConfig.checkpoint_every must be a positive number of steps, got "
                             f"{self.checkpoint_every}")


TRAIN_PRESETS = {
    "default": TrainConfig(),
    "smoke": TrainConfig(steps=30, batch_size=4, warmup=5, checkpoint_every=10, log_every=10),
}

# TrainConfig fields that do not change the weights, so a resumed run may set them otherwise.
_NEUTRAL_SETTINGS = ("log_every", "checkpoint_every")


@dataclass(frozen=True)
class TrainingExample:
    """One training map V_0 with its protein's reference inputs."""

    protein: ProteinFeatures
    volume: torch.Tensor  # (D, D, D) float32, map units, axes (x, y, z)


def estimate_sigma_data(examples: list[TrainingExample]) -> float:
    """σ_data: the standard deviation of all training-map voxels (eq. 1)."""
    volumes = torch.stack([e.volume for e in examples])
    return float(volumes.std())


def check_weights(weights) -> torch.Tensor:
    """``weights`` as a (M,) float64 tensor, or ValueError unless they are finite, ≥ 0 and not all 0."""
    weights = torch.as_tensor(weights, dtype=torch.float64)
    if weights.ndim != 1 or not bool(torch.isfinite(weights).all()) or bool((weights < 0).any()) \
            or not weights.sum() > 0:
        raise ValueError(f"map weights must be finite, ≥ 0 and not all 0, one per map; got {weights.tolist()}")
    return weights


def draw_weighted(weights: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` indices into ``weights`` (M,), each drawn with probability ∝ its weight (with replacement): (n,) int64
    on ``generator``'s device."""
    return torch.multinomial(check_weights(weights).to(generator.device), n, replacement=True, generator=generator)


def _lr_factor(step: int, config: TrainConfig) -> float:
    if step < config.warmup:
        return (step + 1) / config.warmup
    progress = (step - config.warmup) / max(1, config.steps - config.warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def training_losses(model: CryoSampler | DistributedDataParallel, examples: list[TrainingExample],
                    index: torch.Tensor, config: TrainConfig, generator: torch.Generator,
                    shard: slice = slice(None)) -> dict[str, torch.Tensor]:
    """L_total = L_denoise + L_structural (eq. 4) on the part ``shard`` of the batch ``index`` of ``examples``.

    model: a CryoSampler, or one wrapped in DistributedDataParallel (whose forward synchronises gradients).
    generator: on the model's device; the batch goes there.
    shard: this process's slice of the global batch ``index`` under torchrun. The rotations (config.rotate),
    the times and the noise are drawn for the whole global batch and then sliced, so every sample's draws, and
    the mean gradient over the processes, are those of one process taking the whole batch.
    """
    net = model.module if isinstance(model, DistributedDataParallel) else model
    device = generator.device
    v0 = torch.stack([examples[i].volume for i in index.tolist()]).to(device)  # (B, D, D, D)
    proteins = [examples[i].protein for i in index.tolist()]
    if config.rotate:  # drawn for the global batch, like the times and the noise
        v0, proteins = rotate_examples(v0, proteins, net.config.grid, generator)
    t = sample_times(len(index), generator)  # (B,)
    sigma_data = net.sigma_data
    v_t, _ = add_noise(v0, t, sigma_data, generator)  # eq. 1
    v0, v_t, t = v0[shard], v_t[shard], t[shard]
    batch = collate(proteins[shard]).to(device)
    coords, v0_hat = model(v_t, t, batch, config.precision)  # denoise(): X (B, G, N, 3), V̂_0
    denoise = denoise_loss(v0_hat, v0, t, sigma_data, net.config.diffusion)  # eq. 5
    # Every component is a structure of the protein: eq. 6–8 on each, averaged over the batch and the G components.
    repeat = lambda x: x.repeat_interleave(coords.shape[1], dim=0)  # (B, …) → (B·G, …)
    structural = structural_loss(coords.flatten(0, 1), repeat(batch.ref_coords), repeat(batch.residue_pairs),
                                 repeat(batch.backbone_pairs), lambda_r=config.lambda_r, lambda_b=config.lambda_b,
                                 mask_r=repeat(batch.residue_pair_mask),
                                 mask_b=repeat(batch.backbone_pair_mask))  # eq. 6–8
    return {"loss": denoise + structural.total, "denoise": denoise,  # eq. 4
            "residue": structural.residue, "backbone": structural.backbone}


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped training at the end of a step, after the checkpoint of that step was written."""

    def __init__(self, step: int, steps: int, checkpoint: Path):
        super().__init__(f"stopped after step {step} of {steps}; the run is saved in {checkpoint} and continues "
                         "from there with --resume")
        self.step, self.steps, self.checkpoint = step, steps, checkpoint


@contextlib.contextmanager
def _deferred_interrupts():
    """For the block, SIGINT and SIGTERM only append their number to the list it gives, so that a step is never
    cut in half (weights half updated): the loop checkpoints and stops at the end of the step. A second one
    interrupts at once. Outside the main thread, where no handler can be set, signals are left alone."""
    received = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def defer(signum, frame):
        if received:
            raise KeyboardInterrupt
        received.append(signum)

    previous = {sig: signal.signal(sig, defer) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stop_requested(received: list, run: Distributed) -> bool:
    """Whether any process received SIGINT or SIGTERM: under torchrun all stop at the same step."""
    if not run.active:
        return bool(received)
    flag = torch.tensor([float(bool(received))], device=run.device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


# What train() writes beyond what sampling needs, and needs to resume.
_RESUME_KEYS = ("step", "optimizer", "generator", "train_config")


def train(examples: list[TrainingExample], model_config: ModelConfig, config: TrainConfig,
          template: Template | None, out_dir: Path, progress: bool = True, device: str | torch.device = "cpu",
          proteins: tuple[dict, ...] = (), lines: bool = True, weights: list[float] | None = None) -> CryoSampler:
    """Train (or resume) and return the EMA model (on ``device``).

    Writes ``out_dir/checkpoint.pt`` every ``config.checkpoint_every`` steps and at the end, and
    ``out_dir/train_log.csv`` with every loss term at every step; prints a progress line every
    ``config.log_every`` steps and at the end (``lines``; ``progress``: the progress bar). SIGINT (Ctrl-C) or
    SIGTERM ends the step under way, writes its checkpoint and raises :class:`TrainingInterrupted`. If a
    checkpoint exists, training resumes from it and ends with the same
    weights as an uninterrupted run (CPU, same seed): the generator state is saved with the weights, and
    the log is cut back to the checkpoint's step (partial or malformed lines left by a kill during a write
    are dropped with a warning).

    device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (:func:`~cryosampler.device.resolve_device`). Model,
    maps, noise and batches live there; the random stream is a generator on that device, so a run
    resumes on the same kind of device it started on.

    template: the common frame of the examples' proteins, or None when each is on its own principal axes
    (frame.principal_placement; several proteins' own maps). proteins: what the model was trained on, stored in
    the checkpoint for the sample command to compare a user's protein with: ({"name": str, "sequence": str}, …).
    weights: (M,) ≥ 0, how often each example is drawn (:func:`draw_weighted`; default uniform, as before weights
    existed: the same draws).

    Under torchrun (``WORLD_SIZE`` > 1) the processes train one DistributedDataParallel model (gloo on the
    CPU, nccl on CUDA): every process draws the same global batch of ``config.batch_size`` examples, times
    and noise from the seeded generator and computes its own slice of it, so the result does not depend
    on the number of processes (up to float rounding) and a run can resume on another number. Rank 0
    alone writes the checkpoint, the log and the progress lines.
    """
    run = distributed(resolve_device(device))
    model = _train(examples, model_config, config, template, Path(out_dir), progress, lines, run, proteins,
                       weights)
    if run.active:  # every rank returns once rank 0 has written the last checkpoint
        dist.barrier()
    return model


def _train(examples, model_config, config, template, out_dir, progress, lines, run, proteins,
           weights) -> CryoSampler:
    if config.batch_size % run.world_size:
        raise ValueError(f"batch_size {config.batch_size} does not split evenly over {run.world_size} processes; "
                         f"choose a multiple of {run.world_size}")
    device, main = run.device, run.rank == 0
    per_rank = config.batch_size // run.world_size
    shard = slice(run.rank * per_rank, (run.rank + 1) * per_rank)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path, log_path = out_dir / "checkpoint.pt", out_dir / "train_log.csv"
    generator = torch.Generator(device).manual_seed(config.seed)

    if ckpt_path.is_file():
        state = load_checkpoint(ckpt_path)
        _check_resumable(state, ckpt_path, config, proteins, device, model_config)
        model = CryoSampler(model_config, state["sigma_data"], template)
        model.load_state_dict(state["model"])
        generator.set_state(state["generator"])
        start = state["step"]
    else:
        # nn.Module initialisers draw from torch's global generator: fork it so that the caller's is untouched.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            model = CryoSampler(model_config, estimate_sigma_data(examples), template)
        state, start = None, 0
    model.to(device)
    examples = [dataclasses.replace(e, volume=e.volume.to(device)) for e in examples]
    ema = copy.deepcopy(model).requires_grad_(False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    if state is not None:
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
    wrapped = model
    if run.active:
        wrapped = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if main:
        _truncate_log(log_path, start)

    def checkpoint(step: int) -> None:
        save_checkpoint(ckpt_path, {
            "format": CHECKPOINT_FORMAT, "step": step, "model": model.state_dict(), "ema": ema.state_dict(),
            "optimizer": optimizer.state_dict(), "generator": generator.get_state(),
            "generator_device": device.type,
            "sigma_data": float(model.sigma_data), "template": None if template is None else template.to_dict(),
            "proteins": list(proteins),
            "model_config": model_config.to_dict(), "train_config": dataclasses.asdict(config),
        })

    bar = tqdm(range(start, config.steps), initial=start, total=config.steps, disable=not progress or not main,
               desc="train")
    since_line = []  # seconds of the steps since the last progress line
    with ((open(log_path, "a", newline="") if main else contextlib.nullcontext()) as log_file,
          _deferred_interrupts() as received):
        writer = csv.DictWriter(log_file, fieldnames=LOG_COLUMNS) if main else None
        for step in bar:
            tic = time.perf_counter()
            values, grad_norm = _optimisation_step(step, model, wrapped, ema, optimizer, examples, weights, config,
                                                   generator, shard, run, ckpt_path)
            due = (step + 1) % config.checkpoint_every == 0 or step + 1 == config.steps
            if main:
                row = dict(zip(LOSS_TERMS, values.tolist()))
                row.update(step=step + 1, grad_norm=float(grad_norm), lr=optimizer.param_groups[0]["lr"],
                           seconds=time.perf_counter() - tic)
                writer.writerow(row)
                bar.set_postfix(loss=f"{row['loss']:.4f}", den=f"{row['denoise']:.4f}",
                                res=f"{row['residue']:.4f}", bb=f"{row['backbone']:.4f}")
                since_line.append(row["seconds"])
                if lines and ((step + 1) % config.log_every == 0 or step + 1 == config.steps):
                    tqdm.write(_progress_line(row, sum(since_line) / len(since_line), config.steps))
                    since_line.clear()
                if due:
                    log_file.flush()
                    checkpoint(step + 1)
            if _stop_requested(received, run):
                if main and not due:
                    log_file.flush()
                    checkpoint(step + 1)
                bar.close()
                raise TrainingInterrupted(step + 1, config.steps, ckpt_path)
    return ema.eval()


def _optimisation_step(step: int, model: CryoSampler, wrapped: CryoSampler | DistributedDataParallel,
                       ema: CryoSampler, optimizer: torch.optim.Optimizer, examples: list[TrainingExample],
                       weights: list[float] | None, config: TrainConfig, generator: torch.Generator, shard: slice, run: Distributed,
                       ckpt_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimisation step (eq. 4) and the EMA update. Returns the batch's mean loss terms over all processes
    ((len(LOSS_TERMS),) tensor) and the gradient norm before clipping."""
    for group in optimizer.param_groups:
        group["lr"] = config.lr * _lr_factor(step, config)
    if weights is None:
        index = torch.randint(len(examples), (config.batch_size,), generator=generator, device=generator.device)
    else:
        index = draw_weighted(torch.as_tensor(weights), config.batch_size, generator)
    losses = training_losses(wrapped, examples, index, config, generator, shard)
    values = torch.stack([losses[k].detach() for k in LOSS_TERMS])
    if run.active:  # the global batch's mean, for the log and so every rank stops on a bad loss
        dist.all_reduce(values)
        values /= run.world_size
    if not torch.isfinite(values[0]):
        raise FloatingPointError(
            f"non-finite loss at step {step} ({ {k: float(v.detach()) for k, v in losses.items()} }); "
            f"the last good checkpoint is {ckpt_path}")
    optimizer.zero_grad(set_to_none=True)
    losses["loss"].backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    optimizer.step()
    decay = min(config.ema_decay, (1 + step) / (10 + step))
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters()):
            e.lerp_(p, 1 - decay)
    return values, grad_norm


def _check_resumable(state: dict, ckpt_path: Path, config: TrainConfig, proteins: tuple[dict, ...],
                     device: torch.device, model_config: ModelConfig) -> None:
    """ValueError unless the checkpoint ``state`` can be resumed with ``config``, ``proteins``, ``device`` and
    ``model_config``."""
    missing = [key for key in _RESUME_KEYS if key not in state]
    if missing:
        raise ValueError(f"{ckpt_path} cannot be resumed: it has no {', '.join(missing)} (a checkpoint for "
                         f"sampling only?); move it away to train from the start")
    differs = config_difference(ModelConfig.from_dict(state["model_config"]), model_config)
    if differs is not None:
        raise ValueError(f"{ckpt_path} holds another model ({differs}); resume with the settings it was trained "
                         "with (e.g. the same --chain, --box, --attention-window), or move it away to start over")
    if _weight_settings(state["train_config"]) != _weight_settings(dataclasses.asdict(config)):
        raise ValueError(f"{ckpt_path} was written with other training settings; delete it to start over")
    if "proteins" in state and [p["name"] for p in state["proteins"]] != [p["name"] for p in proteins]:
        raise ValueError(f"{ckpt_path} was trained on proteins {', '.join(p['name'] for p in state['proteins'])}"
                         f", not {', '.join(p['name'] for p in proteins) or 'none named'}; resume with the "
                         "same maps, or move it away to start over")
    # CPU and CUDA generators keep different states; checkpoints older than the device option are CPU.
    written_on = state.get("generator_device", "cpu")
    if written_on != device.type:
        raise ValueError(f"{ckpt_path} was trained on {written_on} and its random stream resumes only "
                         f"there; resume with device {written_on}, or move it away to start over on "
                         f"{device.type}")


def _weight_settings(train_config: dict) -> dict:
    """The training settings (a TrainConfig as dict) that decide the weights. Fields added after a checkpoint
    was written take their defaults, which are what that checkpoint was trained with."""
    settings = dataclasses.asdict(TrainConfig()) | train_config
    return {k: v for k, v in settings.items() if k not in _NEUTRAL_SETTINGS}


def _progress_line(row: dict, seconds_per_step: float, steps: int) -> str:
    """One progress line: step k/K, the loss terms of eq. 4, the mean s/step since the last line, and the ETA."""
    terms = "  ".join(f"{k} {row[k]:.4g}" for k in LOSS_TERMS)
    eta = seconds_per_step * (steps - row["step"])
    eta_text = f"{eta / 60:.0f} min" if eta >= 60 else f"{eta:.0f} s"
    return f"step {row['step']}/{steps}  {terms}  {seconds_per_step:.2f} s/step  ETA {eta_text}"


def _truncate_log(log_path: Path, step: int) -> None:
    """Rewrite the log as its header and its well-formed rows of steps ≤ ``step`` (later rows are redone).

    Rows are flushed only every few hundred steps, so a kill during a write can leave a partial last line
    (no line end) or a garbled one; those are dropped with a warning. The rewrite is atomic, so a kill
    here leaves the previous log. ValueError if ``log_path`` is not a training log (another header).
    """
    rows, dropped = [], 0
    if step > 0 and log_path.is_file():
        # newline="" keeps each line's end, which tells a complete row from a partial one.
        with open(log_path, newline="", errors="replace") as f:
            lines = f.readlines()
        if lines and lines[0].rstrip("\r\n").split(",") != LOG_COLUMNS:
            raise ValueError(f"{log_path} is not a CryoSampler training log (its first line is not "
                             f"{','.join(LOG_COLUMNS)}); move it away to resume training")
        for line in lines[1:]:
            fields = line.rstrip("\r\n").split(",")
            if not line.endswith("\n") or not _is_log_row(fields):
                dropped += 1
            elif int(fields[0]) <= step:
                rows.append(fields)
    if dropped:
        warnings.warn(f"{log_path}: dropped {dropped} partial or malformed line(s), left by a kill during a write",
                      stacklevel=3)
    with atomic_path(log_path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(LOG_COLUMNS)
        writer.writerows(rows)


def _is_log_row(fields: list[str]) -> bool:
    """Whether ``fields`` is a row as ``train`` writes it: a positive integer step, then numbers."""
    if len(fields) != len(LOG_COLUMNS):
        return False
    try:
        step = int(fields[0])
        [float(x) for x in fields[1:]]
    except ValueError:
        return False
    return step >= 1


