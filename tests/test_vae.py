"""VAE and cVAE: the likelihood bounds, the KL schedule (warm-up, free bits), reconstructions, and the CLI's
answers to bad input. The family contract itself is in test_families.py."""
import math

import pytest
import torch

import tetragen
from tetragen.api import load_data, train
from tetragen.config import build_run_config
from tetragen.errors import UserError
from tetragen.eval.likelihood import MAX_IW_SAMPLES, check_iw_samples
from tetragen.registry import get_family

from .conftest import run_cli


def _train(family, images, out, *overrides):
    train(family, str(images), out, preset="tiny", overrides=list(overrides), progress=False)
    return out


def _model_and_phase(family, images, *overrides):
    cfg = build_run_config(family, preset="tiny", overrides=list(overrides))
    cfg.data.source = str(images)
    data = load_data(cfg)
    torch.manual_seed(0)
    model = get_family(family).build(cfg.model)
    (phase,) = get_family(family).objective(model, cfg)
    return model, phase, data.train_batch(seed=0, step=0, micro=0, batch_size=8)


@pytest.mark.parametrize("family", ["vae", "cvae"])
def test_importance_weighted_bound_is_tighter_than_the_elbo(family, images, tmp_path):
    pipe = tetragen.load(_train(family, images, tmp_path / "run"))
    data = load_data(pipe.config)
    m, lines = pipe.likelihood(data, iw_samples=20)
    assert math.isfinite(m["nll_iw"]) and m["nll_iw"] <= m["neg_elbo"]  # log-mean-exp >= mean (Jensen)
    assert m["nll_iw"] < m["neg_elbo"]                                 # strictly, unless the posterior is exact
    one, _ = pipe.likelihood(data, iw_samples=1)                       # K = 1: the bound is the ELBO
    assert one["nll_iw"] == pytest.approx(one["neg_elbo"], rel=1e-6)
    assert any("Bernoulli" in line for line in lines)
    assert 0 <= m["active_units"] <= pipe.config.model.latent_dim


def test_kl_warmup_raises_the_kl_weight_from_zero_to_beta(images):
    model, phase, batch = _model_and_phase("vae", images, "model.kl_warmup_steps=4", "model.beta=2.0")
    weights = []
    for _ in range(6):
        loss, metrics = phase.loss(model, batch)
        weights.append(float(metrics["kl_weight"]))
        if weights[-1] == 0.0:  # at the start the loss is the reconstruction term alone
            assert float(loss.detach()) == pytest.approx(float(metrics["recon"]))
    assert weights == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0, 2.0])
    assert int(model.trained_batches) == 6  # saved with the weights: a resumed run continues the warm-up


def test_free_bits_floor_each_dimensions_kl(images):
    model, phase, batch = _model_and_phase("vae", images, "model.free_bits=50.0")
    torch.manual_seed(1)
    loss, metrics = phase.loss(model, batch)
    latent = model.latent_dim
    assert float(metrics["kl"]) < latent * 50.0                        # an untrained encoder: KL below the floor
    assert float(loss.detach()) == pytest.approx(float(metrics["recon"]) + latent * 50.0, rel=1e-5)
    # under the floor the KL term gives no gradient: the same gradients as the reconstruction term alone
    loss.backward()
    with_floor = [p.grad.clone() for p in model.encoder.parameters()]
    model.zero_grad()
    torch.manual_seed(1)
    model(batch, kl_weight=0.0)[0].backward()
    for a, b in zip(with_floor, (p.grad for p in model.encoder.parameters())):
        assert torch.allclose(a, b, atol=1e-6)
    plain, phase0, _ = _model_and_phase("vae", images)                 # free bits off: recon + KL
    loss0, metrics0 = phase0.loss(plain, batch)
    assert float(loss0.detach()) == pytest.approx(float(metrics0["recon"]) + float(metrics0["kl"]), rel=1e-5)


def test_iw_samples_are_capped():
    assert check_iw_samples(MAX_IW_SAMPLES + 1) == MAX_IW_SAMPLES
    with pytest.raises(UserError):
        check_iw_samples(0)


def test_reconstruct_writes_pairs_side_by_side(images, tmp_path):
    from PIL import Image
    run = _train("cvae", images, tmp_path / "run")
    out = tmp_path / "grid.png"
    r = run_cli("reconstruct", str(run), "--n", "2", "--out", str(out))
    assert r.returncode == 0, r.stderr
    # 2 test images -> 2 pairs in a 4-column row: (4 * (28 + 2) + 2) x (1 * (28 + 2) + 2)
    assert Image.open(out).size == (122, 32)


def test_eval_reports_elbo_and_iw_bound(images, tmp_path):
    import json
    run = _train("vae", images, tmp_path / "run")
    r = run_cli("eval", str(run), "--n", "4", "--iw-samples", "10", "--json")
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout)
    assert m["nll_iw"] <= m["neg_elbo"] and m["iw_samples"] == 10 and "fid" in m


def _one_line_error(r):
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    return r.stderr


def test_bad_input_is_one_line(images, tmp_path):
    err = _one_line_error(run_cli("train", "vae", "--data", str(images), "--out", str(tmp_path / "a"),
                                  "--preset", "tiny", "model.latent_dim=0"))
    assert "model.latent_dim" in err
    run = _train("cvae", images, tmp_path / "run")
    err = _one_line_error(run_cli("sample", str(run), "--n", "2", "--class", "Sneaker", "--out",
                                  str(tmp_path / "s.png")))
    assert "Sneaker" in err and "disc" in err
    err = _one_line_error(run_cli("eval", str(run), "--n", "4", "--iw-samples", "0"))
    assert "--iw-samples" in err
    err = _one_line_error(run_cli("reconstruct", str(run), "--n", "0", "--out", str(tmp_path / "r.png")))
    assert "--n" in err
