"""VQ-VAE: the vector quantiser (tetragen/nn/quantize.py) and the vqvae tokenizer family.

Quantiser: decoding from indices equals the quantised output, straight-through gradients, the EMA update, dead-code
restarts, k-means initialisation, cosine codes, codebook statistics, exact state_dict round trips. Family: training
lowers the reconstruction error, save -> load reproduces encode/decode, evaluation, config errors.
"""
import math

import numpy as np
import pytest
import torch

import tetragen
from tetragen.api import load_data
from tetragen.config import build_run_config
from tetragen.errors import UserError
from tetragen.nn.quantize import VectorQuantizer, codebook_stats
from tetragen.registry import get_family
from tetragen.train import checkpoint as ck
from tetragen.train.trainer import Trainer

VARIANTS = {"ema": {}, "learned": {"ema": False}, "low_dim": {"code_dim": 3}, "cosine": {"cosine": True}}


# ----------------------------------------------------------------------------------------------------------------
# the quantiser

@pytest.mark.parametrize("variant", VARIANTS)
def test_decode_from_indices_equals_the_decoder_of_the_quantized_latent(variant):
    """The invariant a prior over tokens relies on, bitwise: decode(encode(x)) == decoder(quantize(x)[0])."""
    cfg = build_run_config("vqvae", preset="tiny")
    for key, value in VARIANTS[variant].items():
        setattr(cfg.model, key, value)
    torch.manual_seed(0)
    model = get_family("vqvae").build(cfg.model)
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    model.train()
    model(batch={"x": x})                                     # codebook statistics, k-means and restarts once
    state = {k: v.clone() for k, v in model.state_dict().items()}
    tokens = model.encode(x)                                  # encoding never moves the codebook, even in training
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    model.eval()
    with torch.no_grad():
        q, indices, _ = model.quantize(x)
        assert indices.shape == (3, 7, 7) and indices.dtype == torch.int64
        assert torch.equal(indices, tokens) and torch.equal(model.quantizer.embed(indices), q)
        assert torch.equal(model.decode(model.encode(x)), model.decoder(q))


@pytest.mark.parametrize("ema", [True, False])
def test_straight_through_gradient_reaches_the_encoder_unchanged(ema):
    torch.manual_seed(0)
    vq = VectorQuantizer(8, 4, ema=ema)
    z = torch.randn(2, 4, 3, 3, requires_grad=True)
    q, _, _ = vq(z)
    upstream = torch.randn_like(q)
    (q * upstream).sum().backward()
    assert torch.equal(z.grad, upstream)                      # d quantized / d z is the identity
    if not ema:                                               # the output sends nothing to the codebook ...
        assert vq.codebook.grad is None or not vq.codebook.grad.any()
        z.grad = None
        vq(z)[2].backward()                                   # ... its own loss does
        assert vq.codebook.grad.abs().sum() > 0


def test_the_model_trains_its_encoder_through_the_quantizer():
    cfg = build_run_config("vqvae", preset="tiny")
    torch.manual_seed(0)
    model = get_family("vqvae").build(cfg.model)
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    decoded = model.decoder(model.quantize(x)[0])
    ((decoded - x) ** 2).mean().backward()                    # the reconstruction term alone
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())


def test_ema_moves_used_codes_to_their_encodings_and_leaves_unused_codes():
    vq = VectorQuantizer(4, 2, decay=0.9)
    codes = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [-10.0, -10.0]])
    vq.codebook.copy_(codes)
    vq.embed_sum.copy_(codes)                                 # each code: one encoding's worth of history
    near0 = torch.tensor([[1.0, 1.0], [2.0, 0.0]])            # nearest code 0, mean (1.5, 0.5)
    near1 = torch.tensor([[9.0, 1.0]])                        # nearest code 1
    flat = torch.cat([near0, near1])                          # (3, 2) -> z (1, 2, 1, 3)
    vq.train()
    _, indices, _ = vq(flat.t().reshape(1, 2, 1, 3))
    assert indices.flatten().tolist() == [0, 0, 1]
    for k, assigned in ((0, near0), (1, near1)):             # (0.9 e + 0.1 sum) / (0.9 + 0.1 n), up to smoothing
        expected = (0.9 * codes[k] + 0.1 * assigned.sum(0)) / (0.9 + 0.1 * len(assigned))
        assert torch.allclose(vq.codebook[k], expected, atol=1e-4)
        assert (vq.codebook[k] - assigned.mean(0)).norm() < (codes[k] - assigned.mean(0)).norm()
    assert torch.equal(vq.codebook[2:], codes[2:])            # unused: exactly where they were
    assert torch.allclose(vq.cluster_size, torch.tensor([1.1, 1.0, 0.9, 0.9]))


