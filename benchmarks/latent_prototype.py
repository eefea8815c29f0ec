"""Issue 36's latent model family, first measured prototype: stage 1 (map autoencoder) and stage 2 (latent diffusion)
trained on adenylate kinase's path maps as notebook 07 makes its clean training folder, then sampled and read out.

    python benchmarks/latent_prototype.py [--maps 20] [--stage1-steps 900] [--stage2-steps 3000] [--samples 64]
                                          [--weights equal open80] [--fit-frames 9] [--compare-steps 10]
                                          [--seed 0] [--train-seed SEED]
                                          [--preset default] [--out results/latent_prototype]

Data, as notebook 07 (``user_maps``): the DIMS path (``transition.read_adk_path``) moved to ``user_maps.MAP_FRAME``,
the reference 1AKE (``path.closed``), ``--maps`` frames drawn with ``user_maps.BASINS``' populations
(``draw_frames``), each on its own random grid (``random_griddings``), written clean (``TRAINING_RECIPES["clean"]``)
with the notebook's random stream (seed ``--seed``; the clean folder is the notebook's first, so its maps are the
notebook's), and ingested as ``cryosampler train`` ingests them: onto the model's 64³ × 2 Å grid around the
reference, its own frame centred (``frame.own_placement``), scaled to the renderer's units
(``ingest.to_model_units``). The fit check's rigid-body probes are skipped: they refuse or pass a map, never change it.

Weights (``--weights``, one stage 2 and ensemble per choice, all on the one stage 1, since the weights enter stage 2
alone): ``equal`` gives every map weight 1, so the populations are the maps' own (55 % closed with the default
seed); ``open80`` puts 80 % of the weight on the maps nearer the open end, shared equally among them, so the target
occupancy of the closed half is 0.20.

Scores, each with the project's one definition: ``user_maps.sampling_scores`` (closest sample to each end,
occupancy of the closed half, 1-D Wasserstein along the path against the training maps' structures,
``metrics.progress_wasserstein``), ``validate.sample_validity`` (BioEmu's filter, clashes, bond deviations), and
the heavy-atom RMSD (``physics.superpose.rmsd``) of the read-out, encode → decode of the posterior mean
(``latent_sampling.read_out_latent``), of every training map and of 4 Å maps (``user_maps.FIT_RECIPES["4 Å"]``)
of ``--fit-frames`` frames evenly along the path. Notebook 07's 4 Å maps come after its other folders in its
random stream; here they are drawn from seed ``--seed`` + 1 (same recipe and frames, other grids and noise).

Prints a table beside today's map-space model (``tables/own_maps.csv`` and ``tables/own_maps_validity.csv``, clean
maps) and writes ``latent_prototype.csv``, ``stage1_log.csv``, ``autoencoder.pt`` (stage 1's weights) and, per
weighting, ``stage2_log_<weighting>.csv`` and ``samples_progress_<weighting>.csv`` under ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cryosampler.evaluation.metrics import score_ensemble
from cryosampler.evaluation.validate import sample_validity
from cryosampler.experiments.profiles import repo_root
from cryosampler.experiments.transition import adk_files, read_adk_path
from cryosampler.experiments.user_maps import (FIT_RECIPES, MAP_FRAME, TRAINING_RECIPES, draw_frames, fit_map_name,
                                               random_griddings, sampling_scores, write_map_folder)
from cryosampler.ingest import ingest_map, to_model_units
from cryosampler.io.atomic_files import read_structure, write_pdb
from cryosampler.io.grid import MapGrid
from cryosampler.latent_sampling import read_out_latent, sample_structures
from cryosampler.latent_training import (AUTOENCODER_TRAIN_PRESETS, LATENT_TRAIN_PRESETS, encode_examples,
                                         train_autoencoder, train_latent_diffusion)
from cryosampler.model.autoencoder import AUTOENCODER_PRESETS
from cryosampler.model.featurize import featurize
from cryosampler.model.latent_diffusion import LatentDiffusionConfig
from cryosampler.physics.frame import own_placement
from cryosampler.physics.superpose import rmsd
from cryosampler.training import TrainingExample


WEIGHTINGS = ("equal", "open80")


def ingest_folder(folder: Path, files: list[str], reference, grid: MapGrid) -> list[np.ndarray]:
    """Each map of ``folder`` as ``cryosampler train`` reads it: (D, D, D) float32 on ``grid``, the model's frame,
    the renderer's units."""
    to_model = own_placement(reference)
    centre = to_model.inverse().apply(np.zeros(3))
    volumes = []
    for name in files:
        volume, _ = ingest_map(folder / name, grid, reference.coords, reference.atomic_numbers, centre, probes=False,
                               res_nums=reference.res_nums)
        volumes.append(to_model_units(volume, to_model, reference.coords, reference.atomic_numbers, grid)[0])
    return volumes


