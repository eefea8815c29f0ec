"""Tests for cryosampler.io.structure against the shared calmodulin files and synthetic PDB text."""

import dataclasses
import gzip
import os
from pathlib import Path

import gemmi
import numpy as np
import pytest

from conftest import make_helix
from cryosampler.io.structure import Structure
from cryosampler.io.correspondence import match_atoms, shared_ca
from cryosampler.io.atomic_files import EnsembleWriter, read_ensemble, read_structure, write_mmcif, write_pdb

# Independent of gemmi: the only elements calmodulin's protein atoms may hold.
ATOMIC_NUMBERS = {"C": 6, "N": 7, "O": 8, "S": 16}

# Measured facts of the shared files (SOURCES.md): atoms, first and last residue, residues, amino-acid residues.
SHARED_FILES = {
    "1exr.pdb": (1150, 2, 147, 146, 146),
    "1exr.cif": (1150, 2, 147, 146, 146),
    "4cln.pdb": (1164, 1, 148, 148, 148),
    "1prw.pdb": (1172, 0, 148, 149, 148),
    "1prw.cif": (1172, 0, 148, 149, 148),
    "1cll.pdb": (1130, 4, 147, 144, 144),
    "1clm.pdb": (1132, 4, 147, 144, 144),
    "3cln.pdb": (1126, 5, 147, 143, 143),
}

BACKBONE = ["N", "CA", "C", "O", "CB"]


def atom_record(serial, name, res_name, res_num, xyz, element, het=False, altloc=" ", occ=1.0, chain="A"):
    """One fixed-column PDB ATOM/HETATM record (test input only)."""
    # Names shorter than 4 characters start in column 14, as in deposited files.
    name = f" {name:<3}" if len(name) < 4 else name
    return (f"{'HETATM' if het else 'ATOM  '}{serial:5d} {name}{altloc}{res_name:>3} {chain}{res_num:4d}    "
            f"{xyz[0]:8.3f}{xyz[1]:8.3f}{xyz[2]:8.3f}{occ:6.2f}{0.0:6.2f}          {element:>2}")


def residue_records(res_name, res_num, atom_names, first_serial, het=False):
    """Records of one residue, atoms spread along x so no two coincide."""
    return [atom_record(first_serial + k, name, res_name, res_num, (1.5 * res_num + 0.3 * k, 0.2 * k, 0.1),
                        name[0], het)
            for k, name in enumerate(atom_names)]


def write_pdb_text(path: Path, records: list[str]) -> Path:
    path.write_text("\n".join(records + ["END"]) + "\n")
    return path


def assert_same_atoms(a: Structure, b: Structure, atol: float = 1e-3):
    for key in ("atom_names", "res_names", "res_nums", "elements", "atomic_numbers"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key), err_msg=key)
    np.testing.assert_allclose(a.coords, b.coords, atol=atol)


# Reading the shared calmodulin files.


@pytest.mark.parametrize("file_name", sorted(SHARED_FILES))
def test_shared_file_counts_and_ranges(shared_pdb, file_name):
    n_atoms, first, last, n_residues, n_amino_acids = SHARED_FILES[file_name]
    s = read_structure(shared_pdb(file_name))
    assert s.name == file_name.split(".")[0]
    assert s.chain_id == "A"
    assert s.n_atoms == n_atoms
    assert (s.res_nums.min(), s.res_nums.max()) == (first, last)
    assert s.n_residues == n_residues
    assert s.backbone_index.shape == (n_amino_acids, 4)
    assert s.coords.shape == (n_atoms, 3)
    assert len(s.sequence) == n_amino_acids


