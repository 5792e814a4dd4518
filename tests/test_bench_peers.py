"""The plumbing of the benchmarks' public peers that runs without them: the diffusers example's 1-channel copy, the
images it is fed, the samples handed to tetragen's evaluator in order, and a checkout's commit. The peers
themselves (their venv, their training) run only in the benchmarks (bench/sound.py, bench/diffusion.py --quick)."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _module(name: str):
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def diffusion():
    return _module("diffusion")


EXAMPLE = '''model = UNet2DModel(
    in_channels=3,
    out_channels=3,
)
processed.append(augmentations(image.convert("RGB")))
'''


def test_the_examples_copy_is_one_channel_and_refused_when_a_line_moved(diffusion, tmp_path):
    peer = tmp_path / "diffusers"
    script = peer / diffusion.PEER_SCRIPT
    script.parent.mkdir(parents=True)
    script.write_text(EXAMPLE)
    out = diffusion.patched_script(peer, tmp_path / "copy.py")
    assert out.read_text() == EXAMPLE.replace("=3,", "=1,").replace('convert("RGB")', 'convert("L")')
    assert script.read_text() == EXAMPLE  # the checkout itself is untouched
    script.write_text(EXAMPLE.replace("in_channels=3,", "in_channels=channels,"))
    with pytest.raises(SystemExit, match="has 0 of 'in_channels=3,'"):
        diffusion.patched_script(peer, tmp_path / "copy.py")


def test_images_are_written_as_32x32_grey_pngs_padded_with_black(diffusion, tmp_path):
    class Split:
        images = np.arange(3 * 28 * 28, dtype=np.uint64).reshape(3, 28, 28, 1).astype(np.uint8) | 1

    class Data:
        train = Split()
    diffusion.write_peer_images(Data(), tmp_path / "png", limit=2)
    files = sorted((tmp_path / "png").glob("*.png"))
    assert [f.name for f in files] == ["00000.png", "00001.png"]
    img = np.asarray(Image.open(files[1]))
    assert Image.open(files[1]).mode == "L" and img.shape == (32, 32)
    assert np.array_equal(img[2:30, 2:30], Split.images[1, ..., 0]) and img[:2].max() == 0 and img[:, :2].max() == 0


def test_drawn_samples_are_handed_out_in_order(diffusion):
    images = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1)
    drawn = diffusion.Drawn(images, ["a", "b"])
    assert not drawn.conditional and drawn.classes == ["a", "b"]
    assert drawn.sample(4, seed=0).ravel().tolist() == [0, 1, 2, 3]
    assert drawn.sample(6, seed=1, labels=None).ravel().tolist() == [4, 5, 6, 7, 8, 9]


def test_a_checkouts_commit_and_a_folder_that_is_none(diffusion, tmp_path):
    repo = tmp_path / "peer"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (repo / "f").write_text("x")
    subprocess.run([*git, "add", "f"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "x"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert diffusion.peer_venv.checkout_commit(repo) == head
    (repo / "inside").mkdir()  # a folder inside a checkout is not one
    assert diffusion.peer_venv.checkout_commit(repo / "inside").startswith("unknown")
