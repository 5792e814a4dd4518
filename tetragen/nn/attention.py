"""Multi-head self-attention through `torch.nn.functional.scaled_dot_product_attention`, with a KV cache.

Attention Is All You Need (Vaswani et al. 2017): https://arxiv.org/abs/1706.03762
ALiBi, an optional distance penalty on the scores (Press et al. 2021): https://arxiv.org/abs/2108.12409
The projections follow GPT-2's names (`c_attn` for the fused q/k/v projection, `c_proj` for the output) so that
weights map one-to-one onto the GPT-2 format.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F


class KVCache:
    """Keys and values of every layer for the tokens seen so far, preallocated to `max_len` positions; a token's key
    and value are stored at its position.

    `update(layer, k, v)` appends this step's keys/values for one layer and returns all of them so far; `advance`
    moves the position once every layer has been updated: every row of the batch at the same place. `put(layer, k,
    v, pos)` stores them at positions given per row instead, for rows that are different sequences at different
    lengths (the server's slots); `row(i)` is row i alone, as a cache of its own sharing this one's storage.
    """

    def __init__(self, n_layer: int, batch: int, n_head: int, max_len: int, head_dim: int,
                 device=None, dtype=torch.float32):
        shape = (batch, n_head, max_len, head_dim)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(n_layer)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(n_layer)]
        self.pos = 0          # number of positions already stored
        self.max_len = max_len
        self.key_pos = torch.arange(max_len, device=device)  # the position of every stored key

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        T = k.size(2)
        if self.pos + T > self.max_len:
            raise ValueError(f"KV cache full: {self.pos} + {T} > {self.max_len}")
        self.k[layer][:, :, self.pos:self.pos + T] = k
        self.v[layer][:, :, self.pos:self.pos + T] = v
        end = self.pos + T
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]

    def put(self, layer: int, k: torch.Tensor, v: torch.Tensor,
            pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """k, v (B, nh, T, hs) stored at positions pos (B, T), each row at its own -> every stored key and value
        (B, nh, max_len, hs); `visible(pos)` says which of them each token may see."""
        rows = torch.arange(k.size(0), device=k.device)[:, None]                          # (B, 1)
        self.k[layer][rows, :, pos] = k.transpose(1, 2).to(self.k[layer].dtype)          # (B, T, nh, hs) slots
        self.v[layer][rows, :, pos] = v.transpose(1, 2).to(self.v[layer].dtype)
        return self.k[layer], self.v[layer]

    def visible(self, pos: torch.Tensor) -> torch.Tensor:
        """pos (B, T) -> (B, 1, T, max_len), True where a stored key is at or before the token's position: the
        causal mask in positions, which also hides whatever a row held beyond its current sequence."""
        return self.key_pos <= pos[:, None, :, None]

    def row(self, i: int) -> KVCache:
        """Row i as a cache of one row from position 0, writing into this cache's storage."""
        view = copy.copy(self)
        view.k, view.v, view.pos = [t[i:i + 1] for t in self.k], [t[i:i + 1] for t in self.v], 0
        return view

    def advance(self, T: int) -> None:
        self.pos += T

    def reset(self) -> None:
        self.pos = 0


def alibi_bias(n_head: int, T: int, device: torch.device | None = None) -> torch.Tensor:
    """ALiBi's penalty for a bidirectional encoder: (n_head, T, T), -m_h * |i - j|, with head h's slope
    m_h = 2^(-8 (h + 1) / n_head); symmetric, as MosaicBERT uses it (https://arxiv.org/abs/2312.17482)."""
    slopes = torch.tensor([2.0 ** (-8.0 * (h + 1) / n_head) for h in range(n_head)], device=device)
    pos = torch.arange(T, device=device)
    return -slopes[:, None, None] * (pos[None, :] - pos[:, None]).abs()            # (nh, T, T)


class SelfAttention(nn.Module):
    """Multi-head self-attention; causal (GPT) or bidirectional with an optional padding mask (BERT)."""

    def __init__(self, n_embd: int, n_head: int, *, bias: bool = True, dropout: float = 0.0, causal: bool = True):
        super().__init__()
        if n_embd % n_head != 0:
            raise ValueError(f"n_embd ({n_embd}) must be divisible by n_head ({n_head})")
        self.n_head = n_head
        self.causal = causal
        self.dropout = dropout
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)   # q, k, v in one matmul
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, *, cache: KVCache | None = None, layer: int = 0, pos: torch.Tensor | None = None,
                key_padding_mask: torch.Tensor | None = None, attn_bias: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T, C) -> (B, T, C). With a `cache`, the tokens follow those it holds, or with `pos` (B, T) stand at
        the positions given per row (and see the keys up to their own position). key_padding_mask (B, T): True where
        the token is real; attn_bias (nh, T, S): added to the attention scores (e.g. `alibi_bias`)."""
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        hs = C // self.n_head
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)

        mask, is_causal = None, self.causal
        if cache is not None and pos is not None:
            # each row at its own positions: the key axis is the whole cache, so no row's arithmetic depends on how
            # long the others are
            k, v = cache.put(layer, k, v, pos)              # (B, nh, max_len, hs)
            mask, is_causal = cache.visible(pos), False     # (B, 1, T, max_len)
        elif cache is not None:
            past = cache.pos
            k, v = cache.update(layer, k, v)                # (B, nh, past + T, hs)
            if self.causal and past > 0:
                if T == 1:
                    is_causal = False                       # one new query may see every cached key
                else:                                       # a chunk after a prefix: causal with an offset
                    is_causal = False
                    mask = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(diagonal=past)
        if key_padding_mask is not None:                    # (B, T) True where the token is real
            pad = key_padding_mask[:, None, None, :].to(torch.bool)
            mask = pad if mask is None else (mask & pad)
        if is_causal and (mask is not None or attn_bias is not None):
            # SDPA takes is_causal or attn_mask, not both: spell the causal mask out and combine
            causal = torch.ones(T, k.size(2), dtype=torch.bool, device=x.device).tril()
            mask, is_causal = (causal if mask is None else mask & causal), False
        dropout_p = self.dropout if self.training else 0.0
        if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            # Under CPU autocast this op runs in bf16, and the CPU kernel's bf16 backward is several times slower
            # than its fp32 one (torch 2.13): keep attention itself in fp32; the projections around it stay bf16.
            with torch.autocast("cpu", enabled=False):
                y = F.scaled_dot_product_attention(q.float(), k.float(), v.float(),
                                                   attn_mask=_scores_mask(mask, attn_bias, torch.float32),
                                                   is_causal=is_causal, dropout_p=dropout_p)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=_scores_mask(mask, attn_bias, q.dtype),
                                               is_causal=is_causal, dropout_p=dropout_p)
        y = y.transpose(1, 2).contiguous().view(B, T, C)    # re-assemble heads side by side
        return self.resid_dropout(self.c_proj(y))


def _scores_mask(mask: torch.Tensor | None, bias: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """SDPA's attn_mask: the boolean mask alone, or the additive bias with -inf where the mask is False."""
    if bias is None:
        return mask
    bias = bias.to(dtype)
    return bias if mask is None else bias.masked_fill(~mask, float("-inf"))
