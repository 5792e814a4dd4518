"""`tetragen serve` over real HTTP: the official `openai` client against a uvicorn server in this process (tiny runs
trained once for the module), OpenAI's error shape for every error class, /health and /metrics, concurrent
requests decoded in one batch with per-request determinism, and the real CLI entry point."""
from __future__ import annotations

import base64
import io
import json
import logging
import re
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import httpx
import numpy as np
import openai
import pytest
import uvicorn
from PIL import Image

import tetragen
from tetragen.api import finetune, load_data
from tetragen.config import build_run_config
from tetragen.sample.tokens import SamplingParams
from tetragen.serve import Limits, create_app
from tetragen.serve.batching import ModelWorker, Sequence
from tetragen.modalities.text.schemas import ChatMessage, render_chat
from tetragen.train.trainer import Trainer

from .conftest import make_corpus, make_image_folder, one_line_error, run_cli

KEY = "test-key-123"


def train_tiny(family, source, out, *overrides):
    cfg = build_run_config(family, preset="tiny", overrides=["train.eval_tokens=256", "train.warmup_steps=0",
                                                             "train.eval_every=0", *overrides])
    cfg.data.source = str(source)
    Trainer(cfg, load_data(cfg), out, progress=False).fit()
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Tiny runs of every kind the server routes: text generation, fill-mask, classification, unconditional,
    class-conditional, prompted and edited images, class-conditional sound and video, and music (drawn, and
    harmonised)."""
    root = tmp_path_factory.mktemp("serve")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TETRAGEN_CACHE", str(root / "cache"))
        mp.setenv("TETRAGEN_NO_PROGRESS", "1")
        corpus = root / "corpus.txt"
        corpus.write_text(make_corpus(), encoding="utf-8")
        images = make_image_folder(root / "images")
        train_tiny("gpt", corpus, root / "gpt", "train.max_steps=10")
        train_tiny("bert", corpus, root / "bert", "train.max_steps=2")
        rows = root / "rows.csv"
        rows.write_text("text,label\n" + "".join(f"{'good fine' if i % 2 else 'bad sad'} the and,"
                                                 f"{'pos' if i % 2 else 'neg'}\n" for i in range(40)),
                        encoding="utf-8")
        finetune(root / "bert", str(rows), root / "cls", task="classify", progress=False,
                 overrides=["train.max_steps=2", "train.warmup_steps=0", "train.eval_every=0"])
        train_tiny("dcgan", images, root / "dcgan", "train.max_steps=1", "train.eval_samples=0")
        train_tiny("cgan", images, root / "cgan", "train.max_steps=1", "train.eval_samples=0")
        from tetragen.modalities.sound.show import make_sound_folder
        train_tiny("cgan", make_sound_folder(root / "clips", n_per_class=4), root / "words", "train.max_steps=1",
                   "train.eval_samples=0")
        from tetragen.modalities.music.show import example as music_example
        scores = music_example(root / "music")
        train_tiny("gpt", scores, root / "chorales", "train.max_steps=2")
        train_tiny("bert", scores, root / "harmony", "train.max_steps=2")
        from tetragen.modalities.video.folder import make_clip_folder
        train_tiny("cgan", make_clip_folder(root / "gifs", n_per_class=4), root / "video", "train.max_steps=1",
                   "train.eval_samples=0")
        train_tiny("diffusion", images, root / "diffusion", "train.max_steps=2", "train.eval_samples=0")
        train_tiny("vqvae", images, root / "tok", "train.max_steps=2")
        train_tiny("t2i", images, root / "t2i", "model.prior=causal", "train.max_steps=2",
                   f"model.tokenizer_run={root / 'tok'}")
    return root


class LiveServer:
    """A real uvicorn server on a free localhost port, in a thread of this process."""

    def __init__(self, app):
        self.app = app
        # IPPROTO_TCP named, as `tetragen serve` binds: asyncio turns Nagle's algorithm off only on sockets that say
        # they are TCP, and with it on every response waited ~40 ms for the client's delayed ACK
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            assert time.time() < deadline and self.thread.is_alive(), "the server did not start"
            time.sleep(0.01)

    def wait_ready(self, headers=None):
        deadline = time.time() + 30
        while httpx.get(f"{self.url}/health").status_code != 200:
            assert time.time() < deadline, "the models did not load"
            time.sleep(0.02)
        return self

    def close(self):
        self.server.should_exit = True
        self.thread.join(15)


@pytest.fixture(scope="module")
def pipes(runs):
    return {name: tetragen.load(runs / name) for name in ("gpt", "bert", "cls", "dcgan", "cgan", "t2i")}


@pytest.fixture(scope="module")
def live(pipes):
    server = LiveServer(create_app(pipes, api_key=KEY, limits=Limits(max_wait_ms=20))).wait_ready()
    yield server
    server.close()


@pytest.fixture
def client(live):
    return openai.OpenAI(base_url=f"{live.url}/v1", api_key=KEY, max_retries=0, timeout=60)


def post(live, route, body, *, key=KEY, **kw):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    content = body if isinstance(body, (bytes, str)) or hasattr(body, "__next__") else json.dumps(body)
    return httpx.post(f"{live.url}{route}", content=content, headers={**headers, "Content-Type": "application/json"},
                      timeout=60, **kw)


def openai_error(r, status, *needles, param=None):
    """`r` failed with `status` in OpenAI's error shape, its message naming each of `needles`."""
    assert r.status_code == status, (r.status_code, r.text)
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and isinstance(err["message"], str), err
    assert "Traceback" not in r.text and "File \"" not in r.text, r.text
    for n in needles:
        assert n in err["message"], err
    if param is not None:
        assert err["param"] == param, err
    return err


