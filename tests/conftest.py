"""Shared fixtures: an isolated cache, a small synthetic corpus, and a runner for the real CLI entry point."""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# the modalities' own tiny example data (a play-like corpus, labelled shapes as PNGs)
from tetragen.modalities.image.show import make_image_folder  # noqa: F401 - used by tests
from tetragen.modalities.text.show import make_corpus  # noqa: F401 - used by tests

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

# The suite runs two workers on two cores (pytest-xdist): each test, and every process it starts, computes on one
# thread, so that the workers' thread pools never fight over the cores.
os.environ["OMP_NUM_THREADS"] = "1"


def pytest_configure(config):
    import torch
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path_factory, monkeypatch):
    cache = tmp_path_factory.getbasetemp() / "cache"  # one cache per test session: tokenization is reused
    monkeypatch.setenv("TETRAGEN_CACHE", str(cache))
    monkeypatch.setenv("TETRAGEN_NO_PROGRESS", "1")
    monkeypatch.delenv("TETRAGEN_DATA", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)


@pytest.fixture
def corpus(tmp_path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text(make_corpus(), encoding="utf-8")
    return path


@pytest.fixture
def images(tmp_path) -> Path:
    """A folder of tiny labelled images (3 classes) for the image families."""
    return make_image_folder(tmp_path / "images")


def run_cli(*args: str, env: dict | None = None, timeout: float = 300, cwd: Path | None = None,
            process: bool = False):
    """Run `tetragen ARGS` and return a CompletedProcess (text mode): its exit status, stdout and stderr.

    By default through the CLI's own entry point `tetragen.cli.main.main` inside this process, with stdout and
    stderr captured (an exception that escapes it is printed as a traceback with status 1, as Python would):
    starting Python and torch anew for each call would cost more than most of the commands. `process=True` (and
    TETRAGEN_TEST_SUBPROCESS=1 for the whole suite) runs `python -m tetragen` as a user would, for the tests where
    the process itself is the point (entry point, signals, exit on a real interpreter)."""
    if process or os.environ.get("TETRAGEN_TEST_SUBPROCESS"):
        full_env = {**os.environ, **(env or {})}
        return subprocess.run([sys.executable, "-m", "tetragen", *args], capture_output=True, text=True,
                              env=full_env, timeout=timeout, cwd=cwd)
    import contextlib
    import io
    import traceback
    import warnings
    from tetragen.cli.main import main
    out, err = io.StringIO(), io.StringIO()
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    try:
        os.environ.update(env or {})
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            warnings.simplefilter("default")  # each call shows its warnings as a fresh process would
            try:
                code = main(list(args))
            except SystemExit as e:  # argparse's errors and --help
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            except Exception:
                traceback.print_exc()
                code = 1
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(saved_cwd)
    return subprocess.CompletedProcess(["tetragen", *args], code, out.getvalue(), err.getvalue())


TINY = ["--preset", "tiny", "train.eval_tokens=512"]


def one_line_error(r, *needles):
    """The CLI failed as a user error: exit status 2, one line on stderr, no traceback, naming each of `needles`."""
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
    for n in needles:
        assert n in r.stderr, r.stderr


# The bitwise-resume tests of the convolutional families run their processes on one thread: on a loaded machine a
# two-thread CPU run of those models has occasionally ended ~1e-6 away from an identical run even without any
# interruption, and these tests are about the trainer's resume, not the kernels' threading.
ONE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "TETRAGEN_NO_PROGRESS": "1"}


def in_process(cmd: list[str], env: dict | None = None):
    """A `python -m tetragen ...` command line run in this process (`run_cli`), for the halves of a kill test that
    need no process of their own (the uninterrupted run, the resume): a fresh interpreter would spend seconds
    importing torch, its compiler and torchmetrics again, and computes on one thread as this one does."""
    assert cmd[1:3] == ["-m", "tetragen"], cmd
    return run_cli(*cmd[3:], env=env)


def kill_after_checkpoint(cmd: list[str], run: Path, step: int, end_step: int, env: dict | None = None) -> None:
    """Start a training command, SIGKILL it once checkpoint `step` exists, and check it died before `end_step`."""
    import signal
    import time
    from tetragen.train import checkpoint as ck
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 120
    while not (run / "checkpoints" / f"step_{step:08d}").exists():
        assert proc.poll() is None, "training ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert ck.step_dirs(run)[-1].name < f"step_{end_step:08d}", "the kill came after the end"


# ----------------------------------------------------------------------------------------------------------------
# headless Chromium (the playground's and the quickstart report's browser tests)

def _browser_paths() -> tuple[str | None, str | None]:
    chromium = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    return chromium, shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser():
    chromium, driver_path = _browser_paths()
    if chromium is None or driver_path is None:
        missing = " and ".join(n for n, p in (("chromium", chromium), ("chromedriver", driver_path)) if p is None)
        pytest.skip(f"{missing} not found: run `make test` as root (it installs Debian's chromium and "
                    f"chromium-driver) or `apt-get install chromium chromium-driver`")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed: pip install selenium")
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1360,1000", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


# ---------------------------------------------------------------------------------------------------------------
# one small quickstart for the whole session (tests/test_jobs.py checks it; tests/test_quickstart_report.py reruns it
# and opens its report in a browser)

# tiny presets on the synthetic data: what the job does, not how good the models get
TINY_JOB = ["--preset", "tiny", "--eval-n", "20", "--no-progress"]
QUICK_FAMILIES = ("gpt", "bert", "cgan")


def job_args(corpus, images, out, *extra):
    return ["--data", f"text={corpus}", "--data", f"image={images}", "--out", str(out), *TINY_JOB, *extra]


@pytest.fixture(scope="session")
def quickstart_job(tmp_path_factory, worker_id):
    """(out, args, result) of a finished quickstart of three families (text, masked text, conditional images) on
    synthetic data, made once per test session by the first xdist worker that asks for it (another that asks
    meanwhile waits on its lock; its readers sit in another file, collected far from the first, so it rarely
    does). Tests only read its folder."""
    base = tmp_path_factory.getbasetemp()
    root = (base if worker_id == "master" else base.parent) / "quickstart"  # the session's own, shared by workers
    root.mkdir(exist_ok=True)
    corpus, images, out = root / "corpus.txt", root / "images", root / "qs"
    args = ["quickstart", "--budget-minutes", "0.31", "--families", ",".join(QUICK_FAMILIES),
            *job_args(corpus, images, out)]
    with open(root / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = root / "result.json"
        if not done.is_file():
            corpus.write_text(make_corpus(), encoding="utf-8")
            make_image_folder(images)
            r = run_cli(*args)
            done.write_text(json.dumps([r.returncode, r.stdout, r.stderr]))
        returncode, stdout, stderr = json.loads(done.read_text())
    return out, args, subprocess.CompletedProcess(args, returncode, stdout, stderr)
