"""VAE-GAN: which weights each phase's loss reaches (the paper's split of the gradients), the discriminator's feature
layer, training through the shared trainer, save -> load, and the CLI. The family contract itself is in
test_families.py."""
import json

import numpy as np
import pytest
import torch

import tetragen
from tetragen.api import load_data
from tetragen.config import build_run_config
from tetragen.errors import UserError
from tetragen.families.dcgan.model import Discriminator
from tetragen.families.vaegan.model import VAEGAN, FeatureDiscriminator, frozen
from tetragen.families.vaegan.sample import VAEGANPipeline
from tetragen.registry import get_family
from tetragen.train.trainer import Trainer

from .conftest import make_image_folder, one_line_error, run_cli

PARTS = ("encoder", "decoder", "discriminator")


def _setup(images, *overrides):
    cfg = build_run_config("vaegan", preset="tiny", overrides=list(overrides))
    cfg.data.source = str(images)
    data = load_data(cfg)
    torch.manual_seed(0)
    model = get_family("vaegan").build(cfg.model)
    phases = {p.name: p for p in get_family("vaegan").objective(model, cfg)}
    return model, phases, data.train_batch(seed=0, step=0, micro=0, batch_size=8)


def _reached(model, phase, batch) -> dict:
    """Backpropagate one phase's loss from clean gradients: for each part of the model, whether any of its weights
    got a nonzero gradient."""
    model.zero_grad(set_to_none=True)
    loss, metrics = phase.loss(model, batch)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    return {part: any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in getattr(model, part).parameters())
            for part in PARTS}


def test_each_phase_reaches_only_its_own_weights(images):
    model, phases, batch = _setup(images, "model.pixel_weight=0.1")
    assert list(phases) == ["disc", "encoder", "decoder"]
    for name, part in (("disc", "discriminator"), ("encoder", "encoder"), ("decoder", "decoder")):
        assert {id(p) for p in phases[name].params} == {id(p) for p in getattr(model, part).parameters()}
    # D on detached fakes; the encoder through a frozen decoder and D; the decoder with detached codes and frozen D
    assert _reached(model, phases["disc"], batch) == {"encoder": False, "decoder": False, "discriminator": True}
    assert _reached(model, phases["encoder"], batch) == {"encoder": True, "decoder": False, "discriminator": False}
    assert _reached(model, phases["decoder"], batch) == {"encoder": False, "decoder": True, "discriminator": False}
    assert all(p.requires_grad for p in model.parameters())            # the phases left nothing frozen


def test_encoder_gets_no_gan_gradient_and_the_decoder_weighs_the_reconstruction_by_gamma(images):
    # gamma 0, no pixel term: the decoder's loss is the GAN term alone, which reaches the decoder only
    model, phases, batch = _setup(images, "model.gamma=0", "model.pixel_weight=0")
    torch.manual_seed(1)
    loss, metrics = phases["decoder"].loss(model, batch)
    assert float(loss.detach()) == pytest.approx(float(metrics["gan"]))
    assert _reached(model, phases["decoder"], batch) == {"encoder": False, "decoder": True, "discriminator": False}
    # the encoder's weight on the reconstruction is 1 whatever gamma is: with the KL off its loss is the error alone
    model, phases, batch = _setup(images, "model.gamma=0", "model.beta=0", "model.pixel_weight=0")
    loss, metrics = phases["encoder"].loss(model, batch)
    assert float(loss.detach()) == pytest.approx(float(metrics["recon_features"])) and float(loss.detach()) > 0
    assert _reached(model, phases["encoder"], batch)["encoder"]
    # gamma scales the decoder's reconstruction term: the same draws, loss = gamma * error + gan
    model, phases, batch = _setup(images, "model.gamma=2.5", "model.pixel_weight=0")
    torch.manual_seed(1)
    loss, metrics = phases["decoder"].loss(model, batch)
    assert float(loss.detach()) == pytest.approx(2.5 * float(metrics["recon_features"]) + float(metrics["gan"]),
                                                 rel=1e-5)


def test_frozen_restores_only_what_it_froze_even_on_error():
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    b.bias.requires_grad_(False)                                       # frozen by someone else (e.g. LoRA)
    with pytest.raises(RuntimeError), frozen(a, b):
        assert not any(p.requires_grad for p in [*a.parameters(), *b.parameters()])
        raise RuntimeError
    assert all(p.requires_grad for p in a.parameters()) and b.weight.requires_grad and not b.bias.requires_grad


