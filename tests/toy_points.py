"""A kind of content and a family that tetragen does not ship, registered from the tests folder alone.

The modality "points" is 2-D point clouds drawn from a few Gaussian blobs: its data (a named set, `blobs`, and a
user's `.npz` of `points` and `labels`), its files (a scatter `.png`, an `.npz`), its evaluator (the Fréchet
distance of the 2-D Gaussian fits of samples and test points, and the class accuracy of class-conditioned samples
by the nearest test-class centre), its report block and its route (`POST /v1/points`). The family "blobfit" is a
class-conditional Gaussian with a learnt mean and scale per class, trained by maximum likelihood.

`register()` adds both to tetragen's registries; tests/test_plugin.py shows that, with no edit to shared code, they
train, resume bitwise after SIGKILL, sample with a seed, evaluate, serve, and appear in the quickstart and the bench.
"""
from __future__ import annotations

import base64
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from tetragen import registry
from tetragen.data.sources import NamedDataset
from tetragen.errors import UserError
from tetragen.files import replace_atomically
from tetragen.options import option
from tetragen.train.phase import Phase

CLASSES = ["north", "east", "south"]
CENTRES = np.array([[0.0, 2.0], [2.0, 0.0], [0.0, -2.0]], dtype=np.float32)
SCALES = np.array([[0.3, 0.3], [0.5, 0.2], [0.2, 0.5]], dtype=np.float32)


# ----------------------------------------------------------------------------------------------------------------
# the modality's data

def blobs(n_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(CLASSES)), n_per_class)
    points = CENTRES[labels] + SCALES[labels] * rng.standard_normal((len(labels), 2)).astype(np.float32)
    return points.astype(np.float32), labels.astype(np.int64)


class PointData:
    """Train and test point clouds with their class labels; what the trainer and the evaluator read."""
    unit = "pt"

    def __init__(self, name: str, train, test, classes: list[str]):
        self.name, self.train, self.test, self.classes = name, train, test, classes

    def count(self, batch: dict) -> int:
        return int(batch["x"].shape[0])

    def train_batch(self, *, seed: int, step: int, micro: int, batch_size: int, rank: int = 0,
                    world_size: int = 1) -> dict:
        rng = np.random.default_rng((seed, step, micro))
        idx = rng.integers(0, len(self.train[1]), size=batch_size * world_size)[rank * batch_size:(rank + 1) * batch_size]
        return {"x": torch.from_numpy(self.train[0][idx]), "y": torch.from_numpy(self.train[1][idx])}

    def save_assets(self, folder: Path) -> None:
        (Path(folder) / "classes.json").write_text(json.dumps({"classes": self.classes}))


