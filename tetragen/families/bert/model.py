"""BERT: an encoder-only, bidirectional transformer trained as a masked language model.

BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding (Devlin et al. 2018),
https://arxiv.org/abs/1810.04805. The blocks are the shared pre-LayerNorm ones of `tetragen.nn` (one attention
implementation for every family) with `causal=False` and a padding mask; learned absolute positions, and optionally
ALiBi's distance penalty on the attention scores (`model.alibi`, symmetric as in MosaicBERT): with learned positions
alone, a masked position has no way to its neighbours until attention has learned to find them by position, and a
small character-level model sits at the unigram loss for hundreds of steps first. The masked-LM head is BERT's
(dense, GELU, LayerNorm, then the tied input embedding plus a bias). An optional classifier reads the [CLS] position
or the mean over real tokens.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...nn.attention import alibi_bias
from ...nn.transformer import ACTIVATIONS, Block, gpt2_init
from .config import BERTConfig

IGNORE = -100  # target of positions without a loss


class BERT(nn.Module):
    def __init__(self, config: BERTConfig):
        super().__init__()
        if config.vocab_size < 1:
            raise ValueError("BERTConfig.vocab_size must be set (it comes from the tokenizer)")
        self.config = c = config
        self.encoder = nn.ModuleDict(dict(
            wte=nn.Embedding(c.vocab_size, c.n_embd),
            wpe=nn.Embedding(c.block_size, c.n_embd),
            drop=nn.Dropout(c.dropout),
            h=nn.ModuleList([Block(c.n_embd, c.n_head, bias=c.bias, dropout=c.dropout, causal=False,
                                   activation=c.activation) for _ in range(c.n_layer)]),
            ln_f=nn.LayerNorm(c.n_embd, bias=c.bias),
        ))
        self.mlm_transform = nn.Sequential(nn.Linear(c.n_embd, c.n_embd, bias=c.bias),
                                           nn.GELU(approximate=ACTIVATIONS[c.activation]),
                                           nn.LayerNorm(c.n_embd, bias=c.bias))
        self.mlm_bias = nn.Parameter(torch.zeros(c.vocab_size))
        self.classifier = nn.Linear(c.n_embd, c.num_labels) if c.num_labels else None
        gpt2_init(self, c.n_layer)

    def encode(self, idx: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """idx (B, T) -> hidden states (B, T, C); padding_mask (B, T) is True where the token is real."""
        B, T = idx.shape
        if T > self.config.block_size:
            raise ValueError(f"sequence of {T} tokens is longer than block_size {self.config.block_size}")
        pos = torch.arange(T, device=idx.device)                                      # (T,)
        x = self.encoder.drop(self.encoder.wte(idx) + self.encoder.wpe(pos))          # (B, T, C)
        bias = alibi_bias(self.config.n_head, T, idx.device) if self.config.alibi else None  # (nh, T, T)
        for block in self.encoder.h:
            # every token sees every real token, both directions
            x = block(x, key_padding_mask=padding_mask, attn_bias=bias)
        return self.encoder.ln_f(x)

    def mlm_logits(self, h: torch.Tensor) -> torch.Tensor:
        """Hidden states (..., C) -> vocabulary logits (..., V), through the embedding matrix (tied)."""
        return F.linear(self.mlm_transform(h), self.encoder.wte.weight, self.mlm_bias)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, *,
                padding_mask: torch.Tensor | None = None, classify: bool = False):
        """idx (B, T) -> (logits (B, T, V), None); with targets (B, T), IGNORE where there is no loss, the logits
        of the chosen positions only, (N, V), and their mean cross-entropy (the vocabulary projection is the
        costly part, so it is skipped where no loss is taken).

        With `classify`: (class logits (B, num_labels), their cross-entropy against targets (B,) or None). Through
        forward, so that a wrapped (DDP, compiled) model classifies too."""
        if classify:
            logits = self.classify(idx, padding_mask)                                  # (B, K)
            return logits, (None if targets is None else F.cross_entropy(logits.float(), targets))
        h = self.encode(idx, padding_mask)                                             # (B, T, C)
        if targets is None:
            return self.mlm_logits(h), None
        chosen = targets != IGNORE                                                     # (B, T)
        logits = self.mlm_logits(h[chosen])                                            # (N, V)
        return logits, F.cross_entropy(logits.float(), targets[chosen])

    def classify(self, idx: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """idx (B, T) with [CLS] first -> class logits (B, num_labels)."""
        if self.classifier is None:
            raise ValueError("this BERT has no classification head (model.num_labels is 0)")
        h = self.encode(idx, padding_mask)                                             # (B, T, C)
        if self.config.pooling == "first":
            pooled = h[:, 0]                                                           # the [CLS] position
        else:  # mean over the real tokens after [CLS]
            keep = torch.ones_like(idx, dtype=torch.bool) if padding_mask is None else padding_mask.bool()
            keep = keep.clone()
            keep[:, 0] = False
            w = keep.unsqueeze(-1).to(h.dtype)
            pooled = (h * w).sum(1) / w.sum(1).clamp(min=1)
        return self.classifier(pooled)
