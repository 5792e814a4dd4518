"""Pixel-space diffusion: a denoiser conditioned on the time and on a class, and its training loss.

Two denoisers, chosen by `model.denoiser`:

- `unet`: the U-Net of DDPM (Ho et al. 2020, arXiv:2006.11239) as refined by Dhariwal & Nichol (2021,
  arXiv:2105.05233): residual blocks whose group norm takes a scale and shift from the time and class embedding,
  self-attention at the lowest resolution only (where it is cheap: 7x7 for Fashion-MNIST), skip connections from each
  block on the way down to one on the way up. Levels are `channel_mult`; `patch_size` > 1 folds each patch's pixels
  into channels first (a cheaper network at a coarser grid). The image is padded to a multiple of
  patch_size * 2^(levels - 1) and the output cropped back, so any side works.
- `dit`: the Diffusion Transformer (Peebles & Xie 2022, arXiv:2212.09748): the image cut into patches, transformer
  blocks whose layer norms take a scale, shift and gate from the embedding (adaLN-Zero: each block starts as the
  identity), a linear map back to patches. Fixed 2-D sine-cosine positions, so any grid works.

The condition (`model.cond`) is added to the time embedding that every block reads: a class embedding with one row
more than there are classes (the null class), or a text prompt read by the run's own small text encoder (a
bidirectional transformer over the prompt's characters, mean-pooled; the empty prompt, all [PAD], is a learnt vector
of its own: the null prompt). Training replaces the condition by the null one with probability `cond_drop`
(classifier-free guidance, Ho & Salimans 2022, arXiv:2207.12598). The objective's noise path and loss are in
schedule.py; `Diffusion.forward(batch)` draws times, noise and dropped conditions from torch's global generator.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...nn.attention import SelfAttention
from ...nn.transformer import MLP, Block
from .config import DiffusionConfig
from .schedule import loss_terms, training_times


def time_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Times (B,) in [0, 1] -> sinusoidal features (B, dim) of 1000 t, as DDPM embeds its 1000 integer steps."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = 1000.0 * t.float()[:, None] * freqs[None]                             # (B, half)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)                  # (B, 2 half)


class TextEncoder(nn.Module):
    """Prompt ids (B, T), [PAD] = vocab - 1 after the text -> one vector (B, dim): character embeddings and learnt
    positions through bidirectional transformer blocks (the shared ones), mean-pooled over the prompt's characters.
    The empty prompt (all [PAD], classifier-free guidance's null condition) is a learnt vector of its own."""

    def __init__(self, vocab: int, block: int, width: int, layers: int, heads: int, dim: int):
        super().__init__()
        self.pad_id = vocab - 1
        self.tokens = nn.Embedding(vocab, width)
        self.positions = nn.Parameter(torch.randn(block, width) * 0.02)
        self.blocks = nn.ModuleList([Block(width, heads, causal=False, activation="gelu") for _ in range(layers)])
        self.norm = nn.LayerNorm(width)
        self.proj = nn.Linear(width, dim)
        self.null = nn.Parameter(torch.zeros(dim))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        real = ids != self.pad_id                                                  # (B, T)
        empty = ~real.any(dim=1)                                                   # (B,) the null prompt
        visible = real | empty[:, None]  # an empty row attends to its pads (no row without keys); replaced below
        h = self.tokens(ids) + self.positions[:ids.shape[1]]                       # (B, T, width)
        for block in self.blocks:
            h = block(h, key_padding_mask=visible)
        h = self.norm(h) * real[..., None]
        pooled = h.sum(dim=1) / real.sum(dim=1, keepdim=True).clamp(min=1)        # (B, width)
        out = self.proj(pooled)                                                    # (B, dim)
        return torch.where(empty[:, None], self.null.to(out.dtype).expand_as(out), out)


class Conditioning(nn.Module):
    """Time (B,) and the condition -> one embedding (B, dim) that every block reads. The condition is a class (B,)
    (num_classes > 0), prompt ids (B, T) (a text model), or None (unconditional)."""

    def __init__(self, base: int, dim: int, num_classes: int, c: DiffusionConfig | None = None):
        super().__init__()
        self.base = base
        self.time = nn.Sequential(nn.Linear(base, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.classes = nn.Embedding(num_classes + 1, dim) if num_classes else None  # + the null class
        self.text = (TextEncoder(c.text_vocab_size, c.text_block, c.text_width, c.text_layers, c.text_heads, dim)
                     if c is not None and c.cond == "text" else None)

    def forward(self, t: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        emb = self.time(time_embedding(t, self.base))                              # (B, dim)
        if self.classes is not None:
            emb = emb + self.classes(labels)
        elif self.text is not None:
            emb = emb + self.text(labels)
        return emb


def _groups(channels: int) -> int:
    return math.gcd(channels, 32) if channels >= 32 else math.gcd(channels, 8)


def _zero(module: nn.Module) -> nn.Module:
    """Zero a layer's weights: a residual branch that ends in it starts as nothing."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """x + conv(SiLU(norm(conv(SiLU(norm(x)))) * (1 + scale) + shift)), scale and shift from the embedding."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(in_ch), in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * out_ch)
        self.norm2 = nn.GroupNorm(_groups(out_ch), out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = _zero(nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))                                      # (B, out, H, W)
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)     # (B, out, 1, 1) each
        h = self.norm2(h) * (1 + scale) + shift
        return self.skip(x) + self.conv2(self.dropout(F.silu(h)))


class AttentionBlock(nn.Module):
    """x + self-attention over the H*W positions of a feature map (the shared SDPA attention)."""

    def __init__(self, channels: int, heads: int):
        super().__init__()
        self.norm = nn.GroupNorm(_groups(channels), channels)
        self.attn = SelfAttention(channels, heads, causal=False)
        _zero(self.attn.c_proj)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        h = self.norm(x).flatten(2).transpose(1, 2)                                # (B, HW, C)
        return x + self.attn(h).transpose(1, 2).reshape(B, C, H, W)


class Stage(nn.Module):
    """A residual block, followed by attention at the lowest resolution."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float, heads: int = 0):
        super().__init__()
        self.res = ResBlock(in_ch, out_ch, emb_dim, dropout)
        self.attn = AttentionBlock(out_ch, heads) if heads else None

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.res(x, emb)
        return self.attn(h) if self.attn is not None else h


class Resample(nn.Module):
    """Halves the side (a stride-2 conv) or doubles it (nearest, then a conv)."""

    def __init__(self, channels: int, up: bool):
        super().__init__()
        self.up = up
        self.conv = nn.Conv2d(channels, channels, 3, stride=1 if up else 2, padding=1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest") if self.up else x)


class UNet(nn.Module):
    def __init__(self, c: DiffusionConfig, num_classes: int):
        super().__init__()
        widths = [c.width * m for m in c.mults]                                    # e.g. 16 x 1,2,4: [16, 32, 64]
        emb_dim = 4 * c.width
        lowest = len(widths) - 1
        self.patch = c.patch_size
        self.factor = c.patch_size * 2 ** lowest                                   # the side must divide by this
        self.cond = Conditioning(c.width, emb_dim, num_classes, c)
        folded = c.channels * c.patch_size ** 2                                    # channels after the patching
        self.stem = nn.Conv2d(folded, c.width, 3, padding=1)
        self.down = nn.ModuleList()
        skips, ch = [c.width], c.width                                             # channels of each skip
        for level, w in enumerate(widths):
            for _ in range(c.res_blocks):
                self.down.append(Stage(ch, w, emb_dim, c.dropout, c.heads if level == lowest else 0))
                ch = w
                skips.append(ch)
            if level != lowest:
                self.down.append(Resample(ch, up=False))
                skips.append(ch)
        self.mid = nn.ModuleList([Stage(ch, ch, emb_dim, c.dropout, c.heads),
                                  Stage(ch, ch, emb_dim, c.dropout)])
        self.up = nn.ModuleList()
        for level, w in reversed(list(enumerate(widths))):
            for _ in range(c.res_blocks + 1):                                      # one per skip of this level
                self.up.append(Stage(ch + skips.pop(), w, emb_dim, c.dropout, c.heads if level == lowest else 0))
                ch = w
            if level:
                self.up.append(Resample(ch, up=True))
        self.out = nn.Sequential(nn.GroupNorm(_groups(ch), ch), nn.SiLU(),
                                 _zero(nn.Conv2d(ch, folded, 3, padding=1)))

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """x (B, C, H, W), t (B,), labels (B,) or None -> the prediction (B, C, H, W)."""
        H, W = x.shape[-2:]
        pad_h, pad_w = (-H) % self.factor, (-W) % self.factor
        h = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))  # (B, C, H', W')
        h = F.pixel_unshuffle(h, self.patch)                                       # (B, C p^2, H'/p, W'/p)
        emb = self.cond(t, labels)                                                 # (B, 4 width)
        h = self.stem(h)                                                           # (B, width, H'/p, W'/p)
        skips = [h]
        for block in self.down:
            h = block(h, emb)
            skips.append(h)
        for block in self.mid:
            h = block(h, emb)
        for block in self.up:
            h = block(torch.cat([h, skips.pop()], dim=1), emb) if isinstance(block, Stage) else block(h)
        h = F.pixel_shuffle(self.out(h), self.patch)                               # (B, C, H', W')
        return h[..., pad_h // 2:pad_h // 2 + H, pad_w // 2:pad_w // 2 + W]       # (B, C, H, W)


def sincos_positions(grid: int, dim: int) -> torch.Tensor:
    """Fixed 2-D sine-cosine positions of a grid x grid patch grid -> (grid * grid, dim): half the features for the
    row, half for the column."""
    quarter = dim // 4
    freqs = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float32) / quarter)
    pos = torch.arange(grid, dtype=torch.float32)[:, None] * freqs[None]         # (grid, quarter)
    axis = torch.cat([torch.sin(pos), torch.cos(pos)], dim=1)                     # (grid, 2 quarter)
    rows = axis[:, None, :].expand(grid, grid, -1)
    cols = axis[None, :, :].expand(grid, grid, -1)
    out = torch.cat([rows, cols], dim=-1).reshape(grid * grid, -1)               # (grid^2, 4 quarter)
    return F.pad(out, (0, dim - out.shape[1]))


class DiTBlock(nn.Module):
    """adaLN-Zero: x + gate * attn(norm(x) * (1 + scale) + shift), then the same around the MLP; the six
    modulations come from the embedding through a layer that starts at zero."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = SelfAttention(dim, heads, causal=False, dropout=dropout)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = MLP(dim, dropout=dropout, activation="gelu")
        self.modulation = _zero(nn.Linear(dim, 6 * dim))

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        mods = self.modulation(F.silu(emb))[:, None, :].chunk(6, dim=2)           # 6 x (B, 1, D)
        shift1, scale1, gate1, shift2, scale2, gate2 = mods
        x = x + gate1 * self.attn(self.norm1(x) * (1 + scale1) + shift1)
        return x + gate2 * self.mlp(self.norm2(x) * (1 + scale2) + shift2)


class DiT(nn.Module):
    def __init__(self, c: DiffusionConfig, num_classes: int):
        super().__init__()
        p, d = c.patch_size, c.dit_width
        self.patch = p
        self.grid = -(-c.image_size // p)                                          # patches per side, padded
        self.cond = Conditioning(d, d, num_classes, c)
        self.embed = nn.Conv2d(c.channels, d, p, stride=p)                         # one token per patch
        self.register_buffer("positions", sincos_positions(self.grid, d), persistent=False)
        self.blocks = nn.ModuleList([DiTBlock(d, c.heads, c.dropout) for _ in range(c.depth)])
        self.norm = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.final_modulation = _zero(nn.Linear(d, 2 * d))
        self.to_patches = _zero(nn.Linear(d, p * p * c.channels))

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """x (B, C, H, W), t (B,), labels (B,) or None -> the prediction (B, C, H, W)."""
        B, C, H, W = x.shape
        p, g = self.patch, self.grid
        pad_h, pad_w = g * p - H, g * p - W
        h = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))  # (B, C, g p, g p)
        h = self.embed(h).flatten(2).transpose(1, 2) + self.positions              # (B, g^2, D)
        emb = self.cond(t, labels)                                                 # (B, D)
        for block in self.blocks:
            h = block(h, emb)
        shift, scale = self.final_modulation(F.silu(emb))[:, None, :].chunk(2, dim=2)
        h = self.to_patches(self.norm(h) * (1 + scale) + shift)                    # (B, g^2, p p C)
        h = h.view(B, g, g, p, p, C).permute(0, 5, 1, 3, 2, 4).reshape(B, C, g * p, g * p)
        return h[..., pad_h // 2:pad_h // 2 + H, pad_w // 2:pad_w // 2 + W]       # (B, C, H, W)


class Diffusion(nn.Module):
    """The denoiser and its objective; `forward(batch)` is the training loss, `predict` the network's output."""

    def __init__(self, config: DiffusionConfig):
        super().__init__()
        c = self.config = config
        if c.cond == "class" and c.num_classes < 1:
            raise ValueError("DiffusionConfig.num_classes must be set for cond=class (it comes from the data's "
                             "classes)")
        if c.cond == "text" and c.text_vocab_size < 2:
            raise ValueError("DiffusionConfig.text_vocab_size must be set for cond=text (it comes from the captions)")
        # the classes of the data: a class model's condition, a text model's class prompts; 0: unconditional
        self.num_classes = c.num_classes if c.cond != "none" else 0
        self.denoiser = (UNet if c.denoiser == "unet" else DiT)(c, c.num_classes if c.cond == "class" else 0)

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    @property
    def text(self) -> bool:
        """Whether the condition is a prompt (ids (B, T)) rather than a class (B,)."""
        return self.config.cond == "text"

    @property
    def null_class(self) -> int:
        """The class id that stands for "no class" (classifier-free guidance's unconditional branch); for a text
        model, the [PAD] id that fills the empty prompt."""
        return self.config.text_vocab_size - 1 if self.text else self.num_classes

    def null_condition(self, cond: torch.Tensor) -> torch.Tensor:
        """The null condition in the shape of `cond`: the null class, or the empty prompt."""
        return torch.full_like(cond, self.null_class)

    def predict(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """x_t (B, C, H, W), times (B,), the condition (classes (B,) or prompt ids (B, T); the null one: none) ->
        the network's output (B, C, H, W)."""
        return self.denoiser(x, t, labels if self.conditional else None)

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict]:
        c = self.config
        x0 = batch["x"]                                                            # (B, C, H, W) in [-1, 1]
        B = x0.size(0)
        t = training_times(B, c.objective, c.time_mean, c.time_std, x0.device)     # (B,)
        eps = torch.randn_like(x0)
        cond = None
        if self.conditional:
            given = batch["text"] if self.text else batch["y"]                     # (B, T) or (B,)
            drop = torch.rand(B, device=x0.device) < c.cond_drop
            drop = drop.view(B, *([1] * (given.ndim - 1)))
            cond = torch.where(drop, self.null_condition(given), given)
        xt, target, weight = loss_terms(x0, eps, t, c.objective, c.min_snr_gamma)
        out = self.predict(xt, t, cond)
        per_image = (out.float() - target).pow(2).mean(dim=(1, 2, 3))              # (B,)
        return (weight * per_image).mean(), {}
