"""The image modality's parts: its named dataset, a tiny example folder, its writers, and what a job asks a trained
image model (prompted grids, class grids, reconstructions) and how the report shows them."""
from __future__ import annotations

import base64
import html as _html
import shlex
import time
from pathlib import Path

import numpy as np

from ...data import images as image_data
from ...data.sources import NamedDataset
from ...pipeline import Steered
from ...sample.images import write_npz, write_png

SEED = 1  # the seed of every shown sample


def datasets() -> list[NamedDataset]:
    files = image_data.FASHION_MNIST

    def fetch():
        found, done = files.fetch()
        return list(found.values()), done
    return [NamedDataset("fashion-mnist", image_data.IMAGE_DATASETS["fashion-mnist"][0],
                         f"apt package {files.apt_package}, else URL {files.url}",
                         lambda: list(image_data.fashion_mnist_files().values()), fetch)]


def make_image_folder(root: Path, n_per_class: int = 12, size: int = 28, seed: int = 0) -> Path:
    """Three classes of grey shapes (disc, square, bar) at random places, as PNG files in class folders."""
    from PIL import Image
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    for c, name in enumerate(["disc", "square", "bar"]):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            cy, cx = rng.integers(size // 3, 2 * size // 3, 2)
            shape = [(yy - cy) ** 2 + (xx - cx) ** 2 < 36, (abs(yy - cy) < 5) & (abs(xx - cx) < 5), abs(xx - cx) < 2][c]
            Image.fromarray(np.where(shape, 255, 0).astype(np.uint8)).save(root / name / f"{i:03d}.png")
    return root


def example(folder: Path) -> str:
    return str(make_image_folder(folder))


def write_png_output(path: Path, images: np.ndarray, *, columns: int | None = None, **_) -> None:
    """uint8 (N, H, W, C) images as one grid PNG."""
    write_png(path, images, columns=columns)


def write_npz_output(path: Path, images: np.ndarray, *, labels=None, **_) -> None:
    """uint8 (N, H, W, C) images (and the class of each, when given) as arrays."""
    write_npz(path, images, labels)


def show(pipe, prompts: tuple[str, ...], folder: Path, data: str) -> tuple[list[dict], dict]:
    """A grid per prompt (a prompted model), a grid with one column per class (a class-conditional one) or of plain
    samples, and test images beside their reconstructions (a tokenizer)."""
    from ... import api
    folder.mkdir(parents=True, exist_ok=True)
    items, speed = [], {}
    caps = pipe.capabilities

    def grid(title: str, images: np.ndarray, stem: str, columns: int | None = None) -> None:
        path = folder / f"{stem}.png"
        write_png(path, images, columns=columns)
        items.append({"title": title, "file": str(path.relative_to(folder.parent.parent))})

    if "prompt" in caps:
        t0, n = time.perf_counter(), 0
        for k, p in enumerate(prompts):
            grid(f"“{p}”", pipe.sample(16, prompt=p, seed=SEED), f"prompt_{k}", columns=8)
            n += 16
        speed = {"unit": "images/s", "value": n / (time.perf_counter() - t0)}
    elif "sample" in caps:
        classes = pipe.classes if pipe.conditional else []
        columns = len(classes) if classes else 8
        n = columns * 4 if classes else 32
        t0 = time.perf_counter()
        images = pipe.sample(n, seed=SEED)
        speed = {"unit": "images/s", "value": n / (time.perf_counter() - t0)}
        grid(("samples, one column per class (" + ", ".join(classes) + ")") if classes else "samples", images,
             "samples", columns=columns)
    if "reconstruct" in caps and "sample" not in caps:  # a tokenizer: test images beside their reconstructions
        cfg = pipe.config
        cfg.data.source = data
        test = api.load_data(cfg, pipe.assets).test.images[:16]
        grid("test images (top) and their reconstructions (bottom)",
             np.concatenate([test, pipe.reconstruct(test)]), "reconstructions", columns=16)
    return items, speed


def html(item: dict, out: Path) -> str:
    url = "data:image/png;base64," + base64.b64encode((Path(out) / item["file"]).read_bytes()).decode()
    title = _html.escape(item["title"], quote=True)
    return (f"<figure><img class='grid' alt='{title}' src='{url}'><figcaption>{title} (seed {SEED})</figcaption>"
            f"</figure>")


def card(pipe) -> dict:
    """A class-conditional model's card lists its classes (its prompt is a class name); one that chooses how it
    samples at sampling time lists those settings with their defaults and ranges (`sampling`)."""
    out = {}
    if "sample" in pipe.capabilities and "prompt" not in pipe.capabilities and pipe.conditional:
        out["classes"] = list(pipe.classes)
    if "steer" in pipe.capabilities and isinstance(pipe, Steered):
        out["sampling"] = {name: dict(option) for name, option in pipe.sampling_options.items()}
    return out


def commands(run: str, prompt: str, capabilities) -> list[str]:
    q = shlex.quote
    lines = []
    if "prompt" in capabilities:
        lines.append(f"tetragen sample {q(run)} --prompt {q(prompt)} --n 16 --out prompted.png")
    elif "sample" in capabilities:
        lines.append(f"tetragen sample {q(run)} --n 64 --seed {SEED} --out samples.png")
    if "reconstruct" in capabilities:
        lines.append(f"tetragen reconstruct {q(run)} --n 16 --out reconstructions.png")
    return lines
