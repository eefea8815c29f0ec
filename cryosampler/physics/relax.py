"""Restrained relaxation of sampled models, as AlphaFold's Amber relaxation (Jumper et al. 2021; their
``alphafold/relax/amber_minimize.py``): hydrogens added at pH 7, every input heavy atom held to its input position
by a harmonic restraint, energy minimisation only (no dynamics). Clashes and strained bonds go; the model stays
where it was. Where AlphaFold takes Amber99SB in vacuum, this takes Amber14 (ff14SB) in OBC2 implicit solvent.

The one module that talks to OpenMM, an optional dependency (``pip install -e '.[relax]'``), imported only when a
model is relaxed. Coordinates are in Å; OpenMM works in nm and kJ/mol, converted here.
"""

from __future__ import annotations

import random
import time
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from cryosampler.io.structure import Structure, validate_coords

__all__ = ["RelaxConfig", "RELAX_PRESETS", "RelaxReport", "relax", "check_relaxable", "require_openmm", "INSTALL",
           "SIDE_CHAINS", "CAPS"]

INSTALL = "pip install -e '.[relax]'"

# Side-chain heavy atoms of the residues Amber14 parameterises, in PDB names; N, CA, C, O are every residue's.
SIDE_CHAINS = {
    "ALA": ("CB",), "ARG": ("CB", "CG", "CD", "NE", "CZ", "NH1", "NH2"), "ASN": ("CB", "CG", "OD1", "ND2"),
    "ASP": ("CB", "CG", "OD1", "OD2"), "CYS": ("CB", "SG"), "GLN": ("CB", "CG", "CD", "OE1", "NE2"),
    "GLU": ("CB", "CG", "CD", "OE1", "OE2"), "GLY": (), "HIS": ("CB", "CG", "ND1", "CD2", "CE1", "NE2"),
    "ILE": ("CB", "CG1", "CG2", "CD1"), "LEU": ("CB", "CG", "CD1", "CD2"), "LYS": ("CB", "CG", "CD", "CE", "NZ"),
    "MET": ("CB", "CG", "SD", "CE"), "PHE": ("CB", "CG", "CD1", "CD2", "CE1", "CE2", "CZ"),
    "PRO": ("CB", "CG", "CD"), "SER": ("CB", "OG"), "THR": ("CB", "OG1", "CG2"),
    "TRP": ("CB", "CG", "CD1", "CD2", "NE1", "CE2", "CE3", "CZ2", "CZ3", "CH2"),
    "TYR": ("CB", "CG", "CD1", "CD2", "CE1", "CE2", "CZ", "OH"), "VAL": ("CB", "CG1", "CG2"),
}
# Terminal caps Amber14 parameterises, with their heavy atoms in PDB names (OpenMM matches them by bonds).
CAPS = {"ACE": ("C", "O", "CH3"), "NME": ("N", "C")}

_KCAL = 4.184  # kJ per kcal
_ANGSTROM = 0.1  # nm per Å


@dataclass(frozen=True)
class RelaxConfig:
    """Restraint, solvent and minimiser settings (named presets in ``RELAX_PRESETS``)."""

    stiffness: float = 10.0  # kcal/mol/Å², restraint k of 0.5·k·d² on each heavy atom (AlphaFold's)
    tolerance: float = 10.0  # kJ/mol/nm, stop when the RMS force reaches it (OpenMM 8's default and unit)
    max_iterations: int = 0  # minimiser iterations; 0: until converged (AlphaFold's)
    # Å, nonbonded and implicit-solvent cutoff; 0: none. Without one every atom pair counts, several times the cost
    # for a protein of calmodulin's size, and a minimisation that keeps atoms in place gains little from distant pairs.
    cutoff: float = 10.0
    ph: float = 7.0  # protonation states of the added hydrogens
    # OpenMM's CPU platform; one thread gives the same result on every run, more sum forces in a varying order.
    threads: int = 1


RELAX_PRESETS = {"default": RelaxConfig()}


