"""What a diffusion run reads: its grids as every grid family reads them (tetragen/data/grids.py), and, for a
prompt-conditioned run (`model.cond=text`), a caption per image from the same place t2i gets them
(tetragen/data/captions.py: built from the class and measured attributes, or the folder's caption file), encoded by
the run's own character tokenizer.

A text run keeps `tokenizer.json` (the prompt tokenizer) and `captions.json` (how its captions are made, one prompt
per class) beside `classes.json`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...data.captions import PromptCodes, class_prompts, load_captions, text_tokenizer_for
from ...data.grids import load_run_grids, read_run_classes
from ...data.tokenizer import load_tokenizer
from ...errors import UserError
from ...files import read_json, write_json


@dataclass
class PromptAssets:
    """What a prompt-conditioned run keeps beside its weights: the class names, the prompt tokenizer, one prompt per
    class, and how its captions are made (data/captions.py `to_json`)."""
    classes: list[str]
    text_tokenizer: Any
    class_prompts: list[str]
    captions_record: dict | None = None


class CaptionedGrids:
    """The run's grids (a GridData: what the trainer and the evaluator read, unchanged) whose training batches also
    carry a caption per image: {"x": (B, C, H, W), "y": (B,), "index": (B,), "text": (B, text_block) ids}, drawn as a
    pure function of (seed, step, micro-batch), the phrasing too."""

    def __init__(self, data, captions: dict, codes: PromptCodes, assets: PromptAssets):
        self.data, self.captions, self.codes, self.assets = data, captions, codes, assets
        self.pool = captions["train"].captioned  # the training images that have a caption

    def __getattr__(self, name: str):
        # everything else (the splits, the classes, what the evaluator reads) is the grids' own
        if name == "data":  # not set yet (copying): no recursion
            raise AttributeError(name)
        return getattr(self.data, name)

    def train_batch(self, *, seed: int, step: int, micro: int, batch_size: int, rank: int = 0,
                    world_size: int = 1) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng((seed, step, micro))
        idx = self.pool[rng.integers(0, len(self.pool), size=batch_size * world_size)]
        idx = np.sort(idx[rank * batch_size:(rank + 1) * batch_size])
        texts = self.captions["train"].picks(idx, [seed, step, micro])
        return {"x": self.data.to_model(self.train.images[idx]), "y": torch.from_numpy(self.train.labels[idx]),
                "index": torch.from_numpy(idx),
                "text": torch.tensor([self.codes.caption(t) for t in texts], dtype=torch.long)}

    def count(self, batch: dict) -> int:
        return int(batch["x"].shape[0])

    def save_assets(self, folder: Path) -> None:
        self.data.save_assets(folder)  # classes.json
        self.assets.text_tokenizer.save(Path(folder) / "tokenizer.json")
        write_json(Path(folder) / "captions.json", {**self.captions["train"].to_json(),
                                                    "class_prompts": self.assets.class_prompts})


def load_data(cfg, assets=None, task: str = "lm"):
    """The run's grids (load_run_grids); for `model.cond=text` with their captions, the prompt tokenizer made from
    them for a new run (or the run's own), and model.text_vocab_size set from it."""
    m = cfg.model
    classes = assets.classes if isinstance(assets, PromptAssets) else assets
    data = load_run_grids(cfg, classes, task)
    if m.cond != "text":
        return data
    if data.kind != "image":
        raise UserError(f"model.cond=text: prompts come from image captions, and {cfg.data.source} is "
                        f"{data.kind} content; use model.cond=class")
    if cfg.data.label_fraction < 1.0:
        raise UserError("data.label_fraction: a prompt-conditioned run learns from captions, not from a share of "
                        "the labels; leave it at 1.0 (or use model.cond=class)")
    stored = assets.captions_record if isinstance(assets, PromptAssets) else None
    train, test = load_captions(data, stored)
    if not len(train.captioned):
        raise UserError(f"--data {cfg.data.source}: no training image has a caption")
    captions = {"train": train, "test": test}
    tokenizer = assets.text_tokenizer if isinstance(assets, PromptAssets) else text_tokenizer_for(captions)
    if isinstance(assets, PromptAssets) and tokenizer.vocab_size != m.text_vocab_size:
        raise UserError(f"the run's tokenizer.json has {tokenizer.vocab_size} tokens, but the model was trained with "
                        f"{m.text_vocab_size}; restore the run's own tokenizer.json")
    m.text_vocab_size = tokenizer.vocab_size
    full = PromptAssets(list(data.classes), tokenizer, class_prompts(train, data), stored or train.to_json())
    return CaptionedGrids(data, captions, PromptCodes(tokenizer, m.text_block), full)


def read_assets(run_dir: Path, cfg, base=None):
    """The class names a run keeps, and for a prompt-conditioned run its prompt tokenizer and captions record."""
    classes = read_run_classes(run_dir, cfg, base)
    if cfg.model.cond != "text":
        return classes
    run_dir = Path(run_dir)
    for name in ("tokenizer.json", "captions.json"):
        if not (run_dir / name).is_file():
            raise UserError(f"{run_dir}: {name} is missing (a prompt-conditioned run keeps it); copy the whole run "
                            f"folder")
    doc = read_json(run_dir / "captions.json")
    return PromptAssets(classes, load_tokenizer(run_dir / "tokenizer.json"), list(doc.get("class_prompts") or []),
                        {k: v for k, v in doc.items() if k != "class_prompts"})


def assets_of(data) -> Any:
    """What a pipeline built during training takes as its assets: the prompt assets of captioned data, else the
    class names."""
    return data.assets if isinstance(data, CaptionedGrids) else data.classes
