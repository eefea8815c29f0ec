"""Dependencies: pyproject.toml and environment.yml pin the same versions, the library needs only its runtime
pins, and the notebook and test tools are extras."""

import ast
import re
import sys
import tomllib

import yaml
from packaging.specifiers import SpecifierSet

from cryosampler.experiments.profiles import repo_root

# Import name → distribution name, where they differ.
DISTRIBUTION = {"yaml": "pyyaml", "sklearn": "scikit-learn"}


def _pins(requirements):
    pins = {}
    for req in requirements:
        if req.startswith("-e"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([A-Za-z0-9_.+\-]+)", req.strip())
        assert match, f"not an exact pin: {req!r}"
        pins[match[1].lower().replace("_", "-")] = match[2]
    return pins


def _project():
    return tomllib.loads((repo_root() / "pyproject.toml").read_text())["project"]


def _third_party_imports(paths):
    """Top-level distribution names imported by the given Python files (standard library, cryosampler and the
    files' own sibling modules, e.g. one test module importing helpers from another, excluded)."""
    names, local = set(), set()
    for path in paths:
        local |= {p.stem for p in path.parent.glob("*.py")}
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names.add(node.module.split(".")[0])
    names -= set(sys.stdlib_module_names) | local | {"cryosampler", "__future__"}
    return {DISTRIBUTION.get(name, name) for name in names}


def test_pyproject_and_environment_pin_the_same_versions():
    project = _project()
    extras = project["optional-dependencies"]
    conda = yaml.safe_load((repo_root() / "environment.yml").read_text())["dependencies"]
    pip_section = next(item["pip"] for item in conda if isinstance(item, dict))
    assert _pins(pip_section) == _pins(project["dependencies"] + extras["notebooks"] + extras["test"]
                                       + extras["cryodrgn"])
    assert "-e .[notebooks,test,cryodrgn]" in pip_section


def test_runtime_dependencies_are_what_the_library_imports():
    project = _project()
    runtime = _pins(project["dependencies"])
    # The [relax] extra's OpenMM is imported only when a model is relaxed (cryosampler/physics/relax.py).
    optional = set(_pins(project["optional-dependencies"]["relax"]))
    imported = _third_party_imports((repo_root() / "cryosampler").rglob("*.py")) - optional
    assert imported <= set(runtime), f"imported but not a runtime dependency: {imported - set(runtime)}"
    # tabulate is not imported but needed by pandas' DataFrame.to_markdown (tables.save_table).
    assert set(runtime) - imported == {"tabulate"}
    assert runtime["torch"] == "2.13.0"


def test_notebook_and_test_tools_are_extras():
    project = _project()
    extras = {name: _pins(reqs) for name, reqs in project["optional-dependencies"].items()}
    assert {"jupyterlab", "ipykernel", "papermill", "nbconvert"} <= set(extras["notebooks"])
    # packaging (for this file) comes with pytest.
    tests = _third_party_imports((repo_root() / "tests").glob("*.py")) - set(_pins(project["dependencies"])) - {"packaging"}
    assert tests | {"nbmake", "pytest"} <= set(extras["test"]), tests
    assert not set(_pins(project["dependencies"])) & (set(extras["notebooks"]) | set(extras["test"]))


def test_supported_python_versions_include_the_tested_ones():
    supported = SpecifierSet(_project()["requires-python"])
    assert {"3.11", "3.12"} <= {v for v in ("3.10", "3.11", "3.12", "3.13", "3.14", "3.15") if v in supported}
    assert "3.10" not in supported  # numpy 2.4 needs 3.11
    assert f"{sys.version_info.major}.{sys.version_info.minor}" in supported
