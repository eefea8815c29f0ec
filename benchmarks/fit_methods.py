"""Fitting atomic models into maps of known structures, method against method: the trained read-out of
``cryosampler fit`` alone, recycled and refined, against classical fitting that needs no trained model.

    python benchmarks/fit_methods.py [--own-maps results/full/own_maps] [--domain-motion results/full/domain_motion]
                                     [--tables tables] [--recycle 1] [--refine-preset default] [--limit N]

Map sets:

* ``--own-maps``: notebook 07's folder. Maps ``fit_maps/4A`` and ``fit_maps/8A`` (named
  ``user_maps.fit_map_name`` of their path frame, B 50 Å², SNR 1), reference ``adk_closed_1AKE.pdb``, one model
  per ``runs/*/checkpoint.pt``; the truth is the frame of adenylate kinase's path (``transition.read_adk_path``,
  moved by ``user_maps.MAP_FRAME``) and the RMSD is over heavy atoms after superposition, as notebook 07 scores it.
* ``--domain-motion``: notebook 06's folder. ``proteins.csv`` lists each protein's reference
  (``structures/<protein>_<state i>.pdb``) and maps (``maps/<protein>/<state>.mrc``, rendered at 8 Å from the state
  superposed on the reference), the model is ``run/checkpoint.pt``; the truth is ``structures/<protein>_<state>.pdb``
  and the RMSD is the benchmark's (backbone, residues paired by sequence; ``coverage.aligned_rmsd_matrix``).

Each map is ingested onto the model's grid around the reference (fit probes off: notebook 06's far states need
it), and then fitted by every method (``METHODS``): the read-out (``readout.fit_map``), the read-out recycled
``--recycle`` times, each refined (``refine.refine``, rendered at the map set's resolution); the rigid reference
refined; the normal-mode fit of the reference (``physics.nma_fit``) alone and refined; the rigid reference
itself; and, per model, the better (by map–model correlation) of the refined read-out and the refined normal-mode
fit, which is what ``fit --refine --normal-modes`` keeps. Per map and method: RMSD to the truth, map–model
correlation at the map's resolution, clashes and bond deviation from the reference (``validate.sample_validity``),
seconds (ingestion excluded, measured apart).

Writes ``fit_methods.{csv,md}`` (method × map set × resolution: mean and largest RMSD, mean correlation, clashes,
bond deviation, seconds per map) and ``fit_methods_maps.{csv,md}`` (one row per map and method) under
``--tables`` (``evaluation.tables.save_table``).
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

from cryosampler.experiments.fit_methods import compare_fit_methods, domain_motion_cases, first_maps, own_maps_cases
from cryosampler.physics.nma_fit import NMA_FIT_PRESETS
from cryosampler.refine import REFINE_PRESETS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--own-maps", type=Path, default=None, help="notebook 07's work folder")
    parser.add_argument("--domain-motion", type=Path, default=None, help="notebook 06's work folder")
    parser.add_argument("--tables", type=Path, default=Path("tables"), help="where the tables go (default tables/)")
    parser.add_argument("--recycle", type=int, default=1, help="read-outs after the first, recycled (default 1)")
    parser.add_argument("--refine-preset", default="default", choices=sorted(REFINE_PRESETS))
    parser.add_argument("--nma-preset", default="default", choices=sorted(NMA_FIT_PRESETS))
    parser.add_argument("--limit", type=int, default=None, help="at most this many maps per map set (a quick look)")
    args = parser.parse_args()
    if args.own_maps is None and args.domain_motion is None:
        parser.error("give --own-maps and/or --domain-motion")
    if args.recycle < 1:
        parser.error(f"--recycle {args.recycle}: the recycled read-out needs at least 1")

    cases = (own_maps_cases(args.own_maps) if args.own_maps else []) + (
        domain_motion_cases(args.domain_motion) if args.domain_motion else [])
    if args.limit is not None:
        cases = first_maps(cases, args.limit)
    summary = compare_fit_methods(cases, args.tables, args.recycle, args.refine_preset, args.nma_preset,
                                  log=functools.partial(print, flush=True))
    print(summary.round(3).to_string(index=False))


if __name__ == "__main__":
    main()
