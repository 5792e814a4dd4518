"""Sound through the families that learn grids: a cgan trained on a folder of WAV files, sampled from the CLI and
Python, scored by the audio evaluator, and served at /v1/audio/speech to OpenAI's own client."""
from __future__ import annotations

import io
import json
import wave

import httpx
import numpy as np
import openai
import pytest

import tetragen
from tetragen.api import load_data
from tetragen.config import build_run_config
from tetragen.errors import UserError
from tetragen.registry import get_family, list_families
from tetragen.modalities.sound.show import make_sound_folder
from tetragen.serve.app import Limits, create_app
from tetragen.train.trainer import Trainer

from .conftest import one_line_error, run_cli
from .test_serve import LiveServer

KEY = "sk-sound"


@pytest.fixture(scope="module")
def sound_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("sound")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TETRAGEN_CACHE", str(root / "cache"))
        mp.setenv("TETRAGEN_NO_PROGRESS", "1")
        folder = make_sound_folder(root / "clips", n_per_class=8)
        cfg = build_run_config("cgan", preset="tiny", overrides=["train.max_steps=2", "train.eval_every=0",
                                                                 "train.eval_samples=0"])
        cfg.data.source = str(folder)
        data = load_data(cfg)
        Trainer(cfg, data, root / "cgan", progress=False).fit()
        yield root, folder
    # (the cache and runs live under the module's tmp folder)


def test_a_folder_of_wavs_is_sound_learnt_as_64x64_pictures(sound_run):
    root, _ = sound_run
    cfg = json.loads((root / "cgan" / "config.json").read_text())
    assert cfg["data"]["kind"] == "sound"
    assert (cfg["model"]["image_size"], cfg["model"]["channels"]) == (64, 1)
    assert json.loads((root / "cgan" / "sound.json").read_text())["mel"]["sample_rate"] == 16000


def test_python_sample_returns_waves_with_their_rate_and_the_same_seed_gives_the_same_sound(sound_run):
    root, _ = sound_run
    pipe = tetragen.load(root / "cgan")
    a = pipe.sample(3, seed=5, prompt="a low hum")
    b = pipe.sample(3, seed=5, labels="hum")
    assert a.sample_rate == 16000 and a.waves.shape == (3, 16000) and a.waves.dtype == np.float32
    assert np.array_equal(a.waves, b.waves) and np.array_equal(a.labels, [pipe.class_index("hum")] * 3)
    assert a.spectrograms.shape == (3, 64, 64, 1) and np.abs(a.waves).max() <= 1.0
    alone = pipe.sample(seeds=[6], labels=["hum"])
    assert np.array_equal(alone.spectrograms[0], a.spectrograms[1])  # the picture depends on its own seed only
    assert np.array_equal(alone.waves[0], a.waves[1])  # and so does its sound, vocoded alone or in a batch
    with pytest.raises(UserError, match="names none of them; name one of: clicks, hum, whistle"):
        pipe.sample(1, prompt="a banjo")


def test_cli_writes_wav_folder_png_npz_and_refuses_what_it_cannot_write(sound_run, tmp_path):
    root, _ = sound_run
    run = str(root / "cgan")
    r = run_cli("sample", run, "--prompt", "whistle", "--n", "2", "--seed", "3", "--out", str(tmp_path / "a.wav"))
    assert r.returncode == 0, r.stderr
    with wave.open(str(tmp_path / "a.wav")) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
        assert w.getnframes() == 2 * 16000 + 4000  # two clips and the quarter second between them
    assert run_cli("sample", run, "--n", "3", "--out", str(tmp_path / "clips") + "/").returncode == 0
    assert sorted(p.name for p in (tmp_path / "clips").iterdir()) == ["000.wav", "001.wav", "002.wav"]
    assert run_cli("sample", run, "--n", "3", "--out", str(tmp_path / "s.png")).returncode == 0
    assert run_cli("sample", run, "--n", "3", "--out", str(tmp_path / "s.npz")).returncode == 0
    with np.load(tmp_path / "s.npz") as z:
        assert z["waves"].shape == (3, 16000) and int(z["sample_rate"]) == 16000 and z["labels"].shape == (3,)
    for args, needle in [(["--out", str(tmp_path / "x.mp3")], "unknown file type '.mp3'"),
                         (["--prompt", "banjo", "--out", str(tmp_path / "y.wav")], "names none of them"),
                         (["--out", str(tmp_path / "a.wav")], "already exists")]:
        before = (tmp_path / "a.wav").read_bytes()
        r = run_cli("sample", run, "--n", "1", *args)
        assert r.returncode != 0 and needle in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert (tmp_path / "a.wav").read_bytes() == before
    assert not (tmp_path / "x.mp3").exists() and not (tmp_path / "y.wav").exists()