def example(folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "points.npz"
    (train_x, train_y), (test_x, test_y) = blobs(64, 0), blobs(32, 1)
    np.savez(path, train_points=train_x, train_labels=train_y, test_points=test_x, test_labels=test_y)
    return str(path)


def load_data(cfg, assets, task) -> PointData:
    source = cfg.data.source
    if source == "blobs":
        data = PointData("blobs", blobs(500, 0), blobs(200, 1), CLASSES)
    else:
        path = Path(source)
        if path.suffix != ".npz" or not path.is_file():
            raise UserError(f"--data {source}: not a .npz of points; give one with train_points, train_labels, "
                            f"test_points, test_labels, or the name blobs")
        arrays = np.load(path)
        data = PointData(path.name, (arrays["train_points"], arrays["train_labels"]),
                         (arrays["test_points"], arrays["test_labels"]), CLASSES)
    cfg.model.num_classes = len(data.classes)
    return data


def read_assets(run_dir: Path, cfg, base=None) -> list[str]:
    return json.loads((Path(run_dir) / "classes.json").read_text())["classes"]


# ----------------------------------------------------------------------------------------------------------------
# the modality's evaluator, files, report block and route

def frechet_2d(a: np.ndarray, b: np.ndarray) -> float:
    """The Fréchet distance of two 2-D Gaussian fits (tr sqrt(AB) from the eigenvalues of AB, real and >= 0)."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root_trace = np.sqrt(np.linalg.eigvals(cov_a @ cov_b).real.clip(0)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b) - 2 * root_trace)


def points_metrics(pipe, data: PointData, n: int, seed: int) -> dict:
    labels = pipe.labels_for(n)
    samples = pipe.sample(n, seed=seed, labels=labels)
    test_x, test_y = data.test
    centres = np.stack([test_x[test_y == k].mean(0) for k in range(len(data.classes))])
    nearest = ((samples[:, None, :] - centres[None]) ** 2).sum(-1).argmin(1)
    return {"frechet": frechet_2d(samples, test_x), "class_acc": float((nearest == labels.numpy()).mean())}


def scatter_png(path: Path, points: np.ndarray, labels=None, **_) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(3, 3), dpi=60)
    ax.scatter(points[:, 0], points[:, 1], s=4, c=labels if labels is not None else None)
    replace_atomically(Path(path), lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)


def write_npz(path: Path, points: np.ndarray, labels=None, **_) -> None:
    arrays = {"points": points} if labels is None else {"points": points, "labels": np.asarray(labels)}
    replace_atomically(Path(path), lambda tmp: np.savez(tmp, **arrays))


def show(pipe, prompts, folder: Path, data: str):
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    labels = pipe.labels_for(300)
    points = pipe.sample(300, seed=1, labels=labels)
    speed = {"unit": "points/s", "value": 300 / (time.perf_counter() - t0)}
    scatter_png(folder / "scatter.png", points, labels.numpy())
    return [{"title": "300 points, classes in turn", "file": str((folder / "scatter.png").relative_to(folder.parent.parent))}], speed


def html(item: dict, out: Path) -> str:
    url = "data:image/png;base64," + base64.b64encode((Path(out) / item["file"]).read_bytes()).decode()
    return f"<figure class='points'><img alt='{item['title']}' src='{url}'><figcaption>{item['title']}</figcaption></figure>"


def commands(run: str, prompt: str, capabilities) -> list[str]:
    return [f"tetragen sample {run} --n 300 --seed 1 --out points.png"]


class PointsRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")
    model: str = Field(min_length=1)
    n: int = Field(1, ge=1)
    seed: int = Field(0, ge=0)
    label: str = ""


def add_routes(app) -> None:
    from tetragen.serve.app import at_most, await_job, parse, user_error

    @app.post("/v1/points")
    async def points(request: Request):
        server = request.app.state.server
        body = await parse(request, PointsRequest)
        pipe, worker = server.model(body.model, "sample", kind="points")
        at_most("n", body.n, 1000, 1)
        try:
            out = await await_job(request, worker, lambda: pipe.sample(body.n, seed=body.seed,
                                                                      labels=body.label or None),
                                  time.monotonic() + server.limits.timeout_s)
        except UserError as e:
            raise user_error(e, {"class": "label"}) from None
        return {"model": body.model, "points": out.tolist()}


def card(pipe) -> dict:
    return {"classes": list(pipe.classes)}


MODALITY = registry.Modality(
    name="points", description="2-D point clouds from Gaussian blobs", headline=("frechet",),
    columns={"Fréchet (2-D)": ("frechet", "{:.3f}"), "class acc": ("class_acc", "{:.3f}")},
    note="Fréchet distance of 2-D Gaussian fits (lower is better)",
    datasets=lambda: [NamedDataset("blobs", "three 2-D Gaussian blobs", "made in memory", lambda: [],
                                   lambda: ([], "made in memory"))],
    example=example, writers={".png": scatter_png, ".npz": write_npz}, show=show, html=html, commands=commands,
    routes={"sample": ("/v1/points",)}, add_routes=add_routes, card=card, data_help="points=points.npz",
    playground=str(Path(__file__).with_name("toy_points.js")))


# ----------------------------------------------------------------------------------------------------------------
# the family

@dataclass
class BlobFitConfig:
    num_classes: int = option(0, "classes (set from the data)", min=0)
    init_scale: float = option(1.0, "the scales' starting value", min=0.0, min_exclusive=True)


class BlobFit(nn.Module):
    """A Gaussian per class with a learnt mean and log-scale."""

    def __init__(self, config: BlobFitConfig):
        super().__init__()
        self.config = config
        k = max(config.num_classes, 1)
        self.mean = nn.Parameter(torch.zeros(k, 2))
        self.log_scale = nn.Parameter(torch.full((k, 2), math.log(config.init_scale)))

    def forward(self, batch: dict):
        x, y = batch["x"], batch["y"]
        z = (x - self.mean[y]) / self.log_scale[y].exp()
        nll = (0.5 * z.pow(2) + self.log_scale[y]).sum(-1).mean() + math.log(2 * math.pi)
        return nll, {"nll": nll.detach()}


class PointsPipeline:
    capabilities = frozenset({"sample"})

    def __init__(self, model, classes, config):
        self.model, self.assets, self.config = model.eval(), classes, config
        self.classes, self.num_classes = list(classes), len(classes)
        self.conditional, self.batch_size = True, 256  # each point from its own generator: any batch will do

    def class_index(self, label) -> int:
        if isinstance(label, str) and label in self.classes:
            return self.classes.index(label)
        if isinstance(label, (int, np.integer)) and 0 <= label < self.num_classes:
            return int(label)
        raise UserError(f"--class {label!r}: no such class; the classes are: {', '.join(self.classes)}")

    def labels_for(self, n: int, labels=None) -> torch.Tensor:
        if labels is None:
            return torch.arange(n) % self.num_classes
        if isinstance(labels, (str, int, np.integer)):
            return torch.full((n,), self.class_index(labels), dtype=torch.long)
        return torch.tensor([self.class_index(int(v)) for v in labels], dtype=torch.long)

    @torch.no_grad()
    def sample(self, n: int | None = None, *, seed: int | None = None, seeds=None, labels=None) -> np.ndarray:
        if seeds is None:
            base = seed if seed is not None else int(torch.seed() % (1 << 62))
            seeds = [base + i for i in range(n)]
        y = self.labels_for(len(seeds), labels)
        z = torch.stack([torch.randn(2, generator=torch.Generator().manual_seed(s)) for s in seeds])
        return (self.model.mean[y] + self.model.log_scale[y].exp() * z).numpy()

    def interpolate(self, seed_a: int, seed_b: int, steps: int = 8, label=None) -> np.ndarray:
        a, b = self.sample(1, seed=seed_a, labels=label or 0), self.sample(1, seed=seed_b, labels=label or 0)
        return np.concatenate([a + (b - a) * t for t in np.linspace(0, 1, steps)])

    def evaluate(self, data, *, n: int = 1000, seed: int = 0, iw_samples: int = 0) -> tuple[dict, list[str]]:
        metrics = points_metrics(self, data, n, seed)
        return metrics, [f"frechet {metrics['frechet']:.4f}  class_acc {metrics['class_acc']:.3f}"]


def objective(model, cfg) -> list[Phase]:
    return [Phase("main", list(model.parameters()), lambda m, batch: m(batch))]


def evaluate(model, data, cfg, device) -> dict:
    with torch.random.fork_rng():
        return points_metrics(PointsPipeline(model, data.classes, cfg), data, 300, 0)


FAMILY = registry.Family(
    name="blobfit", description="a Gaussian per class, fitted by maximum likelihood; draws 2-D points",
    config=BlobFitConfig, build=BlobFit, objective=objective, evaluate=evaluate, pipeline=PointsPipeline,
    load_data=load_data, read_assets=read_assets, makes="points", primary_metric="frechet",
    presets={"tiny": {"model": {}, "train": {"max_steps": 60, "batch_size": 32, "lr": 0.1, "warmup_steps": 0,
                                             "eval_every": 10, "save_every": 10, "log_every": 5}}},
    default_preset="tiny", capabilities=frozenset({"sample"}),
)
SHOWCASE = registry.Showcase(data=("blobs",), weight=1.0, quickstart=False, preset="tiny")


def register() -> None:
    """Add the modality and the family to tetragen's registries (once)."""
    registry.list_families()  # the built-ins first
    if "points" not in registry._MODALITIES:
        registry.register_modality(MODALITY)
    if "blobfit" not in registry._FAMILIES:
        registry.register_family(FAMILY)
        registry.register_showcase("blobfit", SHOWCASE)


def unregister() -> None:
    registry._FAMILIES.pop("blobfit", None)
    registry._SHOWCASES.pop("blobfit", None)
    registry._MODALITIES.pop("points", None)
