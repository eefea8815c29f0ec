"""The recorded GPU measurements become tables and the precision figure (benchmarks/report_gpu_check.py)."""

import matplotlib

matplotlib.use("Agg")

import pandas as pd
import pytest

from cryosampler.experiments.gpu_report import report
from cryosampler.experiments.profiles import repo_root


def test_every_recorded_gpu_measurement_gives_its_tables_and_figure(tmp_path):
    folders = sorted((repo_root() / "benchmarks" / "measured").glob("*/"))
    assert folders, "no recorded measurements"
    for folder in folders:
        written = {p.name for p in report(folder, tmp_path / "figures", tmp_path / "tables")}
        assert {"gpu_bench_train.md", "gpu_runs.md", "fig_precision_loss.png"} <= written
        runs = pd.read_csv(tmp_path / "tables" / "gpu_runs.csv")
        recorded = pd.read_csv(folder / "runs.csv")
        assert list(runs["method"]) == list(dict.fromkeys(recorded["method"]))
        # Table 1's mean over proteins, then seeds, recomputed from the recorded ensembles.
        train = recorded[recorded["split"] == "train"].groupby(["method", "seed"])["closest_A"].mean()
        for method, value in runs.set_index("method")["train A"].items():
            assert value == pytest.approx(train[method].mean())
