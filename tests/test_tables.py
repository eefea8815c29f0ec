import numpy as np
import pandas as pd
import pytest

from cryosampler.evaluation.tables import (PAPER_TABLE1, SD_NOTE, closest_by_method, comparison_markdown, comparison_table,
                                ddim_steps_table, ensemble_metrics_markdown,
                                ensemble_metrics_table, mean_sd_cell, sampling_markdown, sampling_table, save_table,
                                table1, table1_caption, table1_markdown)

SD = np.std([2.0, 2.2], ddof=1)  # sample sd of two seeds 0.2 apart: 0.1414


def runs_frame():
    """Ours on two train proteins and one val protein, two seeds; Static with one seed."""
    rows = []
    for seed, shift in ((0, 0.0), (1, 0.2)):
        rows += [
            {"method": "Ours", "slot": "P1", "split": "train", "seed": seed, "closest_A": 1.0 + shift, "closest_B": 2.0},
            {"method": "Ours", "slot": "P2", "split": "train", "seed": seed, "closest_A": 3.0 + shift, "closest_B": 4.0},
            {"method": "Ours", "slot": "V", "split": "val", "seed": seed, "closest_A": 5.0, "closest_B": 6.0 + shift},
        ]
    rows.append({"method": "Static", "slot": "P1", "split": "train", "seed": 0, "closest_A": 4.0, "closest_B": 4.0})
    return pd.DataFrame(rows)


def test_table1_means_over_proteins_then_seeds():
    t = table1(runs_frame()).set_index(["method", "source"])
    ours = t.loc[("Ours", "measured")]
    # per seed: train A = mean(1, 3) = 2.0, then mean(1.2, 3.2) = 2.2 → 2.1 ± 0.141 (sample sd, n − 1)
    assert ours["train A"] == pytest.approx(2.1) and ours["train A sd"] == pytest.approx(SD)
    assert ours["train B"] == pytest.approx(3.0) and ours["train B sd"] == pytest.approx(0.0)
    assert ours["val B"] == pytest.approx(6.1) and ours["seeds"] == 2
    static = t.loc[("Static", "measured")]
    assert static["train A"] == 4.0 and pd.isna(static["val A"])  # no validation run: no number
    assert pd.isna(static["train A sd"])  # one value: no spread


def test_table1_labels_missing_methods_and_paper_rows():
    t = table1(runs_frame())
    sources = dict(zip(zip(t["method"], t["source"]), range(len(t))))
    assert ("AlphaFlow", "not run") in sources and ("Boltz-1", "not run") in sources
    for method, numbers in PAPER_TABLE1.items():
        row = t[(t["method"] == method) & (t["source"] == "paper")].iloc[0]
        assert tuple(row[["train A", "train B", "val A", "val B"]]) == numbers
    md = table1_markdown(t).set_index(["method", "source"])
    assert md.loc[("AlphaFlow", "not run"), "val A (Å)"] == "not run"
    assert md.loc[("Ours", "measured"), "train A (Å)"] == "2.10 ± 0.14"
    assert md.loc[("Ours", "measured"), "train B (Å)"] == "3.00 ± —"  # identical over seeds
    assert md.loc[("Ours", "paper"), "val A (Å)"] == "1.10"
    assert md.loc[("Static", "measured"), "train A (Å)"] == "4.00 ± —"  # one value, not "± 0.00"
    assert md.loc[("Static", "measured"), "val A (Å)"] == "not run"


def metrics_frame():
    rows = []
    for method, seeds in (("Ours", (0, 1)), ("Static", (0,))):
        for seed in seeds:
            row = {"slot": "V", "split": "val", "method": method, "seed": seed}
            row.update({column: float(seed + 1) for column in (
                "MAT-R", "MAT-P", "COV-R(0.5)", "COV-R(1)", "COV-R(2)", "COV-P(1)", "occupancy_A",
                "map_corr_best_A", "map_corr_best_B", "validity_bond_dev_mean", "validity_ca_ca_dev_max",
                "validity_clashes_per_sample")})
            rows.append(row)
    return pd.DataFrame(rows)


def test_ensemble_metrics_table_and_markdown():
    table = ensemble_metrics_table(metrics_frame())
    assert list(table["method"]) == ["Ours", "Static"] and list(table["seeds"]) == [2, 1]
    ours = table.iloc[0]
    assert ours["MAT-R"] == pytest.approx(1.5) and ours["MAT-R sd"] == pytest.approx(np.std([1, 2], ddof=1))
    assert list(table.columns[4:6]) == ["MAT-R", "MAT-R sd"]
    md = ensemble_metrics_markdown(table)
    assert md.loc[0, "MAT-R (Å)"] == "1.50 ± 0.71" and md.loc[1, "MAT-R (Å)"] == "1.00 ± —"
    with pytest.raises(ValueError, match="MAT-P"):
        ensemble_metrics_markdown(table.drop(columns=["MAT-P"]))


def test_save_table_writes_csv_at_full_precision_and_markdown_version(tmp_path):
    table = pd.DataFrame({"x": [1.23456]})
    csv_path, md_path = save_table(table, tmp_path, "t", footnote="a note",
                                   markdown=pd.DataFrame({"x": ["1.2 ± 0.1"]}))
    assert pd.read_csv(csv_path)["x"].iloc[0] == pytest.approx(1.23456)
    text = md_path.read_text()
    assert "1.2 ± 0.1" in text and text.rstrip().endswith("a note")


