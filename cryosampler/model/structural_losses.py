"""Structural losses (appendix A.1, eq. 6–8): local distances of the prediction against the reference.

The atom pairs are index arrays built once per protein from the reference (:func:`residue_pairs`,
:func:`backbone_window_pairs`), so the losses are pure tensor ops. For a batch of proteins of different
sizes, pad the coordinates to N_max atoms and the pair lists with :func:`pad_pairs`: every loss takes
either one shared pair list (P, 2) or per-protein lists (B, P, 2) with a validity mask (B, P), normalises
each protein by its own number of valid pairs, then averages over the batch.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np
import torch
from scipy.spatial import cKDTree

__all__ = [
    "BOND_CUTOFF",
    "bond_pairs",
    "residue_pairs",
    "backbone_window_pairs",
    "pad_pairs",
    "pair_distance_loss",
    "residue_loss",
    "backbone_loss",
    "structural_loss",
    "StructuralLoss",
]

# Distances are floored at 1e-6 Å (squared: 1e-12 Å²) so that the gradient stays finite when two atoms
# coincide; every real interatomic distance is far above, so the losses are exact there.
_MIN_SQUARED_DISTANCE = 1e-12


# Å. Covalent heavy-atom bonds are 1.2-1.6 Å (S-C 1.8 Å); 1-3 distances within a residue start near 2.2 Å.
BOND_CUTOFF = 1.9


def bond_pairs(coords: np.ndarray, res_nums: np.ndarray, atom_names: np.ndarray) -> np.ndarray:
    """The covalent bonds of a reference: atom pairs (n_bonds, 2), i < j, closer than ``BOND_CUTOFF`` within one
    residue, or the peptide C–N of consecutive residue numbers. coords (N, 3) Å; res_nums, atom_names (N,), atoms
    grouped by residue in chain order. The one definition of a bond (``evaluation.validate`` judges samples by it,
    ``refine`` holds it)."""
    pairs = cKDTree(np.asarray(coords, np.float64)).query_pairs(BOND_CUTOFF, output_type="ndarray").reshape(-1, 2)
    nums, names = np.asarray(res_nums)[pairs], np.asarray(atom_names)[pairs]  # (P, 2) each
    same_residue = nums[:, 0] == nums[:, 1]
    # Atoms are grouped by residue in chain order, so the earlier residue's atom comes first.
    peptide = (nums[:, 1] == nums[:, 0] + 1) & (names[:, 0] == "C") & (names[:, 1] == "N")
    return pairs[same_residue | peptide]


def residue_pairs(residue_starts: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, int]:  # P_k of eq. 7
    """All atom pairs (i, j), i < j, inside each residue.

    Parameters
    ----------
    residue_starts : (L+1,) int
        Atoms of residue k are ``residue_starts[k]:residue_starts[k+1]`` (atoms contiguous per residue).

    Returns
    -------
    pairs : (P, 2) int64, the union of P_1 … P_L, residue by residue.
    count : Σ_k |P_k| = P, the normaliser of eq. 7.
    """
    starts = np.asarray(residue_starts, dtype=np.int64)
    if starts.ndim != 1 or len(starts) < 2 or starts[0] < 0 or np.any(np.diff(starts) < 0):
        raise ValueError(f"residue_starts must be a non-decreasing (L+1,) array of atom offsets ≥ 0, got {starts}")
    blocks = [np.stack(np.triu_indices(n, k=1), axis=1) + lo for lo, n in zip(starts[:-1], np.diff(starts))]
    pairs = torch.as_tensor(np.concatenate(blocks).reshape(-1, 2), dtype=torch.int64)
    return pairs, len(pairs)


def backbone_window_pairs(backbone_index: np.ndarray | torch.Tensor, window: int = 5,
                          res_nums: np.ndarray | torch.Tensor | None = None) -> torch.Tensor:  # P_B of eq. 8
    """All pairs of the 4W backbone atoms in every window of W consecutive residues.

    Parameters
    ----------
    backbone_index : (L, 4) int
        Atom indices of N, CA, C, O of each residue, in chain order.
    window : W, residues per window (paper: 5).
    res_nums : (L,) int, optional
        Residue numbers of the rows of ``backbone_index``, strictly increasing. When given, windows
        that span a chain break (consecutive numbers differing by more than 1) are skipped, since the
        reference distances across a gap say nothing about local geometry. Without it, windows run
        over consecutive rows regardless of numbering.

    Returns
    -------
    (M, P_B, 2) int64, P_B = 4W(4W − 1)/2 (190 for W = 5); M = L − W + 1 without breaks, 0 if L < W.
    Flatten with ``.reshape(-1, 2)`` to pass to :func:`backbone_loss`.
    """
    index = np.asarray(backbone_index, dtype=np.int64)
    if index.ndim != 2 or index.shape[1] != 4:
        raise ValueError(f"backbone_index must be (L, 4) atom indices of N, CA, C, O, got shape {index.shape}")
    if window < 1:
        raise ValueError(f"window must be at least 1 residue, got {window}")
    n_res = len(index)
    first = np.arange(max(n_res - window + 1, 0))  # first residue of each window
    if res_nums is not None:
        nums = np.asarray(res_nums, dtype=np.int64)
        if nums.shape != (n_res,):
            raise ValueError(f"res_nums must have shape ({n_res},) like backbone_index, got {nums.shape}")
        steps = np.diff(nums)
        if np.any(steps < 1):
            bad = int(np.flatnonzero(steps < 1)[0])
            raise ValueError(f"res_nums must increase strictly along the chain; residue {nums[bad + 1]} "
                             f"follows {nums[bad]} at row {bad + 1}")
        first = np.array([m for m in first if np.all(steps[m:m + window - 1] == 1)], dtype=np.int64)
    atoms = index[first[:, None] + np.arange(window)].reshape(len(first), 4 * window)  # (M, 4W)
    i, j = np.triu_indices(4 * window, k=1)
    pairs = np.stack([atoms[:, i], atoms[:, j]], axis=-1)  # (M, P_B, 2)
    assert pairs.shape == (len(first), 2 * window * (4 * window - 1), 2), pairs.shape
    return torch.as_tensor(pairs, dtype=torch.int64)


def pad_pairs(pairs: list[np.ndarray | torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack per-protein pair lists (P_b, 2) into (B, P_max, 2) int64 and a validity mask (B, P_max) bool.

    Padding entries are the pair (0, 0), which the mask removes.
    """
    if not pairs:
        raise ValueError("pad_pairs needs at least one pair list")
    items = [torch.as_tensor(p, dtype=torch.int64) for p in pairs]
    for b, p in enumerate(items):
        if p.ndim != 2 or p.shape[1] != 2:
            raise ValueError(f"pair list {b} must have shape (P, 2), got {tuple(p.shape)}")
    device = items[0].device
    length = max(p.shape[0] for p in items)
    out = torch.zeros(len(items), length, 2, dtype=torch.int64, device=device)
    mask = torch.zeros(len(items), length, dtype=torch.bool, device=device)
    for b, p in enumerate(items):
        out[b, : len(p)] = p
        mask[b, : len(p)] = True
    return out, mask


