"""What an ensemble looks like beside its reference (``cryosampler report``): each residue's CA fluctuation (RMSF), the
samples' principal components of CA motion, with known states placed among them, and each sample's RMSD to the
reference. All after optimal superposition on the reference (:mod:`cryosampler.physics.superpose`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cryosampler.evaluation.metrics import checked_coords
from cryosampler.io.structure import Structure
from cryosampler.physics.superpose import rmsd_matrix, superpose

__all__ = ["superposed_ca", "ca_rmsf", "PrincipalComponents", "principal_components", "state_ca", "EnsembleReport",
           "ensemble_report", "SECONDARY_NAMES"]

# DSSP's simplified classes (io.trajectory.secondary_structure) as the report names them.
SECONDARY_NAMES = {"H": "helix", "E": "strand", "C": "coil"}


def superposed_ca(ca: np.ndarray, reference_ca: np.ndarray) -> np.ndarray:
    """CA atoms of conformations ca (S, L, 3) Å, each moved onto ``reference_ca`` (L, 3) by its optimal rigid motion
    (fitted on all L atoms); (S, L, 3) float64, Å."""
    reference_ca = checked_coords(reference_ca, "reference CA atoms", "L")
    ca = checked_coords(ca, "CA atoms", "SL", len(reference_ca))
    return np.stack([superpose(x, reference_ca) for x in ca])


def ca_rmsf(ca: np.ndarray, reference_ca: np.ndarray) -> np.ndarray:
    """Root mean square fluctuation of each CA atom about its mean position over the samples, after superposing
    every sample on the reference: RMSF_i = sqrt(mean_s |x_si − mean_s x_si|²).

    ca: (S, L, 3) Å, S ≥ 2; reference_ca: (L, 3) Å → (L,) float64, Å.
    """
    moved = superposed_ca(ca, reference_ca)
    if len(moved) < 2:
        raise ValueError(f"RMSF needs at least 2 samples, got {len(moved)}")
    return np.sqrt(((moved - moved.mean(axis=0)) ** 2).sum(axis=-1).mean(axis=0))


@dataclass(frozen=True)
class PrincipalComponents:
    """The first two principal components of samples' superposed CA coordinates (:func:`principal_components`)."""

    samples: np.ndarray  # (S, 2) float64, Å: each sample on PC1, PC2 (RMS over the L CA atoms)
    states: np.ndarray  # (K, 2) float64, Å: the known states projected likewise; K = 0 when none were given
    reference: np.ndarray  # (2,) float64, Å: the reference projected likewise
    explained: np.ndarray  # (2,) float64: fraction of the samples' variance along PC1 and PC2


def principal_components(ca: np.ndarray, reference_ca: np.ndarray, states_ca: np.ndarray | None = None
                         ) -> PrincipalComponents:
    """Principal component analysis of samples' CA coordinates after superposition on the reference.

    The samples' flattened coordinates X (S, 3L), centred on their mean, are factored X = U Σ Vᵀ (numpy's SVD);
    PC k is row k of Vᵀ, signed so that its largest component is positive, and explains σ_k² / Σ σ² of the
    variance. Any conformation x is placed at (x − mean) · PC_k / √L: the RMS over atoms of its displacement along
    PC_k, in Å, so that a state 3 Å RMSD from the mean along PC1 lies at ±3. The states and the reference are
    superposed on the reference like the samples, and projected, but do not shape the components.

    Parameters
    ----------
    ca : (S, L, 3) Å, S ≥ 2
    reference_ca : (L, 3) Å
    states_ca : (K, L, 3) Å, optional, same residues in the same order

    Returns
    -------
    PrincipalComponents; explained fractions are 0 when the samples are all one conformation.
    """
    moved = superposed_ca(ca, reference_ca)
    if len(moved) < 2:
        raise ValueError(f"principal components need at least 2 samples, got {len(moved)}")
    n_residues = moved.shape[1]
    flat = moved.reshape(len(moved), -1)  # (S, 3L)
    mean = flat.mean(axis=0)
    _, sigma, vt = np.linalg.svd(flat - mean, full_matrices=False)
    largest = np.argmax(np.abs(vt[:2]), axis=1)  # SVD's signs are arbitrary; fix them for reproducible plots
    axes = vt[:2] * np.sign(vt[[0, 1], largest])[:, None]  # (2, 3L)
    variance = sigma ** 2
    total = variance.sum()
    # Samples that differ by less than superposition's rounding (10⁻⁶ Å RMS) are one conformation: no components.
    explained = variance[:2] / total if total > 1e-12 * flat.size else np.zeros(2)

    def project(conformations: np.ndarray) -> np.ndarray:  # (K, L, 3) superposed → (K, 2) Å
        return (conformations.reshape(len(conformations), -1) - mean) @ axes.T / np.sqrt(n_residues)

    states = (np.zeros((0, 2)) if states_ca is None
              else project(superposed_ca(checked_coords(states_ca, "states' CA atoms", "KL", n_residues),
                                         reference_ca)))
    return PrincipalComponents(project(moved), states, project(np.asarray(reference_ca, float)[None])[0],
                               explained)


def _residue_keys(structure: Structure, chains: bool) -> list[str]:
    """Each amino-acid residue's label as its file gives it: "52A", or with ``chains`` "B 52A"."""
    ca = structure.backbone_index[:, 1]
    labels = [f"{n}{c}" for n, c in zip(structure.author_nums[ca], structure.insertion_codes[ca])]
    return [f"{c} {label}" for c, label in zip(structure.chain_ids[ca], labels)] if chains else labels


