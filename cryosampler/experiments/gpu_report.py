"""The recorded GPU measurements (``benchmarks/measured/<date>_<gpu>/``, written by ``benchmarks/gpu_check.py``) as
tables and the fp32-vs-bf16 figure (``benchmarks/report_gpu_check.py`` is its command line).

What a folder has the files for is written: with ``bench_train.csv``, ``gpu_bench_train`` (s/step and peak memory
per preset, precision and batch size); with ``runs.csv``, ``gpu_runs`` (Table 1's columns plus the
out-of-distribution protein for each training run, :func:`~cryosampler.evaluation.tables.comparison_table`); with
``fp32_train_log.csv.gz`` and ``bf16_train_log.csv.gz``, ``fig_precision_loss``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cryosampler.evaluation.figures import plot_precision_curves, save_figure
from cryosampler.evaluation.tables import SD_NOTE, comparison_markdown, comparison_table, save_table
from cryosampler.experiments.profiles import repo_root

__all__ = ["report"]


def report(measured: Path, figures: Path, tables: Path) -> list[Path]:
    """Write what ``measured`` has the files for; returns the paths written."""
    written, device = [], "the GPU"
    source = f"Measured by benchmarks/gpu_check.py; files and provenance in {measured.relative_to(repo_root())}/."
    bench_path = measured / "bench_train.csv"
    if bench_path.is_file():
        bench = pd.read_csv(bench_path)
        table = bench[["preset", "precision", "batch_size", "parameters", "s_per_step", "peak_memory_mib"]]
        device = ", ".join(sorted(set(bench["device"])))
        written += save_table(table, tables, "gpu_bench_train", floatfmt=".3f",
                              footnote=f"{device}, torch {bench['torch'].iloc[0]}, {bench['date'].iloc[0]}: "
                                       "median s/step of `train()` over the timed steps, one run alone on the "
                                       "GPU; peak memory = torch.cuda.max_memory_allocated (MiB). " + source)
    runs_path = measured / "runs.csv"
    if runs_path.is_file():
        runs = pd.read_csv(runs_path)
        table = comparison_table(runs)
        written += save_table(table, tables, "gpu_runs", markdown=comparison_markdown(table),
                              footnote="Closest-sample RMSD (Å), Table 1's protocol (16 samples × 100 DDIM steps "
                                       "per seed; mean over a split's proteins, then mean ± sd over seeds); "
                                       "test_ood = 1PRW. The held-out proteins (val, test_ood) are reported "
                                       "only; nothing was chosen on them. s/step: gpu_check.py runs the "
                                       "trainings side by side on one GPU (gpu_bench_train.md has one alone). "
                                       f"{SD_NOTE} {source}")
    logs = {name: measured / f"{name}_train_log.csv.gz" for name in ("fp32", "bf16")}
    if all(path.is_file() for path in logs.values()):
        fig = plot_precision_curves({name: pd.read_csv(path) for name, path in logs.items()})
        fig.suptitle(f"default preset on {device}, same seed: fp32 and bf16 autocast of the encoder", fontsize=9)
        written += save_figure(fig, figures, "fig_precision_loss")
    return written
