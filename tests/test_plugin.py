"""The proof of the contract: a kind of content and a family registered from the tests folder alone
(tests/toy_points.py) train, resume bitwise after SIGKILL, sample with a seed, evaluate, are served, appear in
`tetragen quickstart` and `tetragen bench` with their report block, and pass the family-contract tests, with no
edit to shared code."""
import json
import subprocess
import sys

import httpx
import numpy as np
import pytest
import torch

import tetragen
from tetragen.train import checkpoint as ck

from . import test_families as contract
from . import toy_points
from .conftest import ROOT, kill_after_checkpoint, one_line_error, run_cli

TINY = ["--preset", "tiny"]


@pytest.fixture(autouse=True)
def plugin():
    toy_points.register()
    yield
    toy_points.unregister()


@pytest.fixture
def points(tmp_path):
    return toy_points.example(tmp_path / "data")


def test_no_shared_code_names_the_plugin():
    for path in (ROOT / "tetragen").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "blobfit" not in text and "toy_points" not in text, path


def test_the_family_contract_holds_for_the_plugin(points, tmp_path, monkeypatch):
    for name, check in [("forward", contract.test_forward_loss_is_finite_and_one_step_changes_weights),
                        ("protocols", contract.test_pipeline_implements_the_protocol_of_each_capability),
                        ("save-load", contract.test_save_then_load_reproduces_outputs),
                        ("resume", contract.test_interrupted_then_resumed_equals_uninterrupted)]:
        folder = tmp_path / name
        folder.mkdir()
        kwargs = {"family": "blobfit", "source": points, "components": [], "tmp_path": folder}
        if name == "resume":
            kwargs["monkeypatch"] = monkeypatch
        check(**kwargs)
    assert "tiny" in tetragen.registry.get_family("blobfit").presets


def test_cli_trains_samples_evaluates_and_refuses_in_one_line(points, tmp_path):
    run = tmp_path / "run"
    r = run_cli("train", "blobfit", "--data", points, "--out", str(run), *TINY)
    assert r.returncode == 0, r.stderr
    for out in ("a.png", "a.npz"):
        r = run_cli("sample", str(run), "--n", "30", "--seed", "5", "--out", str(tmp_path / out))
        assert r.returncode == 0, r.stderr
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"
    again = tmp_path / "b.npz"
    assert run_cli("sample", str(run), "--n", "30", "--seed", "5", "--out", str(again)).returncode == 0
    a, b = np.load(tmp_path / "a.npz"), np.load(again)
    assert a["points"].shape == (30, 2) and np.array_equal(a["points"], b["points"])  # same seed, same points
    one_line_error(run_cli("sample", str(run), "--n", "3", "--out", str(tmp_path / "x.wav")), ".wav", ".png", ".npz")
    r = run_cli("eval", str(run), "--n", "300")
    assert r.returncode == 0 and "frechet" in r.stdout + r.stderr, r.stderr
    metrics, _ = tetragen.api.evaluate(run, n=300)
    assert metrics["frechet"] < 1.0 and metrics["class_acc"] > 0.9  # it learnt the blobs


def test_sigkill_then_resume_is_bitwise_the_uninterrupted_run(points, tmp_path):
    over = ["train.max_steps=400", "train.save_every=20", "train.eval_every=0"]
    straight = tmp_path / "straight"
    tetragen.train("blobfit", points, straight, preset="tiny", overrides=over, progress=False)
    killed = tmp_path / "killed"
    code = ("import sys; from tests import toy_points; toy_points.register(); from tetragen.cli.main import main; "
            "sys.exit(main(sys.argv[1:]))")
    cmd = [sys.executable, "-c", code, "train", "blobfit", "--data", points, "--out", str(killed), *TINY, *over]
    kill_after_checkpoint(cmd, killed, 20, 400, env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    r = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, cwd=ROOT,
                       env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    a, b = ck.read_tensors(straight / "model.safetensors"), ck.read_tensors(killed / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_server_routes_it_by_its_kind_of_content(points, tmp_path):
    from fastapi.testclient import TestClient

    from tetragen.serve import create_app
    tetragen.train("blobfit", points, tmp_path / "run", preset="tiny", progress=False)
    with TestClient(create_app({"toy": tetragen.load(tmp_path / "run")})) as client:
        client.app.state.server.wait_ready(30)
        card = client.get("/v1/models/toy").json()
        assert card["makes"] == "points" and card["routes"] == ["/v1/points"] and card["classes"] == toy_points.CLASSES
        first = client.post("/v1/points", json={"model": "toy", "n": 4, "seed": 3, "label": "east"})
        assert first.status_code == 200 and len(first.json()["points"]) == 4
        assert client.post("/v1/points", json={"model": "toy", "n": 4, "seed": 3, "label": "east"}).json() == first.json()
        bad = client.post("/v1/points", json={"model": "toy", "n": 4, "label": "west"})
        assert bad.status_code == 400 and "west" in bad.json()["error"]["message"]
        other = client.post("/v1/images/generations", json={"model": "toy", "prompt": ""})
        assert other.status_code == 400 and "makes points, not image" in other.json()["error"]["message"]
        assert "/v1/points" in client.get("/metrics").text


def test_the_playground_shows_its_own_panel(points, tmp_path, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from tetragen.serve import create_app

    from .test_serve import LiveServer
    tetragen.train("blobfit", points, tmp_path / "run", preset="tiny", progress=False)
    server = LiveServer(create_app({"toy": tetragen.load(tmp_path / "run")})).wait_ready()
    try:
        page = httpx.get(server.url + "/").text
        assert '<script src="/static/modality-points.js" defer></script>' in page
        assert httpx.get(server.url + "/static/modality-points.js").status_code == 200
        browser.get(server.url + "/")
        wait = WebDriverWait(browser, 30)
        model = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "button.model[data-model='toy']"))
        assert "2-D points" in model.text  # the panel's own description in the model list
        model.click()
        assert browser.find_element(By.ID, "panel-points").is_displayed()
        browser.find_element(By.ID, "points-draw").click()
        out = wait.until(lambda d: d.find_element(By.ID, "points-out").text or None)
        shown = [[float(v) for v in ln.split(", ")] for ln in out.splitlines()]
        body = {"model": "toy", "n": 5, "label": "east", "seed": 1}
        asked = httpx.post(server.url + "/v1/points", json=body).json()["points"]  # the API's, same seed
        assert len(shown) == 5 and np.allclose(shown, asked, atol=1e-3)
    finally:
        server.close()


def test_quickstart_and_bench_train_and_report_it(tmp_path):
    job = tmp_path / "qs"
    r = run_cli("quickstart", "--families", "blobfit", "--budget-minutes", "0.1", "--out", str(job), "--eval-n", "300")
    assert r.returncode == 0, r.stderr
    report = (job / "report.html").read_text(encoding="utf-8")
    assert "class='points'" in report and "data:image/png;base64," in report and "frechet" in report
    assert json.loads((job / "job.json").read_text())["results"]["blobfit"]["shown"][0]["file"].endswith(".png")
    bench = tmp_path / "bench"
    r = run_cli("bench", "--families", "blobfit", "--budget-minutes", "0.1", "--out", str(bench), "--eval-n", "300")
    assert r.returncode == 0, r.stderr
    md = (bench / "bench.md").read_text(encoding="utf-8")
    assert "## points families" in md and "Fréchet (2-D)" in md and "| blobfit |" in md
    one_line_error(run_cli("quickstart", "--data", "smell=x", "--out", str(tmp_path / "q2")), "points", "image", "sound", "text")
