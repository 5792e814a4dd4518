"""A user's image folder trains as it is: colour images as colour, at the folder's own size (or the nearest size the
model takes), with one line saying what the images become; keys the user gives win, and a trained run's shape is
never reset by a folder."""
import json
from pathlib import Path

import numpy as np
from PIL import Image

from tetragen.config import build_run_config
from tetragen.data.images import (AUTO_MAX_SIZE, conversion_notice, fit_model_to_folder, nearest_size, scan_folder,
                                  supported_sizes)

from .conftest import make_image_folder, run_cli

QUICK = ("--preset", "tiny", "train.max_steps=2", "train.eval_samples=0", "train.eval_every=0", "train.save_every=0")


def colour_folder(root: Path, sizes=((16, 16),), per_class: int = 6, classes=("red", "blue")) -> Path:
    """Class folders of RGB PNGs (a coloured square on black), cycling through `sizes` (width, height)."""
    rng = np.random.default_rng(0)
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            w, h = sizes[i % len(sizes)]
            img = np.zeros((h, w, 3), dtype=np.uint8)
            y, x = rng.integers(0, h // 2), rng.integers(0, w // 2)
            img[y:y + h // 2, x:x + w // 2, c % 3] = 255
            Image.fromarray(img).save(root / name / f"{i:03d}.png")
    return root


def notices(stderr: str, root: Path) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(f"tetragen: {root}:")]


def new_config(family: str, root: Path, *overrides: str):
    cfg = build_run_config(family, preset="tiny", overrides=list(overrides))
    cfg.data.source = str(root)
    return cfg


def test_a_folder_of_colour_images_trains_as_colour_at_its_own_size(tmp_path):
    root = colour_folder(tmp_path / "photos")
    run = tmp_path / "run"
    r = run_cli("train", "dcgan", "--data", str(root), "--out", str(run), *QUICK)
    assert r.returncode == 0, r.stderr
    assert notices(r.stderr, root) == [f"tetragen: {root}: 12 colour images of 16x16 -> training at 16x16x3; "
                                       f"set model.image_size / model.channels to change"]
    model = json.loads((run / "config.json").read_text())["model"]
    assert (model["image_size"], model["channels"]) == (16, 3)
    r = run_cli("sample", str(run), "--n", "3", "--seed", "0", "--out", str(tmp_path / "s.npz"))
    assert r.returncode == 0, r.stderr
    with np.load(tmp_path / "s.npz") as z:
        images = next(v for v in z.values() if v.dtype == np.uint8)
    assert images.shape == (3, 16, 16, 3)


def test_mixed_sizes_give_one_notice_and_the_nearest_supported_side(tmp_path, capsys):
    root = colour_folder(tmp_path / "mixed", sizes=((16, 16), (20, 12), (40, 40)))
    cfg = new_config("dcgan", root)
    fit_model_to_folder(cfg)
    lines = notices(capsys.readouterr().err, root)
    assert len(lines) == 1, lines
    # shorter sides 16, 12, 40 four times each: the median is 16, a side the generator reaches (4 -> 8 -> 16)
    assert (cfg.model.image_size, cfg.model.channels) == (16, 3)
    assert "sizes from 20x12 to 40x40" in lines[0] and "centre-cropped to squares, resized" in lines[0]
    assert "model.image_size / model.channels" in lines[0]


def test_mixed_sizes_train_end_to_end(tmp_path):
    root = colour_folder(tmp_path / "mixed", sizes=((16, 16), (24, 18), (12, 12)))
    r = run_cli("train", "vae", "--data", str(root), "--out", str(tmp_path / "run"), *QUICK)
    assert r.returncode == 0, r.stderr
    assert len(notices(r.stderr, root)) == 1, r.stderr
    model = json.loads((tmp_path / "run" / "config.json").read_text())["model"]
    assert (model["image_size"], model["channels"]) == (16, 3)


def test_the_keys_the_user_gives_win(tmp_path):
    root = colour_folder(tmp_path / "photos")
    run = tmp_path / "run"
    r = run_cli("train", "dcgan", "--data", str(root), "--out", str(run), *QUICK, "model.image_size=32")
    assert r.returncode == 0, r.stderr
    model = json.loads((run / "config.json").read_text())["model"]
    assert (model["image_size"], model["channels"]) == (32, 3)  # the size as given; colour from the folder
    assert [line.split(" -> ")[1] for line in notices(r.stderr, root)] == [
        "training at 32x32x3 (resized); set model.image_size / model.channels to change"]
    grey = make_image_folder(tmp_path / "grey", n_per_class=4)
    cfg = new_config("dcgan", grey, "model.channels=3", "model.image_size=16")
    fit_model_to_folder(cfg)
    assert (cfg.model.image_size, cfg.model.channels) == (16, 3)


def test_a_folder_already_in_the_default_shape_says_nothing(tmp_path, capsys):
    root = make_image_folder(tmp_path / "shapes", n_per_class=4)  # 28x28 grey
    cfg = new_config("vae", root)
    fit_model_to_folder(cfg)
    assert (cfg.model.image_size, cfg.model.channels) == (28, 1)
    assert not notices(capsys.readouterr().err, root)


def test_a_named_dataset_keeps_its_shape():
    cfg = new_config("dcgan", "fashion-mnist")
    fit_model_to_folder(cfg)
    assert (cfg.model.image_size, cfg.model.channels) == (28, 1)


def test_large_images_are_scaled_down_to_the_largest_automatic_side(tmp_path, capsys):
    root = colour_folder(tmp_path / "big", sizes=((96, 96),), per_class=2)
    cfg = new_config("dcgan", root)
    fit_model_to_folder(cfg)
    assert cfg.model.image_size == AUTO_MAX_SIZE == 64
    assert "resized" in notices(capsys.readouterr().err, root)[0]


def test_each_family_gets_a_side_its_architecture_takes(tmp_path):
    root = colour_folder(tmp_path / "odd", sizes=((18, 18),), per_class=2)
    for family in ("dcgan", "vae", "vaegan", "vqvae", "vqgan", "cgan", "cvae"):
        cfg = new_config(family, root)
        fit_model_to_folder(cfg)
        assert cfg.model.image_size in (16, 20), family   # 18 is 9 * 2: its start would be 9 pixels
        cfg.model.validate()
    assert supported_sizes(build_run_config("vqvae", preset="tiny").model)[:3] == [8, 12, 16]  # downsample 4
    assert nearest_size(18, [16, 20]) == 20 and nearest_size(17, [16, 20]) == 16


def test_colour_is_read_from_modes_and_palettes(tmp_path):
    root = tmp_path / "mixed"
    root.mkdir()
    Image.fromarray(np.full((8, 8), 90, dtype=np.uint8)).save(root / "grey.png")
    Image.fromarray(np.full((8, 8), 90, dtype=np.uint8)).convert("P").save(root / "grey_palette.png")
    assert scan_folder(root).colour == 0 and scan_folder(root).channels == 1
    rgb = np.zeros((8, 8, 3), dtype=np.uint8)
    rgb[..., 0] = 200
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE).save(root / "red_palette.png")
    shape = scan_folder(root)
    assert (shape.count, shape.colour, shape.channels) == (3, 1, 3)
    assert shape.describe() == "3 images (1 colour, 2 grey) of 8x8"
    line = conversion_notice(root, shape, 8, 3, "change it")
    assert line.endswith("-> training at 8x8x3 (grey ones as RGB); change it")