def mixture_seconds_per_step(examples: list[TrainingExample], steps: int) -> float:
    """Median s/step of ``training.train`` of the command line's default map-space model (G = 2 mixture, eq. 5's
    weight floored at 1, the default encoder, batch 8) on the same maps: the issue's yardstick for stage 1's step."""
    from cryosampler.commands.train import COMPONENTS, WEIGHT_FLOOR
    from cryosampler.model.denoiser import ModelConfig
    from cryosampler.model.diffusion import DiffusionConfig
    from cryosampler.model.encoder import ENCODER_PRESETS
    from cryosampler.training import TrainConfig, train

    config = ModelConfig(encoder=dataclasses.replace(ENCODER_PRESETS["default"], components=COMPONENTS),
                         diffusion=DiffusionConfig(weight_floor=WEIGHT_FLOOR))
    with tempfile.TemporaryDirectory() as tmp:
        train(examples, config, TrainConfig(steps=steps, checkpoint_every=10**6, log_every=10**6), None, Path(tmp),
              progress=False)
        return float(pd.read_csv(Path(tmp) / "train_log.csv")["seconds"].median())


def today() -> dict[str, float]:
    """Today's map-space model on the clean maps (notebook 07's committed tables)."""
    tables = repo_root() / "tables"
    own = pd.read_csv(tables / "own_maps.csv")
    own = dict(zip(own.loc[own["training maps"] == "clean", "measure"], own.loc[own["training maps"] == "clean",
                                                                              "CryoSampler"]))
    validity = pd.read_csv(tables / "own_maps_validity.csv")
    clean = validity[(validity["method"] == "CryoSampler") & (validity["training maps"] == "clean")].iloc[0]
    return {"closest_closed": own["closest sample to the closed end (Å)"],
            "closest_open": own["closest sample to the open end (Å)"],
            "occupancy_closed": own["occupancy of the closed half"],
            "wasserstein_progress": own["Wasserstein to the training maps along the path (Å)"],
            "bioemu_pass": clean["bioemu_pass"], "clashes_per_sample": clean["clashes_per_sample"],
            "readout_4A_mean": own["fit RMSD on 4 Å maps, mean (Å)"],
            "readout_4A_max": own["fit RMSD on 4 Å maps, largest (Å)"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--maps", type=int, default=20, help="training maps (notebook 07's full profile: 20)")
    parser.add_argument("--stage1-steps", type=int, default=AUTOENCODER_TRAIN_PRESETS["default"].steps)
    parser.add_argument("--stage2-steps", type=int, default=LATENT_TRAIN_PRESETS["default"].steps)
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--weights", nargs="+", choices=WEIGHTINGS, default=list(WEIGHTINGS))
    parser.add_argument("--fit-frames", type=int, default=9, help="4 Å maps read out (notebook 07's full profile: 9)")
    parser.add_argument("--compare-steps", type=int, default=10,
                        help="steps of the map-space G = 2 model timed on the same maps (0: skip)")
    parser.add_argument("--seed", type=int, default=0, help="the maps' random stream (notebook 07's: 0)")
    parser.add_argument("--train-seed", type=int, default=None,
                        help="weights, batches, latents and sampling (default: --seed)")
    parser.add_argument("--preset", default="default", choices=sorted(AUTOENCODER_PRESETS))
    parser.add_argument("--out", type=Path, default=repo_root() / "results" / "latent_prototype")
    args = parser.parse_args()
    train_seed = args.seed if args.train_seed is None else args.train_seed
    args.out.mkdir(parents=True, exist_ok=True)
    clock = {}
    start = tic = time.perf_counter()

    # The path, the reference and the clean training maps, as notebook 07 makes them.
    rng = np.random.default_rng(args.seed)
    path = read_adk_path(adk_files())
    frames = path.frames + np.asarray(MAP_FRAME)  # (98, N, 3) Å, the maps' frame
    states = {"closed": frames[0], "open": frames[-1]}
    ends = np.stack(list(states.values()))
    grid = MapGrid()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_pdb(work / "adk_closed_1AKE.pdb", path.topology, path.closed + np.asarray(MAP_FRAME))
        reference = read_structure(work / "adk_closed_1AKE.pdb")
        chosen = draw_frames(len(frames), args.maps, rng)
        griddings = random_griddings(frames[chosen], rng)
        layout = write_map_folder(work / "clean", frames[chosen], reference.atomic_numbers, griddings,
                                  TRAINING_RECIPES["clean"], rng, suffixes=(".mrc", ".map", ".mrc.gz"))
        volumes = ingest_folder(work / "clean", list(layout["map"]), reference, grid)
        fit_frames = np.unique(np.linspace(0, len(frames) - 1, args.fit_frames).round().astype(int))
        fit_rng = np.random.default_rng(args.seed + 1)
        write_map_folder(work / "fit_4A", frames[fit_frames], reference.atomic_numbers,
                         random_griddings(frames[fit_frames], fit_rng), FIT_RECIPES["4 Å"], fit_rng,
                         names=[fit_map_name(f) for f in fit_frames])
        fit_volumes = ingest_folder(work / "fit_4A", [fit_map_name(f) + ".mrc" for f in fit_frames], reference, grid)
    to_model = own_placement(reference)
    back = to_model.inverse()
    protein = featurize(reference, to_model.apply(reference.coords), tokens="residue")
    examples = [TrainingExample(protein, torch.from_numpy(v)) for v in volumes]
    training = frames[chosen]
    nearer_closed = score_ensemble(training, ends).rmsd.argmin(1) == 0  # (M,)
    # 80 % on the open half, shared equally among its maps
    weightings = {"equal": np.ones(len(chosen)),
                  "open80": np.where(nearer_closed, 0.2 / max(nearer_closed.sum(), 1),
                                     0.8 / max((~nearer_closed).sum(), 1))}
    clock["data"] = time.perf_counter() - tic
    print(f"data: {len(chosen)} maps (frames {chosen.tolist()}), {nearer_closed.mean():.0%} nearer the closed end; "
          f"{clock['data']:.0f} s", flush=True)

    # Stage 1, then stage 2 on the frozen latents.
    tic = time.perf_counter()
    ae_config = AUTOENCODER_PRESETS[args.preset]
    stage1 = dataclasses.replace(AUTOENCODER_TRAIN_PRESETS["default"], steps=args.stage1_steps, seed=train_seed)
    autoencoder, log1 = train_autoencoder(examples, ae_config, stage1, grid, progress=True)
    clock["stage1"] = time.perf_counter() - tic
    log1.to_csv(args.out / "stage1_log.csv", index=False)
    torch.save(autoencoder.state_dict(), args.out / "autoencoder.pt")  # for stage-2 experiments without stage 1
    tail = log1.iloc[-50:].mean()
    print(f"stage 1: {args.stage1_steps} steps in {clock['stage1']:.0f} s ({log1['seconds'].median():.2f} s/step); "
          f"last 50 steps: 1 − r {tail['map']:.4f}, residue {tail['residue']:.4f} Å², backbone {tail['backbone']:.4f} "
          f"Å², bond {tail['bond']:.4f} Å², clash {tail['clash']:.3f} Å², KL {tail['kl']:.2f}", flush=True)

    mean, log_var = encode_examples(autoencoder, examples)
    print(f"latents: posterior σ median {float((0.5 * log_var).exp().median()):.3f}, spread of the means per "
          f"dimension {[round(v, 2) for v in mean.std(0).tolist()]}", flush=True)
    before = today()
    rows = []
    for weighting in args.weights:
        weights = weightings[weighting]
        target_closed = float(weights[nearer_closed].sum() / weights.sum())
        tic = time.perf_counter()
        stage2 = dataclasses.replace(LATENT_TRAIN_PRESETS["default"], steps=args.stage2_steps, seed=train_seed)
        prior, log2 = train_latent_diffusion(mean, log_var, LatentDiffusionConfig(latent_dim=ae_config.latent_dim),
                                             stage2, weights=torch.as_tensor(weights))
        clock[f"stage2 {weighting}"] = time.perf_counter() - tic
        log2.to_csv(args.out / f"stage2_log_{weighting}.csv", index=False)
        tic = time.perf_counter()
        ensemble = sample_structures(autoencoder, prior, protein, args.samples,
                                     torch.Generator().manual_seed(train_seed))
        clock[f"sample {weighting}"] = time.perf_counter() - tic
        samples = back.apply(ensemble.coords.astype(np.float64))  # (S, N, 3) Å, the maps' frame
        scores = sampling_scores({weighting: samples}, states, training, {weighting: np.nan},
                                 {weighting: np.nan}).iloc[0]
        validity = sample_validity(samples, reference)
        pd.DataFrame({"progress": score_ensemble(samples, ends).progress()}).to_csv(
            args.out / f"samples_progress_{weighting}.csv", index=False)
        print(f"stage 2 ({weighting} weights): {args.stage2_steps} steps in {clock[f'stage2 {weighting}']:.0f} s, "
              f"loss {log2['loss'].iloc[:100].mean():.3f} → {log2['loss'].iloc[-100:].mean():.3f}; "
              f"{args.samples} samples in {clock[f'sample {weighting}']:.1f} s", flush=True)
        same = weighting == "equal"  # today's model was trained on the maps' own populations
        label = "" if same else ", 80 % weight on the open half"
        rows += [(f"closest sample to the closed end (Å){label}", scores["closest_closed"],
                  before["closest_closed"] if same else np.nan, rmsd(reference.coords, states["closed"])),
                 (f"closest sample to the open end (Å){label}", scores["closest_open"],
                  before["closest_open"] if same else np.nan, rmsd(reference.coords, states["open"])),
                 (f"occupancy of the closed half{label}", scores["occupancy_closed"],
                  before["occupancy_closed"] if same else np.nan, target_closed),
                 (f"W1 to the training maps along the path (Å){label}", scores["wasserstein_progress"],
                  before["wasserstein_progress"] if same else np.nan, np.nan),
                 (f"BioEmu filter pass{label}", validity["bioemu_physical"].mean(), before["bioemu_pass"] if same
                  else np.nan, 1.0),
                 (f"clashes per sample (< 2.2 Å){label}", validity["clashes"].mean(),
                  before["clashes_per_sample"] if same else np.nan, 0.0),
                 (f"bond deviation rms (Å){label}", float(np.sqrt(np.mean(validity["bond_dev_rmsd"] ** 2))), np.nan,
                  0.0)]

    readout = [rmsd(back.apply(read_out_latent(autoencoder, protein, v)[0].astype(np.float64)), truth)
               for v, truth in zip(volumes, training)]
    readout_4a = [rmsd(back.apply(read_out_latent(autoencoder, protein, v)[0].astype(np.float64)), frames[f])
                  for v, f in zip(fit_volumes, fit_frames)]
    static_4a = [rmsd(reference.coords, frames[f]) for f in fit_frames]
    sample_100 = time.perf_counter()
    sample_structures(autoencoder, prior, protein, 100, torch.Generator().manual_seed(train_seed))
    sample_100 = time.perf_counter() - sample_100
    mixture_step = mixture_seconds_per_step(examples, args.compare_steps) if args.compare_steps else np.nan
    rows += [("read-out of the training maps, mean (Å)", np.mean(readout), np.nan,
              np.mean([rmsd(reference.coords, x) for x in training])),
             ("read-out of the training maps, largest (Å)", np.max(readout), np.nan,
              np.max([rmsd(reference.coords, x) for x in training])),
             ("read-out of 4 Å maps, mean (Å)", np.mean(readout_4a), before["readout_4A_mean"], np.mean(static_4a)),
             ("read-out of 4 Å maps, largest (Å)", np.max(readout_4a), before["readout_4A_max"], np.max(static_4a)),
             ("sampling 100 structures (s)", sample_100, np.nan, np.nan),
             ("training step, batch 8 (s, median)", log1["seconds"].median(), mixture_step, np.nan)]
    table = pd.DataFrame(rows, columns=["measure", "latent prototype", "today's map-space model (clean maps)",
                                        "reference, maps or target"])
    table.to_csv(args.out / "latent_prototype.csv", index=False)
    print(table.to_markdown(index=False, floatfmt=".2f"))
    print("wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in clock.items())
          + f"; all {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