def test_dead_codes_are_restarted_from_the_batch():
    torch.manual_seed(0)
    z = torch.randn(4, 3, 4, 4)                               # 64 encodings

    def mostly_dead(threshold):
        vq = VectorQuantizer(16, 3, dead_code_threshold=threshold)
        vq.codebook.copy_(torch.full((16, 3), 100.0))         # 15 codes nowhere near the data ...
        vq.codebook[0] = 0.0                                  # ... and one in its middle
        vq.embed_sum.copy_(vq.codebook)
        vq.cluster_size.copy_(torch.tensor([50.0] + [0.01] * 15))
        return vq

    def usage(vq):
        vq.eval()
        return codebook_stats(vq(z)[1], 16)["usage"]

    off = mostly_dead(0.0)
    assert usage(off) == 1 / 16
    off.train()
    off(z)
    assert usage(off) == 1 / 16                               # without restarts the dead stay dead

    torch.manual_seed(1)
    on = mostly_dead(1.0)
    on.train()
    on(z)
    assert usage(on) >= 12 / 16
    assert (on.codebook[1:] != 100.0).all(dim=1).all()        # every dead code now sits on an encoding
    torch.manual_seed(1)
    again = mostly_dead(1.0)
    again.train()
    again(z)
    assert torch.equal(again.codebook, on.codebook)           # the same draw from the same seed


def test_kmeans_init_sets_the_codebook_from_the_first_batch():
    torch.manual_seed(0)
    angles = torch.arange(8) * (2 * math.pi / 8)
    centers = 5.0 * torch.stack([angles.cos(), angles.sin()], 1)                # 8 clusters on a circle
    flat = (centers[:, None, :] + 0.1 * torch.randn(8, 25, 2)).reshape(-1, 2)   # 25 encodings each
    z = flat.t().reshape(1, 2, 10, 20)
    vq = VectorQuantizer(8, 2, kmeans_init=True)
    assert not bool(vq.initialized)
    vq.eval()
    vq(z)
    assert not bool(vq.initialized)                           # only training initialises
    vq.train()
    vq(z)
    assert bool(vq.initialized)
    distances = torch.cdist(vq.codebook, centers)             # (codes, centers)
    assert sorted(distances.argmin(1).tolist()) == list(range(8))  # one code per cluster ...
    assert distances.min(1).values.max() < 0.1                # ... at its mean
    assert torch.allclose(vq.cluster_size, torch.full((8,), 25.0), atol=0.5)


def test_the_loss_weights_beta_on_the_commitment_term_only():
    torch.manual_seed(0)
    z = torch.randn(2, 4, 3, 3)
    for ema in (True, False):
        vq = VectorQuantizer(8, 4, beta=0.25, ema=ema).eval()
        q, _, loss = vq(z)
        mse = float(((q - z) ** 2).mean())
        assert float(loss.detach()) == pytest.approx((0.25 if ema else 1.25) * mse, rel=1e-5)


@pytest.mark.parametrize("ema", [True, False])
def test_cosine_mode_gives_unit_norm_codes(ema):
    torch.manual_seed(0)
    vq = VectorQuantizer(8, 4, cosine=True, ema=ema, kmeans_init=True, dead_code_threshold=1.0)
    z = 3.0 * torch.randn(2, 4, 5, 5)
    vq.train()
    for _ in range(3):
        q, _, _ = vq(z)
    assert torch.allclose(vq.codes().norm(dim=1), torch.ones(8), atol=1e-5)
    assert torch.allclose(q.norm(dim=1), torch.ones(2, 5, 5), atol=1e-5)
    if ema:
        assert torch.allclose(vq.codebook.norm(dim=1), torch.ones(8), atol=1e-5)
    vq.eval()                                                 # the commitment is to the normalised encodings
    q, _, loss = vq(z)
    expected = ((q - torch.nn.functional.normalize(z, dim=1)) ** 2).mean() * (0.25 if ema else 1.25)
    assert float(loss.detach()) == pytest.approx(float(expected), rel=1e-5)


def test_low_dimensional_codes_project_in_and_out():
    vq = VectorQuantizer(8, 6, code_dim=2)
    q, indices, _ = vq(torch.randn(2, 6, 3, 3))
    assert vq.codebook.shape == (8, 2) and q.shape == (2, 6, 3, 3) and indices.shape == (2, 3, 3)


def test_codebook_stats_of_known_indices():
    assert codebook_stats(torch.tensor([0, 1, 2, 3]), 4) == {"usage": 1.0, "perplexity": pytest.approx(4.0)}
    assert codebook_stats(torch.tensor([[2, 2], [2, 2]]), 8) == {"usage": 1 / 8, "perplexity": pytest.approx(1.0)}
    m = codebook_stats(torch.tensor([0, 0, 0, 5]), 8)
    assert m["usage"] == 2 / 8
    assert m["perplexity"] == pytest.approx(math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25))))


