"""Text generation from a GPT: sampling filters, KV-cached decoding and the `TextGenerator` pipeline.

Decoding with the cache feeds one new token per step and reuses every earlier key/value. When the context window is
full, the cache keeps the most recent half of the window and re-encodes it in one pass (absolute learned positions
cannot simply slide), so each token still sees between block_size/2 and block_size tokens of context. Without the
cache (`use_cache=False`) every step re-encodes the last block_size tokens, as nanoGPT does.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import torch

from ...errors import UserError


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


def next_token(logits: torch.Tensor, context: torch.Tensor, p: SamplingParams,
               generator: torch.Generator | None) -> torch.Tensor:
    """logits (B, V), context (B, T) -> next ids (B, 1), every row with the same settings and generator."""
    rows = len(logits)
    return next_tokens(logits, [context[i:i + 1] for i in range(rows)], [p] * rows, [generator] * rows).view(-1, 1)


def next_tokens(logits: torch.Tensor, contexts: list[torch.Tensor | None], params: list[SamplingParams],
                generators: list[torch.Generator | None]) -> torch.Tensor:
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
    # 0, or a temperature float32 cannot tell from 0: greedy
    drawn = [i for i, p in enumerate(params) if not p.temperature < finite.tiny]
    greedy = logits.argmax(dim=-1) if len(drawn) < len(params) else None  # the greedy rows' tokens, where any
    if not drawn:
        return greedy
    ps = [params[i] for i in drawn]
    x = logits[drawn] if greedy is not None else logits
    temperature = torch.tensor([[p.temperature] for p in ps], dtype=x.dtype, device=x.device)
    # shifted so that the largest logit is 0 before the division: a tiny temperature then sends the others to -inf
    # (greedy), where logits / temperature would overflow to +-inf and their softmax be NaN
    x = (x - x.max(dim=-1, keepdim=True).values) / temperature
    ks = [min(p.top_k, x.size(-1)) for p in ps]
    if any(ks):
        values = torch.topk(x, max(ks)).values
        kth = values.gather(1, torch.tensor([[max(k, 1) - 1] for k in ks], device=x.device))
        kth = torch.where(torch.tensor([[k > 0] for k in ks], device=x.device), kth, -math.inf)
        x = x.masked_fill(x < kth, -math.inf)
    probs = torch.softmax(x, dim=-1)
    if any(p.min_p > 0 for p in ps):
        min_p = torch.tensor([[p.min_p] for p in ps], dtype=probs.dtype, device=probs.device)
        probs = probs.masked_fill(probs < min_p * probs.max(dim=-1, keepdim=True).values, 0.0)
    if any(p.top_p < 1.0 for p in ps):
        top_p = torch.tensor([[p.top_p] for p in ps], dtype=probs.dtype, device=probs.device)
        sorted_p, order = probs.sort(dim=-1, descending=True)
        # drop a token when the mass before it already reaches top_p (the most likely token always stays); rows
        # with top_p 1 keep everything
        drop = (sorted_p.cumsum(dim=-1) - sorted_p >= top_p) & (top_p < 1.0)
        drop[:, 0] = False  # also when top_p is too small for float32 (1e-320 reads as 0 there)
        probs = probs.scatter(1, order, sorted_p.masked_fill(drop, 0.0))
    # a draw from probs (normalised or not): argmax of p / q with q ~ Exp(1), each row's q from its own generator
    q = torch.stack([torch.empty(probs.size(-1), device=probs.device).exponential_(generator=generators[i])
                     for i in drawn]).clamp_min_(finite.tiny)
    picked = (probs / q).argmax(dim=-1)
    if greedy is None:
        return picked
    greedy[drawn] = picked
    return greedy


@torch.no_grad()
def generate_ids(model, prompt: list[int], max_new_tokens: int, params: SamplingParams = SamplingParams(),
                 generator: torch.Generator | None = None, use_cache: bool = True) -> Iterator[int]:
    """Yield new token ids one at a time."""
    block = model.config.block_size
    device = next(model.parameters()).device
    tokens = list(prompt[-block:])
    window = lambda: torch.tensor([tokens[-block:]], device=device)  # noqa: E731
    cache = model.new_cache(1, device=device) if use_cache else None
    logits, _ = model(window(), cache=cache, last_only=True)
    for _ in range(max_new_tokens):
        nxt = next_token(logits[:, -1, :], window(), params, generator)
        tokens.append(int(nxt))
        yield tokens[-1]
        if not use_cache:
            logits, _ = model(window(), last_only=True)
        elif cache.pos < block:
            logits, _ = model(nxt.view(1, 1), cache=cache, last_only=True)
        else:  # window full: keep the latest half and re-encode it
            cache.reset()
            logits, _ = model(torch.tensor([tokens[-(block // 2):]], device=device), cache=cache, last_only=True)


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


class TextGenerator:
    """What `tetragen.load(run_dir)` returns for a GPT run: the model, its tokenizer and its config."""

    capabilities = frozenset({"generate"})

    def __init__(self, model, tokenizer, config):
        self.model, self.tokenizer, self.config = model.eval(), tokenizer, config
        self.assets = tokenizer

    def evaluate(self, data, **_) -> tuple[dict, list[str]]:
        """Validation loss (nats per token) and bits per character on `data`'s validation split (the first
        train.eval_tokens of it when set)."""
        from ...eval.text import split_phrase
        from .objective import evaluate
        m = evaluate(self.model, data, self.config, next(self.model.parameters()).device)
        return m, [f"{data.name}, {split_phrase(self.config.train.eval_tokens)} ({int(m['val_tokens'])} tokens)",
                   f"val_loss {m['val_loss']:.4f} nats/token", f"val_bpc  {m['val_bpc']:.4f} bits/char"]

    def stream(self, prompt: str = "", max_new_tokens: int = 200, *, temperature: float = 1.0, top_k: int = 0,
               top_p: float = 1.0, min_p: float = 0.0, repetition_penalty: float = 1.0, stop: str | None = None,
               seed: int | None = None, use_cache: bool = True) -> Iterator[str]:
        """Yield the generated text piece by piece (the prompt is not repeated); ends early at `stop`."""
        params = SamplingParams(temperature, top_k, top_p, min_p, repetition_penalty)
        params.check()
        if max_new_tokens < 0:
            raise UserError(f"--max-new-tokens: {max_new_tokens} must be >= 0")
        ids = self.tokenizer.encode(prompt or "\n")
        generator = torch.Generator(device=next(self.model.parameters()).device)
        generator.manual_seed(seed if seed is not None else torch.seed())
        out: list[int] = []
        emitted = 0
        for tok in generate_ids(self.model, ids, max_new_tokens, params, generator, use_cache):
            out.append(tok)
            text = self.tokenizer.decode(out)
            cut, safe = settled(text, emitted, [stop] if stop else [])
            if cut is not None:
                if cut > emitted:
                    yield text[emitted:cut]
                return
            if safe > emitted:
                yield text[emitted:safe]
                emitted = safe
        text = self.tokenizer.decode(out)
        if len(text) > emitted:
            yield text[emitted:]

    def generate(self, prompt: str = "", max_new_tokens: int = 200, **kwargs) -> str:
        """The generated continuation of `prompt` as one string."""
        return "".join(self.stream(prompt, max_new_tokens, **kwargs))
