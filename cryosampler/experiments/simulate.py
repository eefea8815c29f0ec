"""Synthetic dataset of appendix A.4: ANM end states of each protein and their simulated cryo-EM maps.

Per protein (one manifest slot) this writes, in the common frame (see ``frame``):
``{slot}_ref.pdb``, ``{slot}_A.pdb``, ``{slot}_B.pdb`` and ``{slot}_ref.mrc``, ``{slot}_A.mrc``, ``{slot}_B.mrc``,
plus ``dataset.csv`` (one row per protein) and ``template.json`` (the common frame).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from cryosampler.io.grid import MapGrid
from cryosampler.io.mrc import read_mrc, write_mrc
from cryosampler.io.structure import Structure
from cryosampler.io.atomic_files import read_ensemble, read_structure, write_pdb
from cryosampler.model.featurize import featurize
from cryosampler.physics.frame import Template, placement, principal_axes_template
from cryosampler.physics.nma import MotionConfig, simulate_motion
from cryosampler.physics.render import render_density
from cryosampler.physics.superpose import rmsd
from cryosampler.training import TrainingExample

__all__ = ["SimulatedProtein", "simulate_protein", "simulate_dataset", "load_dataset", "load_maps", "load_states",
           "residue_displacements", "STATES", "training_examples"]

STATES = ("ref", "A", "B")


@dataclass(frozen=True)
class SimulatedProtein:
    """One protein's reference, end states, mode (common frame) and maps."""

    slot: str
    structure: Structure  # coordinates: the reference in the common frame
    coords: dict[str, np.ndarray]  # "ref", "A", "B" → (N, 3) float64, Å
    mode: np.ndarray  # (N, 3) unit mode-1 direction (oriented), common frame
    maps: dict[str, np.ndarray]  # "ref", "A", "B" → (D, D, D) float32, axes (x, y, z)


def simulate_protein(slot: str, structure: Structure, template: Template, grid: MapGrid,
                     motion_config: MotionConfig,
                     anchor: tuple[Structure, np.ndarray] | None) -> tuple[SimulatedProtein, np.ndarray]:
    """Motion, common-frame placement and maps of one protein.

    Returns the simulated protein and its oriented mode in the *input* frame (the anchor for others).
    """
    motion = simulate_motion(structure, motion_config, anchor)
    place = placement(structure, template)
    coords = {"ref": place.apply(structure.coords), "A": place.apply(motion.state_a),
              "B": place.apply(motion.state_b)}
    stacked = torch.as_tensor(np.stack([coords[s] for s in STATES]), dtype=torch.float32)  # (3, N, 3)
    weights = torch.tensor(structure.atomic_numbers, dtype=torch.float32)
    with torch.no_grad():
        volumes = render_density(stacked, weights, grid).numpy()  # (3, D, D, D)
    placed = SimulatedProtein(
        slot=slot, structure=structure.with_coords(coords["ref"]), coords=coords,
        mode=motion.mode @ place.rotation.T, maps=dict(zip(STATES, volumes)))
    return placed, motion.mode