# ----------------------------------------------------------------------------------------------------------------
# the openai client

def test_completions_plain_streamed_seeded_and_counted(client):
    kw = dict(model="gpt", prompt="ROMEO:", max_tokens=12, temperature=1.0, seed=3)
    a = client.completions.create(**kw)
    assert a.object == "text_completion" and len(a.choices) == 1
    text = a.choices[0].text
    assert len(text) == 12 and a.choices[0].finish_reason == "length"  # a character tokenizer: a char per token
    assert (a.usage.prompt_tokens, a.usage.completion_tokens, a.usage.total_tokens) == (6, 12, 18)
    assert client.completions.create(**kw).choices[0].text == text
    assert client.completions.create(**{**kw, "seed": 4}).choices[0].text != text
    chunks = list(client.completions.create(**kw, stream=True))
    assert "".join(c.choices[0].text for c in chunks) == text
    assert chunks[-1].choices[0].finish_reason == "length"
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])
    # echo, n choices (seed, seed+1, ...) and a list of prompts
    echoed = client.completions.create(**kw, echo=True).choices[0].text
    assert echoed == "ROMEO:" + text
    many = client.completions.create(**{**kw, "prompt": ["ROMEO:", "JULIET:"]}, n=2)
    assert [c.index for c in many.choices] == [0, 1, 2, 3]
    assert many.choices[0].text == text
    assert many.usage.prompt_tokens == 6 + 7 and many.usage.completion_tokens == 4 * 12


def test_stop_strings_end_the_text(client):
    kw = dict(model="gpt", prompt="JULIET:", max_tokens=24, temperature=1.0, seed=11)
    text = client.completions.create(**kw).choices[0].text
    stop = text[6:8]
    cut = text.find(stop)
    r = client.completions.create(**kw, stop=[stop, "\x00never"])
    assert r.choices[0].text == text[:cut] and r.choices[0].finish_reason == "stop"
    assert r.usage.completion_tokens == cut + len(stop)
    streamed = list(client.completions.create(**kw, stop=stop, stream=True))
    assert "".join(c.choices[0].text for c in streamed) == text[:cut]
    assert streamed[-1].choices[0].finish_reason == "stop"


def test_chat_plain_and_streamed(client, pipes):
    # the tiny model reads 32 characters: one short message
    assert render_chat([ChatMessage(role="system", content="Be."), ChatMessage(role="user", content="Hi")]) == \
        "SYSTEM:\nBe.\n\nUSER:\nHi\n\nASSISTANT:\n"
    messages = [{"role": "user", "content": "ROMEO:"}]
    kw = dict(model="gpt", messages=messages, max_tokens=20, temperature=1.0, seed=5)
    a = client.chat.completions.create(**kw)
    assert a.object == "chat.completion" and a.choices[0].message.role == "assistant"
    content = a.choices[0].message.content
    assert a.choices[0].finish_reason in ("stop", "length") and "\n\n" not in content
    prompt = render_chat([ChatMessage(**m) for m in messages])
    assert a.usage.prompt_tokens == len(pipes["gpt"].tokenizer.encode(prompt))
    assert client.chat.completions.create(**kw).choices[0].message.content == content
    chunks = list(client.chat.completions.create(**kw, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == content
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == a.usage.completion_tokens
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == a.choices[0].finish_reason


def png(b64):
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))))


