"""VAE and cVAE: the likelihood bounds, the KL schedule (warm-up, free bits), reconstructions, semi-supervised M2,
walks between test images' codes, SIGKILL + resume, and the CLI's answers to bad input. The family contract itself
is in test_families.py."""
import math
import os
import shutil
import sys

import numpy as np
import pytest
import torch

import tetragen
from tetragen.api import load_data, train
from tetragen.config import build_run_config
from tetragen.data.images import ImageData, labelled_subset
from tetragen.errors import UserError
from tetragen.eval.likelihood import MAX_IW_SAMPLES, check_iw_samples
from tetragen.registry import get_family

from .conftest import ONE_THREAD_ENV, in_process, kill_after_checkpoint, make_image_folder, run_cli
from .test_bad_input import assert_user_error, snapshot


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


# ----------------------------------------------------------------------------------------------------------------
# shared runs for the tests below: a finished tiny vae, cvae and semi-supervised (M2) cvae on three classes of shapes

@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("vaes")
    images = make_image_folder(base / "images")
    env = {"TETRAGEN_CACHE": str(tmp_path_factory.getbasetemp() / "cache"), "TETRAGEN_NO_PROGRESS": "1"}
    out = {"images": images}
    for name, family, extra in (("vae", "vae", []), ("cvae", "cvae", []),
                                ("m2", "cvae", ["data.label_fraction=0.5"])):
        r = run_cli("train", family, "--data", str(images), "--out", str(base / name), "--preset", "tiny",
                    "train.max_steps=6", "train.eval_every=0", "train.save_every=0", *extra, env=env)
        assert r.returncode == 0, r.stderr
        out[name] = base / name
    return out


# ----------------------------------------------------------------------------------------------------------------
# semi-supervised M2: which labels are kept, the objective, the classifier's accuracy

def test_label_fraction_keeps_a_seeded_stratified_subset():
    labels = np.repeat(np.arange(4), [100, 50, 20, 3])
    keep = labelled_subset(labels, 0.1, seed=7)
    assert [int((labels[keep] == c).sum()) for c in range(4)] == [10, 5, 2, 1]  # at least one of every class
    assert np.array_equal(keep, labelled_subset(labels, 0.1, seed=7))          # a function of the seed
    assert not np.array_equal(keep, labelled_subset(labels, 0.1, seed=8))
    assert len(labelled_subset(labels, 1.0, seed=7)) == len(labels)


def test_semi_supervised_batches_hide_the_unlabelled_labels(images):
    cfg = build_run_config("cvae", preset="tiny", overrides=["data.label_fraction=0.3"])
    cfg.data.source = str(images)
    data = load_data(cfg)
    assert cfg.model.classifier and len(data.labelled) + len(data.unlabelled) == len(data.train.labels)
    batch = data.train_batch(seed=1, step=3, micro=0, batch_size=16)
    assert set(batch) == {"x", "y", "index", "x_u"} and batch["x"].shape == batch["x_u"].shape == (16, 1, 28, 28)
    assert data.count(batch) == 32
    assert set(batch["index"].tolist()) <= set(data.labelled.tolist())     # which labelled images "x" holds
    labelled = {data.train.images[i].tobytes(): data.train.labels[i] for i in data.labelled}
    for x, y in zip(ImageData.to_uint8(batch["x"]), batch["y"]):               # "x" only from the labelled images
        assert labelled[x.tobytes()] == y
    again = data.train_batch(seed=1, step=3, micro=0, batch_size=16)           # a pure function of (seed, step)
    assert all(torch.equal(batch[k], again[k]) for k in batch)
    plain = build_run_config("cvae", preset="tiny")
    plain.data.source = str(images)
    assert set(load_data(plain).train_batch(seed=1, step=3, micro=0, batch_size=4)) == {"x", "y", "index"}


