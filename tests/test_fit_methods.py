"""The fitting methods compared (benchmarks/fit_methods.py) run on a folder laid out as notebook 06 writes it and write
their tables."""

from pathlib import Path

import numpy as np
import pandas as pd

from cryosampler.experiments import fit_methods
from cryosampler.io.atomic_files import write_pdb
from cryosampler.model.checkpoint import save_checkpoint

from conftest import checkpoint_state, make_helix, tiny_model
from test_ingest import write_user_map


def test_fit_methods_scores_every_method_on_a_domain_motion_folder(tmp_path):
    # Notebook 06's layout, for one protein: its two states, the maps of both in state A's frame, the model.
    helix = make_helix(12, name="helix")
    bent = helix.coords.copy()
    bent[helix.res_nums > 6] += [3.0, 0.0, 0.0]  # state B: the second half moved
    work = tmp_path / "domain_motion"
    (work / "structures").mkdir(parents=True)
    (work / "maps" / "helix").mkdir(parents=True)
    for state, coords in (("A", helix.coords), ("B", bent)):
        write_pdb(work / "structures" / f"helix_{state}.pdb", helix, coords)
        write_user_map(work / "maps" / "helix" / f"{state}.mrc", coords, helix.atomic_numbers, 2.0, (24, 24, 24))
    pd.DataFrame({"protein": "helix", "reference": "structures/helix_A.pdb",
                  "map": ["maps/helix/A.mrc", "maps/helix/B.mrc"]}).to_csv(work / "proteins.csv", index=False)
    (work / "run").mkdir()
    save_checkpoint(work / "run" / "checkpoint.pt", checkpoint_state(tiny_model(helix)))

    tables = tmp_path / "tables"
    log = []
    returned = fit_methods.compare_fit_methods(fit_methods.domain_motion_cases(work), tables, refine_preset="smoke",
                                               nma_preset="smoke", log=log.append)
    per_map = pd.read_csv(tables / "fit_methods_maps.csv")
    methods = [m.format(n=1) for m in fit_methods.METHODS]
    assert list(per_map["method"]) == methods * 2 and list(per_map["map"]) == ["A.mrc"] * 9 + ["B.mrc"] * 9
    best = per_map[per_map["method"] == methods[-1]].reset_index(drop=True)
    candidates = per_map[per_map["method"].isin(["ANM fit + refine", "read-out + refine"])]
    np.testing.assert_allclose(best["correlation"], candidates.groupby("map")["correlation"].max())
    assert set(per_map["model"]) == {"—", "run"} and (per_map["map_set"] == "domain motion (helix)").all()
    rigid = per_map[per_map["method"] == "rigid reference"].set_index("map")
    # The benchmark's backbone RMSD after superposition: the reference is state A; B is not.
    assert rigid.loc["A.mrc", "rmsd"] < 1e-3 and rigid.loc["B.mrc", "rmsd"] > 0.5
    assert rigid.loc["A.mrc", "correlation"] > rigid.loc["B.mrc", "correlation"]
    assert per_map[["rmsd", "correlation", "seconds", "bond_dev_rmsd"]].notna().all().all()
    summary = pd.read_csv(tables / "fit_methods.csv")
    assert list(summary.columns) == ["map_set", "resolution", "method", "model", "maps", "rmsd_mean", "rmsd_max",
                                     "correlation", "clashes", "bond_dev_rmsd", "seconds"]
    assert list(summary["method"]) == methods and (summary["maps"] == 2).all()
    np.testing.assert_allclose(summary["rmsd_max"], per_map.groupby("method", sort=False)["rmsd"].max())
    assert (tables / "fit_methods.md").read_text().startswith("| map_set")
    pd.testing.assert_frame_equal(summary, returned, check_dtype=False)
    assert [line.split(":")[0] for line in log] == [f"map {k}/2 {work / 'maps' / 'helix' / s}.mrc"
                                                    for k, s in ((1, "A"), (2, "B"))]


def test_first_maps_keeps_the_first_of_each_map_set():
    cases = [fit_methods.Case(name, Path(f"{name}{k}.mrc"), 8.0, None, {}, None)
             for name, k in (("a", 0), ("b", 0), ("a", 1), ("a", 2), ("b", 1))]
    assert [c.path.name for c in fit_methods.first_maps(cases, 2)] == ["a0.mrc", "b0.mrc", "a1.mrc", "b1.mrc"]
