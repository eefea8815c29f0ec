"""Peak memory of ``cryosampler sample`` against the number of samples: it must not grow with ``-n``.

    python benchmarks/bench_sample_memory.py [--n 16 2000] [--steps 2] [--batch-size 16] [--no-maps] [--csv PATH]

Saves an untrained model of the default configuration (64³ grid, ``default`` encoder; memory does not
depend on the weights) whose template is 4CLN (1,164 atoms, from $CRYOSAMPLER_PDB_DIR), then runs the real
command line in a subprocess for each ``-n``, writing the ensemble and every sample's map (1 MiB each) to a
temporary folder. Few DDIM steps keep it short: the memory of a batch does not depend on K. Reports each
run's peak resident set size (``os.wait4``'s ru_maxrss of that child) and wall time.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from cryosampler.physics.frame import principal_axes_template
from cryosampler.experiments.manifest import find_entry, pdb_dir_from_env
from cryosampler.model.denoiser import CryoSampler, ModelConfig
from cryosampler.io.atomic_files import read_structure
from cryosampler.model.checkpoint import save_checkpoint


def peak_rss(command: list[str]) -> tuple[float, float]:
    """Run ``command``; return (peak RSS in MiB, wall seconds). Raises if it fails."""
    tic = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{stderr.decode()}")
    return usage.ru_maxrss / 1024, time.perf_counter() - tic  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[16, 2000], help="numbers of samples")
    parser.add_argument("--steps", type=int, default=2, help="DDIM steps per sample")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--maps", action=argparse.BooleanOptionalAction, default=True,
                        help="also write every sample's map (--maps-dir)")
    parser.add_argument("--csv", default=None, help="write the results here")
    args = parser.parse_args()

    reference = find_entry("4CLN", pdb_dir_from_env())
    if reference is None:
        raise SystemExit("4CLN not found: set CRYOSAMPLER_PDB_DIR to the calmodulin PDB directory")
    template = principal_axes_template(read_structure(reference))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = CryoSampler(ModelConfig(), 1.0, template)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        checkpoint = folder / "checkpoint.pt"
        weights = model.state_dict()
        save_checkpoint(checkpoint, {"model": weights, "ema": weights, "sigma_data": 1.0, "step": 0,
                                     "template": template.to_dict(), "model_config": model.config.to_dict()})
        for n in args.n:
            out = folder / f"ensemble_{n}.pdb"
            command = [sys.executable, "-m", "cryosampler", "sample", "--checkpoint", str(checkpoint),
                       "--reference", str(reference), "-n", str(n), "--steps", str(args.steps),
                       "--batch-size", str(args.batch_size), "-o", str(out), "--quiet"]
            if args.maps:
                command += ["--maps-dir", str(folder / f"maps_{n}")]
            rss, seconds = peak_rss(command)
            rows.append({"n": n, "batch_size": args.batch_size, "steps": args.steps, "maps": args.maps,
                         "peak_rss_mib": round(rss, 1), "seconds": round(seconds, 1),
                         "output_mib": round(out.stat().st_size / 2**20, 1)})
            print(f"-n {n:>6}: peak RSS {rss:7.1f} MiB, {seconds:6.1f} s, ensemble {rows[-1]['output_mib']} MiB",
                  flush=True)
            out.unlink()
            if args.maps:
                for path in (folder / f"maps_{n}").iterdir():
                    path.unlink()
    if args.csv:
        pd.DataFrame(rows).to_csv(args.csv, index=False)


if __name__ == "__main__":
    main()
