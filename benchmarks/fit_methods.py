"""Fitting atomic models into maps of known structures, method against method: the trained read-out of
``cryosampler fit`` alone, recycled and refined, against classical fitting that needs no trained model.

    python benchmarks/fit_methods.py [--own-maps results/full/own_maps] [--domain-motion results/full/domain_motion]
                                     [--tables tables] [--recycle 1] [--refine-preset default] [--limit N]

``--own-maps`` takes notebook 07's folder, ``--domain-motion`` notebook 06's; what each map set holds, the
methods, what is measured and the two tables written under ``--tables`` (``fit_methods`` and ``fit_methods_maps``,
CSV and Markdown): ``cryosampler.experiments.fit_methods``.
``./run_all.sh --extras`` runs it on notebook 06's folder.
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