def test_state_dict_round_trip_reproduces_indices_and_training():
    options = dict(kmeans_init=True, dead_code_threshold=1.0, code_dim=3)
    torch.manual_seed(0)
    vq = VectorQuantizer(16, 4, **options)
    vq.train()
    for _ in range(3):
        vq(torch.randn(2, 4, 4, 4))
    state = {k: v.clone() for k, v in vq.state_dict().items()}
    assert {"codebook", "embed_sum", "cluster_size", "initialized"} <= set(state)
    torch.manual_seed(5)                                      # other weights, not k-means-initialised yet
    loaded = VectorQuantizer(16, 4, **options)
    loaded.load_state_dict(state)
    z = torch.randn(3, 4, 4, 4)
    vq.eval(), loaded.eval()
    assert torch.equal(vq(z)[1], loaded(z)[1])
    vq.train(), loaded.train()                                # resuming: the next training step is the same too
    for m in (vq, loaded):
        torch.manual_seed(7)
        m(z)
    for k, v in vq.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k


# ----------------------------------------------------------------------------------------------------------------
# the family

def tiny(source, *overrides):
    cfg = build_run_config("vqvae", preset="tiny", overrides=list(overrides))
    cfg.data.source = str(source)
    return cfg, load_data(cfg)


@torch.no_grad()
def recon_mse(model, x):
    return float(((model.reconstruct(x)[0] - x) ** 2).mean())


def test_training_lowers_the_reconstruction_error_and_load_reproduces_encode_decode(images, tmp_path):
    cfg, data = tiny(images)
    trainer = Trainer(cfg, data, tmp_path / "run", progress=False)
    x = data.train_batch(seed=9, step=0, micro=0, batch_size=16)["x"]
    before = recon_mse(trainer.model, x)
    trainer.fit()
    assert recon_mse(trainer.model, x) < 0.7 * before
    assert (tmp_path / "run" / "samples" / "step_00000020.png").is_file()      # the preview: images | recon

    pipe = tetragen.load(tmp_path / "run")
    assert pipe.capabilities == {"reconstruct", "tokenize"} and pipe.config.family == "vqvae"
    test_images = data.test.images
    tokens = pipe.encode(test_images)
    assert tokens.dtype == np.int64 and tokens.shape == (len(test_images), 7, 7)
    assert tokens.min() >= 0 and tokens.max() < cfg.model.codebook_size
    with torch.no_grad():
        x_test = data.to_model(test_images)
        assert np.array_equal(tokens, trainer.model.encode(x_test).numpy())
        assert torch.equal(loaded := pipe.model.decode(torch.from_numpy(tokens)), trainer.model.decode(
            torch.from_numpy(tokens)))
    assert loaded.shape == x_test.shape
    decoded = pipe.decode(tokens)
    assert decoded.dtype == np.uint8 and decoded.shape == test_images.shape
    assert np.array_equal(decoded, pipe.reconstruct(test_images))
    assert np.array_equal(decoded, tetragen.load(tmp_path / "run").decode(tokens))


def test_evaluate_reports_reconstruction_error_and_code_use(images, tmp_path):
    cfg, data = tiny(images, "train.max_steps=4")
    trainer = Trainer(cfg, data, tmp_path / "run", progress=False)
    trainer.fit()
    m = get_family("vqvae").evaluate(trainer.model.eval(), data, cfg, torch.device("cpu"))
    assert 0 < m["recon_mse"] < 1
    assert 0 < m["codebook_usage"] <= 1 and m["codebook_usage"] * cfg.model.codebook_size == round(
        m["codebook_usage"] * cfg.model.codebook_size)
    assert 1 <= m["codebook_perplexity"] <= cfg.model.codebook_size

    pipe = tetragen.load(tmp_path / "run")
    metrics, lines = pipe.evaluate(data, n=len(data.test.images), seed=0, iw_samples=5)
    assert metrics["recon_mse"] == pytest.approx(m["recon_mse"])
    assert metrics["recon_n"] == len(data.test.images) and math.isfinite(metrics["recon_fid"])
    text = "\n".join(lines)
    assert "recon MSE" in text and "recon FID" in text and "codebook usage" in text and "perplexity" in text


