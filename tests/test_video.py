"""Video through the families that learn grids: moving-fashion-mnist made from a seed, a cgan trained on its clips,
sampled from the CLI and Python as GIF / folder / PNG strips / .npz, scored by the video evaluator (class, garment
and motion accuracy, frozen and shuffled references), and served at /v1/videos/generations."""
from __future__ import annotations

import base64
import io
import json

import httpx
import numpy as np
import pytest
from PIL import Image

import tetragen
from tetragen.api import load_data
from tetragen.config import build_run_config
from tetragen.errors import UserError
from tetragen.modalities.video import moving
from tetragen.modalities.video.pipeline import motion_of
from tetragen.serve.app import Limits, create_app
from tetragen.train.trainer import Trainer

from .conftest import run_cli
from .test_serve import LiveServer

NAME = "moving-fashion-mnist"
KEY = "sk-video"


def _fmnist_like(n: int = 60, seed: int = 0):
    """Stand-ins for Fashion-MNIST images: bright squares of varying size on black, 28x28, with 10 labels."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):
        s = rng.integers(8, 28)
        images[i, 14 - s // 2:14 - s // 2 + s, 14 - s // 2:14 - s // 2 + s] = rng.integers(100, 256)
    return images, np.arange(n) % 10


def test_clips_move_the_way_their_class_says_and_stay_in_the_frame():
    images, labels = _fmnist_like()
    clips, classes, made = moving.make_clips(images, labels, 64, 32, np.random.default_rng(0))
    assert clips.shape == (64, 16, 32, 32) and clips.dtype == np.uint8
    again, _, _ = moving.make_clips(images, labels, 64, 32, np.random.default_rng(0))
    assert np.array_equal(clips, again)  # the seed fixes every clip
    other, _, _ = moving.make_clips(images, labels, 64, 32, np.random.default_rng(1))
    assert not np.array_equal(clips, other)
    yy, xx = np.mgrid[:32, :32]
    assert {m["motion"] for m in made} == set(moving.MOTIONS)
    for clip, k, m in zip(clips, classes, made):
        garment, motion = divmod(int(k), 9)
        assert garment == labels[m["image"]] and moving.MOTIONS[motion] == m["motion"]
        mass = clip.reshape(16, -1).sum(1)
        assert (mass == mass[0]).all() and mass[0] > 0  # the whole garment is in every frame
        cy = (clip * yy).reshape(16, -1).sum(1) / mass
        cx = (clip * xx).reshape(16, -1).sum(1) / mass
        if m["motion"] == "bouncing":  # along its faster axis it turns back at a wall at least once
            c = cy if abs(m["velocity"][0]) >= abs(m["velocity"][1]) else cx
            step = np.diff(c)
            assert (step > 0.5).any() and (step < -0.5).any(), (m, step)
            assert np.abs(step).max() <= 2.0  # and never jumps
            continue
        dy, dx = moving.DIRECTIONS[m["motion"]]
        for d, c in ((dy, cy), (dx, cx)):
            moved = c[-1] - c[0]
            assert (moved > 8 if d > 0 else moved < -8 if d < 0 else abs(moved) < 1e-6), (m, moved)


def test_captions_and_prompts_name_the_garment_and_its_motion():
    assert moving.caption(moving.CLASSES.index("sneaker moving left")) == "a sneaker moving left"
    assert moving.caption(moving.CLASSES.index("ankle boot moving up-right")) == "an ankle boot moving up-right"
    assert moving.caption(moving.CLASSES.index("trousers moving down")) == "trousers moving down"
    assert moving.caption(moving.CLASSES.index("ankle boot bouncing")) == "an ankle boot bouncing"
    assert len(moving.CLASSES) == 90 and moving.CLASSES[9:11] == ["trousers moving left", "trousers moving right"]
    assert motion_of("a bag bouncing around") == motion_of("a bag that bounces") == "bouncing"
    assert motion_of("a bag moving up and to the left") == "up-left"
    assert motion_of("a bag moving left and down") == "down-left"
    assert motion_of("a bag moving down-right") == "down-right"
    assert motion_of("a coat moving upwards") == "up"
    assert motion_of("a coat, spinning") is None


def test_two_garments_move_apart_or_together_and_their_class_is_the_pair_either_way_round():
    images, labels = _fmnist_like()
    clips, classes, made = moving.make_pairs(images, labels, 64, 32, np.random.default_rng(0))
    assert clips.shape == (64, 16, 32, 32) and clips.dtype == np.uint8
    again, _, _ = moving.make_pairs(images, labels, 64, 32, np.random.default_rng(0))
    assert np.array_equal(clips, again)
    assert len(moving.PAIR_CLASSES) == 90 and set(moving.PAIR_MOTIONS) == {"apart", "together"}
    for clip, k, m in zip(clips, classes, made):
        left, right = (int(labels[i]) for i in m["images"])
        assert left != right
        pair, motion = divmod(int(k), 2)
        assert moving.PAIRS[pair] == tuple(sorted((left, right))) and moving.PAIR_MOTIONS[motion] == m["motion"]
        lit = [np.flatnonzero(frame.max(0)) for frame in clip]           # the lit columns of each frame
        spread = np.array([c[-1] - c[0] for c in lit])
        grew = spread[-1] - spread[0]
        assert (grew > 7 if m["motion"] == "apart" else grew < -7), (m, spread)
        assert (np.diff(spread) >= 0).all() if m["motion"] == "apart" else (np.diff(spread) <= 0).all()
    assert "a shirt and a bag moving apart" in moving.PAIR_CLASSES
    assert "trousers and a bag moving together" in moving.PAIR_CLASSES
    from tetragen.data.captions import CaptionBuilder
    captions = CaptionBuilder(moving.PAIR_CLASSES)
    k = moving.PAIR_CLASSES.index("a bag and an ankle boot moving apart")
    assert captions.class_prompt(k) == "a bag and an ankle boot moving apart"
    assert "a large dark bag and an ankle boot moving apart" in captions.captions(k, 0, 2)
    from tetragen.modalities.video.pipeline import thing_of
    things = [c.split(" moving ")[0] for c in moving.PAIR_CLASSES]
    assert motion_of("an ankle boot and a bag moving together") == "together"
    assert thing_of("an ankle boot and a bag moving together", things) == "a bag and an ankle boot"
    assert thing_of("bag and ankle boot, moving apart", things) == "a bag and an ankle boot"
    assert thing_of("a shirt and a t-shirt moving apart", things) == "a t-shirt and a shirt"
    assert thing_of("a bag and a hat moving apart", things) is None


@pytest.fixture(scope="module")
def video_run(tmp_path_factory):
    """A tiny moving-fashion-mnist (from the real Fashion-MNIST files) and a cgan trained on it for a few steps."""
    root = tmp_path_factory.mktemp("video")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TETRAGEN_CACHE", str(root / "cache"))
        mp.setenv("TETRAGEN_NO_PROGRESS", "1")
        mp.setitem(moving.VARIANTS, NAME, moving.Variant(NAME, 32, 320, 80))
        cfg = build_run_config("cgan", preset="tiny", overrides=["train.max_steps=2", "train.eval_every=0",
                                                                 "train.eval_samples=0"])
        cfg.data.source = NAME
        data = load_data(cfg)
        Trainer(cfg, data, root / "cgan", progress=False).fit()
        yield root, data


def test_a_clip_set_is_learnt_as_grids_with_a_channel_per_frame(video_run):
    root, data = video_run
    cfg = json.loads((root / "cgan" / "config.json").read_text())
    assert cfg["data"]["kind"] == "video"
    assert (cfg["model"]["image_size"], cfg["model"]["channels"]) == (32, 16)
    assert json.loads((root / "cgan" / "video.json").read_text()) == {"frames": 16, "side": 32, "fps": 10}
    assert data.train.images.shape == (320, 32, 32, 16) and data.test.images.shape == (80, 32, 32, 16)
    manifest = json.loads(next((root / "cache").glob(f"{NAME}-v*/manifest.json")).read_text())
    assert manifest["shape"] == [400, 16, 32, 32] and len(manifest["clips"]) == 400
    assert {c["split"] for c in manifest["clips"]} == {"train", "test"}
    # one garment a clip: its evaluator keeps a score a class (the config of the shipped one, unchanged)
    assert set(data.eval_identity()) == {"front"}


def test_python_sample_returns_clips_and_the_same_seed_gives_the_same_clip(video_run):
    root, _ = video_run
    pipe = tetragen.load(root / "cgan")
    a = pipe.sample(3, seed=5, prompt="a sneaker moving left")
    b = pipe.sample(3, seed=5, labels="sneaker moving left")
    assert a.frames.shape == (3, 16, 32, 32) and a.frames.dtype == np.uint8 and a.fps == 10
    assert np.array_equal(a.frames, b.frames) and list(a.labels) == [pipe.class_index("sneaker moving left")] * 3
    alone = pipe.sample(seeds=[6], labels=["sneaker moving left"])
    assert np.array_equal(alone.frames[0], a.frames[1])  # a clip depends on its own seed only
    bouncing = pipe.sample(2, seed=5, prompt="a sneaker bouncing off the walls")
    assert list(bouncing.labels) == [pipe.class_index("sneaker bouncing")] * 2
    with pytest.raises(UserError, match="names no motion of those the captions use; say one of: moving left, "
                                        "moving right, .*, bouncing"):
        pipe.sample(1, prompt="a sneaker spinning")
    with pytest.raises(UserError, match="names none of the things this model draws"):
        pipe.sample(1, prompt="a hat moving left")


def test_cli_writes_gif_folder_strip_npz_and_refuses_what_it_cannot_write(video_run, tmp_path):
    run = str(video_run[0] / "cgan")
    r = run_cli("sample", run, "--prompt", "a bag moving up", "--n", "3", "--out", str(tmp_path / "a.gif"))
    assert r.returncode == 0, r.stderr
    with Image.open(tmp_path / "a.gif") as im:
        # 16 frames of 100 ms, looping; Pillow writes two identical frames in a row as one of 200 ms (a clip of a
        # model two steps old may hold them), so the frames' durations are what add up to 16 x 100 ms
        durations = []
        for i in range(im.n_frames):
            im.seek(i)
            durations.append(im.info.get("duration"))
        assert im.info.get("loop") == 0 and sum(durations) == 1600 and all(d % 100 == 0 for d in durations)
    assert run_cli("sample", run, "--n", "2", "--out", str(tmp_path / "clips") + "/").returncode == 0
    assert sorted(p.name for p in (tmp_path / "clips").iterdir()) == ["000.gif", "001.gif"]
    assert run_cli("sample", run, "--n", "2", "--out", str(tmp_path / "s.png")).returncode == 0
    with Image.open(tmp_path / "s.png") as im:  # one row per clip, its 16 frames side by side
        assert im.size == (2 + 16 * 32 + 2, 2 * (32 + 2) + 2)
    assert run_cli("sample", run, "--n", "2", "--out", str(tmp_path / "s.npz")).returncode == 0
    with np.load(tmp_path / "s.npz") as z:
        assert z["frames"].shape == (2, 16, 32, 32) and int(z["fps"]) == 10
    (tmp_path / "keep.gif").write_bytes(b"mine")
    for args, says in ((["--out", str(tmp_path / "x.webm")], "--out"),
                       (["--out", str(tmp_path / "keep.gif")], "--out"),
                       (["--prompt", "a sneaker twirling", "--out", str(tmp_path / "t.gif")], "names no motion")):
        r = run_cli("sample", run, "--n", "1", *args)
        assert r.returncode != 0 and says in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert (tmp_path / "keep.gif").read_bytes() == b"mine" and not (tmp_path / "t.gif").exists()


def test_an_mp4_holds_the_gifs_frames_and_without_an_encoder_is_one_line(video_run, tmp_path, monkeypatch):
    """--out x.mp4 (H.264 by imageio-ffmpeg's own ffmpeg, a test dependency): 16 frames that read back as the same
    seed's GIF, to a few grey levels (yuv420p); where no encoder is installed, one line and no file."""
    run = str(video_run[0] / "cgan")
    for name in ("a.mp4", "a.gif"):
        r = run_cli("sample", run, "--prompt", "a bag moving up", "--n", "1", "--seed", "3", "--out",
                    str(tmp_path / name))
        assert r.returncode == 0, r.stderr
    assert (tmp_path / "a.mp4").read_bytes()[4:8] == b"ftyp"
    import imageio.v3 as iio
    movie = iio.imread(tmp_path / "a.mp4", index=None, plugin="FFMPEG")[..., 0].astype(int)
    with Image.open(tmp_path / "a.gif") as im:
        gif = np.stack([np.asarray(im.seek(k) or im.convert("L"), dtype=int) for k in range(im.n_frames)])
    assert movie.shape == gif.shape == (16, 36, 36)
    assert np.abs(movie - gif).mean() < 4, np.abs(movie - gif).mean()
    import importlib
    monkeypatch.setattr(importlib.import_module("tetragen.modalities.video.show"), "movie_codec", lambda: False)
    r = run_cli("sample", run, "--n", "1", "--out", str(tmp_path / "b.mp4"))
    assert r.returncode != 0 and "no MP4 encoder here" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "b.mp4").exists()


