"""benchmarks/ablation.py chooses models on training proteins only; held-out proteins only on request."""

import importlib.util

import pandas as pd
import pytest

from cryosampler.experiments.profiles import repo_root


def _ablation():
    spec = importlib.util.spec_from_file_location("ablation", repo_root() / "benchmarks" / "ablation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DATASET = pd.DataFrame({"slot": ["1EXR", "1OOJ", "1RFJ", "1UP5", "4CLN", "1PRW"],
                        "split": ["train"] * 4 + ["val", "test_ood"]})


def test_ablation_scores_only_training_proteins_by_default():
    assert _ablation().choose_proteins(DATASET, None, report_held_out=False) == ["1EXR", "1OOJ", "1RFJ", "1UP5"]
    assert _ablation().choose_proteins(DATASET, ["1OOJ"], report_held_out=False) == ["1OOJ"]


def test_ablation_refuses_the_validation_protein_without_the_report_flag():
    choose = _ablation().choose_proteins
    with pytest.raises(ValueError, match="4CLN: a val protein.*--report-held-out.*not for model selection"):
        choose(DATASET, ["1EXR", "4CLN"], report_held_out=False)
    with pytest.raises(ValueError, match="5A2H: not in the dataset"):
        choose(DATASET, ["5A2H"], report_held_out=False)
    assert choose(DATASET, ["1EXR"], report_held_out=True) == ["1EXR", "4CLN", "1PRW"]
