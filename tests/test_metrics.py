"""Ensemble metrics on ensembles with known answers, checked against independent references (numpy, brute force,
hand-matched atoms)."""

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.transform import Rotation

from cryosampler.evaluation.metrics import (closest_sample_rmsd, coverage_metrics, ensemble_summary,
                                            matched_rmsd_matrix, mode_projection, score_ensemble,
                                            smallest_lossless_steps, state_occupancy)
from cryosampler.evaluation.coverage import (COVERAGE_THRESHOLDS, SUCCESS_THRESHOLD, aligned_rmsd_matrix, coverage_auc,
                                             coverage_curve)
from cryosampler.io.correspondence import aligned_atoms, aligned_residues
from cryosampler.io.structure import Structure
from cryosampler.io.atomic_files import read_structure
from cryosampler.physics.superpose import rmsd, rmsd_matrix
from conftest import make_helix


def _internal_mode(coords: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random unit (N, 3) direction orthogonal to rigid motions of ``coords``.

    With zero net translation and zero net torque (Σ u_i × x_i = 0), superposing ``coords + c u`` onto
    ``coords`` is the identity for moderate c, so RMSDs along u are exactly |Δc| / √N.
    """
    x = coords - coords.mean(0)
    u = rng.normal(size=x.shape)
    u -= u.mean(0)
    inertia = np.sum(x * x) * np.eye(3) - x.T @ x
    omega = -np.linalg.solve(inertia, np.cross(u, x).sum(0))
    u -= np.cross(omega, x)
    assert np.allclose(np.cross(u, x).sum(0), 0) and np.allclose(u.mean(0), 0)
    return u / np.linalg.norm(u)


def _line_ensemble(offsets, seed=0):
    """Structures X + c √N u for each c in ``offsets``: pairwise RMSDs are |c_i − c_j| Å."""
    x = make_helix().coords
    w = np.sqrt(len(x)) * _internal_mode(x, np.random.default_rng(seed))
    return np.stack([x + c * w for c in offsets])


def test_closest_and_occupancy_on_hand_built_matrix():
    rmsds = np.array([[0.5, 3.0], [2.0, 1.0], [0.2, 4.0]])
    np.testing.assert_array_equal(closest_sample_rmsd(rmsds), [0.2, 1.0])
    np.testing.assert_allclose(state_occupancy(rmsds), [2 / 3, 1 / 3])
    assert ensemble_summary(rmsds) == pytest.approx(
        {"closest_A": 0.2, "closest_B": 1.0, "occupancy_A": 2 / 3, "occupancy_B": 1 / 3})


def test_score_ensemble_on_states_at_known_distances():
    # States A, B at c = ±1; samples at c = 0.9, 0.4, -2.5, 4.0 → RMSDs |c ∓ 1| (see the coverage test).
    states, samples = _line_ensemble([1.0, -1.0]), _line_ensemble([0.9, 0.4, -2.5, 4.0])
    score = score_ensemble(samples, states)
    np.testing.assert_allclose(score.rmsd, [[0.1, 1.9], [0.6, 1.4], [3.5, 1.5], [3.0, 5.0]], atol=1e-6)
    assert score.match is None
    assert score.summary() == pytest.approx(
        {"closest_A": 0.1, "closest_B": 1.4, "occupancy_A": 0.75, "occupancy_B": 0.25}, abs=1e-6)
    table = score.per_sample(slot="P", seed=3)
    assert list(table.columns) == ["slot", "seed", "sample", "rmsd_A", "rmsd_B"]
    assert list(table["sample"]) == [0, 1, 2, 3] and set(table["slot"]) == {"P"}
    np.testing.assert_array_equal(table[["rmsd_A", "rmsd_B"]].to_numpy(), score.rmsd)


def test_score_ensemble_keeps_float32_samples_as_given():
    # The sampler returns float32: scoring must give exactly what rmsd_matrix gives on them, not on a cast copy.
    states, samples = _line_ensemble([1.0, -1.0]), _line_ensemble([0.9, 0.4]).astype(np.float32)
    np.testing.assert_array_equal(score_ensemble(samples, states).rmsd, rmsd_matrix(samples, states))


def test_score_ensemble_rejects_other_than_two_states_and_unmatched_atoms():
    states = _line_ensemble([1.0, -1.0, 0.0])
    with pytest.raises(ValueError, match="two true states"):
        score_ensemble(states, states)
    with pytest.raises(ValueError, match=r"samples must have shape \(S, N, 3\)"):
        score_ensemble(states[:, :5], states[:2])
    helix = make_helix()
    with pytest.raises(ValueError, match="reference"):
        score_ensemble(helix.coords[None], states[:2], atoms=helix)


def test_coverage_on_states_at_known_distances():
    # States at c = ±1 (2 Å apart); samples at c = 0.9, 0.4, -2.5, 4.0 → RMSDs |c ∓ 1|.
    states, samples = _line_ensemble([1.0, -1.0]), _line_ensemble([0.9, 0.4, -2.5, 4.0])
    expected = np.array([[0.1, 1.9], [0.6, 1.4], [3.5, 1.5], [3.0, 5.0]])
    np.testing.assert_allclose(rmsd_matrix(samples, states), expected, atol=1e-6)
    cov = coverage_metrics(rmsd_matrix(samples, states), thresholds=(0.5, 1.0, 2.0))
    # Per state min: (0.1, 1.4); per sample min: (0.1, 0.6, 1.5, 3.0).
    assert cov == pytest.approx({
        "MAT-R": (0.1 + 1.4) / 2, "MAT-P": (0.1 + 0.6 + 1.5 + 3.0) / 4,
        "COV-R(0.5)": 0.5, "COV-R(1)": 0.5, "COV-R(2)": 1.0,
        "COV-P(0.5)": 0.25, "COV-P(1)": 0.5, "COV-P(2)": 0.75}, abs=1e-6)


def test_mode_projection_of_true_states_is_plus_minus_a():
    reference = make_helix().coords
    mode = _internal_mode(reference, np.random.default_rng(1))
    a = 2.0
    samples = np.stack([reference + a * mode, reference - a * mode, reference])
    np.testing.assert_allclose(mode_projection(samples, reference, mode), [a, -a, 0.0], atol=1e-6)
    # Any scale of the mode gives the same projection (it is normalised).
    np.testing.assert_allclose(mode_projection(samples, reference, 3.0 * mode), [a, -a, 0.0], atol=1e-6)


def test_mode_projection_ignores_rigid_motion_of_the_sample():
    reference = make_helix().coords
    mode = _internal_mode(reference, np.random.default_rng(2))
    sample = reference + 1.5 * mode
    moved = sample @ Rotation.random(random_state=3).as_matrix().T + [10.0, -4.0, 7.0]
    np.testing.assert_allclose(mode_projection(np.stack([sample, moved]), reference, mode), [1.5, 1.5], atol=1e-6)


def test_mode_projection_rejects_bad_shapes():
    reference = make_helix().coords
    with pytest.raises(ValueError, match="samples"):
        mode_projection(reference, reference, reference)
    with pytest.raises(ValueError, match="all zeros"):
        mode_projection(reference[None], reference, np.zeros_like(reference))


def test_matched_rmsd_matrix_equals_rmsd_on_hand_matched_atoms(shared_pdb):
    # 1CLL (human) and 1EXR (Paramecium) calmodulin: same numbering, different sequences and atom sets.
    reference, other = read_structure(shared_pdb("1exr.pdb")), read_structure(shared_pdb("1cll.pdb"))
    rng = np.random.default_rng(7)
    samples = other.coords + rng.normal(scale=0.3, size=(2, other.n_atoms, 3))
    states = reference.coords + rng.normal(scale=0.3, size=(3, reference.n_atoms, 3))
    got, report = matched_rmsd_matrix(samples, other, states, reference)

    keys_other = {(int(r), n): i for i, (r, n) in enumerate(zip(other.res_nums, other.atom_names))}
    pairs = [(i, keys_other[(int(r), n)]) for i, (r, n) in enumerate(zip(reference.res_nums, reference.atom_names))
             if (int(r), n) in keys_other]
    idx_ref, idx_other = map(list, zip(*pairs))
    expected = [[rmsd(x[idx_other], y[idx_ref]) for y in states] for x in samples]
    assert got.shape == (2, 3)
    np.testing.assert_allclose(got, expected, atol=1e-9)
    assert report.n_matched == len(pairs)
    assert report.n_only_a == reference.n_atoms - len(pairs) and report.n_only_b == other.n_atoms - len(pairs)


def test_score_ensemble_of_another_atom_set_matches_atoms(shared_pdb):
    reference, other = read_structure(shared_pdb("1exr.pdb")), read_structure(shared_pdb("1cll.pdb"))
    rng = np.random.default_rng(8)
    samples = other.coords + rng.normal(scale=0.3, size=(3, other.n_atoms, 3))
    states = reference.coords + rng.normal(scale=0.3, size=(2, reference.n_atoms, 3))
    score = score_ensemble(samples, states, atoms=other, reference=reference)
    expected, report = matched_rmsd_matrix(samples, other, states, reference)
    np.testing.assert_array_equal(score.rmsd, expected)
    assert score.match == report


def test_matched_rmsd_matrix_needs_shared_numbering():
    reference, other = make_helix(), make_helix(first_residue=101)
    with pytest.raises(ValueError, match="renumber"):
        matched_rmsd_matrix(other.coords[None], other, reference.coords[None], reference)
    with pytest.raises(ValueError, match="samples of tiny"):
        matched_rmsd_matrix(reference.coords[None, :10], other, reference.coords[None], reference)


def _sweep(rows):
    return pd.DataFrame(rows, columns=["slot", "steps", "closest_A", "closest_B", "occupancy_A"])


def test_smallest_lossless_steps_takes_the_fewest_steps_that_match_the_reference():
    sweep = _sweep([("a", 10, 0.50, 0.12, 0.5), ("a", 25, 0.14, 0.13, 0.5), ("a", 100, 0.11, 0.11, 0.5),
                    ("b", 10, 0.40, 0.40, 0.5), ("b", 25, 0.42, 0.38, 0.5625), ("b", 100, 0.40, 0.38, 0.5)])
    assert smallest_lossless_steps(sweep, 100) == 25


def test_smallest_lossless_steps_needs_every_larger_k_to_pass_and_occupancy_to_hold():
    # K = 10 matches the reference but K = 25 does not: K = 10 is no safe default.
    sweep = _sweep([("a", 10, 0.11, 0.11, 0.5), ("a", 25, 0.30, 0.11, 0.5), ("a", 100, 0.11, 0.11, 0.5)])
    assert smallest_lossless_steps(sweep, 100) == 100
    # Occupancy moving by 4 of 16 samples is a loss even with the RMSDs unchanged.
    sweep = _sweep([("a", 10, 0.11, 0.11, 0.75), ("a", 100, 0.11, 0.11, 0.5)])
    assert smallest_lossless_steps(sweep, 100) == 100
    with pytest.raises(ValueError, match="reference K = 50"):
        smallest_lossless_steps(sweep, 50)


# The domain-motion benchmark's metrics (issue 9 item 4).

def test_aligned_residues_pairs_by_hand():
    # Deletion inside: V, L of the first sequence face a gap.
    assert aligned_residues("MKVLAAG", "MKAAG").tolist() == [[0, 0], [1, 1], [4, 2], [5, 3], [6, 4]]
    # A mismatch still pairs (D with W), as in the benchmark's aligned ranges.
    assert aligned_residues("ACDEFG", "ACWEFG").tolist() == [[k, k] for k in range(6)]
    # Leading extra residues of the first sequence (a tag resolved in one state only).
    assert aligned_residues("GSMKVE", "MKVE").tolist() == [[2, 0], [3, 1], [4, 2], [5, 3]]
    with pytest.raises(ValueError, match="empty sequence"):
        aligned_residues("", "MK")


_SEQUENCE = "MKTAYIAKQRQISFVKSHFSRQ"


def _backbone_chain(rng: np.random.Generator, sequence: str = _SEQUENCE, name: str = "chain") -> Structure:
    """A backbone-only (N, CA, C, O) chain of ``sequence``, numbered from 1, irregular (helix + 0.3 Å noise)."""
    helix = make_helix(len(sequence))
    keep = helix.atom_names != "CB"
    three = {"M": "MET", "K": "LYS", "T": "THR", "A": "ALA", "Y": "TYR", "I": "ILE", "Q": "GLN", "R": "ARG",
             "S": "SER", "F": "PHE", "V": "VAL", "H": "HIS"}
    res_names = np.array([three[sequence[n - 1]] for n in helix.res_nums[keep]])
    return Structure(coords=helix.coords[keep] + rng.normal(scale=0.3, size=(keep.sum(), 3)),
                     elements=helix.elements[keep], atomic_numbers=helix.atomic_numbers[keep],
                     atom_names=helix.atom_names[keep], res_names=res_names, res_nums=helix.res_nums[keep],
                     chain_id="A", name=name)


def _without_residues(chain: Structure, drop: set[int], coords: np.ndarray, name: str) -> Structure:
    """``chain`` less the residues numbered in ``drop``, renumbered from 1, at ``coords`` (N_kept, 3)."""
    keep = ~np.isin(chain.res_nums, list(drop))
    renumber = {old: new for new, old in enumerate(sorted(set(chain.res_nums[keep])), start=1)}
    return Structure(coords=coords, elements=chain.elements[keep], atomic_numbers=chain.atomic_numbers[keep],
                     atom_names=chain.atom_names[keep], res_names=chain.res_names[keep],
                     res_nums=[renumber[n] for n in chain.res_nums[keep]], chain_id="A", name=name)


def test_aligned_rmsd_of_a_rigidly_moved_copy_with_a_deletion_is_zero():
    rng = np.random.default_rng(0)
    full = _backbone_chain(rng)
    keep = ~np.isin(full.res_nums, [1, 8, 9])  # the first residue and two inside
    moved = Rotation.random(random_state=1).apply(full.coords[keep]) + [30.0, -5.0, 12.0]
    short = _without_residues(full, {1, 8, 9}, moved, "short")
    assert short.sequence == _SEQUENCE[1:7] + _SEQUENCE[9:]
    # Paired by alignment, the copy superposes exactly, in both directions.
    assert aligned_rmsd_matrix(full.coords[None], full, [short])[0, 0] == pytest.approx(0.0, abs=1e-6)
    assert aligned_rmsd_matrix(short.coords[None], short, [full])[0, 0] == pytest.approx(0.0, abs=1e-6)
    # Paired by position instead, the same structures differ: the alignment matters.
    assert rmsd(full.coords[: short.n_atoms], short.coords) > 1.0


def test_aligned_rmsd_matches_hand_paired_atoms():
    rng = np.random.default_rng(2)
    full = _backbone_chain(rng)
    keep = ~np.isin(full.res_nums, [5, 6])
    other = _without_residues(full, {5, 6}, full.coords[keep] + rng.normal(scale=0.8, size=(keep.sum(), 3)),
                              "other")
    # By hand: residues 1-4 pair with 1-4, residues 7-22 with 5-20; four backbone atoms each, in order.
    hand_full = np.concatenate([np.arange(0, 16), np.arange(24, 88)])
    hand_other = np.arange(80)
    idx_full, idx_other = aligned_atoms(full, other)
    assert idx_full.tolist() == hand_full.tolist() and idx_other.tolist() == hand_other.tolist()
    samples = full.coords[None] + rng.normal(scale=0.5, size=(3, full.n_atoms, 3))
    expected = [[rmsd(x[hand_full], target[hand_other]) for target in (other.coords, full.coords[keep])]
                for x in samples]
    np.testing.assert_allclose(aligned_rmsd_matrix(samples, full, [other, other.with_coords(full.coords[keep])]),
                               expected, atol=1e-9)
    # CA only: every fourth atom from the second.
    idx_ca, _ = aligned_atoms(full, other, ("CA",))
    assert idx_ca.tolist() == hand_full[1::4].tolist()
    with pytest.raises(ValueError, match="subset of"):
        aligned_atoms(full, other, ("CB",))


def test_coverage_of_a_known_rmsd_matrix():
    rmsds = np.array([[0.5, 9.0, 3.0, 12.0],
                      [4.0, 2.0, 5.0, 15.0],
                      [1.0, 2.5, 3.5, 20.0]])  # (S=3 samples, K=4 states), Å
    best = closest_sample_rmsd(rmsds)
    assert best.tolist() == [0.5, 2.0, 3.0, 12.0]
    # Strictly below r: a state at exactly 3 Å is not covered at 3 Å.
    curve = coverage_curve(best, np.array([0.0, 0.5, 1.0, 3.0, 3.01, 10.0]))
    np.testing.assert_allclose(curve, [0.0, 0.0, 0.25, 0.5, 0.75, 0.75])
    assert SUCCESS_THRESHOLD == 3.0 and COVERAGE_THRESHOLDS[0] == 0.0 and COVERAGE_THRESHOLDS[-1] == 10.0
    assert len(COVERAGE_THRESHOLDS) == 100
    # Area by hand: (1 - 0.05) + (1 - 0.2) + (1 - 0.3) + 0, over 4 states.
    assert coverage_auc(best) == pytest.approx(0.6125)
    fine = np.linspace(0.0, 10.0, 200_001)
    assert coverage_auc(best) == pytest.approx(np.trapezoid(coverage_curve(best, fine), fine) / 10.0, abs=1e-4)
    assert coverage_auc([0.0, 0.0]) == 1.0 and coverage_auc([10.0, 50.0]) == 0.0


# i↔j CA RMSDs as issue 9 lists them (rounded to 0.1 Å, hence the 0.05 Å tolerance).
ISSUE_CA_RMSD = {"P0AEQ3": 5.3, "P0205": 4.1, "P71447": 3.4, "P37487": 9.9, "Q18A65": 4.3, "Q5F9M1": 5.8,
                 "P0DP23": 14.3, "P69441": 7.1, "P67701": 6.5}


@pytest.mark.parametrize("name", ISSUE_CA_RMSD)
def test_alignment_pairing_reproduces_the_issues_state_rmsds(benchmark_wheel, name):
    from cryosampler.experiments.domain_motion import HELD_OUT_CASES, TRAIN_CASES, read_state

    state_i, state_j = (TRAIN_CASES | HELD_OUT_CASES)[name]
    a, b = read_state(benchmark_wheel, name, state_i), read_state(benchmark_wheel, name, state_j)
    forward = aligned_rmsd_matrix(a.coords[None], a, [b], ("CA",))[0, 0]
    backward = aligned_rmsd_matrix(b.coords[None], b, [a], ("CA",))[0, 0]
    assert forward == pytest.approx(ISSUE_CA_RMSD[name], abs=0.05)
    assert backward == pytest.approx(forward, abs=1e-9)


def _best_alignment_score(a: str, b: str) -> float:
    """Best global alignment score under the benchmark's scoring, by Gotoh's recursion: match 1, mismatch 0,
    -0.5 per gap whatever its length, end gaps scored like inner ones."""
    gap = -0.5
    n, m = len(a), len(b)
    both = np.full((n + 1, m + 1), -np.inf)  # alignments of a[:i], b[:j] ending in a residue pair
    only_a = np.full((n + 1, m + 1), -np.inf)  # ... ending in a residue of a facing a gap
    only_b = np.full((n + 1, m + 1), -np.inf)  # ... ending in a residue of b facing a gap
    both[0, 0] = 0.0
    only_a[1:, 0] = gap
    only_b[0, 1:] = gap
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            best_before = max(both[i - 1, j - 1], only_a[i - 1, j - 1], only_b[i - 1, j - 1])
            both[i, j] = best_before + (a[i - 1] == b[j - 1])
            only_a[i, j] = max(only_a[i - 1, j], both[i - 1, j] + gap, only_b[i - 1, j] + gap)
            only_b[i, j] = max(only_b[i, j - 1], both[i, j - 1] + gap, only_a[i, j - 1] + gap)
    return max(both[n, m], only_a[n, m], only_b[n, m])


def _pairs_score(a: str, b: str, pairs: np.ndarray) -> float:
    """Score of the alignment that pairs ``pairs`` and gaps every other residue, one gap per run of unpaired
    residues of either sequence (before, between and after the pairs)."""
    bounds = np.vstack([[-1, -1], pairs, [len(a), len(b)]])
    runs = (np.diff(bounds, axis=0) > 1).sum()
    return sum(a[i] == b[j] for i, j in pairs) - 0.5 * runs


def test_alignment_pairs_by_hand():
    # One residue (E) of a faces a gap; every other residue pairs with its match.
    assert aligned_residues("ACDEFGHIK", "ACDFGHIK").tolist() == [[0, 0], [1, 1], [2, 2], [4, 3], [5, 4], [6, 5],
                                                                 [7, 6], [8, 7]]
    # A long insertion costs one gap (extension is free): six W's face one gap rather than pairing any residue.
    pairs = aligned_residues("MKVLAAGWWWWWWPEST", "MKVLAAGPEST")
    assert pairs.tolist() == [[i, i] for i in range(7)] + [[13 + k, 7 + k] for k in range(4)]
    # So two matches are worth two gaps of five: QQ pairs with QQ, rather than every residue with a mismatch.
    assert aligned_residues("KLMNPQQ", "QQRSTVW").tolist() == [[5, 0], [6, 1]]
    # A mismatch costs nothing, less than the two gaps around an unpaired residue: T pairs with S.
    assert aligned_residues("ACDTFG", "ACDSFG").tolist() == [[k, k] for k in range(6)]
    # End gaps cost like inner ones: shifting by one residue (two gaps, -1) beats no match at all (0).
    assert aligned_residues("KACDEFG", "ACDEFGK").tolist() == [[k + 1, k] for k in range(6)]
    # The recursion by hand: three matches less two gaps of 0.5, better than four mismatches (0).
    assert _best_alignment_score("KACD", "ACDK") == 2.0
    assert _pairs_score("KACD", "ACDK", aligned_residues("KACD", "ACDK")) == 2.0


def test_alignment_pairing_scores_best_under_the_benchmarks_scoring(benchmark_wheel):
    # The benchmark pairs residues with Biopython's global PairwiseAligner (match 1, mismatch 0, open_gap_score
    # -0.5, gap extension 0); an independent recursion checks that our pairing scores its best on every case.
    from cryosampler.experiments.domain_motion import HELD_OUT_CASES, TRAIN_CASES, read_state

    for name, (state_i, state_j) in (TRAIN_CASES | HELD_OUT_CASES).items():
        a, b = read_state(benchmark_wheel, name, state_i).sequence, read_state(benchmark_wheel, name, state_j).sequence
        pairs = aligned_residues(a, b)
        assert (np.diff(pairs, axis=0) > 0).all(), name
        assert _pairs_score(a, b, pairs) == _best_alignment_score(a, b), name


def test_sequence_identity_by_hand():
    from cryosampler.io.correspondence import nearest_protein, sequence_identity

    assert sequence_identity("ACDEFG", "ACDEFG") == 1.0
    assert sequence_identity("AAAA", "KKKK") == 0.0
    assert sequence_identity("ACDEF", "ACDF") == pytest.approx(4 / 5)  # E faces a gap: 4 of 5 query residues
    assert sequence_identity("ACDF", "ACDEF") == 1.0  # every query residue finds its match
    proteins = [{"name": "x", "sequence": "KKKK"}, {"name": "y", "sequence": "ACDEF"}]
    assert nearest_protein("ACDF", proteins) == ("y", 1.0)
    assert nearest_protein("ACDF", []) is None
    # Unrelated sequences of realistic lengths, equal or not, stay far below the sample command's 90 % line.
    rng = np.random.default_rng(0)
    letters = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
    for n, m in ((100, 100), (250, 250), (150, 220)):
        a, b = "".join(rng.choice(letters, n)), "".join(rng.choice(letters, m))
        assert sequence_identity(a, b) < 0.15
    # A point mutant: every third residue changed, two thirds identical.
    a = "".join(rng.choice(letters, 150))
    mutant = "".join(letters[(np.flatnonzero(letters == c)[0] + 1) % 20] if k % 3 == 0 else c for k, c in enumerate(a))
    assert sequence_identity(mutant, a) == pytest.approx(100 / 150)


def test_clusters_and_spread_of_an_ensemble():
    from cryosampler.evaluation.metrics import STAYS_AT_REFERENCE, cluster_sizes, ensemble_spread

    helix = make_helix(20, "helix")
    rng = np.random.default_rng(12)
    open_ = helix.coords.copy()
    open_[helix.res_nums > 10] += np.array([0.0, 12.0, 0.0])  # a domain moved far beyond 2 Å
    near = [helix.coords + rng.normal(scale=0.1, size=helix.coords.shape) for _ in range(5)]
    far = [open_ + rng.normal(scale=0.1, size=helix.coords.shape) for _ in range(3)]
    assert cluster_sizes(np.stack(far + near)) == (5, 3)
    assert cluster_sizes(np.stack(near)) == (5,) and cluster_sizes(np.stack(near[:1])) == (1,)
    spread = ensemble_spread(np.stack(near), helix)
    assert spread.stays_at_reference and spread.rmsd_to_reference.max() < STAYS_AT_REFERENCE
    assert "1 cluster at 2 Å CA RMSD, of 5 samples" in spread.summary()
    moved = ensemble_spread(np.stack(near + far), helix)
    assert not moved.stays_at_reference and moved.cluster_sizes == (5, 3)
