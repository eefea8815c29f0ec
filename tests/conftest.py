"""Shared fixtures: the calmodulin PDB directory (never copied into the repo) and a tiny synthetic protein."""

import os
from pathlib import Path

import numpy as np
import pytest

from cryosampler.experiments.downloads import DownloadUnavailable
from cryosampler.io.structure import Structure

PDB_DIR = Path(os.environ.get("CRYOSAMPLER_PDB_DIR", Path(__file__).resolve().parents[2] / "shared" / "data" / "pdb"))


@pytest.fixture
def shared_pdb():
    """shared_pdb("4cln.pdb") → path in the PDB directory, or skip naming the variable to set."""

    def find(name: str) -> Path:
        path = PDB_DIR / name
        if not path.is_file():
            pytest.skip(f"{path} not found: set CRYOSAMPLER_PDB_DIR to the calmodulin PDB directory")
        return path

    return find


def make_helix(n_residues: int = 10, name: str = "tiny", first_residue: int = 1) -> Structure:
    """A poly-alanine α-helix-like chain (N, CA, C, O, CB per residue), centred, ~1.5 Å rise per residue."""
    offsets = {"N": (1.5, -0.8, -0.6), "CA": (2.3, 0.0, 0.0), "C": (1.6, 0.9, 0.9), "O": (2.0, 1.9, 1.4),
               "CB": (3.6, -0.5, 0.3)}
    coords, names, res_nums = [], [], []
    for r in range(n_residues):
        angle = np.deg2rad(100.0 * r)
        rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
        for atom, xyz in offsets.items():
            coords.append(rot @ np.array(xyz) + [0, 0, 1.5 * r])
            names.append(atom)
            res_nums.append(r + first_residue)
    coords = np.array(coords)
    elements = np.array([n[0] for n in names])
    return Structure(
        coords=coords - coords.mean(0), elements=elements,
        atomic_numbers=np.array([{"C": 6, "N": 7, "O": 8}[e] for e in elements], dtype=np.int64),
        atom_names=np.array(names), res_names=np.array(["ALA"] * len(names)),
        res_nums=np.array(res_nums, dtype=np.int64), chain_id="A", name=name)


def make_complex(*lengths: int, spacing: float = 12.0, name: str = "complex") -> Structure:
    """Helices of ``lengths`` residues as chains A, B, … (each numbered from 1 as its file would give it), each
    ``spacing`` Å beside the one before along x; internal numbers as the reader gives several chains (each chain
    two numbers after the previous one's last)."""
    parts = [make_helix(n) for n in lengths]
    coords, res_nums, first = [], [], 0
    for k, part in enumerate(parts):
        coords.append(part.coords + [spacing * k, 0.0, 0.0])
        res_nums.append(part.res_nums + first)
        first = int(res_nums[-1].max()) + 1
    ids = "ABCDEFGHIJ"[:len(parts)]
    return Structure(coords=np.concatenate(coords), elements=np.concatenate([p.elements for p in parts]),
                     atomic_numbers=np.concatenate([p.atomic_numbers for p in parts]),
                     atom_names=np.concatenate([p.atom_names for p in parts]),
                     res_names=np.concatenate([p.res_names for p in parts]), res_nums=np.concatenate(res_nums),
                     chain_id=",".join(ids), name=name,
                     chain_ids=np.concatenate([[c] * p.n_atoms for c, p in zip(ids, parts)]),
                     author_nums=np.concatenate([p.res_nums for p in parts]))


def make_two_domains() -> tuple[Structure, np.ndarray]:
    """A two-domain protein of six 24-residue helices along z (720 atoms, ~35 Å across): a core bundle of four
    (residues 1–96) and a second domain of two, 10 Å beside it along x (residues 97–144); centred. Returns the
    structure and the (N,) bool mask of the second domain's atoms."""
    helix = make_helix(24)
    spots = [(-18.0, -5.0), (-18.0, 5.0), (-8.0, -5.0), (-8.0, 5.0), (10.0, -5.0), (10.0, 5.0)]  # x, y of each axis
    # Every other helix runs down, as in a bundle.
    parts = [helix.coords * ([1, 1, 1] if k % 2 == 0 else [1, -1, -1]) + [x, y, 0.0] for k, (x, y) in enumerate(spots)]
    coords = np.concatenate(parts)
    n = len(helix.coords)
    structure = Structure(
        coords=coords - coords.mean(0), elements=np.tile(helix.elements, 6),
        atomic_numbers=np.tile(helix.atomic_numbers, 6), atom_names=np.tile(helix.atom_names, 6),
        res_names=np.tile(helix.res_names, 6), res_nums=np.concatenate([helix.res_nums + 24 * k for k in range(6)]),
        chain_id="A", name="two_domains")
    return structure, np.arange(6 * n) >= 4 * n