def test_images_from_a_prompt_a_class_name_or_nothing(client, live):
    a = client.images.generate(model="t2i", prompt="a large disc", n=2, response_format="b64_json",
                               extra_body={"seed": 1})
    first = [png(d.b64_json) for d in a.data]
    assert len(first) == 2 and first[0].shape == (28, 28) and first[0].dtype == np.uint8
    b = client.images.generate(model="t2i", prompt="a large disc", n=2, extra_body={"seed": 1})
    assert all(np.array_equal(x, png(d.b64_json)) for x, d in zip(first, b.data))
    c = client.images.generate(model="cgan", prompt="DISC", n=3, extra_body={"seed": 2})
    assert [d.revised_prompt for d in c.data] == ["disc"] * 3
    cycle = post(live, "/v1/images/generations", {"model": "cgan", "prompt": "", "n": 3, "seed": 2}).json()
    assert sorted(d["revised_prompt"] for d in cycle["data"]) == ["bar", "disc", "square"]
    r = post(live, "/v1/images/generations", {"model": "dcgan", "prompt": "a cat", "seed": 3})
    assert r.status_code == 200 and "unconditional" in r.json()["warnings"][0]
    assert png(r.json()["data"][0]["b64_json"]).shape == (28, 28)
    openai_error(post(live, "/v1/images/generations", {"model": "cgan", "prompt": "zebra"}), 400, "zebra",
                 "disc", param="prompt")
    openai_error(post(live, "/v1/images/generations", {"model": "t2i", "prompt": "a disc", "size": "64x64"}),
                 400, "28x28", param="size")
    openai_error(post(live, "/v1/images/generations", {"model": "t2i", "prompt": "a disc",
                                                       "response_format": "url"}), 400, "b64_json")
    openai_error(post(live, "/v1/images/generations", {"model": "gpt", "prompt": "a disc"}), 400, "gpt",
                 param="model")


@pytest.mark.parametrize("model", ["t2i", "cgan"])
def test_concurrent_image_requests_are_drawn_together_and_stay_seeded(live, model):
    """Requests arriving together share forward passes, and a seeded request's images are the ones it gets alone."""
    prompts = {"t2i": ["a large disc", "a bar", "a small square", "a disc"], "cgan": ["disc", "bar", "square", ""]}
    asks = [{"model": model, "prompt": prompts[model][k % 4], "n": 1 + k % 3, "seed": 100 + k} for k in range(8)]
    alone = [post(live, "/v1/images/generations", a).json()["data"] for a in asks]

    def batches() -> tuple[float, float]:
        text = httpx.get(f"{live.url}/metrics", headers={"Authorization": f"Bearer {KEY}"}).text
        count = float(re.search(rf'tetragen_batch_size_count{{model="{model}"}} (\S+)', text).group(1))
        rows = float(re.search(rf'tetragen_batch_size_sum{{model="{model}"}} (\S+)', text).group(1))
        return count, rows
    before = batches()
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda a: post(live, "/v1/images/generations", a).json()["data"], asks))
    after = batches()
    assert together == alone  # same seeds and prompts, the same PNGs, whatever was drawn beside them
    draws, rows = after[0] - before[0], after[1] - before[1]
    assert rows == sum(a["n"] for a in asks) and draws < len(asks), (draws, rows)  # fewer draws than requests


def test_fill_mask_and_classify(live):
    r = post(live, "/v1/fill-mask", {"model": "bert", "text": ["the [MASK] and", "a [MASK] b [MASK]"], "top_k": 3})
    data = r.json()["data"]
    assert r.status_code == 200 and [len(d["masks"]) for d in data] == [1, 2]
    assert all(len(m) == 3 and all(0 <= c["score"] <= 1 for c in m) for d in data for m in d["masks"])
    openai_error(post(live, "/v1/fill-mask", {"model": "bert", "text": "no mask here"}), 400, "[MASK]",
                 param="text")
    r = post(live, "/v1/classify", {"model": "cls", "text": "good fine the"})
    (item,) = r.json()["data"]
    assert set(item["scores"]) == {"pos", "neg"} and abs(sum(item["scores"].values()) - 1) < 1e-5
    assert item["label"] == max(item["scores"], key=item["scores"].get)
    long = post(live, "/v1/classify", {"model": "cls", "text": "good " * 40}).json()["data"][0]
    assert "longer than the model's context" in long["warnings"][0]
    openai_error(post(live, "/v1/classify", {"model": "bert", "text": "x"}), 400, "classif", param="model")


def test_models_route_lists_capabilities(client, live):
    cards = {m.id: m for m in client.models.list()}
    assert set(cards) == {"gpt", "bert", "cls", "dcgan", "cgan", "t2i"}
    assert cards["gpt"].capabilities == ["generate"] and cards["t2i"].family == "t2i"
    assert cards["gpt"].routes == ["/v1/chat/completions", "/v1/completions"] and cards["gpt"].context == 32
    assert sorted(cards["cgan"].classes) == ["bar", "disc", "square"]  # its prompt is a class name
    assert "classes" not in cards["t2i"].model_extra and cards["t2i"].routes == ["/v1/images/generations"]
    assert "classify" in cards["cls"].capabilities and "classify" not in cards["bert"].capabilities
    assert client.models.retrieve("cgan").id == "cgan"