def _pair_distances(coords: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
    """coords (B, N, 3) Å, pairs (B, P, 2) → distances (B, P) Å, floored at 1e-6 Å."""
    batch = torch.arange(coords.shape[0], device=coords.device)[:, None]  # (B, 1)
    delta = coords[batch, pairs[..., 0]] - coords[batch, pairs[..., 1]]  # (B, P, 3)
    return delta.pow(2).sum(-1).clamp(min=_MIN_SQUARED_DISTANCE).sqrt()


def pair_distance_loss(coords: torch.Tensor, ref_coords: torch.Tensor, pairs: torch.Tensor,
                       mask: torch.Tensor | None = None,
                       reduction: Literal["mean", "none"] = "mean") -> torch.Tensor:
    """Mean over pairs of (‖X_i − X_j‖ − ‖X_ref,i − X_ref,j‖)², per protein, then over the batch.

    Parameters
    ----------
    coords : (B, N, 3) predicted coordinates, Å.
    ref_coords : (B, N, 3) or (N, 3) reference coordinates, Å.
    pairs : (P, 2) shared by the batch, or (B, P, 2) per protein; int64 atom indices.
    mask : (P,) or (B, P) bool, optional; False marks padding pairs. Default: all valid.
    reduction : "mean" → scalar (mean of the per-protein losses); "none" → (B,).

    Each protein is normalised by its own number of valid pairs; a protein with none contributes 0.
    Units: Å².
    """
    if coords.ndim != 3 or coords.shape[-1] != 3:
        raise ValueError(f"coords must be (B, N, 3), got {tuple(coords.shape)}")
    batch_size, n_atoms, _ = coords.shape
    if ref_coords.shape not in {(n_atoms, 3), (batch_size, n_atoms, 3)}:
        raise ValueError(f"ref_coords must be ({n_atoms}, 3) or ({batch_size}, {n_atoms}, 3) like coords, "
                         f"got {tuple(ref_coords.shape)}")
    if pairs.shape[-1:] != (2,) or pairs.ndim not in {2, 3} or (pairs.ndim == 3 and len(pairs) != batch_size):
        raise ValueError(f"pairs must be (P, 2) or ({batch_size}, P, 2), got {tuple(pairs.shape)}")
    pairs = pairs.expand(batch_size, -1, 2)  # (B, P, 2)
    if mask is None:
        mask = torch.ones(pairs.shape[:2], dtype=torch.bool, device=pairs.device)
    if mask.shape not in {pairs.shape[1:2], pairs.shape[:2]}:
        raise ValueError(f"mask must be ({pairs.shape[1]},) or {tuple(pairs.shape[:2])}, got {tuple(mask.shape)}")
    mask = mask.expand(pairs.shape[:2])  # (B, P)

    distance = _pair_distances(coords, pairs)  # (B, P)
    ref_distance = _pair_distances(ref_coords.expand(batch_size, n_atoms, 3), pairs)  # (B, P)
    sq = torch.where(mask, (distance - ref_distance) ** 2, torch.zeros_like(distance))  # (B, P)
    per_protein = sq.sum(-1) / mask.sum(-1).clamp(min=1)  # (B,)
    if reduction == "none":
        return per_protein
    if reduction == "mean":
        return per_protein.mean()
    raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")


def residue_loss(coords: torch.Tensor, ref_coords: torch.Tensor, pairs: torch.Tensor,
                 mask: torch.Tensor | None = None,
                 reduction: Literal["mean", "none"] = "mean") -> torch.Tensor:  # eq. 7
    """L_residue: 1/Σ_k|P_k| · Σ_k Σ_{(i,j)∈P_k} (‖X̂_i − X̂_j‖ − ‖X_ref,i − X_ref,j‖)², Å².

    ``pairs``: from :func:`residue_pairs` (P, 2), or padded (B, P, 2) with ``mask`` (B, P); other
    arguments as :func:`pair_distance_loss`. The normaliser Σ_k|P_k| is the number of valid pairs.
    """
    return pair_distance_loss(coords, ref_coords, pairs, mask, reduction)


def backbone_loss(coords: torch.Tensor, ref_coords: torch.Tensor, pairs: torch.Tensor,
                  mask: torch.Tensor | None = None,
                  reduction: Literal["mean", "none"] = "mean") -> torch.Tensor:  # eq. 8
    """L_backbone: 1/(M·|P_B|) · Σ_m Σ_{(i,j)∈P_B} (‖X̂_i − X̂_j‖ − ‖X_ref,i − X_ref,j‖)², Å².

    ``pairs``: the windows of :func:`backbone_window_pairs` flattened to (M·|P_B|, 2), or padded
    (B, Q, 2) with ``mask`` (B, Q); other arguments as :func:`pair_distance_loss`. Windows overlap, so
    a pair counts once per window holding it, as in eq. 8; M·|P_B| is the number of valid entries.
    """
    return pair_distance_loss(coords, ref_coords, pairs, mask, reduction)


class StructuralLoss(NamedTuple):
    """L_structural of eq. 6 and the two terms it weighs, each a scalar (or (B,) with reduction "none"), Å²."""

    total: torch.Tensor  # λ_R · L_residue + λ_B · L_backbone
    residue: torch.Tensor  # L_residue, eq. 7 (unweighted)
    backbone: torch.Tensor  # L_backbone, eq. 8 (unweighted)


def structural_loss(coords: torch.Tensor, ref_coords: torch.Tensor, pairs_r: torch.Tensor, pairs_b: torch.Tensor,
                    *, lambda_r: float, lambda_b: float, mask_r: torch.Tensor | None = None,
                    mask_b: torch.Tensor | None = None,
                    reduction: Literal["mean", "none"] = "mean") -> StructuralLoss:  # eq. 6
    """L_structural = λ_R · L_residue + λ_B · L_backbone, Å², with both unweighted terms (for logging).

    ``pairs_r``/``mask_r`` as :func:`residue_loss`, ``pairs_b``/``mask_b`` as :func:`backbone_loss`.
    """
    residue = residue_loss(coords, ref_coords, pairs_r, mask_r, reduction)
    backbone = backbone_loss(coords, ref_coords, pairs_b, mask_b, reduction)
    return StructuralLoss(lambda_r * residue + lambda_b * backbone, residue, backbone)
