"""VQGAN: the vqvae tokenizer + a patch discriminator, two phases of the one trainer.

Before model.disc_start the discriminator is left untouched and the main loss is the vqvae's loss of the same
weights; after it the generator's hinge term is on with taming's adaptive weight (checked against gradients taken
by hand). Each phase moves only its own network. A trained run loads exactly, evaluates and reconstructs through the
CLI, and serves as the frozen tokenizer of a t2i prior. Bad config values are one-line errors.
"""
import copy
import dataclasses
import json
import math

import numpy as np
import pytest
import torch

import tetragen
from tetragen.api import load_data
from tetragen.config import build_run_config
from tetragen.errors import UserError
from tetragen.families.vqgan.objective import gan_on
from tetragen.families.vqvae.config import VQVAEConfig
from tetragen.families.vqvae.model import VQVAE
from tetragen.registry import get_family
from tetragen.train.optim import make_optimizer
from tetragen.train.trainer import Trainer

from .conftest import make_image_folder, one_line_error, run_cli


def tiny(source, *overrides):
    cfg = build_run_config("vqgan", preset="tiny", overrides=list(overrides))
    cfg.data.source = str(source)
    return cfg, load_data(cfg)


def built(cfg, seed: int = 0):
    """The model of `cfg` (seeded weights), its phases by name and a batch of 8 images in [-1, 1]."""
    torch.manual_seed(seed)
    family = get_family("vqgan")
    model = family.build(cfg.model).train()
    phases = {p.name: p for p in family.objective(model, cfg)}
    x = torch.rand(8, 1, 28, 28) * 2 - 1
    return model, phases, {"x": x, "y": torch.zeros(8, dtype=torch.long)}


def snapshot(module: torch.nn.Module, prefix: str = "") -> dict:
    return {k: v.clone() for k, v in module.state_dict().items() if k.startswith(prefix)}


def changed(before: dict, module: torch.nn.Module) -> set[str]:
    after = module.state_dict()
    return {k for k, v in before.items() if not torch.equal(v, after[k])}


# ----------------------------------------------------------------------------------------------------------------
# the two phases

def test_before_disc_start_the_main_loss_is_the_vqvae_loss_of_the_same_weights():
    cfg = build_run_config("vqgan", preset="tiny", overrides=["model.feature_weight=0.5"])
    model, phases, batch = built(cfg)
    assert not gan_on(model, cfg)
    vq_fields = {f.name for f in dataclasses.fields(VQVAEConfig)}
    vqvae = VQVAE(VQVAEConfig(**{k: v for k, v in dataclasses.asdict(cfg.model).items() if k in vq_fields}))
    vqvae.load_state_dict({k: v for k, v in model.state_dict().items()
                           if not k.startswith("discriminator.") and k != "trained_batches"})  # strict: all of it
    vqvae.train()
    torch.manual_seed(1)                                    # k-means on the first batch draws from the seed
    loss, metrics = phases["main"].loss(model, batch)
    torch.manual_seed(1)
    expected, expected_metrics = vqvae(batch)
    assert torch.equal(loss, expected)                      # bitwise: the same computation, not a copy of it
    assert metrics.keys() == expected_metrics.keys()        # no GAN term, no adaptive weight, no feature term
    assert all(torch.equal(vqvae.state_dict()[k], v) for k, v in model.state_dict().items() if k in
               vqvae.state_dict())                          # and the codebook moved the same way
    assert int(model.trained_batches) == 1


