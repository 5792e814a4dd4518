"""A run of a family that learns grids, trained on a kind of content that is not images: its grids become that
content (a spectrogram becomes sound, a stack of frames becomes a clip).

`AdaptedPipeline` keeps everything the family's own pipeline offers and turns what it draws into the modality's
content through `content(grids, labels)`, which each modality's subclass defines. A class-conditional run also takes
a text prompt: by default, the class whose name is a word (or words) of the prompt ("say seven" -> seven); a modality
whose class names have parts reads them its own way (`class_of_prompt`). A prompt that names none of the classes is
refused in one line that lists them.
"""
from __future__ import annotations

import re
from typing import Any

import numpy as np
import torch

from ..errors import UserError
from ..pipeline import Steered


class AdaptedPipeline:
    """A trained run of grids whose samples are another kind's content; evaluation and the rest are the family's."""
    kind = ""           # the modality's name, for messages

    def __init__(self, inner):
        self.inner = inner
        self.config, self.model, self.assets = inner.config, inner.model, inner.assets
        self.classes, self.num_classes = list(inner.classes), int(inner.num_classes)
        self.batch_size = int(inner.batch_size)
        self.reads_text = "prompt" in inner.capabilities
        # a class-conditional run is prompted by the name of a class; its sampling settings are the family's
        self.capabilities = frozenset((inner.capabilities - {"edit"}) | ({"prompt"} if inner.conditional else set()))

    def content(self, grids: np.ndarray, labels: np.ndarray | None) -> Any:
        """What the user gets for drawn grids uint8 (N, H, W, C) and the class asked of each (None: none was)."""
        raise NotImplementedError

    @property
    def conditional(self) -> bool:
        return bool(self.inner.conditional)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def class_index(self, label) -> int:
        return self.inner.class_index(label)

    def labels_for(self, n: int, labels=None):
        return self.inner.labels_for(n, labels)

    @property
    def sampling_options(self) -> dict[str, str]:
        """The settings the family's run takes at sampling time (its solver, steps, guidance); {} for none."""
        return self.inner.sampling_options if isinstance(self.inner, Steered) else {}

    def check_sampling(self, **settings) -> dict[str, Any]:
        if isinstance(self.inner, Steered):
            return self.inner.check_sampling(**settings)
        given = sorted(k for k, v in settings.items() if v is not None)
        if given:
            raise UserError(f"{given[0]}: a {self.config.family} run on {self.kind} takes no {given[0]}")
        return {}

    def class_of_prompt(self, prompt: str) -> int:
        """The class whose name is a word (or words) of `prompt`, case-insensitively; the first one named."""
        if not isinstance(prompt, str) or not prompt.strip():
            raise UserError("prompt: empty; name what to make, e.g. " + repr(self.classes[0]))
        text = prompt.casefold()
        found = [(m.start(), i) for i, c in enumerate(self.classes)
                 for m in [re.search(r"(?<!\w)" + re.escape(c.casefold()) + r"(?!\w)", text)] if m]
        if not found:
            raise UserError(f"prompt {prompt!r}: this model makes only its {len(self.classes)} classes and the prompt "
                            f"names none of them; name one of: {', '.join(self.classes)}")
        return min(found)[1]

    def check_text(self, prompt: str) -> None:
        """What a kind of content asks of a prompt that a run reading text is given (nothing here); a UserError
        when it cannot be made."""

    def sample(self, n: int | None = None, *, seed: int | None = None, seeds=None, labels=None,
               prompt: str | None = None, prompts=None, **sampling):
        """n items (item i from seeds[i] or seed + i). `labels`: the class of each (or one for all); `prompt` /
        `prompts`: text, read by a run that reads text, else naming the class; the family's own sampling settings
        (guidance, steps, ...) pass through to a run that takes them."""
        if self.reads_text:
            for text in ([prompt] if prompt is not None else []) + (list(prompts) if prompts is not None else []):
                self.check_text(text)
            grids = self.inner.sample(n, seed=seed, seeds=seeds, labels=labels, prompt=prompt, prompts=prompts,
                                      **sampling)
            asked = None if labels is None else self.labels_for(len(grids), labels)
        else:
            if not isinstance(self.inner, Steered):
                self.check_sampling(**sampling)
            if prompt is not None or prompts is not None:
                if labels is not None:
                    raise UserError("prompt and labels: give one of them")
                texts = list(prompts) if prompts is not None else None
                labels = [self.class_of_prompt(t) for t in texts] if texts is not None \
                    else self.class_of_prompt(prompt)
            if n is None and seeds is not None:
                n = len(list(seeds))
            asked = self.labels_for(n, labels) if self.conditional else None
            steering = sampling if isinstance(self.inner, Steered) else {}
            grids = self.inner.sample(n, seed=seed, seeds=seeds, labels=asked, **steering)
        return self.content(grids, None if asked is None else np.asarray(asked, dtype=np.int64))

    def condition_of(self, prompt: str):
        """What a prompt asks of this run, row by row: the text itself (a run that reads text), the class it names (a
        class-conditional run; a UserError when it names none), or None (an unconditional run ignores it)."""
        if self.reads_text:
            self.check_text(prompt)
            return prompt
        return self.class_of_prompt(prompt) if self.conditional else None

    def sample_rows(self, rows: list, block: int, **sampling):
        """Rows (seed, condition from `condition_of`) of one or more requests drawn together, in forward passes of
        exactly `block` rows, so a row's content depends on that row alone (the server's batching), with the
        family's own sampling settings (`check_sampling`'s)."""
        self.inner.batch_size = block
        seeds = [seed for seed, _ in rows]
        conditions = [c for _, c in rows]
        told = {"prompts": conditions} if self.reads_text else {"labels": conditions} if self.conditional else {}
        return self.sample(seeds=seeds, **told, **sampling)

    def interpolate(self, seed_a: int, seed_b: int, steps: int = 8, label=None):
        return self.content(self.inner.interpolate(seed_a, seed_b, steps, label=label), None)

    def evaluate(self, data, *, n: int = 10000, seed: int = 0, iw_samples: int = 100) -> tuple[dict, list[str]]:
        return self.inner.evaluate(data, n=n, seed=seed, iw_samples=iw_samples)


