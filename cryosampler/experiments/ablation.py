"""Short equal-budget training runs that compare encoder designs (docs/design.md's ablation;
``benchmarks/ablation.py`` is its command line): which proteins are scored, the settings of a run, and one run
trained on notebook 01's training proteins and scored.

Choose models and settings on the training proteins only. Held-out proteins (validation, test) are scored only
on request, their rows marked "held out (report only)": for reporting a chosen model, never for choosing one.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from cryosampler.evaluation.metrics import score_ensemble
from cryosampler.experiments.simulate import load_states, training_examples
from cryosampler.model.denoiser import ModelConfig
from cryosampler.model.encoder import ENCODER_PRESETS, EncoderConfig
from cryosampler.model.featurize import featurize
from cryosampler.physics.frame import Template
from cryosampler.sampling import sample_ensemble
from cryosampler.training import TrainConfig, train

__all__ = ["choose_proteins", "ablation_configs", "run_ablation"]


def choose_proteins(dataset: pd.DataFrame, proteins: list[str] | None, report_held_out: bool) -> list[str]:
    """The slots to score: ``proteins`` (default: every training slot), plus every held-out slot with
    ``report_held_out``. ValueError for an unknown slot, or a held-out one without ``report_held_out``."""
    split = dict(zip(dataset["slot"], dataset["split"]))
    chosen = list(proteins) if proteins else [slot for slot in split if split[slot] == "train"]
    for slot in chosen:
        if slot not in split:
            raise ValueError(f"--proteins {slot}: not in the dataset; choose from {', '.join(split)}")
        if split[slot] != "train" and not report_held_out:
            raise ValueError(f"--proteins {slot}: a {split[slot]} protein; ablations select on training proteins "
                             "only. Add --report-held-out to score it for reporting (not for model selection)")
    if report_held_out:
        chosen += [slot for slot in split if split[slot] != "train" and slot not in chosen]
    return chosen


def ablation_configs(preset: str, steps: int, seed: int, precision: str, sequence_features: bool = True,
                     lambda_r: float | None = None, lambda_b: float | None = None) -> tuple[EncoderConfig, TrainConfig]:
    """The encoder (``ENCODER_PRESETS[preset]``, without residue-type and atom-name embeddings unless
    ``sequence_features``) and the training settings of one run; ``lambda_r``, ``lambda_b`` None keep
    TrainConfig's."""
    encoder = ENCODER_PRESETS[preset]
    if not sequence_features:
        encoder = dataclasses.replace(encoder, sequence_features=False)
    config = TrainConfig(steps=steps, seed=seed, precision=precision)
    for name, value in (("lambda_r", lambda_r), ("lambda_b", lambda_b)):
        if value is not None:
            config = dataclasses.replace(config, **{name: value})
    return encoder, config


def run_ablation(out: Path, data_dir: Path, dataset: pd.DataFrame, template: Template | None, proteins: list[str],
                 encoder: EncoderConfig, config: TrainConfig, device: torch.device, sampling_seeds: list[int],
                 method: str, preset: str, on_row: Callable[[dict], None] | None = None) -> pd.DataFrame:
    """Train on the training proteins of ``dataset`` (notebook 01's, in ``data_dir``; ``train()``, as notebook
    02; its ``train_log.csv`` lands in ``out``), then sample 16 conformations × 100 DDIM steps per sampling seed of
    each of ``proteins`` (:func:`choose_proteins`) and score them (``score_ensemble``).

    Returns a row per protein and sampling seed: ``slot``, ``split``, ``seed``, ``use`` ("selection" or "held out
    (report only)"), the closest-sample RMSD per state and the state occupancy, ``sample_seconds``, and the
    run's settings (``method``, ``preset``, …, ``train_seconds_per_step``, ``device``); the columns
    ``tables.table1`` reads. ``out/result.csv`` is rewritten after every ensemble, so a run stopped part-way keeps
    what it scored; ``on_row`` is called with each row as it is scored.
    """
    train_slots = list(dataset.loc[dataset["split"] == "train", "slot"])
    examples = training_examples(data_dir, train_slots, tokens=encoder.tokens)
    tic = time.perf_counter()
    model = train(examples, ModelConfig(encoder=encoder), config, template, out, progress=False, device=device)
    seconds_per_step = (time.perf_counter() - tic) / config.steps
    settings = {"method": method, "preset": preset,
                "sequence_features": encoder.sequence_features, "precision": config.precision, "steps": config.steps,
                "train_seed": config.seed, "lambda_r": config.lambda_r, "lambda_b": config.lambda_b,
                "train_seconds_per_step": seconds_per_step, "device": str(device)}
    rows = []
    for slot in proteins:
        reference, coords = load_states(data_dir, slot)
        protein = featurize(reference, coords["ref"], tokens=encoder.tokens)
        split = dataset.set_index("slot").loc[slot, "split"]
        for seed in sampling_seeds:
            tic = time.perf_counter()
            ensemble = sample_ensemble(model, protein, 16, torch.Generator(device).manual_seed(seed), n_steps=100,
                                       device=device, precision=config.precision)
            score = score_ensemble(ensemble.coords, np.stack([coords["A"], coords["B"]]))
            rows.append({"slot": slot, "split": split, "seed": seed,
                         "use": "selection" if split == "train" else "held out (report only)", **score.summary(),
                         "sample_seconds": time.perf_counter() - tic, **settings})
            if on_row is not None:
                on_row(rows[-1])
            # Rewritten after every ensemble: a run stopped part-way keeps what it scored.
            pd.DataFrame(rows).to_csv(out / "result.csv", index=False)
    return pd.DataFrame(rows)