def test_before_disc_start_the_disc_phase_leaves_the_discriminator_alone(images, tmp_path):
    # weight decay on: a discriminator given a zero gradient would still shrink; it must get none at all
    cfg, data = tiny(images, "model.disc_start=5", "train.max_steps=5", "train.weight_decay=0.1",
                     "train.eval_every=0", "train.save_every=0")
    trainer = Trainer(cfg, data, tmp_path / "run", progress=False)
    disc, rest = snapshot(trainer.model, "discriminator."), snapshot(trainer.model)
    trainer.fit()
    assert not changed(disc, trainer.model)
    assert {k for k in changed(rest, trainer.model) if k.startswith("decoder.")}   # the autoencoder did train
    assert int(trainer.model.trained_batches) == 5
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["split"] == "train"]
    assert train and all(r["loss_disc"] == 0.0 and "adaptive_weight_main" not in r for r in train)


def test_after_disc_start_the_generator_term_has_the_adaptive_weight_of_the_gradient_norms():
    cfg = build_run_config("vqgan", preset="tiny", overrides=["model.disc_weight=0.7"])
    model, phases, batch = built(cfg)
    model.trained_batches.fill_(cfg.model.disc_start * cfg.train.grad_accum)
    assert gan_on(model, cfg)
    by_hand = copy.deepcopy(model)
    torch.manual_seed(1)
    loss, metrics = phases["main"].loss(model, batch)
    assert {"gen_loss", "adaptive_weight"} <= metrics.keys()

    # the same step by hand, each gradient by its own backward pass into the decoder's last layer
    torch.manual_seed(1)
    q, _, vq_loss = by_hand.quantize(batch["x"])
    recon = by_hand.decoder(q)
    rec = torch.nn.functional.mse_loss(recon, batch["x"]) + vq_loss
    gen = -by_hand.discriminator(recon)[0].mean()            # hinge loss of the generator, over every patch
    last = by_hand.decoder.net[-1].weight
    norms = []
    for term in (rec, gen):
        by_hand.zero_grad(set_to_none=True)
        term.backward(retain_graph=True)
        norms.append(last.grad.norm())
    weight = (norms[0] / (norms[1] + 1e-4)).clamp(0.0, 1e4)
    w = metrics["adaptive_weight"]
    assert math.isfinite(float(w)) and float(w) > 0 and not w.requires_grad
    assert float(w) == pytest.approx(float(weight), rel=1e-5)
    assert float(metrics["gen_loss"]) == pytest.approx(float(gen.detach()), rel=1e-5)
    assert float(loss.detach()) == pytest.approx(float((rec + 0.7 * weight * gen).detach()), rel=1e-5)
    loss.backward()                                          # the discriminator is frozen in the main phase
    assert all(p.grad is None for p in model.discriminator.parameters())


def test_the_adaptive_weight_is_clamped():
    cfg = build_run_config("vqgan", preset="tiny")
    model, _, _ = built(cfg)
    last = model.last_decoder_layer
    assert float(model.adaptive_weight(1e3 * last.sum(), 0.0 * last.sum())) == 1e4      # no GAN gradient at all
    assert float(model.adaptive_weight(0.0 * last.sum(), last.sum())) == 0.0
    ratio = model.adaptive_weight(3.0 * last.sum(), 2.0 * last.sum())
    assert float(ratio) == pytest.approx(1.5, rel=1e-3)


def test_the_feature_matching_term_joins_the_reconstruction_loss():
    over = ["model.disc_weight=0.0"]
    plain_cfg = build_run_config("vqgan", preset="tiny", overrides=over)
    cfg = build_run_config("vqgan", preset="tiny", overrides=[*over, "model.feature_weight=2.0"])
    losses = []
    for c in (plain_cfg, cfg):
        model, phases, batch = built(c)
        model.trained_batches.fill_(c.model.disc_start)
        torch.manual_seed(1)
        loss, metrics = phases["main"].loss(model, batch)
        losses.append((loss, metrics))
    (plain, _), (with_features, metrics) = losses
    assert "feature_l1" in metrics and float(metrics["feature_l1"]) > 0
    assert float((with_features - plain).detach()) == pytest.approx(2.0 * float(metrics["feature_l1"]), rel=1e-4)