@pytest.fixture
def tiny_structure() -> Structure:
    return make_helix()


@pytest.fixture
def pdb_dir() -> Path:
    """The calmodulin PDB directory, or skip naming the variable to set."""
    if not (PDB_DIR / "1exr.pdb").is_file():
        pytest.skip(f"{PDB_DIR} lacks the calmodulin files: set CRYOSAMPLER_PDB_DIR to that directory")
    return PDB_DIR


TINY_GRID = dict(size=16, apix=2.0, resolution=8.0)


def tiny_examples(structure: Structure):
    """Two training maps of ``structure`` on a 16³ grid: the reference shifted by ±1 Å along x."""
    import torch

    from cryosampler.model.featurize import featurize
    from cryosampler.physics.render import render_density
    from cryosampler.io.grid import MapGrid
    from cryosampler.training import TrainingExample

    grid = MapGrid(**TINY_GRID)
    protein = featurize(structure, structure.coords, tokens="residue")
    examples = []
    for shift in (-1.0, 1.0):
        coords = torch.tensor(structure.coords + [shift, 0.0, 0.0], dtype=torch.float32)[None]
        volume = render_density(coords, protein.atomic_numbers, grid)[0]
        examples.append(TrainingExample(protein, volume))
    return examples


def tiny_model(structure: Structure, seed: int = 0, grid: dict = TINY_GRID):
    """An untrained smoke-preset model on the 16³ grid (or ``grid``) whose template is ``structure``."""
    import torch

    from cryosampler.model.encoder import ENCODER_PRESETS
    from cryosampler.physics.frame import principal_axes_template
    from cryosampler.model.denoiser import CryoSampler, ModelConfig
    from cryosampler.io.grid import MapGrid

    config = ModelConfig(encoder=ENCODER_PRESETS["smoke"], grid=MapGrid(**grid))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CryoSampler(config, sigma_data=1.0, template=principal_axes_template(structure))
        # Perturb the zero-initialised output layer so that samples depend on the noise.
        torch.nn.init.normal_(model.encoder.head[-1].weight, std=0.05)
    return model.eval()


def checkpoint_state(model) -> dict:
    """What sampling needs of a checkpoint (train() writes more), for ``model``'s weights as both sets."""
    from cryosampler.model.checkpoint import CHECKPOINT_FORMAT

    state = model.state_dict()
    return {"format": CHECKPOINT_FORMAT, "model": state, "ema": state, "sigma_data": 1.0,
            "template": model.template.to_dict(), "model_config": model.config.to_dict(), "step": 0}


@pytest.fixture
def tiny_checkpoint(tiny_structure, tmp_path) -> Path:
    """checkpoint.pt of the untrained tiny model whose template is ``tiny_structure``."""
    from cryosampler.model.checkpoint import save_checkpoint

    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, checkpoint_state(tiny_model(tiny_structure)))
    return path


def downloaded_or_skip(fetch, what: str):
    """``fetch()`` (data from the cache, downloaded there once if missing), or skip naming ``what`` when offline.

    Only ``DownloadUnavailable`` (not in the cache, PyPI out of reach) skips: a damaged cache that a new download
    does not mend, or an archive without the expected files, is any other ValueError, and fails the test.
    """
    try:
        return fetch()
    except DownloadUnavailable as err:
        pytest.skip(f"{what} unavailable (no network?): {err}")


@pytest.fixture(scope="session")
def benchmark_wheel() -> Path:
    """The bioemu-benchmarks wheel."""
    from cryosampler.experiments.domain_motion import benchmark_wheel as find_wheel

    return downloaded_or_skip(find_wheel, "domain-motion benchmark data")


@pytest.fixture(scope="session")
def adk_files() -> dict:
    """The adenylate kinase DIMS files."""
    from cryosampler.experiments.transition import adk_files as find_files

    return downloaded_or_skip(find_files, "adenylate kinase path")


@pytest.fixture(scope="session")
def experimental_maps() -> dict:
    """The real EMDB maps and deposited models of ccpem-utils' test data."""
    from cryosampler.experiments.experimental_maps import experimental_map_files as find_files

    return downloaded_or_skip(find_files, "experimental maps")