def test_m2_loss_is_the_labelled_and_unlabelled_bounds(images, monkeypatch):
    """With z at the posterior mean (no noise) and batch norm on its running statistics, the M2 loss equals
    -ELBO(x, y) + w * CE on the labelled images plus sum_y q(y|x) (-ELBO(x, y)) - H(q) on the unlabelled ones."""
    model, phase, batch = _model_and_phase("cvae", images, "data.label_fraction=0.5")
    assert model.classifier is not None
    model.eval()
    monkeypatch.setattr(torch, "randn_like", torch.zeros_like)
    w = 0.7
    loss, logs = model(batch, kl_weight=1.0, class_weight=w)

    def neg_elbo(x, y):  # (B,)
        mu, logvar = model.encode(x, y)
        kl = 0.5 * (mu ** 2 + logvar.exp() - 1.0 - logvar)
        return -model.log_likelihood(model.decode_logits(mu, y), x) + kl.sum(1)
    x, y, x_u = batch["x"], batch["y"], batch["x_u"]
    with torch.no_grad():
        labelled = neg_elbo(x, y).mean() + w * torch.nn.functional.cross_entropy(model.classify(x), y)
        q = torch.softmax(model.classify(x_u), 1)                             # (m, K)
        per_class = torch.stack([neg_elbo(x_u, torch.full((len(x_u),), c)) for c in range(model.num_classes)], 1)
        unlabelled = ((q * per_class).sum(1) + (q * q.log()).sum(1)).mean()
    assert float(loss.detach()) == pytest.approx(float(labelled + unlabelled), rel=1e-5)
    assert float(logs["neg_elbo_unlabelled"]) == pytest.approx(float(unlabelled), rel=1e-5)
    loss.backward()                                                          # the classifier learns from both
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.classifier.parameters())


def test_m2_reports_classifier_accuracy(runs, tmp_path):
    import json
    recs = [json.loads(ln) for ln in (runs["m2"] / "metrics.jsonl").read_text().splitlines()]
    final = [r for r in recs if r["split"] == "val"][-1]
    pipe = tetragen.load(runs["m2"])
    data = tetragen.api.load_data(pipe.config)
    recomputed = float(np.mean(pipe.classify(data.test.images) == data.test.labels))
    assert final["classifier_acc"] == pytest.approx(recomputed, abs=1e-6)  # the final evaluation, the saved weights
    assert any("neg_elbo_unlabelled" in r for r in recs if r["split"] == "train")
    r = run_cli("eval", str(runs["m2"]), "--n", "4", "--iw-samples", "3")
    assert r.returncode == 0, r.stderr
    assert "classifier q(y|x): test accuracy" in r.stdout and "50.0% of the training labels" in r.stdout
    pipe = tetragen.load(runs["m2"])
    data = load_data(pipe.config)
    predicted = pipe.classify(data.test.images)
    assert predicted.shape == (3,) and final["classifier_acc"] == pytest.approx((predicted == data.test.labels).mean())


def test_full_labels_keep_the_cvae_unchanged(runs, images, tmp_path):
    """label_fraction 1.0 (the default) is the plain cvae: the class enters the encoder as input planes and there is
    no classifier, so runs saved before semi-supervised training existed load as they did."""
    import json
    weights = tetragen.load(runs["cvae"]).model.state_dict()
    assert not any(k.startswith("classifier") for k in weights)
    assert weights["encoder.blocks.0.conv.weight"].shape[1] == 1 + 3         # grey + one plane per class
    cfg = json.loads((runs["cvae"] / "config.json").read_text())
    for key in ("classifier", "classifier_alpha"):                          # a config written before these keys
        del cfg["model"][key]
    del cfg["data"]["label_fraction"]
    old = tmp_path / "old"
    shutil.copytree(runs["cvae"], old)
    (old / "config.json").write_text(json.dumps(cfg))
    assert np.array_equal(tetragen.load(old).sample(4, seed=0), tetragen.load(runs["cvae"]).sample(4, seed=0))
    # asked for at 1.0, the classifier learns from every label beside the cvae
    metrics = train("cvae", str(images), tmp_path / "cls", preset="tiny", progress=False,
                    overrides=["model.classifier=true", "train.max_steps=2", "train.eval_every=0"])
    assert "classifier_acc" in metrics


