"""Text-to-image priors over one token sequence: the prompt's tokens, then the image's tokens.

    ids = [t_1 .. t_T (prompt, padded) ; v_1 .. v_L (image tokens, shifted by the text vocabulary)]

`causal` (taming-transformers, Esser et al. 2021, arXiv:2012.09841; DALL-E, Ramesh et al. 2021): tetragen's GPT reads
the sequence left to right and learns p(v_j | text, v_<j), image tokens in raster order; sampling is one token at
a time through the KV cache. `masked` (MaskGIT, Chang et al. 2022, arXiv:2202.04200): tetragen's BERT encoder sees
the whole sequence with a random share of the image tokens replaced by [MASK] (the share drawn from a cosine
schedule) and learns to fill them in; sampling starts from an all-[MASK] image and reveals the most confident tokens
over a few parallel steps. Both learn from the empty prompt too (`cond_drop`), which classifier-free guidance (Ho &
Salimans 2022, arXiv:2207.12598) contrasts with the real prompt at sampling.

The backbones are the GPT and BERT families' own modules; the vocabulary is text ids, then the codebook, then
[MASK]. Only image positions carry a loss, over the codebook's logits alone. Sampling draws its tokens with the
shared sampler (tetragen/sample/tokens.py), each row of a batch from its own generator, so that an image depends on
its own prompt and seed alone.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...sample.tokens import SamplingParams, draw, race_noise, token_probs
from ..bert.config import BERTConfig
from ..bert.model import BERT
from ..gpt.config import GPTConfig
from ..gpt.model import GPT
from .config import T2IConfig


class T2IPrior(nn.Module):
    def __init__(self, config: T2IConfig):
        super().__init__()
        c = self.config = config
        if not (c.codebook_size and c.image_tokens and c.text_vocab_size):
            raise ValueError("T2IConfig: codebook_size, grid_h/grid_w and text_vocab_size come from the data")
        self.num_classes = c.num_classes
        self.text_vocab, self.codebook = c.text_vocab_size, c.codebook_size
        self.mask_id = self.text_vocab + self.codebook          # [MASK]: the masked prior's only extra token
        vocab, block = self.mask_id + 1, c.text_block + c.image_tokens
        shape = dict(vocab_size=vocab, block_size=block, n_layer=c.n_layer, n_head=c.n_head, n_embd=c.n_embd,
                     dropout=c.dropout, activation=c.activation)
        self.backbone = GPT(GPTConfig(**shape)) if c.prior == "causal" else BERT(BERTConfig(**shape))

    @property
    def causal(self) -> bool:
        return self.config.prior == "causal"

    def image_logits(self, h_logits: torch.Tensor) -> torch.Tensor:
        """Full-vocabulary logits (..., V) -> the codebook's (..., K): image positions only ever predict codes."""
        return h_logits[..., self.text_vocab:self.text_vocab + self.codebook]

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict]:
        """batch {"text": (B, T) ids, "image": (B, L) codes, "mask": (B, L) bool (masked prior: which image tokens
        are hidden)} -> (mean cross-entropy over the predicted image tokens, metrics)."""
        text, image = batch["text"], batch["image"]
        T = text.shape[1]
        if self.causal:
            ids = torch.cat([text, image[:, :-1] + self.text_vocab], 1)              # (B, T + L - 1)
            logits, _ = self.backbone(ids)                                           # (B, T + L - 1, V)
            logits = self.image_logits(logits[:, T - 1:])                            # (B, L, K): p(v_j | <j)
            loss = F.cross_entropy(logits.float().reshape(-1, self.codebook), image.reshape(-1))
        else:
            hidden = batch["mask"]                                                   # (B, L) bool
            shown = torch.where(hidden, torch.full_like(image, self.mask_id), image + self.text_vocab)
            h = self.backbone.encode(torch.cat([text, shown], 1))[:, T:]            # (B, L, C)
            logits = self.image_logits(self.backbone.mlm_logits(h[hidden]))          # (N, K)
            loss = F.cross_entropy(logits.float(), image[hidden])
        return loss, {"image_token_nll": loss.detach()}

    # ------------------------------------------------------------------------------------------------------------
    # sampling: `text` (B, T) prompts and `null` (B, T) empty prompts; guidance mixes their logits

    def _guided(self, logits: torch.Tensor, guidance: float) -> torch.Tensor:
        """(2B, ..., K) logits of [prompts ; empty prompts] -> (B, ..., K): l_null + g (l_prompt - l_null)."""
        cond, null = logits.chunk(2)
        return null + guidance * (cond - null) if guidance != 1.0 else cond

    @torch.no_grad()
    def sample_causal(self, text: torch.Tensor, null: torch.Tensor, *, guidance: float, temperature: float,
                      top_k: int, generators: Sequence[torch.Generator]) -> torch.Tensor:
        """Image codes (B, L), one raster position at a time through the KV cache; row b draws from generators[b]
        alone."""
        B, L = len(text), self.config.image_tokens
        params = [SamplingParams(temperature, top_k)] * B
        noise = race_noise(generators, (L, self.codebook))                           # (B, L, K) on the CPU
        ids = torch.cat([text, null]) if guidance != 1.0 else text                   # (2B or B, T)
        cache = self.backbone.new_cache(len(ids), device=ids.device)
        logits, _ = self.backbone(ids, cache=cache, last_only=True)                  # (2B, 1, V)
        out = torch.empty(B, L, dtype=torch.long, device=text.device)
        for j in range(L):
            step = self.image_logits(logits[:, -1])                                  # (2B, K)
            probs = token_probs(self._guided(step, guidance) if guidance != 1.0 else step, params)  # (B, K)
            out[:, j] = draw(probs.cpu(), noise[:, j]).to(out.device)
            if j + 1 < L:
                nxt = out[:, j] + self.text_vocab
                feed = torch.cat([nxt, nxt]) if guidance != 1.0 else nxt
                logits, _ = self.backbone(feed.view(-1, 1), cache=cache, last_only=True)
        return out

    @torch.no_grad()
    def sample_masked(self, text: torch.Tensor, null: torch.Tensor, *, guidance: float, temperature: float,
                      top_k: int, steps: int, generators: Sequence[torch.Generator]) -> torch.Tensor:
        """Image codes (B, L) by iterative parallel unmasking: each step predicts every hidden token, keeps the most
        confident ones and hides the rest again, until after `steps` steps none is hidden; the number still hidden
        after step s is L cos(pi/2 s/steps), in every row alike. Row b draws from generators[b] alone."""
        B, L = len(text), self.config.image_tokens
        T = text.shape[1]
        params = [SamplingParams(temperature, top_k)] * B
        codes = torch.zeros(B, L, dtype=torch.long)
        hidden = torch.ones(B, L, dtype=torch.bool)
        prompts = torch.cat([text, null]) if guidance != 1.0 else text
        for s in range(steps):
            shown = torch.where(hidden, torch.full_like(codes, self.mask_id), codes + self.text_vocab)
            image = shown.to(text.device)
            ids = torch.cat([prompts, torch.cat([image, image]) if guidance != 1.0 else image], 1)
            logits = self.image_logits(self.backbone.mlm_logits(self.backbone.encode(ids)[:, T:]))  # (2B, L, K)
            probs = token_probs(self._guided(logits, guidance) if guidance != 1.0 else logits, params).cpu()
            drawn = draw(probs, race_noise(generators, (L, self.codebook)))          # (B, L)
            drawn = torch.where(hidden, drawn, codes)
            confidence = probs.gather(-1, drawn.unsqueeze(-1)).squeeze(-1).clamp_min(1e-12).log()
            # MaskGIT's annealed noise: early steps explore which tokens to commit to, the last ones do not
            uniform = torch.stack([torch.rand(L, generator=g) for g in generators])  # (B, L)
            noise = -torch.log(-torch.log(uniform.clamp(1e-12, 1 - 1e-7)))
            confidence = confidence + self.config.choice_temperature * (1 - (s + 1) / steps) * noise
            confidence = confidence.masked_fill(~hidden, math.inf)                   # what is shown stays shown
            still = int(math.floor(L * math.cos(math.pi / 2 * (s + 1) / steps)))
            still = min(still, int(hidden.sum(1).min()) - 1) if s + 1 < steps else 0
            codes = drawn
            hidden = torch.zeros_like(hidden)
            if still > 0:
                lowest = confidence.topk(still, dim=1, largest=False).indices          # (B, still)
                hidden.scatter_(1, lowest, True)
        return codes.to(text.device)
