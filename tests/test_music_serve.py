"""Music served: POST /v1/music/generations gives scores as JSON (frames, token text, base64 MIDI and WAV), the
same piece for the same seed whatever else is asked with it, 4xx JSON errors for bad requests; /v1/models says the
model makes music; the playground plays the WAV and draws the piano roll."""
from __future__ import annotations

import base64
import concurrent.futures

import httpx
import pytest

import tetragen
from tetragen.api import load_data
from tetragen.config import build_run_config
from tetragen.modalities.music.midi import midi_metre, read_midi
from tetragen.modalities.music.show import example
from tetragen.serve.app import Limits, create_app
from tetragen.train.trainer import Trainer

from .test_serve import LiveServer

KEY = "sk-music"
HEADERS = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    root = tmp_path_factory.mktemp("music-serve")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TETRAGEN_CACHE", str(root / "cache"))
        mp.setenv("TETRAGEN_NO_PROGRESS", "1")
        cfg = build_run_config("gpt", preset="tiny", overrides=["train.max_steps=20", "train.eval_every=0"])
        cfg.data.source = example(root / "data")
        Trainer(cfg, load_data(cfg), root / "gpt", progress=False).fit()
        cfg = build_run_config("bert", preset="tiny", overrides=["train.max_steps=4", "train.eval_every=0"])
        cfg.data.source = example(root / "data")
        Trainer(cfg, load_data(cfg), root / "bert", progress=False).fit()
        cfg = build_run_config("bert", preset="tiny", overrides=["train.max_steps=2", "train.eval_every=0",
                                                                 "data.tokenizer=events"])
        cfg.data.source = example(root / "data")
        Trainer(cfg, load_data(cfg), root / "bert-events", progress=False).fit()
        pipes = {"chorales": tetragen.load(root / "gpt"), "harmony": tetragen.load(root / "bert"),
                 "harmony-events": tetragen.load(root / "bert-events")}
        server = LiveServer(create_app(pipes, api_key=KEY, limits=Limits(max_wait_ms=20))).wait_ready()
        yield server
        server.close()


def _post(live, **body):
    return httpx.post(f"{live.url}/v1/music/generations", json={"model": "chorales", **body}, headers=HEADERS,
                      timeout=120)


def test_a_generation_is_midi_wav_frames_and_token_text_equal_for_equal_seeds(live):
    r = _post(live, prompt="toy chorale in c major", n=2, seed=3, max_frames=8)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["seed"] == 3 and len(doc["data"]) == 2
    piece = doc["data"][1]
    midi = base64.b64decode(piece["midi"])
    frames, _ = read_midi(midi, "piece.mid")
    assert frames[:len(piece["frames"])] == piece["frames"] and 1 <= len(piece["frames"]) <= 8
    assert piece["tokens"].startswith("<bos> toy chorale in c major") and piece["prompt"].startswith("toy chorale")
    assert base64.b64decode(piece["wav"])[:4] == b"RIFF"
    alone = _post(live, prompt="toy chorale in c major", n=1, seed=4, max_frames=8, audio=False).json()
    assert alone["data"][0]["frames"] == piece["frames"] and alone["data"][0]["wav"] is None
    card = next(m for m in httpx.get(f"{live.url}/v1/models", headers=HEADERS).json()["data"] if m["id"] == "chorales")
    assert card["makes"] == "music" and "/v1/music/generations" in card["routes"]
    assert card["styles"] == ["toy chorale"]


def test_concurrent_requests_get_their_own_seeds_pieces(live):
    ask = [dict(prompt="toy chorale", n=1, seed=s, max_frames=6, audio=False) for s in (10, 11, 12, 13)]
    alone = [_post(live, **a).json()["data"][0]["frames"] for a in ask]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda a: _post(live, **a).json()["data"][0]["frames"], ask))
    assert together == alone


