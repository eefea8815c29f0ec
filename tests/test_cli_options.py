"""What the three commands share is spelled alike (README, "Command-line options"); a deprecated spelling works
until the next release and prints one note that names the new one (``commands.add_renamed``)."""

import re

import pytest

import cryosampler.cli as cli

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
    with pytest.raises(SystemExit) as exit:
        cli.main(["train", "--maps", "m.mrc"])
    assert exit.value.code == 2 and "the following arguments are required: -o/--output" in capsys.readouterr().err


@pytest.mark.parametrize("command", sorted(BASE))
def test_every_command_takes_the_shared_options(command):
    args = parse(command, [], ["--output", "x", "--chain", "B", "--device", "cpu", "--quiet"])
    assert (str(args.output), args.chain, args.device, args.quiet) == ("x", "B", "cpu", True)
    if command != "sample":
        assert [str(m) for m in parse(command, [], ["--maps", "a.mrc", "b.mrc"]).maps] == ["a.mrc", "b.mrc"]
    if command != "fit":  # fit reads a map out deterministically: no seed
        assert parse(command, [], ["--seed", "3"]).seed == 3