@pytest.mark.parametrize("file_name", sorted(SHARED_FILES))
def test_shared_file_invariants(shared_pdb, file_name):
    s = read_structure(shared_pdb(file_name))
    # Heavy atoms of the protein only: no hydrogens, waters or Ca2+ ions.
    assert set(s.elements) <= set(ATOMIC_NUMBERS), set(s.elements)
    assert "HOH" not in set(s.res_names)
    assert "CA" not in set(s.res_names)
    np.testing.assert_array_equal(s.atomic_numbers, [ATOMIC_NUMBERS[e] for e in s.elements])
    # Residues are contiguous runs with one number and one name each, in increasing order here.
    starts = s.residue_starts
    assert starts[0] == 0 and starts[-1] == s.n_atoms and np.all(np.diff(starts) > 0)
    for start, stop in zip(starts[:-1], starts[1:]):
        assert len(set(s.res_nums[start:stop])) == 1
        assert len(set(s.res_names[start:stop])) == 1
        assert len(set(s.atom_names[start:stop])) == stop - start  # one conformer: no duplicate names
    assert np.all(np.diff(s.res_nums[starts[:-1]]) > 0)
    # Each backbone row points at N, CA, C, O of one residue, the one named in backbone_res_nums.
    expected_names = np.tile(["N", "CA", "C", "O"], (len(s.backbone_index), 1))
    np.testing.assert_array_equal(s.atom_names[s.backbone_index], expected_names)
    np.testing.assert_array_equal(s.res_nums[s.backbone_index], np.repeat(s.backbone_res_nums[:, None], 4, axis=1))
    assert np.all(np.diff(s.backbone_res_nums) > 0)
    # Bonded backbone: N-CA and CA-C about 1.46 and 1.52 Å.
    xyz = s.coords[s.backbone_index]
    n_ca = np.linalg.norm(xyz[:, 1] - xyz[:, 0], axis=-1)
    ca_c = np.linalg.norm(xyz[:, 2] - xyz[:, 1], axis=-1)
    assert np.all(np.abs(n_ca - 1.46) < 0.15) and np.all(np.abs(ca_c - 1.52) < 0.15)


def test_arrays_are_read_only(shared_pdb):
    s = read_structure(shared_pdb("4cln.pdb"))
    with pytest.raises(ValueError):
        s.coords[0, 0] = 0.0
    with pytest.raises(ValueError):
        s.res_nums[0] = 99


def test_1exr_pdb_and_mmcif_agree(shared_pdb):
    from_pdb = read_structure(shared_pdb("1exr.pdb"))
    from_cif = read_structure(shared_pdb("1exr.cif"))
    assert from_pdb.chain_id == from_cif.chain_id
    assert_same_atoms(from_pdb, from_cif, atol=1e-6)


def test_1prw_keeps_ace_cap_and_m3l(shared_pdb):
    s = read_structure(shared_pdb("1prw.pdb"))
    ace = s.res_nums == 0
    assert set(s.res_names[ace]) == {"ACE"}
    assert ace.sum() == 3 and "CA" not in s.atom_names[ace]
    assert 0 not in s.backbone_res_nums  # the cap has no backbone row
    m3l = s.res_nums == 115
    assert set(s.res_names[m3l]) == {"M3L"} and m3l.sum() == 12
    assert 115 in s.backbone_res_nums
    assert s.sequence[list(s.backbone_res_nums).index(115)] == "K"  # trimethyl-lysine reads as its parent


def test_1cll_drops_ethanol_and_keeps_first_asp118_conformer(shared_pdb):
    s = read_structure(shared_pdb("1cll.pdb"))
    assert "EOH" not in set(s.res_names)
    asp = s.res_nums == 118
    assert set(s.res_names[asp]) == {"ASP"}
    assert sorted(s.atom_names[asp]) == sorted(["N", "CA", "C", "O", "CB", "CG", "OD1", "OD2"])
    # Conformer A of CG is at (32.107, 2.291, -1.516); B would be at (31.758, 0.438, -0.326).
    cg = s.coords[asp & (s.atom_names == "CG")][0]
    np.testing.assert_allclose(cg, [32.107, 2.291, -1.516], atol=1e-3)


def test_sequence_of_4cln(shared_pdb):
    s = read_structure(shared_pdb("4cln.pdb"))
    assert len(s.sequence) == 148
    assert set(s.sequence) <= set("ACDEFGHIKLMNPQRSTVWY")


def test_missing_chain_is_named(shared_pdb):
    path = shared_pdb("4cln.pdb")
    with pytest.raises(ValueError, match=r"no protein chain 'B'; protein chains here: A \(148 residues\)") as err:
        read_structure(path, chain="B")
    assert str(path) in str(err.value)


# Round trips.


