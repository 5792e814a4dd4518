"""The clip tokenizer and what learns its latents: a vqvae with model.temporal (3-D convolutions over frames, height
and width) trained on a tiny moving-fashion-mnist, its tokens as many as its config says; a t2i prior over them that
draws clips from a prompt, the same clip for the same seed; and an ldm denoiser over its continuous latents, the
latent frames as channels. The 2-D vqvae is unchanged by the option."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import tetragen
from tetragen.api import load_data
from tetragen.config import build_run_config
from tetragen.data.captions import CaptionBuilder
from tetragen.errors import UserError
from tetragen.families.vqgan.model import VQGAN
from tetragen.families.vqvae.config import VQVAEConfig
from tetragen.families.vqvae.model import VQVAE
from tetragen.modalities.video import moving
from tetragen.train.trainer import Trainer

from .conftest import run_cli

NAME = "moving-fashion-mnist"
# 16 frames of 32x32 -> 4 latent frames (time_downsample 4) of 4x4 tokens (downsample 8): 64 tokens per clip
TOKENIZER = ["model.temporal=true", "model.time_downsample=4", "model.downsample=8"]


def _train(family: str, out, overrides: list[str]):
    cfg = build_run_config(family, preset="tiny", overrides=["train.eval_every=0", "train.eval_samples=0",
                                                             *overrides])
    cfg.data.source = NAME
    data = load_data(cfg)
    Trainer(cfg, data, out, progress=False).fit()
    return data


@pytest.fixture(scope="module")
def clip_runs(tmp_path_factory):
    """A tiny moving-fashion-mnist (from the real Fashion-MNIST files), a temporal vqvae trained on it for a few
    steps, and a causal t2i prior over its tokens."""
    root = tmp_path_factory.mktemp("clip-tokens")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TETRAGEN_CACHE", str(root / "cache"))
        mp.setenv("TETRAGEN_NO_PROGRESS", "1")
        mp.setitem(moving.VARIANTS, NAME, moving.Variant(NAME, 32, 320, 80))
        data = _train("vqvae", root / "tok", ["train.max_steps=4", *TOKENIZER])
        _train("t2i", root / "prior", ["train.max_steps=2", f"model.tokenizer_run={root / 'tok'}",
                                       "model.text_block=64"])
        _train("ldm", root / "ldm", ["train.max_steps=2", f"model.autoencoder_run={root / 'tok'}",
                                     "model.cond=class"])
        yield root, data


def test_the_temporal_tokenizer_makes_the_tokens_its_config_says_and_reconstructs_clips(clip_runs):
    root, data = clip_runs
    tok = tetragen.load(root / "tok")
    m = tok.config.model
    assert m.temporal and (m.channels, m.image_size) == (16, 32)
    assert any(isinstance(x, torch.nn.Conv3d) for x in tok.model.encoder.modules())
    clips = data.test.images[:3]                                           # (3, 32, 32, 16): a channel per frame
    tokens = tok.encode(clips)
    # the 4 latent frames' 4x4 grids stacked top to bottom: one 2-D grid, raster order (frame, row, column)
    assert tokens.shape == (3, 16, 4) and tok.token_shape == (16, 4)
    assert tokens.size // 3 == (16 // 4) * (32 // 8) ** 2 == 64
    recon = tok.reconstruct(clips)
    assert recon.shape == clips.shape and recon.dtype == np.uint8
    assert np.array_equal(tok.decode(tokens), recon)                       # decode(encode(x)) is the reconstruction


def test_a_prior_over_clip_tokens_draws_the_same_clip_for_the_same_prompt_and_seed(clip_runs):
    root, _ = clip_runs
    pipe = tetragen.load(root / "prior")
    assert pipe.config.model.image_tokens == 64 and (pipe.config.model.grid_h, pipe.config.model.grid_w) == (16, 4)
    a = pipe.sample(2, seed=3, prompt="a sneaker moving left")
    b = pipe.sample(2, seed=3, prompt="a sneaker moving left")
    assert a.frames.shape == (2, 16, 32, 32) and a.frames.dtype == np.uint8 and a.fps == 10
    assert np.array_equal(a.frames, b.frames)
    alone = pipe.sample(seeds=[4], prompts=["a sneaker moving left"])
    assert np.array_equal(alone.frames[0], a.frames[1])                    # a clip depends on its own seed only
    prompts = pipe.assets.class_prompts
    assert prompts[moving.CLASSES.index("sneaker moving left")] == "a sneaker moving left"
    assert prompts[moving.CLASSES.index("trousers moving down")] == "trousers moving down"
    assert prompts[moving.CLASSES.index("ankle boot moving up-right")] == "an ankle boot moving up-right"
    assert prompts[moving.CLASSES.index("ankle boot bouncing")] == "an ankle boot bouncing"


def test_cli_samples_a_gif_from_a_prompt(clip_runs, tmp_path):
    from PIL import Image
    root, _ = clip_runs
    r = run_cli("sample", str(root / "prior"), "--prompt", "a bag moving up", "--n", "2", "--out",
                str(tmp_path / "c.gif"), env={"TETRAGEN_CACHE": str(root / "cache")})
    assert r.returncode == 0, r.stderr
    with Image.open(tmp_path / "c.gif") as im:
        assert im.n_frames == 16
    # a motion no caption uses is refused in one line, as by a class-conditional run; nothing is written
    r = run_cli("sample", str(root / "prior"), "--prompt", "a bag spinning", "--n", "1", "--out",
                str(tmp_path / "s.gif"), env={"TETRAGEN_CACHE": str(root / "cache")})
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "names no motion" in r.stderr and "up-left" in r.stderr and not (tmp_path / "s.gif").exists()


def test_latent_diffusion_learns_the_clip_tokenizers_latent_frames_as_channels(clip_runs):
    root, data = clip_runs
    pipe = tetragen.load(root / "ldm")
    autoencoder = pipe.inner.autoencoder                                   # the family's pipeline, adapted
    code_dim = autoencoder.model.quantizer.code_dim
    # 4 latent frames of 4x4 cells, each frame's code_dim channels side by side: a 4x4 grid of 4 * code_dim
    assert autoencoder.latent_shape == (4 * code_dim, 4, 4)
    assert (pipe.config.model.latent_channels, pipe.config.model.latent_size) == (4 * code_dim, 4)
    x = data.to_model(data.test.images[:3])
    z = autoencoder.encode(x)
    assert z.shape == (3, 4 * code_dim, 4, 4)
    model = autoencoder.model
    with torch.no_grad():  # decoding the latents is the tokenizer's own reconstruction
        assert torch.allclose(autoencoder.decode(z), model.decoder(model.quantizer(model.encoder(x))[0]))
        codes = model.quantizer.to_code_space(model.encoder(x))             # (3, code_dim, 4 frames * 4 rows, 4)
        assert torch.equal(z[:, code_dim:2 * code_dim], codes[:, :, 4:8])  # latent frame 1 is channels 1 * code_dim..
    a = pipe.sample(2, seed=3, prompt="a sneaker moving left", steps=2)
    assert a.frames.shape == (2, 16, 32, 32) and a.frames.dtype == np.uint8 and a.fps == 10
    assert np.array_equal(pipe.sample(1, seeds=[4], prompt="a sneaker moving left", steps=2).frames[0], a.frames[1])
    assert "edit" not in pipe.capabilities                                  # editing is for images


def test_latent_diffusion_on_clips_is_told_the_class_not_a_text_prompt(clip_runs):
    root, _ = clip_runs
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TETRAGEN_CACHE", str(root / "cache"))
        mp.setitem(moving.VARIANTS, NAME, moving.Variant(NAME, 32, 320, 80))
        cfg = build_run_config("ldm", preset="tiny", overrides=[f"model.autoencoder_run={root / 'tok'}"])
        cfg.data.source = NAME
        with pytest.raises(UserError, match="model.cond=text: .* is video content; use model.cond=class"):
            load_data(cfg)


def test_the_served_prior_returns_clips_from_a_prompt(clip_runs):
    import base64
    import io

    import httpx
    from PIL import Image

    from tetragen.serve.app import Limits, create_app

    from .test_serve import LiveServer
    root, _ = clip_runs
    ldm, asked = tetragen.load(root / "ldm"), []
    drawn = ldm.sample_rows

    def sample_rows(rows, block, **sampling):                              # what the route hands the pipeline
        asked.append(sampling)
        return drawn(rows, block, **sampling)
    ldm.sample_rows = sample_rows
    server = LiveServer(create_app({"prior": tetragen.load(root / "prior"), "ldm": ldm}, api_key="sk-t",
                                   limits=Limits(max_wait_ms=20, max_images=4))).wait_ready()
    try:
        headers = {"Authorization": "Bearer sk-t"}
        body = {"model": "prior", "prompt": "a sneaker moving right", "n": 2, "seed": 7}
        r = httpx.post(f"{server.url}/v1/videos/generations", json=body, headers=headers, timeout=60)
        assert r.status_code == 200, r.text
        out = r.json()
        assert (out["frames"], len(out["data"])) == (16, 2)
        with Image.open(io.BytesIO(base64.b64decode(out["data"][0]["b64_json"]))) as im:
            assert im.n_frames == 16
        again = httpx.post(f"{server.url}/v1/videos/generations", json={**body, "n": 1, "seed": 8},
                           headers=headers, timeout=60).json()
        assert again["data"][0]["b64_json"] == out["data"][1]["b64_json"]
        bad = httpx.post(f"{server.url}/v1/videos/generations", json={**body, "prompt": "a sneaker moving sideways"},
                         headers=headers, timeout=60)
        assert bad.status_code == 400 and "names no motion" in bad.json()["error"]["message"], bad.text
        # a denoiser's sampling settings, as for images; a model that takes none is a 400 naming the field
        steered = {**body, "model": "ldm", "steps": 2, "guidance_scale": 2.0, "sampler": "euler"}
        one = httpx.post(f"{server.url}/v1/videos/generations", json=steered, headers=headers, timeout=60)
        assert one.status_code == 200 and len(one.json()["data"]) == 2, one.text
        assert {"steps": 2, "guidance_scale": 2.0, "sampler": "euler"}.items() <= asked[-1].items()
        for wrong, field in (({"model": "prior", "steps": 2}, "steps"),
                             ({"model": "ldm", "sampler": "nope"}, "sampler"), ({"model": "ldm", "steps": 0}, "steps")):
            r = httpx.post(f"{server.url}/v1/videos/generations", json={**body, **wrong}, headers=headers, timeout=60)
            assert r.status_code == 400 and r.json()["error"]["param"] == field, r.text
    finally:
        server.close()


def test_temporal_keys_are_checked_in_one_line(tmp_path):
    for overrides, says in ((["model.time_downsample=2"], "needs model.temporal=true"),
                            (["model.temporal=true", "model.time_downsample=3"], "power of 2"),
                            (["model.temporal=true", "model.time_downsample=8"], "at most model.downsample")):
        with pytest.raises(UserError, match=says):
            build_run_config("vqvae", preset="tiny", overrides=overrides).model.validate()
    with pytest.raises(UserError, match="must divide the 12 frames"):
        VQVAEConfig(image_size=32, channels=12, downsample=8, temporal=True, time_downsample=8).check_frames()
    r = run_cli("train", "vqvae", "--data", NAME, "--preset", "tiny", "--out", str(tmp_path / "run"),
                "model.time_downsample=2")
    assert r.returncode != 0 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "model.time_downsample=2 needs model.temporal=true" in r.stderr and not (tmp_path / "run").exists()


def test_the_2d_default_is_unchanged_and_vqgan_takes_the_option():
    c = VQVAEConfig()
    assert not c.temporal and c.token_shape == (7, 7)
    flat = VQVAE(VQVAEConfig(image_size=32, channels=16, width=8))
    assert flat.latent_shape == (8, 8)
    assert not any(isinstance(x, (torch.nn.Conv3d, torch.nn.ConvTranspose3d)) for x in flat.modules())
    cfg = build_run_config("vqgan", preset="tiny", overrides=TOKENIZER).model
    cfg.image_size, cfg.channels = 32, 16
    gan = VQGAN(cfg)
    assert isinstance(gan.decoder.net[-1], torch.nn.ConvTranspose3d)       # where the adaptive weight looks
    x = torch.rand(2, 16, 32, 32) * 2 - 1
    assert gan.reconstruct(x)[0].shape == x.shape


def test_a_linear_output_gives_the_decoders_layer_clamped_where_tanh_would_saturate():
    from tetragen.families.vqvae.model import pixels
    x = torch.tensor([-3.0, -1.2, 0.0, 0.5, 2.0])
    assert torch.equal(pixels(x, "linear"), torch.tensor([-1.5, -1.2, 0.0, 0.5, 1.5]))
    assert torch.equal(pixels(x, "tanh"), torch.tanh(x))
    assert VQVAEConfig().output == "tanh"                                   # runs saved before the option
    for overrides in ([], TOKENIZER):
        cfg = build_run_config("vqvae", preset="tiny", overrides=[*overrides, "model.output=linear"]).model
        cfg.image_size, cfg.channels = 32, 16
        model = VQVAE(cfg)
        with torch.no_grad():
            model.decoder.net[-1].bias.fill_(5.0)                            # far past where a tanh is flat
            out = model.decoder(model.quantize(torch.zeros(2, 16, 32, 32))[0])
        assert torch.all(out == 1.5)
    with pytest.raises(UserError, match="model.output"):
        build_run_config("vqvae", preset="tiny", overrides=["model.output=sigmoid"])


def test_built_captions_read_class_names_that_are_phrases_and_keep_fashion_mnist():
    clips = CaptionBuilder(["sneaker moving left", "trousers moving down", "dogs in snow"])
    assert [clips.class_prompt(k) for k in range(3)] == ["a sneaker moving left", "trousers moving down",
                                                         "dogs in snow"]
    assert "a small dark sneaker moving left" in clips.captions(0, brightness=0, size=0)
    fmnist = CaptionBuilder(["T-shirt/top", "Trouser", "Ankle boot"])
    assert [fmnist.class_prompt(k) for k in range(3)] == ["a t-shirt", "a pair of trousers", "an ankle boot"]