def test_eval_scores_samples_as_audio_with_the_references(sound_run):
    root, _ = sound_run
    r = run_cli("eval", str(root / "cgan"), "--n", "12", "--json")
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout)
    for key in ("fid", "kid", "class_acc", "ref_train_fid", "ref_griffinlim_fid", "ref_noise_fid",
                "evaluator_test_acc"):
        assert key in m, key
    assert m["ref_noise_fid"] > 0 and m["ref_griffinlim_fid"] >= 0


def test_a_key_checked_against_the_image_size_is_checked_at_the_sounds_size(sound_run, tmp_path):
    """model.downsample=8 divides sound's 64x64 pictures but not the 28 of a vqvae's own default: the modality sets
    the shape before the run's keys are checked, so the run needs no model.image_size written out."""
    _, folder = sound_run
    common = ["train", "vqvae", "--data", str(folder), "--preset", "tiny", "train.max_steps=1", "train.eval_every=0",
              "train.eval_samples=0"]
    r = run_cli(*common, "--out", str(tmp_path / "run"), "model.downsample=8")
    assert r.returncode == 0, r.stderr
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (cfg["model"]["image_size"], cfg["model"]["downsample"]) == (64, 8)
    assert "sound, learnt as 64x64x1 log-mel pictures" in r.stderr      # what it changed, said once the keys pass
    r = run_cli(*common, "--out", str(tmp_path / "bad"), "model.downsample=3")
    one_line_error(r, "model.downsample (3) must be a power of 2")
    assert not (tmp_path / "bad").exists()


@pytest.fixture(scope="module")
def live(sound_run):
    root, _ = sound_run
    server = LiveServer(create_app({"words": tetragen.load(root / "cgan")}, api_key=KEY,
                                   limits=Limits(max_wait_ms=20))).wait_ready()
    yield server
    server.close()


def test_openai_client_speech_is_a_wav_equal_for_equal_seeds(live):
    client = openai.OpenAI(base_url=f"{live.url}/v1", api_key=KEY, max_retries=0, timeout=60)
    a = client.audio.speech.create(model="words", voice="alloy", input="say hum", response_format="wav",
                                   extra_body={"seed": 11}).content
    b = client.audio.speech.create(model="words", voice="echo", input="HUM", extra_body={"seed": 11}).content
    assert a == b and a[:4] == b"RIFF" and a[8:16] == b"WAVEfmt "
    with wave.open(io.BytesIO(a)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()) == (16000, 1, 2, 16000)
    pcm = client.audio.speech.create(model="words", voice="alloy", input="hum", response_format="pcm",
                                     extra_body={"seed": 11}).content
    assert len(pcm) == 2 * 24000  # OpenAI's pcm: 24 kHz 16-bit mono
    card = next(m for m in httpx.get(f"{live.url}/v1/models", headers={"Authorization": f"Bearer {KEY}"})
                .json()["data"] if m["id"] == "words")
    assert card["makes"] == "sound" and "/v1/audio/speech" in card["routes"] and card["sample_rate"] == 16000


