"""What `tetragen.load(run)` returns for a text-to-image run: prompts in, images out.

    pipe = tetragen.load("runs/t2i")
    images = pipe.sample(16, prompt="a dark sneaker", seed=0)            # uint8 (16, 28, 28, 1)
    images = pipe.sample(10, seed=0)                                     # one class prompt per class, in turn
    images = pipe.sample(prompts=["a dark sneaker", "a bag"], seeds=[7, 7])  # a prompt and a seed per image

The prompt is tokenized by the run's own prompt tokenizer (characters it has never seen read as unknown), cut to the
prior's text context with a warning, encoded into image tokens by the prior (`causal` or `masked`, with
classifier-free guidance), and decoded by the run's frozen image tokenizer. Each image draws its tokens from a CPU
generator seeded with its own seed (`seeds=[...]`, or seed, seed + 1, ...) and is computed in a block of a fixed
size: the same prompt, seed and settings give the same image, alone or beside any others.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ...data.captions import PromptCodes
from ...errors import UserError
from ...sample.images import ImagePipeline, generators, pad_rows, row_seeds, write_png

MAX_GUIDANCE = 50.0
EVAL_BATCH = 256


@dataclass
class T2IAssets:
    """What a text-to-image run keeps beside its prior: the prompt tokenizer, the class names, one prompt per class,
    and the image tokenizer's pipeline (loaded from the run's copy of it)."""
    text_tokenizer: Any
    classes: list[str]
    class_prompts: list[str]
    image_tokenizer: Any
    captions_record: dict | None = None        # how the run's captions are made (data/captions.py to_json)
    image_tokenizer_dir: Path | None = None    # where the image tokenizer was loaded from (the run's copy)
    run_dir: Path | None = None                # the run folder the assets were read from (None: made in training)


class T2IPipeline(ImagePipeline):
    """An image pipeline whose images come from prompts: `sample(n, prompt=..., seed=...)`; without a prompt, the
    classes' prompts in turn (`labels` as for a conditional model), which is what the image metrics ask for."""
    capabilities = frozenset({"prompt", "sample"})

    def __init__(self, model, assets: T2IAssets, config, *, batch_size: int = 64):
        super().__init__(model, assets.classes, config, batch_size=batch_size)
        self.assets = assets

    def interpolate(self, *args, **kwargs):
        raise UserError(f"--interpolate: a {self.config.family} run draws image tokens, it has no latent space to "
                        f"walk; sample prompts instead")

    # ------------------------------------------------------------------------------------------------------------
    def encode_prompt(self, prompt: str) -> list[int]:
        """A prompt -> exactly text_block ids (cut with a warning, padded); refuses an empty prompt and one the
        tokenizer knows not a single character of."""
        return PromptCodes(self.assets.text_tokenizer, self.config.model.text_block).prompt(
            prompt, self.assets.class_prompts[0])

    @property
    def pad_id(self) -> int:
        return self.config.model.text_vocab_size - 1  # the prompt tokenizer's last id pads

    def prompts_for(self, n: int, prompt=None, labels=None) -> list[str]:
        """The prompt of each of n images: one prompt for all, a list of n, or class prompts (a class index or
        name for all, one per image, or every class in turn)."""
        if prompt is not None and labels is not None:
            raise UserError("give a prompt or classes (--class-prompts), not both")
        if prompt is not None:
            prompts = [prompt] * n if isinstance(prompt, str) else list(prompt)
            if len(prompts) != n:
                raise UserError(f"prompts: {len(prompts)} prompts for {n} images; give one, or one per image")
            return prompts
        if self.num_classes < 2 and labels is None:
            return [self.assets.class_prompts[0]] * n
        return [self.assets.class_prompts[int(k)] for k in self.labels_for(n, labels)]

    def sample(self, n: int | None = None, *, seed: int | None = None, seeds: Sequence[int] | None = None,
               labels=None, prompt=None, prompts: Sequence[str] | None = None,
               guidance_scale: float | None = None, steps: int | None = None, temperature: float | None = None,
               top_k: int | None = None) -> np.ndarray:
        """n images as uint8 (N, H, W, C): image i from prompts[i] (or `prompt` for all; without either, class
        prompts, see `prompts_for`) and seeds[i] (or seed + i); n may be left out where seeds or prompts give it.
        Image i depends on its own prompt and seed alone (and the settings). Defaults for the sampling settings come
        from the run's config."""
        if prompts is not None:
            if prompt is not None:
                raise UserError("give prompt (one for every image) or prompts (one per image), not both")
            if isinstance(prompts, str):
                raise UserError("prompts: give a list with one prompt per image (or prompt= for one for all)")
            prompt = list(prompts)
            n = len(prompt) if n is None and seeds is None else n
        seeds = row_seeds(n, seed, seeds)
        n = len(seeds)
        c = self.config.model
        g = c.guidance_scale if guidance_scale is None else guidance_scale
        steps = c.steps if steps is None else steps
        temperature = c.temperature if temperature is None else temperature
        top_k = c.top_k if top_k is None else top_k
        check_sampling(n=n, guidance_scale=g, steps=steps, temperature=temperature, top_k=top_k)
        ids = torch.tensor([self.encode_prompt(p) for p in self.prompts_for(n, prompt, labels)])
        rows = generators(seeds)
        # every block has exactly batch_size rows (CPU matrix products round differently at other batch sizes), the
        # padding rows drawing from throwaway generators of their own
        bs = self.batch_size
        null = torch.full((bs, c.text_block), self.pad_id, dtype=torch.long, device=self.device)
        codes = []
        for i in range(0, n, bs):
            k = len(ids[i:i + bs])
            text = pad_rows(ids[i:i + bs], bs).to(self.device)
            gens = rows[i:i + bs] + [torch.Generator() for _ in range(bs - k)]
            if self.model.causal:
                out = self.model.sample_causal(text, null, guidance=g, temperature=temperature, top_k=top_k,
                                               generators=gens)
            else:
                out = self.model.sample_masked(text, null, guidance=g, temperature=temperature, top_k=top_k,
                                               steps=steps, generators=gens)
            codes.append(out[:k].cpu())
        grid = torch.cat(codes).view(n, c.grid_h, c.grid_w)
        return self.assets.image_tokenizer.decode(grid, block=self.batch_size)  # the prior's fixed shape

    def evaluate(self, data, *, n: int = 10000, seed: int = 0, **_) -> tuple[dict, list[str]]:
        """FID/KID and prompted-class accuracy of n class-prompted samples (every class in turn) against the test
        split, in tetragen's evaluator, with its references; and the test image-token NLL."""
        from ...eval.image import evaluate_images, report_lines
        metrics = evaluate_images(self, data.images, n=n, seed=seed, device=self.device)
        metrics["test_nll"] = test_nll(self.model, data, self.device)
        lines = report_lines(data.images, metrics, what="class-prompted samples")
        lines.insert(1, f"test NLL {metrics['test_nll']:.4f} nats per image token "
                        f"({self.config.model.prior} prior, {self.config.model.image_tokens} tokens per image)")
        return metrics, lines


