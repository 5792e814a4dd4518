"""Text-to-image priors over a frozen vqvae: both priors train and sample, KV-cached causal decoding equals full
recomputation, MaskGIT decoding reveals every token, guidance 0 ignores the prompt, runs keep their tokenizer, and
bad input is one line."""
import json
import shutil

import numpy as np
import pytest
import torch

import tetragen
from tetragen.api import load_data
from tetragen.config import build_run_config
from tetragen.errors import UserError
from tetragen.train.trainer import Trainer

from .conftest import make_image_folder, one_line_error, run_cli


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny image folder, a vqvae run on it, and a causal and a masked prior on that tokenizer."""
    root = tmp_path_factory.mktemp("t2i")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TETRAGEN_CACHE", str(root / "cache"))
        images = make_image_folder(root / "images")
        tok = build_run_config("vqvae", preset="tiny", overrides=["train.max_steps=6"])
        tok.data.source = str(images)
        Trainer(tok, load_data(tok), root / "tok", progress=False).fit()
        for prior in ("causal", "masked"):
            cfg = build_run_config("t2i", preset="tiny", overrides=[f"model.prior={prior}", "train.max_steps=6",
                                                                    f"model.tokenizer_run={root / 'tok'}"])
            cfg.data.source = str(images)
            Trainer(cfg, load_data(cfg), root / prior, progress=False).fit()
    return root


@pytest.mark.parametrize("prior", ["causal", "masked"])
def test_both_priors_sample_deterministically_from_a_prompt(world, prior):
    pipe = tetragen.load(world / prior)
    assert pipe.config.model.prior == prior and "prompt" in pipe.capabilities
    a = pipe.sample(4, prompt="a large disc", seed=1)
    assert a.dtype == np.uint8 and a.shape == (4, 28, 28, 1)
    assert np.array_equal(a, tetragen.load(world / prior).sample(4, prompt="a large disc", seed=1))
    assert not np.array_equal(a, pipe.sample(4, prompt="a large disc", seed=2))
    # guidance 0 is the unconditional model: the prompt no longer matters
    assert np.array_equal(pipe.sample(3, prompt="a bar", seed=5, guidance_scale=0.0),
                          pipe.sample(3, prompt="a large light square", seed=5, guidance_scale=0.0))


@pytest.mark.parametrize("prior", ["causal", "masked"])
def test_an_image_depends_on_its_own_prompt_and_seed_alone(world, prior):
    """Per-row generators and fixed-size blocks: image i of a batch is the image its prompt and seed give alone."""
    pipe = tetragen.load(world / prior)
    pipe.batch_size = 3
    prompts, seeds = ["a large disc", "a bar", "a dark square", "a large disc"], [4, 4, 9, 2]
    batch = pipe.sample(prompts=prompts, seeds=seeds, steps=3)
    for i in range(len(seeds)):
        assert np.array_equal(batch[i], pipe.sample(prompt=prompts[i], seeds=[seeds[i]], steps=3)[0]), i
    assert np.array_equal(pipe.sample(prompts=prompts[:3], seed=7, steps=3),
                          pipe.sample(prompts=prompts[:3], seeds=[7, 8, 9], steps=3))


def test_kv_cached_causal_decoding_equals_recomputing_the_whole_sequence(world):
    pipe = tetragen.load(world / "causal")
    model, c = pipe.model, pipe.config.model
    text = torch.tensor([pipe.encode_prompt("a small bar"), pipe.encode_prompt("a disc")])
    null = torch.full_like(text, pipe.pad_id)
    for guidance in (1.0, 2.5):
        fast = model.sample_causal(text, null, guidance=guidance, temperature=0.0, top_k=0,
                                   generators=[torch.Generator().manual_seed(s) for s in range(len(text))])
        slow = torch.empty(2, 0, dtype=torch.long)
        with torch.no_grad():
            for _ in range(c.image_tokens):
                ids = torch.cat([torch.cat([text, null]), torch.cat([slow, slow]) + model.text_vocab], 1)
                logits = model.image_logits(model.backbone(ids)[0][:, -1])
                cond, uncond = logits.chunk(2)
                mixed = cond if guidance == 1.0 else uncond + guidance * (cond - uncond)
                slow = torch.cat([slow, mixed.argmax(-1, keepdim=True)], 1)
        assert torch.equal(fast, slow), guidance


def test_masked_decoding_reveals_every_token_on_the_cosine_schedule(world, monkeypatch):
    pipe = tetragen.load(world / "masked")
    model = pipe.model
    hidden_counts = []
    real_encode = model.backbone.encode

    def counting(ids, *a, **k):
        hidden_counts.append(int((ids[:1, pipe.config.model.text_block:] == model.mask_id).sum()))
        return real_encode(ids, *a, **k)
    monkeypatch.setattr(model.backbone, "encode", counting)
    text = torch.tensor([pipe.encode_prompt("a disc")])
    codes = model.sample_masked(text, torch.full_like(text, pipe.pad_id), guidance=2.0, temperature=1.0, top_k=0,
                                steps=4, generators=[torch.Generator().manual_seed(s) for s in range(len(text))])
    L = pipe.config.model.image_tokens
    assert codes.shape == (1, L) and int(codes.min()) >= 0 and int(codes.max()) < model.codebook
    expected = [L] + [int(np.floor(L * np.cos(np.pi / 2 * s / 4))) for s in (1, 2, 3)]
    assert hidden_counts == expected


def test_a_run_holds_its_tokenizer_and_refuses_a_mismatched_one(world, tmp_path):
    run = tmp_path / "copy"
    shutil.copytree(world / "masked", run)
    components = json.loads((run / "components.json").read_text())["image_tokenizer"]
    assert (run / "image_tokenizer" / "model.safetensors").is_file() and components["grid"] == [7, 7]

    assert tetragen.load(run).sample(1, prompt="a disc", seed=0).shape == (1, 28, 28, 1)
    other = build_run_config("vqvae", preset="tiny", overrides=["train.max_steps=1", "model.codebook_size=32"])
    other.data.source = str(world / "images")
    Trainer(other, load_data(other), tmp_path / "other", progress=False).fit()
    shutil.rmtree(run / "image_tokenizer")
    shutil.copytree(tmp_path / "other", run / "image_tokenizer")
    with pytest.raises(UserError, match="32 codes .* trained on 16 codes"):
        tetragen.load(run)
    shutil.rmtree(run / "image_tokenizer")
    shutil.copytree(world / "tok", run / "image_tokenizer")  # the right shape again
    shutil.copyfile(tmp_path / "other" / "classes.json", run / "image_tokenizer" / "classes.json")
    assert tetragen.load(run).sample(1, prompt="a disc", seed=0).shape == (1, 28, 28, 1)
    shutil.rmtree(run / "image_tokenizer")
    with pytest.raises(UserError, match="image tokenizer .* is missing"):
        tetragen.load(run)


def test_cli_prompts_class_sweeps_eval_and_bad_input(world, tmp_path):
    run = str(world / "masked")
    r = run_cli("sample", run, "--prompt", "a dark disc", "--n", "4", "--out", str(tmp_path / "a.png"),
                "--seed", "0", "--guidance-scale", "3", "--steps", "2")
    assert r.returncode == 0 and (tmp_path / "a.png").is_file(), r.stderr
    r = run_cli("sample", run, "--class-prompts", "--n", "6", "--out", str(tmp_path / "c.npz"), "--seed", "0")
    assert r.returncode == 0, r.stderr
    with np.load(tmp_path / "c.npz") as f:
        assert list(f["labels"]) == [0, 1, 2, 0, 1, 2] and f["images"].shape == (6, 28, 28)
    r = run_cli("eval", run, "--n", "12", "--json")
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout)
    assert m["fid"] >= 0 and 0 <= m["class_acc"] <= 1 and m["test_nll"] > 0 and m["n"] == 12
    long = run_cli("sample", run, "--prompt", "a disc " * 30, "--n", "1", "--out", str(tmp_path / "l.png"))
    assert long.returncode == 0 and "longer than the model's text context" in long.stderr
    out = str(tmp_path / "x.png")
    one_line_error(run_cli("sample", run, "--prompt", "", "--n", "1", "--out", out), "--prompt", "empty")
    one_line_error(run_cli("sample", run, "--prompt", "§§§", "--n", "1", "--out", out), "none of its characters")
    one_line_error(run_cli("sample", run, "--prompt", "a disc", "--guidance-scale", "-1", "--out", out),
                   "--guidance-scale")
    one_line_error(run_cli("sample", run, "--prompt", "a disc", "--guidance-scale", "1e9", "--out", out),
                   "--guidance-scale")
    one_line_error(run_cli("sample", run, "--prompt", "a disc", "--steps", "0", "--out", out), "--steps")
    assert not (tmp_path / "x.png").exists()


def test_bad_tokenizer_runs_and_prompts_to_other_models_are_one_line(world, tmp_path, corpus):
    images = str(world / "images")
    def train(*extra):
        return run_cli("train", "t2i", "--data", images, "--out", str(tmp_path / "p"), "--preset", "tiny",
                       "train.max_steps=1", *extra)
    one_line_error(train(f"model.tokenizer_run={tmp_path / 'nowhere'}"), "model.tokenizer_run", "no such folder")
    one_line_error(train(), "model.tokenizer_run is required")
    gpt = tmp_path / "gpt"
    assert run_cli("train", "gpt", "--data", str(corpus), "--out", str(gpt), "--preset", "tiny", "train.max_steps=1",
                   "train.warmup_steps=0", "train.eval_tokens=128").returncode == 0
    one_line_error(train(f"model.tokenizer_run={gpt}"), "a gpt run, not an image tokenizer")
    unfinished = tmp_path / "unfinished"
    shutil.copytree(world / "tok", unfinished)
    (unfinished / "model.safetensors").unlink()
    one_line_error(train(f"model.tokenizer_run={unfinished}"), "no final weights")
    assert not (tmp_path / "p").exists()
    one_line_error(run_cli("sample", str(world / "tok"), "--n", "1", "--out", str(tmp_path / "y.png")), "t2i")
    dcgan = tmp_path / "dcgan"
    assert run_cli("train", "dcgan", "--data", images, "--out", str(dcgan), "--preset", "tiny",
                   "train.max_steps=1").returncode == 0
    one_line_error(run_cli("sample", str(dcgan), "--prompt", "a disc", "--out", str(tmp_path / "y.png")),
                   "text prompt", "t2i")


def test_a_folder_with_a_caption_file_trains_with_its_captions(world, tmp_path, capsys):
    images = make_image_folder(tmp_path / "images", n_per_class=6)
    files = sorted(p.relative_to(images).as_posix() for p in images.rglob("*.png"))
    lines = [json.dumps({"file": f, "text": f"a {f.split('/')[0]} picture"}) for f in files[:-2]]
    lines += ["{not json", json.dumps({"file": "missing/nope.png", "text": "x"})]
    (images / "captions.jsonl").write_text("\n".join(lines) + "\n")
    cfg = build_run_config("t2i", preset="tiny", overrides=["train.max_steps=2", "model.prior=causal",
                                                            f"model.tokenizer_run={world / 'tok'}"])
    cfg.data.source = str(images)
    data = load_data(cfg)
    err = capsys.readouterr().err
    assert "skipped 2" in err and "bad JSON" in err
    Trainer(cfg, data, tmp_path / "run", progress=False).fit()
    pipe = tetragen.load(tmp_path / "run")
    assert pipe.assets.class_prompts[0] == "a bar picture"
    assert pipe.sample(2, prompt="a disc picture", seed=0).shape == (2, 28, 28, 1)


@pytest.mark.parametrize("tokenizer", ["vqgan", "prior"])
def test_sigkill_then_resume_is_bitwise_identical(world, tmp_path, tokenizer):
    """A real SIGKILL in the middle: vqgan past its discriminator start (two phases), and a masked prior (random
    masks, dropped captions, dropout) on the vqvae; the resumed run ends bitwise equal to an uninterrupted one."""
    import os
    import sys
    from .conftest import ONE_THREAD_ENV, in_process, kill_after_checkpoint
    images = str(world / "images")
    if tokenizer == "vqgan":
        args = ["vqgan", "--preset", "tiny", "model.width=16", "train.max_steps=60", "train.save_every=10",
                "train.eval_every=0", "model.disc_start=15"]
    else:
        args = ["t2i", "--preset", "tiny", f"model.tokenizer_run={world / 'tok'}", "model.prior=masked",
                "model.dropout=0.1", "model.n_embd=64", "train.max_steps=60", "train.save_every=10",
                "train.eval_every=0"]
    def cmd(out, *extra):
        return [sys.executable, "-m", "tetragen", "train", args[0], "--data", images, "--out", str(out), *args[1:],
                *extra]
    cache = {"TETRAGEN_CACHE": str(world / "cache")}
    env = {**os.environ, **ONE_THREAD_ENV, **cache}
    straight = in_process(cmd(tmp_path / "a"), env=cache)
    assert straight.returncode == 0, straight.stderr
    kill_after_checkpoint(cmd(tmp_path / "b"), tmp_path / "b", 20, 60, env=env)
    resumed = in_process(cmd(tmp_path / "b", "--resume"), env=cache)
    assert resumed.returncode == 0 and "resuming" in resumed.stderr, resumed.stderr
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()