@dataclass(frozen=True)
class RelaxReport:
    """What relaxation did to each of S models; arrays (S,)."""

    energy_before: np.ndarray  # kJ/mol, Amber14 + OBC2 once hydrogens are added, restraints excluded
    energy_after: np.ndarray  # kJ/mol, the same after minimisation
    rmsd: np.ndarray  # Å, heavy-atom RMSD of the relaxed model to its input (no superposition)
    seconds: np.ndarray  # wall time per model: hydrogens, parameters and minimisation


def require_openmm(what: str = "relaxation"):
    """The ``openmm`` package, or ValueError saying that ``what`` needs it and how to install it."""
    try:
        import openmm
        import openmm.app  # the submodule the rest uses
    except ImportError:
        raise ValueError(f"{what} needs OpenMM, which is not installed: {INSTALL}") from None
    return openmm


def _residues(structure: Structure) -> list[tuple[str, int, int, int]]:
    """(name, residue number, first atom, stop atom) of every residue."""
    starts = structure.residue_starts
    return [(str(structure.res_names[a]), int(structure.res_nums[a]), int(a), int(b))
            for a, b in zip(starts[:-1], starts[1:])]


def check_relaxable(structure: Structure, source: str | None = None) -> None:
    """ValueError, in one line naming ``source`` (default the structure's name) and the residues, unless Amber14
    can parameterise every residue: only the 20 standard amino acids and the caps ACE and NME, each with all
    its heavy atoms (OXT may be absent: it is added at chain ends)."""
    source = source or structure.name
    residues = _residues(structure)
    unknown = [f"{name} {num}" for name, num, _, _ in residues if name not in SIDE_CHAINS and name not in CAPS]
    if unknown:
        raise ValueError(f"{source}: Amber14 cannot parameterise residue(s) {', '.join(unknown[:5])}"
                         f"{' …' if len(unknown) > 5 else ''}; relaxation takes the 20 standard amino acids and the "
                         f"caps {', '.join(CAPS)}: replace those residues or do not relax this model")
    side_chains = [set(structure.atom_names[a:b]) & set(SIDE_CHAINS[name])
                   for name, _, a, b in residues if name in SIDE_CHAINS and name != "GLY"]
    if side_chains and not any(side_chains):
        raise ValueError(f"{source}: a backbone-only model (no side-chain atoms) cannot be parameterised for "
                         "relaxation; give a model with every heavy atom, or do not relax it")
    incomplete, extra = [], []
    for name, num, a, b in residues:
        expected = CAPS[name] if name in CAPS else ("N", "CA", "C", "O", *SIDE_CHAINS[name])
        names = set(structure.atom_names[a:b])
        missing = [atom for atom in expected if atom not in names]
        if missing:
            incomplete.append(f"{name} {num} lacks {' '.join(missing)}")
        extra += [f"{name} {num} {atom}" for atom in sorted(names - set(expected) - {"OXT"})]
    if incomplete:
        more = " …" if len(incomplete) > 3 else ""
        raise ValueError(f"{source}: {len(incomplete)} residue(s) lack heavy atoms, so they cannot be parameterised "
                         f"for relaxation: {'; '.join(incomplete[:3])}{more}; complete the side chains (e.g. with "
                         "PDBFixer) or do not relax this model")
    if extra:
        raise ValueError(f"{source}: atom(s) {', '.join(extra[:5])} are not in Amber14's residue templates; "
                         "rename or remove them, or do not relax this model")


def _segments(structure: Structure) -> list[list[tuple[str, int, int, int]]]:
    """Residues split where residue numbers jump: each run of consecutive numbers is one chain for Amber14,
    with charged termini, so a gap is never bonded across."""
    segments: list[list[tuple[str, int, int, int]]] = []
    for residue in _residues(structure):
        if not segments or residue[1] != segments[-1][-1][1] + 1:
            segments.append([])
        segments[-1].append(residue)
    return segments


def _oxt(coords: np.ndarray, names: np.ndarray) -> np.ndarray:
    """Position (3,) Å of a terminal carboxylate's missing OXT: O mirrored through the CA–C line, so that the two
    oxygens are symmetric about it. ``coords`` (n, 3) and ``names`` (n,): one residue's atoms."""
    ca, c, o = (coords[list(names).index(atom)] for atom in ("CA", "C", "O"))
    axis = (c - ca) / np.linalg.norm(c - ca)
    bond = o - c
    along = np.dot(bond, axis) * axis
    return c + along - (bond - along)


