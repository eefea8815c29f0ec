"""Speed of the map renderer (cryosampler.physics.render.render_density): forward and forward+backward maps/s.

Renders a protein-sized blob (atoms uniform in a 40 Å ball, Z drawn from C/N/O/S at protein frequencies)
into the paper's grid (64³, 2 Å, 8 Å resolution) for each batch size, after a warm-up. Forward runs under
``torch.no_grad`` (as in sampling); forward+backward renders with grad and back-propagates a fixed random
map gradient to the coordinates (as in training). The two are timed alternately so that load from other
processes hits both alike, and the table reports medians over repeats.

    python benchmarks/bench_render.py [--atoms 1200] [--batch-sizes 1 8] [--repeats 20] [--csv PATH]
"""

from __future__ import annotations

import argparse
import statistics
import time

import pandas as pd
import torch

from cryosampler.physics.render import render_density
from cryosampler.io.grid import MapGrid

ELEMENTS = torch.tensor([6.0, 7.0, 8.0, 16.0])  # C, N, O, S
FREQUENCIES = torch.tensor([0.63, 0.17, 0.19, 0.01])  # heavy-atom composition of a typical protein


def random_blob(batch: int, atoms: int, radius: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Coordinates (batch, atoms, 3) Å uniform in a ball of ``radius`` Å and atomic numbers (atoms,)."""
    direction = torch.randn(batch, atoms, 3, generator=generator)
    direction = direction / direction.norm(dim=-1, keepdim=True)
    r = radius * torch.rand(batch, atoms, 1, generator=generator) ** (1 / 3)
    z = ELEMENTS[torch.multinomial(FREQUENCIES, atoms, replacement=True, generator=generator)]
    return direction * r, z


def time_batch(batch: int, atoms: int, grid: MapGrid, repeats: int, warmup: int, seed: int) -> dict:
    """Median seconds per call of forward and forward+backward for one batch size."""
    generator = torch.Generator().manual_seed(seed)
    coords, weights = random_blob(batch, atoms, 20.0, generator)
    grad_map = torch.randn(batch, grid.size, grid.size, grid.size, generator=generator)
    leaf = coords.clone().requires_grad_(True)

    def forward():
        with torch.no_grad():
            render_density(coords, weights, grid, check_bounds=False)

    def forward_backward():
        leaf.grad = None
        render_density(leaf, weights, grid, check_bounds=False).backward(grad_map)

    for _ in range(warmup):
        forward()
        forward_backward()
    times = {"forward": [], "forward_backward": []}
    for _ in range(repeats):
        for name, fn in (("forward", forward), ("forward_backward", forward_backward)):
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    fwd, fwd_bwd = statistics.median(times["forward"]), statistics.median(times["forward_backward"])
    return {"batch": batch, "atoms": atoms, "size": grid.size, "threads": torch.get_num_threads(),
            "forward_ms_per_map": 1e3 * fwd / batch, "forward_maps_per_s": batch / fwd,
            "fwd_bwd_ms_per_map": 1e3 * fwd_bwd / batch, "fwd_bwd_maps_per_s": batch / fwd_bwd,
            "fwd_bwd_over_fwd": fwd_bwd / fwd}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--atoms", type=int, default=1200)
    parser.add_argument("--size", type=int, default=64, help="voxels per side")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--csv", default=None, help="also write the table to this CSV file")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    grid = MapGrid(size=args.size)

    rows = [time_batch(b, args.atoms, grid, args.repeats, args.warmup, args.seed) for b in args.batch_sizes]
    print(f"render_density: {args.atoms} atoms -> {grid.size}^3, float32, CPU, {torch.get_num_threads()} threads, "
          f"median of {args.repeats}")
    print(f"{'batch':>5} {'fwd ms/map':>11} {'fwd maps/s':>11} {'f+b ms/map':>11} {'f+b maps/s':>11} {'f+b / fwd':>10}")
    for r in rows:
        print(f"{r['batch']:>5} {r['forward_ms_per_map']:>11.2f} {r['forward_maps_per_s']:>11.1f} "
              f"{r['fwd_bwd_ms_per_map']:>11.2f} {r['fwd_bwd_maps_per_s']:>11.1f} {r['fwd_bwd_over_fwd']:>10.2f}")
    if args.csv:
        pd.DataFrame(rows).to_csv(args.csv, index=False)


if __name__ == "__main__":
    main()
