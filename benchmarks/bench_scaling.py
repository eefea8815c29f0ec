"""Training cost against protein size and box (issue 32): s/step and peak memory of one training step of each
model family, for synthetic proteins of 1k–50k heavy atoms and model grids of 64³–160³ (2 Å voxels), and where a
step's time goes.

    python benchmarks/bench_scaling.py [--atoms 1000 5000 20000 50000] [--boxes 64 96 128 160]
                                       [--families latent map] [--steps 2] [--warmup 1] [--batch-size 8]
                                       [--device auto] [--csv PATH] [--profile] [--window auto|N]

The protein is a bundle of 20-residue poly-alanine helices (N, CA, C, O, CB; 100 atoms each) on a lattice 10 Å
apart, filled outwards from the centre to the asked number of atoms, its helices numbered with a gap so that no
restraint joins two of them; its map is its own rendering on the model grid (no file, no ingestion: the step is
what is measured). Atoms are scanned at 128³ (the issue's aim: 20k atoms in a 128³ box), boxes with the smallest
protein of ``--atoms`` from 5,000 atoms up (it fits 64³). Each configuration runs in a fresh process (this script with
``--one``), so the peak resident set size (CPU) or ``torch.cuda.max_memory_allocated`` (GPU) is its own. The
training loops are the library's: ``latent_training.train_autoencoder`` (stage 1 of the latent family; stage 2
is a small MLP over latents and takes the same seconds at any size) and ``training.train`` (the map family);
s/step is the median of their logs' seconds over the last ``--steps`` steps at ``--batch-size`` (the command
line's default, 8). One more step under ``torch.profiler`` sorts the self CPU time of the step's operators into
the renderer (its two autograd functions), 3-D convolutions (the map encoder), attention and linear layers
(the DiT and heads) and the rest. ``--window`` sets the DiT's attention window: ``auto`` (default) is what
``train`` gives a reference of that many residues (``model.encoder.default_attention_window``), 0 full attention.
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

import numpy as np
import pandas as pd
import torch

from cryosampler.device import resolve_device
from cryosampler.io.grid import MapGrid
from cryosampler.io.structure import Structure
from cryosampler.latent_training import AUTOENCODER_TRAIN_PRESETS, train_autoencoder
from cryosampler.model.denoiser import ModelConfig
from cryosampler.model.encoder import default_attention_window
from cryosampler.model.featurize import featurize
from cryosampler.model.latent_model import LATENT_MODEL_PRESETS
from cryosampler.physics.render import render_density
from cryosampler.training import TrainConfig, TrainingExample, train

_RESIDUES_PER_HELIX = 20
_OFFSETS = {"N": (1.5, -0.8, -0.6), "CA": (2.3, 0.0, 0.0), "C": (1.6, 0.9, 0.9), "O": (2.0, 1.9, 1.4),
            "CB": (3.6, -0.5, 0.3)}


def helix_bundle(n_atoms: int) -> Structure:
    """A bundle of poly-alanine helices along z, ``n_atoms`` heavy atoms (a multiple of 100), centred."""
    n_helices = max(1, n_atoms // (5 * _RESIDUES_PER_HELIX))
    # Lattice sites (10 Å in x and y, 33 Å in z), nearest the centre first.
    span = int(np.ceil(n_helices ** (1 / 3))) + 2
    sites = np.array([(x, y, z) for x in range(-span, span + 1) for y in range(-span, span + 1)
                      for z in range(-span, span + 1)], dtype=np.float64) * np.array([10.0, 10.0, 33.0])
    sites = sites[np.argsort(np.linalg.norm(sites, axis=1), kind="stable")][:n_helices]
    coords, names, res_nums = [], [], []
    for h, site in enumerate(sites):
        for r in range(_RESIDUES_PER_HELIX):
            angle = np.deg2rad(100.0 * r)
            turn = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
            for atom, xyz in _OFFSETS.items():
                coords.append(site + turn @ np.array(xyz) + [0, 0, 1.5 * r - 14.25])
                names.append(atom)
                res_nums.append(h * (_RESIDUES_PER_HELIX + 1) + r + 1)  # a gap between helices
    coords = np.array(coords)
    elements = np.array([n[0] for n in names])
    return Structure(coords=coords - coords.mean(0), elements=elements,
                     atomic_numbers=np.array([{"C": 6, "N": 7, "O": 8}[e] for e in elements], dtype=np.int64),
                     atom_names=np.array(names), res_names=np.array(["ALA"] * len(names)),
                     res_nums=np.array(res_nums, dtype=np.int64), chain_id="A", name=f"bundle{n_atoms}")


def _examples(structure: Structure, grid: MapGrid) -> list[TrainingExample]:
    protein = featurize(structure, structure.coords)
    volume = render_density(torch.tensor(structure.coords)[None], torch.tensor(structure.atomic_numbers), grid)[0]
    return [TrainingExample(protein, volume.float())]


# Substrings of operator names, matched case-insensitively: the renderer's autograd functions (_GaussianProfiles,
# _TrilinearSum and their backwards), convolutions and their backwards, attention and matrix products.
_BUCKETS = (("renderer", ("GaussianProfiles", "trilinear")),
            ("3-D convolution (map encoder)", ("conv3d", "convolution", "conv_depthwise3d")),
            ("attention and linear layers (DiT, heads)", ("scaled_dot_product", "attention", "addmm", "mm",
                                                          "bmm", "linear", "matmul", "baddbmm")))


def _bucket(name: str) -> str:
    low = name.lower()
    for bucket, keys in _BUCKETS:
        if any(k.lower() in low for k in keys):
            return bucket
    return "other"


def measure(family: str, n_atoms: int, box: int, batch_size: int, warmup: int, steps: int, device: torch.device,
            profile_out: Path | None, window: str = "auto") -> dict:
    """One configuration in this process: s/step, peak memory and (optionally) where one step's time goes;
    ``window``: the attention window, "auto" (``train``'s choice) or a number of tokens (0: full attention)."""
    structure = helix_bundle(n_atoms)
    grid = MapGrid(size=box, apix=2.0, resolution=8.0)
    attention_window = default_attention_window(structure.n_residues) if window == "auto" else int(window)
    examples = _examples(structure, grid)
    total = warmup + steps
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def run(n: int):
        if family == "latent":
            stage1 = dataclasses.replace(AUTOENCODER_TRAIN_PRESETS["default"], steps=n, batch_size=batch_size, warmup=1)
            config = LATENT_MODEL_PRESETS["default"].with_tokens(1, attention_window)
            return train_autoencoder(examples, config.autoencoder, stage1, grid, device=device)[1]
        with tempfile.TemporaryDirectory() as out:
            model_config = ModelConfig(grid=grid).with_tokens(1, attention_window)
            config = TrainConfig(steps=n, batch_size=batch_size, checkpoint_every=n, log_every=n)
            train(examples, model_config, config, None, Path(out), progress=False, device=device, lines=False)
            return pd.read_csv(Path(out) / "train_log.csv")

    log = run(total)
    seconds = float(np.median(log["seconds"].to_numpy()[-steps:]))
    peak = (torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    row = {"family": family, "atoms": structure.n_atoms, "residues": structure.n_residues, "box": box,
           "attention_window": attention_window, "batch_size": batch_size, "s_per_step": seconds, "peak_mib": peak}
    if profile_out is not None:
        from torch.profiler import ProfilerActivity, profile
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            run(1)
        shares: dict[str, float] = {}
        for event in prof.key_averages():
            shares[_bucket(event.key)] = shares.get(_bucket(event.key), 0.0) + event.self_cpu_time_total
        total_us = sum(shares.values())
        row.update({f"share {k}": v / total_us for k, v in sorted(shares.items())})
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--atoms", type=int, nargs="+", default=[1000, 5000, 20000, 50000])
    parser.add_argument("--boxes", type=int, nargs="+", default=[64, 96, 128, 160])
    parser.add_argument("--families", nargs="+", default=["latent", "map"], choices=["latent", "map"])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--csv", type=Path, default=None)
    parser.add_argument("--profile", action="store_true", help="also sort one step's time by operator kind")
    parser.add_argument("--window", default="auto", help="attention window in tokens, 0 for full attention, or auto "
                                                         "(train's choice for the protein's size)")
    parser.add_argument("--one", nargs=3, metavar=("FAMILY", "ATOMS", "BOX"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = resolve_device(args.device)
    if args.one:
        family, atoms, box = args.one[0], int(args.one[1]), int(args.one[2])
        row = measure(family, atoms, box, args.batch_size, args.warmup, args.steps, device,
                      Path("profile") if args.profile else None, args.window)
        print("RESULT " + json.dumps(row))
        return
    scan_box = 128 if 128 in args.boxes else max(args.boxes)  # the aim: 20k atoms in a 128³ box
    fits = [a for a in sorted(args.atoms) if a >= 5000] or sorted(args.atoms)
    configs = [(a, scan_box) for a in sorted(args.atoms)] + [(fits[0], b) for b in sorted(args.boxes) if b != scan_box]
    rows = []
    for family in args.families:
        for atoms, box in configs:
            command = [sys.executable, __file__, "--one", family, str(atoms), str(box), "--steps", str(args.steps),
                       "--warmup", str(args.warmup), "--batch-size", str(args.batch_size), "--device", args.device,
                       "--window", args.window, *(["--profile"] if args.profile else [])]
            done = subprocess.run(command, capture_output=True, text=True)
            found = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
            if done.returncode != 0 or not found:
                why = (done.stderr.strip().splitlines() or ["no output"])[-1]
                row = {"family": family, "atoms": atoms, "box": box, "batch_size": args.batch_size,
                       "failed": why[:200]}
            else:
                row = json.loads(found[0].removeprefix("RESULT "))
            rows.append(row)
            print(json.dumps(row), flush=True)
    table = pd.DataFrame(rows)
    table.insert(0, "date", datetime.date.today().isoformat())
    table.insert(1, "machine", f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
                 if device.type == "cpu" else torch.cuda.get_device_name(device))
    print(table.to_string(index=False))
    if args.csv is not None:
        table.to_csv(args.csv, index=False)


if __name__ == "__main__":
    main()
