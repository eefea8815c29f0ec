"""A common coordinate frame for all proteins of a dataset.

Deposited PDB frames are arbitrary (each crystal has its own), and a density map carries the protein's
orientation in that frame. The paper centres each protein's states on its reference (A.4); we also
rotate every reference onto one *template* — the first training protein's CA atoms, centred and on
their principal axes — so that maps of homologous proteins share an orientation. Only the reference
structure is used to place a protein (never its states), so the same placement is available at
inference time for a user's protein, and outputs are mapped back to the user's frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cryosampler.structure import Structure, shared_ca
from cryosampler.superpose import optimal_rotation

__all__ = ["RigidTransform", "Template", "principal_axes_template", "placement"]

MIN_COMMON_RESIDUES = 10


@dataclass(frozen=True)
class RigidTransform:
    """x ↦ x @ rotation.T + translation (Å)."""

    rotation: np.ndarray  # (3, 3) float64, proper rotation
    translation: np.ndarray  # (3,) float64, Å

    def apply(self, coords: np.ndarray) -> np.ndarray:
        """coords: (..., 3) Å → (..., 3) Å."""
        return coords @ self.rotation.T + self.translation

    def inverse(self) -> "RigidTransform":
        return RigidTransform(self.rotation.T, -self.translation @ self.rotation)


@dataclass(frozen=True)
class Template:
    """CA positions (Å, common frame) by residue number."""

    res_nums: np.ndarray  # (L,) int64
    ca_coords: np.ndarray  # (L, 3) float64, Å

    def to_dict(self) -> dict:
        return {"res_nums": self.res_nums.tolist(), "ca_coords": self.ca_coords.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "Template":
        return cls(np.asarray(d["res_nums"], dtype=np.int64), np.asarray(d["ca_coords"], dtype=np.float64))


def principal_axes_template(structure: Structure) -> Template:
    """The structure's CA atoms, centred, rotated onto their principal axes (largest variance along x).

    Axis signs are fixed so that the third moment along each of x and y is positive (z follows from a
    right-handed frame), which makes the template independent of the input frame.
    """
    ca = structure.coords[structure.backbone_index[:, 1]]  # (L, 3)
    centred = ca - ca.mean(axis=0)
    _, vectors = np.linalg.eigh(centred.T @ centred)
    axes = vectors[:, ::-1].T  # (3, 3), rows = axes by decreasing variance
    for k in range(2):
        if np.sum((centred @ axes[k]) ** 3) < 0:
            axes[k] = -axes[k]
    axes[2] = np.cross(axes[0], axes[1])
    return Template(structure.backbone_res_nums.copy(), centred @ axes.T)


def placement(structure: Structure, template: Template) -> RigidTransform:
    """Rigid transform that puts ``structure`` into the template's frame.

    Rotation: optimal superposition of the structure's CA atoms onto the template's, matched by residue
    number. Translation: the structure's all-heavy-atom centroid goes to the origin (A.4 centres maps on
    the reference), so the map box is centred on the protein.
    """
    ca, rows = shared_ca(structure, template.res_nums)
    if len(ca) < MIN_COMMON_RESIDUES:
        raise ValueError(
            f"{structure.name}: only {len(ca)} residue numbers in common with the model's template "
            f"(need {MIN_COMMON_RESIDUES}); renumber the reference like the training proteins")
    rotation = optimal_rotation(structure.coords[ca], template.ca_coords[rows])
    rotated_centroid = structure.coords.mean(axis=0) @ rotation.T
    return RigidTransform(rotation, -rotated_centroid)
