"""The family contract, run for every registered family with its `tiny` preset on its modality's example data.

Forward pass and loss; one step changes the weights; save -> load reproduces the losses and outputs exactly; the
pipeline implements the Protocol of each capability it lists; seeded sampling is deterministic; an interrupted and
resumed run ends bitwise identical to an uninterrupted one. Nothing here knows a family or a kind of content: a
family registered from elsewhere (tests/test_plugin.py) runs the same checks.
"""
import dataclasses

import numpy as np
import pytest
import torch

import tetragen
from tetragen.api import load_data
from tetragen.config import build_run_config
from tetragen.pipeline import CAPABILITY_TYPES, FillsMasks, GeneratesText, Prompts, Samples, Tokenizes
from tetragen.registry import get_family, get_modality, list_families
from tetragen.train import checkpoint as ck
from tetragen.train.trainer import Trainer

FAMILIES = list_families()


def tiny(family, source, *overrides):
    cfg = build_run_config(family, preset="tiny", overrides=["train.eval_tokens=256", *overrides])
    cfg.data.source = str(source)
    return cfg, load_data(cfg)


@pytest.fixture
def source(family, tmp_path):
    """Tiny data of the kind the family makes, written by its modality."""
    return get_modality(get_family(family).makes).example(tmp_path / "data")


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
    trainer.fit()
    after = trainer.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("family", FAMILIES)
def test_pipeline_implements_the_protocol_of_each_capability(family, source, components, tmp_path):
    cfg, data = tiny(family, source, "train.max_steps=1", "train.warmup_steps=0", *components)
    Trainer(cfg, data, tmp_path / "run", progress=False).fit()
    pipe = tetragen.load(tmp_path / "run")
    assert pipe.capabilities <= get_family(family).capabilities
    for capability in pipe.capabilities:
        assert isinstance(pipe, CAPABILITY_TYPES[capability][1]), capability


@pytest.mark.parametrize("family", FAMILIES)
def test_save_then_load_reproduces_outputs(family, source, components, tmp_path):
    cfg, data = tiny(family, source, "train.max_steps=3", "train.warmup_steps=0", *components)
    trainer = Trainer(cfg, data, tmp_path / "run", progress=False)
    trainer.fit()
    loaded = tetragen.load(tmp_path / "run")
    trainer.model.eval()
    batch = data.train_batch(seed=5, step=0, micro=0, batch_size=2)
    for phase in trainer.phases:  # the same losses, noise and all, from the saved weights (some take gradients)
        torch.manual_seed(0)
        a, _ = phase.loss(trainer.model, batch)
        torch.manual_seed(0)
        b, _ = phase.loss(loaded.model, batch)
        assert torch.equal(a.detach(), b.detach()), phase.name
    if isinstance(loaded, FillsMasks) and "fill_mask" in loaded.capabilities:
        a = loaded.fill_mask("ab [MASK] ab", top_k=3)
        assert a == tetragen.load(tmp_path / "run").fill_mask("ab [MASK] ab", top_k=3)
        assert len(a) == 1 and len(a[0]) == 3  # one candidate list per [MASK], whatever their number
    if isinstance(loaded, GeneratesText) and "generate" in loaded.capabilities:
        a = loaded.generate("ab", 30, seed=3, temperature=1.0)
        b = tetragen.load(tmp_path / "run").generate("ab", 30, seed=3, temperature=1.0)
        assert a == b and len(a) == 30
        assert loaded.generate("ab", 30, seed=4, temperature=1.0) != a
    if ("sample" in loaded.capabilities and isinstance(loaded, Samples)) or isinstance(loaded, Prompts):
        a = loaded.sample(6, seed=3)  # a prompted model: its classes' prompts in turn
        assert len(a) == 6
        assert np.array_equal(a, tetragen.load(tmp_path / "run").sample(6, seed=3))
        assert not np.array_equal(loaded.sample(6, seed=4), a)
    if "tokenize" in loaded.capabilities and isinstance(loaded, Tokenizes):  # the same tokens, the same items
        items = data.test.images[:4]
        ids = loaded.encode(items)
        assert ids.dtype == np.int64 and ids.ndim == 3 and len(ids) == len(items) > 1
        fresh = tetragen.load(tmp_path / "run")
        assert np.array_equal(fresh.encode(items), ids)
        assert np.array_equal(fresh.decode(ids), loaded.decode(ids))
        assert loaded.decode(ids).shape == items.shape


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
