"""Notebook 09's simulated complex (experiments.complex_motion) and the per-chain RMSD it is scored with
(evaluation.metrics.chain_rmsds)."""

import numpy as np
import pytest

from cryosampler.evaluation.metrics import chain_rmsds
from cryosampler.experiments.complex_motion import chain_fit_table, chain_table, subunit_path
from cryosampler.io.structure import Structure
from cryosampler.physics.superpose import rmsd

from conftest import make_complex, make_helix


def _dimer() -> Structure:
    """Chains A (12 residues) and B (10 residues, 12 Å beside A along x)."""
    return make_complex(12, 10, name="dimer")


def test_the_moving_chain_turns_and_moves_as_a_rigid_body_and_the_other_stays():
    dimer = _dimer()
    frames = subunit_path(dimer, moving="B", turn=30.0, separation=4.0, n_frames=5)
    a, b = dimer.chain_ids == "A", dimer.chain_ids == "B"
    assert frames.shape == (5, dimer.n_atoms, 3)
    np.testing.assert_allclose(frames[0], dimer.coords, atol=1e-12)
    np.testing.assert_allclose(frames[:, a], np.repeat(dimer.coords[None, a], 5, axis=0), atol=1e-12)
    # β keeps its own shape: its internal RMSD to the start is 0 in every frame.
    assert max(rmsd(x[b], dimer.coords[b]) for x in frames) < 1e-9
    # Its centre moves `separation` Å along the A→B line, away from A.
    axis = dimer.coords[b].mean(0) - dimer.coords[a].mean(0)
    shift = frames[-1][b].mean(0) - dimer.coords[b].mean(0)
    np.testing.assert_allclose(shift, 4.0 * axis / np.linalg.norm(axis), atol=1e-9)
    # Each step turns it further: the RMSD from the start grows frame by frame.
    distances = [np.sqrt(np.mean(np.sum((x - dimer.coords) ** 2, -1))) for x in frames]
    assert all(np.diff(distances) > 0)


def test_a_path_needs_a_moving_chain_among_several():
    with pytest.raises(ValueError, match=r"the moving chain 'C' must be one of two or more"):
        subunit_path(_dimer(), moving="C")
    with pytest.raises(ValueError, match=r"must be one of two or more"):
        subunit_path(make_helix(8), moving="A")


def test_chain_rmsds_superpose_on_the_chains_asked():
    dimer = _dimer()
    frames = subunit_path(dimer, moving="B", turn=40.0, separation=3.0, n_frames=2)
    on_a = chain_rmsds(frames[1:], dimer.coords, dimer, on="A")
    assert on_a["A"][0] < 1e-9 and on_a["B"][0] > 2.0  # A fixed: all the motion is B's
    both = chain_rmsds(frames[1:], dimer.coords, dimer)
    assert both["A"][0] > 0.1  # superposed on both chains, B's turn shows on A too
    # Over every atom, the chains' mean squares average to the whole complex's RMSD.
    weights = [np.mean(dimer.chain_ids == c) for c in ("A", "B")]
    np.testing.assert_allclose(np.sqrt(weights[0] * both["A"][0] ** 2 + weights[1] * both["B"][0] ** 2),
                               rmsd(frames[1], dimer.coords))
    # A rigid motion of the whole complex changes nothing once superposed.
    turned = frames[1:] @ np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]).T + 5.0
    np.testing.assert_allclose(chain_rmsds(turned, dimer.coords, dimer, on="A")["B"], on_a["B"], atol=1e-9)
    with pytest.raises(ValueError, match=r"no chain 'Z' to superpose on"):
        chain_rmsds(frames, dimer.coords, dimer, on="Z")


def test_chain_table_counts_the_moving_chain_s_population_and_leaves_the_still_one_empty():
    dimer = _dimer()
    frames = subunit_path(dimer, moving="B", turn=40.0, separation=3.0, n_frames=11)
    states = {"closed": frames[0], "open": frames[-1]}
    samples = frames[[0, 1, 2, 9, 10]]  # 3 near the closed end, 2 near the open end
    training = frames[[0, 1, 10]]
    table = chain_table({"x": samples}, states, training, dimer).set_index("chain")
    assert np.isnan(table.loc["A", "occupancy_closed"]) and table.loc["A", "ends_apart"] < 1e-9
    assert table.loc["B", "occupancy_closed"] == pytest.approx(0.6)
    assert table.loc["B", "maps_occupancy_closed"] == pytest.approx(2 / 3)
    assert table.loc["B", "closest_closed"] < 1e-9 and table.loc["B", "closest_open"] < 1e-9
    fits = chain_fit_table({"fitted": frames[[0, 10]], "reference": np.stack([dimer.coords] * 2)}, frames[[0, 10]],
                           [0, 10], dimer)
    assert list(fits.columns) == ["frame", "chain", "rmsd_fitted", "rmsd_reference"]
    assert fits["rmsd_fitted"].max() < 1e-9
    assert fits.set_index(["frame", "chain"]).loc[(10, "B"), "rmsd_reference"] == pytest.approx(
        table.loc["B", "ends_apart"])