def test_each_phase_moves_only_its_own_network():
    cfg = build_run_config("vqgan", preset="tiny", overrides=["model.feature_weight=0.5"])
    model, phases, batch = built(cfg)
    model.trained_batches.fill_(cfg.model.disc_start)
    for name, phase in phases.items():
        disc, rest = snapshot(model, "discriminator."), {k: v for k, v in snapshot(model).items()
                                                         if not k.startswith("discriminator.")}
        opt = make_optimizer(phase.params, cfg.train, "cpu", model)
        opt.zero_grad(set_to_none=True)
        loss, _ = phase.loss(model, batch)
        loss.backward()
        opt.step()
        if name == "disc":
            assert changed(disc, model) == set(disc)         # every discriminator tensor moved ...
            assert not changed(rest, model)                  # ... nothing else did (the codebook included)
            assert all(p.grad is None for p in model.encoder.parameters())
        else:
            assert not changed(disc, model)
            assert {"decoder.net.0.weight", "encoder.net.0.conv.weight", "trained_batches"} <= changed(rest, model)


# ----------------------------------------------------------------------------------------------------------------
# a trained run

@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Tiny images and a 12-step vqgan run on them (the GAN on from step 3)."""
    root = tmp_path_factory.mktemp("vqgan")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TETRAGEN_CACHE", str(root / "cache"))
        mp.setenv("TETRAGEN_NO_PROGRESS", "1")
        images = make_image_folder(root / "images")
        cfg = build_run_config("vqgan", preset="tiny", overrides=["train.max_steps=12", "train.log_every=1"])
        cfg.data.source = str(images)
        data = load_data(cfg)
        trainer = Trainer(cfg, data, root / "run", progress=False)
        trainer.fit()
    return {"root": root, "images": images, "run": root / "run", "data": data, "model": trainer.model.eval()}


def test_a_run_past_disc_start_logs_finite_losses_of_both_phases(world):
    records = [json.loads(line) for line in (world["run"] / "metrics.jsonl").read_text().splitlines()]
    train = {r["step"]: r for r in records if r["split"] == "train"}
    assert sorted(train) == list(range(1, 13))
    for step, r in train.items():                            # step s logs the (s - 1)-th update; disc_start 3
        assert math.isfinite(r["loss_main"]) and math.isfinite(r["loss_disc"]), r
        if step <= 3:
            assert r["loss_disc"] == 0.0 and "adaptive_weight_main" not in r
        else:
            assert r["loss_disc"] > 0 and 0 < r["adaptive_weight_main"] <= 1e4 and "gen_loss_main" in r
    assert any(r["split"] == "val" and r["recon_mse"] < 1 for r in records)


def test_save_then_load_reproduces_encode_and_decode_exactly(world):
    pipe = tetragen.load(world["run"])
    assert pipe.config.family == "vqgan" and pipe.capabilities == {"reconstruct", "tokenize"}
    images = world["data"].test.images
    tokens = pipe.encode(images)
    assert tokens.dtype == np.int64 and tokens.shape == (len(images), 7, 7)
    with torch.no_grad():
        assert np.array_equal(tokens, world["model"].encode(world["data"].to_model(images)).numpy())
        ids = torch.from_numpy(tokens)
        assert torch.equal(pipe.model.decode(ids), world["model"].decode(ids))
    assert np.array_equal(pipe.decode(tokens), pipe.reconstruct(images))
    assert np.array_equal(tetragen.load(world["run"]).decode(tokens), pipe.decode(tokens))


def test_cli_evaluates_and_reconstructs_a_vqgan_run(world, tmp_path):
    env = {"TETRAGEN_CACHE": str(world["root"] / "cache")}
    r = run_cli("eval", str(world["run"]), "--n", "20", "--json", env=env)
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout)
    assert 0 < m["recon_mse"] < 1 and 0 < m["codebook_usage"] <= 1 and math.isfinite(m["recon_fid"])
    assert 1 <= m["codebook_perplexity"] <= 16 and m["recon_n"] >= 2
    r = run_cli("reconstruct", str(world["run"]), "--n", "3", "--out", str(tmp_path / "pairs.png"), env=env)
    assert r.returncode == 0 and (tmp_path / "pairs.png").is_file(), r.stderr


def test_a_t2i_prior_trains_on_a_vqgan_tokenizer(world, tmp_path, monkeypatch):
    monkeypatch.setenv("TETRAGEN_CACHE", str(world["root"] / "cache"))
    cfg = build_run_config("t2i", preset="tiny", overrides=["train.max_steps=2", "train.eval_every=0",
                                                            f"model.tokenizer_run={world['run']}"])
    cfg.data.source = str(world["images"])
    Trainer(cfg, load_data(cfg), tmp_path / "prior", progress=False).fit()
    kept = json.loads((tmp_path / "prior" / "image_tokenizer" / "config.json").read_text())
    assert kept["family"] == "vqgan"
    pipe = tetragen.load(tmp_path / "prior")
    samples = pipe.sample(2, prompt=pipe.assets.class_prompts[0], seed=0)
    assert samples.dtype == np.uint8 and samples.shape == (2, 28, 28, 1)


# ----------------------------------------------------------------------------------------------------------------
# configuration

def test_presets_validate_and_fmnist_has_the_vqvae_fmnist_tokens():
    for name in get_family("vqgan").presets:
        build_run_config("vqgan", preset=name).model.validate()
    fmnist, vq = build_run_config("vqgan", preset="fmnist"), build_run_config("vqvae", preset="fmnist")
    assert {f.name: getattr(fmnist.model, f.name) for f in dataclasses.fields(vq.model)} == dataclasses.asdict(
        vq.model)
    assert (fmnist.train.max_steps, fmnist.train.batch_size) == (vq.train.max_steps, vq.train.batch_size)
    assert 0 < fmnist.model.disc_start < fmnist.train.max_steps


@pytest.mark.parametrize("overrides, needle", [
    (["model.disc_layers=4"], "use model.disc_layers=3 or fewer"),   # 28 -> 14 -> 7 -> 3 -> 1: no patch left
    (["model.disc_layers=0"], "model.disc_layers: 0 is out of range"),
    (["model.disc_weight=-1"], "model.disc_weight: -1.0 is out of range"),
    (["model.d_lr_scale=0"], "model.d_lr_scale: 0.0 is out of range"),
    (["model.disc_start=-2"], "model.disc_start: -2 is out of range"),
    (["model.downsample=3"], "model.downsample (3) must be a power of 2"),   # vqvae's own checks still apply
])
def test_bad_config_values_are_one_line_errors(overrides, needle):
    with pytest.raises(UserError) as e:
        build_run_config("vqgan", preset="tiny", overrides=overrides).model.validate()
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_the_cli_refuses_a_bad_discriminator_in_one_line(images, tmp_path):
    r = run_cli("train", "vqgan", "--data", str(images), "--out", str(tmp_path / "run"), "--preset", "tiny",
                "model.disc_layers=5")
    one_line_error(r, "model.disc_layers (5)", "use model.disc_layers=3 or fewer")
    assert not (tmp_path / "run").exists()


def test_disc_start_fraction_follows_the_planned_step_count():
    from types import SimpleNamespace

    from tetragen.families.vqgan.objective import gan_on
    cfg = build_run_config("vqgan", preset="tiny", overrides=["model.disc_start_fraction=0.4", "train.max_steps=10"])
    model = SimpleNamespace(trained_batches=3)
    assert not gan_on(model, cfg)
    model.trained_batches = 4
    assert gan_on(model, cfg)  # 0.4 of 10 steps
    cfg.train.max_steps = 100  # what a train.budget_minutes plan does: the start moves with it
    assert not gan_on(model, cfg)
    model.trained_batches = 40
    assert gan_on(model, cfg)
