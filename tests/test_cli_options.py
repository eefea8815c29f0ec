"""What the three commands share is spelled alike (README, "Command-line options"); a deprecated spelling works
until the next release and prints one note that names the new one (``commands.add_renamed``)."""

import argparse
import json
import re

import pytest

import cryosampler.cli as cli
from cryosampler.commands import Renamed
from cryosampler.experiments.profiles import repo_root

BASE = {"train": ["--maps", "m.mrc", "-o", "run"],
        "sample": ["--checkpoint", "c.pt", "--reference", "r.pdb", "-o", "e.pdb"],
        "fit": ["--checkpoint", "c.pt", "--reference", "r.pdb", "--maps", "m.mrc", "-o", "f.pdb"]}

# (command, what the deprecated spelling replaces in BASE, deprecated arguments, the same in the new spelling,
#  the new spelling the note names)
DEPRECATED = [("train", ["-o", "run"], ["--out", "run"], ["-o", "run"], "-o/--output"),
              ("fit", ["--maps", "m.mrc"], ["--map", "a.mrc", "b.mrc"], ["--maps", "a.mrc", "b.mrc"], "--maps"),
              ("train", [], ["--skip-fit-probes"], ["--allow-far-conformation"], "--allow-far-conformation"),
              ("fit", [], ["--skip-fit-probes"], ["--allow-far-conformation"], "--allow-far-conformation"),
              ("sample", [], ["--force"], ["--allow-map-overwrite"], "--allow-map-overwrite")]
IDS = [f"{case[0]} {case[2][0]}" for case in DEPRECATED]


def parse(command: str, replaced: list[str], args: list[str]):
    base = BASE[command]
    at = next((k for k in range(len(base)) if base[k:k + len(replaced)] == replaced), 0) if replaced else 0
    return cli._parser().parse_args([command, *base[:at], *base[at + len(replaced):], *args])


def note(old: str, new: str) -> str:
    return f"cryosampler: note: {old} is deprecated and will be removed in the next release; use {new}"


@pytest.mark.parametrize("command,replaced,old,new,named", DEPRECATED, ids=IDS)
def test_a_deprecated_spelling_works_as_the_new_one_with_one_note(capsys, command, replaced, old, new, named):
    current = parse(command, replaced, new)
    assert capsys.readouterr().err == ""
    assert parse(command, replaced, old) == current
    assert capsys.readouterr().err.splitlines() == [note(old[0], named)]
    assert parse(command, replaced, old + old) == current  # given twice: still one note
    assert capsys.readouterr().err.splitlines() == [note(old[0], named)]


@pytest.mark.parametrize("command,replaced,old,new,named", DEPRECATED, ids=IDS)
def test_help_shows_the_new_spelling_and_the_old_one_only_as_deprecated(capsys, command, replaced, old, new, named):
    with pytest.raises(SystemExit):
        cli.main([command, "-h"])
    text = " ".join(capsys.readouterr().out.split())  # the help wraps its lines
    assert new[0] in text and f"(deprecated: {old[0]})" in text
    assert not re.search(rf"{old[0]}(?![\w-])", text.replace(f"(deprecated: {old[0]})", ""))


def test_a_missing_option_is_named_by_its_new_spelling(capsys):
    with pytest.raises(SystemExit) as raised:
        cli.main(["train", "--maps", "m.mrc"])
    assert raised.value.code == 2 and "the following arguments are required: -o/--output" in capsys.readouterr().err


@pytest.mark.parametrize("command", sorted(BASE))
def test_every_command_takes_the_shared_options(command):
    args = parse(command, [], ["--output", "x", "--chain", "B", "--device", "cpu", "--quiet"])
    assert (str(args.output), args.chain, args.device, args.quiet) == ("x", "B", "cpu", True)
    if command != "sample":
        assert [str(m) for m in parse(command, [], ["--maps", "a.mrc", "b.mrc"]).maps] == ["a.mrc", "b.mrc"]
    if command != "fit":  # fit reads a map out deterministically: no seed
        assert parse(command, [], ["--seed", "3"]).seed == 3


def current_options() -> dict[str, set[str]]:
    """Each command's option spellings as -h shows them: deprecated ones left out."""
    options = {}
    for name, module in cli.COMMANDS.items():
        parser = argparse.ArgumentParser()
        module.add_args(parser)
        options[name] = {s for action in parser._actions for s in action.option_strings}
    return options


def notebook_calls():
    """(where, command, the options given) of every in-process call in the notebooks, from the command's name to
    the next command (the list literal and what a cell adds to it)."""
    for path in sorted((repo_root() / "notebooks").glob("*.ipynb")):
        for index, cell in enumerate(json.loads(path.read_text())["cells"]):
            source = "".join(cell["source"]) if cell["cell_type"] == "code" else ""
            parts = re.split(r'\[\s*"(train|sample|fit|report|traverse)"', source)
            for command, text in zip(parts[1::2], parts[2::2]):
                yield f"{path.name} cell {index}", command, re.findall(r'"(-{1,2}[a-z][\w-]*)"', text)


def documented_lines():
    """(where, line) of the README, the docs and the notebooks' Markdown."""
    for path in [repo_root() / "README.md", *sorted((repo_root() / "docs").glob("*.md"))]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            yield f"{path.name}:{number}", line
    for path in sorted((repo_root() / "notebooks").glob("*.ipynb")):
        for index, cell in enumerate(json.loads(path.read_text())["cells"]):
            if cell["cell_type"] == "markdown":
                for line in "".join(cell["source"]).splitlines():
                    yield f"{path.name} cell {index}", line


def documented_calls():
    """(where, command, the options given) of every command line in a code block of the documentation."""
    for where, line in documented_lines():
        found = re.search(r"(?:^|-m )cryosampler +(train|sample|fit|report|traverse) (.*)", line.split("#")[0])
        if found:
            yield where, found[1], re.findall(r"(?<!\S)(-{1,2}[a-z][\w-]*)", found[2])


def test_notebooks_and_docs_call_the_commands_with_current_spellings():
    options = current_options()
    calls = [*notebook_calls(), *documented_calls()]
    assert {command for _, command, _ in calls} == set(cli.COMMANDS)  # the search finds them
    wrong = [f"{where}: {command} {flag}" for where, command, flags in calls for flag in flags
             if flag not in options[command]]
    assert not wrong, "not an option of the command, or a deprecated spelling:\n" + "\n".join(wrong)


def test_the_documentation_names_deprecated_spellings_only_in_the_readme_table():
    old = set()
    for module in cli.COMMANDS.values():
        parser = argparse.ArgumentParser()
        module.add_args(parser)
        old |= {s for action in parser._actions if isinstance(action, Renamed) for s in action.old}
    assert old == {"--out", "--map", "--skip-fit-probes", "--force"}
    found, in_table = [], False
    for where, line in documented_lines():
        if line.startswith("#"):
            in_table = where.startswith("README.md:") and line == "### Command-line options"
        found += [f"{where}: {line}" for spelling in old
                  if not in_table and re.search(rf"(?<![\w-]){spelling}(?![\w-])", line)]
    assert not found, "deprecated spellings outside the README's table:\n" + "\n".join(found)
