"""The checkpoint format: what a trained model's file holds, and how it is written, checked and read back.

A checkpoint is a dict of tensors and plain data (configs as dicts) written with torch.save. Its ``family`` entry
says which model it holds (absent in checkpoints written before the latent family: "map").

- "map", the paper's map-space model (:class:`CryoSampler`): the model and EMA weights, the model config, σ_data,
  the template (or None) and the proteins the model was trained on; a training run adds what resuming needs
  (step, optimizer, generator, train_config; :mod:`cryosampler.training`).
- "latent" (:class:`LatentModel`): its config, σ_data, template and proteins as above, ``weights`` (the
  LatentModel's state dict, the training maps' latents included), ``maps`` (one dict per training map: map,
  protein, weight) and ``stage``: 1 after stage 1 (the prior untrained; ``train --resume`` trains stage 2), 2 when
  done.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import torch

from cryosampler.io.files import atomic_path
from cryosampler.model.denoiser import CryoSampler, ModelConfig
from cryosampler.model.latent_model import LatentModel, LatentModelConfig
from cryosampler.physics.frame import Template

__all__ = ["CHECKPOINT_FORMAT", "FAMILIES", "save_checkpoint", "load_checkpoint", "model_from_checkpoint",
           "family_of", "latent_state", "config_difference"]

# The model families a checkpoint can hold (module docstring).
FAMILIES = ("map", "latent")


def save_checkpoint(path: Path, state: dict) -> None:
    """Write atomically: a temp file in the same folder, then rename, so a kill never leaves half a file.

    Every tensor is written as a CPU tensor, so a checkpoint of a GPU run loads on a machine without one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        # Through a Python file: a full disk is then an OSError (ENOSPC), not torch's writer's "unexpected pos".
        try:
            with open(tmp, "wb") as file:
                torch.save(_to_cpu(state), file)
        except OSError as error:
            raise OSError(error.errno, error.strerror, str(path)) from error


def _to_cpu(value):
    """``value`` with every tensor in it (through dicts, lists and tuples) moved to the CPU."""
    if isinstance(value, torch.Tensor):
        return value.cpu()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(v) for v in value)
    return value


def load_checkpoint(path: Path) -> dict:
    """Read a checkpoint written by :func:`train`; ValueError if it is missing or not one.

    Loads onto the CPU (``map_location``), whatever device wrote it, with ``weights_only=True``: a checkpoint
    holds only tensors and plain data (configs are dicts), so a crafted file that would run code when
    unpickled is refused. The configs and weights are checked
    against each other, so :func:`model_from_checkpoint` cannot fail on the result.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {path} does not exist; give the checkpoint.pt that cryosampler train wrote "
                         "(or notebook 02_train, for the paper's model)")

    def refuse(reason: str) -> ValueError:
        return ValueError(f"{path} is not a CryoSampler checkpoint ({reason}); give the checkpoint.pt that "
                          "cryosampler train wrote (or notebook 02_train)")

    with open(path, "rb") as file:  # an unreadable file is an OSError naming the path, not a format problem
        try:
            with warnings.catch_warnings():  # torch warns about pickle protocols of foreign files
                warnings.simplefilter("ignore")
                state = torch.load(file, map_location="cpu", weights_only=True)
        except Exception as error:  # torch.load raises whatever its unpickler meets in a malformed file
            raise refuse(_load_failure(error)) from None
    if not isinstance(state, dict):
        raise refuse(f"it holds a {type(state).__name__}, not a dict")
    if state.get("family", "map") not in FAMILIES:
        raise refuse(f"unknown model family {state.get('family')!r}; this version knows {', '.join(FAMILIES)}")
    if family_of(state) == "latent":
        _check_latent(state, refuse)
        return state
    _check_entries(state, _CHECKPOINT_KEYS, refuse)
    try:
        config = ModelConfig.from_dict(state["model_config"])
        template = _template(state["template"])
        sigma_data = float(state["sigma_data"])
    except (KeyError, TypeError, ValueError) as error:
        raise refuse(f"unreadable model_config, template or sigma_data: {type(error).__name__} {error}") from None
    _check_proteins(state, refuse)
    if config.encoder.volume_features == "sampled" and state.get("format", 1) < CHECKPOINT_FORMAT:
        raise ValueError(f"{path} was trained before the encoder's feature-alignment fix (2026-11-25): its "
                         "encoder read features at other positions than this version does; retrain it (e.g. "
                         "./run_all.sh, or cryosampler train)")
    with torch.random.fork_rng(devices=[]):  # model initialisers draw from the global generator
        model = CryoSampler(config, sigma_data, template)
    for key in ("model", "ema"):
        _check_shapes(state[key], model, f"its {key} weights", refuse)
    return state


def config_difference(saved: ModelConfig | LatentModelConfig,
                      current: ModelConfig | LatentModelConfig) -> str | None:
    """The first field in which two model configs build different models, as "encoder.attention_window: 0 → 256"
    (saved → current), or None. ``chains`` 0 (a model from before chain embeddings) and 1 build the same model."""

    def flat(d: dict, prefix: str = "") -> dict:
        out = {}
        for key, value in d.items():
            out.update(flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
        return out

    a, b = flat(saved.to_dict()), flat(current.to_dict())
    for key in sorted(a.keys() | b.keys()):
        x, y = a.get(key), b.get(key)
        if key.endswith(".chains"):
            x, y = max(x, 1), max(y, 1)
        if x != y:
            return f"{key}: {x} → {y}"
    return None


def _check_entries(state: dict, keys: tuple[str, ...], refuse, what: str = "") -> None:
    """Raise ``refuse(reason)`` naming the entries of ``keys`` that ``state`` lacks, if any."""
    missing = [key for key in keys if key not in state]
    if missing:
        raise refuse(f"no {', '.join(missing)} entr{'y' if len(missing) == 1 else 'ies'}{what}")


def _check_proteins(state: dict, refuse) -> None:
    """Raise ``refuse(reason)`` unless ``state``'s proteins entry (if any) is a list of names and sequences."""
    proteins = state.get("proteins", [])
    if not isinstance(proteins, list) or not all(isinstance(p, dict) and isinstance(p.get("name"), str)
                                                 and isinstance(p.get("sequence"), str) for p in proteins):
        raise refuse("its proteins entry is not a list of names and sequences")


