"""GAN families (dcgan, cgan): building blocks, `tetragen sample` through the real CLI, bad input, SIGKILL + resume,
and two-process DDP. The family contract itself (shapes, save/load, resume) is in test_families.py."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import tetragen
from tetragen.config import build_run_config
from tetragen.families.dcgan.model import SHIFT_GAIN, _Move
from tetragen.nn.augment import diff_augment
from tetragen.nn.gan_losses import discriminator_loss, generator_loss
from tetragen.registry import get_family
from tetragen.train import checkpoint as ck

from .conftest import ONE_THREAD_ENV, in_process, kill_after_checkpoint, make_image_folder, run_cli
from .test_bad_input import assert_user_error, snapshot

TINY = ["--preset", "tiny", "train.max_steps=2", "train.save_every=0", "train.eval_every=0"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A finished tiny dcgan run and cgan run on three classes of shapes (disc, square, bar)."""
    base = tmp_path_factory.mktemp("gans")
    images = make_image_folder(base / "images")
    env = {"TETRAGEN_CACHE": str(tmp_path_factory.getbasetemp() / "cache"), "TETRAGEN_NO_PROGRESS": "1"}
    out = {}
    for family in ("dcgan", "cgan"):
        r = run_cli("train", family, "--data", str(images), "--out", str(base / family), *TINY, env=env)
        assert r.returncode == 0, r.stderr
        done = r.stderr.strip().splitlines()[-1]  # the last line sums the run up with its image metrics
        assert done.startswith(f"done: {base / family}") and " fid " in done and " kid " in done, done
        out[family] = base / family
    return out


# ----------------------------------------------------------------------------------------------------------------
# building blocks

@pytest.mark.parametrize("size,channels", [(28, 1), (32, 3), (64, 3)])
@pytest.mark.parametrize("family", ["dcgan", "cgan"])
def test_generator_and_discriminator_shapes(family, size, channels):
    over = [f"model.image_size={size}", f"model.channels={channels}", "model.spectral_norm=true"]
    cfg = build_run_config(family, preset="tiny", overrides=over + (["model.num_classes=4"] if family == "cgan" else []))
    model = get_family(family).build(cfg.model)
    labels = torch.tensor([0, 3]) if family == "cgan" else None
    x = model.generate(torch.randn(2, model.latent_dim), labels)
    assert x.shape == (2, channels, size, size)
    logits, classes = model.discriminator(x, labels)
    assert logits.shape == (2,) and classes is None                   # no class head unless model.class_loss


def test_a_class_head_learns_the_real_classes_and_teaches_the_generator_the_asked_one():
    cfg = build_run_config("cgan", preset="tiny", overrides=["model.num_classes=3", "model.class_loss=0.5"])
    model = get_family("cgan").build(cfg.model)
    batch = {"x": torch.rand(4, 1, 28, 28) * 2 - 1, "y": torch.tensor([0, 1, 2, 1])}
    torch.manual_seed(0)
    loss, logs = model(batch, phase="disc")
    torch.manual_seed(0)
    fake = model.generate(torch.randn(4, model.latent_dim), batch["y"]).detach()
    logits, classes = model.discriminator(torch.cat([batch["x"], fake]), torch.cat([batch["y"], batch["y"]]))
    told = torch.nn.functional.cross_entropy(classes[:4], batch["y"])   # the real items' classes, not the fakes'
    assert classes.shape == (8, 3) and logs["d_class"].item() == pytest.approx(told.item(), rel=1e-5)
    assert loss.item() == pytest.approx((discriminator_loss(*logits.chunk(2), "nonsaturating") + 0.5 * told).item(),
                                        rel=1e-5)
    # with D's own logit flat (no head, no projection), the generator still learns: from the class head alone
    with torch.no_grad():
        model.discriminator.head.weight.zero_()
        model.discriminator.embed.weight.zero_()
    for weight, learns in ((0.5, True), (0.0, False)):
        model.config.class_loss = weight
        model.zero_grad()
        model(batch, phase="gen")[0].backward()
        reached = sum(p.grad.abs().sum() for p in model.generator.parameters() if p.grad is not None)
        assert (reached > 0) == learns, weight


