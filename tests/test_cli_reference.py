"""The real `cryosampler` entry point on bad reference files: one line naming the file, exit 2, no output."""

import re
import subprocess
import sys

import pytest

from test_structure import three_alanines, write_pdb_text


def junk_coordinate():
    records = three_alanines()
    records[6] = records[6][:30] + "  abc.de" + records[6][38:]
    return records, r"line 7: x coordinate 'abc.de'"


def duplicate_atom():
    records = three_alanines()
    return records[:7] + records[6:], r"lines 7 and 8: chain A residue ALA 2 has atom CA twice"


def collapsed():
    return [r[:30] + f"{1.0:8.3f}{1.0:8.3f}{1.0:8.3f}" + r[54:] for r in three_alanines()], r"all 15 atoms lie at one point"


@pytest.mark.parametrize("make", [junk_coordinate, duplicate_atom, collapsed])
def test_bad_reference_is_one_line_error(tiny_checkpoint, tmp_path, make):
    records, message = make()
    reference = write_pdb_text(tmp_path / "ref.pdb", records)
    out = tmp_path / "ensemble.pdb"
    result = subprocess.run(
        [sys.executable, "-m", "cryosampler", "sample", "--checkpoint", str(tiny_checkpoint), "--reference",
         str(reference), "-n", "2", "--steps", "2", "-o", str(out), "--quiet"],
        capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("cryosampler: error: "), result.stderr
    assert str(reference) in result.stderr
    assert re.search(message, result.stderr), result.stderr
    assert not out.exists()
