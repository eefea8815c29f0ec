"""docs/reproduce.md's manifest: every file under tables/ and figures/ has one producer that run_all.sh runs."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "docs" / "reproduce.md"
SECTION = "## Every committed file and what writes it"


def manifest_rows(text: str) -> list[tuple[str, str]]:
    """(file, producer) for every file the manifest section's table names, ``{a,b}`` expanded; producer is the
    repository path of the notebook or script (the first `…` of the producer column)."""
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        pattern, producer = cells[0].strip("`"), re.match(r"`([^`]+)`", cells[1])
        if producer is None:
            raise ValueError(f"manifest row without a producer: {line}")
        producer = producer.group(1).split()[0]
        braces = re.fullmatch(r"(.*)\{([^}]*)\}", pattern)
        names = [braces.group(1) + ext for ext in braces.group(2).split(",")] if braces else [pattern]
        rows += [(name, producer) for name in names]
    return rows


def committed_results() -> set[str]:
    return {str(path.relative_to(ROOT)) for folder in ("tables", "figures")
            for path in (ROOT / folder).iterdir() if path.is_file()}


def producers_run_by_run_all() -> set[str]:
    """Notebooks (run_all.sh runs notebooks/[0-9][0-9]_*.ipynb) and the scripts run_all.sh names."""
    script = (ROOT / "run_all.sh").read_text()
    notebooks = {str(p.relative_to(ROOT)) for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    return notebooks | set(re.findall(r"benchmarks/\w+\.py", script))


def unlisted(files: set[str], rows: list[tuple[str, str]]) -> list[str]:
    """The files of ``files`` that no manifest row names."""
    listed = {name for name, _ in rows}
    return sorted(files - listed)


def test_parser_expands_braces_and_takes_the_first_producer_path():
    text = (f"{SECTION}\n\n| file | producer | stage |\n|:--|:--|:--|\n"
            "| `tables/x.{csv,md}` | `benchmarks/x.py` (reads y) | `./run_all.sh --extras` |\n"
            "| `tables/z.csv` | `benchmarks/z.py --table1` | `./run_all.sh --extras` |\n\n## Next\n"
            "| `tables/not_in_section.csv` | `notebooks/a.ipynb` | x |\n")
    assert manifest_rows(text) == [("tables/x.csv", "benchmarks/x.py"), ("tables/x.md", "benchmarks/x.py"),
                                   ("tables/z.csv", "benchmarks/z.py")]


def test_an_unlisted_file_is_caught():
    rows = manifest_rows(MANIFEST.read_text())
    assert unlisted(committed_results() | {"tables/stray.csv"}, rows) == ["tables/stray.csv"]


def test_every_committed_file_is_listed():
    missing = unlisted(committed_results(), manifest_rows(MANIFEST.read_text()))
    assert not missing, f"not in docs/reproduce.md's manifest (add a row naming its producer): {missing}"


def test_every_listed_file_exists_once():
    names = [name for name, _ in manifest_rows(MANIFEST.read_text())]
    assert len(names) == len(set(names)), "a file is listed twice"
    assert sorted(set(names) - committed_results()) == [], "the manifest names files that are not committed"


@pytest.mark.parametrize("name, producer", manifest_rows(MANIFEST.read_text()))
def test_producer_exists_is_run_and_names_the_file(name, producer):
    assert (ROOT / producer).is_file(), f"{name}: producer {producer} does not exist"
    assert producer in producers_run_by_run_all(), f"{name}: run_all.sh does not run {producer}"
    # The file's stem is written by the producer itself or by the run_all.sh line that calls it.
    stem = Path(name).stem
    calls = [line for line in (ROOT / "run_all.sh").read_text().splitlines() if producer in line]
    assert stem in (ROOT / producer).read_text() or any(stem in line for line in calls), \
        f"{name}: neither {producer} nor its run_all.sh line names {stem}"