def test_conditional_generator_depends_on_the_label():
    cfg = build_run_config("cgan", preset="tiny", overrides=["model.num_classes=3"])
    model = get_family("cgan").build(cfg.model).eval()
    with torch.no_grad():  # make the per-class scales differ, as training does
        for m in model.generator.modules():
            if hasattr(m, "scale") and isinstance(m.scale, torch.nn.Embedding):
                m.scale.weight.normal_(1.0, 0.5)
        z = torch.randn(1, model.latent_dim).repeat(2, 1)
        a, b = model.generate(z, torch.tensor([0, 1]))
    assert not torch.equal(a, b)


def test_diffaugment_keeps_shape_and_gradient_and_is_off_when_empty():
    x = torch.rand(4, 3, 16, 16, requires_grad=True)
    assert diff_augment(x, "") is x
    torch.manual_seed(0)
    y = diff_augment(x, "color,translation,cutout")
    assert y.shape == x.shape and not torch.equal(y, x)
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    torch.manual_seed(0)
    assert torch.equal(diff_augment(x, "color,translation,cutout"), y)  # follows the global seed
    zeroed = (diff_augment(torch.ones(64, 1, 16, 16), "cutout") == 0).flatten(1).sum(1)
    # an 8x8 square (half the side) in each image, clipped where it overlaps the border
    assert (zeroed > 0).all() and (zeroed <= 64).all() and (zeroed == 64).any()


def test_losses_on_known_logits():
    confident = torch.tensor([10.0, 10.0]), torch.tensor([-10.0, -10.0])
    assert discriminator_loss(*confident, "nonsaturating") < 1e-3
    assert discriminator_loss(*confident, "hinge") == 0
    assert discriminator_loss(torch.zeros(2), torch.zeros(2), "nonsaturating").item() == pytest.approx(2 * np.log(2))
    assert discriminator_loss(torch.zeros(2), torch.zeros(2), "hinge").item() == 2.0
    assert generator_loss(torch.tensor([-10.0]), "nonsaturating") > 9
    assert generator_loss(torch.tensor([3.0]), "hinge").item() == -3.0


def test_moving_layers_draw_once_and_move_each_layer_by_whole_pixels_exactly():
    cfg = build_run_config("cgan", preset="tiny", overrides=["model.image_size=16", "model.channels=6",
                                                            "model.layers=2", "model.num_classes=3"])
    model = get_family("cgan").build(cfg.model).eval()
    g = model.generator
    z, labels = torch.randn(2, model.latent_dim), torch.tensor([0, 2])
    with torch.no_grad():
        pictures = (g.draw(z, labels) + 1) / 2                                   # (2, 2 layers, 16, 16) of light
        still = (model.generate(z, labels) + 1) / 2                              # the shifts start at 0
        screen = 1 - (1 - pictures[:, 0]) * (1 - pictures[:, 1])
        assert still.shape == (2, 6, 16, 16)
        assert torch.allclose(still, screen.unsqueeze(1).expand(-1, 6, -1, -1), atol=1e-6)
        # layer 0 one pixel further right in each frame, layer 1 one pixel further up; a shift is rounded to pixels
        shift = torch.zeros(2, 6, 2)
        shift[0, :, 1] = torch.arange(6) + 0.2
        shift[1, :, 0] = -torch.arange(6) - 0.3
        g.to_shift.bias.copy_(torch.atanh(shift / 8).flatten() / SHIFT_GAIN)   # within half the side, 8 pixels
        moved = (model.generate(z, labels) + 1) / 2
    for t in range(6):
        right = torch.zeros_like(pictures[:, 0])
        right[..., t:] = pictures[:, 0, :, :16 - t]
        up = torch.zeros_like(pictures[:, 1])
        up[..., :16 - t, :] = pictures[:, 1, t:, :]
        assert torch.allclose(moved[:, t], 1 - (1 - right) * (1 - up), atol=1e-5)


