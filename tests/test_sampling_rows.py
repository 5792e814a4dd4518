"""Every image family samples one row per seed: image i of a batch is exactly (np.array_equal) the image its own seed
and condition (class or prompt) give alone, in another order or beside other rows, across the pipeline's fixed-size
blocks; `seed=s` is seeds s, s+1, ...; the walk between two seeds starts and ends at their images.

Exact equality holds because every block the model runs has the same number of rows (the last one padded): CPU
matrix products round differently at different batch sizes, which would otherwise move a pixel or a drawn token."""
import numpy as np
import pytest
import torch

import tetragen
from tetragen.api import load_data
from tetragen.config import build_run_config
from tetragen.errors import UserError
from tetragen.registry import get_family, list_families
from tetragen.train.trainer import Trainer

from .conftest import make_image_folder

SAMPLERS = [f for f in list_families() if {"sample", "prompt"} & get_family(f).capabilities]


def train(family, images, out, *overrides):
    cfg = build_run_config(family, preset="tiny", overrides=["train.warmup_steps=0", "train.eval_every=0",
                                                             *overrides])
    cfg.data.source = str(images)
    Trainer(cfg, load_data(cfg), out, progress=False).fit()
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny run of every image family (and of each component a family is built from), trained for a step."""
    root = tmp_path_factory.mktemp("rows")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TETRAGEN_CACHE", str(root / "cache"))
        images = make_image_folder(root / "images")
        out = {}
        for family in SAMPLERS:
            components = []
            for key, capability in get_family(family).components.items():
                maker = next(f for f in list_families() if capability in get_family(f).capabilities)
                components.append(f"{key}={train(maker, images, root / f'{family}-{maker}', 'train.max_steps=2')}")
            out[family] = train(family, images, root / family, "train.max_steps=1", *components)
    return out


def conditions(pipe, n):
    """A condition per row for `sample`: prompts for a prompted model, classes for a conditional one."""
    if "prompt" in pipe.capabilities:
        prompts = ["a disc", "a square", "a bar", "a small dark disc"]  # the example folder's classes
        return {"prompts": [prompts[i % len(prompts)] for i in range(n)]}
    if pipe.conditional:
        return {"labels": [i % pipe.num_classes for i in range(n)]}
    return {}


def rows(condition, index):
    return {k: [v[i] for i in index] for k, v in condition.items()}


def networks_in(assets) -> list:
    """The networks a run keeps beside its own (a prior's image tokenizer, a latent model's autoencoder)."""
    found, todo, seen = [], [assets], set()
    while todo:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, torch.nn.Module):
            found.append(obj)
        elif hasattr(obj, "__dict__"):
            todo.extend(vars(obj).values())
    return found


def layer_inputs(pipe, **kwargs) -> set:
    """The input shapes every layer of the pipeline's networks sees while it samples."""
    seen = set()
    networks = [pipe.model] + networks_in(pipe.assets)
    hooks = [m.register_forward_pre_hook(lambda m, args: seen.add(tuple(args[0].shape)) if args and
                                         torch.is_tensor(args[0]) else None)
             for net in networks for m in net.modules() if not list(m.children())]
    try:
        pipe.sample(**kwargs)
    finally:
        for h in hooks:
            h.remove()
    return seen


@pytest.mark.parametrize("family", SAMPLERS)
def test_a_row_depends_on_its_own_seed_and_condition_alone(family, runs):
    pipe = tetragen.load(runs[family])
    pipe.batch_size = 4  # blocks of 4 rows: 7 images fill one block and pad another
    seeds = [11, 3, 7, 7, 2 ** 64 - 1, 0, 12]
    condition = conditions(pipe, len(seeds))
    batch = pipe.sample(seeds=seeds, **condition)
    assert batch.dtype == np.uint8 and len(batch) == len(seeds)
    for i, seed in enumerate(seeds):
        assert np.array_equal(batch[i], pipe.sample(seeds=[seed], **rows(condition, [i]))[0]), i
    order = [6, 2, 0, 5, 1, 4, 3]
    assert np.array_equal(pipe.sample(seeds=[seeds[i] for i in order], **rows(condition, order)), batch[order])
    # the reason it holds: the layers see the same shapes whatever the number of images
    assert layer_inputs(pipe, seeds=[1], **rows(condition, [0])) == layer_inputs(pipe, seeds=seeds[:3],
                                                                                 **rows(condition, [0, 1, 2]))
    if not condition:  # the same seed, the same image; another seed, another image
        assert np.array_equal(batch[2], batch[3]) and not np.array_equal(batch[0], batch[1])
    # seed=s is seeds s, s+1, ..., whatever n
    assert np.array_equal(pipe.sample(3, seed=5, **rows(condition, [0, 1, 2])),
                          pipe.sample(seeds=[5, 6, 7], **rows(condition, [0, 1, 2])))
    if "prompt" not in pipe.capabilities:  # a latent walk between two seeds ends at their images
        label = {"label": 1} if pipe.conditional else {}
        walk = pipe.interpolate(3, 12, steps=5, **label)
        ends = pipe.sample(seeds=[3, 12], **({"labels": [1, 1]} if pipe.conditional else {}))
        assert np.array_equal(walk[[0, -1]], ends)


def test_seeds_and_prompts_are_checked(runs):
    pipe = next(p for p in (tetragen.load(runs[f]) for f in SAMPLERS) if "prompt" in p.capabilities)
    with pytest.raises(UserError, match="seed .* or seeds"):
        pipe.sample(2, seed=1, seeds=[1, 2])
    with pytest.raises(UserError, match="3 seeds for 2 images"):
        pipe.sample(2, seeds=[1, 2, 3])
    with pytest.raises(UserError, match="out of range"):
        pipe.sample(seeds=[-1])
    with pytest.raises(UserError, match="prompt .* or prompts"):
        pipe.sample(prompt="a disc", prompts=["a disc"])
    with pytest.raises(UserError, match="2 prompts for 3 images"):
        pipe.sample(seeds=[1, 2, 3], prompts=["a disc", "a bar"])
    assert len(pipe.sample(prompts=["a disc", "a bar"], seed=0)) == 2  # n from the prompts