def test_feature_layer_is_a_block_of_dcgans_discriminator():
    torch.manual_seed(0)
    x = torch.randn(3, 1, 32, 32)
    plain = Discriminator(32, 1, 4)                                   # 32x32: blocks to 16, 8, 4 with 4, 8, 16 ch
    for layer, shape in ((1, 4 * 16 * 16), (2, 8 * 8 * 8), (0, 16 * 4 * 4)):
        wrapped = FeatureDiscriminator(32, 1, 4, spectral_norm=False, feature_layer=layer)
        wrapped.net.load_state_dict(plain.state_dict())
        logits, features = wrapped(x)
        assert features.shape == (3, shape)
        assert torch.equal(logits, plain(x)[0])                        # the wrapper changes nothing of D's logit
    model = VAEGAN(build_run_config("vaegan", preset="tiny").model)
    assert model.num_classes == 0 and not model.conditional
    mu, logvar = model.encode(torch.zeros(2, 1, 28, 28))
    assert mu.shape == logvar.shape == (2, model.latent_dim)


def test_trainer_steps_log_every_phase_and_keep_a_best_checkpoint(images, tmp_path):
    cfg = build_run_config("vaegan", preset="tiny", overrides=["train.max_steps=4"])
    cfg.data.source = str(images)
    data = load_data(cfg)
    final = Trainer(cfg, data, tmp_path / "run", progress=False).fit()
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["split"] == "train"]
    assert train and all(np.isfinite(r[f"loss_{p}"]) for r in train for p in ("disc", "encoder", "decoder"))
    assert all(k in train[-1] for k in ("kl_encoder", "recon_features_decoder", "gan_decoder", "d_real_disc"))
    # eval_samples=0 (no FID): the primary metric is still there, so the best checkpoint is kept
    assert get_family("vaegan").primary_metric in final and 0 < final["recon_mse"] < 1 and final["kl"] >= 0
    assert "fid" not in final and "neg_elbo" not in final
    assert (tmp_path / "run" / "checkpoints" / "best" / "model.safetensors").is_file()


def test_save_then_load_reproduces_samples_and_reconstructions(images, tmp_path):
    cfg = build_run_config("vaegan", preset="tiny", overrides=["train.max_steps=3"])
    cfg.data.source = str(images)
    data = load_data(cfg)
    trainer = Trainer(cfg, data, tmp_path / "run", progress=False)
    trainer.fit()
    live = VAEGANPipeline(trainer.model, data.classes, cfg)
    loaded, again = tetragen.load(tmp_path / "run"), tetragen.load(tmp_path / "run")
    assert isinstance(loaded, VAEGANPipeline) and loaded.capabilities == {"sample", "reconstruct", "encode"}
    test = data.test.images[:5]
    for pipe in (loaded, again):
        assert np.array_equal(pipe.sample(6, seed=3), live.sample(6, seed=3))
        assert np.array_equal(pipe.reconstruct(test), live.reconstruct(test))
    assert not np.array_equal(loaded.sample(6, seed=4), loaded.sample(6, seed=3))
    walk = loaded.interpolate_images(test[:2], steps=4)
    ends = walk[[0, -1]].astype(int) - loaded.reconstruct(test[:2])   # the two images' codes, decoded
    assert walk.shape == (4, *data.image_shape) and np.abs(ends).max() <= 1  # (other batch: rounding may differ)
    with pytest.raises(UserError, match="no likelihood bound"):
        loaded.likelihood(data)


def test_cli_train_sample_reconstruct_eval(tmp_path):
    from PIL import Image
    images = make_image_folder(tmp_path / "shapes", n_per_class=12, size=16)
    run = tmp_path / "run"
    r = run_cli("train", "vaegan", "--data", str(images), "--out", str(run), "--preset", "tiny",
                "model.image_size=16", "train.max_steps=4", "train.eval_samples=8")
    assert r.returncode == 0, r.stderr
    r = run_cli("sample", str(run), "--n", "4", "--seed", "0", "--out", str(tmp_path / "x.png"))
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "x.png").size == (2 * (16 + 2) + 2,) * 2   # a 2x2 grid
    r = run_cli("reconstruct", str(run), "--n", "2", "--out", str(tmp_path / "r.png"))
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "r.png").size == (4 * (16 + 2) + 2, 16 + 4)  # (image, reconstruction) x 2
    r = run_cli("eval", str(run), "--n", "20", "--json")
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout)
    assert m["n"] == 20 and m["fid"] > 0 and 0 < m["recon_mse"] < 1 and m["kl"] >= 0
    assert "neg_elbo" not in m and "nll_iw" not in m
    r = run_cli("eval", str(run), "--n", "20")
    assert r.returncode == 0, r.stderr
    assert "FID" in r.stdout and "recon MSE" in r.stdout and "likelihood: not reported" in r.stdout


@pytest.mark.parametrize("override, needle", [("model.feature_layer=3", "model.feature_layer"),  # validate()
                                              ("model.gamma=-1", "model.gamma")])                # option range
def test_bad_config_is_a_one_line_error(images, tmp_path, override, needle):
    r = run_cli("train", "vaegan", "--data", str(images), "--out", str(tmp_path / "run"), "--preset", "tiny", override)
    one_line_error(r, needle)
    assert not (tmp_path / "run").exists()
