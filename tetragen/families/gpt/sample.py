"""Text generation from a GPT: KV-cached decoding and the `TextGenerator` pipeline (tokens are drawn by the shared
sampler, tetragen/sample/tokens.py; the server's batched decoding is decode.py).

Decoding with the cache feeds one new token per step and reuses every earlier key/value. When the context window is
full, the cache keeps the most recent half of the window and re-encodes it in one pass (absolute learned positions
cannot simply slide), so each token still sees between block_size/2 and block_size tokens of context. Without the
cache (`use_cache=False`) every step re-encodes the last block_size tokens, as nanoGPT does.
"""
from __future__ import annotations

from typing import Iterator

import torch

from ...errors import UserError
from ...sample.tokens import SamplingParams, next_token, settled
from .decode import GPTSlotDecoder


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

    def slot_decoder(self, slots: int) -> GPTSlotDecoder:
        """The server's batched decoding of this model (tetragen.sample.tokens.BatchedDecoding)."""
        return GPTSlotDecoder(self.model, slots)

    def generate(self, prompt: str = "", max_new_tokens: int = 200, **kwargs) -> str:
        """The generated continuation of `prompt` as one string."""
        return "".join(self.stream(prompt, max_new_tokens, **kwargs))