@torch.no_grad()
def test_nll(model, data, device, limit: int = 2000) -> float:
    """Mean NLL (nats per image token) of the first `limit` test images' tokens given one caption each (a fixed
    phrasing draw); the masked prior is scored at a fixed 50% masking."""
    total, count = 0.0, 0
    for batch in data.test_batches(EVAL_BATCH, limit):
        loss, _ = model({k: v.to(device) for k, v in batch.items()})
        n = len(batch["image"])
        total, count = total + float(loss) * n, count + n
    return total / max(count, 1)


def check_sampling(*, n: int, guidance_scale: float, steps: int, temperature: float, top_k: int) -> None:
    """One-line errors for sampling settings out of range, before any work."""
    if n < 1:
        raise UserError(f"--n: {n} must be at least 1")
    if not (0 <= guidance_scale <= MAX_GUIDANCE) or not math.isfinite(guidance_scale):
        raise UserError(f"--guidance-scale: {guidance_scale} is out of range; use 0 (unconditional) to "
                        f"{MAX_GUIDANCE:g} (1: plain conditional, 2-5: typical)")
    if steps < 1:
        raise UserError(f"--steps: {steps} must be at least 1 (masked prior: unmasking steps)")
    if not (temperature >= 0 and math.isfinite(temperature)):
        raise UserError(f"--temperature: {temperature} must be >= 0 (0: the most likely token)")
    if top_k < 0:
        raise UserError(f"--top-k: {top_k} must be >= 0 (0: off)")


def save_preview(model, data, cfg, stem: Path) -> None:
    """A grid of one class-prompted sample per class (seed 0), written at each evaluation."""
    n = cfg.model.preview_images
    if not n:
        return
    pipe = T2IPipeline(model, data.assets, cfg)
    stem.parent.mkdir(parents=True, exist_ok=True)
    columns = pipe.num_classes if 1 < pipe.num_classes <= 16 else None
    write_png(stem.with_suffix(".png"), pipe.sample(n, seed=0), columns=columns)
