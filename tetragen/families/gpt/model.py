"""GPT: a decoder-only transformer language model in GPT-2's layout.

Language Models are Unsupervised Multitask Learners (Radford et al. 2019).
Learned absolute positions, pre-LayerNorm blocks, tanh-GELU MLP, the input embedding tied to the output projection.
Parameter names match GPT-2's (`transformer.wte`, `transformer.h.0.attn.c_attn`, ...) so export/import is a rename.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...nn.attention import KVCache
from ...nn.transformer import Block, gpt2_init
from .config import GPTConfig


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        if config.vocab_size < 1:
            raise ValueError("GPTConfig.vocab_size must be set (it comes from the tokenizer)")
        self.config = config
        c = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(c.vocab_size, c.n_embd),
            wpe=nn.Embedding(c.block_size, c.n_embd),
            drop=nn.Dropout(c.dropout),
            h=nn.ModuleList([Block(c.n_embd, c.n_head, bias=c.bias, dropout=c.dropout, causal=True,
                                   activation=c.activation)
                             for _ in range(c.n_layer)]),
            ln_f=nn.LayerNorm(c.n_embd, bias=c.bias),
        ))
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
        # Weight tying: one matrix both embeds tokens and scores them, which saves parameters and helps small data.
        self.lm_head.weight = self.transformer.wte.weight
        gpt2_init(self, c.n_layer)

    def num_params(self, non_embedding: bool = True) -> int:
        n = sum(p.numel() for p in self.parameters())
        return n - self.transformer.wpe.weight.numel() if non_embedding else n

    def flops_per_token(self) -> float:
        """Training FLOPs per token (forward + backward): 6N for the weights plus the attention matmuls."""
        c = self.config
        return 6 * self.num_params() + 12 * c.n_layer * c.n_embd * c.block_size

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, *, cache: KVCache | None = None,
                pos: torch.Tensor | None = None, last_only: bool = False):
        """idx (B, T) token ids -> (logits, loss). logits are (B, T, vocab), or (B, 1, vocab) with `last_only`.

        With a `cache` the tokens continue the ones it holds, every row alike. With `pos` (B, T) as well, each row
        stands at its own positions instead: the rows are different sequences at different lengths, each in its own
        row of the cache, and a token sees that row's keys up to its own position (batched decoding, decode.py)."""
        B, T = idx.shape
        if pos is None:
            start = cache.pos if cache is not None else 0
            if start + T > self.config.block_size:
                raise ValueError(f"sequence of {start + T} tokens is longer than block_size {self.config.block_size}")
            positions = torch.arange(start, start + T, device=idx.device)               # (T,)
        else:
            positions = pos                                                             # (B, T)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(positions))  # (B, T, C)
        for i, block in enumerate(self.transformer.h):
            x = block(x, cache=cache, layer=i, pos=pos)
        if cache is not None and pos is None:
            cache.advance(T)
        x = self.transformer.ln_f(x)
        if targets is not None:
            logits = self.lm_head(x)                                                    # (B, T, vocab)
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)).float(), targets.reshape(-1), ignore_index=-1)
            return logits, loss
        if last_only:  # generation needs only the next-token distribution: skip the other T-1 projections
            x = x[:, [-1], :]
        return self.lm_head(x), None

    def new_cache(self, batch: int, device=None, dtype=torch.float32) -> KVCache:
        c = self.config
        return KVCache(c.n_layer, batch, c.n_head, c.block_size, c.n_embd // c.n_head, device=device, dtype=dtype)
