"""Device selection (--device auto|cpu|cuda[:N]), checkpoints that load on any device, and (with a GPU only)
one training step and sampling on CUDA."""

import dataclasses

import numpy as np
import pytest
import torch

import cryosampler.cli as cli
from cryosampler.device import resolve_device
from cryosampler.model.featurize import featurize
from cryosampler.physics.frame import principal_axes_template
from cryosampler.sampling import sample_ensemble
from cryosampler.training import train
from cryosampler.model.checkpoint import load_checkpoint, save_checkpoint

from conftest import checkpoint_state, tiny_examples, tiny_model
from test_training import CONFIG, MODEL

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture
def without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.mark.parametrize("spec", ["cpu", "CPU", " cpu ", "auto", torch.device("cpu")])
def test_cpu_and_auto_without_a_gpu_resolve_to_the_cpu(spec, without_cuda):
    assert resolve_device(spec) == torch.device("cpu")


def test_auto_and_cuda_pick_the_gpu_when_there_is_one(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert resolve_device("auto") == resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ValueError, match=r"^device 'cuda:2': there are only 2 GPU\(s\), cuda:0 to cuda:1$"):
        resolve_device("cuda:2")


@pytest.mark.parametrize("spec", ["gpu", "cuda:", "cuda:x", "cuda:-1", "", "mps", "cpu:0"])
def test_bad_device_spec_is_one_clear_error(spec):
    with pytest.raises(ValueError, match=rf"^device {spec!r} is not one of auto, cpu, cuda, cuda:N"):
        resolve_device(spec)


@pytest.mark.parametrize("spec", ["cuda", "cuda:0"])
def test_cuda_without_a_gpu_is_refused_not_run_on_the_cpu(spec, without_cuda):
    with pytest.raises(ValueError, match=rf"^device '{spec}': CUDA is not available here"):
        resolve_device(spec)


def test_sampling_and_training_refuse_cuda_without_a_gpu(tiny_structure, tmp_path, without_cuda):
    model = tiny_model(tiny_structure)
    protein = featurize(tiny_structure, tiny_structure.coords)
    with pytest.raises(ValueError, match="CUDA is not available"):
        sample_ensemble(model, protein, 2, torch.Generator(), n_steps=2, device="cuda")
    with pytest.raises(ValueError, match="CUDA is not available"):
        train(tiny_examples(tiny_structure), MODEL, CONFIG, principal_axes_template(tiny_structure), tmp_path,
              progress=False, device="cuda")
    assert not any(tmp_path.iterdir())


@no_gpu
@pytest.mark.parametrize("spec, message", [("cuda", "CUDA is not available"), ("gpu", "is not one of")])
def test_cli_device_error_is_one_line_before_any_work(inputs_cli, spec, message, capsys):
    checkpoint, reference, out = inputs_cli
    code = cli.main(["sample", "--checkpoint", str(checkpoint), "--reference", str(reference), "-o", str(out),
                     "--device", spec, "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("cryosampler: error: device") and message in err[0]
    assert not out.exists()


def test_cli_samples_on_the_cpu_when_asked(inputs_cli, capsys):
    checkpoint, reference, out = inputs_cli
    code = cli.main(["sample", "--checkpoint", str(checkpoint), "--reference", str(reference), "-o", str(out),
                     "-n", "2", "--steps", "2", "--device", "cpu", "--quiet"])
    assert code == 0 and out.is_file(), capsys.readouterr().err


@pytest.fixture
def inputs_cli(tiny_structure, tiny_checkpoint):
    from cryosampler.io.atomic_files import write_pdb

    reference = tiny_checkpoint.parent / "ref.pdb"
    write_pdb(reference, tiny_structure)
    return tiny_checkpoint, reference, tiny_checkpoint.parent / "out.pdb"


@no_gpu
def test_a_checkpoint_written_from_gpu_tensors_loads_on_the_cpu(tiny_structure, tmp_path, monkeypatch):
    # A GPU run's file tags its tensors "cuda:0"; loading it here needs map_location (torch.load alone fails).
    state = checkpoint_state(tiny_model(tiny_structure))
    with monkeypatch.context() as patch:
        patch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        torch.save(state, tmp_path / "gpu.pt")
    with pytest.raises(RuntimeError, match="CUDA"):
        torch.load(tmp_path / "gpu.pt", weights_only=True)
    loaded = load_checkpoint(tmp_path / "gpu.pt")
    for name, value in state["model"].items():
        assert loaded["model"][name].device.type == "cpu" and torch.equal(loaded["model"][name], value), name


def test_resuming_on_another_kind_of_device_is_one_clear_error(tiny_structure, tmp_path):
    examples, template = tiny_examples(tiny_structure), principal_axes_template(tiny_structure)
    config = dataclasses.replace(CONFIG, steps=2, checkpoint_every=2)
    train(examples, MODEL, config, template, tmp_path, progress=False)
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["generator_device"] == "cpu"
    save_checkpoint(tmp_path / "checkpoint.pt", dict(state, generator_device="cuda"))
    with pytest.raises(ValueError, match=r"checkpoint.pt was trained on cuda .*resume with device cuda"):
        train(examples, MODEL, config, template, tmp_path, progress=False, device="cpu")


@needs_gpu
def test_one_training_step_and_sampling_on_cuda(tiny_structure, tmp_path):
    examples, template = tiny_examples(tiny_structure), principal_axes_template(tiny_structure)
    config = dataclasses.replace(CONFIG, steps=1, checkpoint_every=1)
    model = train(examples, MODEL, config, template, tmp_path, progress=False, device="cuda")
    assert next(model.parameters()).device.type == "cuda"
    raw = torch.load(tmp_path / "checkpoint.pt", weights_only=True)  # no map_location: written CPU-loadable
    assert all(v.device.type == "cpu" for v in raw["model"].values())
    assert np.isfinite(raw["generator"].numpy()).all() and raw["generator_device"] == "cuda"
    protein = featurize(tiny_structure, tiny_structure.coords)
    for precision in ("fp32", "bf16"):
        ensemble = sample_ensemble(model, protein, 2, torch.Generator("cuda").manual_seed(0), n_steps=3,
                                   device="cuda", precision=precision)
        assert ensemble.coords.shape == (2, tiny_structure.n_atoms, 3) and np.isfinite(ensemble.coords).all()
    with pytest.raises(ValueError, match="generator is on cpu but device is cuda:0"):
        sample_ensemble(model, protein, 2, torch.Generator(), n_steps=3, device="cuda:0")