def test_mean_sd_cell_shows_no_spread_as_a_dash():
    assert mean_sd_cell(1.234, 0.056) == "1.23 ± 0.06"
    assert mean_sd_cell(4.0, float("nan")) == "4.00 ± —"  # a single value
    assert mean_sd_cell(4.0, 0.0) == "4.00 ± —"  # identical over seeds (deterministic)
    assert mean_sd_cell(4.0, 0.001) == "4.00 ± 0.00"  # a real spread, too small to show
    assert mean_sd_cell(float("nan"), float("nan")) == "not run"


def test_sampling_table_uses_the_sample_sd_and_its_markdown_the_dash():
    runs = pd.DataFrame([
        {"slot": "P1", "split": "train", "seed": seed, "closest_A": a, "closest_B": 1.0, "occupancy_A": 0.5,
         "occupancy_B": 0.5, "seconds": 3.0} for seed, a in ((0, 2.0), (1, 2.2))]
        + [{"slot": "V", "split": "val", "seed": 0, "closest_A": 1.0, "closest_B": 1.0, "occupancy_A": 1.0,
            "occupancy_B": 0.0, "seconds": 3.0}])
    table = sampling_table(runs)
    assert list(table["seeds"]) == [2, 1]
    assert table.loc[0, "closest_A sd"] == pytest.approx(SD) and pd.isna(table.loc[1, "closest_A sd"])
    md = sampling_markdown(table)
    assert list(md["closest A (Å)"]) == ["2.10 ± 0.14", "1.00 ± —"]
    assert md.loc[0, "occupancy A"] == "0.50 ± —"


def test_figure2_bars_and_table1_use_one_sd_convention():
    runs = runs_frame()
    bars = closest_by_method(runs, "V").set_index(["method", "state"])
    t = table1(runs).set_index(["method", "source"])
    # V is the only validation protein, so the figure's bar and Table 1's val column are the same numbers.
    assert bars.loc[("Ours", "B"), "rmsd"] == pytest.approx(t.loc[("Ours", "measured"), "val B"])
    assert bars.loc[("Ours", "B"), "sd"] == pytest.approx(t.loc[("Ours", "measured"), "val B sd"])
    assert bars.loc[("Ours", "B"), "sd"] == pytest.approx(SD)
    assert list(bars.index.get_level_values("method").unique()) == ["Ours"]


def _dataset(used_ids):
    slots = ["1EXR", "1OOJ", "1RFJ", "4CLN"]
    return pd.DataFrame({"slot": slots, "used_id": used_ids, "split": ["train", "train", "train", "val"],
                         "substituted": [s != u for s, u in zip(slots, used_ids)]})


def test_table1_caption_states_sd_convention_and_how_close_validation_is():
    caption = table1_caption(_dataset(["1EXR", "3CLN", "1CLL", "4CLN"]), n_samples=16)
    assert SD_NOTE in caption and "16 samples" in caption
    assert "1OOJ ← 3CLN, 1RFJ ← 1CLL" in caption
    assert "4CLN informed the choice" in caption
    assert "3CLN and 1CLL are mammalian calmodulins about 98 % identical in sequence to 4CLN" in caption
    assert "adenylate kinase, HigA" in caption
    # Without those substitutes, the caption does not claim anything about them.
    assert "3CLN and 1CLL" not in table1_caption(_dataset(["1EXR", "1OOJ", "1RFJ", "4CLN"]), n_samples=16)


def test_ddim_steps_table_means_over_proteins_per_split_and_k():
    sweep = pd.DataFrame({"slot": ["a", "b", "v", "a", "b", "v"], "split": ["train", "train", "val"] * 2,
                          "steps": [100] * 3 + [10] * 3, "closest_A": [0.1, 0.3, 0.4, 0.5, 0.7, 0.9],
                          "closest_B": 0.2, "occupancy_A": [0.5, 0.25, 0.5, 1.0, 0.5, 0.5], "seconds": 1.0})
    table = ddim_steps_table(sweep)
    assert list(zip(table["split"], table["steps"])) == [("train", 10), ("train", 100), ("val", 10), ("val", 100)]
    assert table["closest_A"].tolist() == pytest.approx([0.6, 0.2, 0.9, 0.4])
    assert table["occupancy_A"].tolist() == pytest.approx([0.75, 0.375, 0.5, 0.5])
    assert table["proteins"].tolist() == [2, 2, 1, 1]


def test_comparison_table_adds_the_ood_protein_and_keeps_method_order():
    runs = runs_frame()
    ood = runs[runs["slot"] == "V"].assign(slot="O", split="test_ood", closest_A=7.0)
    runs = pd.concat([runs[runs["method"] == "Ours"], ood]).assign(steps=3000, train_seconds_per_step=0.4)
    runs = pd.concat([runs.assign(method="B"), runs.assign(method="A", closest_A=runs["closest_A"] + 1)])
    table = comparison_table(runs).set_index("method")
    assert list(table.index) == ["B", "A"]
    assert table.loc["B", "train A"] == pytest.approx(2.1) and table.loc["B", "train A sd"] == pytest.approx(SD)
    assert table.loc["A", "train A"] == pytest.approx(3.1)
    assert table.loc["B", "test_ood A"] == pytest.approx(7.0) and table.loc["B", "test_ood B"] == pytest.approx(6.1)
    assert table.loc["B", "seeds"] == 2 and table.loc["B", "steps"] == 3000
    md = comparison_markdown(table.reset_index())
    assert md.loc[0, "train A (Å)"] == "2.10 ± 0.14" and md.loc[0, "training"] == "400 ms/step"
