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

from cryosampler.experiments.gpu_report import report
from cryosampler.experiments.profiles import repo_root


def main() -> None:
    root = repo_root()
    folders = [Path(a) for a in sys.argv[1:]] or sorted((root / "benchmarks" / "measured").glob("*/"))
    for folder in folders:
        for path in report(folder.resolve(), root / "figures", root / "tables"):
            print(f"wrote {path.relative_to(root)}")


if __name__ == "__main__":
    main()