def test_a_moving_layers_shift_learns_by_gradient_to_cover_where_the_picture_should_be():
    picture = torch.zeros(1, 1, 16, 16)
    picture[..., 5:9, 6:10] = 1                                          # a bright square
    target = torch.zeros(1, 1, 3, 16, 16)
    for t, (dy, dx) in enumerate([(0, 0), (2, -3), (-1, 4)]):
        target[0, 0, t, 5 + dy:9 + dy, 6 + dx:10 + dx] = 1
    shift = torch.zeros(1, 1, 3, 2, requires_grad=True)
    opt = torch.optim.SGD([shift], lr=0.05)
    for _ in range(200):
        opt.zero_grad()
        (_Move.apply(picture, shift) - target).square().sum().backward()
        opt.step()
    assert torch.equal(shift.detach().round(), torch.tensor([[[[0.0, 0.0], [2.0, -3.0], [-1.0, 4.0]]]]))
    assert torch.equal(_Move.apply(picture, shift), target)


@pytest.mark.parametrize("options", [
    ["model.loss=hinge", "model.spectral_norm=true", "model.diffaugment=translation,cutout,color"],
    ["model.upsample=nearest", "model.d_lr_scale=4", "train.precision=bf16"],
    ["model.class_loss=1", "model.spectral_norm=true"],
])
def test_options_train_with_finite_losses(options, images, tmp_path):
    r = run_cli("train", "cgan", "--data", str(images), "--out", str(tmp_path / "run"), *TINY, "train.log_every=1",
                *options)
    assert r.returncode == 0, r.stderr
    recs = [json.loads(ln) for ln in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train = [rec for rec in recs if rec["split"] == "train"]
    assert len(train) == 2 and all(np.isfinite(rec["loss_disc"]) and np.isfinite(rec["loss_gen"]) for rec in train)
    assert all(("d_class_disc" in rec and "g_class_gen" in rec) == ("model.class_loss=1" in options) for rec in train)


# ----------------------------------------------------------------------------------------------------------------
# the pipeline and `tetragen sample`

def test_load_returns_an_image_pipeline(runs):
    pipe = tetragen.load(runs["cgan"])
    assert pipe.conditional and pipe.classes == ["bar", "disc", "square"] and pipe.config.family == "cgan"
    by_name = pipe.sample(4, seed=1, labels="square")
    assert by_name.shape == (4, 28, 28, 1) and by_name.dtype == np.uint8
    assert np.array_equal(by_name, pipe.sample(4, seed=1, labels=2))
    assert not np.array_equal(by_name, pipe.sample(4, seed=1, labels=0))
    assert not tetragen.load(runs["dcgan"]).conditional
    walk = pipe.interpolate(5, 6, steps=5, label="disc")
    assert walk.shape == (5, 28, 28, 1)
    assert np.array_equal(walk[0], pipe.sample(1, seed=5, labels=1)[0])  # the walk starts and ends at the seeds
    assert np.array_equal(walk[-1], pipe.sample(1, seed=6, labels=1)[0])


def test_sample_grid_saved_at_each_evaluation(runs):
    grid = Image.open(runs["cgan"] / "samples" / "step_00000002.png")
    # 16 preview images, one column per class (3): 6 rows of 28 pixels and 2-pixel borders
    assert grid.size == (3 * 30 + 2, 6 * 30 + 2) and grid.mode == "L"


def test_sample_npz_cycles_classes_and_is_seeded(runs, tmp_path):
    for name in ("a.npz", "b.npz", "c.npz"):
        seed = "7" if name != "c.npz" else "8"
        r = run_cli("sample", str(runs["cgan"]), "--n", "7", "--out", str(tmp_path / name), "--seed", seed)
        assert r.returncode == 0, r.stderr
    a, b, c = (np.load(tmp_path / n) for n in ("a.npz", "b.npz", "c.npz"))
    assert a["images"].shape == (7, 28, 28) and a["images"].dtype == np.uint8
    assert a["labels"].dtype == np.int64 and a["labels"].tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert np.array_equal(a["images"], b["images"])
    assert not np.array_equal(a["images"], c["images"])


def test_sample_by_class_name_and_png(runs, tmp_path):
    r = run_cli("sample", str(runs["cgan"]), "--n", "5", "--out", str(tmp_path / "s.npz"), "--class", "Square",
                "--seed", "1")
    assert r.returncode == 0, r.stderr
    assert np.load(tmp_path / "s.npz")["labels"].tolist() == [2] * 5
    r = run_cli("sample", str(runs["dcgan"]), "--n", "9", "--out", str(tmp_path / "s.png"), "--seed", "1")
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "s.png").size == (3 * 30 + 2, 3 * 30 + 2)
    r = run_cli("sample", str(runs["dcgan"]), "--n", "4", "--out", str(tmp_path / "u.npz"))
    assert r.returncode == 0, r.stderr
    assert set(np.load(tmp_path / "u.npz").files) == {"images"}  # unconditional: no labels