@pytest.mark.parametrize("body, status, needle", [
    ({"n": 99}, 400, "99 is out of range"),
    ({"max_frames": 0}, 400, "0 is out of range"),
    ({"temperature": -1.0}, 400, "-1.0 is out of range"),
    ({"prompt": 5}, 422, "valid string"),
    ({"instrument": "banjo"}, 422, "extra inputs"),
    ({"model": "nope"}, 404, "not found"),
])
def test_bad_music_requests_are_4xx_json_errors(live, body, status, needle):
    r = _post(live, **body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert needle in err["message"].lower() and "Traceback" not in r.text


def test_the_playground_plays_the_wav_and_draws_the_piano_roll(live, browser, tmp_path):
    from .test_playground import by_id, fill, text_of, wait_for
    driver = browser
    driver.get(f"{live.url}/")
    wait_for(driver, lambda d: by_id(d, "key-form").is_displayed(), "the page did not ask for the API key")
    fill(driver, "api-key", KEY)
    by_id(driver, "key-submit").click()
    wait_for(driver, lambda d: len(d.find_elements("css selector", ".model")) == 3, "no model list")
    assert "a style (toy chorale)" in driver.find_element("css selector", '.model[data-model="chorales"]').get_property(
        "textContent")
    driver.find_element("css selector", '.model[data-model="chorales"]').click()
    fill(driver, "music-prompt", "toy chorale in g major")
    fill(driver, "music-seed", 5)
    fill(driver, "music-frames", 8)
    by_id(driver, "compose").click()
    wait_for(driver, lambda d: by_id(d, "music-result").get_attribute("data-state") in ("done", "error"), "no piece")
    assert by_id(driver, "music-result").get_attribute("data-state") == "done", text_of(driver, "error")
    src = by_id(driver, "music-audio").get_attribute("src")
    direct = _post(live, prompt="toy chorale in g major", seed=5, max_frames=8).json()["data"][0]
    assert src == f"data:audio/wav;base64,{direct['wav']}"
    assert by_id(driver, "music-midi").get_attribute("href") == f"data:audio/midi;base64,{direct['midi']}"
    width = driver.execute_script("return document.getElementById('music-roll').width")
    assert width == 8 * len(direct["frames"])
    assert "seed 5" in text_of(driver, "music-meta")
    problems = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"
                and "status of 401" not in e["message"]]
    assert not problems, problems


def test_a_primer_midi_starts_each_piece_and_a_bad_one_is_a_400(live):
    from tetragen.modalities.music.midi import midi_bytes
    primer = [[48, 60], [53, 65]]
    r = _post(live, prompt="toy chorale", n=2, seed=1, max_frames=3, audio=False,
              primer_midi=base64.b64encode(midi_bytes([primer])).decode())
    assert r.status_code == 200, r.text
    assert all(p["frames"][:2] == primer for p in r.json()["data"])
    bad = _post(live, primer_midi=base64.b64encode(b"not a midi file").decode())
    assert bad.status_code == 400 and "primer: not a readable MIDI file" in bad.json()["error"]["message"]
    assert _post(live, primer_midi="***").status_code == 400


def test_a_masked_lm_harmonises_a_melody_and_a_causal_one_is_refused(live):
    melody = [67, 67, 69, 71, None, 72]
    r = httpx.post(f"{live.url}/v1/music/harmonisations", headers=HEADERS, timeout=120,
                   json={"model": "harmony", "melody": melody, "prompt": "toy chorale", "seed": 2})
    assert r.status_code == 200, r.text
    [piece] = r.json()["data"]
    assert [f[-1] if f else None for f in piece["frames"]] == melody
    assert base64.b64decode(piece["wav"])[:4] == b"RIFF"
    assert base64.b64decode(piece["midi"])[:4] == b"MThd"
    wrong = httpx.post(f"{live.url}/v1/music/harmonisations", headers=HEADERS, timeout=60,
                       json={"model": "chorales", "melody": melody})
    assert wrong.status_code == 400 and "bert runs do" in wrong.json()["error"]["message"]
    bad = httpx.post(f"{live.url}/v1/music/harmonisations", headers=HEADERS, timeout=60,
                     json={"model": "harmony", "melody": [60, 300]})
    assert bad.status_code == 400 and "melody[1]" in bad.json()["error"]["message"]
    # a run in events harmonises too, its MIDI in bars of the prompt's metre with the melody's durations
    r = httpx.post(f"{live.url}/v1/music/harmonisations", headers=HEADERS, timeout=120,
                   json={"model": "harmony-events", "melody": melody, "prompt": "toy chorale 3/4", "seed": 2,
                         "audio": False})
    assert r.status_code == 200, r.text
    [piece] = r.json()["data"]
    assert [f[-1] if f else None for f in piece["frames"]] == melody and "<bar> @0" in piece["tokens"]
    assert midi_metre(base64.b64decode(piece["midi"])) == "3/4"
    card = next(m for m in httpx.get(f"{live.url}/v1/models", headers=HEADERS).json()["data"] if m["id"] == "harmony")
    assert card["makes"] == "music" and "/v1/music/harmonisations" in card["routes"] and card["harmonises"]
