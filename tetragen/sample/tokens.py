"""Drawing tokens: the one sampler behind GPT's text and the t2i priors' image tokens, and the contract of batched
text decoding the server relies on.

Every row of a batch samples with its own settings (`SamplingParams`) and from its own random generator, so a
sequence (or an image) draws the same tokens alone or beside others. A draw is the exponential race: the argmax of
p / q with q ~ Exp(1) picks token i with probability p_i (normalised or not), and lets a row's randomness be drawn
apart from its probabilities, in one call per row (`race_noise`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Protocol, Sequence, runtime_checkable

import torch

from ..errors import UserError


@dataclass
class SamplingParams:
    temperature: float = 1.0         # 0: greedy
    top_k: int = 0                   # 0: off
    top_p: float = 1.0               # nucleus; 1: off
    min_p: float = 0.0               # keep tokens with p >= min_p * p_max; 0: off
    repetition_penalty: float = 1.0  # CTRL-style, over the tokens in the window; 1: off

    def check(self) -> None:
        if not (self.temperature >= 0 and math.isfinite(self.temperature)):
            raise UserError(f"--temperature: {self.temperature} must be >= 0 (0 means greedy)")
        if self.top_k < 0:
            raise UserError(f"--top-k: {self.top_k} must be >= 0 (0 turns it off)")
        if not 0 < self.top_p <= 1:
            raise UserError(f"--top-p: {self.top_p} must be in (0, 1]")
        if not 0 <= self.min_p < 1:
            raise UserError(f"--min-p: {self.min_p} must be in [0, 1)")
        if not self.repetition_penalty > 0:
            raise UserError(f"--repetition-penalty: {self.repetition_penalty} must be > 0 (1 turns it off)")

    @property
    def greedy(self) -> bool:
        """0, or a temperature float32 cannot tell from 0."""
        return self.temperature < torch.finfo(torch.float32).tiny


def token_probs(logits: torch.Tensor, params: Sequence[SamplingParams]) -> torch.Tensor:
    """logits (B, ..., V) -> float32 probabilities (B, ..., V) after row b's temperature, top-k, min-p and top-p (the
    last two leave them unnormalised); a greedy row puts all its mass on the argmax."""
    x = logits.float()
    ones = (len(params),) + (1,) * (x.dim() - 1)               # a per-row setting, broadcast over the rest
    row = lambda values, dtype=x.dtype: torch.tensor(values, dtype=dtype, device=x.device).view(ones)  # noqa: E731
    greedy = [p.greedy for p in params]
    # shifted so that the largest logit is 0 before the division: a tiny temperature then sends the others to -inf
    # (greedy), where logits / temperature would overflow to +-inf and their softmax be NaN
    temperature = row([1.0 if g else p.temperature for p, g in zip(params, greedy)])
    x = (x - x.max(dim=-1, keepdim=True).values) / temperature
    ks = [min(p.top_k, x.size(-1)) for p in params]
    if any(ks):
        values = torch.topk(x, max(ks)).values
        kth = values.gather(-1, row([max(k, 1) - 1 for k in ks], torch.long).expand(*x.shape[:-1], 1))
        kth = torch.where(row([k > 0 for k in ks], torch.bool), kth, -math.inf)
        x = x.masked_fill(x < kth, -math.inf)
    probs = torch.softmax(x, dim=-1)
    if any(p.min_p > 0 for p in params):
        min_p = row([p.min_p for p in params])
        probs = probs.masked_fill(probs < min_p * probs.max(dim=-1, keepdim=True).values, 0.0)
    if any(p.top_p < 1.0 for p in params):
        top_p = row([p.top_p for p in params])
        sorted_p, order = probs.sort(dim=-1, descending=True)
        # drop a token when the mass before it already reaches top_p (the most likely token always stays); rows
        # with top_p 1 keep everything
        drop = (sorted_p.cumsum(dim=-1) - sorted_p >= top_p) & (top_p < 1.0)
        drop[..., 0] = False  # also when top_p is too small for float32 (1e-320 reads as 0 there)
        probs = probs.scatter(-1, order, sorted_p.masked_fill(drop, 0.0))
    if any(greedy):
        one_hot = torch.zeros_like(probs).scatter_(-1, logits.argmax(dim=-1, keepdim=True), 1.0)
        probs = torch.where(row(greedy, torch.bool), one_hot, probs)
    return probs


def race_noise(generators: Sequence[torch.Generator | None], shape: tuple[int, ...],
               device: torch.device | str | None = None) -> torch.Tensor:
    """Exp(1) noise (B, *shape) for `draw`, row b from generators[b] alone (on that generator's device), moved to
    `device`."""
    rows = []
    for g in generators:
        rows.append(torch.empty(shape, device=g.device if g is not None else device).exponential_(generator=g))
    return torch.stack([r.to(device) for r in rows]).clamp_min_(torch.finfo(torch.float32).tiny)


def draw(probs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """probs (B, ..., V) and Exp(1) noise of the same shape -> the drawn ids (B, ...)."""
    return (probs / noise).argmax(dim=-1)


def next_tokens(logits: torch.Tensor, contexts: Sequence[torch.Tensor | None], params: Sequence[SamplingParams],
                generators: Sequence[torch.Generator | None]) -> torch.Tensor:
    """logits (B, V) -> next ids (B,), row i with its own settings, context (1, T) (read by the repetition
    penalty only) and generator. Each row's token depends on that row alone, so a sequence samples the same token
    alone or in a batch."""
    logits = logits.float().clone()
    finite = torch.finfo(logits.dtype)
    for i, p in enumerate(params):
        if p.repetition_penalty != 1.0:
            row, ctx = logits[i:i + 1], contexts[i]
            seen = row.gather(1, ctx)
            penalized = torch.where(seen > 0, seen / p.repetition_penalty, seen * p.repetition_penalty)
            # a tiny penalty overflows a logit to inf (and inf - inf is NaN below): it stays the largest finite value
            row.scatter_(1, ctx, penalized.clamp(finite.min, finite.max))
    drawn = [i for i, p in enumerate(params) if not p.greedy]
    # greedy rows take the argmax without drawing (their generators are left as they are)
    greedy = logits.argmax(dim=-1) if len(drawn) < len(params) else None
    if not drawn:
        return greedy
    x = logits[drawn] if greedy is not None else logits
    probs = token_probs(x, [params[i] for i in drawn])
    picked = draw(probs, race_noise([generators[i] for i in drawn], (probs.size(-1),), probs.device))
    if greedy is None:
        return picked
    greedy[drawn] = picked
    return greedy


def next_token(logits: torch.Tensor, context: torch.Tensor, p: SamplingParams,
               generator: torch.Generator | None) -> torch.Tensor:
    """logits (B, V), context (B, T) -> next ids (B, 1), every row with the same settings and generator."""
    rows = len(logits)
    return next_tokens(logits, [context[i:i + 1] for i in range(rows)], [p] * rows, [generator] * rows).view(-1, 1)


def settled(text: str, emitted: int, stops: list[str]) -> tuple[int | None, int]:
    """How much of the decoded text so far is final: (where the first stop string starts, or None; the end of the
    text that can be shown). What could be the start of a stop string is held back, and so is a byte-level token
    that ends inside a character (it decodes as U+FFFD until its other bytes come), for a few tokens."""
    cuts = [c for c in (text.find(s) for s in stops) if c >= 0]
    if cuts:
        return min(cuts), min(cuts)
    safe = len(text) - (max(map(len, stops), default=1) - 1)
    while safe > emitted and text[safe - 1] == "\ufffd" and len(text) - safe < 3:
        safe -= 1
    return None, safe


# ----------------------------------------------------------------------------------------------------------------
# batched decoding: what a text pipeline offers the server

@runtime_checkable
class SlotDecoder(Protocol):
    """Sequences decoded together, one per slot, each at its own length; a slot's logits depend on its own tokens
    alone, never on what the other slots hold."""
    context: int                     # the most tokens a slot reads (the model's context window)
    device: torch.device             # where the logits are, and the sequences' generators belong

    def prefill(self, slot: int, ids: Sequence[int]) -> torch.Tensor:
        """Start `slot` afresh with `ids` (its latest `context` are read) -> the next token's logits (1, V)."""

    def decode(self, sequences: Mapping[int, Sequence[int]]) -> dict[int, torch.Tensor]:
        """One step: {slot: its tokens so far, the last one not yet read} -> {slot: the next token's logits (1, V)}."""


@runtime_checkable
class BatchedDecoding(Protocol):
    """A text pipeline whose sequences the server can decode together (`tetragen.serve.batching.ModelWorker`)."""

    def slot_decoder(self, slots: int) -> SlotDecoder | None:
        """A decoder with `slots` slots for this pipeline's model, or None where this run has none (the server then
        streams one sequence at a time)."""