def test_the_evaluator_reads_each_frame_also_centred_on_its_garment():
    import torch
    from tetragen.modalities.video.data import ClipFront, centred
    frames = torch.full((1, 2, 32, 32), -1.0)
    frames[0, 0, 2:6, 3:7] = 1.0     # a square at the top left, then at the bottom right
    frames[0, 1, 20:24, 25:29] = 1.0
    moved = centred(frames)
    assert torch.allclose(moved[0, 0], moved[0, 1], atol=1e-5)  # the same picture wherever the square was
    assert torch.equal(moved[0, 0] > 0, torch.nn.functional.pad(torch.ones(4, 4), (14, 14, 14, 14)) > 0)
    assert torch.equal(centred(torch.full((1, 1, 8, 8), -1.0)), torch.full((1, 1, 8, 8), -1.0))  # dark: as it is
    grids = torch.zeros(3, 32, 32, 16, dtype=torch.uint8)
    assert ClipFront()(grids).shape == (3, 32, 32, 32)  # the 16 frames, then the 16 centred
    from tetragen.modalities.video.data import frame_images  # what the image evaluator reads of them
    grids[0, 2:6, 3:7, 0] = 255
    frames = frame_images(grids.numpy())
    assert frames.shape == (48, 28, 28, 1) and frames.dtype == np.uint8
    assert (frames[0, 12:16, 12:16, 0] == 255).all() and frames[0].sum() == 16 * 255  # centred, 2 pixels cut a side