def state_ca(state: Structure, reference: Structure, source: str) -> np.ndarray:
    """The CA atoms (L, 3) Å of a known state at the reference's amino-acid residues, matched by the residue
    numbers and insertion codes the files give (and chain IDs, for a reference of several chains); ValueError
    naming ``source`` when the state lacks some of them."""
    several = len(set(reference.chain_ids)) > 1
    found = dict(zip(_residue_keys(state, several), state.backbone_index[:, 1]))
    wanted = _residue_keys(reference, several)
    missing = [key for key in wanted if key not in found]
    if missing:
        shown = ", ".join(missing[:5]) + (", …" if len(missing) > 5 else "")
        raise ValueError(f"{source}: no CA atom for {len(missing)} of the {len(wanted)} residues of the reference "
                         f"{reference.name} (by residue number: {shown}); give a state of the same protein numbered "
                         "like the reference")
    return state.coords[[found[key] for key in wanted]]


@dataclass(frozen=True)
class EnsembleReport:
    """An ensemble beside its reference (:func:`ensemble_report`), for :func:`~cryosampler.evaluation.figures.
    plot_ensemble_report` and the report's tables."""

    name: str  # the reference's name
    residues: np.ndarray  # (L,) int64: residue numbers of the reference's amino-acid residues (Structure.res_nums)
    chains: np.ndarray  # (L,) str: their chains
    authors: np.ndarray  # (L,) str: their numbers as the file gives them, insertion code included ("52A")
    res_names: np.ndarray  # (L,) str
    secondary: np.ndarray | None  # (L,) str, "H", "E" or "C" (SECONDARY_NAMES); None when not available
    rmsf: np.ndarray  # (L,) float64, Å: CA RMSF (ca_rmsf)
    rmsd_reference: np.ndarray  # (S,) float64, Å: each sample to the reference, all atoms after superposition
    pcs: PrincipalComponents
    state_names: tuple[str, ...]  # (K,) labels of pcs.states

    def residue_table(self) -> pd.DataFrame:
        """One row per residue: chain, residue (its number as the file gives it, with any insertion code), res_name,
        secondary (empty when not available), rmsf (Å)."""
        secondary = self.secondary if self.secondary is not None else [""] * len(self.residues)
        return pd.DataFrame({"chain": self.chains, "residue": self.authors, "res_name": self.res_names,
                             "secondary": secondary, "rmsf": self.rmsf})

    def sample_table(self) -> pd.DataFrame:
        """One row per sample, then one per known state: kind ("sample" or "state"), name (the sample's index K,
        MODEL K+1 or frame K+1 of the ensemble; the state's label), rmsd_reference (Å; empty for states, whose
        atoms may differ), pc1, pc2 (Å, :func:`principal_components`)."""
        samples = pd.DataFrame({"kind": "sample", "name": [str(k) for k in range(len(self.rmsd_reference))],
                                "rmsd_reference": self.rmsd_reference, "pc1": self.pcs.samples[:, 0],
                                "pc2": self.pcs.samples[:, 1]})
        states = pd.DataFrame({"kind": "state", "name": list(self.state_names), "rmsd_reference": np.nan,
                               "pc1": self.pcs.states[:, 0], "pc2": self.pcs.states[:, 1]})
        return pd.concat([samples, states], ignore_index=True) if len(states) else samples

    def summary(self) -> str:
        """One line: RMSF median and peak (with its residue's secondary structure), the variance PC1 and PC2
        explain, and the range of RMSD to the reference."""
        peak = int(np.argmax(self.rmsf))
        where = f"residue {self.authors[peak]}" + (f" of chain {self.chains[peak]}" if len(set(self.chains)) > 1
                                                    else "")
        if self.secondary is not None:
            where += f", {SECONDARY_NAMES[self.secondary[peak]]}"
        r = self.rmsd_reference
        pc1, pc2 = self.pcs.explained
        return (f"{len(r)} samples of {self.name}, {len(self.residues)} residues: CA RMSF median "
                f"{np.median(self.rmsf):.2f} Å, largest {self.rmsf[peak]:.2f} Å ({where}); PC1 {pc1:.0%} and PC2 "
                f"{pc2:.0%} of the variance; RMSD to the reference {r.min():.2f}–{r.max():.2f} Å (median "
                f"{np.median(r):.2f} Å)")


def ensemble_report(samples: np.ndarray, reference: Structure, states: dict[str, np.ndarray] | None = None,
                    secondary: np.ndarray | None = None) -> EnsembleReport:
    """RMSF, principal components and RMSD to the reference of samples (S, N, 3) Å in ``reference``'s atom order
    (S ≥ 2). states: label → CA atoms (L, 3) Å at the reference's amino-acid residues (:func:`state_ca`), placed on
    the components; secondary: (L,) DSSP classes of the reference (``io.trajectory.secondary_structure``)."""
    samples = checked_coords(samples, "samples", "SN", reference.n_atoms)
    if len(samples) < 2:
        raise ValueError(f"a report of an ensemble needs at least 2 samples, got {len(samples)}: fluctuations and "
                         "principal components describe how samples differ")
    ca_index = reference.backbone_index[:, 1]
    reference_ca = reference.coords[ca_index]
    states = states or {}
    if secondary is not None and len(secondary) != len(ca_index):
        raise ValueError(f"secondary must have one class per residue ({len(ca_index)}), got {len(secondary)}")
    pcs = principal_components(samples[:, ca_index], reference_ca,
                               np.stack(list(states.values())) if states else None)
    return EnsembleReport(reference.name, reference.backbone_res_nums.copy(), reference.chain_ids[ca_index].copy(),
                          np.array(_residue_keys(reference, chains=False)), reference.res_names[ca_index].copy(),
                          None if secondary is None else np.asarray(secondary, dtype=str),
                          ca_rmsf(samples[:, ca_index], reference_ca),
                          rmsd_matrix(samples, reference.coords[None])[:, 0], pcs, tuple(states))
