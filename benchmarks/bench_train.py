"""Training cost per encoder preset, precision and batch size: s/step and peak memory on the available device.

    python benchmarks/bench_train.py [--presets default paper] [--precisions fp32 bf16] [--batch-sizes 8 32]
                                     [--components 1 2] [--steps 5] [--warmup 2] [--device auto] [--csv PATH]
    torchrun --nproc-per-node N benchmarks/bench_train.py ...   # DDP, the same global batch over N processes

Data: notebook 01's simulated maps, found (or simulated) by ``bench_model.simulated_data``. Training:
``training.train`` itself (the loop notebook 02 runs: AdamW, clipping, EMA, checkpoint at the end) for
``--warmup`` + ``--steps`` steps into a temporary folder; s/step is the median of the ``seconds`` column of
its ``train_log.csv`` over the last ``--steps`` steps, as in ``bench_model.py``.

Peak memory. CUDA: ``torch.cuda.max_memory_allocated``, reset before each configuration (tensors only, not
the CUDA context). CPU: the peak resident set size of the process (``resource.getrusage``: data, model,
optimizer and activations). A process's RSS peak never goes down, so on the CPU each configuration runs
in a fresh Python process (this script with ``--here``). Under torchrun every configuration runs in the
launched processes, and memory is rank 0's.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import platform
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import torch

from bench_model import simulated_data
from cryosampler.device import resolve_device, torchrun_rank, torchrun_world_size
from cryosampler.experiments.simulate import load_dataset, training_examples
from cryosampler.model.denoiser import PRECISIONS, ModelConfig
from cryosampler.model.encoder import ENCODER_PRESETS
from cryosampler.training import TrainConfig, train

ROW = "bench_train row: "  # prefix of the JSON line a --here process prints for its parent


def measure(data_dir: Path, preset: str, precision: str, batch_size: int, warmup: int, steps: int,
            device: torch.device, scratch: Path, components: int = 1) -> dict:
    """Train one configuration with ``train()``; its median s/step and peak memory (MiB)."""
    dataset, template = load_dataset(data_dir)
    model_config = ModelConfig(encoder=dataclasses.replace(ENCODER_PRESETS[preset], components=components))
    slots = list(dataset.loc[dataset["split"] == "train", "slot"])
    examples = training_examples(data_dir, slots, tokens=model_config.encoder.tokens)
    total = warmup + steps
    config = TrainConfig(steps=total, batch_size=batch_size, checkpoint_every=total, precision=precision,
                         log_every=total)
    out = scratch / f"train_{preset}_{precision}_b{batch_size}_g{components}"
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    model = train(examples, model_config, config, template, out, progress=False, device=device)
    world_size = torchrun_world_size()
    row = {"preset": preset, "components": components, "precision": precision, "batch_size": batch_size,
           "processes": world_size,
           "parameters": sum(p.numel() for p in model.parameters()), "device": _device_name(device)}
    if (out / "train_log.csv").is_file():  # rank 0 alone writes the log
        row["s_per_step"] = float(pd.read_csv(out / "train_log.csv")["seconds"].iloc[warmup:].median())
    if device.type == "cuda":
        row["peak_memory_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
        row["memory"] = "cuda max_memory_allocated"
    else:
        row["peak_memory_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        row["memory"] = "process peak RSS"
    return row


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def in_fresh_process(args: argparse.Namespace, data_dir: Path, preset: str, precision: str, batch_size: int,
                     components: int) -> dict:
    """:func:`measure` in a new Python process running this script with ``--here``, so its RSS peak is its own."""
    command = [sys.executable, __file__, "--here", "--data-dir", str(data_dir), "--presets", preset,
               "--precisions", precision, "--batch-sizes", str(batch_size), "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--device", args.device, "--components", str(components)]
    result = subprocess.run(command, capture_output=True, text=True)
    rows = [line[len(ROW):] for line in result.stdout.splitlines() if line.startswith(ROW)]
    if result.returncode != 0 or len(rows) != 1:
        raise SystemExit(f"bench_train.py: {preset} {precision} batch {batch_size} failed:\n{result.stderr}")
    return json.loads(rows[0])


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["default", "paper"], choices=list(ENCODER_PRESETS))
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=list(PRECISIONS))
    parser.add_argument("--batch-sizes", nargs="+", type=_positive, default=[8, 32])
    parser.add_argument("--components", nargs="+", type=_positive, default=[1],
                        help="G coordinate sets per map (EncoderConfig.components; default 1)")
    parser.add_argument("--steps", type=_positive, default=5, help="timed training steps (default 5)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed first steps (one-off set-up; default 2)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="notebook 01's data folder (default: the full profile's, else simulated)")
    parser.add_argument("--here", action="store_true",
                        help="measure in this process (what each configuration's fresh process runs)")
    parser.add_argument("--csv", default=None, help="write the results here")
    args = parser.parse_args()
    try:
        device = resolve_device(args.device)
    except ValueError as error:
        parser.error(str(error))
    rank = torchrun_rank()
    here = args.here or device.type == "cuda" or torchrun_world_size() > 1

    stamp = {"date": datetime.date.today().isoformat(), "torch": torch.__version__}
    if rank == 0 and not args.here:
        print(f"{stamp['date']}, torch {stamp['torch']}, {_device_name(device)}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        data_dir = args.data_dir or simulated_data(scratch)
        for preset in args.presets:
            for precision in args.precisions:
                for batch_size in args.batch_sizes:
                    for components in args.components:
                        if here:
                            row = measure(data_dir, preset, precision, batch_size, args.warmup, args.steps, device,
                                          scratch, components)
                        else:
                            row = in_fresh_process(args, data_dir, preset, precision, batch_size, components)
                        rows.append({**row, **stamp})
                        if args.here and rank == 0:
                            print(ROW + json.dumps(row), flush=True)
                        if rank == 0:
                            print(f"{preset:8s} G={components} {precision} batch {batch_size:3d} × "
                                  f"{row['processes']} process(es): {row.get('s_per_step', float('nan')):.3f} s/step, "
                                  f"peak {row['peak_memory_mib']:,.0f} MiB ({row['memory']})", flush=True)
    if args.csv and rank == 0:
        pd.DataFrame(rows).to_csv(args.csv, index=False)


if __name__ == "__main__":
    main()
