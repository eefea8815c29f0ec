"""Training loop (A.1): AdamW, EMA, gradient clipping, atomic checkpoints with exact resume."""

from __future__ import annotations

import copy
import csv
import dataclasses
import math
import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from cryosampler.diffusion import add_noise, denoise_loss, sample_times
from cryosampler.featurize import ProteinFeatures, collate, featurize
from cryosampler.files import atomic_path
from cryosampler.frame import Template
from cryosampler.model import CryoSampler, ModelConfig
from cryosampler.simulate import load_maps, load_states
from cryosampler.structural_losses import structural_loss

__all__ = ["TrainConfig", "TRAIN_PRESETS", "TrainingExample", "estimate_sigma_data", "train", "training_examples",
           "save_checkpoint", "load_checkpoint", "model_from_checkpoint", "LOG_COLUMNS"]

LOG_COLUMNS = ["step", "loss", "denoise", "residue", "backbone", "grad_norm", "lr", "seconds"]


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings. Named presets in ``TRAIN_PRESETS``."""

    steps: int = 3000  # measured time per step and in all: the README's performance table
    batch_size: int = 8
    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup: int = 100  # linear learning-rate warm-up steps, then cosine decay to 10 %
    # EMA decay, ramped as min(ema_decay, (1 + k) / (10 + k)) at step k: a fixed 0.999 from step 0 still
    # carried the untrained weights after 1,500 steps and sampled 2.5–3 Å from the states (raw: 0.1–0.4 Å).
    ema_decay: float = 0.999
    grad_clip: float = 1.0  # max global gradient norm
    # λ_R, λ_B (eq. 6). ANM end states do not keep the reference's backbone distances (eq. 8 is 0.31 Å² at
    # the true state of 1EXR), and eq. 5 is a per-voxel mean here: with λ = 1 the denoising loss of the
    # training maps was 12× higher after 1,500 steps (0.017 vs 0.0014 with λ = 0.01).
    lambda_r: float = 0.01
    lambda_b: float = 0.01
    checkpoint_every: int = 250
    seed: int = 0


TRAIN_PRESETS = {
    "full": TrainConfig(),
    "fast": TrainConfig(steps=30, batch_size=4, warmup=5, checkpoint_every=10),
}


@dataclass(frozen=True)
class TrainingExample:
    """One training map V_0 with its protein's reference inputs."""

    protein: ProteinFeatures
    volume: torch.Tensor  # (D, D, D) float32, map units, axes (x, y, z)


def estimate_sigma_data(examples: list[TrainingExample]) -> float:
    """σ_data: the standard deviation of all training-map voxels (eq. 1)."""
    volumes = torch.stack([e.volume for e in examples])
    return float(volumes.std())


