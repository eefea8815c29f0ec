"""Tables and the fp32-vs-bf16 figure from a ``gpu_check.py`` output folder (``./run_all.sh`` runs it).

    python benchmarks/report_gpu_check.py [MEASURED_DIR ...]   # default: every benchmarks/measured/*/

For each folder with a ``bench_train.csv``: ``tables/gpu_bench_train.md`` (s/step and peak memory per
preset, precision and batch size). With ``runs.csv``: ``tables/gpu_runs.md`` (Table 1's columns plus the
out-of-distribution protein for each training run, :func:`~cryosampler.evaluation.tables.comparison_table`). With
``fp32_train_log.csv.gz`` and ``bf16_train_log.csv.gz``: ``figures/fig_precision_loss.{png,pdf}``. Several
folders are written one after the other; the newest (last in name order) wins.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pandas as pd  # noqa: E402

from cryosampler.evaluation.figures import plot_precision_curves, save_figure  # noqa: E402
from cryosampler.experiments.profiles import repo_root  # noqa: E402
from cryosampler.evaluation.tables import SD_NOTE, comparison_markdown, comparison_table, save_table  # noqa: E402


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


def main() -> None:
    root = repo_root()
    folders = [Path(a) for a in sys.argv[1:]] or sorted((root / "benchmarks" / "measured").glob("*/"))
    for folder in folders:
        for path in report(folder.resolve(), root / "figures", root / "tables"):
            print(f"wrote {path.relative_to(root)}")


if __name__ == "__main__":
    main()
