"""The atomic encoder f_θ (appendix A.3): noisy map + log-SNR + X_ref → atom coordinates.

Layout of the network, shared by both presets:

1. a 3D ResNet over the noisy map, conditioned on log-SNR (FiLM in every block);
2. per-token volume features, either *global* (the paper: the ResNet's pooled code projected to one
   latent per token) or *sampled* (CNN feature maps read at the reference atom positions by trilinear
   interpolation, then averaged over the atoms of each token);
3. a Diffusion Transformer (DiT) over tokens whose input is the volume features concatenated with the
   token's reference coordinates, plus a sinusoidal positional embedding of the chain position;
   adaLN-Zero injects the log-SNR; a padding mask keeps padded tokens out of attention;
4. a per-atom head: token output ⊕ atom features ⊕ atom-name embedding ⊕ atom offset from the token
   centre → offset (Å), added to X_ref by a residual connection (A.3).

Tokens are atoms in the ``paper`` preset and residues in the CPU ``default`` preset (about 8× fewer
tokens; the per-atom head still gives every atom its own offset).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from cryosampler.model.featurize import ProteinBatch

__all__ = ["EncoderConfig", "ENCODER_PRESETS", "AtomicEncoder", "sample_at_atoms", "token_mean", "init_dit",
           "chain_embedding", "add_chain_embedding", "check_window", "default_attention_window",
           "FULL_ATTENTION_TOKENS", "ATTENTION_WINDOW"]


# The DiT's attention over residue tokens grows with the square of their number and is most of a training step
# from a few thousand residues on (docs/performance.md, "Scaling with protein size and box"); attention within
# windows grows linearly. Every reference of the notebooks has far fewer residues, so their models keep full
# attention.
FULL_ATTENTION_TOKENS = 2048
ATTENTION_WINDOW = 256


def default_attention_window(tokens: int) -> int:
    """The attention window (``EncoderConfig.attention_window``) `train` gives a model of references of up to
    ``tokens`` residues: 0 (full attention) up to FULL_ATTENTION_TOKENS, ATTENTION_WINDOW above."""
    return ATTENTION_WINDOW if tokens > FULL_ATTENTION_TOKENS else 0


def check_window(window, owner: str) -> None:
    """ValueError naming ``owner`` unless ``window`` is 0 (full attention) or an even int ≥ 2 (its half is the
    shift)."""
    if not isinstance(window, int) or window < 0 or window % 2:
        raise ValueError(f"{owner}.attention_window must be 0 (full attention) or an even number of tokens ≥ 2, got "
                         f"{window!r}")


@dataclass(frozen=True)
class EncoderConfig:
    """Architecture of f_θ. Named presets in ``ENCODER_PRESETS``."""

    cnn_channels: tuple[int, ...] = (8, 16, 32)  # one stride-2 residual stage per entry
    volume_features: Literal["global", "sampled"] = "sampled"
    tokens: Literal["atom", "residue"] = "residue"
    width: int = 128  # DiT hidden size
    depth: int = 4  # DiT blocks
    heads: int = 4
    mlp_ratio: float = 2.0
    latent_dim: int = 16  # per-token latent from global features (paper: "N-dimensional latent")
    max_tokens: int = 1600  # global features only: the projection has one latent per token slot
    atom_vocab: int = 48  # atom-name embedding table size (see featurize.ATOM_NAMES)
    residue_vocab: int = 24  # residue-type embedding table size (see featurize.RESIDUE_NAMES)
    atom_embed: int = 16
    # Residue-type embeddings in the DiT tokens and atom-name embeddings in the per-atom head, beyond the
    # paper, which feeds only volume latents and reference coordinates (sequence features are its future
    # work). Off by default: the full-profile ablation (docs/design.md) gave the same
    # closest-sample RMSDs on the training proteins with and without, and a better balance of the two states
    # without them; chosen on the training proteins.
    sequence_features: bool = False
    head_hidden: int = 128
    # G coordinate sets per map, rendered and mixed by the denoiser (CryoSampler.denoise; issue 19): at high noise
    # the mixture can stand for several states at once, where one structure can only be one of them. 1 is the
    # paper's single structure.
    components: int = 1
    # 0: full attention over tokens; W > 0: attention within windows of W consecutive tokens, shifted by W/2 in
    # every other block (DiTBlock). `train` sets it for references of many residues (commands/train.py).
    attention_window: int = 0
    # Chains of the reference: each chain after the first has an embedding added to its tokens, so that the DiT
    # tells chains apart (their residue numbers already differ). Zero at the start; `train` sets it from the
    # references. 1 (one chain) has no embedding, so single-chain models are as before; 0 is a model from before
    # the embedding (its config has no such field): none, and references of any number of chains, as then.
    chains: int = 1

    def __post_init__(self):
        for name, least in (("components", 1), ("chains", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or value < least:
                raise ValueError(f"EncoderConfig.{name} must be an int ≥ {least}, got {value!r}")
        check_window(self.attention_window, "EncoderConfig")


ENCODER_PRESETS = {
    # A.3 as written: ResNet-10 on 64³ → per-atom latents → DiT over atom tokens.
    "paper": EncoderConfig(cnn_channels=(64, 128, 256, 512), volume_features="global", tokens="atom",
                           width=128, depth=4, heads=4),
    # CPU design: narrow CNN, features sampled at reference atoms, residue tokens, per-atom head.
    "default": EncoderConfig(),
    # Tests and fast notebooks: same code, smaller sizes.
    "smoke": EncoderConfig(cnn_channels=(4, 8), width=32, depth=1, heads=2, head_hidden=32, atom_embed=8),
}


def sinusoidal_embedding(x: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """x: (...,) float → (..., dim) sin/cos features (DiT timestep embedding)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=x.dtype, device=x.device) / half)
    angles = x[..., None] * freqs  # (..., half)
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)


