"""Diffusion conditioned on a text prompt (`model.cond=text`): captions from the same place as t2i's, read by the
run's own text encoder; an image depends on its own prompt and seed alone; guidance 0 ignores the prompt; training
reaches the text encoder; the run keeps its prompt tokenizer and captions; the CLI and the server take prompts, and
bad prompts or a missing tokenizer are one line."""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

import tetragen
from tetragen.api import load_data
from tetragen.config import build_run_config
from tetragen.errors import UserError
from tetragen.families.diffusion.model import Diffusion, TextEncoder
from tetragen.serve import create_app
from tetragen.train.trainer import Trainer

from .conftest import make_image_folder, one_line_error, run_cli


def tiny(source, *overrides):
    cfg = build_run_config("diffusion", preset="tiny", overrides=["train.eval_every=0", "model.cond=text",
                                                                  *overrides])
    cfg.data.source = str(source)
    return cfg, load_data(cfg)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("diffusion_text")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TETRAGEN_CACHE", str(base / "cache"))
        cfg, data = tiny(make_image_folder(base / "images"))
        Trainer(cfg, data, base / "run", progress=False).fit()
    return base / "run"


@pytest.fixture
def pipe(run):
    pipe = tetragen.load(run)
    pipe.batch_size = 4
    return pipe


def test_batches_carry_captions_and_training_reaches_the_text_encoder(images, tmp_path):
    cfg, data = tiny(images, "train.max_steps=4")
    batch = data.train_batch(seed=0, step=0, micro=0, batch_size=8)
    assert batch["text"].shape == (8, cfg.model.text_block) and batch["x"].shape == (8, 1, 28, 28)
    assert torch.equal(batch["text"], data.train_batch(seed=0, step=0, micro=0, batch_size=8)["text"])
    pad = cfg.model.text_vocab_size - 1
    assert (batch["text"][:, 0] != pad).all()  # every caption has text
    trainer = Trainer(cfg, data, tmp_path / "run", progress=False)
    assert isinstance(trainer.model, Diffusion) and isinstance(trainer.model.denoiser.cond.text, TextEncoder)
    before = trainer.model.denoiser.cond.text.tokens.weight.detach().clone()
    trainer.fit()  # the zero-initialised output layers pass no gradient at the first step; later steps do
    assert not torch.equal(before, trainer.model.denoiser.cond.text.tokens.weight)


def test_the_empty_prompt_is_the_null_condition():
    encoder = TextEncoder(vocab=10, block=6, width=16, layers=1, heads=2, dim=8)
    with torch.no_grad():
        encoder.null.fill_(0.5)
        out = encoder(torch.tensor([[9] * 6, [1, 2, 9, 9, 9, 9]]))
    assert torch.equal(out[0], torch.full((8,), 0.5)) and not torch.equal(out[1], out[0])
    assert torch.isfinite(out).all()


def test_an_image_depends_on_its_own_prompt_and_seed_alone(pipe):
    assert {"prompt", "sample", "steer", "edit"} <= pipe.capabilities
    prompts = ["a large disc", "a bar", "a small square", "a disc", "a bar"]
    many = pipe.sample(prompts=prompts, seeds=[5, 6, 7, 8, 9], steps=2)
    for i in (0, 3, 4):
        alone = pipe.sample(prompt=prompts[i], seeds=[5 + i], steps=2)
        assert np.array_equal(alone[0], many[i]), i
    assert not np.array_equal(pipe.sample(1, prompt="a bar", seed=1, steps=2, guidance_scale=1.0),
                              pipe.sample(1, prompt="a large disc", seed=1, steps=2, guidance_scale=1.0))
    # guidance 0 is the unconditional model: the prompt no longer matters
    assert np.array_equal(pipe.sample(2, prompt="a bar", seed=3, steps=2, guidance_scale=0.0),
                          pipe.sample(2, prompt="a large disc", seed=3, steps=2, guidance_scale=0.0))
    # without a prompt, the classes' prompts in turn (what the image metrics ask for)
    classes = pipe.sample(3, seed=2, steps=2)
    assert np.array_equal(classes, pipe.sample(prompts=pipe.assets.class_prompts, seeds=[2, 3, 4], steps=2))
    edited = pipe.edit(classes, strength=0.5, prompt="a large disc", seed=1, steps=2)
    assert edited.shape == classes.shape


def test_bad_prompts_are_one_line(pipe):
    for call, needle in ((lambda: pipe.sample(1, prompt="", seed=0), "--prompt: the prompt is empty"),
                         (lambda: pipe.sample(1, prompt="ZZZ", seed=0), "none of its characters"),
                         (lambda: pipe.sample(2, prompts=["a bar"], seed=0), "prompts: 1 prompts for 2 images"),
                         (lambda: pipe.sample(1, prompt="a bar", prompts=["a bar"], seed=0), "not both")):
        with pytest.raises(UserError, match=needle) as e:
            call()
        assert "\n" not in str(e.value)
    with pytest.warns(UserWarning, match="longer than the model's text context"):
        pipe.sample(1, prompt="a disc " * 20, seed=0, steps=1)


def test_the_run_keeps_its_tokenizer_and_refuses_a_missing_one(run, tmp_path):
    assert (run / "tokenizer.json").is_file() and (run / "captions.json").is_file()
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    (copy / "tokenizer.json").unlink()
    with pytest.raises(UserError, match="tokenizer.json is missing"):
        tetragen.load(copy)


def test_cli_and_server_take_prompts(run, tmp_path, images):
    r = run_cli("sample", str(run), "--prompt", "a large disc", "--n", "3", "--seed", "4", "--steps", "2",
                "--guidance-scale", "2", "--out", str(tmp_path / "p.npz"))
    assert r.returncode == 0, r.stderr
    want = tetragen.load(run).sample(3, prompt="a large disc", seed=4, steps=2, guidance_scale=2.0)
    assert np.array_equal(np.load(tmp_path / "p.npz")["images"], want[..., 0])
    r = run_cli("sample", str(run), "--class-prompts", "--n", "3", "--out", str(tmp_path / "c.npz"))
    assert r.returncode == 0 and list(np.load(tmp_path / "c.npz")["labels"]) == [0, 1, 2], r.stderr
    first = next(iter(sorted((images / "disc").iterdir())))
    r = run_cli("sample", str(run), "--init-image", str(first), "--prompt", "a small square", "--strength", "0.5",
                "--steps", "2", "--out", str(tmp_path / "e.png"))
    assert r.returncode == 0, r.stderr
    one_line_error(run_cli("sample", str(run), "--prompt", "", "--out", str(tmp_path / "x.png")), "--prompt")
    with TestClient(create_app({"text": tetragen.load(run)})) as client:
        deadline = time.time() + 30
        while client.get("/health").status_code != 200:  # the models load in a thread at startup
            assert time.time() < deadline, "the model did not load"
            time.sleep(0.02)
        r = client.post("/v1/images/generations", json={"model": "text", "prompt": "a bar", "n": 2, "seed": 1,
                                                        "steps": 2})
        assert r.status_code == 200 and [d["revised_prompt"] for d in r.json()["data"]] == ["a bar", "a bar"]
        assert client.get("/v1/models/text").json()["sampling"]["steps"]["default"] == 4
