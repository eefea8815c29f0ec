"""What ``--relax`` (``physics.relax.relax``: Amber14 + OBC2, hydrogens added, heavy atoms restrained, minimised)
does to calmodulin models, and what it costs per model.

    python benchmarks/relax_check.py [--proteins 1EXR 3CLN 1CLL 1CLM 4CLN 1PRW] [--stiffness 10] [--csv OUT.csv]
    python benchmarks/relax_check.py --table1 results/full [--samples 4] [--seed 0] [--csv OUT.csv]

For each calmodulin of Table 1 (from $CRYOSAMPLER_PDB_DIR) it relaxes the deposited model and the two ANM end
states 4 Å from it along mode 1 (``nma.simulate_motion``, notebook 01's targets, up to the anchor's choice of
which end is A), one model at a time with the default ``RelaxConfig`` (``--stiffness``: another restraint, in
kcal/mol/Å²). A protein that Amber14 cannot parameterise
is reported with the one-line refusal instead.

Prints one row per model: clashes (< 2.2 Å) and chain breaks (CA–CA > 4.2 Å) before → after
(``evaluation.validate``), the heavy-atom RMSD of the relaxed model to its input as placed (no superposition) and
after optimal superposition (Table 1's metric: what a sample exactly at this state would score once relaxed), the
energies before and after (kJ/mol), and the wall and CPU seconds of the relaxation.

``--table1 RESULTS``: Table 1's question instead: does relaxing CryoSampler's samples move what Table 1 reports?
For every protein of notebook 01's data set under ``RESULTS`` it relaxes the first ``--samples`` samples of notebook
03's ensemble of seed ``--seed`` and scores them before and after as notebook 03 does (``score_ensemble``: the
closest sample's heavy-atom RMSD to states A and B), with clashes and chain breaks before → after, each relaxed
sample's RMSD to its input (superposed; largest over the samples) and seconds per sample.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from cryosampler.evaluation.metrics import score_ensemble
from cryosampler.evaluation.validate import sample_validity
from cryosampler.experiments.manifest import pdb_dir_from_env
from cryosampler.experiments.profiles import get_profile
from cryosampler.experiments.simulate import load_dataset, load_states
from cryosampler.io.atomic_files import read_ensemble, read_structure
from cryosampler.physics.nma import simulate_motion
from cryosampler.physics.relax import RelaxConfig, check_relaxable, relax
from cryosampler.physics.superpose import rmsd

CALMODULINS = ("1EXR", "3CLN", "1CLL", "1CLM", "4CLN", "1PRW")


def table1_rows(results: Path, dataset: pd.DataFrame, n_samples: int, seed: int, config: RelaxConfig) -> list[dict]:
    """One row per protein of notebook 01's ``dataset`` with notebook 03's ensembles under ``results`` (module
    docstring, ``--table1``)."""
    profile = get_profile("full")
    rows = []
    for entry in dataset.itertuples():
        reference, coords = load_states(results / "data", entry.slot)
        try:
            check_relaxable(reference, entry.slot)
        except ValueError as error:
            print(f"{entry.slot}: refused: {error}", flush=True)
            rows.append({"protein": entry.slot, "split": entry.split, "note": str(error)})
            continue
        path = results / profile.ensemble_path("Ours", entry.slot, seed).relative_to(profile.results_dir)
        samples = read_ensemble(path, reference)[:n_samples]
        states = np.stack([coords["A"], coords["B"]])
        wall = time.perf_counter()
        relaxed, _ = relax(samples, reference, config)
        wall = (time.perf_counter() - wall) / len(samples)
        before, after = (score_ensemble(x, states).summary() for x in (samples, relaxed))
        valid_before, valid_after = (sample_validity(x, reference) for x in (samples, relaxed))
        rows.append({
            "protein": entry.slot, "split": entry.split, "samples": len(samples),
            "closest_A_before": before["closest_A"], "closest_A_after": after["closest_A"],
            "closest_B_before": before["closest_B"], "closest_B_after": after["closest_B"],
            "clashes_before": valid_before["clashes"].mean(), "clashes_after": valid_after["clashes"].mean(),
            "breaks_before": valid_before["chain_breaks"].mean(), "breaks_after": valid_after["chain_breaks"].mean(),
            "rmsd_to_input_max": max(rmsd(r, x) for r, x in zip(relaxed, samples)), "wall_s_per_sample": wall})
        print(pd.DataFrame(rows[-1:]).to_string(index=False, header=len(rows) == 1, float_format="%.3f"), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--proteins", nargs="+", default=list(CALMODULINS))
    parser.add_argument("--stiffness", type=float, default=RelaxConfig().stiffness,
                        help="restraint k, kcal/mol/Å² (default: RelaxConfig's)")
    parser.add_argument("--table1", type=Path, default=None, metavar="RESULTS",
                        help="relax notebook 03's samples under this results folder (e.g. results/full) instead")
    parser.add_argument("--samples", type=int, default=4, help="with --table1: samples per protein (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="with --table1: the sampling seed (default 0)")
    parser.add_argument("--csv", type=Path, default=None)
    args = parser.parse_args()
    config = RelaxConfig(stiffness=args.stiffness)
    if args.table1 is not None:
        try:
            dataset, _ = load_dataset(args.table1 / "data")
        except ValueError as error:
            raise SystemExit(f"relax_check.py: {error}") from None
        table = pd.DataFrame(table1_rows(args.table1, dataset, args.samples, args.seed, config))
        print(table.to_markdown(index=False, floatfmt=".3f"))
        if args.csv is not None:
            table.to_csv(args.csv, index=False)
        return
    pdb_dir = pdb_dir_from_env()
    if pdb_dir is None:
        raise SystemExit("set CRYOSAMPLER_PDB_DIR to the calmodulin PDB directory")
    rows = []
    for name in args.proteins:
        structure = read_structure(pdb_dir / f"{name.lower()}.pdb")
        try:
            check_relaxable(structure, name)
        except ValueError as error:
            print(f"{name}: refused: {error}", flush=True)
            rows.append({"protein": name, "model": "refused", "note": str(error)})
            continue
        motion = simulate_motion(structure)
        for label, coords in (("deposited", structure.coords), ("ANM state A", motion.state_a),
                              ("ANM state B", motion.state_b)):
            wall, cpu = time.perf_counter(), time.process_time()
            relaxed, report = relax(coords[None], structure, config)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            before, after = (sample_validity(x[None], structure).iloc[0] for x in (coords, relaxed[0]))
            rows.append({
                "protein": name, "model": label, "atoms": structure.n_atoms,
                "clashes_before": before["clashes"], "clashes_after": after["clashes"],
                "breaks_before": before["chain_breaks"], "breaks_after": after["chain_breaks"],
                "ca_ca_max_before": before["ca_ca_max"], "ca_ca_max_after": after["ca_ca_max"],
                "rmsd_in_place": float(report.rmsd[0]), "rmsd_superposed": rmsd(relaxed[0], coords),
                "energy_before": float(report.energy_before[0]), "energy_after": float(report.energy_after[0]),
                "wall_s": wall, "cpu_s": cpu})
            print(pd.DataFrame(rows[-1:]).to_string(index=False, header=len(rows) == 1, float_format="%.2f"),
                  flush=True)
    table = pd.DataFrame(rows)
    print(table.to_markdown(index=False, floatfmt=".2f"))
    if args.csv is not None:
        table.to_csv(args.csv, index=False)


if __name__ == "__main__":
    main()
