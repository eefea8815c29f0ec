"""The package's layout shows the pipeline: imports only point down it (README, "Package map")."""

import ast

from cryosampler.experiments.profiles import repo_root

# Stages in pipeline order; a module may import from its own stage and from earlier ones. The top-level modules
# (training, sampling, read-out, ingestion, device) are the "run" stage; cli.py and __main__.py belong to the
# command line.
STAGES = ("io", "physics", "model", "run", "evaluation", "experiments", "commands")
# The command line is the tool users run on their own data: it needs none of the experiments' code.
FORBIDDEN = {"commands": {"experiments"}}
PACKAGE = repo_root() / "cryosampler"


def _stage(module: str) -> str:
    """Stage of a dotted module name inside cryosampler (``cryosampler.model.encoder`` → ``model``)."""
    parts = module.split(".")
    if len(parts) >= 2 and parts[1] in STAGES:
        return parts[1]
    if len(parts) == 1 or parts[1] in ("cli", "__main__"):
        return "commands"
    return "run"


def _module_name(path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path) -> list[tuple[int, str]]:
    """(line, module) of every cryosampler import in ``path``, wherever it stands (lazy imports included)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.startswith("cryosampler")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cryosampler"):
            assert node.level == 0, f"{path}:{node.lineno}: use absolute imports"
            found.append((node.lineno, node.module))
    return found


def _violations() -> list[str]:
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        stage = _stage(_module_name(path))
        for line, module in _imports(path):
            target = _stage(module)
            if module == "cryosampler":
                continue
            if STAGES.index(target) > STAGES.index(stage) or target in FORBIDDEN.get(stage, ()):
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({stage}) imports {module} ({target})")
    return bad


def test_imports_point_down_the_pipeline():
    bad = _violations()
    assert not bad, "imports against the pipeline's direction:\n" + "\n".join(bad)


def test_the_check_sees_every_stage():
    # Guard against a check that passes because it sees nothing: every stage has modules and imports.
    stages = {_stage(_module_name(p)) for p in PACKAGE.rglob("*.py")}
    assert stages == set(STAGES)
    assert _stage("cryosampler.experiments.simulate") == "experiments"
    assert _stage("cryosampler.training") == "run"
    assert _stage("cryosampler.cli") == "commands"
    assert _stage("cryosampler.commands.fit") == "commands"
    assert sum(len(_imports(p)) for p in PACKAGE.rglob("*.py")) > 50


def test_docs_list_every_module_and_the_readme_every_package():
    listed = (repo_root() / "docs" / "package.md").read_text()
    missing = [str(p.relative_to(PACKAGE)) for p in sorted(PACKAGE.rglob("*.py"))
               if p.name != "__init__.py" and p.name not in listed]
    assert not missing, f"docs/package.md does not list {missing}"
    readme = (repo_root() / "README.md").read_text()
    tree = readme[readme.index("## Package map"):readme.index("## Documentation")]
    packages = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())
    assert [p for p in packages if f"  {p}/ " not in tree] == []


# Each third-party library of formats or methods is wrapped in one module; the rest sees numpy and our types.
WRAPPERS = {"gemmi": "io/atomic_files.py", "mrcfile": "io/mrc.py", "mdtraj": "io/trajectory.py",
            "prody": "physics/nma.py", "openmm": "physics/relax.py", "starfile": "io/particles.py"}


def test_each_wrapped_library_is_imported_by_one_module():
    importers = {name: [] for name in WRAPPERS}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            for name in names:
                if name.split(".")[0] in importers:
                    importers[name.split(".")[0]].append(str(path.relative_to(PACKAGE)))
    assert {name: sorted(set(found)) for name, found in importers.items()} == {
        name: [module] for name, module in WRAPPERS.items()}
