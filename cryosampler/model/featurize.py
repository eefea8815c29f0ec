"""Tensors the model needs for one protein, and padded batches of several proteins."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

import numpy as np
import torch

from cryosampler.model.structural_losses import backbone_window_pairs, pad_pairs, residue_pairs
from cryosampler.io.structure import Structure

__all__ = ["ATOM_NAMES", "RESIDUE_NAMES", "ProteinFeatures", "ProteinBatch", "featurize", "collate"]

# Heavy-atom names of the standard amino acids (and the C-terminal OXT); index 0 is "other".
ATOM_NAMES = ("?", "N", "CA", "C", "O", "OXT", "CB", "CG", "CG1", "CG2", "OG", "OG1", "SG", "CD", "CD1", "CD2",
              "OD1", "OD2", "ND1", "ND2", "SD", "CE", "CE1", "CE2", "CE3", "OE1", "OE2", "NE", "NE1", "NE2",
              "NZ", "CZ", "CZ2", "CZ3", "CH2", "OH", "NH1", "NH2", "CH3", "CM1", "CM2", "CM3")
RESIDUE_NAMES = ("?", "ALA", "ARG", "ASN", "ASP", "CYS", "GLN", "GLU", "GLY", "HIS", "ILE", "LEU", "LYS", "MET",
                 "PHE", "PRO", "SER", "THR", "TRP", "TYR", "VAL")
_ATOM_ID = {name: k for k, name in enumerate(ATOM_NAMES)}
_RESIDUE_ID = {name: k for k, name in enumerate(RESIDUE_NAMES)}


@dataclass(frozen=True)
class ProteinFeatures:
    """One protein, in the common frame. N atoms, T tokens, P residue pairs, M backbone windows."""

    ref_coords: torch.Tensor  # (N, 3) float32, Å
    atomic_numbers: torch.Tensor  # (N,) float32, renderer weights
    atom_type: torch.Tensor  # (N,) int64, index into ATOM_NAMES
    atom_token: torch.Tensor  # (N,) int64, token of each atom
    token_position: torch.Tensor  # (T,) float32, residue number (homologues share numbering)
    token_residue_type: torch.Tensor  # (T,) int64, index into RESIDUE_NAMES
    token_chain: torch.Tensor  # (T,) int64, the token's chain: 0 the structure's first, 1 its second, …
    residue_pairs: torch.Tensor  # (P, 2) int64, eq. 7 pairs
    backbone_pairs: torch.Tensor  # (M·190, 2) int64, eq. 8 pairs, windows flattened


@dataclass(frozen=True)
class ProteinBatch:
    """B proteins padded to the largest: N atoms, T tokens, P / Q loss pairs."""

    ref_coords: torch.Tensor  # (B, N, 3) float32, Å (padding: 0)
    atomic_numbers: torch.Tensor  # (B, N) float32 (padding: 0)
    atom_mask: torch.Tensor  # (B, N) bool
    atom_type: torch.Tensor  # (B, N) int64
    atom_token: torch.Tensor  # (B, N) int64
    token_mask: torch.Tensor  # (B, T) bool
    token_position: torch.Tensor  # (B, T) float32
    token_residue_type: torch.Tensor  # (B, T) int64
    token_chain: torch.Tensor  # (B, T) int64 (padding: 0)
    residue_pairs: torch.Tensor  # (B, P, 2) int64
    residue_pair_mask: torch.Tensor  # (B, P) bool
    backbone_pairs: torch.Tensor  # (B, Q, 2) int64
    backbone_pair_mask: torch.Tensor  # (B, Q) bool

    def to(self, device: torch.device | str) -> "ProteinBatch":
        return ProteinBatch(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})


def featurize(structure: Structure, coords: np.ndarray,
              tokens: Literal["atom", "residue"] = "residue") -> ProteinFeatures:
    """Model inputs for ``structure`` whose reference coordinates in the common frame are ``coords`` (N, 3) Å."""
    if coords.shape != (structure.n_atoms, 3):
        raise ValueError(f"{structure.name}: coords {coords.shape} do not match {structure.n_atoms} atoms")
    residue_of_atom = np.repeat(np.arange(structure.n_residues), np.diff(structure.residue_starts))  # (N,)
    _, first_atom, chain_of_atom = np.unique(structure.chain_ids, return_index=True, return_inverse=True)
    chain_of_atom = np.argsort(np.argsort(first_atom))[chain_of_atom]  # (N,) chains numbered in file order
    if tokens == "residue":
        atom_token = residue_of_atom
        token_res = structure.res_nums[structure.residue_starts[:-1]]  # (T,)
        token_names = structure.res_names[structure.residue_starts[:-1]]
        token_chain = chain_of_atom[structure.residue_starts[:-1]]
    elif tokens == "atom":
        atom_token = np.arange(structure.n_atoms)
        token_res, token_names, token_chain = structure.res_nums, structure.res_names, chain_of_atom
    else:
        raise ValueError(f"tokens must be 'atom' or 'residue', got {tokens!r}")
    backbone = backbone_window_pairs(structure.backbone_index, res_nums=structure.backbone_res_nums)
    return ProteinFeatures(
        ref_coords=torch.tensor(coords, dtype=torch.float32),
        atomic_numbers=torch.tensor(structure.atomic_numbers, dtype=torch.float32),
        atom_type=torch.tensor([_ATOM_ID.get(n, 0) for n in structure.atom_names], dtype=torch.int64),
        atom_token=torch.tensor(atom_token, dtype=torch.int64),
        token_position=torch.tensor(token_res, dtype=torch.float32),
        token_residue_type=torch.tensor([_RESIDUE_ID.get(n, 0) for n in token_names], dtype=torch.int64),
        token_chain=torch.as_tensor(token_chain, dtype=torch.int64),
        residue_pairs=residue_pairs(structure.residue_starts)[0].to(torch.int64),
        backbone_pairs=torch.as_tensor(backbone, dtype=torch.int64).reshape(-1, 2),
    )


def _pad(tensors: list[torch.Tensor], value=0) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack along a new batch axis, padding axis 0 of each to the longest; returns (stacked, mask)."""
    length = max(t.shape[0] for t in tensors)
    out = tensors[0].new_full((len(tensors), length) + tuple(tensors[0].shape[1:]), value)
    mask = torch.zeros(len(tensors), length, dtype=torch.bool)
    for b, t in enumerate(tensors):
        out[b, : t.shape[0]] = t
        mask[b, : t.shape[0]] = True
    return out, mask


def collate(items: list[ProteinFeatures]) -> ProteinBatch:
    """Pad a list of proteins into one batch (items may repeat, e.g. one protein per sample)."""
    ref, atom_mask = _pad([f.ref_coords for f in items])
    positions, token_mask = _pad([f.token_position for f in items])
    residue_pairs_, residue_mask = pad_pairs([f.residue_pairs for f in items])
    backbone_pairs_, backbone_mask = pad_pairs([f.backbone_pairs for f in items])
    return ProteinBatch(
        ref_coords=ref,
        atomic_numbers=_pad([f.atomic_numbers for f in items])[0],
        atom_mask=atom_mask,
        atom_type=_pad([f.atom_type for f in items])[0],
        atom_token=_pad([f.atom_token for f in items])[0],
        token_mask=token_mask,
        token_position=positions,
        token_residue_type=_pad([f.token_residue_type for f in items])[0],
        token_chain=_pad([f.token_chain for f in items])[0],
        residue_pairs=residue_pairs_,
        residue_pair_mask=residue_mask,
        backbone_pairs=backbone_pairs_,
        backbone_pair_mask=backbone_mask,
    )