def test_sample_interpolate(runs, tmp_path):
    r = run_cli("sample", str(runs["dcgan"]), "--interpolate", "--seed", "3", "--steps", "6",
                "--out", str(tmp_path / "walk.npz"))
    assert r.returncode == 0, r.stderr
    walk = np.load(tmp_path / "walk.npz")["images"]
    ends = tetragen.load(runs["dcgan"])
    assert walk.shape == (6, 28, 28)
    assert np.array_equal(walk[0], ends.sample(1, seed=3)[0, ..., 0])
    assert np.array_equal(walk[-1], ends.sample(1, seed=4)[0, ..., 0])  # --seed2 defaults to seed + 1
    r = run_cli("sample", str(runs["cgan"]), "--interpolate", "--seed", "3", "--seed2", "9", "--class", "bar",
                "--out", str(tmp_path / "walk.png"))
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "walk.png").size == (8 * 30 + 2, 30 + 2)


# ----------------------------------------------------------------------------------------------------------------
# bad input: one line, exit 2, nothing written or changed

@pytest.mark.parametrize("family,args,needles", [
    ("cgan", ["--class", "hat"], ["--class 'hat'", "no such class", "0=bar"]),
    ("cgan", ["--class", "7"], ["--class 7", "out of range"]),
    ("cgan", ["--n", "0"], ["--n: 0"]),
    ("dcgan", ["--n", "-3"], ["--n: -3"]),
    ("dcgan", ["--class", "1"], ["--class", "unconditional"]),
    ("dcgan", ["--interpolate", "--steps", "1"], ["--steps: 1"]),
    ("dcgan", ["--interpolate", "--images", "0", "1"], ["--images", "no encoder", "--seed2"]),
    ("dcgan", ["--seed", "-1"], ["--seed: -1"]),
])
def test_bad_sample_options(runs, tmp_path, family, args, needles):
    before = snapshot(runs[family])
    out = tmp_path / "out.npz"
    r = run_cli("sample", str(runs[family]), "--out", str(out), *args)
    assert r.returncode == 2
    assert_user_error(r, *needles)
    assert not out.exists() and list(tmp_path.iterdir()) == []
    assert snapshot(runs[family]) == before


def test_output_in_missing_folder_or_of_unknown_type(runs, tmp_path):
    r = run_cli("sample", str(runs["dcgan"]), "--n", "2", "--out", str(tmp_path / "nope" / "x.npz"))
    assert r.returncode == 2
    assert_user_error(r, "nope", "does not exist")
    assert not (tmp_path / "nope").exists()
    r = run_cli("sample", str(runs["dcgan"]), "--n", "2", "--out", str(tmp_path / "x.jpg"))
    assert r.returncode == 2
    assert_user_error(r, "x.jpg", ".png or .npz")