def test_eval_scores_garment_and_motion_apart_with_references_that_break_the_motion(video_run):
    root, data = video_run
    from tetragen.api import evaluate
    metrics, lines = evaluate(root / "cgan", n=40, seed=0)
    for key in ("fid", "kid", "class_acc", "garment_acc", "motion_acc", "ref_train_fid", "ref_still_fid",
                "ref_shuffled_fid", "ref_mixed_fid", "evaluator_test_acc", "drift", "ref_test_drift", "frame_fid",
                "ref_train_frame_fid", "ref_mixed_frame_fid"):
        assert np.isfinite(metrics[key]), key
    # frame by frame in the image evaluator: the real training clips' frames are far closer than two steps of a cgan
    assert metrics["ref_train_frame_fid"] < metrics["frame_fid"] / 2
    assert metrics["class_acc"] <= min(metrics["garment_acc"], metrics["motion_acc"])
    # the real training clips are closer to the test clips than the same test clips frozen, shuffled or mixed
    assert metrics["ref_train_fid"] < min(metrics["ref_still_fid"], metrics["ref_shuffled_fid"],
                                          metrics["ref_mixed_fid"])
    # drift: a frozen clip's garment never changes, a real one's barely (its motion is taken out), a clip whose
    # frames come from different clips changes every frame; shuffling the frames keeps each garment
    assert max(metrics["ref_still_drift"], metrics["ref_test_drift"], metrics["ref_shuffled_drift"]) < 0.1
    assert metrics["ref_mixed_drift"] > 1.0
    # the garment read frame by frame by Fashion-MNIST's image evaluator, which never saw a clip: the real test clips'
    # own garments are read far above chance (0.1)
    assert 0 <= metrics["frame_garment_acc"] <= 1 and metrics["ref_test_frame_garment_acc"] > 0.5
    text = "\n".join(lines)
    assert "FD (video)" in text and "garment" in text and "motion" in text and "temporal drift" in text
    assert "per-frame FID" in text and "per-frame garment accuracy" in text


