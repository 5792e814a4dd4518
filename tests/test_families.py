"""The family contract, run for every registered family with its `tiny` preset.

Forward pass and loss; one step changes the weights; save -> load reproduces outputs exactly; seeded sampling is
deterministic; an interrupted and resumed run ends bitwise identical to an uninterrupted one.
"""
import dataclasses

import numpy as np
import pytest
import torch

import tetragen
from tetragen.api import load_data
from tetragen.config import build_run_config
from tetragen.registry import get_family, list_families
from tetragen.train import checkpoint as ck
from tetragen.train.trainer import Trainer

FAMILIES = list_families()


def tiny(family, source, *overrides):
    cfg = build_run_config(family, preset="tiny", overrides=["train.eval_tokens=256", *overrides])
    cfg.data.source = str(source)
    return cfg, load_data(cfg)


@pytest.fixture
def source(family, corpus, images):
    """The family's kind of tiny data: a text corpus or a folder of labelled images."""
    return corpus if get_family(family).data_kind == "text" else images


@pytest.fixture
def components(family, source, tmp_path):
    """For a family built from other runs: a tiny run of a family with each capability it needs, as overrides."""
    out = []
    for key, capability in get_family(family).components.items():
        maker = next(f for f in FAMILIES if capability in get_family(f).capabilities)
        cfg, data = tiny(maker, source, "train.max_steps=4", "train.warmup_steps=0")
        Trainer(cfg, data, tmp_path / f"component-{maker}", progress=False).fit()
        out.append(f"{key}={tmp_path / f'component-{maker}'}")
    return out


@pytest.mark.parametrize("family", FAMILIES)
def test_has_tiny_preset(family):
    assert "tiny" in get_family(family).presets


@pytest.mark.parametrize("family", FAMILIES)
def test_forward_loss_is_finite_and_one_step_changes_weights(family, source, components, tmp_path):
    cfg, data = tiny(family, source, "train.max_steps=1", "train.warmup_steps=0", *components)
    trainer = Trainer(cfg, data, tmp_path / "run", progress=False)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    batch = data.train_batch(seed=0, step=0, micro=0, batch_size=cfg.train.batch_size)
    for phase in trainer.phases:
        loss, _ = phase.loss(trainer.model, batch)
        assert loss.ndim == 0 and torch.isfinite(loss)
    caps = get_family(family).capabilities
    if "sample" in caps and "prompt" not in caps:  # the generator's output: images in [-1, 1] of the data's shape
        model = trainer.model
        labels = torch.arange(3) % model.num_classes if model.num_classes else None
        with torch.no_grad():
            x = model.generate(torch.randn(3, model.latent_dim), labels)
        h, w, c = data.image_shape
        assert x.shape == (3, c, h, w) and x.min() >= -1 and x.max() <= 1
    trainer.fit()
    after = trainer.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("family", FAMILIES)
def test_save_then_load_reproduces_outputs(family, source, components, tmp_path):
    cfg, data = tiny(family, source, "train.max_steps=3", "train.warmup_steps=0", *components)
    trainer = Trainer(cfg, data, tmp_path / "run", progress=False)
    trainer.fit()
    loaded = tetragen.load(tmp_path / "run")
    trainer.model.eval()
    if get_family(family).data_kind == "text":
        x = data.train_batch(seed=5, step=0, micro=0, batch_size=2)["x"]
        with torch.no_grad():
            assert torch.equal(trainer.model(x)[0], loaded.model(x)[0])
        if hasattr(loaded, "fill_mask"):  # a masked LM: its predictions are the same after a reload
            a = loaded.fill_mask("ab [MASK] ab", top_k=3)
            assert a == tetragen.load(tmp_path / "run").fill_mask("ab [MASK] ab", top_k=3) and len(a) == 3
            return
        a = loaded.generate("ab", 30, seed=3, temperature=1.0)
        b = tetragen.load(tmp_path / "run").generate("ab", 30, seed=3, temperature=1.0)
        assert a == b and len(a) == 30
        assert loaded.generate("ab", 30, seed=4, temperature=1.0) != a
    elif "prompt" in get_family(family).capabilities:  # images from a prompt: the same prompt and seed, the same
        prompt = loaded.assets.class_prompts[0]
        a = loaded.sample(3, prompt=prompt, seed=3)
        assert a.dtype == np.uint8 and a.shape == (3, *data.image_shape)
        assert np.array_equal(a, tetragen.load(tmp_path / "run").sample(3, prompt=prompt, seed=3))
        assert not np.array_equal(loaded.sample(3, prompt=prompt, seed=4), a)
        batch = {k: v for k, v in next(data.test_batches(4)).items()}
        with torch.no_grad():
            assert torch.equal(trainer.model(batch)[0], loaded.model(batch)[0])
    elif "tokenize" in get_family(family).capabilities:  # an image tokenizer: the same tokens and the same images
        images = data.test.images[:4]
        ids = loaded.encode(images)
        assert ids.dtype == np.int64 and ids.ndim == 3 and len(ids) == len(images) > 1
        fresh = tetragen.load(tmp_path / "run")
        assert np.array_equal(fresh.encode(images), ids)
        assert np.array_equal(fresh.decode(ids), loaded.decode(ids))
        assert loaded.decode(ids).shape == images.shape
    else:
        z = torch.randn(4, loaded.model.latent_dim)
        labels = torch.arange(4) % loaded.model.num_classes if loaded.conditional else None
        with torch.no_grad():
            assert torch.equal(trainer.model.generate(z, labels), loaded.model.generate(z, labels))
        a = loaded.sample(6, seed=3)
        b = tetragen.load(tmp_path / "run").sample(6, seed=3)
        assert a.dtype == np.uint8 and a.shape == (6, *data.image_shape)
        assert np.array_equal(a, b)
        assert not np.array_equal(loaded.sample(6, seed=4), a)


@pytest.mark.parametrize("family", FAMILIES)
def test_interrupted_then_resumed_equals_uninterrupted(family, source, components, tmp_path, monkeypatch):
    over = ("train.max_steps=12", "train.save_every=4", "train.eval_every=6", "train.ema_decay=0.9", *components)
    if "dropout" in {f.name for f in dataclasses.fields(get_family(family).config)}:
        over += ("model.dropout=0.1",)  # random draws in training must be restored too
    cfg, data = tiny(family, source, *over)
    Trainer(cfg, data, tmp_path / "straight", progress=False).fit()

    cfg, data = tiny(family, source, *over)
    interrupted = Trainer(cfg, data, tmp_path / "resumed", progress=False)
    real_step = interrupted._train_step

    def dies_at_step_7():
        if interrupted.step == 6:
            raise KeyboardInterrupt
        return real_step()
    monkeypatch.setattr(interrupted, "_train_step", dies_at_step_7)
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit()
    assert [p.name for p in ck.step_dirs(tmp_path / "resumed")] == ["step_00000004"]

    cfg, data = tiny(family, source, *over)
    resumed = Trainer(cfg, data, tmp_path / "resumed", resume=True, progress=False)
    assert resumed.step == 4
    resumed.fit()
    for name in ("model.safetensors", "ema.safetensors"):
        a = ck.read_tensors(tmp_path / "straight" / name)
        b = ck.read_tensors(tmp_path / "resumed" / name)
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), f"{name}:{k}"