def simulate_dataset(manifest: pd.DataFrame, out_dir: Path, grid: MapGrid = MapGrid(),
                     motion_config: MotionConfig = MotionConfig(), progress: bool = True) -> pd.DataFrame:
    """Simulate every protein of a resolved manifest (``manifest.resolve_manifest``) and write the files.

    The first training protein is the anchor: it fixes the mode sign (``nma``) and the common frame.
    Returns the dataset table that is also written to ``out_dir/dataset.csv``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    order = manifest.sort_values("split", key=lambda s: s != "train", kind="stable")
    if order.iloc[0]["split"] != "train":
        raise ValueError("the manifest has no training protein to anchor the frame and mode sign")
    rows, anchor, template = [], None, None
    for _, entry in tqdm(list(order.iterrows()), desc="simulate", disable=not progress):
        structure = read_structure(entry["path"])
        if template is None:
            template = principal_axes_template(structure)
        sim, mode_input_frame = simulate_protein(entry["slot"], structure, template, grid, motion_config, anchor)
        if anchor is None:
            anchor = (structure, mode_input_frame)
        paths = {}
        for state in STATES:
            paths[f"pdb_{state}"] = out_dir / f"{entry['slot']}_{state}.pdb"
            paths[f"map_{state}"] = out_dir / f"{entry['slot']}_{state}.mrc"
            write_pdb(paths[f"pdb_{state}"], sim.structure, sim.coords[state])
            write_mrc(paths[f"map_{state}"], sim.maps[state], grid, origin=grid.origin)
        np.save(out_dir / f"{entry['slot']}_mode.npy", sim.mode)
        rows.append({
            "slot": entry["slot"], "used_id": entry["used_id"], "split": entry["split"],
            "substituted": bool(entry["substituted"]), "source_file": str(entry["path"]),
            "n_atoms": structure.n_atoms, "n_residues": structure.n_residues,
            "first_residue": int(structure.res_nums.min()), "last_residue": int(structure.res_nums.max()),
            "static_rmsd_A": rmsd(sim.coords["ref"], sim.coords["A"]),
            "static_rmsd_B": rmsd(sim.coords["ref"], sim.coords["B"]),
            "rmsd_A_B": rmsd(sim.coords["A"], sim.coords["B"]),
            **{k: v.name for k, v in paths.items()},
        })
    (out_dir / "template.json").write_text(json.dumps(template.to_dict()))
    table = pd.DataFrame(rows)
    table.to_csv(out_dir / "dataset.csv", index=False)
    return table


def load_dataset(data_dir: Path) -> tuple[pd.DataFrame, Template]:
    """Read ``dataset.csv`` and ``template.json`` written by :func:`simulate_dataset`."""
    data_dir = Path(data_dir)
    table_path = data_dir / "dataset.csv"
    if not table_path.is_file():
        raise ValueError(f"{table_path} not found: run notebooks/01_simulate_data first")
    return pd.read_csv(table_path), Template.from_dict(json.loads((data_dir / "template.json").read_text()))


def _state_files(data_dir: Path, slot: str, suffix: str, what: str) -> dict[str, Path]:
    """Notebook 01's ``{slot}_{state}{suffix}`` file of each state; ValueError listing any that are missing."""
    paths = {s: Path(data_dir) / f"{slot}_{s}{suffix}" for s in STATES}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise ValueError(f"missing {what} {missing}: run notebooks/01_simulate_data first")
    return paths


def load_maps(data_dir: Path, slot: str) -> dict[str, np.ndarray]:
    """The three maps of one protein: "ref", "A", "B" → (D, D, D) float32, axes (x, y, z)."""
    return {s: read_mrc(p)[0] for s, p in _state_files(data_dir, slot, ".mrc", "maps").items()}


def load_states(data_dir: Path, slot: str) -> tuple[Structure, dict[str, np.ndarray]]:
    """The reference structure (common frame) and the coordinates of "ref", "A", "B" (N, 3) Å of one protein."""
    paths = _state_files(data_dir, slot, ".pdb", "structures")
    reference = read_structure(paths["ref"])
    return reference, {s: read_ensemble(p, reference)[0] for s, p in paths.items()}


def residue_displacements(data_dir: Path, slots: list[str]) -> pd.DataFrame:
    """Per-residue CA displacement (Å) from the reference to state A; columns slot, residue, displacement."""
    frames = []
    for slot in slots:
        reference, coords = load_states(data_dir, slot)
        ca = reference.backbone_index[:, 1]
        shift = np.linalg.norm(coords["A"][ca] - coords["ref"][ca], axis=-1)
        frames.append(pd.DataFrame({"slot": slot, "residue": reference.backbone_res_nums, "displacement": shift}))
    return pd.concat(frames, ignore_index=True)


def training_examples(data_dir: Path, slots: list[str], tokens: str) -> list[TrainingExample]:
    """Both state maps of each protein in ``slots`` with its reference features (files of notebook 01)."""
    examples = []
    for slot in slots:
        reference, coords = load_states(data_dir, slot)
        protein = featurize(reference, coords["ref"], tokens=tokens)
        maps = load_maps(data_dir, slot)
        examples += [TrainingExample(protein, torch.from_numpy(maps[state])) for state in ("A", "B")]
    return examples