"""Repository hygiene: measured numbers live in one place (the README's performance table)."""

import json
import re

from cryosampler.profiles import repo_root

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
