"""Structural losses (eq. 6–8), checked against a direct per-residue / per-window sum."""

import itertools

import numpy as np
import pytest
import torch

from cryosampler.model.structural_losses import (
    backbone_loss,
    backbone_window_pairs,
    pad_pairs,
    pair_distance_loss,
    residue_loss,
    residue_pairs,
    structural_loss,
)


def _protein(seed: int, atoms_per_residue: list[int]):
    """Random coordinates (N, 3) Å in float64, residue_starts (L+1,), backbone_index (L, 4)."""
    rng = np.random.default_rng(seed)
    starts = np.concatenate([[0], np.cumsum(atoms_per_residue)])
    coords = torch.as_tensor(rng.normal(scale=6.0, size=(starts[-1], 3)))
    backbone = starts[:-1, None] + np.arange(4)  # first four atoms of each residue are N, CA, C, O
    return coords, starts, backbone


def _random_rotation(generator: torch.Generator) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=generator, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    return q if torch.det(q) > 0 else -q


def _direct_loss(x, ref, groups):
    """Σ over groups of Σ_{i<j in group} (d − d_ref)², divided by the number of terms (eq. 7 / eq. 8)."""
    terms = [(np.linalg.norm(x[i] - x[j]) - np.linalg.norm(ref[i] - ref[j])) ** 2
             for group in groups for i, j in itertools.combinations(group, 2)]
    return sum(terms) / len(terms)


def test_pair_counts():
    pairs, count = residue_pairs(np.array([0, 5, 9, 9, 10]))
    assert count == len(pairs) == 10 + 6 + 0 + 0
    assert pairs.dtype == torch.int64 and torch.all(pairs[:, 0] < pairs[:, 1])
    assert sorted(map(tuple, pairs[:10].tolist())) == list(itertools.combinations(range(5), 2))
    _, _, backbone = _protein(0, [5] * 12)
    windows = backbone_window_pairs(backbone)
    assert windows.shape == (12 - 5 + 1, 190, 2) and windows.dtype == torch.int64
    assert backbone_window_pairs(backbone, window=3).shape == (10, 66, 2)
    assert backbone_window_pairs(backbone[:4]).shape == (0, 190, 2)


def test_backbone_windows_skip_chain_breaks():
    _, _, backbone = _protein(0, [4] * 10)
    res_nums = np.array([1, 2, 3, 4, 5, 6, 8, 9, 10, 11])  # gap between 6 and 8
    windows = backbone_window_pairs(backbone, res_nums=res_nums)
    # Windows start at rows 0..5; those starting at rows 2..5 hold rows 5 and 6 together.
    assert windows.shape == (2, 190, 2)
    torch.testing.assert_close(windows, backbone_window_pairs(backbone)[:2])
    assert backbone_window_pairs(backbone, res_nums=np.arange(10) + 7).shape == (6, 190, 2)
    with pytest.raises(ValueError, match="increase strictly"):
        backbone_window_pairs(backbone, res_nums=np.array([1, 2, 3, 3, 4, 5, 6, 7, 8, 9]))


def test_losses_match_a_direct_sum():
    atoms = [5, 8, 4, 11, 6, 7, 9]
    ref, starts, backbone = _protein(1, atoms)
    x = ref + torch.as_tensor(np.random.default_rng(2).normal(scale=0.5, size=ref.shape))
    pairs, _ = residue_pairs(starts)
    residues = [range(lo, hi) for lo, hi in zip(starts[:-1], starts[1:])]
    expected = _direct_loss(x.numpy(), ref.numpy(), residues)
    assert float(residue_loss(x[None], ref, pairs)) == pytest.approx(expected, rel=1e-12)
    windows = [backbone[m:m + 5].ravel() for m in range(len(atoms) - 4)]
    expected = _direct_loss(x.numpy(), ref.numpy(), windows)
    flat = backbone_window_pairs(backbone).reshape(-1, 2)
    assert float(backbone_loss(x[None], ref, flat)) == pytest.approx(expected, rel=1e-12)
    total, residue, backbone = structural_loss(x[None], ref, pairs, flat, lambda_r=0.3, lambda_b=2.0)
    torch.testing.assert_close(residue, residue_loss(x[None], ref, pairs))
    torch.testing.assert_close(backbone, backbone_loss(x[None], ref, flat))
    torch.testing.assert_close(total, 0.3 * residue + 2.0 * backbone)


