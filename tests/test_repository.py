"""Repository hygiene: measured numbers and their dates live in one place (README.md and docs/), and the files that code
comments cite exist."""

import json
import re

from cryosampler.experiments.profiles import repo_root

# A measured time: a number with a time unit, e.g. "21 min", "0.42 s/step", "4 s", "0.15 s per map", "12 ms",
# "3.5 h", "25 minutes". A bare unit ("timeout in seconds", "σ_t") is no measurement.
DURATION = re.compile(r"(?<![\w.])\d+(?:\.\d+)?\s*(?:ms|µs|us|s|secs?|seconds?|min|mins|minutes?|h|hrs?|hours?|days?)"
                      r"(?![\w])")
# A calendar date, e.g. "2026-11-25", "25 November 2026" or "November 2026" (not one inside a file name such as
# benchmarks/measured/2026-11-25_h100/).
_MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"
DATE = re.compile(rf"(?<![\w/])(?:19|20)\d\d-[01]\d-[0-3]\d(?!\w)"
                  rf"|\b(?:{_MONTHS})\s+(?:[0-3]?\d,?\s+)?(?:19|20)\d\d\b")
# A repository file or folder cited in prose: a path under a top-level folder that ends in a suffix or "/", e.g.
# "benchmarks/bench_train.py", "notebooks/06_*.ipynb", "figures/fig_x.{png,pdf}", "tables/"; or a bare Markdown
# file name such as "notes f.md".
CITED_PATH = re.compile(r"(?<![\w./{}-])((?:benchmarks|notebooks|tests|tables|figures|docs|cryosampler)/"
                        r"(?:[\w.*/-]*\.(?:[\w*]+|\{[\w,]+\})|[\w.*/-]*/)|[\w-]+\.md\b)")


def _python_files():
    root = repo_root()
    return sorted({*root.glob("cryosampler/**/*.py"), *root.glob("benchmarks/**/*.py")})


def _comments_and_prose():
    """(where, text) of every Python comment and docstring line under cryosampler/ and benchmarks/ and every
    notebook Markdown or comment line."""
    root = repo_root()
    for path in _python_files():
        in_docstring = False
        for number, line in enumerate(path.read_text().splitlines(), 1):
            quotes = line.count('"""')
            if in_docstring or quotes:
                yield f"{path.relative_to(root)}:{number}", line
            elif "#" in line:
                yield f"{path.relative_to(root)}:{number}", line[line.index("#"):]
            in_docstring ^= quotes % 2 == 1
    for path in sorted(root.glob("notebooks/*.ipynb")):
        for index, cell in enumerate(json.loads(path.read_text())["cells"]):
            for line in "".join(cell["source"]).splitlines():
                if cell["cell_type"] == "markdown" or line.lstrip().startswith("#"):
                    yield f"{path.relative_to(root)} cell {index}", line


def test_no_measured_durations_in_code_comments_or_notebook_text():
    found = [f"{where}: {text.strip()}" for where, text in _comments_and_prose() if DURATION.search(text)]
    assert not found, "measured times belong in docs/:\n" + "\n".join(found)


def test_no_dates_in_code_comments_or_notebook_text():
    found = [f"{where}: {text.strip()}" for where, text in _comments_and_prose() if DATE.search(text)]
    assert not found, "dates of measurements belong in docs/:\n" + "\n".join(found)


def _cited_paths():
    """(where, path) of every repository path that a comment, docstring or notebook text cites."""
    for where, text in _comments_and_prose():
        for path in CITED_PATH.findall(text):
            yield where, path.rstrip(".")


def _exists(path: str) -> bool:
    """Whether ``path`` (relative to the repository root; may hold ``*`` or a final ``{a,b}``) names files there;
    a bare file name may sit at the top level or in a top-level folder (tables/ensemble_metrics.md)."""
    root = repo_root()
    if "/" not in path:
        return (root / path).exists() or any(root.glob(f"*/{path}"))
    stem, brace, suffixes = path.partition("{")
    paths = [stem + s for s in suffixes.rstrip("}").split(",")] if brace else [path]
    return all(any(root.glob(p.rstrip("/"))) if "*" in p else (root / p).exists() for p in paths)


def test_files_cited_in_comments_exist():
    found = [f"{where}: {path}" for where, path in _cited_paths() if not _exists(path)]
    assert not found, "comments cite files that are not in the repository:\n" + "\n".join(found)


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


def test_every_notebook_cell_has_its_own_id():
    # nbformat 4.5 requires each cell's id; a cell added without one passes today with a warning that its next
    # release makes an error.
    for path in sorted(repo_root().glob("notebooks/*.ipynb")):
        notebook = json.loads(path.read_text())
        assert (notebook["nbformat"], notebook["nbformat_minor"]) >= (4, 5), path.name
        ids = [cell.get("id") for cell in notebook["cells"]]
        assert all(isinstance(i, str) and i for i in ids) and len(set(ids)) == len(ids), \
            f"{path.name}: cells without an id or with the same one"
