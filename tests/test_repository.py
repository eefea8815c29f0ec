"""Repository hygiene: measured numbers live in one place (the README's performance table)."""

import json
import re

from cryosampler.experiments.profiles import repo_root

# A duration with a unit, e.g. "21 min", "0.42 s/step", "3.5 h", "25 minutes".
DURATION = re.compile(r"\d+(?:\.\d+)?\s*(?:min(?:utes?)?|s/step|h|hours?)\b")


def _comments_and_prose():
    """(where, text) of every Python comment and docstring line and every notebook Markdown or comment line."""
    root = repo_root()
    for path in sorted([*root.glob("cryosampler/*.py"), *root.glob("benchmarks/*.py")]):
        in_docstring = False
        for number, line in enumerate(path.read_text().splitlines(), 1):
            quotes = line.count('"""')
            if in_docstring or quotes:
                yield f"{path.name}:{number}", line
            elif "#" in line:
                yield f"{path.name}:{number}", line[line.index("#"):]
            in_docstring ^= quotes % 2 == 1
    for path in sorted(root.glob("notebooks/*.ipynb")):
        for index, cell in enumerate(json.loads(path.read_text())["cells"]):
            for line in "".join(cell["source"]).splitlines():
                if cell["cell_type"] == "markdown" or line.lstrip().startswith("#"):
                    yield f"{path.name} cell {index}", line


def test_no_measured_durations_in_code_comments_or_notebook_text():
    found = [f"{where}: {text.strip()}" for where, text in _comments_and_prose() if DURATION.search(text)]
    assert not found, "measured times belong in the README's performance table:\n" + "\n".join(found)


def _notebook_and_benchmark_code():
    """(where, source) of every notebook code cell and benchmark script."""
    root = repo_root()
    for path in sorted(root.glob("notebooks/*.ipynb")):
        for index, cell in enumerate(json.loads(path.read_text())["cells"]):
            if cell["cell_type"] == "code":
                yield f"{path.name} cell {index}", "".join(cell["source"])
    for path in sorted(root.glob("benchmarks/*.py")):
        yield path.name, path.read_text()


def test_ensembles_are_scored_only_by_score_ensemble():
    # One definition of the paper's scoring (metrics.score_ensemble): no notebook or script rebuilds it from
    # the RMSD matrix, nor counts occupancy its own way.
    own_scoring = re.compile(r"\b(rmsd_matrix|matched_rmsd_matrix|ensemble_summary|state_occupancy|"
                             r"closest_sample_rmsd)\(|rmsds?\[:, *0\] *[<>]")
    found = [where for where, code in _notebook_and_benchmark_code() if own_scoring.search(code)]
    assert not found, f"score ensembles with cryosampler.evaluation.metrics.score_ensemble: {found}"
