"""cryoDRGN upstream of CryoSampler, run as a user runs it: ``parse_pose_star`` and ``parse_ctf_star`` on the
particles' STAR file, ``downsample`` to the training box, ``train_vae`` with the known poses, ``analyze`` → k-means
class maps, each with the number of particles of its class. The commands are cryoDRGN's own (PyPI ``cryodrgn``,
the optional extra ``[cryodrgn]``), called as subprocesses from the environment's ``bin/`` folder.

Every step writes into one work folder and is skipped when its output is there, so re-running after a change to
CryoSampler does not redo cryoDRGN; a ``settings.json`` in the folder records what it was made with, and a folder
made with other settings is refused rather than reused.
"""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cryosampler.io.files import recorded_settings

__all__ = ["CryodrgnConfig", "CRYODRGN_PRESETS", "cryodrgn_command", "run_cryodrgn", "class_table"]


@dataclass(frozen=True)
class CryodrgnConfig:
    """cryoDRGN's settings, sized for a 2-core CPU (a GPU run may take the same)."""

    train_size: int = 32  # pixels: particles are downsampled to this box for train_vae, as its tutorial advises
    zdim: int = 8  # latent dimension
    epochs: int = 20
    hidden: int = 128  # width of encoder and decoder layers
    layers: int = 2  # hidden layers of encoder and decoder
    batch: int = 32
    classes: int = 10  # analyze --ksample: k-means class maps
    seed: int = 0


CRYODRGN_PRESETS = {
    "default": CryodrgnConfig(),
    "smoke": CryodrgnConfig(train_size=16, zdim=2, epochs=4, hidden=32, layers=1, batch=16, classes=2),
}


def cryodrgn_command() -> str:
    """The ``cryodrgn`` executable of this Python environment; a one-line error naming the extra when absent."""
    found = Path(sys.executable).parent / "cryodrgn"
    command = str(found) if found.is_file() else shutil.which("cryodrgn")
    if command is None:
        raise ModuleNotFoundError("cryoDRGN is not installed in this environment: pip install -e '.[cryodrgn]' "
                                  "(./run_all.sh installs it)")
    return command


def _run(args: list[str], log: Path) -> None:
    """Run one cryoDRGN command, appending its output to ``log``; a one-line error naming the log on failure."""
    with open(log, "a") as out:
        out.write("$ cryodrgn " + " ".join(args) + "\n")
        out.flush()
        done = subprocess.run([cryodrgn_command(), *args], stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise RuntimeError(f"cryodrgn {args[0]} failed (exit {done.returncode}); its output is in {log}")


def run_cryodrgn(star: str | Path, workdir: str | Path, config: CryodrgnConfig, apix: float,
                 size: int) -> Path:
    """Reconstruct ``star``'s particles (``size``² pixels of ``apix`` Å) with cryoDRGN into ``workdir``; return the
    folder of k-means class maps (``vol_001.mrc`` … and ``labels.pkl``). Steps whose outputs exist are skipped."""
    star, workdir = Path(star).resolve(), Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    settings = {"star": str(star), **asdict(config)}
    recorded = workdir / "settings.json"
    if not recorded_settings(recorded, settings, "a cryoDRGN run"):
        recorded.write_text(json.dumps(settings, indent=1))
    log = workdir / "cryodrgn.log"
    poses, ctf = workdir / "pose.pkl", workdir / "ctf.pkl"
    small = workdir / f"particles.{config.train_size}.mrcs"
    train, epoch = workdir / "train_vae", config.epochs
    classes = workdir / "analyze" / f"kmeans{config.classes}"
    steps = [
        (poses, ["parse_pose_star", str(star), "-o", str(poses)]),
        (ctf, ["parse_ctf_star", str(star), "-o", str(ctf)]),
        (small, ["downsample", str(star), "--datadir", str(star.parent), "-D", str(config.train_size),
                 "-o", str(small)]),
        (train / f"weights.{epoch}.pkl",
         ["train_vae", str(small), "--poses", str(poses), "--ctf", str(ctf), "--zdim", str(config.zdim),
          "-n", str(epoch), "-o", str(train), "--enc-dim", str(config.hidden), "--enc-layers", str(config.layers),
          "--dec-dim", str(config.hidden), "--dec-layers", str(config.layers), "-b", str(config.batch),
          "--seed", str(config.seed), "--no-analysis"]),
        (classes / "labels.pkl",
         ["analyze", str(train), str(epoch), "-o", str(workdir / "analyze"), "--ksample", str(config.classes),
          "--skip-umap", "--pc", "1", "--Apix", str(apix * size / config.train_size)]),
    ]
    for output, args in steps:
        if not output.exists():
            _run(args, log)
    return classes


def class_table(classes: str | Path, particle_frames: np.ndarray) -> pd.DataFrame:
    """One row per k-means class map of ``classes`` (:func:`run_cryodrgn`'s folder): map (file name), particles
    (its class's size), and the truth behind it: frames (the path frames of its particles, (n,) int array per row).

    particle_frames: (B,) the true path frame of each particle, in the STAR file's order.
    """
    classes = Path(classes)
    with open(classes / "labels.pkl", "rb") as f:
        labels = np.asarray(pickle.load(f))
    if len(labels) != len(particle_frames):
        raise ValueError(f"{classes / 'labels.pkl'} labels {len(labels)} particles, the truth has "
                         f"{len(particle_frames)}; the cryoDRGN run is of another dataset")
    rows = []
    for k in range(int(labels.max()) + 1):
        rows.append({"map": f"vol_{k + 1:03d}.mrc", "particles": int((labels == k).sum()),
                     "frames": np.asarray(particle_frames)[labels == k]})
    return pd.DataFrame(rows)