class _Model:
    """The heavy-atom model Amber14 is given: the structure's atoms in order, chains split at gaps, OXT added at
    C-terminal amino acids that lack it."""

    def __init__(self, structure: Structure):
        self.structure = structure
        self.segments = _segments(structure)
        order: list[int] = []  # topology atom → structure atom, -1 for an added OXT
        self.added: list[tuple[int, int]] = []  # atom range of each residue that gets an OXT
        for segment in self.segments:
            for k, (name, _, a, b) in enumerate(segment):
                order += range(a, b)
                if k == len(segment) - 1 and name in SIDE_CHAINS and "OXT" not in structure.atom_names[a:b]:
                    order.append(-1)
                    self.added.append((a, b))
        self.order = np.asarray(order)

    def topology(self, openmm):
        """A new OpenMM Topology with the standard bonds (Modeller changes the one it is given)."""
        app, structure = openmm.app, self.structure
        topology = app.Topology()
        for segment in self.segments:
            chain = topology.addChain(str(structure.chain_ids[segment[0][2]]))
            for name, num, a, b in segment:
                residue = topology.addResidue(name, chain, id=str(num))
                for i in range(a, b):
                    topology.addAtom(str(structure.atom_names[i]), app.Element.getBySymbol(str(structure.elements[i])),
                                     residue)
                if (a, b) in self.added:
                    topology.addAtom("OXT", app.Element.getBySymbol("O"), residue)
        topology.createStandardBonds()
        return topology

    def positions(self, coords: np.ndarray) -> np.ndarray:
        """Topology positions (n_top, 3), Å, for a model's coords (N, 3) Å."""
        out = np.empty((len(self.order), 3))
        kept = self.order >= 0
        out[kept] = coords[self.order[kept]]
        names = self.structure.atom_names
        out[~kept] = np.reshape([_oxt(coords[a:b], names[a:b]) for a, b in self.added], (-1, 3))
        return out


def _system(topology, forcefield, config: RelaxConfig, openmm):
    """Amber14 with OBC2 implicit solvent for ``topology`` (hydrogens included), H bonds constrained.

    OpenMM's ``implicit/obc2.xml`` builds OBC2 as a CustomGBForce, several times slower on a CPU than its native
    GBSAOBCForce; the native force takes the same charges, radii and scales (mbondi2) and surface term, so the
    energy is that of ``amber14-all.xml`` + ``implicit/obc2.xml``."""
    app, unit = openmm.app, openmm.unit
    from openmm.app.internal.customgbforces import GBSAOBC2Force

    if config.cutoff > 0:
        cutoff = config.cutoff * _ANGSTROM
        system = forcefield.createSystem(topology, nonbondedMethod=app.CutoffNonPeriodic,
                                         nonbondedCutoff=cutoff * unit.nanometer, constraints=app.HBonds)
    else:
        system = forcefield.createSystem(topology, nonbondedMethod=app.NoCutoff, constraints=app.HBonds)
    (nonbonded,) = [f for f in system.getForces() if isinstance(f, openmm.NonbondedForce)]
    solvent = openmm.GBSAOBCForce()
    if config.cutoff > 0:
        # The solvent screens charges; a reaction field would count it twice (as implicit/obc2.xml sets it).
        nonbonded.setReactionFieldDielectric(1.0)
        solvent.setNonbondedMethod(openmm.GBSAOBCForce.CutoffNonPeriodic)
        solvent.setCutoffDistance(cutoff)
    for i, (radius, scale) in enumerate(GBSAOBC2Force.getStandardParameters(topology)):
        solvent.addParticle(nonbonded.getParticleParameters(i)[0], radius, scale)
    system.addForce(solvent)
    return system


@contextmanager
def _python_random_seeded(seed: int):
    """Python's global ``random`` seeded for the block and given back as it was: OpenMM's Modeller draws the first
    positions of added hydrogens from it, and the library leaves global state to its callers."""
    state = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(state)


