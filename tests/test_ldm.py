"""The ldm family: the diffusion denoiser over a frozen autoencoder's continuous latents. A tiny one trains on the
test image folder through a tiny vqvae (and a vae) in seconds, samples from prompts, edits, evaluates; the run keeps
its autoencoder and refuses a missing or changed one; a bad autoencoder run (missing, not a run, still training, not
an autoencoder, of another image size) is one line."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

import tetragen
from tetragen.api import load_data
from tetragen.config import build_run_config
from tetragen.errors import UserError
from tetragen.train.trainer import Trainer

from .conftest import make_image_folder, one_line_error, run_cli


def train(family, source, out, *overrides):
    cfg = build_run_config(family, preset="tiny", overrides=["train.eval_every=0", "train.warmup_steps=0",
                                                             *overrides])
    cfg.data.source = str(source)
    Trainer(cfg, load_data(cfg), out, progress=False).fit()
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("ldm")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TETRAGEN_CACHE", str(base / "cache"))
        images = make_image_folder(base / "images")
        train("vqvae", images, base / "vqvae", "train.max_steps=5")
        train("ldm", images, base / "ldm", "model.cond=text", f"model.autoencoder_run={base / 'vqvae'}")
    return base


def test_trains_samples_edits_and_evaluates_in_latents(runs):
    pipe = tetragen.load(runs / "ldm")
    pipe.batch_size = 4
    assert {"prompt", "sample", "steer", "edit"} <= pipe.capabilities
    cfg = pipe.config.model
    assert (cfg.latent_channels, cfg.latent_size) == pipe.autoencoder.latent_shape[:2] and cfg.latent_scale > 0
    assert pipe.assets.captions_record["terciles"]  # where "dark" and "large" were cut in its captions
    images = pipe.sample(5, prompt="a large disc", seed=3, steps=2)
    assert images.shape == (5, 28, 28, 1) and images.dtype == np.uint8
    assert np.array_equal(pipe.sample(1, prompt="a large disc", seeds=[6], steps=2)[0], images[3])  # its own seed
    hole = np.zeros((28, 28), np.uint8)
    hole[:, 14:] = 1
    filled = pipe.edit(images[:2], mask=hole, prompt="a bar", seed=1, steps=2)
    assert np.array_equal(filled[:, :, :14], images[:2, :, :14])  # the kept pixels exactly as given
    metrics, lines = pipe.evaluate(load_data(pipe.config, pipe.assets), n=6)
    assert {"fid", "kid", "class_acc"} <= set(metrics) and lines[1].startswith("sampler dpm++, 4 steps")


def test_a_vae_autoencoder_is_a_one_by_one_latent_grid(runs, tmp_path):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TETRAGEN_CACHE", str(runs / "cache"))
        train("vae", runs / "images", tmp_path / "vae", "train.max_steps=2")
        train("ldm", runs / "images", tmp_path / "ldm", "train.max_steps=2",
              f"model.autoencoder_run={tmp_path / 'vae'}")
    pipe = tetragen.load(tmp_path / "ldm")
    assert (pipe.config.model.latent_size, pipe.config.model.latent_channels) == (1, pipe.autoencoder.latent_shape[0])
    assert pipe.sample(2, seed=0, labels="disc", steps=2).shape == (2, 28, 28, 1)


def test_a_vqvae_with_narrow_codes_gives_the_space_its_codes_are_looked_up_in(runs, tmp_path, capsys):
    import torch

    from tetragen.data.grids import to_model
    from tetragen.families.ldm.autoencoder import open_autoencoder_run
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TETRAGEN_CACHE", str(runs / "cache"))
        train("vqvae", runs / "images", tmp_path / "narrow", "train.max_steps=2", "model.code_dim=3")
        autoencoder, _ = open_autoencoder_run(tmp_path / "narrow")
        assert autoencoder.latent_shape == (3, 7, 7)
        x = to_model(np.random.default_rng(0).integers(0, 256, (4, 28, 28, 1), dtype=np.uint8))
        z = autoencoder.encode(x)
        model = autoencoder.model
        with torch.no_grad():  # decoding the latents is the vqvae's own reconstruction
            assert torch.allclose(autoencoder.decode(z), model.decoder(model.quantizer(model.encoder(x))[0]))
        train("ldm", runs / "images", tmp_path / "ldm", "train.max_steps=2",
              f"model.autoencoder_run={tmp_path / 'narrow'}")
        assert "warning" not in capsys.readouterr().err
        assert tetragen.load(tmp_path / "ldm").config.model.latent_channels == 3
        # an autoencoder of wide latents: the run goes on, and says what a denoiser learns better
        train("vqvae", runs / "images", tmp_path / "wide", "train.max_steps=2", "model.width=20")
        train("ldm", runs / "images", tmp_path / "ldm-wide", "train.max_steps=1",
              f"model.autoencoder_run={tmp_path / 'wide'}")
    err = [ln for ln in capsys.readouterr().err.splitlines() if "warning" in ln]
    assert len(err) == 1 and "40 channels a cell" in err[0] and "model.code_dim=4" in err[0]


def test_the_training_images_are_encoded_once_and_looked_up(runs, monkeypatch):
    import torch

    from tetragen.families.ldm import data as ldm_data
    monkeypatch.setenv("TETRAGEN_CACHE", str(runs / "cache"))
    pipe = tetragen.load(runs / "ldm")
    scale = pipe.config.model.latent_scale
    data = load_data(pipe.config, pipe.assets)
    batch = data.train_batch(seed=0, step=3, micro=0, batch_size=5)
    assert data.latents.shape == (len(data.train.images), *pipe.autoencoder.latent_shape) and "index" not in batch
    drawn = data.data.train_batch(seed=0, step=3, micro=0, batch_size=5)     # the same draw, in pixels
    assert torch.equal(batch["y"], drawn["y"]) and torch.equal(batch["text"], drawn["text"])
    assert torch.allclose(batch["x"], pipe.autoencoder.encode(drawn["x"]) * scale, atol=1e-5)
    again = load_data(pipe.config, pipe.assets)                  # encoded in the same chunks: the same latents
    again.train_batch(seed=1, step=0, micro=0, batch_size=2)
    assert torch.equal(again.latents, data.latents)
    # a training set whose latents would not fit is encoded batch by batch
    monkeypatch.setattr(ldm_data, "CACHE_BYTES", 0)
    big = load_data(pipe.config, pipe.assets)
    assert torch.allclose(big.train_batch(seed=0, step=3, micro=0, batch_size=5)["x"], batch["x"], atol=1e-5)
    assert big.latents is None


def test_the_run_keeps_its_autoencoder_and_refuses_a_changed_or_missing_one(runs, tmp_path):
    doc = json.loads((runs / "ldm" / "components.json").read_text())["autoencoder"]
    assert doc["family"] == "vqvae" and (runs / "ldm" / "autoencoder" / "model.safetensors").is_file()
    copy = tmp_path / "copy"
    shutil.copytree(runs / "ldm", copy)
    shutil.rmtree(runs / "vqvae" / "checkpoints", ignore_errors=True)  # the source is not needed any more
    assert tetragen.load(copy).sample(1, seed=0, steps=1).shape == (1, 28, 28, 1)
    weights = copy / "autoencoder" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(UserError, match="sha256 differs"):
        tetragen.load(copy)
    shutil.rmtree(copy / "autoencoder")
    with pytest.raises(UserError, match="its autoencoder .* is missing"):
        tetragen.load(copy)


def test_bad_autoencoder_runs_are_one_line(runs, tmp_path):
    images = runs / "images"
    still = tmp_path / "still"
    shutil.copytree(runs / "vqvae", still)
    (still / "model.safetensors").unlink()
    colour = tmp_path / "colour"
    for name in ("a", "b"):
        (colour / name).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(np.full((32, 32, 3), 40 * i, np.uint8)).save(colour / name / f"{i}.png")
    (tmp_path / "notrun").mkdir()
    for value, needle in ((str(tmp_path / "missing"), "no such folder"),
                          (str(tmp_path / "notrun"), "not a tetragen run"),
                          (str(still), "still training"),
                          ("", "model.autoencoder_run is required")):
        r = run_cli("train", "ldm", "--data", str(images), "--out", str(tmp_path / "out"), "--preset", "tiny",
                    f"model.autoencoder_run={value}")
        one_line_error(r, "model.autoencoder_run", needle)
    r = run_cli("train", "ldm", "--data", str(images), "--out", str(tmp_path / "out"), "--preset", "tiny",
                f"model.autoencoder_run={runs / 'ldm'}")
    one_line_error(r, "a ldm run, not an autoencoder")
    r = run_cli("train", "ldm", "--data", str(colour), "--out", str(tmp_path / "out"), "--preset", "tiny",
                f"model.autoencoder_run={runs / 'vqvae'}")
    one_line_error(r, "its images are 32x32 with 3 channel(s)", "28x28 with 1")
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_cli_samples_from_a_prompt(runs, tmp_path):
    r = run_cli("sample", str(runs / "ldm"), "--prompt", "a small square", "--n", "2", "--steps", "2",
                "--sampler", "euler", "--out", str(tmp_path / "s.png"))
    assert r.returncode == 0 and (tmp_path / "s.png").is_file(), r.stderr
    one_line_error(run_cli("sample", str(runs / "ldm"), "--steps", "0", "--out", str(tmp_path / "x.png")),
                   "--steps: 0 is out of range")
