"""Batched decoding for the server: many sequences through one GPT, each in a slot of its own.

Each slot is one row of a preallocated KV cache and holds one sequence at its own length. A new sequence is
prefilled alone into its slot; then every decoding step feeds one token per slot through the model's own forward
with each row at its own position (`GPT.forward(..., pos=)`), on all slots at once: idle slots carry a dummy token,
and every row attends over the whole context window with a mask of its own, so no shape changes with the load and
no slot's arithmetic depends on another's. A sequence's logits are the same alone or beside any others.

When a slot's window is full it keeps the latest half of its tokens and re-encodes them, as `generate_ids` does.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch

from .model import GPT


class GPTSlotDecoder:
    """`slots` sequences decoded together by one GPT (tetragen.sample.tokens.SlotDecoder)."""

    def __init__(self, model: GPT, slots: int):
        if slots < 1:
            raise ValueError(f"slots: {slots} must be at least 1")
        self.model, self.slots = model, slots
        self.context = model.config.block_size
        self.device = next(model.parameters()).device
        self.cache = model.new_cache(slots, device=self.device)   # k, v: per layer (slots, nh, block, hs)
        self.pos = [0] * slots                                     # each slot's next free position

    @torch.no_grad()
    def prefill(self, slot: int, ids: Sequence[int]) -> torch.Tensor:
        """Encode the latest `context` of `ids` into `slot` from position 0 -> the next token's logits (1, V)."""
        cache = self.cache.row(slot)
        logits, _ = self.model(torch.tensor([list(ids)[-self.context:]], device=self.device), cache=cache,
                               last_only=True)
        self.pos[slot] = cache.pos
        return logits[:, -1, :]

    @torch.no_grad()
    def decode(self, sequences: Mapping[int, Sequence[int]]) -> dict[int, torch.Tensor]:
        """One step: {slot: its tokens so far, the last one not yet read} -> {slot: the next token's logits (1, V)}."""
        out, feed = {}, {}
        for s, tokens in sequences.items():
            if self.pos[s] < self.context:
                feed[s] = tokens[-1]
            else:  # window full: keep the latest half and re-encode it
                out[s] = self.prefill(s, tokens[-(self.context // 2):])
        if feed:
            # a slot not fed this step reads token 0 at its next free position: nothing sees that key yet, and its
            # own next token overwrites it
            tokens = [feed.get(s, 0) for s in range(self.slots)]
            where = [min(p, self.context - 1) for p in self.pos]
            logits, _ = self.model(torch.tensor(tokens, device=self.device).view(self.slots, 1), cache=self.cache,
                                   pos=torch.tensor(where, device=self.device).view(self.slots, 1),
                                   last_only=True)                                   # (slots, 1, V)
            for s in feed:
                self.pos[s] += 1
                out[s] = logits[s:s + 1, -1, :]
        return out
