"""The two dependency lists (pyproject.toml and environment.yml) pin the same versions."""

import re
import tomllib

import yaml

from cryosampler.profiles import repo_root


def _pins(requirements):
    pins = {}
    for req in requirements:
        if req.startswith("-e"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([A-Za-z0-9_.+\-]+)", req.strip())
        assert match, f"not an exact pin: {req!r}"
        pins[match[1].lower().replace("_", "-")] = match[2]
    return pins


def test_pyproject_and_environment_pin_the_same_versions():
    root = repo_root()
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]
    conda = yaml.safe_load((root / "environment.yml").read_text())["dependencies"]
    pip_section = next(item["pip"] for item in conda if isinstance(item, dict))
    assert _pins(project) == _pins(pip_section)


def test_required_packages_are_pinned():
    root = repo_root()
    pins = _pins(tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"])
    for name in ["torch", "jupyterlab", "papermill", "nbconvert", "prody", "mrcfile", "mdtraj",
                 "matplotlib", "seaborn", "pandas", "pytest", "nbmake"]:
        assert name in pins, f"{name} is not pinned in pyproject.toml"
    assert pins["torch"] == "2.13.0"