def _check_shapes(weights, model: torch.nn.Module, what: str, refuse) -> None:
    """Raise ``refuse(reason)`` unless ``weights`` is a state dict with ``model``'s keys and shapes."""
    expected = {k: v.shape for k, v in model.state_dict().items()}
    got = {k: getattr(v, "shape", None) for k, v in weights.items()} if isinstance(weights, dict) else {}
    if got != expected:
        differ = sorted(set(got) ^ set(expected)) or [k for k in expected if got[k] != expected[k]]
        raise refuse(f"{what} do not match its model_config, e.g. {differ[0]}")


def family_of(state: dict) -> str:
    """The model family of a checkpoint dict (:data:`FAMILIES`)."""
    return state.get("family", "map")


_LATENT_KEYS = ("model_config", "template", "sigma_data", "proteins", "weights", "maps", "stage")


def _check_latent(state: dict, refuse) -> None:
    """Raise ``refuse(reason)`` unless ``state`` is a readable latent checkpoint (module docstring)."""
    _check_entries(state, _LATENT_KEYS, refuse, " for a latent model")
    try:
        config = LatentModelConfig.from_dict(state["model_config"])
        template = _template(state["template"])
        sigma_data = float(state["sigma_data"])
        n_maps = len(state["maps"])
    except (KeyError, TypeError, ValueError) as error:
        raise refuse(f"unreadable model_config, template, sigma_data or maps: {type(error).__name__} {error}") \
            from None
    _check_proteins(state, refuse)
    with torch.random.fork_rng(devices=[]):  # model initialisers draw from the global generator
        model = LatentModel(config, sigma_data, template, n_maps)
    _check_shapes(state["weights"], model, "its weights", refuse)


def latent_state(model: LatentModel, proteins: list[dict], maps: list[dict], stage: int) -> dict:
    """A latent checkpoint's dict (module docstring) for ``model``; proteins: name and sequence of each protein
    slot; maps: map (path as given), protein (slot) and weight of each training map, in the model's order."""
    return {"family": "latent", "model_config": model.config.to_dict(),
            "template": None if model.template is None else model.template.to_dict(),
            "sigma_data": float(model.sigma_data), "proteins": list(proteins), "maps": list(maps),
            "weights": model.state_dict(), "stage": int(stage)}


# Version of what a checkpoint's weights mean. 2: the encoder reads each feature level at its own voxel
# centres (encoder.sample_at_atoms). A "sampled"-features model written before (no "format" entry)
# learned its features at other positions: loading it would run, and sample wrongly.
CHECKPOINT_FORMAT = 2


# What sampling needs; resuming training needs more (optimizer, generator, train_config), which only
# train() writes.
_CHECKPOINT_KEYS = ("model_config", "template", "sigma_data", "model", "ema")


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


def _template(entry: dict | None) -> Template | None:
    """A checkpoint's template entry: a Template, or None for a model of proteins each on its own principal axes."""
    return None if entry is None else Template.from_dict(entry)


def model_from_checkpoint(state: dict, use_ema: bool = True) -> CryoSampler | LatentModel:
    """Rebuild the model (a map-space model's EMA weights by default) from a checkpoint dict of
    :func:`load_checkpoint`."""
    if family_of(state) == "latent":
        model = LatentModel(LatentModelConfig.from_dict(state["model_config"]), state["sigma_data"],
                            _template(state["template"]), len(state["maps"]))
        model.load_state_dict(state["weights"])
        return model.eval()
    model = CryoSampler(ModelConfig.from_dict(state["model_config"]), state["sigma_data"],
                        _template(state["template"]))
    model.load_state_dict(state["ema"] if use_ema else state["model"])
    return model.eval()