def test_a_view_reads_each_items_part_as_its_most_frequent_reading():
    from tetragen.data.grids import View

    class Reads:
        def predict(self, seen, device):
            return np.asarray(seen)                                      # each "input" is already its reading

    view = View("t", lambda x: x, lambda device: Reads(), part="garment")
    assert view.read_part(np.array([1, 1, 2, 0, 3, 3, 5, 5, 5]), 3, Reads(), "cpu").tolist() == [1, 3, 5]


def test_a_run_on_two_garments_reads_a_prompt_either_way_round_and_scores_pair_and_motion(tmp_path, monkeypatch):
    pairs = "moving-fashion-mnist-pairs"
    monkeypatch.setenv("TETRAGEN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(moving.VARIANTS, pairs, moving.Variant(pairs, 32, 270, 90, garments=(2,), version=1))
    cfg = build_run_config("cgan", preset="tiny", overrides=["train.max_steps=2", "train.eval_every=0",
                                                             "train.eval_samples=0", "model.layers=2"])
    cfg.data.source = pairs
    data = load_data(cfg)
    assert data.classes == moving.PAIR_CLASSES and data.train.images.shape == (270, 32, 32, 16)
    Trainer(cfg, data, tmp_path / "cgan", progress=False).fit()
    pipe = tetragen.load(tmp_path / "cgan")
    clips = pipe.sample(2, seed=0, prompt="an ankle boot and a bag moving together")
    assert clips.frames.shape == (2, 16, 32, 32)
    assert [moving.PAIR_CLASSES[k] for k in clips.labels] == ["a bag and an ankle boot moving together"] * 2
    with pytest.raises(UserError, match="say one of: moving apart, moving together"):
        pipe.sample(1, prompt="a bag and a shirt moving left")
    from tetragen.api import evaluate
    metrics, _ = evaluate(tmp_path / "cgan", n=30, seed=0)
    assert all(np.isfinite(metrics[k]) for k in ("fid", "class_acc", "garment_acc", "motion_acc", "drift"))
    assert "frame_fid" not in metrics  # a frame of two garments is no Fashion-MNIST image
    # its evaluator scores a class by its parts: the bag (8), the ankle boot (9), then "together" (after the 9+10)
    from tetragen.eval import classifier
    ev = classifier.load_evaluator(data, verbose=False)
    k = moving.PAIR_CLASSES.index("a bag and an ankle boot moving together")
    assert ev.config["class_parts"][k] == [8, 9, 20] and isinstance(ev.classifier.head, classifier.PartsHead)


def test_a_set_of_one_and_two_garments_holds_both_and_reads_each_kind_of_prompt(tmp_path, monkeypatch):
    mixed = "moving-fashion-mnist-mixed"
    monkeypatch.setenv("TETRAGEN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(moving.VARIANTS, mixed, moving.Variant(mixed, 32, 360, 90, garments=(1, 2)))
    variant = moving.VARIANTS[mixed]
    assert variant.classes == moving.CLASSES + moving.PAIR_CLASSES
    garment, motion = variant.parts()
    k = variant.classes.index("a bag and an ankle boot moving apart")
    assert (garment[k], motion[k]) == (10 + moving.PAIRS.index((8, 9)), 9)
    k = variant.classes.index("bag bouncing")
    assert (garment[k], motion[k]) == (8, 8)
    cfg = build_run_config("cgan", preset="tiny", overrides=["train.max_steps=2", "train.eval_every=0",
                                                             "train.eval_samples=0"])
    cfg.data.source = mixed
    data = load_data(cfg)
    assert data.train.images.shape == (360, 32, 32, 16) and len(data.classes) == 180
    manifest = json.loads(next((tmp_path / "cache").glob(f"{mixed}-v2-*/manifest.json")).read_text())
    train = [c for c in manifest["clips"] if c["split"] == "train"]
    assert sum(c["garments"] == 1 for c in train) == sum(c["garments"] == 2 for c in train) == 180
    assert [c["garments"] for c in train[:20]] != sorted(c["garments"] for c in train[:20])  # the kinds interleave
    two = data.train.labels >= len(moving.CLASSES)
    assert (two == np.array([c["garments"] == 2 for c in train])).all()
    Trainer(cfg, data, tmp_path / "cgan", progress=False).fit()
    pipe = tetragen.load(tmp_path / "cgan")
    for prompt, asked in (("a bag moving left", "bag moving left"), ("a shirt bouncing", "shirt bouncing"),
                          ("a bag and a shirt moving together", "a shirt and a bag moving together")):
        assert [pipe.classes[k] for k in pipe.sample(1, seed=0, prompt=prompt).labels] == [asked]
    with pytest.raises(UserError, match="clips of a shirt and a bag are moving apart, moving together"):
        pipe.sample(1, prompt="a bag and a shirt moving left")
    from tetragen.api import evaluate
    metrics, _ = evaluate(tmp_path / "cgan", n=36, seed=0)
    assert all(np.isfinite(metrics[k]) for k in ("fid", "class_acc", "garment_acc", "motion_acc", "drift"))
    assert "frame_fid" not in metrics  # half its clips hold two garments


@pytest.fixture(scope="module")
def live(video_run):
    root, _ = video_run
    server = LiveServer(create_app({"clips": tetragen.load(root / "cgan")}, api_key=KEY,
                                   limits=Limits(max_wait_ms=20, max_images=4))).wait_ready()
    yield server
    server.close()


def test_the_route_returns_looping_gifs_the_same_for_the_same_seed(live):
    url, headers = live.url, {"Authorization": f"Bearer {KEY}"}
    card = next(m for m in httpx.get(f"{url}/v1/models", headers=headers).json()["data"] if m["id"] == "clips")
    assert card["makes"] == "video" and card["frames"] == 16 and "/v1/videos/generations" in card["routes"]
    body = {"model": "clips", "prompt": "a sneaker moving right", "n": 2, "seed": 7}
    r = httpx.post(f"{url}/v1/videos/generations", json=body, headers=headers, timeout=60)
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["frames"], out["fps"], len(out["data"])) == (16, 10, 2)
    with Image.open(io.BytesIO(base64.b64decode(out["data"][0]["b64_json"]))) as im:
        assert im.n_frames == 16 and im.size == (36, 36)
    again = httpx.post(f"{url}/v1/videos/generations", json={**body, "n": 1, "seed": 8}, headers=headers,
                       timeout=60).json()
    assert again["data"][0]["b64_json"] == out["data"][1]["b64_json"]  # clip i of seed s is seed s + i's
    movie = httpx.post(f"{url}/v1/videos/generations", json={**body, "n": 1, "response_format": "mp4"},
                       headers=headers, timeout=60).json()
    assert movie["output_format"] == "mp4" and base64.b64decode(movie["data"][0]["b64_json"])[4:8] == b"ftyp"
    for bad, field in (({"response_format": "webm"}, "response_format"), ({"prompt": "a bag dancing"}, "prompt"),
                       ({"n": 99}, "n")):
        r = httpx.post(f"{url}/v1/videos/generations", json={**body, **bad}, headers=headers, timeout=60)
        assert r.status_code == 400 and r.json()["error"]["param"] == field, r.text


def test_the_playground_shows_the_apis_clips(live, browser):
    from .test_playground import by_id, fill, text_of, wait_for
    driver = browser
    driver.get(f"{live.url}/")
    wait_for(driver, lambda d: by_id(d, "key-form").is_displayed(), "the page did not ask for the API key")
    fill(driver, "api-key", KEY)
    by_id(driver, "key-submit").click()
    wait_for(driver, lambda d: len(d.find_elements("css selector", ".model")) == 1, "no model list")
    assert "(90 classes)" in driver.find_element("css selector", ".model").get_property("textContent")
    driver.find_element("css selector", '.model[data-model="clips"]').click()
    fill(driver, "video-prompt", "a bag moving down-left")
    fill(driver, "video-n", 2)
    fill(driver, "video-seed", 4)
    by_id(driver, "make-video").click()
    wait_for(driver, lambda d: by_id(d, "video-result").get_attribute("data-state") in ("done", "error"), "no clip")
    assert by_id(driver, "video-result").get_attribute("data-state") == "done", text_of(driver, "error")
    shown = driver.execute_script(
        "return [...document.querySelectorAll('#video-clips img')].map(i => [i.src, i.naturalWidth])")
    direct = httpx.post(f"{live.url}/v1/videos/generations", headers={"Authorization": f"Bearer {KEY}"}, timeout=60,
                        json={"model": "clips", "prompt": "a bag moving down-left", "n": 2, "seed": 4}).json()
    assert [s[0].removeprefix("data:image/gif;base64,") for s in shown] == [d["b64_json"] for d in direct["data"]]
    assert all(s[1] == 36 for s in shown)  # the browser decoded each GIF
    assert "seed 4" in text_of(driver, "video-meta") and "16 frames at 10 fps" in text_of(driver, "video-meta")
    problems = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"
                and "status of 401" not in e["message"]]
    assert not problems, problems


