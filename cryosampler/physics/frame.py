"""Where a protein sits in the model's map box: its placement (a rigid transform from its reference's frame).

Deposited PDB frames are arbitrary (each crystal has its own), and a density map carries the protein's
orientation in that frame. The paper centres each protein's states on its reference (A.4). Notebook 01's
calmodulin model also rotates every reference onto one *template* — the first training protein's CA atoms,
centred and on their principal axes — so that maps of homologous proteins share an orientation
(:func:`placement`). A model trained on one protein's maps (``cryosampler train``) keeps it in its own frame,
only centred (:func:`own_placement`), because the maps are in the frame the reference was fitted in; a model
of several proteins puts each on its own principal axes (:func:`principal_placement`), so that where a user's
reference comes from does not matter. Only the reference structure is used to place a protein (never its
states), so the same placement is available at inference time for a user's protein, and outputs are mapped back
to the user's frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from cryosampler.io.structure import Structure
from cryosampler.io.correspondence import shared_ca
from cryosampler.physics.superpose import optimal_rotation, rmsd

__all__ = ["RigidTransform", "Template", "principal_axes_template", "own_frame_template", "placement",
           "own_placement", "principal_placement", "template_rmsd", "check_template_match", "rotate_about_centre",
           "map_to_input_frame", "map_to_model_frame", "MAX_TEMPLATE_RMSD"]

MIN_COMMON_RESIDUES = 10

# Largest CA RMSD (Å) to the template, after superposition, at which a placement is trusted: twice the training
# motion keeps every trained conformation in and other proteins out (the calmodulins' and a helix's fits are in
# docs/errors-and-safety.md).
MAX_TEMPLATE_RMSD = 8.0


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


def own_frame_template(structure: Structure) -> Template:
    """The structure's CA atoms, centred but not rotated: the frame of a model trained on maps of this one
    protein (``cryosampler train``). Its placement is a pure translation (the all-atom centroid to the origin),
    so the user's maps, in the reference's frame, need only be re-centred, never rotated."""
    ca = structure.coords[structure.backbone_index[:, 1]]  # (L, 3)
    return Template(structure.backbone_res_nums.copy(), ca - ca.mean(axis=0))


def own_placement(structure: Structure) -> RigidTransform:
    """The placement ``cryosampler train`` gives each protein: its own frame, its all-heavy-atom centroid moved
    to the origin, never rotated (its maps, in the frame its reference was fitted in, need only be
    re-centred). It equals ``placement(s, own_frame_template(s))``, by which sampling places the reference of
    a one-protein model."""
    return RigidTransform(np.eye(3), -structure.coords.mean(axis=0))


def principal_placement(structure: Structure) -> RigidTransform:
    """The placement of each protein of a model trained on several (template ``None``): its all-heavy-atom
    centroid to the origin and its CA atoms' principal axes onto x, y, z (:func:`principal_axes_template` of the
    structure itself). It depends only on the structure, not on the frame it is given in: a rotated and moved
    copy lands on the same model-frame coordinates. No other protein is involved."""
    return placement(structure, principal_axes_template(structure))


def placement(structure: Structure, template: Template) -> RigidTransform:
    """Rigid transform that puts ``structure`` into the template's frame.

    Rotation: optimal superposition of the structure's CA atoms onto the template's, matched by residue
    number. Translation: the structure's all-heavy-atom centroid goes to the origin (A.4 centres maps on
    the reference), so the map box is centred on the protein.
    """
    ca, rows = _matched_ca(structure, template)
    rotation = optimal_rotation(structure.coords[ca], template.ca_coords[rows])
    rotated_centroid = structure.coords.mean(axis=0) @ rotation.T
    return RigidTransform(rotation, -rotated_centroid)


def rotate_about_centre(volume: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """out[n] = volume[R (n - c) + c], c = D//2: the cubic map ``volume`` (D, D, D) turned about its centre
    voxel (cubic splines; what falls outside is 0). A rotation within 1e-6 of the identity returns the values
    as float32, uninterpolated."""
    volume = np.asarray(volume)
    if np.allclose(rotation, np.eye(3), atol=1e-6):  # SVD round-off; 1e-6 rad moves 64 Å by 6e-5 Å
        return volume.astype(np.float32)
    half = np.full(3, volume.shape[0] // 2, dtype=np.float64)
    out = ndimage.affine_transform(volume.astype(np.float64), rotation, offset=half - rotation @ half, order=3,
                                   mode="constant", cval=0.0)
    return out.astype(np.float32)


def map_to_input_frame(volume: np.ndarray, size: int, apix: float,
                       place: RigidTransform) -> tuple[np.ndarray, tuple[float, float, float]]:
    """A map of the model's frame, resampled onto a box of the same size and voxel size, axis-aligned in the
    frame ``place`` came from (the user's reference), so that it opens aligned with the structures written
    there.

    volume: (D, D, D), axes (x, y, z), voxel (i, j, k) at ((i, j, k) - D//2) * apix Å in the model's frame;
    place: input frame → model frame (:func:`placement`). Returns (the map (D, D, D) float32, the origin:
    (x, y, z) Å of voxel (0, 0, 0)'s centre in the input frame). The new box is centred where the model's box
    was (the reference's centroid). A placement without rotation (``own_frame_template``) only moves the
    origin.
    """
    # Output voxel n (input frame, u = centre + (n - c) apix) reads model voxel R (n - c) + c.
    centre = place.inverse().apply(np.zeros(3))  # input-frame point at the model box's centre
    return rotate_about_centre(volume, place.rotation), tuple(float(x) for x in centre - (size // 2) * apix)


def map_to_model_frame(volume: np.ndarray, place: RigidTransform) -> np.ndarray:
    """The inverse of :func:`map_to_input_frame`: a map on a box axis-aligned in the input frame and centred
    where the model's box is (as ``ingest.ingest_map`` gives it) → the model's frame, (D, D, D) float32."""
    return rotate_about_centre(volume, place.rotation.T)


def template_rmsd(structure: Structure, template: Template, source: str | None = None) -> float:
    """CA RMSD (Å) between ``structure`` and ``template`` after the superposition :func:`placement` uses,
    over their shared residue numbers: how well the structure is the protein the template describes."""
    ca, rows = _matched_ca(structure, template, source)
    return rmsd(structure.coords[ca], template.ca_coords[rows])


def check_template_match(structure: Structure, template: Template, max_rmsd: float = MAX_TEMPLATE_RMSD,
                       source: str | None = None, override: str | None = None) -> float:
    """:func:`template_rmsd`, or ValueError naming ``source`` (default the structure's name) above
    ``max_rmsd`` Å: such a structure is another protein or conformation, and would be mis-placed. ``override``:
    how the caller goes on anyway, if it can (e.g. "pass --allow-poor-fit to sample anyway")."""
    fit = template_rmsd(structure, template, source)
    if fit > max_rmsd:
        raise ValueError(
            f"{source or structure.name}: CA atoms fit the model's template at {fit:.1f} Å RMSD after "
            f"superposition (limit {max_rmsd:g} Å), so it is not a protein or conformation this model knows "
            f"and would be mis-placed in the map box; give a reference of a trained protein"
            + (f", or {override}" if override else ""))
    return fit


def _matched_ca(structure: Structure, template: Template,
                source: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """CA atom indices of ``structure`` and template rows with the same residue numbers (K,), K checked; errors
    name ``source`` (default the structure's name)."""
    ca, rows = shared_ca(structure, template.res_nums)
    if len(ca) < MIN_COMMON_RESIDUES:
        raise ValueError(
            f"{source or structure.name}: only {len(ca)} residue numbers in common with the model's template "
            f"(need {MIN_COMMON_RESIDUES}); renumber the reference like the training proteins")
    return ca, rows