class FiLMResBlock(nn.Module):
    """Stride-2 residual block (two 3³ convs) with log-SNR FiLM after the first convolution."""

    def __init__(self, c_in: int, c_out: int, cond_dim: int):
        super().__init__()
        # No conv biases: each conv feeds a GroupNorm, and oneDNN's conv3d bias gradient is pathologically
        # slow on CPU for some shapes (e.g. 8→8 channels on 8×32³; docs/design.md, "Measurements behind
        # constants").
        self.conv1 = nn.Conv3d(c_in, c_out, 3, stride=2, padding=1, bias=False)
        self.norm1 = nn.GroupNorm(min(4, c_out), c_out)
        self.conv2 = nn.Conv3d(c_out, c_out, 3, padding=1, bias=False)
        self.norm2 = nn.GroupNorm(min(4, c_out), c_out)
        self.skip = nn.Conv3d(c_in, c_out, 1, stride=2, bias=False)
        self.film = nn.Linear(cond_dim, 2 * c_out)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.norm1(self.conv1(x)))  # (B, C, D/2, D/2, D/2)
        scale, shift = self.film(cond)[:, :, None, None, None].chunk(2, dim=1)
        h = h * (1 + scale) + shift
        h = self.norm2(self.conv2(h))
        return F.silu(h + self.skip(x))


def init_dit(pos: nn.Linear, blocks: nn.ModuleList, ada_out: nn.Sequential, head: nn.Sequential) -> None:
    """The DiT's initialisation (A.3): the positional projection at std 0.02; every block's and the output's adaLN
    modulation zeroed, so that each block starts as the identity (adaLN-Zero); and the head's last layer zeroed, so
    that an untrained network moves no atom."""
    nn.init.normal_(pos.weight, std=0.02)
    nn.init.zeros_(pos.bias)
    for block in blocks:
        nn.init.zeros_(block.ada[-1].weight)
        nn.init.zeros_(block.ada[-1].bias)
    nn.init.zeros_(ada_out[-1].weight)
    nn.init.zeros_(ada_out[-1].bias)
    nn.init.zeros_(head[-1].weight)
    nn.init.zeros_(head[-1].bias)