def test_a_folder_of_gifs_and_frame_folders_is_video_and_bad_clips_are_skipped_and_listed(tmp_path):
    from tetragen.modalities.video.folder import make_clip_folder
    root = make_clip_folder(tmp_path / "clips", n_per_class=8)
    cfg = build_run_config("cgan", preset="tiny", overrides=["train.max_steps=2", "train.eval_every=0",
                                                             "train.eval_samples=0"])
    cfg.data.source = str(root)
    assert load_data(cfg).kind == "video"  # animated GIFs are clips
    (root / "right" / "still.gif").write_bytes((root / "right" / "000.gif").read_bytes()[:40])  # cut short
    Image.new("L", (32, 32)).save(root / "right" / "one.gif")                                 # one frame
    (root / "down" / "empty.gif").write_bytes(b"")
    mixed = root / "blink" / "mixed"   # a clip as numbered frames, of two sizes
    mixed.mkdir()
    for t in range(4):
        Image.new("L", (32 + 8 * (t % 2), 32), 255 * (t % 2)).save(mixed / f"{t:03d}.png")
    cfg.data.kind = ""
    with pytest.raises(UserError, match=r"more than one kind \(image, video\).*set data.kind"):
        load_data(cfg)  # still pictures and numbered frames look like images too: the user says which
    cfg.data.kind = "video"
    data = load_data(cfg)
    assert cfg.data.kind == "video" and (cfg.model.image_size, cfg.model.channels) == (32, 16)
    assert data.classes == ["blink", "down", "right"]
    assert len(data.train.labels) + len(data.test.labels) == 25  # 24 GIFs and the folder of frames
    assert sorted(s.split(" (")[0] for s in data.train.skipped) == ["down/empty.gif", "right/one.gif",
                                                                     "right/still.gif"]
    Trainer(cfg, data, tmp_path / "run", progress=False).fit()
    clips = tetragen.load(tmp_path / "run").sample(2, seed=0, prompt="blink")
    assert clips.frames.shape == (2, 16, 32, 32)


