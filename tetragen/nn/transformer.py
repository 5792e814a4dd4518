"""The pre-LayerNorm transformer block shared by every transformer family (GPT-2 layout and names)."""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from .attention import KVCache, SelfAttention


# GELU as GPT-2 computes it (tanh approximation) or exactly (erf). On CPUs the erf kernel is several times faster
# than the tanh one, which matters for small models; Hugging Face's GPT-2 has both ("gelu_new" and "gelu").
ACTIVATIONS = {"gelu_tanh": "tanh", "gelu": "none"}


class MLP(nn.Module):
    """Position-wise feed-forward: expand 4x, GELU (tanh-approximated by default, as GPT-2), project back."""

    def __init__(self, n_embd: int, *, bias: bool = True, dropout: float = 0.0, activation: str = "gelu_tanh"):
        super().__init__()
        self.c_fc = nn.Linear(n_embd, 4 * n_embd, bias=bias)
        self.gelu = nn.GELU(approximate=ACTIVATIONS[activation])
        self.c_proj = nn.Linear(4 * n_embd, n_embd, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    """x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, n_embd: int, n_head: int, *, bias: bool = True, dropout: float = 0.0, causal: bool = True,
                 activation: str = "gelu_tanh"):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd, bias=bias)
        self.attn = SelfAttention(n_embd, n_head, bias=bias, dropout=dropout, causal=causal)
        self.ln_2 = nn.LayerNorm(n_embd, bias=bias)
        self.mlp = MLP(n_embd, bias=bias, dropout=dropout, activation=activation)

    def forward(self, x: torch.Tensor, *, cache: KVCache | None = None, layer: int = 0, pos: torch.Tensor | None = None,
                key_padding_mask: torch.Tensor | None = None, attn_bias: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), cache=cache, layer=layer, pos=pos, key_padding_mask=key_padding_mask,
                          attn_bias=attn_bias)
        return x + self.mlp(self.ln_2(x))


def gpt2_init(model: nn.Module, n_layer: int) -> None:
    """GPT-2's initialisation: N(0, 0.02) for linear and embedding weights, zero biases, and the projections that write
    into the residual stream (`c_proj`) scaled by 1/sqrt(2 * n_layer) so the stream's variance stays O(1)."""
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
    for name, p in model.named_parameters():
        if name.endswith("c_proj.weight"):
            nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * n_layer))
