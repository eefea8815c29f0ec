"""Every figure of the project, one function each; notebooks call these and save with :func:`save_figure`."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

__all__ = ["plot_particles_and_classes", "save_figure", "write_figure", "plot_ensemble_report", "plot_state_maps", "plot_mode_displacement",
           "plot_loss_curves", "plot_sample_rmsds",
           "plot_figure2", "plot_ddim_steps", "plot_precision_curves", "plot_own_maps", "plot_path_progress",
           "plot_ingested_maps", "plot_coverage_curves", "plot_best_rmsd_bars", "plot_ca_traces"]


def save_figure(fig: plt.Figure, directory: Path, name: str) -> list[Path]:
    """Save ``fig`` as ``directory/name.png`` (200 dpi) and ``.pdf``; returns the two paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / f"{name}.png", directory / f"{name}.pdf"]
    for path in paths:
        write_figure(fig, path, path.suffix[1:])
    return paths


def write_figure(fig: plt.Figure, path: Path, fmt: str) -> None:
    """Write ``fig`` to ``path`` (any name: a temporary one too) as ``fmt`` "png" (200 dpi) or "pdf"."""
    if fmt == "png":
        fig.savefig(path, format="png", dpi=200, bbox_inches="tight")
    else:
        # No creation date in the PDF, so that an unchanged figure is an unchanged file in git.
        fig.savefig(path, format="pdf", bbox_inches="tight", metadata={"CreationDate": None})


def plot_state_maps(maps: dict[str, dict[str, np.ndarray]], apix: float, labels: dict[str, str] | None = None
                    ) -> plt.Figure:
    """Projections along z of each protein's state-A and state-B maps and their difference.

    maps: slot → {"A": (D, D, D), "B": (D, D, D)} densities, axes (x, y, z); apix in Å.
    """
    slots = list(maps)
    fig, axes = plt.subplots(len(slots), 3, figsize=(7.5, 2.4 * len(slots)), squeeze=False,
                             constrained_layout=True)
    for row, slot in zip(axes, slots):
        a, b = maps[slot]["A"].sum(axis=2), maps[slot]["B"].sum(axis=2)  # (D, D) over (x, y)
        half = a.shape[0] * apix / 2
        extent = (-half, half, -half, half)
        vmax = max(a.max(), b.max())
        for ax, img, title in ((row[0], a, "state A"), (row[1], b, "state B")):
            ax.imshow(img.T, origin="lower", extent=extent, cmap="magma", vmin=0, vmax=vmax)
            ax.set_title(f"{(labels or {}).get(slot, slot)}: {title}", fontsize=9)
        diff = a - b
        lim = np.abs(diff).max()
        im = row[2].imshow(diff.T, origin="lower", extent=extent, cmap="RdBu_r", vmin=-lim, vmax=lim)
        row[2].set_title("A − B", fontsize=9)
        fig.colorbar(im, ax=row[2], shrink=0.8, label="projected density")
        for ax in row:
            ax.set_xlabel("x (Å)", fontsize=8)
            ax.set_ylabel("y (Å)", fontsize=8)
            ax.tick_params(labelsize=7)
    fig.suptitle("Simulated maps (projection along z, 8 Å resolution, 2 Å voxels)", fontsize=10)
    return fig


def plot_mode_displacement(displacements: pd.DataFrame) -> plt.Figure:
    """Per-residue CA displacement of state A from the reference, one line per protein.

    displacements: columns ``slot``, ``residue``, ``displacement`` (Å).
    """
    fig, ax = plt.subplots(figsize=(7.0, 3.0), constrained_layout=True)
    for slot, group in displacements.groupby("slot", sort=False):
        ax.plot(group["residue"], group["displacement"], label=slot, lw=1.2)
    ax.axvspan(65, 92, color="0.9", zorder=0, label="central helix (65–92)")
    ax.set_xlabel("residue number")
    ax.set_ylabel("CA displacement, ref → A (Å)")
    ax.set_title("ANM mode 1 (extended to all heavy atoms): per-residue motion")
    ax.legend(fontsize=7, ncol=7, loc="upper center", bbox_to_anchor=(0.5, -0.22), frameon=False)
    return fig


