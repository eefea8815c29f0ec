"""ChimeraX command scripts (.cxc) that open an ensemble ready to look at: the reference, the ensemble as one
trajectory model, and the denoised maps as one volume series, in one frame, coloured and contoured; and a
traversal's script, which opens its trajectory the same way and plays it as a movie.

ChimeraX runs a .cxc with the working directory set to the script's folder (``open_command_script`` in
RBVI/ChimeraX ``src/bundles/core/src/scripting.py``), so paths are written relative to it and the folder can be
moved as a whole.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cryosampler.io.files import atomic_path
from cryosampler.io.structure import Structure

__all__ = ["ensemble_script", "write_ensemble_script", "traverse_script", "enclosing_level", "protein_volume",
           "COMMANDS", "VOLUME_PER_DALTON", "PAUSE_FRAMES", "MOVIE_FRAMERATE"]

# The ChimeraX commands the scripts use; tests/test_chimerax.py accepts these and no others.
COMMANDS = ("close", "open", "color", "volume", "view", "coordset")

# A traversal's movie: graphics frames per trajectory frame, and the frame rate of the encoded movie (ChimeraX's
# default).
PAUSE_FRAMES = 5
MOVIE_FRAMERATE = 25

# Å³ per Da: a protein's partial specific volume, 0.73 cm³/g, in Å³ per dalton (0.73 × 1.6605).
VOLUME_PER_DALTON = 1.21

REFERENCE_COLOR, ENSEMBLE_COLOR, MAP_COLOR = "lightgray", "tomato", "cornflowerblue"
MAP_TRANSPARENCY = 0.6  # see the models inside the map surface


def protein_volume(structure: Structure) -> float:
    """The volume (Å³) of ``structure``'s protein: :data:`VOLUME_PER_DALTON` × its mass, the mass counting each heavy
    atom as 2Z + 1 Da (C 13, N 15, O 17, S 33: the atom and, on average, one hydrogen; alanine C3H5NO → 71 Da)."""
    return VOLUME_PER_DALTON * float(np.sum(2 * structure.atomic_numbers + 1))


def enclosing_level(volume: np.ndarray, enclosed: float, apix: float) -> float:
    """The contour level of ``volume`` (D, D, D) whose surface encloses ``enclosed`` Å³ (the volume of the voxels,
    ``apix`` Å wide, at or above it): the map shows the protein at its own size whatever its scale."""
    values = np.asarray(volume, dtype=np.float64).ravel()
    count = int(np.clip(round(enclosed / apix ** 3), 1, values.size))
    return float(np.partition(values, values.size - count)[values.size - count])


def _quoted(path: Path, folder: Path) -> str:
    """``path`` relative to ``folder`` (absolute where there is no relative path, e.g. another drive), quoted."""
    try:
        name = Path(os.path.relpath(Path(path).resolve(), Path(folder).resolve())).as_posix()
    except ValueError:
        name = Path(path).resolve().as_posix()
    if '"' in name:
        raise ValueError(f"{path}: ChimeraX cannot open a path with a double quote in it; rename it")
    return f'"{name}"'


def _header(path, command: str, what: str, steps: str) -> list[str]:
    """The comment lines that open a script: who wrote it, how to open it, and models #1 and #2."""
    return [f"# Written by cryosampler {command}; open in ChimeraX: chimerax {Path(path).name} (or File > Open).",
            "# Closes any open models first, so that these model numbers hold:",
            f"#   #1 the reference ({REFERENCE_COLOR})",
            f"#   #2 {what}, one trajectory ({ENSEMBLE_COLOR}): coordset slider #2 steps through {steps}"]


def _opened(folder: Path, reference: Path, ensemble: Path, topology: Path | None) -> list[str]:
    """The commands that close open models, then open ``reference`` as #1 and the ensemble as trajectory #2, coloured."""
    lines = ["close", f"open {_quoted(reference, folder)}"]
    if topology is None:
        lines.append(f"open {_quoted(ensemble, folder)} coordsets true")
    else:
        lines += [f"open {_quoted(topology, folder)}", f"open {_quoted(ensemble, folder)} structureModel #2"]
    return lines + [f"color #1 {REFERENCE_COLOR}", f"color #2 {ENSEMBLE_COLOR}"]


def ensemble_script(path, reference: Path, ensemble: Path, topology: Path | None = None, maps: list[Path] = (),
                    map_level: float | None = None) -> str:
    """The text of a ChimeraX script at ``path`` that opens ``reference`` as model #1, the ensemble as model #2
    (a multi-model PDB/mmCIF as one trajectory, ``coordsets true``; an XTC into ``topology``), and ``maps``, if
    any, as model #3 (a volume series of the same grid, ``vseries true``) contoured at ``map_level``.

    The script closes open models first, so that these model numbers hold.
    """
    folder = Path(path).parent
    lines = _header(path, "sample", "the ensemble", "the samples")
    if maps:
        series = ", a volume series: vseries slider #3" if len(maps) > 1 else ""
        lines.append(f"#   #3 the denoised maps ({MAP_COLOR}){series}, contoured to enclose the protein's volume")
    lines += _opened(folder, reference, ensemble, topology)
    if maps:
        if map_level is None:
            raise ValueError("maps need a contour level (map_level)")
        series = " vseries true" if len(maps) > 1 else ""
        lines += [f"open {' '.join(_quoted(m, folder) for m in maps)}{series}",
                  f"volume #3 style surface level {map_level:.6g} color {MAP_COLOR} transparency {MAP_TRANSPARENCY:g}"]
    lines.append("view")
    return "\n".join(lines) + "\n"


def write_ensemble_script(path, reference: Path, ensemble: Path, topology: Path | None = None, maps: list[Path] = (),
                          map_level: float | None = None) -> None:
    """Write :func:`ensemble_script` to ``path`` (atomically: a temporary file renamed at the end)."""
    text = ensemble_script(path, reference, ensemble, topology, maps, map_level)
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def traverse_script(path, reference: Path, trajectory: Path, n_frames: int, movie: Path) -> str:
    """The text of a ChimeraX script at ``path`` that opens ``reference`` as model #1 and ``trajectory`` (a multi-model
    PDB/mmCIF of ``n_frames`` models) as trajectory #2, as :func:`ensemble_script` does, and plays it once from the
    first frame to the last, :data:`PAUSE_FRAMES` graphics frames each (``coordset #2 1,N pauseFrames P``).

    Recording is left to the user: the comment at the end gives the lines that record the same playback and
    encode it as ``movie`` (ChimeraX's ``movie record``, ``wait`` and ``movie encode``, which needs its own ffmpeg).
    """
    folder = Path(path).parent
    frames = n_frames * PAUSE_FRAMES
    lines = [*_header(path, "traverse", "the path through the latent space", "its frames"),
             *_opened(folder, reference, trajectory, None), "view",
             f"coordset #2 1,{n_frames} pauseFrames {PAUSE_FRAMES}",
             f"# To record the walk as a movie ({frames} graphics frames, {frames / MOVIE_FRAMERATE:g} s), run instead "
             "of the coordset line above:",
             f"#   movie record; coordset #2 1,{n_frames} pauseFrames {PAUSE_FRAMES}; wait {frames}; movie encode "
             f"{_quoted(movie, folder)} framerate {MOVIE_FRAMERATE}"]
    return "\n".join(lines) + "\n"
