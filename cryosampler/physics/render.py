"""Differentiable cryo-EM forward model F: atomic coordinates → density map (paper eq. 5, V̂_0 = F(X̂_0)).

Semantics are EMAN2's ``pdb2mrc`` (``PointArray::pdb2mrc_by_summation``, the generator of the paper's maps,
A.4): every atom adds ``Z * exp(-r² / w²)`` with ``w = resolution / π`` (so σ = w / √2 ≈ 1.80 Å at 8 Å),
``Z`` its atomic number, and no further filter or normalisation. EMAN2 tabulates the Gaussian and cuts it at
exp(-r²/w²) = 1e-7; here each of the three 1-D factors below is cut where it falls under that value
(``PROFILE_CUTOFF``), a cube of half-width 4.01 w ≈ 10.2 Å at 8 Å around each atom instead of EMAN2's sphere
(outside the sphere every value is below the cut-off anyway). The cut matters for speed, not accuracy: a
product of three small profiles would otherwise be a subnormal float, and on x86 CPUs every operation on
subnormals takes a slow microcode path (docs/performance.md, "Subnormal floats"); with each
factor ≥ 1e-7, every product is ≥ 1e-21 and stays a normal float.

Voxel (i, j, k) is centred at ((i - D//2) apix, (j - D//2) apix, (k - D//2) apix) Å, and volumes are indexed
(x, y, z) = (i, j, k). (EMAN2 writes ``map_size / 2`` in integer C arithmetic, hence D//2 for odd D.)

The Gaussian is separable, so a map is the trilinear sum

    V[b, i, j, k] = Σ_a Z_a gx[b, a, i] gy[b, a, j] gz[b, a, k],   g?[b, a, i] = exp(-(x_a - X_i)² / w²),

computed by ``trilinear_sum`` in O(N·D + D³) memory with a hand-written backward (see there), over the
sub-box that some atom's cut profile reaches (outside it every voxel is exactly zero).
"""

from __future__ import annotations

import math

import torch
from torch.autograd.function import once_differentiable

from cryosampler.io.grid import MapGrid

__all__ = ["PROFILE_CUTOFF", "check_in_box", "render_density", "trilinear_sum"]

# exp(-u²) below this is zero: EMAN2 pdb2mrc's cut-off (module docstring).
PROFILE_CUTOFF = 1e-7

# Elements of the (B, N, chunk, D) scratch block of each chunk. On CPU keep it within a core's L2 (1 MiB of
# float32 on the 2-core EPYC of benchmarks/bench_render.py, where 2**17 to 2**19 measured alike and larger
# blocks slower); on GPUs only bound the memory.
_CPU_BLOCK_ELEMENTS = 2**18
_GPU_BLOCK_ELEMENTS = 2**25


def render_density(coords: torch.Tensor, weights: torch.Tensor, grid: MapGrid,
                   mask: torch.Tensor | None = None, check_bounds: bool = True) -> torch.Tensor:
    """Render atoms into density maps, EMAN2 ``pdb2mrc`` style (module docstring); differentiable in coords.

    Parameters
    ----------
    coords : (B, N, 3) float32 or float64, Å, in the grid's frame (the box is centred on the origin).
    weights : (N,) or (B, N), atomic numbers Z (C 6, N 7, O 8, S 16, Se 34); cast to ``coords``' dtype.
    grid : the map grid and resolution.
    mask : (B, N) bool, optional; True for real atoms, False for padding. Padded atoms add nothing and
        receive zero gradient, whatever their coordinates. Default: all atoms real.
    check_bounds : raise ValueError if a real atom is non-finite or lies outside the box spanned by the
        voxel centres, [-(D//2) apix, (D - 1 - D//2) apix] Å per axis (an atom there would be cropped).
        It synchronises with the device; pass False for predicted coordinates inside a training loop.

    Returns
    -------
    (B, D, D, D) density in the dtype and on the device of ``coords``, axes (x, y, z).
    """
    if not torch.is_tensor(coords) or coords.ndim != 3 or coords.shape[-1] != 3:
        raise ValueError(f"coords must be a (B, N, 3) tensor in Å, got {_describe(coords)}")
    if coords.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"coords must be float32 or float64, got {coords.dtype}")
    B, N, _ = coords.shape
    weights = torch.as_tensor(weights, dtype=coords.dtype, device=coords.device)
    if weights.shape not in {(N,), (B, N)}:
        raise ValueError(f"weights must be ({N},) or ({B}, {N}) atomic numbers, got {tuple(weights.shape)}")
    weights = weights.expand(B, N)
    if mask is not None:
        mask = torch.as_tensor(mask, device=coords.device)
        if mask.dtype != torch.bool or mask.shape != (B, N):
            raise ValueError(f"mask must be a ({B}, {N}) bool tensor, got {mask.dtype} {tuple(mask.shape)}")
    if check_bounds:
        check_in_box(coords, grid, mask)
    if mask is not None:
        # Move padding to a finite dummy position: where() passes them no gradient, and a zero weight no density.
        coords = torch.where(mask[..., None], coords, torch.zeros((), dtype=coords.dtype, device=coords.device))
        weights = torch.where(mask, weights, torch.zeros((), dtype=coords.dtype, device=coords.device))

    profiles = _GaussianProfiles.apply(coords, grid.axis(coords.dtype, coords.device), grid.width)  # (B, 3, N, D)
    # Voxels that no atom's cut profile reaches are exactly zero, so only the box some atom reaches is contracted
    # and the rest padded with zeros: a protein in a box twice its size costs a fraction of the dense sum.
    support = _support(profiles)
    if support is None:  # no atom reaches the box
        return profiles.new_zeros(B, grid.size, grid.size, grid.size)
    (x0, x1), (y0, y1), (z0, z1) = support
    gx, gy, gz = profiles[:, 0, :, x0:x1], profiles[:, 1, :, y0:y1], profiles[:, 2, :, z0:z1]  # (B, N, D?)
    inner = trilinear_sum(weights[..., None] * gx, gy, gz)  # (B, x1 - x0, y1 - y0, z1 - z0)
    D = grid.size
    return torch.nn.functional.pad(inner, (z0, D - z1, y0, D - y1, x0, D - x1))  # (B, D, D, D)


