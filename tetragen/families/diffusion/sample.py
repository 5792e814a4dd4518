"""What `tetragen.load(run)` returns for a diffusion run: images from noise, edits of given images, seed walks.

    pipe = tetragen.load("runs/diffusion")
    images = pipe.sample(16, seed=0, labels="Sneaker")                       # uint8 (16, 28, 28, 1)
    images = pipe.sample(16, seed=0, steps=8, sampler="heun", guidance_scale=2.0)
    edited = pipe.edit(images, strength=0.5, seed=1, labels="Sneaker")      # img2img (SDEdit)
    filled = pipe.edit(images, mask=hole, seed=1, labels="Sneaker")         # inpainting: mask 1 = draw anew
    walk = pipe.interpolate(0, 1, steps=8, label=3)                          # 8 images from seed 0's to seed 1's

A prompt-conditioned run (`model.cond=text`) takes `prompt=` (one for all) or `prompts=` (one per image) wherever a
class run takes `labels=`; its `labels=` asks for its classes' prompts (every class in turn when left out):

    pipe = tetragen.load("runs/diffusion-text")
    images = pipe.sample(8, prompt="a large dark sneaker", seed=0, guidance_scale=3.0)

The sampler (euler, heun, dpm++), its number of steps and the guidance scale are chosen at sampling time; their
defaults are the run's `model.sampler`, `model.sample_steps` and `model.guidance_scale`. Every image has a seed of its
own (`seeds=[...]`, or seed, seed + 1, ...): its starting noise comes from a CPU generator seeded with it alone, the
solvers draw nothing else, and the network runs on blocks of exactly `batch_size` images (the last one padded), so
an image is the same alone or beside any others.

img2img (SDEdit, Meng et al. 2021, arXiv:2108.01073) noises the given image to time `strength` with the row's noise
and solves from there to 0 in ceil(steps * strength) steps: 0 returns the image, 1 draws a new one. Inpainting
(`mask`, 1 where pixels are drawn anew) does the same and, after every step, puts the known pixels back, noised to
the step's time with that same noise (the replacement method; Song et al. 2020, arXiv:2011.13456, appendix); the
known pixels of the result are the given ones, exactly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ...data.captions import PromptCodes
from ...data.grids import to_model, to_uint8
from ...errors import UserError
from ...sample.images import ImagePipeline, generators, pad_rows, row_seeds, slerp, write_png
from .config import MAX_GUIDANCE, MAX_STEPS, SAMPLERS
from .data import PromptAssets, assets_of
from .inputs import read_image, read_mask
from .schedule import alpha_sigma
from .solvers import SOLVERS, time_grid


# Rows per forward pass (every block is padded to it, so one image costs a whole block): small, for a quick image or
# request, at a small cost in images per second against larger blocks (measured in docs/diffusion.md, "Blocks").
# Evaluation solves its thousands of samples in larger blocks.
BLOCK = 16


@dataclass(frozen=True)
class Settings:
    sampler: str
    steps: int
    guidance_scale: float


class DiffusionPipeline(ImagePipeline):
    """An image pipeline whose images are solved from noise; also `edit` (img2img, inpainting) and `interpolate`."""

    reads: frozenset[str] = frozenset()  # what it draws from besides classes: {"prompt"} for a text model

    def __init__(self, model, classes: Sequence[str], config, *, batch_size: int = BLOCK):
        super().__init__(model, classes, config, batch_size=batch_size)

    @property
    def capabilities(self) -> frozenset[str]:
        """Samples with sampling settings, and edits; a run of another kind of content (a spectrogram's grids) is
        used through its kind's own pipeline (tetragen/sample/adapted.py), which keeps the settings, not edits."""
        return frozenset({"sample", "steer", "edit"}) | self.reads

    # ------------------------------------------------------------------------------------------------------------
    # arguments

    @property
    def sampling_options(self) -> dict[str, dict]:
        """The settings `sample` and `edit` take (the Steered capability): name -> its help, default and range.
        An unconditional model has no guidance scale."""
        c = self.config.model
        options = {
            "sampler": {"help": "the ODE solver: euler (1 network evaluation a step), heun (2), dpm++ "
                                "(DPM-Solver++(2M), 1)", "default": c.sampler, "choices": list(SAMPLERS)},
            "steps": {"help": "solver steps (an edit takes ceil(steps * strength) of them)",
                      "default": c.sample_steps, "min": 1, "max": MAX_STEPS, "type": "int"},
        }
        if self.conditional:
            options["guidance_scale"] = {"help": "classifier-free guidance: 0 unconditional, 1 plain conditional, "
                                                 "above 1 guided (two evaluations a step unless 1)",
                                         "default": c.guidance_scale, "min": 0.0, "max": MAX_GUIDANCE,
                                         "type": "float"}
        return options

    def check_sampling(self, **settings) -> dict:
        """The sampling settings (`sampling_options`), each defaulting to the run's, refused in one line that
        starts with the setting's name when unknown or out of range."""
        for name in settings:
            if name not in self.sampling_options:
                raise UserError(f"{name}: not a setting of this {self.config.family} model; it takes "
                                f"{', '.join(self.sampling_options)}")
        chosen = self.settings(settings.get("steps"), settings.get("sampler"), settings.get("guidance_scale"))
        out = {"sampler": chosen.sampler, "steps": chosen.steps}
        if self.conditional:
            out["guidance_scale"] = chosen.guidance_scale
        return out

    def read_edit_input(self, file, *, mask: bool = False, name: str = ""):
        """An image file (a path or its bytes) -> uint8 (1, H, W, C) in the run's shape (converted with a warning
        where it differs); with `mask`, a mask file -> uint8 (H, W) of 0 (keep) and 1 (draw anew), refused unless
        binary and of the run's size (inputs.py)."""
        if mask:
            return read_mask(file, self.image_shape[:2], name or "--mask")
        return read_image(file, self.image_shape, name or "--init-image")[None]

    def settings(self, steps=None, sampler=None, guidance_scale=None, *, steps_name: str = "steps") -> Settings:
        """The sampling settings, each defaulting to the run's, refused in one line when out of range."""
        c = self.config.model
        steps = c.sample_steps if steps is None else steps
        sampler = c.sampler if sampler is None else sampler
        if guidance_scale is not None and not self.conditional:
            raise UserError(f"guidance_scale: this {self.config.family} model is unconditional (model.cond="
                            f"{c.cond}), so there is nothing to guide; leave guidance_scale out")
        guidance = c.guidance_scale if guidance_scale is None else guidance_scale
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 1 <= steps <= MAX_STEPS:
            raise UserError(f"{steps_name}: {steps!r} is out of range; use an integer from 1 to {MAX_STEPS} "
                            f"(default {c.sample_steps})")
        if not isinstance(sampler, str) or sampler not in SOLVERS:
            raise UserError(f"sampler: {sampler!r} is not a sampler; choose one of: {', '.join(SAMPLERS)}")
        if isinstance(guidance, bool) or not isinstance(guidance, (int, float, np.floating, np.integer)) \
                or not 0 <= guidance <= MAX_GUIDANCE:
            raise UserError(f"guidance_scale: {guidance!r} is out of range; use 0 (unconditional) to "
                            f"{MAX_GUIDANCE:g} (1: plain conditional, above 1: guided)")
        return Settings(sampler, int(steps), float(guidance))

    # ------------------------------------------------------------------------------------------------------------
    # the space the denoiser works in: pixels here; a latent pipeline (the ldm family) overrides these four

    @property
    def space_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of what the denoiser denoises."""
        size, _, channels = self.image_shape
        return (channels, size, size)

    def to_space(self, images: np.ndarray) -> torch.Tensor:
        """uint8 images (N, H, W, C) -> what the denoiser denoises (N, C, H, W)."""
        return to_model(images)

    def from_space(self, x: torch.Tensor) -> np.ndarray:
        """A block of solved rows -> uint8 images (N, H, W, C)."""
        return to_uint8(x)

    def space_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """An inpainting mask over pixels (N, 1, H, W), 1 where drawn anew -> the same over the denoiser's space."""
        return mask

    def noise(self, seeds: Sequence[int]) -> torch.Tensor:
        """(len(seeds), C, H, W) standard normal noise, row i from a generator seeded with seeds[i] alone."""
        return torch.stack([torch.randn(*self.space_shape, generator=g) for g in generators(seeds)])

    def _images(self, images) -> np.ndarray:
        """Images to edit, checked: uint8 (N, H, W, C) of the run's shape ((N, H, W) for a grey model)."""
        shape = self.image_shape
        if isinstance(images, np.ndarray) and images.ndim == 3 and shape[2] == 1:
            images = images[..., None]
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.shape[1:] != shape \
                or images.ndim != 4 or not len(images):
            got = (f"{images.dtype} {images.shape}" if isinstance(images, np.ndarray) else type(images).__name__)
            raise UserError(f"images: expected uint8 images shaped (N, {shape[0]}, {shape[1]}, {shape[2]}), the "
                            f"run's size and channels, got {got}")
        return images

    def _mask(self, mask, n: int) -> torch.Tensor:
        """A mask (H, W), (N, H, W) or (N, H, W, 1) of 0 (keep) and 1 (draw anew) -> float (N, 1, H, W)."""
        size = self.image_shape[0]
        m = np.asarray(mask)
        if m.ndim == 4 and m.shape[-1] == 1:
            m = m[..., 0]
        if m.ndim == 2:
            m = np.broadcast_to(m, (n, *m.shape))
        if m.shape != (n, size, size):
            raise UserError(f"mask: shaped {np.asarray(mask).shape}; give ({size}, {size}) for every image or "
                            f"({n}, {size}, {size}), the images' size")
        if m.dtype == bool:
            m = m.astype(np.uint8)
        if not np.issubdtype(m.dtype, np.number) or not np.isin(m, (0, 1)).all():
            raise UserError("mask: must be binary, 0 where the image is kept and 1 where it is drawn anew (bool or "
                            "0/1 values)")
        return torch.from_numpy(np.ascontiguousarray(m, dtype=np.float32))[:, None]

    # ------------------------------------------------------------------------------------------------------------
    # the sampling loop

    @torch.no_grad()
    def _solve(self, start: torch.Tensor, labels: torch.Tensor | None, times: list[float], settings: Settings,
               known: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None) -> np.ndarray:
        """Solve every row of `start` (N, C, H, W) at times[0] to times[-1], in blocks of exactly batch_size rows.
        `known` = (x0, noise, mask), all (N, ...): inpainting's known pixels, put back after each step."""
        out, bs, device = [], self.batch_size, self.device
        objective, solver = self.config.model.objective, SOLVERS[settings.sampler]
        g = settings.guidance_scale if self.conditional else 1.0
        for i in range(0, len(start), bs):
            k = len(start[i:i + bs])
            x = pad_rows(start[i:i + bs], bs).to(device)
            y = pad_rows(labels[i:i + bs], bs).to(device) if labels is not None else None
            if y is not None and g != 1.0:
                null = self.model.null_condition(y)
                y = null if g == 0.0 else torch.cat([y, null])

            def predict(x: torch.Tensor, t: float) -> torch.Tensor:
                rows = len(y) if y is not None else len(x)
                both = x if rows == len(x) else torch.cat([x, x])                # [conditional ; null] rows
                out = self.model.predict(both, torch.full((rows,), t, device=device), y).float()
                if rows == len(x):
                    return out
                cond, uncond = out.chunk(2)
                return uncond + g * (cond - uncond)

            project = None
            if known is not None:
                project = put_back(*(pad_rows(v[i:i + bs], bs).to(device) for v in known), objective)
            x = solver(predict, x, times, objective, project)
            out.append(self.from_space(x)[:k])
        return np.concatenate(out)

    # ------------------------------------------------------------------------------------------------------------
    # public API

    def conditions(self, n: int, labels=None, prompt=None) -> torch.Tensor | None:
        """The condition of each of n images: classes (n,) (`labels_for`), or None for an unconditional model; a
        prompt-conditioned pipeline reads `prompt` too."""
        if prompt is not None:
            raise UserError(f"--prompt: this {self.config.family} run is conditioned on "
                            f"{'classes' if self.conditional else 'nothing'} (model.cond={self.config.model.cond}); "
                            f"{'use --class' if self.conditional else 'leave the prompt out'}, or train with "
                            f"model.cond=text")
        return self.labels_for(n, labels)

    def sample(self, n: int | None = None, *, seed: int | None = None, seeds: Sequence[int] | None = None,
               labels=None, prompt=None, prompts: Sequence[str] | None = None, steps: int | None = None,
               sampler: str | None = None, guidance_scale: float | None = None) -> np.ndarray:
        """n images as uint8 (N, H, W, C), image i from seeds[i] (or seed + i; a fresh random seed when neither is
        given; n may be left out with `seeds`, or `prompts`). `labels`: None (classes cycle evenly), a class index or
        name for all, or one per image (conditional models). `prompt` (one for all) or `prompts` (one per image):
        prompt-conditioned models. `steps`, `sampler`, `guidance_scale`: the run's defaults when None."""
        settings = self.settings(steps, sampler, guidance_scale)
        prompt = _one_of(prompt, prompts)
        if n is None and seeds is None and isinstance(prompt, list):
            n = len(prompt)
        seeds = row_seeds(n, seed, seeds)
        return self._solve(self.noise(seeds), self.conditions(len(seeds), labels, prompt),
                           time_grid(1.0, settings.steps), settings)

    def edit(self, images: np.ndarray, *, strength: float | None = None, mask=None, seed: int | None = None,
             seeds: Sequence[int] | None = None, labels=None, prompt=None, prompts: Sequence[str] | None = None,
             steps: int | None = None, sampler: str | None = None,
             guidance_scale: float | None = None) -> np.ndarray:
        """Images uint8 (N, H, W, C) redrawn: noised to time `strength` in [0, 1] (default 1 with a mask, else
        0.6) and solved back in ceil(steps * strength) steps; with `mask` ((H, W) or (N, H, W), 1 where pixels are
        drawn anew, 0 where they are kept) only the masked pixels change. Image i uses seeds[i] (or seed + i) and
        labels as in `sample` (give each image's class to keep it)."""
        images = self._images(images)
        strength = (1.0 if mask is not None else 0.6) if strength is None else strength
        if isinstance(strength, bool) or not isinstance(strength, (int, float, np.floating, np.integer)) \
                or not 0 <= strength <= 1:
            raise UserError(f"strength: {strength!r} is out of range; use 0 (the image as it is) to 1 (drawn anew)")
        settings = self.settings(steps, sampler, guidance_scale)
        seeds = row_seeds(len(images), seed, seeds)
        y = self.conditions(len(images), labels, _one_of(prompt, prompts))
        keep = self._mask(mask, len(images)) if mask is not None else None
        if strength == 0:
            return images.copy()
        x0, noise = self.to_space(images), self.noise(seeds)
        alpha, sigma = alpha_sigma(float(strength), self.config.model.objective)
        times = time_grid(float(strength), max(1, math.ceil(settings.steps * strength)))
        known = (x0, noise, self.space_mask(keep)) if keep is not None else None
        out = self._solve(alpha * x0 + sigma * noise, y, times, settings, known)
        if keep is not None:  # the known pixels exactly as given
            out = np.where(keep.permute(0, 2, 3, 1).numpy() > 0, out, images)
        return out

    def interpolate(self, seed_a: int, seed_b: int, steps: int = 8, label=None, *, prompt: str | None = None,
                    sample_steps: int | None = None, sampler: str | None = None,
                    guidance_scale: float | None = None) -> np.ndarray:
        """`steps` images from seed_a's image to seed_b's: their starting noises interpolated spherically (which
        keeps the noise at the norm the model was trained on), each solved like `sample` (with `sample_steps`
        sampler steps), in one class for a conditional model (`label`, default 0). uint8 (steps, H, W, C)."""
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 2:
            raise UserError(f"--steps: {steps} must be at least 2 (the two ends)")
        settings = self.settings(sample_steps, sampler, guidance_scale, steps_name="sample_steps")
        ends = self.noise([seed_a, seed_b])                                       # (2, C, H, W)
        za, zb = ends.flatten(1)
        walk = [za] + [slerp(za, zb, k / (steps - 1)) for k in range(1, steps - 1)] + [zb]  # exact ends
        start = torch.stack(walk).view(steps, *ends.shape[1:])
        if prompt is None:
            label = label if label is not None else (0 if self.conditional else None)
        y = self.conditions(steps, label, prompt)
        return self._solve(start, y, time_grid(1.0, settings.steps), settings)

    def evaluate(self, data, *, n: int = 10000, seed: int = 0, iw_samples: int = 100) -> tuple[dict, list[str]]:
        """FID/KID (+ class accuracy) of n samples at the run's sampling defaults, with the evaluator's references;
        and, for each step count of `model.eval_sweep`, `fid_steps{N}` (+ `class_acc_steps{N}`) of the same n
        samples solved in N steps."""
        from ...eval.image import image_metrics
        metrics, lines = super().evaluate(data, n=n, seed=seed)
        c = self.config.model
        guided = f", guidance scale {c.guidance_scale:g}" if self.conditional else ""
        lines.insert(1, f"sampler {c.sampler}, {c.sample_steps} steps{guided}")
        sweep = c.sweep
        if sweep:
            ev = data.evaluator(self.device)
            conditional = "class_acc" in metrics
            parts = []
            for steps in sweep:
                def draw(k, seed=None, labels=None, steps=steps):
                    return self.sample(k, seed=seed, labels=labels, steps=steps)
                # the defaults' steps: the same samples as scored above, so the same figures
                out = metrics if steps == c.sample_steps else image_metrics(
                    draw, data, n=n, device=self.device, conditional=conditional, seed=seed, evaluator=ev)
                metrics[f"fid_steps{steps}"] = out["fid"]
                part = f"{steps}: {out['fid']:.3f}"
                if conditional:
                    metrics[f"class_acc_steps{steps}"] = out["class_acc"]
                    part += f" (class accuracy {out['class_acc']:.4f})"
                parts.append(part)
            lines.append(f"FID by sampler steps ({c.sampler}): " + ", ".join(parts))
        return metrics, lines


class PromptedDiffusionPipeline(DiffusionPipeline):
    """A diffusion pipeline whose images come from text prompts, read by the run's own text encoder: `prompt=` for
    every image or `prompts=` one per image; without either, its classes' prompts (`labels` as for a class model),
    which is what the image metrics ask for."""

    reads = frozenset({"prompt"})

    def __init__(self, model, assets: PromptAssets, config, *, batch_size: int = BLOCK):
        super().__init__(model, assets.classes, config, batch_size=batch_size)
        self.assets = self.prompt_assets = assets  # a latent pipeline keeps more in `assets`
        self.codes = PromptCodes(assets.text_tokenizer, config.model.text_block)

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
            return [self.prompt_assets.class_prompts[0]] * n
        return [self.prompt_assets.class_prompts[int(k)] for k in self.labels_for(n, labels)]

    def conditions(self, n: int, labels=None, prompt=None) -> torch.Tensor:
        example = self.prompt_assets.class_prompts[0] if self.prompt_assets.class_prompts else ""
        rows = [self.codes.prompt(p, example) for p in self.prompts_for(n, prompt, labels)]
        return torch.tensor(rows, dtype=torch.long)                                # (n, text_block)


def make_pipeline(model, assets, config, **kwargs) -> DiffusionPipeline:
    """The family's `pipeline`: prompted for a run of `model.cond=text`, else by class (or unconditional)."""
    if config.model.cond == "text":
        return PromptedDiffusionPipeline(model, assets, config, **kwargs)
    return DiffusionPipeline(model, assets, config, **kwargs)


def _one_of(prompt, prompts):
    """`prompt` (one for every image) or `prompts` (a list, one per image) as one value."""
    if prompts is None:
        return prompt
    if prompt is not None:
        raise UserError("give prompt (one for every image) or prompts (one per image), not both")
    if isinstance(prompts, str):
        raise UserError("prompts: give a list with one prompt per image (or prompt= for one for all)")
    return list(prompts)


def put_back(x0: torch.Tensor, noise: torch.Tensor, mask: torch.Tensor, objective: str):
    """Inpainting's step hook: x at time s -> x where mask is 1, the known image x0 noised to s with `noise` where
    it is 0."""
    def project(x: torch.Tensor, s: float) -> torch.Tensor:
        alpha, sigma = alpha_sigma(s, objective)
        return mask * x + (1 - mask) * (alpha * x0 + sigma * noise)
    return project


def save_preview(model, data, cfg, stem: Path) -> None:
    """A fixed-seed sample grid at `stem`.png, one column per class for a conditional model, written at each
    evaluation."""
    n = cfg.model.preview_images
    if n <= 0:
        return
    pipe = make_pipeline(model, assets_of(data), cfg, batch_size=min(n, 64))  # no padding rows to solve
    columns = pipe.num_classes if pipe.conditional and pipe.num_classes <= 16 else None
    stem.parent.mkdir(parents=True, exist_ok=True)
    write_png(stem.with_suffix(".png"), pipe.sample(n, seed=0), columns)