class StreamOnly:
    """A text pipeline without batched decoding (no `slot_decoder`): the worker streams it one sequence at a time."""
    capabilities = frozenset({"generate"})

    def __init__(self, pipe):
        self.model, self.tokenizer, self.config, self.stream = pipe.model, pipe.tokenizer, pipe.config, pipe.stream


@pytest.mark.parametrize("batched", [True, False], ids=["slot-decoder", "stream"])
def test_the_workers_decoding_equals_the_pipelines_own_generate(pipes, batched):
    """The worker's per-slot KV-cached decoding (three sequences in four slots, past the context window, where each
    re-encodes its latest half), or a pipeline's own stream where it offers no batched decoding, gives exactly the
    text `tetragen.load(run).generate` gives for the same seed and settings."""
    pipe = pipes["gpt"]
    worker = ModelWorker("g", pipe if batched else StreamOnly(pipe), max_batch=4, max_wait_ms=50)
    assert (worker.decoder is not None) == batched
    try:
        settings = [(0, SamplingParams(1.0)), (1, SamplingParams(0.8, 5, 0.9, 0.05, 1.3)), (2, SamplingParams(0))]
        outs, done = [[] for _ in settings], [threading.Event() for _ in settings]

        def emitter(i):
            return lambda kind, value: outs[i].append(value) if kind == "text" else done[i].set()
        worker.submit([Sequence(pipe.tokenizer.encode("ROMEO:"), 80, p, [], emitter(i), seed=seed, prompt="ROMEO:")
                       for i, (seed, p) in enumerate(settings)])
        for i, (seed, p) in enumerate(settings):
            assert done[i].wait(30)
            assert "".join(outs[i]) == pipe.generate("ROMEO:", 80, temperature=p.temperature, top_k=p.top_k,
                                                     top_p=p.top_p, min_p=p.min_p,
                                                     repetition_penalty=p.repetition_penalty, seed=seed)
    finally:
        worker.close()


# ----------------------------------------------------------------------------------------------------------------
# errors

def test_every_error_class_has_its_status_and_openai_shape(live, client):
    base = {"model": "gpt", "prompt": "ROMEO:", "max_tokens": 4}
    openai_error(post(live, "/v1/completions", b"{not json"), 400, "JSON")
    openai_error(post(live, "/v1/completions", b"[1, 2]"), 400, "JSON object")
    openai_error(post(live, "/v1/completions", {**base, "max_tokens": "four"}), 422, "max_tokens",
                 param="max_tokens")
    openai_error(post(live, "/v1/completions", {"prompt": "x"}), 422, "model", param="model")
    openai_error(post(live, "/v1/completions", {**base, "temperature": 5}), 400, "temperature", "0 to 2",
                 param="temperature")
    openai_error(post(live, "/v1/completions", {**base, "top_p": 0}), 400, "top_p", "> 0 and <= 1", param="top_p")
    openai_error(post(live, "/v1/completions", {**base, "max_tokens": 10 ** 6}), 400, "max_tokens", "0 to 4096")
    openai_error(post(live, "/v1/completions", {**base, "n": 99}), 400, "n", "1 to 16", param="n")
    openai_error(post(live, "/v1/completions", {**base, "stop": ["a", "b", "c", "d", "e"]}), 400, "stop")
    openai_error(post(live, "/v1/completions", {**base, "logprobs": 2}), 400, "logprobs", param="logprobs")
    openai_error(post(live, "/v1/completions", {**base, "prompt": "x" * 100}), 400, "100 tokens", "context of 32",
                 param="prompt")
    openai_error(post(live, "/v1/chat/completions", {"model": "gpt", "messages": [{"role": "user",
                                                                                    "content": "x" * 40}]}),
                 400, "context", param="messages")
    openai_error(post(live, "/v1/chat/completions", {"model": "gpt", "messages": [{"role": "wizard",
                                                                                    "content": "x"}]}),
                 400, "messages.0.role")
    big = b'{"model": "gpt", "prompt": "' + b"x" * (1 << 20) + b'"}'
    openai_error(post(live, "/v1/completions", big), 413, "bytes")                      # declared length
    chunked = iter([big[:600_000], big[600_000:]])                                      # counted as it comes
    openai_error(post(live, "/v1/completions", chunked), 413, "bytes")
    openai_error(post(live, "/v1/completions", {**base, "model": "nope"}), 404, "nope", "gpt", param="model")
    openai_error(post(live, "/v1/completions", {**base, "model": "../../etc/passwd"}), 404, param="model")
    openai_error(post(live, "/v1/completions", {**base, "model": "bert"}), 400, "write text", param="model")
    openai_error(post(live, "/v1/completions", base, key=None), 401, "API key")
    openai_error(post(live, "/v1/completions", base, key="wrong"), 401, "invalid API key")
    openai_error(httpx.get(f"{live.url}/v1/nothing-here", headers={"Authorization": f"Bearer {KEY}"}), 404)
    openai_error(httpx.get(f"{live.url}/v1/completions", headers={"Authorization": f"Bearer {KEY}"}), 405)
    with pytest.raises(openai.NotFoundError, match="nope"):
        client.completions.create(model="nope", prompt="x")
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{live.url}/v1", api_key="wrong", max_retries=0).models.list()


