import pandas as pd
import pytest

from cryosampler.tables import (PAPER_TABLE1, ensemble_metrics_markdown, ensemble_metrics_table, save_table,
                                table1, table1_markdown)


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
    # per seed: train A = mean(1, 3) = 2.0, then mean(1.2, 3.2) = 2.2 → 2.1 ± 0.1
    assert ours["train A"] == pytest.approx(2.1) and ours["train A sd"] == pytest.approx(0.1)
    assert ours["train B"] == pytest.approx(3.0) and ours["train B sd"] == pytest.approx(0.0)
    assert ours["val B"] == pytest.approx(6.1) and ours["seeds"] == 2
    static = t.loc[("Static", "measured")]
    assert static["train A"] == 4.0 and pd.isna(static["val A"])  # no validation run: no number


def test_table1_labels_missing_methods_and_paper_rows():
    t = table1(runs_frame())
    sources = dict(zip(zip(t["method"], t["source"]), range(len(t))))
    assert ("AlphaFlow", "not run") in sources and ("Boltz-1", "not run") in sources
    for method, numbers in PAPER_TABLE1.items():
        row = t[(t["method"] == method) & (t["source"] == "paper")].iloc[0]
        assert tuple(row[["train A", "train B", "val A", "val B"]]) == numbers
    md = table1_markdown(t).set_index(["method", "source"])
    assert md.loc[("AlphaFlow", "not run"), "val A (Å)"] == "not run"
    assert md.loc[("Ours", "measured"), "train A (Å)"] == "2.10 ± 0.10"
    assert md.loc[("Ours", "paper"), "val A (Å)"] == "1.10"
    assert md.loc[("Static", "measured"), "val A (Å)"] == "–"


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
    assert ours["MAT-R"] == pytest.approx(1.5) and ours["MAT-R sd"] == pytest.approx(0.5)
    assert list(table.columns[4:6]) == ["MAT-R", "MAT-R sd"]
    md = ensemble_metrics_markdown(table)
    assert md.loc[0, "MAT-R (Å)"] == "1.50 ± 0.50" and md.loc[1, "MAT-R (Å)"] == "1.00"
    with pytest.raises(ValueError, match="MAT-P"):
        ensemble_metrics_markdown(table.drop(columns=["MAT-P"]))


def test_save_table_writes_csv_at_full_precision_and_markdown_version(tmp_path):
    table = pd.DataFrame({"x": [1.23456]})
    csv_path, md_path = save_table(table, tmp_path, "t", footnote="a note",
                                   markdown=pd.DataFrame({"x": ["1.2 ± 0.1"]}))
    assert pd.read_csv(csv_path)["x"].iloc[0] == pytest.approx(1.23456)
    text = md_path.read_text()
    assert "1.2 ± 0.1" in text and text.rstrip().endswith("a note")