def adapted(pipe: Any, make: Any):
    """A modality's GridForm.adapt: `make(pipe)` for a run that draws; a run that draws nothing new (a tokenizer: it
    encodes and decodes grids, for a prior built on it) is left as it is."""
    if not pipe.capabilities & {"sample", "prompt"}:
        return pipe
    return make(pipe)


def show_prompts(pipe, prompts: tuple[str, ...], folder, *, n: int, seed: int, write, amount):
    """What a job asks a trained run of such a kind (its modality's `show`): for each prompt (by default its first 8
    classes; a class-conditional run skips prompts that name none of its classes, as a job's own data may lack the
    showcase's) `n` items drawn from `seed`, kept by write(content, stem) -> {"file": ..., "picture": ...} (paths
    relative to the job folder). Returns (items, how much was made by `amount(content)`, seconds spent drawing)."""
    import time
    folder.mkdir(parents=True, exist_ok=True)
    if not pipe.capabilities & {"prompt", "sample"}:
        return [], 0.0, 0.0
    if pipe.conditional and not pipe.reads_text:
        prompts = tuple(p for p in prompts if _names_a_class(pipe, p))
    asked = list(prompts) or (list(pipe.classes)[:8] if pipe.conditional else [""])
    items, made, spent = [], 0.0, 0.0
    for k, prompt in enumerate(asked):
        t0 = time.perf_counter()
        content = pipe.sample(n, seed=seed, prompt=prompt or None)
        spent += time.perf_counter() - t0
        made += amount(content)
        files = write(content, folder / f"prompt_{k}")
        items.append({"title": f"“{prompt}”" if prompt else "samples", "prompt": prompt, **files})
    return items, made, spent


def _names_a_class(pipe, prompt: str) -> bool:
    try:
        pipe.class_of_prompt(prompt)
    except UserError:
        return False
    return True