# ----------------------------------------------------------------------------------------------------------------
# walks between the codes of two test images

def test_interpolate_images_walks_between_posterior_means(runs):
    pipe = tetragen.load(runs["vae"])
    data = load_data(pipe.config)
    ends = data.test.images[[0, 2]]
    walk = pipe.interpolate_images(ends, steps=5)
    assert walk.shape == (5, 28, 28, 1) and walk.dtype == np.uint8
    assert np.array_equal(walk, pipe.interpolate_images(ends, steps=5))       # no randomness
    recon = pipe.reconstruct(ends)
    assert np.abs(walk[[0, -1]].astype(int) - recon.astype(int)).max() <= 1  # the ends are the reconstructions
    assert not np.array_equal(walk[1], walk[3])
    cvae = tetragen.load(runs["cvae"])
    by_first = cvae.interpolate_images(ends, 4, labels=data.test.labels[[0, 2]])
    assert np.array_equal(by_first, cvae.interpolate_images(ends, 4, labels=data.test.labels[[0, 2]],
                                                            label=int(data.test.labels[0])))
    with pytest.raises(UserError, match="give one label per image"):
        cvae.interpolate_images(ends, 4)
    m2 = tetragen.load(runs["m2"])                                            # a classifier reads the labels itself
    assert m2.interpolate_images(ends, 4).shape == (4, 28, 28, 1)


def test_sample_interpolate_between_test_images(runs, tmp_path):
    r = run_cli("sample", str(runs["vae"]), "--interpolate", "--steps", "5", "--out", str(tmp_path / "w.npz"))
    assert r.returncode == 0, r.stderr
    assert "test images 0 and 1" in r.stderr
    pipe = tetragen.load(runs["vae"])
    data = load_data(pipe.config)
    walk = np.load(tmp_path / "w.npz")["images"]
    assert np.array_equal(walk, pipe.interpolate_images(data.test.images[[0, 1]], 5)[..., 0])
    r = run_cli("sample", str(runs["vae"]), "--interpolate", "--images", "2", "0", "--out", str(tmp_path / "v.npz"))
    assert r.returncode == 0, r.stderr
    assert np.array_equal(np.load(tmp_path / "v.npz")["images"],
                          pipe.interpolate_images(data.test.images[[2, 0]], 8)[..., 0])
    # a cvae decodes the walk in the first image's class, or in --class
    for extra, cls in (([], int(data.test.labels[1])), (["--class", "square"], 2)):
        out = tmp_path / f"c{cls}.npz"
        r = run_cli("sample", str(runs["cvae"]), "--interpolate", "--images", "1", "2", "--steps", "3",
                    "--out", str(out), *extra)
        assert r.returncode == 0, r.stderr
        assert np.load(out)["labels"].tolist() == [cls] * 3
    # --seed2 asks a VAE for the seed walk of the prior
    r = run_cli("sample", str(runs["vae"]), "--interpolate", "--seed", "3", "--seed2", "4", "--steps", "3",
                "--out", str(tmp_path / "s.npz"))
    assert r.returncode == 0, r.stderr
    assert np.array_equal(np.load(tmp_path / "s.npz")["images"], pipe.interpolate(3, 4, 3)[..., 0])


# ----------------------------------------------------------------------------------------------------------------
# bad input: one line, exit 2, nothing written or changed

@pytest.mark.parametrize("args,needles", [
    (["--interpolate", "--images", "0", "3"], ["--images 0 3", "out of range", "3 images"]),
    (["--interpolate", "--images", "-1", "0"], ["--images -1 0", "start at 0"]),
    (["--images", "0", "1"], ["--images", "--interpolate"]),
    (["--interpolate", "--images", "0", "1", "--seed2", "2"], ["--images and --seed2"]),
])
def test_bad_walk_options(runs, tmp_path, args, needles):
    before = snapshot(runs["vae"])
    r = run_cli("sample", str(runs["vae"]), "--out", str(tmp_path / "w.npz"), *args)
    assert_user_error(r, *needles)
    assert list(tmp_path.iterdir()) == [] and snapshot(runs["vae"]) == before


