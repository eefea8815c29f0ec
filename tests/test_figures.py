import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from cryosampler.evaluation.figures import (plot_best_rmsd_bars, plot_ca_traces, plot_coverage_curves,
                                 plot_ddim_steps, plot_figure2, plot_loss_curves, plot_mode_displacement,
                                 plot_ensemble_report, plot_precision_curves,
                                 plot_sample_rmsds, plot_state_maps, save_figure)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_save_figure_is_byte_reproducible(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    first = [p.read_bytes() for p in save_figure(fig, tmp_path / "a", "f")]
    second = [p.read_bytes() for p in save_figure(fig, tmp_path / "b", "f")]
    assert first == second and first[0][:4] == b"\x89PNG" and first[1][:4] == b"%PDF"


def test_loss_curves_keep_axis_on_the_curve_when_a_term_starts_at_zero():
    steps = np.arange(1, 101)
    log = pd.DataFrame({"step": steps, "loss": 1.0 / steps, "denoise": 1.0 / steps,
                        "residue": np.r_[0.0, np.full(99, 1e-3)], "backbone": np.r_[0.0, np.full(99, 0.1)]})
    fig = plot_loss_curves(log)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["loss", "denoise", "residue", "backbone"]
    assert fig.axes[2].get_ylim()[0] == pytest.approx(5e-4)  # half the smallest positive value


def test_data_and_sample_figures_have_one_panel_per_protein():
    rng = np.random.default_rng(0)
    maps = {slot: {"A": rng.random((8, 8, 8)), "B": rng.random((8, 8, 8))} for slot in ("P1", "P2")}
    assert len([ax for ax in plot_state_maps(maps, apix=2.0).axes if ax.get_title()]) == 6
    disp = pd.DataFrame({"slot": ["P1"] * 3 + ["P2"] * 3, "residue": [1, 2, 3] * 2, "displacement": rng.random(6)})
    assert len(plot_mode_displacement(disp).axes[0].lines) == 2
    per_sample = pd.DataFrame({"slot": ["P1", "P1", "P2"], "split": ["train", "train", "val"], "seed": 0,
                               "rmsd_A": [0.1, 8.0, 4.0], "rmsd_B": [8.0, 0.1, 4.0]})
    fig = plot_sample_rmsds(per_sample, {"P1": 8.0, "P2": 8.0})
    assert [ax.get_title() for ax in fig.axes] == ["P1 (train)", "P2 (val)"]


def test_figure2_counts_samples_per_method():
    closest = pd.DataFrame({"method": ["Ours", "Ours", "ANM sampling", "ANM sampling"], "state": list("ABAB"),
                            "rmsd": [0.4, 0.4, 1.7, 1.7], "sd": [0.0, 0.0, 0.3, 0.3]})
    trace = np.cumsum(np.ones((10, 3)), axis=0)
    projections = pd.DataFrame({"method": ["Ours"] * 16 + ["ANM sampling"] * 4,
                                "projection": np.r_[np.full(8, 3.9), np.full(8, -3.9), np.zeros(4)]})
    fig = plot_figure2(closest, 4.0, {"A": (trace, trace), "B": (trace, trace)}, projections, (4.0, -4.0), "V")
    hist = next(ax for ax in fig.axes if ax.get_title().startswith("samples along mode 1"))
    labels = [t.get_text() for t in hist.get_legend().get_texts()]
    assert labels == ["Ours (n = 16)", "ANM sampling (n = 4)"]


def test_ddim_steps_figure_draws_each_protein_and_marks_the_chosen_k():
    sweep = pd.DataFrame({"slot": ["a", "a", "v", "v"], "split": ["train", "train", "val", "val"],
                          "steps": [10, 100, 10, 100], "closest_A": [0.5, 0.1, 0.6, 0.4], "closest_B": 0.2,
                          "occupancy_A": 0.5, "seconds": [2.0, 20.0, 2.0, 20.0]})
    fig = plot_ddim_steps(sweep, chosen=10)
    rmsd_panel, _, time_panel = fig.axes
    assert len(rmsd_panel.lines) == 2 * 2 + 1  # A and B per protein, and the marker line
    assert time_panel.lines[0].get_ydata().tolist() == [2.0, 20.0]
    assert rmsd_panel.lines[-1].get_xdata()[0] == 10


def test_precision_curves_draw_each_run_and_the_ratio_to_the_first():
    steps = np.arange(1, 201)
    base = pd.DataFrame({"step": steps, "loss": 1.0 / steps, "denoise": 0.5 / steps, "residue": 0.1 / steps,
                         "backbone": 0.2 / steps})
    doubled = base.assign(**{c: 2 * base[c] for c in ("loss", "denoise", "residue", "backbone")})
    fig = plot_precision_curves({"fp32": base, "bf16": doubled})
    top, bottom = fig.axes[:4], fig.axes[4:]
    assert [len(ax.lines) for ax in top] == [2, 2, 2, 2]
    ratio = bottom[0].lines[0].get_ydata()  # the first line drawn in a ratio panel is bf16 / fp32
    np.testing.assert_allclose(ratio, 2.0)
    plt.close(fig)


def test_domain_motion_figures_draw_each_method_split_and_direction():
    curves = pd.DataFrame([{"split": split, "method": method, "threshold": r, "coverage": min(1.0, r / 5)}
                           for split in ("train", "held out") for method in ("CryoSampler", "ANM")
                           for r in np.linspace(0, 10, 11)])
    fig = plot_coverage_curves(curves, 3.0)
    assert [ax.get_title() for ax in fig.axes] == ["training proteins", "held out proteins"]
    assert all(len(ax.get_lines()) == 3 for ax in fig.axes)  # two methods and the success line
    rows = pd.DataFrame([{"protein": p, "split": s, "reference": "1ABC_A", "target": "2XYZ_B", "method": m,
                          "best_rmsd": 2.0}
                         for p, s in (("P1", "train"), ("P2", "held out")) for m in ("CryoSampler", "ANM", "static")])
    fig = plot_best_rmsd_bars(rows, 3.0)
    assert len(fig.axes[0].patches) == 2 * 3 + 1  # one bar per direction and method, and the held-out band
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["P1\n1ABC→2XYZ", "P2\n1ABC→2XYZ"]


def test_ca_traces_share_one_frame_and_colour_scale():
    trace = np.cumsum(np.random.default_rng(0).normal(size=(20, 3)), axis=0) * 3.8
    moved = trace + [10.0, 0, 0]
    fig = plot_ca_traces({"reference": trace, "moved": moved},
                         {"reference": np.zeros(20), "moved": np.full(20, 10.0)}, "title")
    panels = fig.axes[:2]
    assert panels[0].get_xlim() == panels[1].get_xlim() and panels[0].get_ylim() == panels[1].get_ylim()
    assert [c.get_clim() for ax in panels for c in ax.collections] == [(0, 10.0), (0, 10.0)]


def test_ensemble_report_figure_has_its_three_panels_and_marks_the_states():
    from cryosampler.evaluation.ensemble_analysis import ensemble_report
    from conftest import make_helix

    structure = make_helix(12)
    rng = np.random.default_rng(0)
    samples = structure.coords + rng.normal(scale=0.5, size=(6, structure.n_atoms, 3))
    states = {"A": structure.coords[structure.backbone_index[:, 1]] + 1.0}
    report = ensemble_report(samples, structure, states, np.array(list("CHHHHHHHEEEC")))
    fig = plot_ensemble_report(report)
    bar, line, pca = fig.axes[:3]
    assert [t.get_text() for t in bar.get_legend().get_texts()] == ["helix", "strand"]
    assert line.get_ylabel() == "CA RMSF (Å)" and line.get_xlim() == (0.5, 12.5)
    assert pca.get_xlabel().startswith("PC1 (Å; ") and [t.get_text() for t in pca.texts] == ["A"]
    hist = next(ax for ax in fig.axes if ax.get_ylabel() == "samples")
    assert sum(patch.get_height() for patch in hist.patches) == 6
    # Without DSSP the bar says so instead.
    bare = plot_ensemble_report(ensemble_report(samples, structure))
    assert [t.get_text() for t in bare.axes[0].texts] == ["secondary structure not available"]