def _lr_factor(step: int, config: TrainConfig) -> float:
    if step < config.warmup:
        return (step + 1) / config.warmup
    progress = (step - config.warmup) / max(1, config.steps - config.warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def training_losses(model: CryoSampler, examples: list[TrainingExample], index: torch.Tensor,
                    config: TrainConfig, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """L_total = L_denoise + L_structural (eq. 4) on the batch ``index`` of ``examples``."""
    batch = collate([examples[i].protein for i in index.tolist()])
    v0 = torch.stack([examples[i].volume for i in index.tolist()])  # (B, D, D, D)
    t = sample_times(len(index), generator)  # (B,)
    sigma_data = model.sigma_data
    v_t, _ = add_noise(v0, t, sigma_data, generator)  # eq. 1
    coords, v0_hat = model.denoise(v_t, t, batch)
    denoise = denoise_loss(v0_hat, v0, t, sigma_data, model.config.diffusion)  # eq. 5
    structural = structural_loss(coords, batch.ref_coords, batch.residue_pairs, batch.backbone_pairs,
                                 lambda_r=config.lambda_r, lambda_b=config.lambda_b,
                                 mask_r=batch.residue_pair_mask, mask_b=batch.backbone_pair_mask)  # eq. 6–8
    return {"loss": denoise + structural.total, "denoise": denoise,  # eq. 4
            "residue": structural.residue, "backbone": structural.backbone}


def save_checkpoint(path: Path, state: dict) -> None:
    """Write atomically: a temp file in the same folder, then rename, so a kill never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path) -> dict:
    """Read a checkpoint written by :func:`train`; ValueError if it is missing or not one.

    Loads with ``weights_only=True``: a checkpoint holds only tensors and plain data (configs are dicts),
    so a crafted file that would run code when unpickled is refused. The configs and weights are checked
    against each other, so :func:`model_from_checkpoint` cannot fail on the result.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {path} does not exist (run notebooks/02_train first)")

    def refuse(reason: str) -> ValueError:
        return ValueError(f"{path} is not a CryoSampler checkpoint ({reason}); give the checkpoint.pt written "
                          f"by notebooks/02_train")

    with open(path, "rb") as file:  # an unreadable file is an OSError naming the path, not a format problem
        try:
            with warnings.catch_warnings():  # torch warns about pickle protocols of foreign files
                warnings.simplefilter("ignore")
                state = torch.load(file, map_location="cpu", weights_only=True)
        except Exception as error:  # torch.load raises whatever its unpickler meets in a malformed file
            raise refuse(_load_failure(error)) from None
    if not isinstance(state, dict):
        raise refuse(f"it holds a {type(state).__name__}, not a dict")
    missing = [key for key in _CHECKPOINT_KEYS if key not in state]
    if missing:
        raise refuse(f"no {', '.join(missing)} entr{'y' if len(missing) == 1 else 'ies'}")
    try:
        config = ModelConfig.from_dict(state["model_config"])
        template = Template.from_dict(state["template"])
        sigma_data = float(state["sigma_data"])
    except (KeyError, TypeError, ValueError) as error:
        raise refuse(f"unreadable model_config, template or sigma_data: {type(error).__name__} {error}") from None
    with torch.random.fork_rng(devices=[]):  # model initialisers draw from the global generator
        expected = {k: v.shape for k, v in CryoSampler(config, sigma_data, template).state_dict().items()}
    for key in ("model", "ema"):
        weights = state[key]
        got = {k: getattr(v, "shape", None) for k, v in weights.items()} if isinstance(weights, dict) else {}
        if got != expected:
            differ = sorted(set(got) ^ set(expected)) or [k for k in expected if got[k] != expected[k]]
            raise refuse(f"its {key} weights do not match its model_config, e.g. {differ[0]}")
    return state


# What sampling needs; resuming training needs more (optimizer, generator, train_config), which only
# train() writes.
_CHECKPOINT_KEYS = ("model_config", "template", "sigma_data", "model", "ema")
# What train() writes beyond what sampling needs, and needs to resume.
_RESUME_KEYS = ("step", "optimizer", "generator", "train_config")


def _load_failure(error: Exception) -> str:
    """One line on why torch.load failed."""
    message = str(error)
    unsafe = re.search(r"GLOBAL (\S+)", message)
    if unsafe:
        return f"it asks to import {unsafe.group(1)}, which could run code when loaded; refused"
    # An empty file ends the unpickler early; a cut zip archive fails in torch's reader (EINVAL or miniz).
    if isinstance(error, (EOFError, OSError)) or "central directory" in message:
        return "the file is truncated or damaged"
    return "not a PyTorch file of tensors and plain data"


def model_from_checkpoint(state: dict, use_ema: bool = True) -> CryoSampler:
    """Rebuild the model (EMA weights by default) from a checkpoint dict of :func:`load_checkpoint`."""
    model = CryoSampler(ModelConfig.from_dict(state["model_config"]), state["sigma_data"],
                        Template.from_dict(state["template"]))
    model.load_state_dict(state["ema"] if use_ema else state["model"])
    return model.eval()


def train(examples: list[TrainingExample], model_config: ModelConfig, config: TrainConfig,
          template: Template, out_dir: Path, progress: bool = True) -> CryoSampler:
    """Train (or resume) and return the EMA model.

    Writes ``out_dir/checkpoint.pt`` every ``config.checkpoint_every`` steps and at the end, and
    ``out_dir/train_log.csv`` with every loss term at every step. If a checkpoint exists, training
    resumes from it and ends with the same weights as an uninterrupted run (CPU, same seed): the
    generator state is saved with the weights, and the log is cut back to the checkpoint's step (partial or
    malformed lines left by a kill during a write are dropped with a warning).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path, log_path = out_dir / "checkpoint.pt", out_dir / "train_log.csv"
    generator = torch.Generator().manual_seed(config.seed)

    if ckpt_path.is_file():
        state = load_checkpoint(ckpt_path)
        missing = [key for key in _RESUME_KEYS if key not in state]
        if missing:
            raise ValueError(f"{ckpt_path} cannot be resumed: it has no {', '.join(missing)} (a checkpoint for "
                             f"sampling only?); move it away to train from the start")
        if state["train_config"] != dataclasses.asdict(config):
            raise ValueError(f"{ckpt_path} was written with other training settings; delete it to start over")
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
    ema = copy.deepcopy(model).requires_grad_(False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    if state is not None:
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
    _truncate_log(log_path, start)

    def checkpoint(step: int) -> None:
        save_checkpoint(ckpt_path, {
            "step": step, "model": model.state_dict(), "ema": ema.state_dict(),
            "optimizer": optimizer.state_dict(), "generator": generator.get_state(),
            "sigma_data": float(model.sigma_data), "template": template.to_dict(),
            "model_config": model_config.to_dict(), "train_config": dataclasses.asdict(config),
        })

    bar = tqdm(range(start, config.steps), initial=start, total=config.steps, disable=not progress,
               desc="train")
    with open(log_path, "a", newline="") as log_file:
        writer = csv.DictWriter(log_file, fieldnames=LOG_COLUMNS)
        for step in bar:
            tic = time.perf_counter()
            for group in optimizer.param_groups:
                group["lr"] = config.lr * _lr_factor(step, config)
            index = torch.randint(len(examples), (config.batch_size,), generator=generator)
            losses = training_losses(model, examples, index, config, generator)
            if not torch.isfinite(losses["loss"]):
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
            row = {k: float(v.detach()) for k, v in losses.items()}
            row.update(step=step + 1, grad_norm=float(grad_norm), lr=optimizer.param_groups[0]["lr"],
                       seconds=time.perf_counter() - tic)
            writer.writerow(row)
            bar.set_postfix(loss=f"{row['loss']:.4f}", den=f"{row['denoise']:.4f}",
                            res=f"{row['residue']:.4f}", bb=f"{row['backbone']:.4f}")
            if (step + 1) % config.checkpoint_every == 0 or step + 1 == config.steps:
                log_file.flush()
                checkpoint(step + 1)
    return ema.eval()


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


def training_examples(data_dir: Path, slots: list[str], tokens: str) -> list[TrainingExample]:
    """Both state maps of each protein in ``slots`` with its reference features (files of notebook 01)."""
    examples = []
    for slot in slots:
        reference, coords = load_states(data_dir, slot)
        protein = featurize(reference, coords["ref"], tokens=tokens)
        maps = load_maps(data_dir, slot)
        examples += [TrainingExample(protein, torch.from_numpy(maps[state])) for state in ("A", "B")]
    return examples