def _support(profiles: torch.Tensor) -> tuple[tuple[int, int], ...] | None:
    """Per axis, the half-open voxel range [first, last + 1) where any atom's profile is non-zero; profiles
    (B, 3, N, D). None when no atom reaches the box. (One host synchronisation on a GPU.)"""
    if profiles.numel() == 0:  # no structure or no atom
        return None
    reach = (profiles.detach().amax(dim=(0, 2)) > 0).cpu()  # (3, D) bool
    if not bool(reach.any(1).all()):
        return None
    ranges = []
    for axis in reach:
        hit = axis.nonzero().flatten()
        ranges.append((int(hit[0]), int(hit[-1]) + 1))
    return tuple(ranges)


def trilinear_sum(gx: torch.Tensor, gy: torch.Tensor, gz: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
    """V[b, i, j, k] = Σ_a gx[b, a, i] gy[b, a, j] gz[b, a, k], differentiable in all three factors.

    gx : (B, N, Dx), gy : (B, N, Dy), gz : (B, N, Dz), one dtype and device → (B, Dx, Dy, Dz).

    Forward and backward loop over chunks of the i axis, forming at most a (B, N, chunk, Dy) block at a
    time; only the factors (O(N·D)) are kept for backward, never an O(N·D²) or O(N·D³) tensor. ``chunk``
    (voxels along i per block) defaults to a size measured to be fast; the result does not depend on it
    beyond rounding. Not twice differentiable.
    """
    if not (gx.ndim == gy.ndim == gz.ndim == 3 and gx.shape[:2] == gy.shape[:2] == gz.shape[:2]):
        raise ValueError(f"factors must be (B, N, D?) with shared B and N, got {tuple(gx.shape)}, "
                         f"{tuple(gy.shape)}, {tuple(gz.shape)}")
    if not (gx.dtype == gy.dtype == gz.dtype and gx.device == gy.device == gz.device):
        raise ValueError("factors must share one dtype and device")
    if chunk is None:
        chunk = _default_chunk(gx.shape[0] * gx.shape[1] * gy.shape[2], gx.shape[2], gx.device)
    elif not (isinstance(chunk, int) and chunk >= 1):
        raise ValueError(f"chunk must be a positive int, got {chunk!r}")
    return _TrilinearSum.apply(gx.contiguous(), gy.contiguous(), gz.contiguous(), chunk)


class _GaussianProfiles(torch.autograd.Function):
    """1D profiles g[b, d, a, i] = exp(-u²), u = (coords[b, a, d] - axis[i]) / w: (B, N, 3) → (B, 3, N, D);
    zero where exp(-u²) < PROFILE_CUTOFF.

    Backward is the closed form ∂g/∂coord = -2 u g / w, one fused pass instead of autograd's chain of five.
    """

    @staticmethod
    def forward(ctx, coords, axis, width):
        u = (coords.transpose(1, 2)[..., None] - axis) / width  # (B, 3, N, D)
        exponent = u.square().neg_()
        # Clamp before exp(): near underflow exp() itself takes a slow path (~5× on CPU).
        floor = math.log(PROFILE_CUTOFF)
        profiles = torch.exp(exponent.clamp(min=floor)).masked_fill_(exponent < floor, 0.0)
        ctx.save_for_backward(u, profiles)
        ctx.width = width
        return profiles

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        u, profiles = ctx.saved_tensors
        grad_coords = (grad * profiles * u).sum(-1).transpose(1, 2) * (-2.0 / ctx.width)  # (B, N, 3)
        return grad_coords, None, None


class _TrilinearSum(torch.autograd.Function):
    """Chunked trilinear contraction that saves only its three (B, N, D) factors for backward."""

    @staticmethod
    def forward(ctx, gx, gy, gz, chunk):
        ctx.save_for_backward(gx, gy, gz)
        ctx.chunk = chunk
        B, N, Dx = gx.shape
        Dy, Dz = gy.shape[2], gz.shape[2]
        volume = gx.new_empty(B, Dx, Dy, Dz)
        scratch = gx.new_empty(B * N * min(chunk, Dx) * Dy)  # one buffer for every chunk: no allocator churn
        for i0 in range(0, Dx, chunk):
            c = min(chunk, Dx - i0)
            # Khatri-Rao block P[b, a, (i, j)] = gx[b, a, i] gy[b, a, j], then V[(i, j), k] = Pᵀ gz.
            block = scratch[:B * N * c * Dy].view(B, N, c, Dy)
            torch.mul(gx[:, :, i0:i0 + c, None], gy[:, :, None, :], out=block)
            torch.bmm(block.view(B, N, c * Dy).transpose(1, 2), gz, out=volume[:, i0:i0 + c].view(B, c * Dy, Dz))
        return volume

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        gx, gy, gz = ctx.saved_tensors
        grad = grad.contiguous()
        B, N, Dx = gx.shape
        Dy, Dz = gy.shape[2], gz.shape[2]
        grad_x = torch.empty_like(gx)
        grad_y = torch.zeros_like(gy)
        grad_z = torch.zeros_like(gz)
        scratch = gx.new_empty(B * N * min(ctx.chunk, Dx) * Dy)
        for i0 in range(0, Dx, ctx.chunk):
            c = min(ctx.chunk, Dx - i0)
            g = grad[:, i0:i0 + c].reshape(B, c * Dy, Dz)  # (B, c·Dy, Dz)
            x = gx[:, :, i0:i0 + c]  # (B, N, c)
            # T[b, a, i, j] = Σ_k dV[b, i, j, k] gz[b, a, k] gives dgy (· gx, sum over i) and dgx (· gy, over j).
            t = scratch[:B * N * c * Dy].view(B, N, c, Dy)
            torch.bmm(gz, g.transpose(1, 2), out=t.view(B, N, c * Dy))
            for i in range(c):  # in-place FMAs beat one reduction over the strided i axis
                grad_y.addcmul_(t[:, :, i], x[:, :, i, None])
            torch.sum(t.mul_(gy[:, :, None, :]), dim=-1, out=grad_x[:, :, i0:i0 + c])
            # dgz[b, a, k] = Σ_(i, j) P[b, a, (i, j)] dV[b, (i, j), k], with the forward's block rebuilt.
            block = torch.mul(x[..., None], gy[:, :, None, :], out=t)
            grad_z.baddbmm_(block.view(B, N, c * Dy), g)
        return grad_x, grad_y, grad_z, None


def _default_chunk(block_elements_per_row: int, rows: int, device: torch.device) -> int:
    """Rows of i per chunk so that the (B, N, chunk, Dy) block stays near the device's budget."""
    budget = _CPU_BLOCK_ELEMENTS if device.type == "cpu" else _GPU_BLOCK_ELEMENTS
    return max(1, min(rows, budget // max(block_elements_per_row, 1)))


def check_in_box(coords: torch.Tensor, grid: MapGrid, mask: torch.Tensor | None = None,
                 names: list[str] | None = None,
                 advice: str = "centre the structure or enlarge the grid") -> None:
    """Raise ValueError, naming the extent and the box, if a real atom is non-finite or outside the
    voxel-centre range of ``grid``. coords (B, N, 3) Å; mask (B, N) bool, True for real atoms;
    names (B,) labels for the message (default "structure b of the batch"); advice ends the message."""
    coords = coords.detach()

    def label(b: int) -> str:
        return f"structure {b} of the batch" if names is None else names[b]

    real = torch.ones_like(coords, dtype=torch.bool) if mask is None else mask[..., None].expand_as(coords)
    if not bool((torch.isfinite(coords) | ~real).all()):
        b = int((~torch.isfinite(coords) & real).any(-1).any(-1).nonzero()[0])
        raise ValueError(f"{label(b)} has non-finite atom coordinates")
    low = torch.where(real, coords, math.inf).amin(1)  # (B, 3), +inf for a structure without atoms
    high = torch.where(real, coords, -math.inf).amax(1)  # (B, 3)
    lo, hi = grid.origin[0], grid.origin[0] + (grid.size - 1) * grid.apix
    outside = ((low < lo) | (high > hi)).nonzero()
    if len(outside):
        b, axis = outside[0].tolist()
        a, z = float(low[b, axis]), float(high[b, axis])
        raise ValueError(
            f"{label(b)}: atoms span {z - a:.1f} Å along {'xyz'[axis]} ({a:.1f} to {z:.1f} Å) "
            f"but the box holds {lo:.1f} to {hi:.1f} Å ({grid.size} voxels × {grid.apix} Å = "
            f"{grid.box_length:.1f} Å); {advice}")


def _describe(x) -> str:
    return f"{x.dtype} {tuple(x.shape)}" if torch.is_tensor(x) else type(x).__name__
