"""Every table of the project, one function each; notebooks save them with :func:`save_table`."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

__all__ = ["save_table", "dataset_table", "sampling_table", "table1", "table1_markdown", "PAPER_TABLE1",
           "ensemble_metrics_table", "ensemble_metrics_markdown"]


def save_table(table: pd.DataFrame, directory: Path, name: str, floatfmt: str = ".2f",
               footnote: str = "", markdown: pd.DataFrame | None = None) -> list[Path]:
    """Write ``directory/name.csv`` (full precision) and ``directory/name.md`` (rounded, with a footnote).

    ``markdown``, if given, is a display version of ``table`` (e.g. "mean ± sd" strings) for the ``.md`` file.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = directory / f"{name}.csv", directory / f"{name}.md"
    table.to_csv(csv_path, index=False)
    markdown = (table if markdown is None else markdown).to_markdown(index=False, floatfmt=floatfmt)
    md_path.write_text(markdown + (f"\n\n{footnote}\n" if footnote else "\n"))
    return [csv_path, md_path]


def dataset_table(dataset: pd.DataFrame) -> pd.DataFrame:
    """The simulated dataset, one row per protein: which file filled each slot, sizes, static RMSDs (Å)."""
    table = dataset[["slot", "used_id", "split", "substituted", "n_atoms", "n_residues", "first_residue",
                     "last_residue", "static_rmsd_A", "static_rmsd_B", "rmsd_A_B"]].copy()
    return table.rename(columns={"used_id": "file used", "static_rmsd_A": "static RMSD to A (Å)",
                                 "static_rmsd_B": "static RMSD to B (Å)", "rmsd_A_B": "RMSD A–B (Å)"})


def sampling_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per protein, mean ± sd over seeds of the closest-sample RMSD (Å) and occupancy of each state.

    runs: one row per (slot, seed) with columns slot, split, closest_A, closest_B, occupancy_A, occupancy_B,
    seconds.
    """
    metrics = ["closest_A", "closest_B", "occupancy_A", "occupancy_B", "seconds"]
    grouped = runs.groupby(["slot", "split"], sort=False)[metrics]
    table = grouped.mean().add_suffix(" mean").join(grouped.std(ddof=0).add_suffix(" sd")).reset_index()
    table.insert(2, "seeds", grouped.size().values)
    return table[["slot", "split", "seeds"] + [f"{m} {s}" for m in metrics for s in ("mean", "sd")]]


# Table 1 of the paper, as reported there (Å); "Static" is one number for all four columns.
PAPER_TABLE1 = {
    "Ours": (0.29, 0.29, 1.10, 1.03),
    "AlphaFlow": (8.42, 6.18, 9.88, 6.49),
    "Boltz-1": (6.64, 6.94, 6.38, 7.00),
    "Static": (3.46, 3.46, 3.46, 3.46),
}
TABLE1_METHODS = ("Ours", "AlphaFlow", "Boltz-1", "Static", "ANM sampling", "Mode transfer")
TABLE1_COLUMNS = ("train A", "train B", "val A", "val B")


def table1(runs: pd.DataFrame) -> pd.DataFrame:
    """Table 1: closest-sample RMSD (Å), mean over proteins of a split, then mean ± sd over seeds.

    runs: one row per (method, slot, split, seed) with closest_A, closest_B (Å). Methods of
    ``TABLE1_METHODS`` absent from ``runs`` get a "not run" row; every method the paper reports also gets
    a row with source "paper" holding the paper's numbers.
    """
    rows = []
    for method in TABLE1_METHODS:
        measured = runs[runs["method"] == method]
        row = {"method": method, "source": "measured" if len(measured) else "not run"}
        for split, prefix in (("train", "train"), ("val", "val")):
            per_seed = measured[measured["split"] == split].groupby("seed")[["closest_A", "closest_B"]].mean()
            for state in ("A", "B"):
                values = per_seed[f"closest_{state}"]
                row[f"{prefix} {state}"] = values.mean() if len(values) else float("nan")
                row[f"{prefix} {state} sd"] = values.std(ddof=0) if len(values) else float("nan")
        row["seeds"] = measured["seed"].nunique()
        rows.append(row)
        if method in PAPER_TABLE1:
            rows.append({"method": method, "source": "paper", **dict(zip(TABLE1_COLUMNS, PAPER_TABLE1[method]))})
    table = pd.DataFrame(rows)
    table["seeds"] = table["seeds"].astype("Int64")
    return table[["method", "source", "seeds"] + [c for col in TABLE1_COLUMNS for c in (col, f"{col} sd")]]


def table1_markdown(table: pd.DataFrame) -> pd.DataFrame:
    """Table 1 with "mean ± sd" strings, "not run" and "–" where there is no number, for the Markdown file."""
    out = table[["method", "source"]].copy()
    for col in TABLE1_COLUMNS:
        def cell(r, col=col):
            if pd.isna(r[col]):
                return "not run" if r["source"] == "not run" else "–"
            sd = r.get(f"{col} sd")
            return f"{r[col]:.2f}" if pd.isna(sd) or r["source"] == "paper" else f"{r[col]:.2f} ± {sd:.2f}"
        out[f"{col} (Å)"] = table.apply(cell, axis=1)
    return out


ENSEMBLE_KEYS = ("slot", "split", "method", "seed")
# The columns of ensemble_metrics.md (the CSV has them all), with their display names.
ENSEMBLE_MARKDOWN_COLUMNS = {
    "MAT-R": "MAT-R (Å)", "MAT-P": "MAT-P (Å)", "COV-R(0.5)": "COV-R(0.5)", "COV-R(1)": "COV-R(1)",
    "COV-R(2)": "COV-R(2)", "COV-P(1)": "COV-P(1)", "occupancy_A": "occupancy A",
    "map_corr_best_A": "map corr A", "map_corr_best_B": "map corr B",
    "validity_bond_dev_mean": "bond dev (Å)", "validity_ca_ca_dev_max": "max CA–CA dev (Å)",
    "validity_clashes_per_sample": "clashes/sample",
}


def ensemble_metrics_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per protein and method, mean and sd over seeds of every metric.

    metrics: one row per (slot, split, method, seed), the other columns numeric. Returns columns slot, split,
    method, seeds, then each metric ``m`` and ``m sd`` side by side, in the input's row order.
    """
    numeric = [c for c in metrics.columns if c not in ENSEMBLE_KEYS]
    grouped = metrics.groupby(["slot", "split", "method"], sort=False)[numeric]
    table = grouped.mean().join(grouped.std(ddof=0), rsuffix=" sd").reset_index()
    table.insert(3, "seeds", grouped.size().values)
    return table[["slot", "split", "method", "seeds"] + [c for m in numeric for c in (m, f"{m} sd")]]


def ensemble_metrics_markdown(table: pd.DataFrame) -> pd.DataFrame:
    """The main columns of :func:`ensemble_metrics_table` as "mean ± sd" strings (just the mean for one seed)."""
    out = table[["slot", "split", "method", "seeds"]].copy()
    for column, title in ENSEMBLE_MARKDOWN_COLUMNS.items():
        if column not in table:
            raise ValueError(f"ensemble metrics table has no column {column!r}")
        out[title] = [f"{m:.2f}" if n == 1 else f"{m:.2f} ± {sd:.2f}"
                      for m, sd, n in zip(table[column], table[f"{column} sd"], table["seeds"])]
    return out
