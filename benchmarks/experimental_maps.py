"""``cryosampler train`` and ``fit`` on real EMDB maps with their deposited models, run as a user would.

    python benchmarks/experimental_maps.py [--steps 150] [--work results/experimental_maps] [--tables tables]

For each map of ``experiments.experimental_maps.EXPERIMENTAL_MAPS`` (downloaded once from PyPI; see that module
for the entries and their licences) the command line is run in a subprocess: ``train --reference MODEL --chain
A --maps MAP --steps STEPS``, then ``fit`` of the same map with the trained checkpoint (the read-out) and ``fit
--refine --resolution R`` at the entry's resolution. Each run's wall time, exit status and warning or error
lines are kept; from ``fit.csv``: the map–model correlation on the model's grid of the deposited model
(``correlation_reference``) and of the fitted one, and the fitted model's RMSD to the deposited one. A map
that ``train`` refuses gets its error line and no fit. Writes ``experimental_maps.{csv,md}`` to ``--tables``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from cryosampler.evaluation.metrics import chain_rmsds
from cryosampler.evaluation.tables import save_table
from cryosampler.experiments.experimental_maps import EXPERIMENTAL_MAPS, experimental_map_files
from cryosampler.experiments.profiles import repo_root
from cryosampler.io.atomic_files import read_ensemble, read_structure


# Markdown titles of the table's columns.
TITLES = {"resolution_A": "resolution (Å)", "train_exit": "train exit", "train_s": "train (s)",
          "correlation_deposited": "r deposited", "correlation_readout": "r read-out",
          "rmsd_readout_A": "RMSD read-out (Å)", "fit_s": "fit (s)", "correlation_refined": "r refined",
          "rmsd_refined_A": "RMSD refined (Å)", "rmsd_refined_chains": "RMSD refined per chain (Å)",
          "refine_s": "refine (s)"}


def run_cli(arguments: list[str]) -> tuple[int, float, list[str]]:
    """Run ``python -m cryosampler ARGUMENTS``: exit status, wall time (s), its warning and error lines."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "cryosampler", *arguments], capture_output=True, text=True,
                          cwd=repo_root())
    seconds = time.perf_counter() - start
    notes = [line.strip() for line in done.stderr.splitlines() if "WARNING" in line or "error" in line.lower()]
    return done.returncode, seconds, notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=150, help="training steps per map")
    parser.add_argument("--work", type=Path, default=repo_root() / "results" / "experimental_maps",
                        help="folder for each map's run and fits (emptied first)")
    parser.add_argument("--tables", type=Path, default=repo_root() / "tables")
    args = parser.parse_args()
    files = experimental_map_files()
    shutil.rmtree(args.work, ignore_errors=True)
    rows = []
    for entry in EXPERIMENTAL_MAPS:
        work = args.work / entry.name
        the_map, model = str(files[entry.map_file]), str(files[entry.model_file])
        given = ["--reference", model, "--chain", entry.chain, "--maps", the_map, "--quiet"]
        # The map family, which its committed table measures (docs/results.md, "Real EMDB maps").
        code, train_s, notes = run_cli(["train", "--family", "map", *given, "-o", str(work / "run"), "--steps",
                                        str(args.steps), "--seed", "0"])
        row = {"map": entry.map_file, "emdb": entry.emdb, "pdb": f"{entry.pdb} {entry.chain}",
               "resolution_A": entry.resolution, "note": entry.note, "train_exit": code, "train_s": train_s}
        if code == 0:
            checkpoint = ["--checkpoint", str(work / "run" / "checkpoint.pt")]
            _, fit_s, fit_notes = run_cli(["fit", *checkpoint, *given, "-o", str(work / "fit")])
            _, refine_s, refine_notes = run_cli(["fit", *checkpoint, *given, "-o", str(work / "refine"), "--refine",
                                                 "--resolution", str(entry.resolution)])
            notes += fit_notes + refine_notes
            fit = pd.read_csv(work / "fit" / "fit.csv").iloc[0]
            refined = pd.read_csv(work / "refine" / "fit.csv").iloc[0]
            reference = read_structure(model, chain=entry.chain)
            per_chain = chain_rmsds(read_ensemble(refined.model, reference), reference.coords, reference)
            row |= {"correlation_deposited": fit.correlation_reference, "correlation_readout": fit.correlation_fitted,
                    "rmsd_readout_A": fit.rmsd_to_reference, "fit_s": fit_s,
                    "correlation_refined": refined.correlation_fitted, "rmsd_refined_A": refined.rmsd_to_reference,
                    "rmsd_refined_chains": ", ".join(f"{c} {v[0]:.2f}" for c, v in per_chain.items()),
                    "refine_s": refine_s}
        # One line per distinct message, without the program name and the cache folder.
        row["messages"] = " | ".join(dict.fromkeys(notes)).replace("cryosampler: ", "").replace(
            f"{files[entry.map_file].parent}/", "").replace(str(args.work), "…")
        rows.append(row)
        print(row, flush=True)
    table = pd.DataFrame(rows)
    footnote = (f"`benchmarks/experimental_maps.py --steps {args.steps}`: `train` (default preset, batch 8) then "
                "`fit` and `fit --refine --resolution R` of the same map, each as a subprocess; times are wall "
                "seconds including start-up and ingestion. Correlations are map–model correlations on the model's "
                "64³ × 2 Å grid; RMSDs are heavy-atom RMSDs of the fitted model to the deposited one after "
                "superposing the whole model (fit.csv's), and (refined) of each chain's atoms after the same "
                "superposition. Maps: EMDB (CC0) via the ccpem-utils 0.0.1.dev34 wheel's test data.")
    shown = table.rename(columns=TITLES).drop(columns=["note"])
    for path in save_table(table, args.tables, "experimental_maps", floatfmt=".3f", footnote=footnote,
                           markdown=shown):
        print("wrote", path)


if __name__ == "__main__":
    main()