@pytest.mark.parametrize("writer, suffix", [(write_pdb, ".pdb"), (write_mmcif, ".cif")])
@pytest.mark.parametrize("file_name", ["4cln.pdb", "1prw.pdb"])
def test_round_trip_shared_file(shared_pdb, tmp_path, writer, suffix, file_name):
    s = read_structure(shared_pdb(file_name))
    path = tmp_path / f"copy{suffix}"
    writer(path, s)
    back = read_structure(path)
    assert_same_atoms(back, s)
    assert back.chain_id == s.chain_id
    np.testing.assert_array_equal(back.backbone_index, s.backbone_index)


@pytest.mark.parametrize("writer, suffix", [(write_pdb, ".pdb"), (write_mmcif, ".cif")])
def test_round_trip_tiny_structure_with_new_coords(tiny_structure, tmp_path, writer, suffix):
    moved = tiny_structure.coords + 10.0
    path = tmp_path / f"tiny{suffix}"
    writer(path, tiny_structure, moved)
    back = read_structure(path)
    assert back.name == "tiny"
    assert_same_atoms(back, tiny_structure.with_coords(moved))


@pytest.mark.parametrize("writer, suffix", [(write_pdb, ".pdb"), (write_mmcif, ".cif")])
def test_ensemble_round_trip(shared_pdb, tmp_path, writer, suffix):
    s = read_structure(shared_pdb("4cln.pdb"))
    rng = np.random.default_rng(0)
    ensemble = s.coords[None] + rng.normal(scale=1.0, size=(3, s.n_atoms, 3))  # (M, N, 3), Å
    path = tmp_path / f"ensemble{suffix}"
    writer(path, s, ensemble)
    coords = read_ensemble(path, s)
    assert coords.shape == (3, s.n_atoms, 3)
    np.testing.assert_allclose(coords, ensemble, atol=1e-3)
    # read_structure takes the first model.
    np.testing.assert_allclose(read_structure(path).coords, ensemble[0], atol=1e-3)


def test_read_ensemble_of_single_model_file(shared_pdb):
    s = read_structure(shared_pdb("1clm.pdb"))  # wrapped in MODEL 1 / ENDMDL
    coords = read_ensemble(shared_pdb("1clm.pdb"), s)
    assert coords.shape == (1, s.n_atoms, 3)
    np.testing.assert_allclose(coords[0], s.coords)


def test_read_ensemble_rejects_different_atom_count(shared_pdb):
    path = shared_pdb("4cln.pdb")
    with pytest.raises(ValueError, match=r"atoms do not match the reference \(1164 atoms, reference 1exr has 1150\)") \
            as err:
        read_ensemble(path, read_structure(shared_pdb("1exr.pdb")))
    assert str(path) in str(err.value)


def test_read_ensemble_names_first_differing_atom(tiny_structure, tmp_path):
    path = tmp_path / "tiny.pdb"
    write_pdb(path, tiny_structure)
    names = tiny_structure.atom_names.copy()
    names[4] = "CG"  # residue 1: N, CA, C, O, CB -> ... CG
    reference = dataclasses.replace(tiny_structure, atom_names=names)
    with pytest.raises(ValueError, match=r"atom 4 is ALA 1 CB, reference has ALA 1 CG") as err:
        read_ensemble(path, reference)
    assert str(path) in str(err.value) and "model 1" in str(err.value)


# Atomic writes.


