"""The playground page of `tetragen serve` in a real browser: headless Chromium, driven by selenium through Debian's
chromedriver, against a live server with an API key over tiny trained runs. The page must stream text (checked as it
grows, and equal to the server's own answer for the same seed), draw images (the pixels the API gives for the same
seed), fill masks, classify, and show the server's errors; screenshots land in the test's tmp_path.

`make test` installs chromium and chromium-driver with apt where it can (root with apt); elsewhere the browser test
is skipped, naming what is missing."""
from __future__ import annotations

import socket

import httpx
import numpy as np
import openai
import pytest

import tetragen
from tetragen.serve import Limits, create_app

from .test_serve import KEY, LiveServer, pipes, png, png_bytes, runs, steered  # noqa: F401 - fixtures

MODELS = ("gpt", "bert", "cls", "dcgan", "cgan", "t2i")
WAIT_S = 30  # generous on a loaded machine; each step takes well under a second when the machine is idle


@pytest.fixture(scope="module")
def live(runs):
    pipes = {name: tetragen.load(runs / name) for name in MODELS}
    server = LiveServer(create_app(pipes, api_key=KEY, limits=Limits(max_wait_ms=5))).wait_ready()
    yield server
    server.close()


def raw_get(url: str, path: str, key: str | None = None) -> tuple[int, bytes]:
    """GET `path` exactly as written (no client normalises its dots or escapes) -> (status, body)."""
    host, port = url.removeprefix("http://").split(":")
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_the_page_needs_no_key_and_serves_only_its_own_files(live):
    page = httpx.get(f"{live.url}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script src="/static/app.js"' in page.text and "default-src 'self'" in page.headers[
        "content-security-policy"]
    for name, kind in (("app.js", "text/javascript"), ("style.css", "text/css"), ("index.html", "text/html")):
        r = httpx.get(f"{live.url}/static/{name}")
        assert r.status_code == 200 and r.headers["content-type"].startswith(kind), name
    assert httpx.get(f"{live.url}/v1/models").status_code == 401  # the API still asks for the key
    for path in ("/static/../app.py", "/static/%2e%2e/app.py", "/static/..%2fapp.py", "/static/..%5capp.py",
                 "/static//etc/passwd", "/static/./app.js/..", "/static/", "/static", "/static/app.py",
                 "/static/__init__.py", "/%2e%2e/serve/app.py", "/static/app.js%00.html"):
        for key in (None, KEY):
            status, body = raw_get(live.url, path, key)
            assert status == (401 if key is None else 404), (path, key, status)
            assert b"import" not in body and b"root:" not in body and b'"error"' in body, (path, body[:200])


# ----------------------------------------------------------------------------------------------------------------
# the browser

def wait_for(driver, condition, what: str):
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(driver, WAIT_S, poll_frequency=0.02).until(lambda d: condition(d), message=what)


def by_id(driver, element_id: str):
    return driver.find_element("id", element_id)


def text_of(driver, element_id: str) -> str:
    return by_id(driver, element_id).get_property("textContent")


def fill(driver, element_id: str, value) -> None:
    el = by_id(driver, element_id)
    el.clear()
    el.send_keys(str(value))


