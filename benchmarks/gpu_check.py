"""The one prepared run for a lent GPU (issue 11): CUDA tests, training cost, and three trainings scored.

    python benchmarks/gpu_check.py OUT_DIR [--budget 520] [--data-dir results/full/data] [--device cuda]

Within ``--budget`` seconds of wall time, in this order:

1. the environment (``nvidia-smi -L``, torch, Python) and the tests that need CUDA;
2. ``bench_train.py``: s/step and peak memory of the ``default`` and ``paper`` presets, fp32 and bf16,
   batch 8 and 32 → ``OUT_DIR/bench_train.csv``;
3. side by side on the one GPU, three runs of ``ablation.py`` on notebook 01's full-profile data, each
   scored with Table 1's protocol (16 samples × 100 DDIM steps per seed, every protein; the held-out ones
   are reported, never used to choose):
   ``paper``: the paper preset, fp32, as many steps as the budget leaves room for;
   ``fp32`` and ``bf16``: the default preset at notebook 02's 3,000 steps (fewer if they would not fit),
   same seed, fp32 and bf16 autocast: the loss curves and Table 1 rows of the precision comparison.
   Steps and sampling seeds are planned from step 2's s/step, counting the three runs as sharing the GPU
   (``SHARING``: each assumed 1.3× slower than alone).

What comes back (at most 8 files, as the device tool allows): ``gpu_check.log`` (all output),
``bench_train.csv``, ``{paper,fp32,bf16}_train_log.csv`` and ``runs.csv`` (every scored ensemble of the
three runs, ``method`` naming the run); checkpoints stay there (the default preset's is 18 MB; the CUDA
tests check that a checkpoint written on the GPU holds CPU tensors). Every step has its own time limit, so the script ends inside the budget with what finished.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Slow-down of a run while three share the GPU, and the cost of a DDIM step (forward, batch 16) as a fraction
# of a training step at batch 8, as the first H100 run measured them, with margin (docs/design.md,
# "Measurements behind constants").
SHARING = 1.3
SAMPLE_STEP_PER_TRAIN_STEP = 0.3
DDIM_STEPS = 100


class Clock:
    def __init__(self, budget: float):
        self.end = time.monotonic() + budget

    def left(self) -> float:
        return self.end - time.monotonic()


def run(command: list[str], log, timeout: float, cwd: Path = ROOT) -> int | None:
    """Run ``command`` with output to ``log``; None if it was stopped at ``timeout`` seconds."""
    log.write(f"\n$ {' '.join(command)}   (limit {timeout:.0f} s)\n")
    log.flush()
    try:
        return subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, timeout=max(1.0, timeout),
                              cwd=cwd).returncode
    except subprocess.TimeoutExpired:
        log.write(f"stopped at its limit of {timeout:.0f} s\n")
        return None


def plan(bench: pd.DataFrame, preset: str, seconds: float, max_steps: int, n_proteins: int) -> tuple[int, list[int]]:
    """Training steps and sampling seeds that fit ``seconds`` for ``preset`` (fp32, batch 8), from the
    benchmark's s/step and ``SHARING``."""
    row = bench[(bench["preset"] == preset) & (bench["precision"] == "fp32") & (bench["batch_size"] == 8)]
    s_step = float(row["s_per_step"].iloc[0]) * SHARING if len(row) else 1.0
    for seeds in ([0, 1, 2], [0]):
        sampling = len(seeds) * n_proteins * DDIM_STEPS * s_step * SAMPLE_STEP_PER_TRAIN_STEP
        steps = int((seconds - sampling) / s_step)
        if steps >= 500 or seeds == [0]:
            return max(50, min(max_steps, steps)), seeds
    raise AssertionError("unreachable")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--budget", type=float, default=520.0, help="seconds of wall time in all")
    parser.add_argument("--data-dir", type=Path, default=ROOT / "results" / "full" / "data")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--bench-steps", type=int, default=10)
    parser.add_argument("--bench", type=Path, default=None,
                        help="a bench_train.csv measured before on this machine: plan from it, do not re-measure")
    parser.add_argument("--presets", nargs=2, default=["paper", "default"], metavar=("LARGE", "SMALL"),
                        help="the encoder presets of the 'paper' run and of the fp32/bf16 pair (default: paper "
                             "default; a dry run on the CPU: smoke smoke --device cpu)")
    args = parser.parse_args()
    clock = Clock(args.budget)
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(os.environ.get("TMPDIR", "/tmp")) / "gpu_check"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE), os.environ.get("PYTHONPATH", "")])}
    os.environ.update(env)
    py = sys.executable
    with open(args.out / "gpu_check.log", "w") as log:
        log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}\n")
        run(["nvidia-smi", "-L"], log, 20) if shutil.which("nvidia-smi") else log.write("no nvidia-smi\n")
        run([py, "-c", "import sys, torch; print(sys.version); print('torch', torch.__version__, 'cuda', "
                       "torch.version.cuda, torch.cuda.is_available() and torch.cuda.get_device_name())"], log, 60)
        run([py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", "tests/test_device.py",
             "tests/test_render.py", "tests/test_training.py", "-k", "cuda or gpu or device"], log,
            min(120, clock.left() * 0.15))
        bench_csv = args.bench or args.out / "bench_train.csv"
        if args.bench is None:
            run([py, str(HERE / "bench_train.py"), "--device", args.device, "--steps", str(args.bench_steps),
                 "--warmup", "3", "--data-dir", str(args.data_dir), "--csv", str(bench_csv),
                 "--presets", *dict.fromkeys(args.presets)], log, min(180, clock.left() * 0.3))
        bench = pd.read_csv(bench_csv) if bench_csv.is_file() else pd.DataFrame(
            columns=["preset", "precision", "batch_size", "s_per_step"])

        large, small = args.presets
        n_proteins = len(pd.read_csv(args.data_dir / "dataset.csv"))  # --report-held-out scores them all
        window = clock.left() - 25  # leave time to collect the files
        runs = {
            "paper": ["--preset", large, "--label", f"Ours, {large} preset ({args.device}, fp32)"],
            "fp32": ["--preset", small, "--label", f"Ours, {small} preset ({args.device}, fp32)"],
            "bf16": ["--preset", small, "--precision", "bf16", "--label", f"Ours, {small} preset ({args.device}, bf16)"],
        }
        processes = {}
        for name, extra in runs.items():
            preset = extra[1]
            steps, seeds = plan(bench, preset, window - 30, 10_000 if name == "paper" else 3000,
                                n_proteins)
            command = [py, str(HERE / "ablation.py"), str(work / name), "--profile", "full", "--steps", str(steps),
                       "--device", args.device, "--report-held-out", "--sampling-seeds", *map(str, seeds), *extra]
            log.write(f"\n$ {' '.join(command)}   (planned: {steps} steps, seeds {seeds})\n")
            log.flush()
            # Three processes share the CPU cores too (batching, scoring): a few threads each.
            processes[name] = subprocess.Popen(command, stdout=open(work / f"{name}.log", "w"),
                                               stderr=subprocess.STDOUT, cwd=HERE,
                                               env={**env, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 3) // 3))})
        for name, process in processes.items():
            try:
                process.wait(timeout=max(1.0, clock.left() - 20))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                log.write(f"{name}: stopped at the budget's end\n")
        results = []
        for name in runs:
            log.write(f"\n--- {name}: return code {processes[name].returncode}; its output ---\n")
            log.write((work / f"{name}.log").read_text()[-6000:])
            if (work / name / "train_log.csv").is_file():
                shutil.copy(work / name / "train_log.csv", args.out / f"{name}_train_log.csv")
            if (work / name / "result.csv").is_file():
                results.append(pd.read_csv(work / name / "result.csv"))
        if results:
            pd.concat(results, ignore_index=True).to_csv(args.out / "runs.csv", index=False)
        log.write(f"\nended with {clock.left():.0f} s of the budget left\n")
    print((args.out / "gpu_check.log").read_text()[-8000:])


if __name__ == "__main__":
    main()
