"""The pre-LayerNorm transformer block shared by every transformer family (GPT-2 layout and names)."""
from __future__ import annotations

import torch
import torch.nn as nn

from .attention import KVCache, SelfAttention


class MLP(nn.Module):
    """Position-wise feed-forward: expand 4x, tanh-approximated GELU (as GPT-2), project back."""

    def __init__(self, n_embd: int, *, bias: bool = True, dropout: float = 0.0):
        super().__init__()
        self.c_fc = nn.Linear(n_embd, 4 * n_embd, bias=bias)
        self.gelu = nn.GELU(approximate="tanh")
        self.c_proj = nn.Linear(4 * n_embd, n_embd, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    """x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, n_embd: int, n_head: int, *, bias: bool = True, dropout: float = 0.0, causal: bool = True):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd, bias=bias)
        self.attn = SelfAttention(n_embd, n_head, bias=bias, dropout=dropout, causal=causal)
        self.ln_2 = nn.LayerNorm(n_embd, bias=bias)
        self.mlp = MLP(n_embd, bias=bias, dropout=dropout)

    def forward(self, x: torch.Tensor, *, cache: KVCache | None = None, layer: int = 0,
                key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), cache=cache, layer=layer, key_padding_mask=key_padding_mask)
        return x + self.mlp(self.ln_2(x))