def test_interrupted_then_resumed_equals_uninterrupted(images, tmp_path, monkeypatch):
    """The codebook's statistics, k-means flag and restart draws are all state: a resumed run ends bitwise equal."""
    # a short codebook memory: codes die and are restarted (a random draw) after the interruption too
    over = ("train.max_steps=8", "train.save_every=4", "train.eval_every=4", "train.ema_decay=0.9",
            "model.ema_decay=0.5")
    cfg, data = tiny(images, *over)
    Trainer(cfg, data, tmp_path / "straight", progress=False).fit()
    cfg, data = tiny(images, *over)
    interrupted = Trainer(cfg, data, tmp_path / "resumed", progress=False)
    real_step = interrupted._train_step

    def dies_at_step_6():
        if interrupted.step == 5:
            raise KeyboardInterrupt
        return real_step()
    monkeypatch.setattr(interrupted, "_train_step", dies_at_step_6)
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit()
    cfg, data = tiny(images, *over)
    resumed = Trainer(cfg, data, tmp_path / "resumed", resume=True, progress=False)
    assert resumed.step == 4
    resumed.fit()
    for name in ("model.safetensors", "ema.safetensors"):
        a = ck.read_tensors(tmp_path / "straight" / name)
        b = ck.read_tensors(tmp_path / "resumed" / name)
        assert a.keys() == b.keys() and "quantizer.initialized" in a
        for k in a:
            assert torch.equal(a[k], b[k]), f"{name}:{k}"


def test_pipeline_refuses_bad_tokens_images_and_labels(images, tmp_path):
    cfg, data = tiny(images, "train.max_steps=1")
    Trainer(cfg, data, tmp_path / "run", progress=False).fit()
    pipe = tetragen.load(tmp_path / "run")
    with pytest.raises(UserError, match="codes 0 to 15"):
        pipe.decode(np.full((1, 7, 7), 16))
    with pytest.raises(UserError, match=r"\(N, 7, 7\)"):
        pipe.decode(np.zeros((1, 6, 6), dtype=np.int64))
    with pytest.raises(UserError, match="uint8"):
        pipe.encode(np.zeros((1, 28, 28, 1), dtype=np.float32))
    with pytest.raises(UserError, match="labels"):
        pipe.reconstruct(data.test.images, labels=[0, 1, 2])


@pytest.mark.parametrize("overrides, needle", [
    (["model.downsample=3"], "model.downsample (3) must be a power of 2"),
    (["model.downsample=8"], "use model.downsample=4"),  # 28 is not divisible by 8
    (["model.image_size=32", "model.downsample=16"], None),
])
def test_config_checks_downsample_with_one_line_errors(overrides, needle):
    cfg = build_run_config("vqvae", preset="tiny", overrides=overrides)
    if needle is None:
        cfg.model.validate()
        assert get_family("vqvae").build(cfg.model).latent_shape == (2, 2)
        return
    with pytest.raises(UserError, match=needle.replace("(", r"\(").replace(")", r"\)")) as e:
        cfg.model.validate()
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("value, ok", [("1.0", False), ("0", False), ("0.999", True)])
def test_ema_decay_is_below_one_and_above_zero(value, ok):
    # at 1 the codebook would never move
    if ok:
        assert build_run_config("vqvae", preset="tiny", overrides=[f"model.ema_decay={value}"]).model.ema_decay == 0.999
        return
    with pytest.raises(UserError, match=r"model.ema_decay.*allowed: > 0.0 and < 1.0"):
        build_run_config("vqvae", preset="tiny", overrides=[f"model.ema_decay={value}"])


def test_presets_validate():
    for name in get_family("vqvae").presets:
        cfg = build_run_config("vqvae", preset=name)
        cfg.model.validate()
    fmnist = build_run_config("vqvae", preset="fmnist").model
    assert (fmnist.image_size // fmnist.downsample, fmnist.codebook_size) == (7, 512)


def test_cli_trains_evaluates_and_reconstructs_a_vqvae_run(images, tmp_path):
    """Through the real entry point: train, `tetragen eval --json`, `reconstruct`; `sample` refuses in one line."""
    import json

    from .conftest import one_line_error, run_cli
    run = tmp_path / "run"
    r = run_cli("train", "vqvae", "--data", str(images), "--out", str(run), "--preset", "tiny", "train.max_steps=4")
    assert r.returncode == 0, r.stderr
    r = run_cli("eval", str(run), "--n", "3", "--json")
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout)
    assert m["recon_n"] == 3 and 0 < m["codebook_usage"] <= 1 and m["ref_blur_fid"] >= 0
    r = run_cli("reconstruct", str(run), "--n", "3", "--out", str(tmp_path / "pairs.png"))
    assert r.returncode == 0 and (tmp_path / "pairs.png").is_file(), r.stderr
    one_line_error(run_cli("sample", str(run), "--n", "2", "--out", str(tmp_path / "s.png")), "does not draw samples")
