"""What the paper's synthetic states do to geometry: notebook 01's ANM end states against their amplitude.

    python benchmarks/anm_geometry.py [--amplitudes 1 2 3 4] [--tables tables]

Notebook 01 (the paper's protocol) makes each calmodulin's two states by moving every atom linearly along the
lowest ANM mode until the state lies ``MotionConfig.rmsd`` (4 Å) from the reference (``nma.simulate_motion``). A
linear move along a mode stretches and bends what the elastic network does not hold rigid. For every protein of
the paper's manifest (``$CRYOSAMPLER_PDB_DIR``, as notebook 01 resolves it) and each amplitude, both end states
are scored with ``evaluation.validate.sample_validity``, the definition notebook 05's validity table uses:
clashes (heavy-atom pairs < 2.2 Å, not bonded), chain breaks (CA–CA > 4.2 Å), the longest CA–CA and peptide C–N,
bond-length and bond-angle deviation from the reference (rms), and BioEmu's physicality filter (CA–CA < 4.5 Å,
C–N < 2.0 Å, no atom pair within 1 Å).

Writes ``anm_geometry.{csv,md}`` under ``--tables``: one row per protein and amplitude, means over the two states
(the longest CA–CA and C–N: the larger), after a row for the reference itself (RMSD 0). Runs in seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from cryosampler.evaluation.tables import save_table
from cryosampler.evaluation.validate import sample_validity
from cryosampler.experiments.manifest import pdb_dir_from_env, resolve_manifest
from cryosampler.io.atomic_files import read_structure
from cryosampler.physics.nma import MotionConfig, simulate_motion

FOOTNOTE = ("Notebook 01's end states (linear moves along ANM mode 1, nma.simulate_motion) at each RMSD from the "
            "reference (0: the reference); notebook 01 uses 4 Å. Means over the two states; clashes: heavy-atom "
            "pairs < 2.2 Å; breaks: CA–CA > 4.2 Å; ca_ca_max, c_n_max: longest CA–CA and peptide C–N, Å; bond/angle: "
            "rms deviation from the reference; BioEmu: share of states passing its filter.")


def geometry_rows(manifest: pd.DataFrame, amplitudes: list[float]) -> list[dict]:
    """One row per manifest protein and amplitude (module docstring)."""
    rows = []
    for _, entry in manifest.iterrows():
        structure = read_structure(entry["path"])
        for amplitude in [0.0, *amplitudes]:  # 0: the reference itself
            if amplitude == 0.0:
                states = structure.coords[None]
            else:
                motion = simulate_motion(structure, dataclasses.replace(MotionConfig(), rmsd=amplitude))
                states = np.stack([motion.state_a, motion.state_b])
            validity = sample_validity(states, structure)
            rows.append({"slot": entry["slot"], "rmsd": amplitude,
                         "clashes": validity["clashes"].mean(), "chain_breaks": validity["chain_breaks"].mean(),
                         "ca_ca_max": validity["ca_ca_max"].max(),
                         "c_n_max": validity["c_n_max"].max(), "bond_dev_rmsd": validity["bond_dev_rmsd"].mean(),
                         "angle_dev_rmsd": validity["angle_dev_rmsd"].mean(),
                         "bioemu_pass": validity["bioemu_physical"].mean()})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--amplitudes", type=float, nargs="+", default=[1.0, 2.0, 3.0, MotionConfig().rmsd],
                        help="RMSDs of the end states from the reference, Å (default 1 2 3 4)")
    parser.add_argument("--tables", type=Path, default=Path("tables"), help="where the table goes (default tables/)")
    args = parser.parse_args()
    try:
        manifest = resolve_manifest("paper", pdb_dir=pdb_dir_from_env())
    except ValueError as error:
        raise SystemExit(f"anm_geometry.py: {error}") from None
    table = pd.DataFrame(geometry_rows(manifest, args.amplitudes))
    save_table(table, args.tables, "anm_geometry", floatfmt=".2f", footnote=FOOTNOTE)
    print(table.to_markdown(index=False, floatfmt=".2f"))


if __name__ == "__main__":
    main()