class Gate:
    """A stand-in unconditional image model (the `Samples` Protocol) whose `sample` waits for `release` (or fails):
    queueing, timeouts and bugs on cue."""
    capabilities = frozenset({"sample"})
    classes, num_classes, conditional, assets, batch_size = [], 0, False, None, 16

    def __init__(self, fail: bool = False):
        self.config, self.model, self.fail = SimpleNamespace(family="dcgan", data=SimpleNamespace(kind="")), None, fail
        self.started, self.release = threading.Event(), threading.Event()

    def evaluate(self, data, *, n, seed, iw_samples):
        raise NotImplementedError

    def class_index(self, label):
        raise NotImplementedError

    def labels_for(self, n, labels=None):
        return None

    def interpolate(self, seed_a, seed_b, steps=8, label=None):
        raise NotImplementedError

    def sample(self, n=None, *, seed=None, seeds=None, labels=None):
        self.started.set()
        self.release.wait(20)
        if self.fail:
            raise RuntimeError("secret internal detail")
        return np.zeros((len(seeds) if seeds is not None else n, 4, 4, 1), np.uint8)


def test_queue_full_is_429_with_retry_after_and_timeout_is_504():
    gate, slow = Gate(), Gate()
    server = LiveServer(create_app({"gate": gate, "slow": slow}, limits=Limits(max_queue=1, timeout_s=0.5)))
    server.wait_ready()
    try:
        with ThreadPoolExecutor(2) as pool:
            running = pool.submit(post, server, "/v1/images/generations", {"model": "gate"}, key=None)
            assert gate.started.wait(10)
            queued = pool.submit(post, server, "/v1/images/generations", {"model": "gate"}, key=None)
            worker = server.app.state.server.workers["gate"]
            deadline = time.time() + 10
            while worker.queue_depth() < 1:
                assert time.time() < deadline
                time.sleep(0.005)
            r = post(server, "/v1/images/generations", {"model": "gate"}, key=None)
            openai_error(r, 429, "waiting")
            assert r.headers["Retry-After"] == "1"
            openai_error(running.result(), 504, "0.5 s")
            openai_error(queued.result(), 504)
            gate.release.set()
        slow.release.set()  # a model of its own: answers in time
        assert post(server, "/v1/images/generations", {"model": "slow"}, key=None).status_code == 200
    finally:
        gate.release.set()
        server.close()


def test_a_bug_is_a_500_with_a_request_id_and_no_traceback(caplog):
    bug = Gate(fail=True)
    bug.release.set()
    server = LiveServer(create_app({"bug": bug})).wait_ready()
    try:
        with caplog.at_level(logging.ERROR, logger="tetragen.serve"):
            r = post(server, "/v1/images/generations", {"model": "bug"}, key=None)
        err = openai_error(r, 500, "request id")
        assert "secret internal detail" not in r.text and "RuntimeError" not in r.text
        rid = r.headers["X-Request-ID"]
        assert rid in err["message"] and any(rid in rec.getMessage() for rec in caplog.records)
        assert "secret internal detail" in caplog.text  # the traceback is in the log
    finally:
        server.close()


def test_health_is_503_until_the_models_load_then_200():
    release = threading.Event()

    def load():
        release.wait(20)
        return {"gate": Gate()}
    server = LiveServer(create_app(load))
    try:
        r = httpx.get(f"{server.url}/health")
        assert r.status_code == 503 and r.json()["status"] == "loading"
        openai_error(post(server, "/v1/images/generations", {"model": "gate"}, key=None), 503, "loading")
        release.set()
        server.wait_ready()
        assert httpx.get(f"{server.url}/health").json() == {"status": "ok", "models": ["gate"]}
    finally:
        release.set()
        server.close()


# ----------------------------------------------------------------------------------------------------------------
# load, metrics, disconnects