def test_zero_on_reference_invariant_to_rigid_motion_positive_when_perturbed():
    ref, starts, backbone = _protein(3, [6, 9, 5, 8, 7, 10])
    pairs_r, _ = residue_pairs(starts)
    pairs_b = backbone_window_pairs(backbone).reshape(-1, 2)

    def loss(x):
        return structural_loss(x[None], ref, pairs_r, pairs_b, lambda_r=1.0, lambda_b=1.0).total

    assert float(loss(ref)) == 0.0
    generator = torch.Generator().manual_seed(0)
    moved = ref @ _random_rotation(generator).T + torch.tensor([3.0, -7.0, 12.5], dtype=torch.float64)
    assert float(loss(moved)) < 1e-10
    noisy = ref + 0.2 * torch.randn(ref.shape, generator=generator, dtype=torch.float64)
    assert float(loss(noisy)) > 1e-3
    assert float(loss(noisy @ _random_rotation(generator).T + 5.0)) == pytest.approx(float(loss(noisy)), abs=1e-10)


def test_padded_batch_equals_per_protein_losses():
    proteins = [_protein(4, [5, 7, 6, 9, 4, 8]), _protein(5, [6, 4, 10, 5, 5, 7, 8, 6]), _protein(6, [4, 6, 5])]
    generator = torch.Generator().manual_seed(1)
    preds = [ref + 0.3 * torch.randn(ref.shape, generator=generator, dtype=torch.float64) for ref, _, _ in proteins]
    n_max = max(len(ref) for ref, _, _ in proteins)

    def pad(x):
        return torch.cat([x, torch.zeros(n_max - len(x), 3, dtype=x.dtype)])

    coords = torch.stack([pad(x) for x in preds])
    refs = torch.stack([pad(ref) for ref, _, _ in proteins])
    pairs_r = [residue_pairs(starts)[0] for _, starts, _ in proteins]
    pairs_b = [backbone_window_pairs(backbone).reshape(-1, 2) for _, _, backbone in proteins]
    assert len(pairs_b[2]) == 0  # 3 residues: no window of 5
    for loss_fn, pair_lists in [(residue_loss, pairs_r), (backbone_loss, pairs_b)]:
        padded, mask = pad_pairs(pair_lists)
        assert padded.shape == (3, max(len(p) for p in pair_lists), 2) and mask.dtype == torch.bool
        batched = loss_fn(coords, refs, padded, mask, reduction="none")
        single = torch.stack([loss_fn(x[None], ref, p) for x, (ref, _, _), p in zip(preds, proteins, pair_lists)])
        torch.testing.assert_close(batched, single, rtol=1e-12, atol=0)
        torch.testing.assert_close(loss_fn(coords, refs, padded, mask), single.mean(), rtol=1e-12, atol=0)


def test_gradcheck_pair_distance_loss():
    ref, starts, _ = _protein(7, [5, 6, 4])
    pairs, _ = residue_pairs(starts)
    generator = torch.Generator().manual_seed(2)
    x = (ref + 0.5 * torch.randn(ref.shape, generator=generator, dtype=torch.float64))[None].requires_grad_()
    assert torch.autograd.gradcheck(lambda c: pair_distance_loss(c, ref, pairs), (x,))


def test_gradient_finite_when_atoms_coincide():
    ref, starts, _ = _protein(8, [5, 6])
    pairs, _ = residue_pairs(starts)
    x = ref.clone()
    x[1] = x[0]  # atoms 0 and 1 share a residue and now coincide
    for dtype in (torch.float32, torch.float64):
        c = x.to(dtype)[None].requires_grad_()
        loss = pair_distance_loss(c, ref.to(dtype), pairs)
        loss.backward()
        assert torch.isfinite(loss) and torch.all(torch.isfinite(c.grad))


def test_bad_inputs_raise():
    ref, starts, _ = _protein(9, [5, 6])
    pairs, _ = residue_pairs(starts)
    with pytest.raises(ValueError):
        pair_distance_loss(ref, ref, pairs)  # coords without a batch axis
    with pytest.raises(ValueError):
        pair_distance_loss(ref[None], ref[:5], pairs)
    with pytest.raises(ValueError):
        residue_pairs(np.array([0, 5, 3]))
    with pytest.raises(ValueError):
        backbone_window_pairs(np.zeros((4, 3), dtype=int))