def test_a_trained_runs_shape_is_never_reset_by_a_folder(tmp_path):
    """A run in the default shape, reconstructing images from a colour folder: they are converted to its shape."""
    run = tmp_path / "run"
    r = run_cli("train", "vae", "--data", str(make_image_folder(tmp_path / "shapes", n_per_class=4)), "--out",
                str(run), *QUICK)
    assert r.returncode == 0, r.stderr
    photos = colour_folder(tmp_path / "photos", per_class=10)  # one test image per class
    r = run_cli("reconstruct", str(run), "--data", str(photos), "--n", "2", "--out", str(tmp_path / "r.png"))
    assert r.returncode == 0, r.stderr
    assert not notices(r.stderr, photos)
    with Image.open(tmp_path / "r.png") as grid:
        assert grid.size == (4 * (28 + 2) + 2, 28 + 4)  # (image, reconstruction) x 2, at the run's 28x28


def test_eval_of_a_colour_run_scores_it_at_its_shape(tmp_path):
    """The evaluator is trained for the folder at the run's shape, so a colour run's FID is measured in colour."""
    root = colour_folder(tmp_path / "photos", per_class=10)  # one test image per class: FID needs two
    run = tmp_path / "run"
    r = run_cli("train", "dcgan", "--data", str(root), "--out", str(run), *QUICK)
    assert r.returncode == 0, r.stderr
    r = run_cli("eval", str(run), "--n", "8", "--json")
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout)
    assert m["fid"] >= 0 and "16x16x3" in m["evaluator"]


def test_a_folder_too_small_for_fid_trains_without_it_and_eval_says_why(tmp_path):
    root = colour_folder(tmp_path / "few", per_class=3)  # 6 images: the test split is the last one
    run = tmp_path / "run"
    r = run_cli("train", "dcgan", "--data", str(root), "--out", str(run), "--preset", "tiny", "train.max_steps=2")
    assert r.returncode == 0, r.stderr
    assert "gives its test split 1 image, so this run reports no FID/KID" in r.stderr
    r = run_cli("eval", str(run), "--n", "8")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "its test split has 1 image, and FID/KID need at least 2" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