def test_a_folder_without_clips_is_one_line_and_a_still_gif_is_an_image(tmp_path):
    (tmp_path / "stills" / "a").mkdir(parents=True)
    Image.new("L", (28, 28)).save(tmp_path / "stills" / "a" / "x.gif")
    from tetragen.data.grids import kind_of
    assert kind_of(str(tmp_path / "stills")) == "image"
    (tmp_path / "broken" / "a").mkdir(parents=True)
    (tmp_path / "broken" / "a" / "x.mp4").write_bytes(b"not a movie")
    r = run_cli("train", "cgan", "--data", str(tmp_path / "broken"), "--out", str(tmp_path / "run"),
                "--preset", "tiny", "train.max_steps=1")
    assert r.returncode != 0 and "Traceback" not in r.stderr and "could be read" in r.stderr, r.stderr
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_a_diffusion_run_on_clips_takes_its_sampling_settings_and_a_gan_refuses_them(video_run, tmp_path):
    """The modality's pipeline passes a family's sampling settings through (and the CLI's flags with them)."""
    root, data = video_run
    cfg = build_run_config("diffusion", preset="tiny", overrides=["train.max_steps=2", "train.eval_every=0",
                                                                   "train.eval_samples=0"])
    cfg.data.source = NAME
    Trainer(cfg, load_data(cfg), tmp_path / "diffusion", progress=False).fit()
    pipe = tetragen.load(tmp_path / "diffusion")
    assert "steer" in pipe.capabilities and "steps" in pipe.sampling_options
    two = pipe.sample(2, seed=3, prompt="a bag moving up", steps=2, sampler="euler")
    assert two.frames.shape == (2, 16, 32, 32)
    assert np.array_equal(two.frames, pipe.sample(2, seed=3, prompt="a bag moving up", steps=2, sampler="euler").frames)
    assert not np.array_equal(two.frames, pipe.sample(2, seed=3, prompt="a bag moving up", steps=3,
                                                      sampler="euler").frames)
    r = run_cli("sample", str(tmp_path / "diffusion"), "--prompt", "a bag moving up", "--n", "1", "--steps", "2",
                "--out", str(tmp_path / "d.gif"))
    assert r.returncode == 0 and (tmp_path / "d.gif").is_file(), r.stderr
    gan = tetragen.load(root / "cgan")
    assert "steer" not in gan.capabilities
    with pytest.raises(UserError, match="^steps: a cgan run on video takes no steps"):
        gan.sample(1, seed=0, steps=4)
    r = run_cli("sample", str(root / "cgan"), "--n", "1", "--steps", "4", "--out", str(tmp_path / "g.gif"))
    assert r.returncode != 0 and "takes no steps" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
