"""Importers for the ensembles of the paper's baselines, AlphaFlow (Jing et al. 2024) and Boltz-1 (Wohlwend et al.
2025), which run elsewhere: both fetch their weights at run time and need a GPU.

Documented layout under a user-supplied folder ``root`` (what :data:`BASELINE_COMMANDS` writes), per protein
``slot`` (the manifest slot, e.g. ``4CLN``):

* ``root/alphaflow/{slot}.pdb``: one multi-MODEL PDB, one MODEL per sample;
* ``root/boltz/boltz_results_<input>/predictions/{slot}/{slot}_model_{k}.cif``, k = 0 … S−1, one model each
  (``root/boltz/predictions/{slot}/`` is accepted too).

Both predictors number residues from 1 along the input sequence; give them the full SEQRES sequence so that
their numbering is the deposited one (calmodulin starts at Ala1) and ``metrics.matched_rmsd_matrix`` can
match atoms by (residue number, atom name).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from cryosampler.io.structure import Structure
from cryosampler.io.atomic_files import read_ensemble, read_structure

__all__ = ["BASELINE_COMMANDS", "BASELINE_METHODS", "find_baseline_outputs", "read_alphaflow", "read_baseline",
           "read_boltz"]

# The Table 1 row (``tables.TABLE1_METHODS``) of each kind of output that find_baseline_outputs finds.
BASELINE_METHODS = {"alphaflow": "AlphaFlow", "boltz": "Boltz-1"}

# For a GPU machine with internet access; <root> is the folder later given to find_baseline_outputs.
BASELINE_COMMANDS: dict[str, str] = {
    "alphaflow": (
        "# In a clone of https://github.com/bjing2016/alphaflow installed per its README, with\n"
        "# params/alphaflow_md_distilled_202402.pt from https://alphaflow.s3.amazonaws.com/params/.\n"
        "# <root>/alphaflow_input.csv: columns name,seqres; name = slot (e.g. 4CLN), seqres = SEQRES sequence.\n"
        "python -m scripts.mmseqs_query --split <root>/alphaflow_input.csv --outdir <root>/alphaflow_msa\n"
        "python predict.py --mode alphafold --input_csv <root>/alphaflow_input.csv --msa_dir <root>/alphaflow_msa "
        "--weights params/alphaflow_md_distilled_202402.pt --samples 16 --noisy_first --no_diffusion "
        "--outpdb <root>/alphaflow"
    ),
    "boltz": (
        "# pip install boltz (weights download to ~/.boltz on first run; Boltz < 1.0 has no --model option).\n"
        "# <root>/boltz_input/<slot>.yaml, one per protein (the file stem names the output folder):\n"
        "#   version: 1\n"
        "#   sequences:\n"
        "#     - protein: {id: A, sequence: <SEQRES sequence>}\n"
        "boltz predict <root>/boltz_input --model boltz1 --diffusion_samples 16 --use_msa_server "
        "--output_format mmcif --out_dir <root>/boltz"
    ),
}


def read_alphaflow(path) -> tuple[Structure, np.ndarray]:
    """Read an AlphaFlow ensemble: one multi-MODEL PDB per protein.

    Hydrogens, if written, are dropped (``atomic_files.read_structure``).

    Returns
    -------
    structure : Structure
        Model 1, with M heavy atoms.
    coords : (S, M, 3) float64, Å
        All S models in the atom order of ``structure``.

    Raises
    ------
    ValueError
        Missing or unparsable file, or a model whose atoms differ from model 1 (named in the message).
    """
    structure = read_structure(path)
    return structure, read_ensemble(path, structure)


def _boltz_dir(prediction_dir: Path, name: str) -> Path:
    """The folder holding ``{name}_model_{k}.cif``: ``prediction_dir/name`` or ``prediction_dir`` itself."""
    for candidate in (prediction_dir / name, prediction_dir):
        if candidate.is_dir() and any(candidate.glob(f"{name}_model_*.cif")):
            return candidate
    raise ValueError(f"no Boltz models {name}_model_<k>.cif in {prediction_dir / name} or {prediction_dir}; "
                     "pass the 'predictions' folder of a Boltz run with --output_format mmcif, or its "
                     f"'{name}' subfolder")


def read_boltz(prediction_dir, name: str) -> tuple[Structure, np.ndarray]:
    """Read a Boltz ensemble: ``{name}_model_{k}.cif`` for k = 0 … S−1, one model each, in order of k.

    Parameters
    ----------
    prediction_dir : str or Path
        Boltz's ``predictions`` folder, or its ``{name}`` subfolder.
    name : str
        Input name (the stem of the Boltz input file).

    Returns
    -------
    structure : Structure
        Model 0, with M heavy atoms.
    coords : (S, M, 3) float64, Å
        Sample k in row k (model_10 after model_9), in the atom order of ``structure``.

    Raises
    ------
    ValueError
        Nothing found (the message names the folders searched), a gap in k, a file holding more than one
        model, or a file whose atoms differ from model 0 (named in the message).
    """
    folder = _boltz_dir(Path(prediction_dir), name)
    pattern = re.compile(rf"{re.escape(name)}_model_(\d+)\.cif")
    files = {int(m.group(1)): p for p in folder.iterdir() if (m := pattern.fullmatch(p.name))}
    missing = sorted(set(range(len(files))) - set(files))
    if missing:
        raise ValueError(f"{folder}: Boltz model {name}_model_{missing[0]}.cif is missing (found k = "
                         f"{sorted(files)}); rerun Boltz or remove the partial output")
    structure = read_structure(files[0])
    coords = []
    for k in range(len(files)):
        models = read_ensemble(files[k], structure)  # (1, M, 3); raises naming the file on other atoms
        if len(models) != 1:
            raise ValueError(f"{files[k]}: expected one model per Boltz file, found {len(models)}")
        coords.append(models[0])
    return structure, np.stack(coords)


def read_baseline(kind: str, path, slot: str) -> tuple[Structure, np.ndarray]:
    """Read one output that :func:`find_baseline_outputs` found for ``slot``: (structure, coords (S, M, 3) Å).

    kind : "alphaflow" (``path`` is the PDB, :func:`read_alphaflow`) or "boltz" (``path`` is the prediction
        folder, :func:`read_boltz`).
    """
    if kind == "alphaflow":
        return read_alphaflow(path)
    if kind == "boltz":
        return read_boltz(path, slot)
    raise ValueError(f"unknown baseline output kind {kind!r}; expected one of {sorted(BASELINE_METHODS)}")


def find_baseline_outputs(root, slot: str) -> dict[str, Path]:
    """The baseline outputs for one protein under ``root`` (layout in the module docstring).

    Returns
    -------
    dict
        ``"alphaflow"`` → the PDB file (for :func:`read_alphaflow`), ``"boltz"`` → the ``{slot}`` prediction
        folder (for :func:`read_boltz`); only those that exist, so possibly empty.

    Raises
    ------
    ValueError
        If several Boltz runs under ``root/boltz`` hold predictions for ``slot``.
    """
    root = Path(root)
    found = {}
    alphaflow = root / "alphaflow" / f"{slot}.pdb"
    if alphaflow.is_file():
        found["alphaflow"] = alphaflow
    boltz = [d for d in [root / "boltz" / "predictions" / slot,
                         *sorted((root / "boltz").glob(f"boltz_results_*/predictions/{slot}"))] if d.is_dir()]
    if len(boltz) > 1:
        raise ValueError(f"several Boltz predictions for {slot}: {[str(d) for d in boltz]}; keep one")
    if boltz:
        found["boltz"] = boltz[0]
    return found