def metric(live, name, **labels) -> float:
    text = httpx.get(f"{live.url}/metrics", headers={"Authorization": f"Bearer {KEY}"}).text
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    total = 0.0
    for line in text.splitlines():
        m = re.match(rf"^{name}(?:{{(.*)}})? (\S+)$", line)
        if m and all(part in (m.group(1) or "") for part in want.split(",") if part):
            total += float(m.group(2))
    return total


def test_concurrent_requests_batch_together_and_stay_deterministic(client, live):
    kws = [dict(model="gpt", prompt=p, max_tokens=30 + 3 * i, temperature=0.9, top_k=20 if i % 2 else 0,
                repetition_penalty=1.0 + 0.1 * (i % 3), seed=100 + i)
           for i, p in enumerate(["ROMEO:", "JULIET:", "NURSE:", "a", "the and", "MERCUTIO:", "TYBALT:", "b"])]
    alone = [client.completions.create(**{k: v for k, v in kw.items() if k in ("model", "prompt", "max_tokens",
                                                                                "temperature", "seed")},
                                       extra_body={"top_k": kw["top_k"],
                                                   "repetition_penalty": kw["repetition_penalty"]})
             .choices[0].text for kw in kws]
    before = metric(live, "tetragen_batch_size_bucket", model="gpt", le="1.0")
    steps_before = metric(live, "tetragen_batch_size_count", model="gpt")
    barrier = threading.Barrier(len(kws))

    def one(i):
        kw = kws[i]
        extra = {"top_k": kw["top_k"], "repetition_penalty": kw["repetition_penalty"]}
        plain = {k: kw[k] for k in ("model", "prompt", "max_tokens", "temperature", "seed")}
        barrier.wait()
        if i % 2:
            return "".join(c.choices[0].text for c in client.completions.create(**plain, extra_body=extra,
                                                                               stream=True))
        return client.completions.create(**plain, extra_body=extra).choices[0].text
    with ThreadPoolExecutor(len(kws)) as pool:
        together = list(pool.map(one, range(len(kws))))
    assert together == alone
    steps = metric(live, "tetragen_batch_size_count", model="gpt") - steps_before
    singles = metric(live, "tetragen_batch_size_bucket", model="gpt", le="1.0") - before
    assert singles < steps, "no step decoded more than one sequence"
    assert metric(live, "tetragen_requests_total", route="/v1/completions", status="200") >= 16
    assert metric(live, "tetragen_requests_total", status="500") == 0


def test_metrics_and_health(live):
    assert httpx.get(f"{live.url}/health").json()["status"] == "ok"  # no key needed
    openai_error(httpx.get(f"{live.url}/metrics"), 401)
    post(live, "/v1/completions", {"model": "gpt", "prompt": "a", "max_tokens": 3})
    r = httpx.get(f"{live.url}/metrics", headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    for name in ("tetragen_requests_total", "tetragen_request_duration_seconds_bucket",
                 "tetragen_time_to_first_token_seconds_count", "tetragen_generated_tokens_total",
                 "tetragen_queue_depth", "tetragen_batch_size_bucket", "tetragen_running_sequences"):
        assert name in r.text, name
    assert metric(live, "tetragen_generated_tokens_total", model="gpt") >= 3
    assert metric(live, "tetragen_time_to_first_token_seconds_count", model="gpt") >= 1


def test_a_client_that_disconnects_frees_its_slot(live):
    worker = live.app.state.server.workers["gpt"]
    tokens = metric(live, "tetragen_generated_tokens_total", model="gpt")
    body = {"model": "gpt", "prompt": "ROMEO:", "max_tokens": 4000, "stream": True}
    with httpx.stream("POST", f"{live.url}/v1/completions", json=body,
                      headers={"Authorization": f"Bearer {KEY}"}, timeout=30) as r:
        assert r.status_code == 200
        lines = r.iter_lines()
        assert next(lines).startswith("data: ")
    deadline = time.time() + 10
    while worker._active or worker.queue_depth():
        assert time.time() < deadline, "the slot stayed taken"
        time.sleep(0.01)
    assert metric(live, "tetragen_running_sequences", model="gpt") == 0
    assert 0 < metric(live, "tetragen_generated_tokens_total", model="gpt") - tokens < 4000  # stopped early


# ----------------------------------------------------------------------------------------------------------------
# the command line

def test_serve_cli_refuses_bad_runs_and_names_in_one_line(runs, tmp_path):
    one_line_error(run_cli("serve", str(tmp_path / "missing")), "does not exist")
    one_line_error(run_cli("serve", f"a={runs / 'gpt'}", f"a={runs / 'bert'}"), "'a'", "NAME=RUN_DIR")
    one_line_error(run_cli("serve", f"bad/name={runs / 'gpt'}"), "NAME=RUN_DIR")
    one_line_error(run_cli("serve", str(runs / "gpt"), "--max-batch", "0"), "--max-batch")


def test_serve_cli_starts_a_server_a_client_can_use(runs):
    proc = subprocess.Popen([sys.executable, "-m", "tetragen", "serve", f"baby={runs / 'gpt'}", "--port", "0",
                             "--api-key", KEY, "--threads", "1"], stderr=subprocess.PIPE, text=True)
    try:
        url = None
        deadline = time.time() + 60
        while url is None:
            assert time.time() < deadline and proc.poll() is None, "the server did not start"
            m = re.search(r"at (http://127\.0\.0\.1:\d+)/v1", proc.stderr.readline())
            url = m.group(1) if m else None
        while httpx.get(f"{url}/health").status_code != 200:
            assert time.time() < deadline
            time.sleep(0.05)
        c = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0)
        assert [m.id for m in c.models.list()] == ["baby"]
        assert len(c.completions.create(model="baby", prompt="ROMEO:", max_tokens=5, seed=0).choices[0].text) == 5
    finally:
        proc.terminate()
        proc.wait(20)