def test_existing_output_is_refused_unless_overwrite(runs, tmp_path):
    out = tmp_path / "keep.npz"
    out.write_bytes(b"precious")
    r = run_cli("sample", str(runs["dcgan"]), "--n", "2", "--out", str(out))
    assert r.returncode == 2
    assert_user_error(r, "keep.npz", "already exists", "--overwrite")
    assert out.read_bytes() == b"precious"
    r = run_cli("sample", str(runs["dcgan"]), "--n", "2", "--out", str(out), "--overwrite")
    assert r.returncode == 0, r.stderr
    assert np.load(out)["images"].shape == (2, 28, 28)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.npz"]  # no temporary file left behind


def test_fewer_classes_than_the_data_has_is_refused(images, tmp_path):
    r = run_cli("train", "cgan", "--data", str(images), "--out", str(tmp_path / "run"), *TINY, "model.num_classes=2")
    assert r.returncode == 2
    assert_user_error(r, "model.num_classes=2", "3 classes")
    assert not (tmp_path / "run").exists()


def test_bad_gan_options_are_one_line_errors():
    r = run_cli("train", "dcgan", "--print-config", "model.diffaugment=translation,blur")
    assert r.returncode == 2
    assert_user_error(r, "model.diffaugment", "'blur'")
    r = run_cli("train", "cgan", "--print-config", "model.loss=wasserstein")
    assert r.returncode == 2
    assert_user_error(r, "model.loss", "nonsaturating")
    r = run_cli("train", "dcgan", "--print-config", "model.class_loss=1")
    assert r.returncode == 2
    assert_user_error(r, "model.class_loss", "without classes", "cgan")


# ----------------------------------------------------------------------------------------------------------------
# the trainer's guarantees with two optimizers, EMA, batch-norm buffers and spectral-norm buffers

KILLABLE = ["--preset", "tiny", "model.g_width=16", "model.d_width=16", "model.spectral_norm=true",
            "model.diffaugment=translation,cutout,color", "train.batch_size=32", "train.max_steps=60",
            "train.save_every=10", "train.eval_every=0", "train.ema_decay=0.9", "train.seed=7"]


def test_sigkill_then_resume_is_bitwise_identical_to_uninterrupted(images, tmp_path):
    def cmd(out, *extra):
        return [sys.executable, "-m", "tetragen", "train", "dcgan", "--data", str(images), "--out", str(out),
                *KILLABLE, *extra]
    env = {**os.environ, **ONE_THREAD_ENV}
    straight = in_process(cmd(tmp_path / "a"))
    assert straight.returncode == 0, straight.stderr

    kill_after_checkpoint(cmd(tmp_path / "b"), tmp_path / "b", 20, 60, env=env)

    resumed = in_process(cmd(tmp_path / "b", "--resume"))
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr
    for name in ("model.safetensors", "ema.safetensors", "samples/step_00000060.png"):  # eval + grid at the end
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_two_process_ddp_trains_both_phases(images, tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun is not installed beside this Python")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TETRAGEN_NO_PROGRESS": "1"}
    r = subprocess.run([str(torchrun), "--standalone", "--nproc-per-node=2", "-m", "tetragen", "train", "cgan",
                        "--data", str(images), "--out", str(tmp_path / "run"), "--preset", "tiny",
                        "train.max_steps=3", "train.eval_every=0", "train.save_every=0", "train.batch_size=4",
                        # FID off: torchmetrics' compute() gathers across ranks, but only rank 0 evaluates
                        "train.eval_samples=0"],
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    trained = ck.read_tensors(tmp_path / "run" / "model.safetensors")
    cfg = build_run_config("cgan", preset="tiny", overrides=["model.num_classes=3"])
    torch.manual_seed(cfg.train.seed)  # the initial weights, as the trainer draws them
    initial = get_family("cgan").build(cfg.model).state_dict()
    for part in ("generator.", "discriminator."):  # both phases' optimizers stepped
        assert any(not torch.equal(v, trained[k]) for k, v in initial.items() if k.startswith(part)), part
    assert tetragen.load(tmp_path / "run").sample(2, seed=0).shape == (2, 28, 28, 1)