def _relax_one(model: _Model, coords: np.ndarray, forcefield, config: RelaxConfig, openmm) -> tuple:
    """Relax one model: (relaxed coords (N, 3) Å, energy before, energy after kJ/mol)."""
    app, unit = openmm.app, openmm.unit
    positions = [openmm.Vec3(*x) for x in model.positions(coords) * _ANGSTROM] * unit.nanometer
    modeller = app.Modeller(model.topology(openmm), positions)
    # Disulfides from this model's own SG–SG distances.
    modeller.topology.createDisulfideBonds(modeller.positions)
    # Modeller places hydrogens with a small minimisation of its own, on the Reference platform the same every run.
    with _python_random_seeded(0):
        modeller.addHydrogens(pH=config.ph, platform=openmm.Platform.getPlatformByName("Reference"))
    # Modeller keeps every heavy atom, in order, and puts the hydrogens among them.
    heavy = np.array([atom.index for atom in modeller.topology.atoms() if atom.element.symbol != "H"])
    assert len(heavy) == len(model.order), "hydrogens were not the only atoms added"
    system = _system(modeller.topology, forcefield, config, openmm)

    restraint = openmm.CustomExternalForce("0.5*k*((x-x0)^2+(y-y0)^2+(z-z0)^2)")
    restraint.addGlobalParameter("k", config.stiffness * _KCAL / _ANGSTROM ** 2)  # kJ/mol/nm²
    for name in ("x0", "y0", "z0"):
        restraint.addPerParticleParameter(name)
    start = np.asarray(modeller.positions.value_in_unit(unit.nanometer))  # (n_all, 3), nm
    kept = model.order >= 0  # an added OXT has no input position to keep
    for index in heavy[kept]:
        restraint.addParticle(int(index), start[index].tolist())
    restraint.setForceGroup(1)
    system.addForce(restraint)

    platform = openmm.Platform.getPlatformByName("CPU")
    # The integrator is never stepped: a Context needs one.
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), platform, {"Threads": str(config.threads)})
    context.setPositions(modeller.positions)

    def physical_energy() -> float:
        state = context.getState(getEnergy=True, groups={0})
        return state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)

    before = physical_energy()
    openmm.LocalEnergyMinimizer.minimize(context, config.tolerance, config.max_iterations)
    after = physical_energy()
    relaxed = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    out = np.empty_like(coords)
    out[model.order[kept]] = np.asarray(relaxed)[heavy[kept]] / _ANGSTROM
    return out, before, after


def relax(coords, reference: Structure, config: RelaxConfig = RelaxConfig()) -> tuple[np.ndarray, RelaxReport]:
    """Relax each model: hydrogens added, heavy atoms restrained, Amber14 + OBC2 minimised (module docstring).

    Parameters
    ----------
    coords : (S, N, 3) float, Å
        Models in the atom order of ``reference`` (heavy atoms only, as every Structure).
    reference : Structure
        Their atoms; must pass :func:`check_relaxable`.
    config : RelaxConfig

    Returns
    -------
    relaxed : (S, N, 3) float64, Å, same atom order; hydrogens and added OXT atoms are not returned.
    report : RelaxReport

    Raises
    ------
    ValueError
        OpenMM not installed (the message says how to install it), or a structure Amber14 cannot parameterise
        (:func:`check_relaxable`).
    """
    openmm = require_openmm()
    check_relaxable(reference)
    coords = validate_coords(coords, reference.n_atoms, reference.name, allow_models=True)
    if coords.ndim != 3:
        raise ValueError(f"{reference.name}: relax takes models (S, N, 3), got coords of shape {coords.shape}")
    forcefield = openmm.app.ForceField("amber14-all.xml")
    model = _Model(reference)
    relaxed, rows = np.empty_like(coords), []
    for s, x in enumerate(coords):
        tic = time.perf_counter()
        relaxed[s], before, after = _relax_one(model, x, forcefield, config, openmm)
        rows.append((before, after, np.sqrt(np.mean(np.sum((relaxed[s] - x) ** 2, axis=1))),
                     time.perf_counter() - tic))
    columns = np.array(rows, dtype=np.float64).reshape(-1, 4).T
    return relaxed, RelaxReport(*columns)