def plot_loss_curves(log: pd.DataFrame) -> plt.Figure:
    """Training loss terms (``train_log.csv``) against step, log scale, with a running mean."""
    terms = [c for c in ("loss", "denoise", "residue", "backbone") if c in log]
    fig, axes = plt.subplots(1, len(terms), figsize=(3.0 * len(terms), 2.8), constrained_layout=True)
    window = max(1, len(log) // 50)
    for ax, term in zip(np.atleast_1d(axes), terms):
        ax.plot(log["step"], log[term], color="0.75", lw=0.6)
        ax.plot(log["step"], log[term].rolling(window, min_periods=1).mean(), color="C0", lw=1.2)
        ax.set_yscale("log")
        # The structural terms are exactly 0 at step 0 (zero offsets); keep the axis on the curve instead.
        positive = log[term][log[term] > 0]
        if len(positive):
            ax.set_ylim(bottom=0.5 * positive.quantile(0.01))
        ax.set_xlabel("step")
        ax.set_title(term)
    return fig


def plot_sample_rmsds(per_sample: pd.DataFrame, rmsd_ab: dict[str, float]) -> plt.Figure:
    """Each sample's RMSD to state A against its RMSD to state B, one panel per protein.

    per_sample: columns slot, split, seed, rmsd_A, rmsd_B (Å); rmsd_ab: slot → RMSD between the states.
    The true states sit at (0, d_AB) and (d_AB, 0); samples near the axes are near a state.
    """
    slots = list(dict.fromkeys(per_sample["slot"]))
    fig, axes = plt.subplots(1, len(slots), figsize=(2.6 * len(slots), 2.8), squeeze=False,
                             constrained_layout=True)
    for ax, slot in zip(axes[0], slots):
        group = per_sample[per_sample["slot"] == slot]
        d = rmsd_ab[slot]
        ax.scatter(group["rmsd_A"], group["rmsd_B"], s=12, alpha=0.7, label="samples")
        ax.scatter([0, d], [d, 0], marker="*", s=120, color="C3", label="true states")
        ax.set_xlim(0, 1.15 * max(d, group[["rmsd_A", "rmsd_B"]].max().max()))
        ax.set_ylim(ax.get_xlim())
        ax.set_aspect("equal")
        ax.set_title(f"{slot} ({group['split'].iloc[0]})", fontsize=9)
        ax.set_xlabel("RMSD to A (Å)", fontsize=8)
        ax.set_ylabel("RMSD to B (Å)", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].legend(fontsize=7)
    return fig


def plot_figure2(closest: pd.DataFrame, static_rmsd: float, traces: dict[str, tuple[np.ndarray, np.ndarray]],
                 projections: pd.DataFrame, state_positions: tuple[float, float], protein: str) -> plt.Figure:
    """Figure 2 for one validation protein.

    closest: columns method, state ("A"/"B"), rmsd, sd (Å) — closest-sample RMSD, mean ± sd over seeds.
    static_rmsd: RMSD (Å) of the reference to the states (the static baseline).
    traces: state → (true CA trace (L, 3), closest generated sample's CA trace (L, 3)), Å, common frame.
    projections: columns method, projection (Å) — every sample's displacement along mode 1, per-atom RMS scale.
    state_positions: (A, B) positions of the true states on mode 1 (Å, same scale).
    """
    fig = plt.figure(figsize=(10.0, 6.2), constrained_layout=True)
    grid = fig.add_gridspec(2, 3)
    bars = fig.add_subplot(grid[0, 0])
    methods = list(dict.fromkeys(closest["method"]))
    x = np.arange(len(methods))
    for k, state in enumerate(("A", "B")):
        sub = closest[closest["state"] == state].set_index("method").reindex(methods)
        bars.bar(x + (k - 0.5) * 0.38, sub["rmsd"], 0.38, yerr=sub["sd"].fillna(0), capsize=2,
                 label=f"state {state}", color=("C0", "C1")[k])
    bars.axhline(static_rmsd, color="0.3", ls="--", lw=1, label=f"static ({static_rmsd:.2f} Å)")
    bars.set_xticks(x, methods, rotation=30, ha="right", fontsize=8)
    bars.set_ylabel("closest-sample RMSD (Å)")
    bars.set_title(f"{protein}: closest sample per state", fontsize=10)
    bars.legend(fontsize=7)

    for row, state in enumerate(("A", "B")):
        true_ca, sample_ca = traces[state]
        for col, (i, j, name) in enumerate(((0, 1, "xy"), (0, 2, "xz"))):
            ax = fig.add_subplot(grid[row, col + 1])
            ax.plot(true_ca[:, i], true_ca[:, j], color="0.2", lw=2.2, label=f"true state {state}")
            ax.plot(sample_ca[:, i], sample_ca[:, j], color=("C0", "C1")[row], lw=1.0,
                    label="closest sample (ours)")
            ax.set_aspect("equal")
            ax.set_xlabel(f"{name[0]} (Å)", fontsize=8)
            ax.set_ylabel(f"{name[1]} (Å)", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.set_title(f"state {state}, CA trace, {name} view", fontsize=9)
            if col == 0:
                ax.legend(fontsize=7, loc="lower left")

    hist = fig.add_subplot(grid[1, 0])
    bins = np.linspace(min(state_positions) * 1.4, max(state_positions) * 1.4, 29)
    for k, (method, group) in enumerate(projections.groupby("method", sort=False)):
        hist.hist(np.clip(group["projection"], bins[0], bins[-1]), bins=bins, alpha=0.55,
                  label=f"{method} (n = {len(group)})",
                  color=f"C{k + 2}" if method != "Ours" else "C0")
    for label, position in zip("AB", state_positions):
        hist.axvline(position, color="C3", lw=1.5)
        hist.text(position, hist.get_ylim()[1] * 0.95, f" {label}", color="C3", fontsize=9, va="top")
    hist.axvline(0, color="0.3", ls="--", lw=1)
    hist.set_xlabel("displacement along mode 1 (Å, RMS over atoms)")
    hist.set_ylabel("samples")
    hist.set_title("samples along mode 1 (reference at 0; all seeds, clipped to range)", fontsize=9)
    hist.legend(fontsize=7)
    return fig


def plot_ddim_steps(sweep: pd.DataFrame, chosen: int) -> plt.Figure:
    """Closest-sample RMSD, occupancy of state A and time per ensemble against the DDIM step count K.

    sweep: one row per (slot, split, steps), columns closest_A, closest_B (Å), occupancy_A, seconds (notebook
    03's step sweep); ``chosen``: the K to mark (the smallest that loses nothing).
    """
    fig, axes = plt.subplots(1, 3, figsize=(10.5, 3.0), constrained_layout=True)
    for k, (slot, group) in enumerate(sweep.groupby("slot", sort=False)):
        group = group.sort_values("steps")
        label = f"{slot} ({group['split'].iloc[0]})"
        for state, style in (("A", "-"), ("B", "--")):
            axes[0].plot(group["steps"], group[f"closest_{state}"], style, marker="o", ms=3, color=f"C{k}",
                         label=label if state == "A" else None)
        axes[1].plot(group["steps"], group["occupancy_A"], marker="o", ms=3, color=f"C{k}")
    seconds = sweep.groupby("steps")["seconds"].mean()
    axes[2].plot(seconds.index, seconds.values, marker="o", color="k")
    titles = ("closest-sample RMSD (Å; A solid, B dashed)", "occupancy of state A", "seconds per ensemble")
    for ax, title in zip(axes, titles):
        ax.axvline(chosen, color="0.6", lw=1, ls=":")
        ax.set_xscale("log")
        ax.set_xticks(sorted(sweep["steps"].unique()), labels=[str(k) for k in sorted(sweep["steps"].unique())])
        ax.minorticks_off()
        ax.set_xlabel("DDIM steps K")
        ax.set_title(title, fontsize=9)
    axes[1].set_ylim(-0.05, 1.05)
    axes[2].set_ylim(bottom=0)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"Dotted: K = {chosen}, the fewest DDIM steps that lose nothing against K = "
                 f"{sweep['steps'].max()}", fontsize=9)
    return fig


def plot_precision_curves(logs: dict[str, pd.DataFrame]) -> plt.Figure:
    """Loss terms of runs that differ in one setting (e.g. fp32 and bf16, same seed) on shared axes, as a
    running mean over 2 % of the steps, and the ratio of each run's running mean to the first run's.

    logs: label → ``train_log.csv`` frame (columns step, loss, denoise, residue, backbone).
    """
    terms = [c for c in ("loss", "denoise", "residue", "backbone") if all(c in log for log in logs.values())]
    fig, axes = plt.subplots(2, len(terms), figsize=(3.0 * len(terms), 4.6), sharex=True, squeeze=False,
                             height_ratios=(2, 1), constrained_layout=True)
    smoothed = {label: log.set_index("step")[terms].rolling(max(1, len(log) // 50), min_periods=1).mean()
                for label, log in logs.items()}
    first = next(iter(smoothed))
    for j, term in enumerate(terms):
        for k, (label, curve) in enumerate(smoothed.items()):
            axes[0, j].plot(curve.index, curve[term], color=f"C{k}", lw=1.1, label=label)
            if label != first:
                ratio = (curve[term] / smoothed[first][term]).dropna()
                axes[1, j].plot(ratio.index, ratio.values, color=f"C{k}", lw=1.0)
        axes[0, j].set_yscale("log")
        # As plot_loss_curves: the structural terms start at exactly 0; keep the axis on the curves.
        positive = pd.concat([curve[term] for curve in smoothed.values()])
        positive = positive[positive > 0]
        if len(positive):
            axes[0, j].set_ylim(bottom=0.5 * positive.quantile(0.01))
        axes[0, j].set_title(term)
        axes[1, j].axhline(1.0, color="0.6", lw=0.8, ls=":")
        axes[1, j].set_xlabel("step")
    axes[1, 0].set_ylabel(f"ratio to {first}")
    axes[0, 0].legend(fontsize=7)
    return fig


def plot_own_maps(sampling: pd.DataFrame, fits: pd.DataFrame, static: dict[str, float]) -> plt.Figure:
    """Notebook 07: what a model trained on each kind of map samples, and how well it reads out single maps.

    sampling: one row per training condition (column ``training``) with ``closest_<state>`` (Å) for each state
    of ``static``; fits: one row per fitted map with ``training``, ``fit_maps`` (e.g. "4 Å"), ``rmsd_reference``
    (the rigid reference's RMSD to the map's true structure, Å) and ``rmsd_fitted`` (Å); static: state →
    the reference's own RMSD to it (Å).
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(10.5, 4.0), constrained_layout=True)
    conditions = list(sampling["training"])
    x = np.arange(len(conditions))
    width = 0.8 / len(static)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (state, rigid) in enumerate(static.items()):
        left.bar(x + (k - (len(static) - 1) / 2) * width, sampling[f"closest_{state}"], width, color=colors[k],
                 label=f"closest sample to {state}")
        left.axhline(rigid, color=colors[k], ls="--", lw=1, label=f"reference to {state}")
    left.set_xticks(x, conditions, fontsize=8)
    left.set_xlabel("maps trained on")
    left.set_ylabel("heavy-atom RMSD (Å)")
    left.set_title("Sampling: closest sample to each end state", fontsize=10)
    left.legend(fontsize=7)
    styles = ["-", "--", ":", "-."]
    for k, (name, group) in enumerate(fits.groupby("training", sort=False)):
        for j, (maps, rows) in enumerate(group.groupby("fit_maps", sort=False)):
            rows = rows.sort_values("rmsd_reference")
            right.plot(rows["rmsd_reference"], rows["rmsd_fitted"], styles[j % len(styles)], marker="o", ms=3,
                       color=colors[k], label=f"trained on {name}, {maps} maps")
    top = float(fits["rmsd_reference"].max())
    right.plot([0, top], [0, top], color="grey", lw=1, label="rigid reference")
    right.set_xlabel("reference to the map's true structure (Å)")
    right.set_ylabel("fitted model to the true structure (Å)")
    right.set_title("Read-out of single maps along the path (cryosampler fit)", fontsize=10)
    right.legend(fontsize=7)
    return fig


def plot_path_progress(progress: pd.DataFrame, sampling: pd.DataFrame, ends: tuple[float, float],
                       truth: str = "training maps") -> plt.Figure:
    """Notebooks 07 and 08: where along the path the samples of each model lie, beside the true structures.

    progress: ``user_maps.progress_table`` (columns source, progress in Å; sources "training maps", "reference"
    and one per model); sampling: ``user_maps.sampling_scores`` (columns training, wasserstein_progress, Å);
    ends: (closed, open) progress of the path's two ends (Å), marked; truth: the legend's name of the true
    structures (the rows of source "training maps").
    """
    models = list(sampling["training"])
    fig, axes = plt.subplots(1, len(models), figsize=(3.6 * len(models), 3.0), squeeze=False, sharey=True,
                             constrained_layout=True)
    values = progress["progress"].to_numpy()
    edges = np.linspace(min(values.min(), *ends) - 0.5, max(values.max(), *ends) + 0.5, 31)
    training = progress[progress["source"] == "training maps"]["progress"]
    reference = float(progress[progress["source"] == "reference"]["progress"].iloc[0])
    color = plt.rcParams["axes.prop_cycle"].by_key()["color"][0]
    for ax, row in zip(axes[0], sampling.itertuples()):
        samples = progress[progress["source"] == row.training]["progress"]
        ax.hist(training, bins=edges, density=True, color="0.75", label=f"{truth} ({len(training)})")
        ax.hist(samples, bins=edges, density=True, histtype="step", lw=2, color=color,
                label=f"samples ({len(samples)})")
        ax.axvline(reference, color="k", ls="--", lw=1, label="reference")
        for end, name in zip(ends, ("closed", "open")):
            ax.axvline(end, color="0.4", ls=":", lw=1)
            ax.text(end, 1.0, name, transform=ax.get_xaxis_transform(), ha="center", va="bottom", fontsize=7)
        ax.set_title(f"trained on {row.training}: W1 {row.wasserstein_progress:.2f} Å", fontsize=9, pad=12)
        ax.set_xlabel("RMSD to closed − RMSD to open (Å)", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0, 0].set_ylabel("density", fontsize=8)
    axes[0, 0].legend(fontsize=7)
    return fig


def plot_ingested_maps(volumes: dict[str, np.ndarray], apix: float, title: str) -> plt.Figure:
    """Central slices (z = D//2) of maps on one grid, side by side, each on its own colour scale.

    volumes: label → (D, D, D) density, axes (x, y, z); apix in Å.
    """
    fig, axes = plt.subplots(1, len(volumes), figsize=(3.0 * len(volumes), 3.0), squeeze=False,
                             constrained_layout=True)
    for ax, (label, volume) in zip(axes[0], volumes.items()):
        half = volume.shape[0] * apix / 2
        ax.imshow(volume[:, :, volume.shape[2] // 2].T, origin="lower", cmap="magma",
                  extent=(-half, half, -half, half))
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("x (Å)", fontsize=8)
        ax.set_ylabel("y (Å)", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle(title, fontsize=10)
    return fig


def plot_coverage_curves(curves: pd.DataFrame, success: float) -> plt.Figure:
    """Notebook 06: coverage against the RMSD threshold, one panel per split, one line per method.

    curves: columns split, method, threshold (Å), coverage (0–1); success: the success threshold (Å), marked.
    """
    splits = list(dict.fromkeys(curves["split"]))
    fig, axes = plt.subplots(1, len(splits), figsize=(4.6 * len(splits), 3.6), sharey=True, constrained_layout=True)
    for ax, split in zip(np.atleast_1d(axes), splits):
        for k, (method, rows) in enumerate(curves[curves["split"] == split].groupby("method", sort=False)):
            # Thinner and dashed in turn: a method whose curve equals another's (e.g. samples that stay at the
            # reference) stays visible on top of it.
            ax.step(rows["threshold"], rows["coverage"], where="post", label=method, lw=max(0.8, 2.5 - 0.7 * k),
                    ls=["-", "--", ":", "-."][k % 4])
        ax.axvline(success, color="grey", ls=":", lw=1)
        ax.set_xlabel("RMSD threshold r (Å, backbone)")
        ax.set_title(f"{'training' if split == 'train' else split} proteins", fontsize=10)
        ax.set_ylim(-0.02, 1.02)
    np.atleast_1d(axes)[0].set_ylabel("coverage (states with a sample below r)")
    np.atleast_1d(axes)[0].legend(fontsize=8)
    return fig


def plot_best_rmsd_bars(rows: pd.DataFrame, success: float) -> plt.Figure:
    """Notebook 06: best-sample RMSD per protein direction and method.

    rows: columns protein, split, reference, target, method, best_rmsd (Å); one bar group per
    (protein, reference → target), labelled by PDB IDs, one bar per method; success (Å) drawn as a line.
    """
    rows = rows.assign(label=rows["protein"] + "\n" + rows["reference"].str.split("_").str[0] + "→"
                       + rows["target"].str.split("_").str[0])
    labels = list(dict.fromkeys(rows["label"]))
    methods = list(dict.fromkeys(rows["method"]))
    x = np.arange(len(labels))
    width = 0.8 / len(methods)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.75 * len(labels) + 1.5), 3.8), constrained_layout=True)
    for k, method in enumerate(methods):
        values = rows[rows["method"] == method].set_index("label")["best_rmsd"].reindex(labels)
        ax.bar(x + (k - (len(methods) - 1) / 2) * width, values, width, label=method)
    held_out = [i for i, label in enumerate(labels) if (rows[rows["label"] == label]["split"] == "held out").any()]
    for n, i in enumerate(held_out):  # one band per held-out group, wherever it stands
        ax.axvspan(i - 0.5, i + 0.5, color="0.92", zorder=0, lw=0, label="held out" if n == 0 else None)
    ax.axhline(success, color="grey", ls=":", lw=1)
    ax.set_xticks(x, labels, fontsize=7, rotation=60, ha="right", rotation_mode="anchor")
    ax.set_xlim(-0.5, len(labels) - 0.5)
    ax.set_ylabel("best-sample RMSD (Å, backbone)")
    ax.legend(fontsize=7, ncol=len(methods) + 1)
    return fig


def plot_ca_traces(traces: dict[str, np.ndarray], displacement: dict[str, np.ndarray], title: str) -> plt.Figure:
    """CA traces in one shared frame, projected on the first panel's two principal axes, coloured by each
    residue's displacement from the first (the reference).

    traces: name → (L, 3) Å CA coordinates, already superposed, same residues in the same order;
    displacement: name → (L,) Å (the first panel's may be zeros). One colour scale for all panels.
    """
    from matplotlib.collections import LineCollection

    names = list(traces)
    first = traces[names[0]]
    _, _, axes_t = np.linalg.svd(first - first.mean(0), full_matrices=False)
    top = max(float(np.max(d)) for d in displacement.values()) or 1.0
    fig, axs = plt.subplots(1, len(names), figsize=(3.6 * len(names), 3.8), constrained_layout=True)
    projected = {name: (traces[name] - first.mean(0)) @ axes_t[:2].T for name in names}  # (L, 2) Å each
    every = np.concatenate(list(projected.values()))
    for ax, name in zip(np.atleast_1d(axs), names):
        xy = projected[name]
        segments = np.stack([xy[:-1], xy[1:]], axis=1)
        lines = LineCollection(segments, cmap="viridis", norm=plt.Normalize(0, top), linewidths=2)
        lines.set_array(0.5 * (displacement[name][:-1] + displacement[name][1:]))
        ax.add_collection(lines)
        ax.set_xlim(every[:, 0].min() - 3, every[:, 0].max() + 3)  # one scale: the panels compare
        ax.set_ylim(every[:, 1].min() - 3, every[:, 1].max() + 3)
        ax.set_aspect("equal")
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(lines, ax=axs, shrink=0.8, label="displacement from the reference (Å)")
    fig.suptitle(title, fontsize=10)
    return fig


def plot_denoiser_diagnostic(summary: pd.DataFrame, trajectory: pd.DataFrame, target: float) -> plt.Figure:
    """Issue 19's diagnostic (benchmarks/ideal_denoiser.py): which denoiser's DDIM reaches state j, and where along
    the learned sampler's path its output leaves the ideal denoiser's.

    summary: columns protein, variant, best_rmsd_j (Å), one row per (protein, variant), variants in plotting
    order; trajectory: columns protein, t, coordinate_learned, coordinate_ideal (0 = state i, 1 = state j; means
    over samples of the learned run); target: the aim (Å), drawn as a line.
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8), constrained_layout=True,
                                      gridspec_kw={"width_ratios": [1.4, 1]})
    variants = list(dict.fromkeys(summary["variant"]))
    proteins = list(dict.fromkeys(summary["protein"]))
    for k, protein in enumerate(proteins):
        rows = summary[summary["protein"] == protein].set_index("variant").loc[variants]
        x = np.arange(len(variants)) + (k - (len(proteins) - 1) / 2) * 0.08
        left.plot(x, rows["best_rmsd_j"], "o-", ms=4, lw=0.8, label=protein)
    left.axhline(target, color="grey", ls=":", lw=1)
    left.set_xticks(np.arange(len(variants)), variants, rotation=30, ha="right", fontsize=8)
    left.set_ylabel("closest sample to state j (Å, backbone)")
    left.set_title("DDIM from noise with each denoiser (16 samples, same seeds)", fontsize=10)
    left.legend(fontsize=7, ncol=2)
    for k, (protein, rows) in enumerate(trajectory.groupby("protein", sort=False)):
        color = f"C{k}"
        right.plot(rows["t"], rows["coordinate_learned"], color=color, lw=1.2, label=protein)
        right.plot(rows["t"], rows["coordinate_ideal"], color=color, lw=1, ls="--")
    right.axhline(0.5, color="grey", ls=":", lw=1)
    right.invert_xaxis()
    right.set_xlabel("diffusion time t (sampling runs from 1 to 0, left to right)")
    right.set_ylabel("denoised map between states (0 = i, 1 = j)")
    right.set_title("learned v̂₀ (solid) and D*(v_t) (dashed) on the learned run", fontsize=10)
    return fig


def _runs(codes: np.ndarray, residues: np.ndarray, code: str) -> list[tuple[float, float]]:
    """(start, width) in residue numbers of each run of consecutive residues with ``code``, for broken_barh."""
    runs = []
    for k in np.flatnonzero(codes == code):
        if runs and residues[k] == runs[-1][1] + 1 and codes[k - 1] == code:
            runs[-1][1] = residues[k]
        else:
            runs.append([residues[k], residues[k]])
    return [(first - 0.5, last - first + 1.0) for first, last in runs]


def plot_ensemble_report(report) -> plt.Figure:
    """``cryosampler report``'s figure of an ensemble beside its reference
    (:class:`~cryosampler.evaluation.ensemble_analysis.EnsembleReport`): the CA RMSF along the sequence under the
    reference's secondary structure (DSSP; helices and strands also shaded behind the curve); the samples on their
    first two principal components, coloured by RMSD to the reference, with the reference and the known states
    marked; and the histogram of the samples' RMSD to the reference."""
    from cryosampler.evaluation.ensemble_analysis import SECONDARY_NAMES

    residues, rmsf, r = report.residues, report.rmsf, report.rmsd_reference
    colors = {"H": "tab:red", "E": "goldenrod"}
    fig = plt.figure(figsize=(10.0, 7.0), constrained_layout=True)
    grid = fig.add_gridspec(3, 2, height_ratios=(0.12, 1.0, 1.45))
    bar = fig.add_subplot(grid[0, :])
    line = fig.add_subplot(grid[1, :], sharex=bar)

    # RMSF, broken at gaps in the residue numbering.
    gaps = np.flatnonzero(np.diff(residues) > 1) + 1
    for x, y in zip(np.split(residues, gaps), np.split(rmsf, gaps)):
        line.fill_between(x, 0, y, color="0.85", alpha=0.7, lw=0)
        line.plot(x, y, color="0.15", lw=1.2, marker="o" if len(residues) <= 60 else None, ms=2.5)
    line.set_xlim(residues.min() - 0.5, residues.max() + 0.5)
    line.set_ylim(0, 1.1 * rmsf.max() if rmsf.max() > 0 else 1.0)
    line.set_xlabel("residue number")
    line.set_ylabel("CA RMSF (Å)")
    bar.set_yticks([])
    bar.tick_params(labelbottom=False, bottom=False)
    for side in ("top", "right", "left"):
        bar.spines[side].set_visible(False)
    if report.secondary is None:
        bar.text(0.5, 0.5, "secondary structure not available", transform=bar.transAxes, ha="center", va="center",
                 fontsize=8, color="0.4")
    else:
        for code, color in colors.items():
            runs = _runs(report.secondary, residues, code)
            bar.broken_barh(runs, (0.1, 0.8), color=color, label=SECONDARY_NAMES[code])
            for start, width in runs:
                line.axvspan(start, start + width, color=color, alpha=0.12, lw=0, zorder=0)
        bar.set_ylim(0, 1)
        bar.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7, frameon=False)
    bar.set_title(f"{report.name}: CA fluctuation about the ensemble's mean after superposition on the reference "
                  f"(secondary structure of the reference, DSSP)", fontsize=9)

    pca = fig.add_subplot(grid[2, 0])
    pcs = report.pcs
    points = pca.scatter(pcs.samples[:, 0], pcs.samples[:, 1], c=r, cmap="viridis", s=22, alpha=0.85,
                         edgecolors="none", label=f"samples ({len(r)})")
    fig.colorbar(points, ax=pca, shrink=0.85, pad=0.01, label="RMSD to the reference (Å)")
    pca.scatter(*pcs.reference, marker="P", s=90, color="k", label="reference", zorder=3)
    if len(pcs.states):
        pca.scatter(pcs.states[:, 0], pcs.states[:, 1], marker="*", s=170, color="tab:red", edgecolors="k",
                    linewidths=0.5, label="known states", zorder=4)
        for (x, y), name in zip(pcs.states, report.state_names):
            pca.annotate(name, (x, y), xytext=(5, 5), textcoords="offset points", fontsize=8, color="tab:red")
    pca.margins(0.12)
    pca.set_xlabel(f"PC1 (Å; {pcs.explained[0]:.0%} of the variance)")
    pca.set_ylabel(f"PC2 (Å; {pcs.explained[1]:.0%} of the variance)")
    pca.set_title("samples on the principal components of their CA positions", fontsize=9)
    pca.legend(fontsize=7, loc="best")

    hist = fig.add_subplot(grid[2, 1])
    hist.hist(r, bins=int(np.clip(2 * np.ceil(np.sqrt(len(r))), 6, 30)), color="tab:blue", alpha=0.75,
              edgecolor="white")
    hist.axvline(np.median(r), color="0.2", ls="--", lw=1, label=f"median {np.median(r):.2f} Å")
    hist.set_xlabel("RMSD to the reference (Å, heavy atoms, after superposition)")
    hist.set_ylabel("samples")
    hist.set_title("distance of the samples from the reference", fontsize=9)
    hist.legend(fontsize=7)
    return fig


def plot_particles_and_classes(particles: np.ndarray, volumes: list[np.ndarray], models: list[np.ndarray],
                               apix: float, origin, titles: list[str]) -> plt.Figure:
    """Notebook 08: a few particle images, then each class map (projected along z) with its fitted model's CA trace.

    particles: (P, D, D) images [y, x]; volumes: class maps (X, Y, Z), axes (x, y, z), voxel (0, 0, 0) at
    ``origin`` (3,) Å, voxel size ``apix`` Å; models: (n, 3) Å, the fitted model's CA atoms in the maps' frame,
    one per map; titles: one per map.
    """
    n_cols = max(len(particles), min(len(volumes), 5))
    n_rows = 1 + -(-len(volumes) // n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.9 * n_cols, 2.0 * n_rows), squeeze=False,
                             constrained_layout=True)
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax, image in zip(axes[0], particles):
        ax.imshow(image, origin="lower", cmap="gray")
    axes[0, 0].set_title("particles (SNR as simulated)", fontsize=8, loc="left")
    for ax, volume, ca, title in zip(axes[1:].ravel(), volumes, models, titles):
        ax.imshow(volume.sum(axis=2).T, origin="lower", cmap="magma")
        pixels = (np.asarray(ca) - np.asarray(origin)) / apix
        ax.plot(pixels[:, 0], pixels[:, 1], color="c", lw=0.6)
        ax.set_title(title, fontsize=7)
    return fig
