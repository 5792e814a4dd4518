"""`tetragen sample` with a diffusion run: --sampler / --steps / --guidance-scale chosen at sampling time, edits from
files (--init-image with --strength, --mask), and one line for each bad value (exit 2, nothing written or
overwritten); a run that cannot steer or edit is told so and which families can."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import tetragen
from tetragen.api import load_data
from tetragen.config import build_run_config
from tetragen.train.trainer import Trainer

from .conftest import make_image_folder, one_line_error, run_cli


def train(family, images, out, *overrides):
    cfg = build_run_config(family, preset="tiny", overrides=["train.eval_every=0", *overrides])
    cfg.data.source = str(images)
    Trainer(cfg, load_data(cfg), out, progress=False).fit()
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("diffusion_cli")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TETRAGEN_CACHE", str(base / "cache"))
        images = make_image_folder(base / "images")
        train("diffusion", images, base / "diffusion", "train.max_steps=4")
        train("cgan", images, base / "cgan", "train.max_steps=1", "train.eval_samples=0")
    files = base / "files"
    files.mkdir()
    Image.open(images / "disc" / "000.png").save(files / "init.png")
    Image.fromarray(np.full((32, 40, 3), (200, 30, 30), np.uint8)).save(files / "colour.png")
    hole = np.zeros((28, 28), np.uint8)
    hole[:, 14:] = 255
    Image.fromarray(hole).save(files / "mask.png")
    Image.fromarray(np.dstack([np.zeros((28, 28, 3), np.uint8), 255 - hole])).save(files / "alpha.png")
    Image.fromarray(hole // 2).save(files / "grey_mask.png")
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(files / "small_mask.png")
    (files / "text.png").write_text("not an image")
    return base


def read(path):
    return np.asarray(Image.open(path))


def test_the_sampler_steps_and_guidance_come_from_flags(runs, tmp_path):
    run = runs / "diffusion"
    r = run_cli("sample", str(run), "--n", "3", "--seed", "5", "--sampler", "heun", "--steps", "2",
                "--guidance-scale", "2.5", "--out", str(tmp_path / "a.npz"))
    assert r.returncode == 0, r.stderr
    got = np.load(tmp_path / "a.npz")["images"]
    want = tetragen.load(run).sample(3, seed=5, sampler="heun", steps=2, guidance_scale=2.5)
    assert np.array_equal(got, want[..., 0])
    other = tetragen.load(run).sample(3, seed=5, sampler="euler", steps=2, guidance_scale=2.5)
    assert not np.array_equal(got, other[..., 0])  # the flag chose the solver


def test_img2img_and_inpainting_from_files(runs, tmp_path):
    run, files = runs / "diffusion", runs / "files"
    r = run_cli("sample", str(run), "--init-image", str(files / "init.png"), "--strength", "0", "--class", "disc",
                "--out", str(tmp_path / "same.png"))
    assert r.returncode == 0, r.stderr
    assert np.array_equal(read(tmp_path / "same.png")[2:-2, 2:-2], read(files / "init.png"))  # strength 0: as given
    for mask in ("mask.png", "alpha.png"):  # white, or transparent (OpenAI's convention), where drawn anew
        r = run_cli("sample", str(run), "--init-image", str(files / "init.png"), "--mask", str(files / mask),
                    "--n", "2", "--seed", "3", "--steps", "2", "--out", str(tmp_path / f"{mask}.npz"))
        assert r.returncode == 0, r.stderr
        out = np.load(tmp_path / f"{mask}.npz")["images"]
        assert out.shape == (2, 28, 28)
        assert np.array_equal(out[:, :, :14], np.broadcast_to(read(files / "init.png")[:, :14], (2, 28, 14)))
    assert np.array_equal(np.load(tmp_path / "mask.png.npz")["images"], np.load(tmp_path / "alpha.png.npz")["images"])


def test_an_image_of_another_size_and_mode_is_converted_with_a_notice(runs, tmp_path):
    r = run_cli("sample", str(runs / "diffusion"), "--init-image", str(runs / "files" / "colour.png"), "--steps",
                "2", "--seed", "0", "--out", str(tmp_path / "e.png"))
    assert r.returncode == 0, r.stderr
    notice = [ln for ln in r.stderr.splitlines() if "warning" in ln]
    assert len(notice) == 1 and "40x32 to 28x28" in notice[0] and "RGB" in notice[0], r.stderr
    assert read(tmp_path / "e.png").ndim == 2  # grey, as the model


@pytest.mark.parametrize("flags,needle", [
    (["--steps", "0"], "--steps: 0 is out of range; use an integer from 1 to 1000"),
    (["--steps", "1000000"], "--steps: 1000000 is out of range; use an integer from 1 to 1000"),
    (["--guidance-scale", "-1"], "--guidance-scale: -1"),
    (["--guidance-scale", "nan"], "--guidance-scale"),
    (["--sampler", "ddpm"], "--sampler: 'ddpm' is not a sampler; choose one of: euler, heun, dpm++"),
    (["--init-image", "{files}/init.png", "--strength", "1.5"], "--strength: 1.5 is out of range"),
    (["--init-image", "{files}/init.png", "--strength", "-0.1"], "--strength: -0.1 is out of range"),
    (["--strength", "0.5"], "--strength: edits an image; give the image with --init-image"),
    (["--init-image", "{files}/init.png", "--mask", "{files}/grey_mask.png"], "--mask {files}/grey_mask.png: the "
                                                                                "mask is not binary"),
    (["--init-image", "{files}/init.png", "--mask", "{files}/small_mask.png"], "20x20, the mask must be the "
                                                                                 "model's size 28x28"),
    (["--init-image", "{files}/missing.png"], "--init-image {files}/missing.png: no such file"),
    (["--init-image", "{files}/text.png"], "--init-image {files}/text.png: not an image file"),
    (["--init-image", "{files}/init.png", "--interpolate"], "--init-image and --interpolate"),
    (["--interpolate", "--sampler", "heun"], "--sampler: a walk"),
])
def test_each_bad_value_is_one_line_and_writes_nothing(runs, tmp_path, flags, needle):
    files = runs / "files"
    out = tmp_path / "out.png"
    out.write_bytes(b"keep")
    flags = [f.format(files=files) for f in flags]
    r = run_cli("sample", str(runs / "diffusion"), *flags, "--out", str(out), "--overwrite")
    one_line_error(r, needle.format(files=files))
    assert out.read_bytes() == b"keep"


@pytest.mark.parametrize("flags,needle", [
    (["--steps", "8"], "--steps is for models that choose their sampling"),
    (["--sampler", "euler"], "--sampler is for"),
    (["--guidance-scale", "2"], "--guidance-scale is for"),
    (["--init-image", "{files}/init.png"], "does not edit given inputs"),
])
def test_a_run_that_cannot_steer_or_edit_says_which_can(runs, tmp_path, flags, needle):
    flags = [f.format(files=runs / "files") for f in flags]
    r = run_cli("sample", str(runs / "cgan"), *flags, "--out", str(tmp_path / "x.png"))
    one_line_error(r, f"{runs / 'cgan'}: a cgan run does not", "(diffusion", needle)
    assert not (tmp_path / "x.png").exists()
