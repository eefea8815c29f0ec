"""Every table of the project, one function each; notebooks save them with :func:`save_table`."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

__all__ = ["save_table", "dataset_table", "sampling_table", "sampling_markdown", "table1", "table1_markdown",
           "table1_caption", "PAPER_TABLE1", "ensemble_metrics_table", "ensemble_metrics_markdown",
           "closest_by_method", "ddim_steps_table", "mean_sd_cell", "split_means", "comparison_table",
           "comparison_markdown", "SD_DDOF", "SD_NOTE"]

# Spread over seeds is the sample standard deviation (divided by n − 1) in every table and figure. A single
# value (one seed, or a deterministic method run once) has none (NaN), and identical values over seeds have
# none to show either: both print as "—".
SD_DDOF = 1
SD_NOTE = ("sd: sample standard deviation over seeds (n − 1 in the denominator); “—”: no spread (a single "
           "value, i.e. one seed or a deterministic method).")
NO_SPREAD = "—"


def mean_sd_cell(mean: float, sd: float, fmt: str = ".2f") -> str:
    """A "mean ± sd" Markdown cell; "mean ± —" where there is no spread, "not run" where there is no mean."""
    if pd.isna(mean):
        return "not run"
    if pd.isna(sd) or sd == 0:
        return f"{mean:{fmt}} ± {NO_SPREAD}"
    return f"{mean:{fmt}} ± {sd:{fmt}}"


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


# Columns of sampling_table, with their Markdown titles.
SAMPLING_METRICS = {"closest_A": "closest A (Å)", "closest_B": "closest B (Å)", "occupancy_A": "occupancy A",
                    "occupancy_B": "occupancy B", "seconds": "seconds"}


def sampling_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per protein, mean and sd (``SD_DDOF``) over seeds of the closest-sample RMSD (Å), the occupancy of each
    state and the sampling time (s).

    runs: one row per (slot, seed) with columns slot, split, closest_A, closest_B, occupancy_A, occupancy_B,
    seconds.
    """
    grouped = runs.groupby(["slot", "split"], sort=False)[list(SAMPLING_METRICS)]
    table = grouped.mean().add_suffix(" mean").join(grouped.std(ddof=SD_DDOF).add_suffix(" sd")).reset_index()
    table.insert(2, "seeds", grouped.size().values)
    return table[["slot", "split", "seeds"] + [f"{m} {s}" for m in SAMPLING_METRICS for s in ("mean", "sd")]]


