"""Every table of the project, one function each; notebooks save them with :func:`save_table`."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

__all__ = ["save_table", "dataset_table", "sampling_table"]


def save_table(table: pd.DataFrame, directory: Path, name: str, floatfmt: str = ".2f",
               footnote: str = "") -> list[Path]:
    """Write ``directory/name.csv`` (full precision) and ``directory/name.md`` (rounded, with a footnote)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = directory / f"{name}.csv", directory / f"{name}.md"
    table.to_csv(csv_path, index=False)
    markdown = table.to_markdown(index=False, floatfmt=floatfmt)
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