def test_iw_samples_bounds_through_the_cli(runs):
    r = run_cli("eval", str(runs["vae"]), "--n", "4", "--iw-samples", "-3")
    assert_user_error(r, "--iw-samples", "-3", "at least 1")
    r = run_cli("eval", str(runs["vae"]), "--n", "4", "--iw-samples", "1000000", "--json")
    assert r.returncode == 0, r.stderr
    warnings = [ln for ln in r.stderr.splitlines() if "--iw-samples" in ln]
    assert len(warnings) == 1 and f"using {MAX_IW_SAMPLES}" in warnings[0]
    import json
    assert json.loads(r.stdout)["iw_samples"] == MAX_IW_SAMPLES


@pytest.mark.parametrize("value", ["0", "1.5", "-0.2", "half"])
def test_label_fraction_out_of_range(runs, tmp_path, value):
    r = run_cli("train", "cvae", "--data", str(runs["images"]), "--out", str(tmp_path / "new"), "--preset", "tiny",
                f"data.label_fraction={value}")
    assert_user_error(r, "data.label_fraction")
    assert not (tmp_path / "new").exists()


def test_label_fraction_needs_a_semi_supervised_family_and_labels(runs, tmp_path):
    for family, run in (("vae", "vae"), ("dcgan", None)):
        out = runs[run] if run else tmp_path / "new"
        before = snapshot(out) if run else None
        r = run_cli("train", family, "--data", str(runs["images"]), "--out", str(out), "--overwrite", "--preset",
                    "tiny", "data.label_fraction=0.5")
        assert_user_error(r, "data.label_fraction=0.5", f"the {family} family", "cvae")
        assert (snapshot(out) == before) if run else not out.exists()
    unlabelled = tmp_path / "flat"                                            # no class folders: one class
    unlabelled.mkdir()
    for p in sorted((runs["images"] / "disc").iterdir()):
        shutil.copy(p, unlabelled / p.name)
    r = run_cli("train", "cvae", "--data", str(unlabelled), "--out", str(tmp_path / "m2"), "--preset", "tiny",
                "data.label_fraction=0.5")
    assert_user_error(r, "data.label_fraction=0.5", "no class labels", "sub-folders")
    assert not (tmp_path / "m2").exists()


# ----------------------------------------------------------------------------------------------------------------
# SIGKILL in the middle of training, then --resume: the same bytes as a run never interrupted

KILLABLE = ["--preset", "tiny", "model.kl_warmup_steps=30", "model.free_bits=0.1", "train.batch_size=16",
            "train.max_steps=80", "train.save_every=10", "train.eval_every=40", "train.ema_decay=0.9",
            "train.seed=7"]


@pytest.mark.parametrize("family,extra", [
    ("vae", []),
    pytest.param("cvae", ["data.label_fraction=0.5"], marks=pytest.mark.slow),  # M2: labelled + unlabelled batches
], ids=["vae", "m2"])
def test_sigkill_then_resume_is_bitwise_identical_to_uninterrupted(images, tmp_path, family, extra):
    def cmd(out, *more):
        return [sys.executable, "-m", "tetragen", "train", family, "--data", str(images), "--out", str(out),
                *KILLABLE, *extra, *more]
    env = {**os.environ, **ONE_THREAD_ENV}
    straight = in_process(cmd(tmp_path / "a"))
    assert straight.returncode == 0, straight.stderr

    kill_after_checkpoint(cmd(tmp_path / "b"), tmp_path / "b", 20, 80, env=env)

    resumed = in_process(cmd(tmp_path / "b", "--resume"))
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr
    for name in ("model.safetensors", "ema.safetensors", "samples/step_00000080.png"):  # eval + grid at the end
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
