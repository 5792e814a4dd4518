"""What a text-to-image prior trains on: images turned into tokens by a frozen image tokenizer run, each with its
captions (built from the class and measured attributes, or read from the folder's caption file), and a character
tokenizer for the prompts.

A run holds its components: `image_tokenizer/` (a copy of the tokenizer run's config.json, weights and classes.json),
`tokenizer.json` (the prompt tokenizer), `captions.json` (how the captions are made, one prompt per class) and
`components.json`, which names the image tokenizer with its source, codebook size, token grid and weights' sha256.
`tetragen.load(run)` refuses a copy that no longer matches them.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

from ...data.captions import PromptCodes, class_prompts, load_captions, text_tokenizer_for
from ...data.grids import kind_of, load_run_grids
from ...data.images import conversion_notice, load_image_data, scan_folder
from ...data.sources import cache_dir
from ...data.tokenizer import load_tokenizer
from ...errors import UserError
from ...files import read_json, replace_atomically, step_dirs, write_json
from .sample import T2IAssets

COMPONENT = "image_tokenizer"          # the folder inside a run that holds its image tokenizer
TOKENIZER_FILES = ("config.json", "model.safetensors", "ema.safetensors", "classes.json")
ENCODE_BATCH = 500


# ----------------------------------------------------------------------------------------------------------------
# the image tokenizer component

def open_tokenizer_run(path: str | Path, *, where: str = "model.tokenizer_run"):
    """The pipeline of a trained image tokenizer run, refused in one line when it is missing, is no tokenizer, or
    has no final weights yet; a run still short of its last step is used with a warning."""
    from ... import api
    if not path:
        raise UserError(f"{where} is required: the folder of a trained image tokenizer run, e.g. `tetragen train "
                        f"vqvae --data fashion-mnist --out runs/vqvae` then {where}=runs/vqvae")
    folder = Path(path).expanduser()
    if not (folder / "config.json").is_file():
        what = "no such folder" if not folder.exists() else "not a tetragen run (no config.json)"
        raise UserError(f"{where}={path}: {what}; train a tokenizer first, e.g. `tetragen train vqvae --data "
                        f"fashion-mnist --out runs/vqvae`")
    steps = step_dirs(folder)
    if not (folder / "model.safetensors").is_file():
        latest = f"its latest checkpoint is {steps[-1].name}" if steps else "it has no checkpoint yet"
        raise UserError(f"{where}={path}: the tokenizer run has no final weights (model.safetensors): it is still "
                        f"training or was stopped ({latest}); let it finish or `--resume` it")
    pipe = api.load(folder)
    if "tokenize" not in pipe.capabilities:
        from ...registry import families_with
        raise UserError(f"{where}={path}: a {pipe.config.family} run, not an image tokenizer; give a run of "
                        f"{' or '.join(families_with('tokenize'))}")
    target = pipe.config.train.max_steps
    done = json.loads((steps[-1] / "trainer_state.json").read_text())["step"] if steps else target
    if done < target:
        print(f"tetragen: warning: the tokenizer run {path} is at step {done} of {target}; its current weights "
              f"are used and frozen", file=sys.stderr)
    return pipe


def weights_sha256(folder: Path) -> str:
    """The sha256 of the weights a tokenizer run is loaded with (the EMA when it keeps one)."""
    ema = Path(folder) / "ema.safetensors"
    return hashlib.sha256((ema if ema.is_file() else Path(folder) / "model.safetensors").read_bytes()).hexdigest()


def fit_to_tokenizer(model_config, pipe) -> None:
    h, w = pipe.token_shape
    size, _, channels = pipe.image_shape
    model_config.image_size, model_config.channels = int(size), int(channels)
    model_config.codebook_size, model_config.grid_h, model_config.grid_w = pipe.codebook_size, int(h), int(w)


# ----------------------------------------------------------------------------------------------------------------
# the dataset

class CaptionedImages:
    """Image tokens with captions; batches {"text": (B, T), "image": (B, L)} (+ "mask" (B, L) for the masked
    prior), drawn as a pure function of (seed, step, micro-batch). `train`/`test`/`classes` are the images' own
    (an `ImageData`'s), which the image metrics score samples against."""
    unit = "img"

    def __init__(self, images, tokens: dict, captions: dict, text_tokenizer, assets: T2IAssets, config,
                 tokenizer_source: Path | None):
        self.images, self.tokens, self.captions = images, tokens, captions
        self.name, self.train, self.test = images.name, images.train, images.test
        self.classes, self.image_shape = images.classes, images.image_shape
        self.text_tokenizer, self.assets, self.config = text_tokenizer, assets, config
        self.tokenizer_source = tokenizer_source
        self.codes = PromptCodes(text_tokenizer, config.model.text_block)
        self.pool = captions["train"].captioned  # the training images that have a caption

    def encode_text(self, text: str) -> list[int]:
        """Caption -> exactly text_block ids (cut, or padded with [PAD])."""
        return self.codes.caption(text)

    def _batch(self, split: str, idx: np.ndarray, seed_words: list[int], rng: np.random.Generator,
               drop: float, mask_ratio: np.ndarray | None) -> dict:
        m = self.config.model
        texts = self.captions[split].picks(idx, seed_words)
        ids = [self.encode_text(t) for t in texts]
        dropped = rng.random(len(idx)) < drop
        pad = m.text_vocab_size - 1
        text = torch.tensor([[pad] * m.text_block if d else row for row, d in zip(ids, dropped)], dtype=torch.long)
        batch = {"text": text, "image": torch.from_numpy(self.tokens[split][idx]).long()}
        if m.prior == "masked":
            L = m.image_tokens
            ratio = np.cos(np.pi / 2 * rng.random(len(idx))) if mask_ratio is None else mask_ratio
            counts = np.maximum(1, np.ceil(ratio * L)).astype(int)        # MaskGIT's cosine schedule, >= 1 hidden
            order = np.argsort(rng.random((len(idx), L)), axis=1)
            batch["mask"] = torch.from_numpy(np.argsort(order, axis=1) < counts[:, None])
        return batch

    def train_batch(self, *, seed: int, step: int, micro: int, batch_size: int, rank: int = 0,
                    world_size: int = 1) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng((seed, step, micro))
        idx = self.pool[rng.integers(0, len(self.pool), size=batch_size * world_size)]
        order = np.arange(rank * batch_size, (rank + 1) * batch_size)
        batch = self._batch("train", idx, [seed, step, micro], rng, self.config.model.cond_drop, None)
        return {k: v[order] for k, v in batch.items()}

    def test_batches(self, batch_size: int, limit: int = 0):
        """Fixed test batches: one caption per image (seed 0), no dropped prompts, half the image tokens hidden
        for the masked prior."""
        pool = self.captions["test"].captioned
        pool = pool[:limit] if limit else pool
        rng = np.random.default_rng(0)
        for i in range(0, len(pool), batch_size):
            idx = pool[i:i + batch_size]
            yield self._batch("test", idx, [0], rng, 0.0, np.full(len(idx), 0.5))

    def count(self, batch: dict) -> int:
        return int(batch["image"].shape[0])

    def save_assets(self, folder: Path) -> None:
        folder = Path(folder)
        self.text_tokenizer.save(folder / "tokenizer.json")
        self.images.save_assets(folder)  # classes.json
        write_json(folder / "captions.json", {**self.captions["train"].to_json(),
                                              "class_prompts": self.assets.class_prompts})
        tok_dir = folder / COMPONENT
        if self.tokenizer_source is not None and not (tok_dir / "config.json").is_file():
            tok_dir.mkdir(exist_ok=True)
            for name in TOKENIZER_FILES:
                if (self.tokenizer_source / name).is_file():
                    shutil.copyfile(self.tokenizer_source / name, tok_dir / name)
        elif not (tok_dir / "config.json").is_file():  # a checkpoint folder: the run's own copy
            src = folder.parent.parent / COMPONENT
            if (src / "config.json").is_file():
                shutil.copytree(src, tok_dir, dirs_exist_ok=True)
        m = self.config.model
        write_json(folder / "components.json", {COMPONENT: {
            "folder": COMPONENT, "source": str(self.tokenizer_source or m.tokenizer_run),
            "family": self.assets.image_tokenizer.config.family, "codebook_size": m.codebook_size,
            "grid": [m.grid_h, m.grid_w], "weights_sha256": weights_sha256(tok_dir)}})


def _tokens(pipe, images, source: Path | None) -> dict[str, np.ndarray]:
    """Every image of both splits as token ids (N, L), cached by the tokenizer's weights and the images."""
    h = hashlib.sha256(weights_sha256(source).encode() if source is not None else b"")
    for part in (images.train, images.test):
        h.update(np.ascontiguousarray(part.images).data)
    path = cache_dir() / "t2i-tokens" / f"{h.hexdigest()[:24]}.npz"
    if source is not None and path.is_file():
        with np.load(path) as f:
            return {"train": f["train"], "test": f["test"]}
    out = {}
    for split, part in (("train", images.train), ("test", images.test)):
        chunks = [pipe.encode(part.images[i:i + ENCODE_BATCH]).reshape(-1, pipe.token_shape[0] * pipe.token_shape[1])
                  for i in range(0, len(part.images), ENCODE_BATCH)]
        out[split] = np.concatenate(chunks).astype(np.int64)
    if source is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_atomically(path, lambda tmp: np.savez(tmp, **out))
    return out


def load_data(cfg, assets: T2IAssets | None = None, task: str = "lm") -> CaptionedImages:
    m = cfg.model
    if assets is None:
        pipe, source = open_tokenizer_run(m.tokenizer_run), Path(m.tokenizer_run).expanduser().resolve()
        m.tokenizer_run = str(source)
    else:
        pipe, source = assets.image_tokenizer, None
    fit_to_tokenizer(m, pipe)
    cfg.data.kind = cfg.data.kind or kind_of(cfg.data.source)
    if cfg.data.kind == "image":
        images = _read_images(cfg, assets is None)
    else:  # another kind of content learnt as grids (clips: a grid with a channel per frame), read by its modality
        images = load_run_grids(cfg, assets, task)
    if tuple(images.image_shape) != tuple(pipe.image_shape):
        (h, w, c), (size, _, channels) = images.image_shape, pipe.image_shape
        raise UserError(f"--data {cfg.data.source}: its {images.item}s are {h}x{w} grids with {c} channel(s), but "
                        f"the tokenizer {m.tokenizer_run} encodes {size}x{size} with {channels}; give a tokenizer "
                        f"run trained on this data")
    if assets is not None and list(images.classes) != list(assets.classes):
        raise UserError(f"--data {cfg.data.source}: classes {images.classes} differ from the run's {assets.classes}")
    m.num_classes = len(images.classes)
    stored = assets.captions_record if assets is not None else None
    train, test = load_captions(images, stored)
    if not len(train.captioned):
        raise UserError(f"--data {cfg.data.source}: no training image has a caption")
    captions = {"train": train, "test": test}
    text_tok = assets.text_tokenizer if assets is not None else text_tokenizer_for(captions)
    if assets is None:
        _say_cut_prompts(train, images, m.text_block)
    m.text_vocab_size = text_tok.vocab_size
    full = T2IAssets(text_tok, list(images.classes), class_prompts(train, images), pipe, stored or train.to_json(),
                     source or (assets.image_tokenizer_dir if assets is not None else None))
    return CaptionedImages(images, _tokens(pipe, images, full.image_tokenizer_dir), captions, text_tok, full, cfg,
                           source)


def _say_cut_prompts(train, images, text_block: int) -> None:
    """One line when the class prompts are longer than the prior's text context (their ends, "moving left", would
    never be read)."""
    lengths = [len(p) for p in class_prompts(train, images)]
    cut = sum(n > text_block for n in lengths)
    if cut:
        print(f"tetragen: {cut} of {len(lengths)} class prompts are longer than model.text_block={text_block} "
              f"(the longest has {max(lengths)} characters) and are cut in training; raise model.text_block to read "
              f"them whole", file=sys.stderr)


def _read_images(cfg, new_run: bool):
    """The images of an image run, at the tokenizer's shape (model.image_size, model.channels)."""
    m = cfg.model
    root = Path(cfg.data.source).expanduser()
    if new_run and root.is_dir():  # say so when the folder's images are not the tokenizer's shape
        notice = conversion_notice(root, scan_folder(root), m.image_size, m.channels,
                                   "that is the image tokenizer's shape (model.tokenizer_run): a tokenizer trained "
                                   "on this folder keeps them as they are")
        if notice:
            print(notice, file=sys.stderr)
    return load_image_data(cfg.data.source, m.image_size, m.channels, cfg.data.val_fraction)


def read_assets(run_dir: Path, cfg, base=None) -> T2IAssets:
    """A run's components, checked against its config: a missing or mismatched image tokenizer is refused."""
    from ... import api
    run_dir = Path(run_dir)
    components = read_json(run_dir / "components.json").get(COMPONENT) or {}
    tok_dir = run_dir / components.get("folder", COMPONENT)
    if not (tok_dir / "config.json").is_file():
        raise UserError(f"{run_dir}: its image tokenizer ({tok_dir}) is missing; copy the whole run folder, or "
                        f"retrain the prior")
    pipe = api.load(tok_dir)
    m = cfg.model
    grid = [int(g) for g in pipe.token_shape]
    if pipe.codebook_size != m.codebook_size or grid != [m.grid_h, m.grid_w]:
        raise UserError(f"{tok_dir}: a tokenizer of {pipe.codebook_size} codes on a {grid[0]}x{grid[1]} grid, but "
                        f"the prior was trained on {m.codebook_size} codes on {m.grid_h}x{m.grid_w}; restore the "
                        f"run's own image tokenizer")
    sha = components.get("weights_sha256")
    if sha and weights_sha256(tok_dir) != sha:
        raise UserError(f"{tok_dir}: its weights are not the ones the prior was trained on (sha256 differs); "
                        f"restore the run's own image tokenizer")
    doc = read_json(run_dir / "captions.json")
    classes = read_json(run_dir / "classes.json").get("classes") or []
    return T2IAssets(load_tokenizer(run_dir / "tokenizer.json"), classes, list(doc.get("class_prompts") or []), pipe,
                     {k: v for k, v in doc.items() if k != "class_prompts"}, tok_dir, run_dir)



