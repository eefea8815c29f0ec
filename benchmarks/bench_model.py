"""Benchmark training and sampling exactly as the notebooks run them: s/step per encoder preset, s per ensemble.

    python benchmarks/bench_model.py [--presets paper default smoke] [--steps 5] [--csv PATH]

Data: the simulated calmodulin maps of notebook 01 (``results/full/data`` when it exists, else simulated
into a temporary folder by the same ``simulate_dataset``), read by ``experiments.simulate.training_examples`` — the
loader notebook 02 uses. Training: ``training.train`` itself (batches drawn by ``training_losses``, AdamW,
clipping, EMA) for ``--warmup`` + ``--steps`` steps with batch 8, into a temporary folder; the reported
figure is the median of the ``seconds`` column of its own ``train_log.csv`` over the last ``--steps``
steps — the column notebook 02 reports. Sampling: ``sampling.sample_ensemble`` on 4CLN (the validation
protein, 1,164 atoms) as notebook 03 calls it, 16 samples in one batch, at 100 DDIM steps (the paper's K)
and at the command line's default K, with the ``default`` preset's weights after those steps (speed does
not depend on the weights).

If ``results/full/model/train_log.csv`` exists (a full-profile run of notebook 02), the script prints the
ratio of the benchmark's ``default`` s/step to that log's median, so the two cannot drift apart unnoticed.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from cryosampler.commands.sample import DEFAULT_DDIM_STEPS
from cryosampler.model.encoder import ENCODER_PRESETS
from cryosampler.model.featurize import featurize
from cryosampler.experiments.manifest import pdb_dir_from_env, resolve_manifest
from cryosampler.model.denoiser import ModelConfig
from cryosampler.experiments.profiles import get_profile
from cryosampler.sampling import sample_ensemble
from cryosampler.experiments.simulate import load_dataset, load_states, simulate_dataset
from cryosampler.training import TrainConfig, train
from cryosampler.experiments.simulate import training_examples

SAMPLE_SLOT = "4CLN"


def simulated_data(scratch: Path) -> Path:
    """Notebook 01's full-profile data folder, or the same data simulated into ``scratch``."""
    data_dir = get_profile("full").data_dir
    if (data_dir / "dataset.csv").is_file():
        return data_dir
    try:
        manifest = resolve_manifest("paper", pdb_dir=pdb_dir_from_env(), cache_dir=scratch / "pdb_cache")
    except ValueError as error:
        raise SystemExit(f"bench_model.py: {error}") from None
    simulate_dataset(manifest, scratch / "data", progress=False)
    return scratch / "data"


def time_training(data_dir: Path, preset: str, warmup: int, steps: int, scratch: Path):
    """Train ``preset`` for warmup + steps steps (batch 8); returns (model, median s/step of the last steps)."""
    dataset, template = load_dataset(data_dir)
    model_config = ModelConfig(encoder=ENCODER_PRESETS[preset])
    slots = list(dataset.loc[dataset["split"] == "train", "slot"])
    examples = training_examples(data_dir, slots, tokens=model_config.encoder.tokens)
    config = TrainConfig(steps=warmup + steps, batch_size=8, checkpoint_every=warmup + steps)
    out = scratch / f"train_{preset}"
    model = train(examples, model_config, config, template, out, progress=False)
    log = pd.read_csv(out / "train_log.csv")
    return model, float(log["seconds"].iloc[warmup:].median())


def time_sampling(model, data_dir: Path, n_steps: int) -> float:
    """Wall time (s) of 16 samples × ``n_steps`` DDIM steps of 4CLN, one batch, as notebook 03 draws them."""
    reference, coords = load_states(data_dir, SAMPLE_SLOT)
    protein = featurize(reference, coords["ref"], tokens=model.config.encoder.tokens)
    tic = time.perf_counter()
    sample_ensemble(model, protein, 16, torch.Generator().manual_seed(0), batch_size=16, n_steps=n_steps)
    return time.perf_counter() - tic


def logged_step_time() -> float | None:
    """Median ``seconds`` of the full profile's train_log.csv after its first 10 % of steps, if there is one."""
    path = get_profile("full").results_dir / "model" / "train_log.csv"
    if not path.is_file():
        return None
    log = pd.read_csv(path)
    return float(log["seconds"].iloc[len(log) // 10:].median()) if len(log) else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["paper", "default", "smoke"], choices=list(ENCODER_PRESETS))
    parser.add_argument("--steps", type=int, default=5, help="timed training steps per preset (default 5)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed first steps (one-off set-up; default 2)")
    parser.add_argument("--sample", action=argparse.BooleanOptionalAction, default=True,
                        help="also time 16 samples of 4CLN with the default preset")
    parser.add_argument("--csv", default=None, help="write the results here")
    args = parser.parse_args()

    stamp = {"date": datetime.date.today().isoformat(), "torch": torch.__version__,
             "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads()}
    print(f"{stamp['date']}, torch {stamp['torch']}, {stamp['threads']} threads", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        data_dir = simulated_data(scratch)
        for preset in args.presets:
            model, seconds = time_training(data_dir, preset, args.warmup, args.steps, scratch)
            n_params = sum(p.numel() for p in model.parameters())
            rows.append({"preset": preset, "parameters": n_params, "train_s_per_step_b8": seconds, **stamp})
            print(f"{preset:8s} {n_params:>11,d} parameters  {seconds:.2f} s/step (batch 8, train())", flush=True)
            if args.sample and preset == "default":
                for k in sorted({100, DEFAULT_DDIM_STEPS}):
                    rows[-1][f"sample_16x{k}_s"] = time_sampling(model, data_dir, k)
                    print(f"{preset:8s} 16 samples × {k} DDIM steps: {rows[-1][f'sample_16x{k}_s']:.1f} s", flush=True)
    logged = logged_step_time()
    bench = next((r["train_s_per_step_b8"] for r in rows if r["preset"] == "default"), None)
    if logged is not None and bench is not None:
        ratio = bench / logged
        verdict = "agree" if abs(ratio - 1) <= 0.10 else "DIFFER by more than 10 %: check the machine's load"
        print(f"benchmark / notebook 02's logged median s/step ({logged:.2f} s): {ratio:.2f} — {verdict}")
    if args.csv:
        pd.DataFrame(rows).to_csv(args.csv, index=False)


if __name__ == "__main__":
    main()