@pytest.mark.parametrize("writer", [write_pdb, write_mmcif])
def test_failed_write_leaves_no_file(tiny_structure, tmp_path, writer):
    path = tmp_path / "out.pdb"
    with pytest.raises(ValueError, match=r"coords must have shape .*got \(3, 3\)") as err:
        writer(path, tiny_structure, np.zeros((3, 3)))
    assert str(path) in str(err.value)
    bad = tiny_structure.coords.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        writer(path, tiny_structure, bad)
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_previous_file(tiny_structure, tmp_path, monkeypatch):
    path = tmp_path / "out.pdb"
    write_pdb(path, tiny_structure)
    before = path.read_text()
    with pytest.raises(ValueError):
        write_pdb(path, tiny_structure, np.zeros((2, 5, 3)))

    # Fail after the temporary file is written: it must be removed and the old file kept.
    def refuse(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        write_pdb(path, tiny_structure, tiny_structure.coords + 1.0)
    monkeypatch.undo()
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.pdb"]


@pytest.mark.parametrize("suffix", [".pdb", ".cif"])
def test_ensemble_written_in_batches_equals_one_write(tiny_structure, tmp_path, suffix):
    models = tiny_structure.coords + np.arange(5.0)[:, None, None]  # (5, N, 3)
    whole, batched = tmp_path / f"whole{suffix}", tmp_path / f"batched{suffix}"
    with EnsembleWriter(whole, tiny_structure) as out:
        out.write(models)
    with EnsembleWriter(batched, tiny_structure) as out:
        for batch in (models[:2], models[2:3], models[3:]):  # a one-model batch too
            out.write(batch)
    assert batched.read_bytes() == whole.read_bytes()
    np.testing.assert_allclose(read_ensemble(batched, tiny_structure), models, atol=1e-3)


def test_interrupted_ensemble_leaves_nothing(tiny_structure, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with EnsembleWriter(tmp_path / "ensemble.pdb", tiny_structure) as out:
            out.write(tiny_structure.coords)
            assert len(list(tmp_path.iterdir())) == 1  # the temporary file, not the final name
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_mmcif_has_no_placeholder_unit_cell(tiny_structure, tmp_path):
    path = tmp_path / "tiny.cif"
    write_mmcif(path, tiny_structure, np.stack([tiny_structure.coords] * 2))
    block = gemmi.cif.read(str(path)).sole_block()
    assert block.find_value("_cell.length_a") is None and block.find_value("_symmetry.space_group_name_H-M") is None
    assert not gemmi.read_structure(str(path)).cell.is_crystal()


# Loud errors on bad input.


def test_missing_file(tmp_path):
    path = tmp_path / "absent.pdb"
    with pytest.raises(ValueError, match="not found") as err:
        read_structure(path)
    assert str(path) in str(err.value)


def test_unknown_suffix(tmp_path):
    path = tmp_path / "model.xyz"
    path.write_text("1\n\nC 0 0 0\n")
    with pytest.raises(ValueError, match="unknown structure format") as err:
        read_structure(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("suffix, problem", [(".cif", "cannot parse"), (".pdb", "cannot parse.*no atoms")])
def test_garbage_file(tmp_path, suffix, problem):
    path = tmp_path / f"garbage{suffix}"
    path.write_text("this is not a structure file\n0 1 2 3\n")
    with pytest.raises(ValueError, match=problem) as err:
        read_structure(path)
    assert str(path) in str(err.value)


def test_parse_error_is_one_line(tmp_path):
    records = three_alanines()
    records[6] = records[6][:30]  # a record cut before its coordinates
    path = write_pdb_text(tmp_path / "cut.pdb", records)
    with pytest.raises(ValueError, match=r"cannot parse structure file \(.*line 7") as err:
        read_structure(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_file_with_only_waters(tmp_path):
    path = write_pdb_text(tmp_path / "waters.pdb", [
        atom_record(1, "O", "HOH", 201, (0.0, 0.0, 0.0), "O", het=True),
        atom_record(2, "O", "HOH", 202, (3.0, 0.0, 0.0), "O", het=True),
        atom_record(3, "CA", "CA", 301, (6.0, 0.0, 0.0), "CA", het=True),
    ])
    with pytest.raises(ValueError, match="no protein chain") as err:
        read_structure(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("middle_atoms, problem", [
    (["N", "C", "O", "CB"], r"residue ALA 2 has no CA atom and is not a known cap"),
    (["N", "CA", "C", "CB"], r"residue ALA 2 is missing backbone atom\(s\) O"),
], ids=["no_ca", "no_o"])
def test_residue_missing_backbone_atom(tmp_path, middle_atoms, problem):
    records = (residue_records("ALA", 1, BACKBONE, 1) + residue_records("ALA", 2, middle_atoms, 6)
               + residue_records("ALA", 3, BACKBONE, 10))
    path = write_pdb_text(tmp_path / "broken.pdb", records)
    with pytest.raises(ValueError, match=problem) as err:
        read_structure(path)
    assert str(path) in str(err.value)


def test_ace_cap_without_ca_is_accepted(tmp_path):
    records = (residue_records("ACE", 0, ["C", "O", "CH3"], 1, het=True) + residue_records("ALA", 1, BACKBONE, 4)
               + residue_records("ALA", 2, BACKBONE, 9))
    s = read_structure(write_pdb_text(tmp_path / "capped.pdb", records))
    assert s.n_atoms == 13 and s.n_residues == 3
    np.testing.assert_array_equal(s.backbone_res_nums, [1, 2])
    assert list(s.res_names[:3]) == ["ACE"] * 3
    assert s.sequence == "AA"


def test_altloc_keeps_first_conformer(tmp_path):
    records = residue_records("SER", 1, ["N", "CA", "C", "O", "CB"], 1) + [
        atom_record(6, "OG", "SER", 1, (1.0, 2.0, 3.0), "O", altloc="A", occ=0.6),
        atom_record(7, "OG", "SER", 1, (4.0, 5.0, 6.0), "O", altloc="B", occ=0.4),
    ]
    s = read_structure(write_pdb_text(tmp_path / "altloc.pdb", records))
    assert s.n_atoms == 6
    np.testing.assert_allclose(s.coords[s.atom_names == "OG"], [[1.0, 2.0, 3.0]])


def three_alanines() -> list[str]:
    """Residues ALA 1-3 of chain A, atoms at distinct positions; serials 1-15, file lines 1-15."""
    return sum((residue_records("ALA", r, BACKBONE, 5 * r - 4) for r in (1, 2, 3)), [])


def chain_records(chain: str, first_res: int, n_residues: int, first_serial: int, y: float) -> list[str]:
    """Alanines of one chain, shifted by ``y`` Å so that chains never overlap."""
    records = []
    for r in range(n_residues):
        res_num = first_res + r
        records += [atom_record(first_serial + len(records) + k, name, "ALA", res_num,
                                (1.5 * r + 0.3 * k, y + 0.2 * k, 0.1), name[0], chain=chain)
                    for k, name in enumerate(BACKBONE)]
    return records


@pytest.mark.parametrize("field, columns, axis", [
    ("  abc.de", (30, 38), "x"),  # gemmi reads this as 0.0
    ("  1.2x45", (38, 46), "y"),  # gemmi reads this as 1.2
    ("        ", (46, 54), "z"),  # blank: gemmi reads 0.0
])
@pytest.mark.parametrize("suffix", [".pdb", ".pdb.gz"])
def test_junk_coordinate_field_names_the_line(tmp_path, field, columns, axis, suffix):
    records = three_alanines()
    begin, end = columns
    records[6] = records[6][:begin] + field + records[6][end:]
    path = write_pdb_text(tmp_path / "junk.pdb", records)
    if suffix == ".pdb.gz":
        path = tmp_path / "junk.pdb.gz"
        path.write_bytes(gzip.compress((tmp_path / "junk.pdb").read_bytes()))
    with pytest.raises(ValueError, match=rf"line 7: {axis} coordinate '{field.strip()}' \(columns {begin + 1}-{end}\) "
                                         "is not a number") as err:
        read_structure(path)
    assert str(path) in str(err.value)


def helix_mmcif_with_atom_row(path, atom_id: int, rows) -> None:
    """Write a 3-residue helix as mmCIF, with the _atom_site row of ``atom_id`` replaced by ``rows(fields)``
    (a list of rows, each a list of fields)."""
    write_mmcif(path, make_helix(3))
    lines = path.read_text().splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith(f"ATOM {atom_id} "))
    lines[row:row + 1] = [" ".join(fields) for fields in rows(lines[row].split())]
    path.write_text("\n".join(lines) + "\n")


def test_non_numeric_mmcif_coordinate_names_the_atom(tmp_path):
    path = tmp_path / "junk.cif"
    # ALA 1 C, its Cartn_x (field 10) not a number
    helix_mmcif_with_atom_row(path, 3, lambda fields: [fields[:10] + ["abc"] + fields[11:]])
    with pytest.raises(ValueError, match=r"chain A residue ALA 1 atom C: coordinate is not a number") as err:
        read_structure(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("copy", ["same_line", "other_serial"])
def test_duplicate_atom_is_refused_with_both_lines(tmp_path, copy):
    records = three_alanines()
    # A second CA of ALA 2 right after the first one (line 7): an identical copy, or another serial and position.
    extra = records[6] if copy == "same_line" else atom_record(99, "CA", "ALA", 2, (9.0, 9.0, 9.0), "C")
    records.insert(7, extra)
    path = write_pdb_text(tmp_path / "dup.pdb", records)
    with pytest.raises(ValueError, match=r"lines 7 and 8: chain A residue ALA 2 has atom CA twice; remove one copy") \
            as err:
        read_structure(path)
    assert str(path) in str(err.value)


def test_duplicate_atom_in_mmcif_names_the_atom_ids(tmp_path):
    path = tmp_path / "dup.cif"
    # ALA 2 CA, followed by a copy with _atom_site.id 99
    helix_mmcif_with_atom_row(path, 7, lambda fields: [fields, fields[:1] + ["99"] + fields[2:]])
    with pytest.raises(ValueError, match=r"\(_atom_site.id 7 and 99\): chain A residue ALA 2 has atom CA twice") \
            as err:
        read_structure(path)
    assert str(path) in str(err.value)


def test_collapsed_coordinates_are_refused(tmp_path):
    records = [r[:30] + f"{5.0:8.3f}{5.0:8.3f}{5.0:8.3f}" + r[54:] for r in three_alanines()]
    path = write_pdb_text(tmp_path / "collapsed.pdb", records)
    with pytest.raises(ValueError, match=r"all 15 atoms lie at one point \(5.000, 5.000, 5.000\) \(collapsed") as err:
        read_structure(path)
    assert str(path) in str(err.value)


def test_placeholder_atoms_at_one_point_are_refused(tmp_path):
    records = three_alanines()
    for i in (4, 9):  # CB of ALA 1 and ALA 2 written as 0, 0, 0 by some modelling tools
        records[i] = records[i][:30] + f"{0.0:8.3f}{0.0:8.3f}{0.0:8.3f}" + records[i][54:]
    path = write_pdb_text(tmp_path / "placeholder.pdb", records)
    with pytest.raises(ValueError, match=r"2 of 15 atoms lie within 0.1 Å of another atom, e.g. ALA 1 CB and ALA 2 CB "
                                         r"at \(0.000, 0.000, 0.000\)") as err:
        read_structure(path)
    assert str(path) in str(err.value)


def test_residue_messages_show_plain_names(tiny_structure):
    res_names = tiny_structure.res_names.copy()
    res_names[7] = "GLY"  # residue 2: ALA, ALA, GLY, ALA, ALA
    with pytest.raises(ValueError, match=r"residue ALA 2 mixes residue names ALA, GLY;") as err:
        dataclasses.replace(tiny_structure, res_names=res_names)
    assert "np.str_" not in str(err.value)
    names = tiny_structure.atom_names.copy()
    names[1] = "N"  # residue 1: N, N, C, O, CB
    with pytest.raises(ValueError, match=r"residue ALA 1 has atom name\(s\) N more than once") as err:
        dataclasses.replace(tiny_structure, atom_names=names)
    assert "np.str_" not in str(err.value)


def test_with_coords_validates_shape(tiny_structure):
    moved = tiny_structure.with_coords(tiny_structure.coords * 2.0)
    np.testing.assert_allclose(moved.coords, tiny_structure.coords * 2.0)
    np.testing.assert_array_equal(moved.atom_names, tiny_structure.atom_names)
    for shape in [(tiny_structure.n_atoms, 2), (tiny_structure.n_atoms - 1, 3), (1, tiny_structure.n_atoms, 3)]:
        with pytest.raises(ValueError, match=rf"coords must have shape \(N, 3\) with N={tiny_structure.n_atoms}") as err:
            tiny_structure.with_coords(np.zeros(shape))
        assert "tiny" in str(err.value)


def test_translated_shifts_coordinates(tiny_structure):
    shift = np.array([1.0, -2.0, 3.5])
    moved = tiny_structure.translated(shift)
    np.testing.assert_allclose(moved.coords - tiny_structure.coords, np.broadcast_to(shift, moved.coords.shape))
    np.testing.assert_array_equal(moved.backbone_index, tiny_structure.backbone_index)
    assert abs(tiny_structure.coords.mean(0)).max() < 1e-12  # original untouched
    with pytest.raises(ValueError, match=r"shift must have shape \(3,\)"):
        tiny_structure.translated([1.0, 2.0])


def test_structure_rejects_bad_arrays(tiny_structure):
    with pytest.raises(ValueError, match=rf"atom_names must have shape \({tiny_structure.n_atoms},\)"):
        dataclasses.replace(tiny_structure, atom_names=tiny_structure.atom_names[:-1])
    with pytest.raises(ValueError, match="no atoms"):
        Structure(coords=np.zeros((0, 3)), elements=[], atomic_numbers=[], atom_names=[], res_names=[], res_nums=[],
                  chain_id="A", name="empty")


# Matching atoms between entries.


def test_match_atoms_1exr_vs_1cll(shared_pdb):
    a = read_structure(shared_pdb("1exr.pdb"))
    b = read_structure(shared_pdb("1cll.pdb"))
    idx_a, idx_b, report = match_atoms(a, b)
    np.testing.assert_array_equal(a.res_nums[idx_a], b.res_nums[idx_b])
    np.testing.assert_array_equal(a.atom_names[idx_a], b.atom_names[idx_b])
    assert np.all(np.diff(idx_a) > 0)  # in the atom order of a
    assert len(set(idx_b)) == len(idx_b)

    # Independent count by set arithmetic on (residue number, atom name).
    keys_a = set(zip(a.res_nums.tolist(), a.atom_names.tolist()))
    keys_b = set(zip(b.res_nums.tolist(), b.atom_names.tolist()))
    assert report.n_matched == len(idx_a) == len(keys_a & keys_b)
    assert report.n_only_a == len(keys_a - keys_b) == a.n_atoms - report.n_matched
    assert report.n_only_b == len(keys_b - keys_a) == b.n_atoms - report.n_matched
    # 1EXR residues 2-3 are absent from 1CLL (4-147): all their atoms are dropped from a.
    in_2_3 = np.isin(a.res_nums, [2, 3])
    assert not np.any(np.isin(np.flatnonzero(in_2_3), idx_a))
    assert report.n_only_a >= in_2_3.sum()
    assert report.examples_only_a[0] == f"{a.res_names[0]}2:N"
    assert len(report.examples_only_a) == len(report.examples_only_b) == 5
    # Paramecium vs human CaM: some matched residues differ in name.
    assert report.n_res_name_mismatch == int(np.sum(a.res_names[idx_a] != b.res_names[idx_b])) > 0

    text = str(report)
    assert f"matched {report.n_matched} atoms" in text
    assert f"dropped {report.n_only_a} only in a" in text and f"{report.n_only_b} only in b" in text
    assert report.examples_only_a[0] in text


def test_match_atoms_with_itself(tiny_structure):
    idx_a, idx_b, report = match_atoms(tiny_structure, tiny_structure.translated([1.0, 0.0, 0.0]))
    np.testing.assert_array_equal(idx_a, np.arange(tiny_structure.n_atoms))
    np.testing.assert_array_equal(idx_b, idx_a)
    assert (report.n_only_a, report.n_only_b, report.n_res_name_mismatch) == (0, 0, 0)
    assert report.examples_only_a == report.examples_only_b == ()


def test_shared_ca_pairs_ca_atoms_by_residue_number():
    a = make_helix(8, first_residue=3)  # residues 3-10
    b = make_helix(6, first_residue=7)  # residues 7-12
    ca_a, rows_b = shared_ca(a, b.backbone_res_nums)
    assert list(a.res_nums[ca_a]) == [7, 8, 9, 10] and set(a.atom_names[ca_a]) == {"CA"}
    assert list(b.backbone_res_nums[rows_b]) == [7, 8, 9, 10]
    none_a, none_b = shared_ca(a, np.array([100, 200]))
    assert none_a.shape == none_b.shape == (0,)
