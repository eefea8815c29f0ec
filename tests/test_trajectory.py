"""XTC trajectories written through mdtraj: read back by mdtraj itself equal to the written ensemble within XTC's
precision, atomically written, shapes checked."""

import mdtraj
import numpy as np
import pytest

from cryosampler.io.atomic_files import write_pdb
from cryosampler.io.trajectory import XTC_PRECISION, XtcWriter, read_trajectory
from conftest import make_helix


def _ensemble(structure, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return structure.coords + rng.normal(scale=2.0, size=(n, structure.n_atoms, 3)) + [40.0, -25.0, 7.5]


def test_xtc_reads_back_as_the_ensemble_within_its_precision(tmp_path):
    structure = make_helix(8)
    frames = _ensemble(structure, 5)
    write_pdb(tmp_path / "topology.pdb", structure)
    with XtcWriter(tmp_path / "ensemble.xtc", structure.n_atoms) as out:
        out.write(frames[:2])
        out.write(frames[2:])
        out.write(frames[4])  # one (N, 3) frame more
    assert out.n_frames == 6
    trajectory = mdtraj.load(str(tmp_path / "ensemble.xtc"), top=str(tmp_path / "topology.pdb"))
    assert trajectory.n_frames == 6 and trajectory.unitcell_vectors is None
    np.testing.assert_allclose(trajectory.xyz * 10.0, np.concatenate([frames, frames[4:]]), atol=XTC_PRECISION)
    assert trajectory.time.tolist() == list(range(6))
    ours = read_trajectory(tmp_path / "ensemble.xtc", tmp_path / "topology.pdb")
    np.testing.assert_allclose(ours.frames[:5], frames, atol=XTC_PRECISION)
    assert list(ours.topology.atom_names) == list(structure.atom_names)


def test_a_failed_write_leaves_an_earlier_file_untouched_and_no_temporary_file(tmp_path):
    structure = make_helix(4)
    path = tmp_path / "ensemble.xtc"
    path.write_bytes(b"earlier")
    with pytest.raises(ValueError, match=r"frames must have shape \(M, 20, 3\)"):
        with XtcWriter(path, structure.n_atoms) as out:
            out.write(_ensemble(structure, 2))
            out.write(np.zeros((1, 19, 3)))
    assert path.read_bytes() == b"earlier" and sorted(p.name for p in tmp_path.iterdir()) == ["ensemble.xtc"]
    with pytest.raises(ValueError, match="NaN or inf"):
        with XtcWriter(tmp_path / "other.xtc", structure.n_atoms) as out:
            out.write(np.full((1, structure.n_atoms, 3), np.nan))
    assert not (tmp_path / "other.xtc").exists()


def test_an_xtc_ensemble_reads_back_in_the_reference_atom_order_and_other_atoms_are_refused(tmp_path):
    from cryosampler.io.trajectory import read_xtc_ensemble

    structure = make_helix(8)
    frames = _ensemble(structure, 3)
    write_pdb(tmp_path / "topology.pdb", structure)
    with XtcWriter(tmp_path / "ensemble.xtc", structure.n_atoms) as out:
        out.write(frames)
    np.testing.assert_allclose(read_xtc_ensemble(tmp_path / "ensemble.xtc", tmp_path / "topology.pdb", structure),
                               frames, atol=XTC_PRECISION)
    with pytest.raises(ValueError, match=r"ensemble.xtc \(topology .*\): atoms do not match the reference \(40 atoms, "
                                         r"reference tiny has 45\)"):
        read_xtc_ensemble(tmp_path / "ensemble.xtc", tmp_path / "topology.pdb", make_helix(9))
    write_pdb(tmp_path / "other.pdb", make_helix(9))
    with pytest.raises(ValueError, match=r"ensemble.xtc: cannot read it as an XTC trajectory of the atoms of "
                                         r".*other.pdb \(The topology and the trajectory files might not contain the same atoms"):
        read_xtc_ensemble(tmp_path / "ensemble.xtc", tmp_path / "other.pdb", make_helix(9))
    (tmp_path / "damaged.xtc").write_text("not a trajectory")
    with pytest.raises(ValueError, match=r"damaged.xtc: cannot read it as an XTC trajectory .*\(Malformed XTC file"):
        read_xtc_ensemble(tmp_path / "damaged.xtc", tmp_path / "topology.pdb", structure)


def test_dssp_finds_calmodulin_s_helices_and_its_short_strands(shared_pdb):
    from cryosampler.io.atomic_files import read_structure
    from cryosampler.io.trajectory import secondary_structure

    structure = read_structure(shared_pdb("1exr.pdb"))
    codes = secondary_structure(structure)
    assert codes.shape == structure.backbone_res_nums.shape and set(codes) == {"H", "E", "C"}
    by_residue = dict(zip(structure.backbone_res_nums.tolist(), codes))
    # The central helix (residues 65–92) and the paired β-strands of the EF-hand loops (e.g. 26–27 with 63–64).
    assert all(by_residue[n] == "H" for n in range(66, 92))
    assert by_residue[26] == by_residue[63] == "E"