# ----------------------------------------------------------------------------------------------------------------
# sampling settings and image edits (a diffusion run: the `steer` and `edit` capabilities)

@pytest.fixture(scope="module")
def steered(runs, pipes):
    """A server over a tiny diffusion run (it steers and edits) beside the cgan (it does neither)."""
    pipe = tetragen.load(runs / "diffusion")
    server = LiveServer(create_app({"diffusion": pipe, "cgan": pipes["cgan"]}, api_key=KEY,
                                   limits=Limits(max_wait_ms=20, max_rows=4))).wait_ready()
    yield server, tetragen.load(runs / "diffusion")
    server.close()


def png_bytes(array) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def test_generations_take_steps_guidance_and_sampler_of_a_model_that_steers(steered):
    live, pipe = steered
    pipe.batch_size = 4  # the server's --max-rows
    card = httpx.get(f"{live.url}/v1/models/diffusion", headers={"Authorization": f"Bearer {KEY}"}).json()
    assert card["routes"] == ["/v1/images/edits", "/v1/images/generations", "/v1/images/interpolations"]
    assert card["sampling"]["steps"]["max"] == 1000 and "heun" in card["sampling"]["sampler"]["choices"]
    ask = {"model": "diffusion", "prompt": "disc", "n": 2, "seed": 4, "steps": 2, "guidance_scale": 2.0,
           "sampler": "heun"}
    r = post(live, "/v1/images/generations", ask)
    assert r.status_code == 200, r.text
    want = pipe.sample(seeds=[4, 5], labels="disc", steps=2, guidance_scale=2.0, sampler="heun")
    assert all(np.array_equal(png(d["b64_json"]), w[..., 0]) for d, w in zip(r.json()["data"], want))
    # requests with other settings drawn at the same time each get their own settings' images
    asks = [{**ask, "steps": 1 + k % 2, "sampler": ["euler", "heun"][k % 2], "seed": k} for k in range(6)]
    alone = [post(live, "/v1/images/generations", a).json()["data"] for a in asks]
    with ThreadPoolExecutor(6) as pool:
        together = list(pool.map(lambda a: post(live, "/v1/images/generations", a).json()["data"], asks))
    assert together == alone
    for field, value, needle in (("steps", 0, ">= 1"), ("steps", 10 ** 6, "1 to 1000"),
                                 ("guidance_scale", -1.0, ">= 0"), ("guidance_scale", 51.0, "0 (unconditional) to 50"),
                                 ("sampler", "ddpm", "euler, heun, dpm++")):
        openai_error(post(live, "/v1/images/generations", {**ask, field: value}), 400, field, needle, param=field)
    for field, value in (("steps", 4), ("guidance_scale", 2.0), ("sampler", "euler")):
        openai_error(post(live, "/v1/images/generations", {"model": "cgan", "prompt": "disc", field: value}), 400,
                     f"{field}: model 'cgan': a cgan run does not choose its sampler", "(diffusion", param=field)


