"""The ablation (benchmarks/ablation.py) chooses models on training proteins only; held-out proteins only on
request."""

import dataclasses

import pandas as pd
import pytest

from cryosampler.experiments.ablation import ablation_configs, choose_proteins
from cryosampler.model.encoder import ENCODER_PRESETS
from cryosampler.training import TrainConfig

DATASET = pd.DataFrame({"slot": ["1EXR", "1OOJ", "1RFJ", "1UP5", "4CLN", "1PRW"],
                        "split": ["train"] * 4 + ["val", "test_ood"]})


def test_ablation_scores_only_training_proteins_by_default():
    assert choose_proteins(DATASET, None, report_held_out=False) == ["1EXR", "1OOJ", "1RFJ", "1UP5"]
    assert choose_proteins(DATASET, ["1OOJ"], report_held_out=False) == ["1OOJ"]


def test_ablation_refuses_the_validation_protein_without_the_report_flag():
    with pytest.raises(ValueError, match="4CLN: a val protein.*--report-held-out.*not for model selection"):
        choose_proteins(DATASET, ["1EXR", "4CLN"], report_held_out=False)
    with pytest.raises(ValueError, match="5A2H: not in the dataset"):
        choose_proteins(DATASET, ["5A2H"], report_held_out=False)
    assert choose_proteins(DATASET, ["1EXR"], report_held_out=True) == ["1EXR", "4CLN", "1PRW"]


def test_ablation_configs_change_only_what_is_given():
    encoder, config = ablation_configs("smoke", steps=7, seed=3, precision="bf16")
    assert encoder == ENCODER_PRESETS["smoke"]
    assert config == TrainConfig(steps=7, seed=3, precision="bf16")
    encoder, config = ablation_configs("smoke", 7, 3, "fp32", sequence_features=False, lambda_b=0.5)
    assert encoder == dataclasses.replace(ENCODER_PRESETS["smoke"], sequence_features=False)
    assert config == TrainConfig(steps=7, seed=3, lambda_b=0.5)