def test_the_playground_streams_text_draws_images_and_shows_errors(live, browser, tmp_path):
    driver = browser
    client = openai.OpenAI(base_url=f"{live.url}/v1", api_key=KEY, max_retries=0, timeout=60)
    driver.get(f"{live.url}/")

    # the server has a key: the page asks for it, then lists the models with their family and what they take
    wait_for(driver, lambda d: by_id(d, "key-form").is_displayed(), "the page did not ask for the API key")
    fill(driver, "api-key", KEY)
    by_id(driver, "key-submit").click()
    wait_for(driver, lambda d: len(d.find_elements("css selector", ".model")) == len(MODELS), "no model list")
    cards = {b.get_attribute("data-model"): b.get_property("textContent")
             for b in driver.find_elements("css selector", ".model")}
    assert set(cards) == set(MODELS)
    assert "cgan" in cards["cgan"] and "a class name (3 classes)" in cards["cgan"]
    assert "a text prompt → text" in cards["gpt"] and "a text prompt → images" in cards["t2i"]
    assert "unconditional" in cards["dcgan"] and "[MASK]" in cards["bert"]

    # a text model: the completion streams in, piece by piece, and is the server's answer for that seed
    driver.find_element("css selector", '.model[data-model="gpt"]').click()
    # long enough (a few hundred ms at the tiny model's speed) that the page gets the events over many reads
    prompt, settings = "ROMEO:", dict(max_tokens=300, temperature=0.8, top_p=1.0, seed=7)
    fill(driver, "prompt", prompt)
    fill(driver, "max-tokens", settings["max_tokens"])
    fill(driver, "seed", settings["seed"])
    driver.execute_script("""
        window.lengths = [];
        const out = document.getElementById("output-text");
        new MutationObserver(() => window.lengths.push(out.textContent.length))
            .observe(out, {childList: true, characterData: true, subtree: true});""")
    by_id(driver, "generate").click()
    wait_for(driver, lambda d: by_id(d, "output").get_attribute("data-state") in ("done", "error"), "no answer")
    assert by_id(driver, "output").get_attribute("data-state") == "done", text_of(driver, "error")
    expected = client.completions.create(model="gpt", prompt=prompt, **settings).choices[0].text
    assert text_of(driver, "output-text") == expected and text_of(driver, "output-prompt") == prompt
    lengths = driver.execute_script("return window.lengths")
    assert len(set(lengths)) >= 5 and lengths == sorted(lengths), lengths  # it grew as the events came
    assert int(by_id(driver, "output").get_attribute("data-chunks")) >= 100  # a piece per event, not one answer
    assert "finish_reason: length" in text_of(driver, "text-meta") and "300 tokens" in text_of(driver, "text-meta")
    driver.save_screenshot(str(tmp_path / "completion.png"))

    # chat: the reply streams into the conversation
    by_id(driver, "mode-chat").click()
    fill(driver, "prompt", "ROMEO:")
    fill(driver, "max-tokens", 12)
    by_id(driver, "generate").click()
    wait_for(driver, lambda d: by_id(d, "output").get_attribute("data-state") in ("done", "error"), "no reply")
    assert by_id(driver, "output").get_attribute("data-state") == "done", text_of(driver, "error")
    reply = client.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "ROMEO:"}],
                                           max_tokens=12, temperature=0.8, top_p=1.0, seed=7)
    messages = driver.find_elements("css selector", "#chat-log .message")
    assert [m.get_attribute("class").split()[1] for m in messages] == ["user", "assistant"]
    assert messages[1].find_element("css selector", ".text").get_property("textContent") == \
        reply.choices[0].message.content
    driver.save_screenshot(str(tmp_path / "chat.png"))

    # a bad request: the server's error, in the page, with the field marked
    by_id(driver, "mode-completion").click()
    fill(driver, "prompt", prompt)
    fill(driver, "max-tokens", 100_000)
    by_id(driver, "generate").click()
    wait_for(driver, lambda d: by_id(d, "error").is_displayed(), "no error shown")
    assert text_of(driver, "error-status") == "400"
    assert "max_tokens" in text_of(driver, "error-message") and "4096" in text_of(driver, "error-message")
    assert "invalid" in by_id(driver, "max-tokens").get_attribute("class")
    assert by_id(driver, "output").get_attribute("data-state") == "error"
    driver.save_screenshot(str(tmp_path / "error.png"))
    # a seed past what a JavaScript number holds exactly is refused by the page rather than sent changed
    fill(driver, "max-tokens", 8)
    fill(driver, "seed", 2 ** 63)
    by_id(driver, "generate").click()
    wait_for(driver, lambda d: "larger than this page can send" in text_of(d, "error-message"), "no page error")

    # a class-conditional image model: a class name, n and a seed; the grid holds the API's images
    driver.find_element("css selector", '.model[data-model="cgan"]').click()
    assert not by_id(driver, "error").is_displayed()  # a new model starts clean
    classes = [o.get_attribute("value") for o in by_id(driver, "image-class").find_elements("tag name", "option")]
    card = httpx.get(f"{live.url}/v1/models/cgan", headers={"Authorization": f"Bearer {KEY}"}).json()
    assert classes == ["", *card["classes"]] and sorted(card["classes"]) == ["bar", "disc", "square"]
    by_id(driver, "image-class").find_element("css selector", 'option[value="square"]').click()
    fill(driver, "image-n", 6)
    fill(driver, "image-seed", 3)
    by_id(driver, "draw").click()
    wait_for(driver, lambda d: by_id(d, "image-grid").get_attribute("data-state") in ("done", "error"), "no images")
    assert by_id(driver, "image-grid").get_attribute("data-state") == "done", text_of(driver, "error")
    images = driver.find_elements("css selector", "#image-grid img")
    wait_for(driver, lambda d: all(d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", im)
                                   == 28 for im in images), "the images did not render")
    direct = client.images.generate(model="cgan", prompt="square", n=6, extra_body={"seed": 3})
    shown = [png(im.get_attribute("src").removeprefix("data:image/png;base64,")) for im in images]
    assert len(shown) == 6 and all(np.array_equal(a, png(d.b64_json)) for a, d in zip(shown, direct.data))
    captions = [c.get_property("textContent") for c in driver.find_elements("css selector", "#image-grid figcaption")]
    assert captions == ["square"] * 6
    driver.save_screenshot(str(tmp_path / "images.png"))

    # a text-to-image model takes a prompt instead
    driver.find_element("css selector", '.model[data-model="t2i"]').click()
    assert by_id(driver, "image-prompt").is_displayed() and not by_id(driver, "image-class").is_displayed()
    fill(driver, "image-prompt", "a large disc")
    fill(driver, "image-n", 2)
    by_id(driver, "draw").click()
    wait_for(driver, lambda d: len(d.find_elements("css selector", "#image-grid img")) == 2, "no t2i images")

    # fill-mask and classify
    driver.find_element("css selector", '.model[data-model="bert"]').click()
    fill(driver, "mask-top-k", 3)
    by_id(driver, "fill").click()
    wait_for(driver, lambda d: by_id(d, "mask-results").get_attribute("data-state") in ("done", "error"), "no fill")
    assert len(driver.find_elements("css selector", "#mask-results .bar-row")) == 3, text_of(driver, "error")
    driver.find_element("css selector", '.model[data-model="cls"]').click()
    if by_id(driver, "tabs").is_displayed():
        by_id(driver, "tab-classify").click()
    fill(driver, "classify-text", "good fine the")
    by_id(driver, "classify").click()
    wait_for(driver, lambda d: by_id(d, "classify-results").get_attribute("data-state") in ("done", "error"),
             "no classification")
    labels = [r.find_element("css selector", ".bar-label").get_property("textContent")
              for r in driver.find_elements("css selector", "#classify-results .bar-row")]
    assert sorted(labels) == ["neg", "pos"], text_of(driver, "error")
    driver.save_screenshot(str(tmp_path / "classify.png"))

    # the page broke no rule of its own (script errors, refused by its content security policy); the refusals the
    # test asked for (400, and the 401 before the key) are the only failed loads
    asked = ("status of 401", "status of 400")
    problems = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"
                and not ("Failed to load resource" in e["message"] and any(a in e["message"] for a in asked))]
    assert not problems, problems
    for name in ("completion", "chat", "error", "images", "classify"):
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000