@pytest.mark.parametrize("body, status, needle, param", [
    ({"response_format": "mp3"}, 400, "use one of: wav, pcm", "response_format"),
    ({"speed": 1.5}, 400, "only 1.0", "speed"),
    ({"speed": 9.0}, 400, "", None),
    ({"input": "a banjo"}, 400, "name one of: clicks, hum, whistle", "input"),
    ({"model": "nope"}, 404, "not found", "model"),
])
def test_bad_speech_requests_are_4xx_json_errors(live, body, status, needle, param):
    r = httpx.post(f"{live.url}/v1/audio/speech", json={"model": "words", "input": "hum", "voice": "alloy", **body},
                   headers={"Authorization": f"Bearer {KEY}"}, timeout=60)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert needle in err["message"] and "Traceback" not in r.text
    if param:
        assert err["param"] == param


def test_the_playground_plays_the_apis_wav_and_draws_its_spectrogram(live, browser, tmp_path):
    from .test_playground import by_id, fill, text_of, wait_for
    driver = browser
    driver.get(f"{live.url}/")
    wait_for(driver, lambda d: by_id(d, "key-form").is_displayed(), "the page did not ask for the API key")
    fill(driver, "api-key", KEY)
    by_id(driver, "key-submit").click()
    wait_for(driver, lambda d: len(d.find_elements("css selector", ".model")) == 1, "no model list")
    assert "a word (3 classes)" in driver.find_element("css selector", ".model").get_property("textContent")
    driver.find_element("css selector", '.model[data-model="words"]').click()
    fill(driver, "sound-prompt", "whistle")
    fill(driver, "sound-seed", 4)
    by_id(driver, "say").click()
    wait_for(driver, lambda d: by_id(d, "sound-result").get_attribute("data-state") in ("done", "error"), "no clip")
    assert by_id(driver, "sound-result").get_attribute("data-state") == "done", text_of(driver, "error")
    # the audio element's source: the bytes of a playable WAV, equal to the API's for the same seed
    shown = driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const audio = document.getElementById("sound-audio");
        if (audio.readyState >= 1) done([audio.src, audio.duration]);
        else audio.addEventListener("loadedmetadata", () => done([audio.src, audio.duration]), {once: true});""")
    import base64
    direct = httpx.post(f"{live.url}/v1/audio/speech", headers={"Authorization": f"Bearer {KEY}"}, timeout=60,
                        json={"model": "words", "input": "whistle", "voice": "alloy", "seed": 4}).content
    assert base64.b64decode(shown[0].removeprefix("data:audio/wav;base64,")) == direct and abs(shown[1] - 1.0) < 0.01  # it decoded: one second long
    size = driver.execute_script("const c = document.getElementById('sound-spectrogram'); return [c.width, c.height]")
    assert size == [122, 256]  # (16000 - 512) / 128 + 1 frames of 256 bins
    assert "seed 4" in text_of(driver, "sound-meta") and "voice 'alloy' was ignored" in text_of(driver, "sound-meta")
    driver.save_screenshot(str(tmp_path / "sound.png"))
    problems = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"
                and "status of 401" not in e["message"]]
    assert not problems, problems


GRID_FAMILIES = [n for n in list_families() if get_family(n).grids]


@pytest.mark.parametrize("family", GRID_FAMILIES)
def test_every_family_that_learns_grids_trains_on_sound_and_makes_clips(family, sound_run, tmp_path, monkeypatch):
    """No family names sound: each one trains on the sound example through the modality, and a run that draws gives
    clips (a tokenizer gives back pictures of its test clips)."""
    root, folder = sound_run
    monkeypatch.setenv("TETRAGEN_CACHE", str(root / "cache"))
    cfg = build_run_config(family, preset="tiny", overrides=["train.max_steps=1", "train.eval_every=0",
                                                             "train.eval_samples=0"])
    cfg.data.source = str(folder)
    Trainer(cfg, load_data(cfg), tmp_path / family, progress=False).fit()
    pipe = tetragen.load(tmp_path / family)
    assert pipe.config.data.kind == "sound"
    if pipe.capabilities & {"sample", "prompt"}:
        sound = pipe.sample(2, seed=0)
        assert sound.waves.shape == (2, 16000) and sound.sample_rate == 16000
    else:
        data = load_data(pipe.config, pipe.assets)
        assert pipe.reconstruct(data.test.images[:2]).shape == (2, 64, 64, 1)