def sampling_markdown(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`sampling_table` as "mean ± sd" strings, for the Markdown file."""
    out = table[["slot", "split", "seeds"]].copy()
    for metric, title in SAMPLING_METRICS.items():
        out[title] = [mean_sd_cell(m, sd) for m, sd in zip(table[f"{metric} mean"], table[f"{metric} sd"])]
    return out


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
    """Table 1: closest-sample RMSD (Å), mean over proteins of a split, then mean and sd (``SD_DDOF``) over seeds.

    runs: one row per (method, slot, split, seed) with closest_A, closest_B (Å). Methods of
    ``TABLE1_METHODS`` absent from ``runs`` get a "not run" row; every method the paper reports also gets
    a row with source "paper" holding the paper's numbers.
    """
    rows = []
    for method in TABLE1_METHODS:
        measured = runs[runs["method"] == method]
        rows.append({"method": method, "source": "measured" if len(measured) else "not run",
                     **split_means(measured, ("train", "val"))})
        if method in PAPER_TABLE1:
            rows.append({"method": method, "source": "paper", **dict(zip(TABLE1_COLUMNS, PAPER_TABLE1[method]))})
    table = pd.DataFrame(rows)
    table["seeds"] = table["seeds"].astype("Int64")
    return table[["method", "source", "seeds"] + [c for col in TABLE1_COLUMNS for c in (col, f"{col} sd")]]


def split_means(runs: pd.DataFrame, splits: tuple[str, ...]) -> dict:
    """Closest-sample RMSD (Å) of one method: per seed the mean over the proteins of each split, then mean
    and sd (``SD_DDOF``) over seeds. Keys "{split} {state}", "{split} {state} sd" and "seeds"; NaN where
    a split has no rows.

    runs: one row per (slot, split, seed) with closest_A, closest_B (Å).
    """
    row = {}
    for split in splits:
        per_seed = runs[runs["split"] == split].groupby("seed")[["closest_A", "closest_B"]].mean()
        for state in ("A", "B"):
            values = per_seed[f"closest_{state}"]
            row[f"{split} {state}"] = values.mean() if len(values) else float("nan")
            row[f"{split} {state} sd"] = values.std(ddof=SD_DDOF) if len(values) else float("nan")
    row["seeds"] = runs["seed"].nunique()
    return row


COMPARISON_SPLITS = ("train", "val", "test_ood")


def comparison_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Table 1's columns (:func:`split_means`) plus the out-of-distribution test protein, one row per
    ``method`` of ``runs`` in order of appearance, with its training steps and s/step as recorded when
    ``runs`` has them (ablation.py: training wall time / steps, checkpoints included) (``benchmarks/ablation.py``'s result.csv; ``gpu_check.py``'s runs.csv)."""
    rows = []
    for method, measured in runs.groupby("method", sort=False):
        row = {"method": method, **split_means(measured, COMPARISON_SPLITS)}
        for column in ("steps", "train_seconds_per_step", "device", "precision", "sequence_features"):
            if column in measured:
                row[column] = measured[column].iloc[0]
        rows.append(row)
    table = pd.DataFrame(rows)
    table["seeds"] = table["seeds"].astype("Int64")
    return table


def comparison_markdown(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`comparison_table` with "mean ± sd" cells (Å), for the Markdown file."""
    keep = [c for c in ("method", "steps", "seeds") if c in table]
    out = table[keep].copy()
    for split in COMPARISON_SPLITS:
        for state in ("A", "B"):
            out[f"{split} {state} (Å)"] = [mean_sd_cell(m, sd) for m, sd in
                                          zip(table[f"{split} {state}"], table[f"{split} {state} sd"])]
    if "train_seconds_per_step" in table:
        out["training"] = table["train_seconds_per_step"].map(lambda s: f"{1000 * s:.0f} ms/step")
    return out


def table1_markdown(table: pd.DataFrame) -> pd.DataFrame:
    """Table 1 with "mean ± sd" strings (:func:`mean_sd_cell`), the paper's numbers as reported, and "not run"
    where there is no number, for the Markdown file."""
    out = table[["method", "source"]].copy()
    for col in TABLE1_COLUMNS:
        out[f"{col} (Å)"] = [f"{m:.2f}" if source == "paper" else mean_sd_cell(m, sd)
                             for m, sd, source in zip(table[col], table[f"{col} sd"], table["source"])]
    return out


def table1_caption(dataset: pd.DataFrame, n_samples: int) -> str:
    """The footnote of Table 1: what is averaged, the sd convention, the data used and how close "val" is to
    training.

    dataset: notebook 01's ``dataset.csv`` (columns slot, used_id, split, substituted).
    """
    slots = {split: ", ".join(dataset.loc[dataset["split"] == split, "slot"]) for split in ("train", "val")}
    substitutes = ", ".join(f"{r.slot} ← {r.used_id}" for r in dataset.itertuples() if r.substituted)
    caption = (f"Closest-sample RMSD (Å), all heavy atoms after optimal superposition; mean over the proteins of "
               f"a split, then mean ± sd over sampling seeds ({n_samples} samples each). {SD_NOTE} Training: "
               f"{slots['train']}; validation: {slots['val']}. Substitutes for entries that could not be had "
               f"offline: {substitutes or 'none'}. Rows 'paper' are the paper's reported numbers; 'not run' rows "
               "could not be run here (weights download at run time). ANM sampling uses the data generator's "
               "own physics, and Mode transfer uses training atoms that CryoSampler never sees. "
               "Validation is close to training: every protein here is a calmodulin, and 4CLN informed the "
               "choice of encoder and training settings (benchmarks/ablation.py scored it).")
    if {"3CLN", "1CLL"} <= set(dataset["used_id"]) and "4CLN" in set(dataset["used_id"]):
        caption += (" The training substitutes 3CLN and 1CLL are mammalian calmodulins about 98 % identical in "
                    "sequence to 4CLN (Drosophila) and near-identical in structure, so 'val' is close to a "
                    "training protein.")
    return caption + (" The held-out test is the forthcoming domain-motion benchmark (adenylate kinase, HigA), "
                      "on which nothing was tuned.")


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
    """Per protein and method, mean and sd (``SD_DDOF``) over seeds of every metric.

    metrics: one row per (slot, split, method, seed), the other columns numeric. Returns columns slot, split,
    method, seeds, then each metric ``m`` and ``m sd`` side by side, in the input's row order.
    """
    numeric = [c for c in metrics.columns if c not in ENSEMBLE_KEYS]
    grouped = metrics.groupby(["slot", "split", "method"], sort=False)[numeric]
    table = grouped.mean().join(grouped.std(ddof=SD_DDOF), rsuffix=" sd").reset_index()
    table.insert(3, "seeds", grouped.size().values)
    return table[["slot", "split", "method", "seeds"] + [c for m in numeric for c in (m, f"{m} sd")]]


def ensemble_metrics_markdown(table: pd.DataFrame) -> pd.DataFrame:
    """The main columns of :func:`ensemble_metrics_table` as "mean ± sd" strings (:func:`mean_sd_cell`)."""
    out = table[["slot", "split", "method", "seeds"]].copy()
    for column, title in ENSEMBLE_MARKDOWN_COLUMNS.items():
        if column not in table:
            raise ValueError(f"ensemble metrics table has no column {column!r}")
        out[title] = [mean_sd_cell(m, sd) for m, sd in zip(table[column], table[f"{column} sd"])]
    return out


def closest_by_method(runs: pd.DataFrame, slot: str) -> pd.DataFrame:
    """Figure 2's bars: for one protein, the closest-sample RMSD (Å) per method and state, mean and sd
    (``SD_DDOF``) over seeds.

    runs: one row per (method, slot, seed) with closest_A, closest_B. Returns columns method, state ("A"/"B"),
    rmsd, sd, in the order of ``runs``.
    """
    per_seed = runs[runs["slot"] == slot].melt(id_vars=["method", "seed"], value_vars=["closest_A", "closest_B"],
                                               var_name="state", value_name="value")
    per_seed["state"] = per_seed["state"].str[-1]
    grouped = per_seed.groupby(["method", "state"], sort=False)["value"]
    return pd.DataFrame({"rmsd": grouped.mean(), "sd": grouped.std(ddof=SD_DDOF)}).reset_index()


def ddim_steps_table(sweep: pd.DataFrame) -> pd.DataFrame:
    """Per split and DDIM step count K: mean over proteins of closest_A, closest_B (Å), occupancy_A, and the
    mean seconds per ensemble. sweep: one row per (slot, split, steps) (notebook 03's step sweep)."""
    columns = ["closest_A", "closest_B", "occupancy_A", "seconds"]
    table = sweep.groupby(["split", "steps"], sort=False)[columns].mean().reset_index()
    table.insert(2, "proteins", sweep.groupby(["split", "steps"], sort=False).size().values)
    return table.sort_values(["split", "steps"], key=lambda c: c.map({"train": 0, "val": 1}) if c.name == "split"
                             else c, kind="stable").reset_index(drop=True)
