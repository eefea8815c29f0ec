"""benchmarks/fit_methods.py runs every method on a folder laid out as notebook 06 writes it and writes its tables."""

import importlib.util
import sys

import numpy as np
import pandas as pd

from cryosampler.experiments.profiles import repo_root
from cryosampler.io.atomic_files import write_pdb
from cryosampler.model.checkpoint import save_checkpoint

from conftest import checkpoint_state, make_helix, tiny_model
from test_ingest import write_user_map


def _fit_methods(monkeypatch):
    spec = importlib.util.spec_from_file_location("fit_methods", repo_root() / "benchmarks" / "fit_methods.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "fit_methods", module)  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module


def test_fit_methods_scores_every_method_on_a_domain_motion_folder(tmp_path, monkeypatch, capsys):
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
    monkeypatch.setattr(sys, "argv", ["fit_methods.py", "--domain-motion", str(work), "--tables", str(tables),
                                      "--refine-preset", "smoke", "--nma-preset", "smoke"])
    module = _fit_methods(monkeypatch)
    module.main()
    per_map = pd.read_csv(tables / "fit_methods_maps.csv")
    methods = [m.format(n=1) for m in module.METHODS]
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
    assert "map 2/2" in capsys.readouterr().out