class DiTBlock(nn.Module):
    """Transformer block with adaLN-Zero conditioning (Peebles & Xie 2023).

    ``window`` 0: every token attends to every other. ``window`` W > 0: tokens attend within consecutive windows
    of W tokens (in chain order, so a window is a stretch of residues), the first window W/2 long when ``shifted``
    so that alternate blocks join neighbouring windows (Swin's shifted windows, Liu et al. 2021, without the wrap
    around): cost linear in the number of tokens instead of quadratic. Windows count from the first token, so a
    protein's windows do not depend on the others padded into its batch.
    """

    def __init__(self, width: int, heads: int, mlp_ratio: float, window: int = 0, shifted: bool = False):
        super().__init__()
        self.heads, self.window, self.shift = heads, window, window // 2 if shifted else 0
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, width))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(width, 6 * width))

    def forward(self, x: torch.Tensor, cond: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(cond)[:, None].chunk(6, dim=-1)  # (B, 1, C) each
        h = self.norm1(x) * (1 + scale1) + shift1
        q, k, v = self.qkv(h).view(B, T, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)  # (B, H, T, C/H)
        if self.window:
            attn = self._windowed(q, k, v, key_mask)
        else:
            attn = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask[:, None, None, :])  # (B, H, T, C/H)
        x = x + gate1 * self.proj(attn.transpose(1, 2).reshape(B, T, C))
        h = self.norm2(x) * (1 + scale2) + shift2
        return x + gate2 * self.mlp(h)

    def _windowed(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        """Attention within windows of ``self.window`` tokens: q, k, v (B, H, T, C/H), key_mask (B, T) → (B, H, T,
        C/H). ``self.shift`` masked slots before the first token make the first window shorter; the padding that
        fills the last window is masked as a key too, and every slot may attend to itself, so that no row is left
        without a key."""
        B, H, T, D = q.shape
        W, front = self.window, self.shift
        n = -(-(T + front) // W)  # windows
        back = n * W - T - front
        q, k, v = (F.pad(t, (0, 0, front, back)).view(B, H, n, W, D) for t in (q, k, v))
        mask = F.pad(key_mask, (front, back)).view(B, 1, n, 1, W) | torch.eye(W, dtype=torch.bool, device=q.device)
        attn = F.scaled_dot_product_attention(q, k, v, attn_mask=mask).reshape(B, H, n * W, D)
        return attn[:, :, front:front + T]


class AtomicEncoder(nn.Module):
    """f_θ(V_t, log-SNR_t, X_ref) → X̂_0 (A.3)."""

    def __init__(self, config: EncoderConfig, grid_size: int, apix: float):
        super().__init__()
        self.config, self.grid_size, self.apix = config, grid_size, apix
        c = config
        self.cond = nn.Sequential(nn.Linear(c.width, c.width), nn.SiLU(), nn.Linear(c.width, c.width))
        channels = (1,) + c.cnn_channels
        self.stages = nn.ModuleList(FiLMResBlock(a, b, c.width) for a, b in zip(channels[:-1], channels[1:]))
        if c.volume_features == "global":
            self.to_latents = nn.Linear(c.cnn_channels[-1], c.max_tokens * c.latent_dim)
            token_feat = c.latent_dim
            atom_feat = 0
        else:
            token_feat = atom_feat = sum(c.cnn_channels)
        embed = c.atom_embed if c.sequence_features else 0
        if c.sequence_features:
            self.atom_name = nn.Embedding(c.atom_vocab, c.atom_embed)
            self.residue_name = nn.Embedding(c.residue_vocab, c.atom_embed)
        self.token_in = nn.Linear(token_feat + 3 + embed, c.width)
        self.pos = nn.Linear(c.width, c.width)  # on a sinusoidal embedding of the chain position
        self.chain = chain_embedding(c.chains, c.width)
        self.blocks = nn.ModuleList(DiTBlock(c.width, c.heads, c.mlp_ratio, c.attention_window, shifted=i % 2 == 1)
                                    for i in range(c.depth))
        self.norm_out = nn.LayerNorm(c.width, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Sequential(nn.SiLU(), nn.Linear(c.width, 2 * c.width))
        self.head = nn.Sequential(
            nn.Linear(c.width + atom_feat + embed + 3, c.head_hidden), nn.SiLU(),
            nn.Linear(c.head_hidden, c.head_hidden), nn.SiLU(),
            nn.Linear(c.head_hidden, 3 * c.components),
        )
        self.initialize_weights()

    def initialize_weights(self) -> None:
        init_dit(self.pos, self.blocks, self.ada_out, self.head)  # an untrained encoder returns X_ref exactly
        if self.config.components > 1:
            # Identical components would get identical gradients for ever: start them slightly apart.
            nn.init.normal_(self.head[-1].weight, std=1e-3)

    def forward(self, volume: torch.Tensor, log_snr: torch.Tensor, batch: ProteinBatch) -> torch.Tensor:
        """volume: (B, D, D, D) normalised noisy map, axes (x, y, z); log_snr: (B,).

        Returns coordinates (B, G, N, 3) float32, Å: X_ref + predicted offsets (padded atoms: X_ref), G =
        ``config.components``.
        """
        c = self.config
        B, N, _ = batch.ref_coords.shape
        cond = self.cond(sinusoidal_embedding(log_snr, c.width))  # (B, W)

        # 3D ResNet over the map.
        h = volume[:, None]  # (B, 1, D, D, D)
        feature_maps = []
        for stage in self.stages:
            h = stage(h, cond)  # (B, C_s, D_s, D_s, D_s)
            feature_maps.append(h)

        # Per-token volume features.
        T = batch.token_mask.shape[1]
        if c.volume_features == "global":
            if T > c.max_tokens:
                raise ValueError(f"{T} tokens exceed this model's max_tokens={c.max_tokens}")
            code = h.mean(dim=(2, 3, 4))  # (B, C_last)
            token_feat = self.to_latents(code).view(B, c.max_tokens, c.latent_dim)[:, :T]  # (B, T, latent)
            atom_feat = volume.new_zeros(B, N, 0)
        else:
            atom_feat = sample_at_atoms(feature_maps, batch.ref_coords, self.grid_size, self.apix)  # (B, N, ΣC)
            token_feat = token_mean(atom_feat, batch)  # (B, T, ΣC)

        # DiT over tokens: volume features ⊕ reference coordinates, plus chain position.
        token_centre = token_mean(batch.ref_coords, batch)  # (B, T, 3), Å
        token_xyz = token_centre / 10.0  # nm keeps inputs O(1)
        token_in = [token_feat, token_xyz]
        if c.sequence_features:
            token_in.append(self.residue_name(batch.token_residue_type))
        x = self.token_in(torch.cat(token_in, -1))
        x = x + self.pos(sinusoidal_embedding(batch.token_position, c.width))  # (B, T, W)
        x = add_chain_embedding(x, self.chain, batch)
        for block in self.blocks:
            x = block(x, cond, batch.token_mask)
        shift, scale = self.ada_out(cond)[:, None].chunk(2, dim=-1)
        x = self.norm_out(x) * (1 + scale) + shift  # (B, T, W)

        # Per-atom head → offsets (Å), residual on X_ref.
        per_atom = torch.gather(x, 1, batch.atom_token[..., None].expand(B, N, c.width))  # (B, N, W)
        local = (batch.ref_coords - torch.gather(token_centre, 1, batch.atom_token[..., None].expand(B, N, 3))) / 10.0
        head_in = [per_atom, atom_feat] + ([self.atom_name(batch.atom_type)] if c.sequence_features else []) + [local]
        offsets = self.head(torch.cat(head_in, -1)).view(B, N, c.components, 3).transpose(1, 2)  # (B, G, N, 3)
        offsets = offsets * batch.atom_mask[:, None, :, None]
        return batch.ref_coords[:, None] + offsets  # (B, G, N, 3)


def chain_embedding(chains: int, width: int) -> nn.Embedding | None:
    """The DiT's chain embedding (``chains`` slots of ``width``), None for one chain (or 0: a model from before the
    embedding). Slot 0, the first chain's, is zero for ever (``padding_idx``) and the others start at zero, so a new
    model computes what it would without them; made without drawing random numbers, so the other weights start as
    they would without it."""
    if chains <= 1:
        return None
    return nn.Embedding(chains, width, padding_idx=0, _weight=torch.zeros(chains, width))


def add_chain_embedding(x: torch.Tensor, embedding: nn.Embedding | None, batch: ProteinBatch) -> torch.Tensor:
    """x: (B, T, W) tokens plus their chain's embedding (:func:`chain_embedding`; none: x as it is); ValueError if a
    token's chain has no slot (``reference.prepare_reference`` refuses such a reference first, naming its file)."""
    if embedding is None:
        return x
    if batch.token_chain.numel() and int(batch.token_chain.max()) >= embedding.num_embeddings:
        raise ValueError(f"this model was trained on references of up to {embedding.num_embeddings} chains; it "
                         f"cannot take one of {int(batch.token_chain.max()) + 1}")
    return x + embedding(batch.token_chain)


def sample_at_atoms(feature_maps: list[torch.Tensor], coords: torch.Tensor, grid_size: int,
                    apix: float) -> torch.Tensor:
    """Trilinear read of the ResNet's feature maps at atom positions.

    feature_maps: the output of stage s = 1, 2, … in order, (B, C_s, D_s, D_s, D_s), axes (x, y, z);
    coords: (B, N, 3) float32, Å, in the input map's frame (voxel i centred at (i - D//2) * apix, D =
    grid_size). Returns (B, N, ΣC_s); atoms beyond a level's outermost voxel centres read zero padding there.

    Every stage halves the grid with stride 2, a 3³ kernel and padding 1 (its 1³ skip, stride 2, reads the
    same voxel), so output voxel j is centred on input voxel 2j: voxel j of stage s lies at input index
    2^s j. Each level's sampling coordinates come from its own voxel centres. Reading every level with the
    input grid's coordinates (as before the fix) put an atom at input index i off by i (S - 1) / (D - 1)
    input voxels on a level of stride S: on the 64³ × 2 Å grid up to 2, 6 and 14 Å at 32³, 16³ and 8³ (at
    the box edge; half that at its centre).
    """
    index = coords / apix + grid_size // 2  # (B, N, 3) input voxel index along (x, y, z)
    columns = []
    for level, fm in enumerate(feature_maps, start=1):
        size = fm.shape[-1]
        # align_corners=True: -1 and 1 are the centres of the first and last voxels of this level.
        norm = index / 2**level / max(size - 1, 1) * 2 - 1
        grid = norm.flip(-1)[:, :, None, None, :]  # grid_sample wants (z, y, x) → (W, H, D) order
        columns.append(F.grid_sample(fm, grid, mode="bilinear", padding_mode="zeros", align_corners=True)[..., 0, 0])
    return torch.cat(columns, dim=1).transpose(1, 2)


def token_mean(values: torch.Tensor, batch: ProteinBatch) -> torch.Tensor:
    """Average per-atom values (B, N, C) over the atoms of each token → (B, T, C); padded atoms excluded."""
    B, N, C = values.shape
    T = batch.token_mask.shape[1]
    weights = batch.atom_mask.to(values.dtype)[..., None]  # (B, N, 1)
    sums = values.new_zeros(B, T, C).scatter_add(1, batch.atom_token[..., None].expand(B, N, C), values * weights)
    counts = values.new_zeros(B, T, 1).scatter_add(1, batch.atom_token[..., None], weights)
    return sums / counts.clamp(min=1.0)