def test_interpolations_walk_between_two_seeds_as_the_pipeline_does(steered, pipes):
    live, pipe = steered
    ask = {"model": "diffusion", "prompt": "disc", "n": 4, "seed": 3, "seed2": 9, "steps": 2}
    r = post(live, "/v1/images/interpolations", ask)
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["seed"], out["seed2"], len(out["data"])) == (3, 9, 4)
    want = pipe.interpolate(3, 9, 4, label="disc", sample_steps=2)
    assert all(np.array_equal(png(d["b64_json"]), w[..., 0]) for d, w in zip(out["data"], want))
    assert post(live, "/v1/images/interpolations", {**ask, "seed2": None}).json()["seed2"] == 4  # default seed + 1
    # a model that samples from noise walks too (a GAN's latent space), in the class its prompt names
    r = post(live, "/v1/images/interpolations", {"model": "cgan", "prompt": "disc", "n": 3, "seed": 1})
    assert r.status_code == 200, r.text
    want = pipes["cgan"].interpolate(1, 2, 3, label=pipes["cgan"].class_index("disc"))
    assert all(np.array_equal(png(d["b64_json"]), w[..., 0]) for d, w in zip(r.json()["data"], want))
    openai_error(post(live, "/v1/images/interpolations", {**ask, "n": 1}), 400, "n", param="n")
    openai_error(post(live, "/v1/images/interpolations", {**ask, "steps": 0}), 400, "steps", param="steps")
    openai_error(post(live, "/v1/images/interpolations", {"model": "cgan", "steps": 2}), 400, "steps", param="steps")


def test_image_edits_with_the_openai_client(steered):
    live, pipe = steered
    pipe.batch_size = 4
    client = openai.OpenAI(base_url=f"{live.url}/v1", api_key=KEY, max_retries=0, timeout=60)
    image = np.zeros((28, 28), np.uint8)
    image[8:20, 8:20] = 255
    hole = np.zeros((28, 28), np.uint8)
    hole[:, 14:] = 255
    r = client.images.edit(model="diffusion", image=("in.png", png_bytes(image), "image/png"),
                           mask=("mask.png", png_bytes(hole), "image/png"), prompt="square", n=2, size="28x28",
                           response_format="b64_json", extra_body={"seed": 7, "steps": 2})
    got = [png(d.b64_json) for d in r.data]
    want = pipe.edit(np.repeat(image[None, ..., None], 2, 0), mask=hole // 255, seeds=[7, 8], labels="square",
                     steps=2)
    assert all(np.array_equal(g, w[..., 0]) for g, w in zip(got, want))
    assert all(np.array_equal(g[:, :14], image[:, :14]) for g in got)  # the kept half as given
    assert [d.revised_prompt for d in r.data] == ["square", "square"]
    # img2img of a colour image of another size: converted, with a note
    colour = np.full((32, 40, 3), 90, np.uint8)
    r = httpx.post(f"{live.url}/v1/images/edits", headers={"Authorization": f"Bearer {KEY}"},
                   files={"image": ("c.png", png_bytes(colour), "image/png")},
                   data={"model": "diffusion", "strength": "0.5", "seed": "1", "steps": "2"}, timeout=60)
    assert r.status_code == 200, r.text
    assert "40x32 to 28x28" in r.json()["warnings"][0] and png(r.json()["data"][0]["b64_json"]).shape == (28, 28)


def test_image_edit_errors_name_the_field(steered):
    live, _ = steered
    image = ("in.png", png_bytes(np.zeros((28, 28), np.uint8)), "image/png")

    def edit(data, files=None, model="diffusion"):
        return httpx.post(f"{live.url}/v1/images/edits", headers={"Authorization": f"Bearer {KEY}"},
                          files=files if files is not None else {"image": image},
                          data={"model": model, **data}, timeout=60)
    openai_error(edit({"strength": "1.5"}), 400, "strength", param="strength")
    openai_error(edit({"strength": "-0.5"}), 400, "strength", param="strength")
    openai_error(edit({"steps": "0"}), 400, "steps", param="steps")
    openai_error(edit({"guidance_scale": "-1"}), 400, "guidance_scale", param="guidance_scale")
    openai_error(edit({"n": "many"}), 422, "n", param="n")
    openai_error(edit({}, files={"mask": image}), 422, "image: required", param="image")
    openai_error(edit({}, files={"image": ("x.png", b"not an image", "image/png")}), 400, "image: not an image",
                 param="image")
    grey = ("m.png", png_bytes(np.full((28, 28), 128, np.uint8)), "image/png")
    openai_error(edit({}, files={"image": image, "mask": grey}), 400, "mask: the mask is not binary", param="mask")
    small = ("m.png", png_bytes(np.zeros((14, 14), np.uint8)), "image/png")
    openai_error(edit({}, files={"image": image, "mask": small}), 400, "model's size 28x28", param="mask")
    openai_error(edit({"size": "64x64"}), 400, "28x28", param="size")
    openai_error(edit({"prompt": "zebra"}), 400, "zebra", param="prompt")
    openai_error(edit({}, model="cgan"), 400, "does not edit", "(diffusion", param="model")
    r = httpx.post(f"{live.url}/v1/images/edits", headers={"Authorization": f"Bearer {KEY}"},
                   json={"model": "diffusion"}, timeout=60)
    openai_error(r, 400, "multipart/form-data")