def test_the_image_panel_takes_sampling_settings_and_the_edit_tab_edits(steered, browser, tmp_path):
    """A model that steers shows steps, guidance and sampler (the card's defaults as placeholders) and its images are
    the API's for the same settings; one that edits gets an Edit tab: an uploaded image and mask, redrawn as the API
    redraws them; a bad strength is the server's error, marking its field. A model that does neither shows neither."""
    live, _ = steered
    driver = browser
    client = openai.OpenAI(base_url=f"{live.url}/v1", api_key=KEY, max_retries=0, timeout=60)
    driver.get(f"{live.url}/")
    wait_for(driver, lambda d: by_id(d, "key-form").is_displayed(), "the page did not ask for the API key")
    fill(driver, "api-key", KEY)
    by_id(driver, "key-submit").click()
    wait_for(driver, lambda d: len(d.find_elements("css selector", ".model")) == 2, "no model list")

    driver.find_element("css selector", '.model[data-model="cgan"]').click()
    assert not by_id(driver, "image-sampling").is_displayed() and not by_id(driver, "tabs").is_displayed()

    driver.find_element("css selector", '.model[data-model="diffusion"]').click()
    assert by_id(driver, "image-sampling").is_displayed()
    assert by_id(driver, "image-steps").get_attribute("placeholder") == "4"  # the tiny preset's default
    fill(driver, "image-steps", 2)
    fill(driver, "image-guidance", 2)
    by_id(driver, "image-sampler").find_element("css selector", 'option[value="heun"]').click()
    by_id(driver, "image-class").find_element("css selector", 'option[value="disc"]').click()
    fill(driver, "image-n", 2)
    fill(driver, "image-seed", 5)
    by_id(driver, "draw").click()
    wait_for(driver, lambda d: by_id(d, "image-grid").get_attribute("data-state") in ("done", "error"), "no images")
    assert by_id(driver, "image-grid").get_attribute("data-state") == "done", text_of(driver, "error")
    shown = [png(im.get_attribute("src").removeprefix("data:image/png;base64,"))
             for im in driver.find_elements("css selector", "#image-grid img")]
    direct = client.images.generate(model="diffusion", prompt="disc", n=2,
                                    extra_body={"seed": 5, "steps": 2, "guidance_scale": 2.0, "sampler": "heun"})
    assert len(shown) == 2 and all(np.array_equal(a, png(d.b64_json)) for a, d in zip(shown, direct.data))
    driver.save_screenshot(str(tmp_path / "sampling.png"))

    image = np.zeros((28, 28), np.uint8)
    image[6:22, 6:22] = 255
    hole = np.zeros((28, 28), np.uint8)
    hole[:, 14:] = 255
    (tmp_path / "in.png").write_bytes(png_bytes(image))
    (tmp_path / "mask.png").write_bytes(png_bytes(hole))
    by_id(driver, "tab-image-edit").click()
    by_id(driver, "edit-image").send_keys(str(tmp_path / "in.png"))
    by_id(driver, "edit-mask").send_keys(str(tmp_path / "mask.png"))
    by_id(driver, "edit-class").find_element("css selector", 'option[value="square"]').click()
    fill(driver, "edit-steps", 2)
    fill(driver, "edit-n", 2)
    fill(driver, "edit-seed", 7)
    by_id(driver, "edit-go").click()
    wait_for(driver, lambda d: by_id(d, "edit-grid").get_attribute("data-state") in ("done", "error"), "no edits")
    assert by_id(driver, "edit-grid").get_attribute("data-state") == "done", text_of(driver, "error")
    shown = [png(im.get_attribute("src").removeprefix("data:image/png;base64,"))
             for im in driver.find_elements("css selector", "#edit-grid img")]
    direct = client.images.edit(model="diffusion", image=("in.png", png_bytes(image), "image/png"),
                                mask=("mask.png", png_bytes(hole), "image/png"), prompt="square", n=2,
                                extra_body={"seed": 7, "steps": 2})
    assert len(shown) == 2 and all(np.array_equal(a, png(d.b64_json)) for a, d in zip(shown, direct.data))
    assert all(np.array_equal(a[:, :14], image[:, :14]) for a in shown)
    driver.save_screenshot(str(tmp_path / "edit.png"))

    fill(driver, "edit-strength", 1.5)
    by_id(driver, "edit-go").click()
    wait_for(driver, lambda d: by_id(d, "error").is_displayed(), "no error")
    assert "strength" in text_of(driver, "error-message")
    assert "invalid" in by_id(driver, "edit-strength").get_attribute("class")
    problems = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"
                and not ("Failed to load resource" in e["message"] and any(a in e["message"] for a in
                                                                           ("status of 401", "status of 400")))]
    assert not problems, problems
