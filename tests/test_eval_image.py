"""Image evaluation: the cached evaluator CNN, FID/KID through torchmetrics, class accuracy, the references, the CLI.

Everything runs on a tiny synthetic folder of 16x16 PNGs (three classes of simple shapes) with a tiny evaluator.
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from tests.conftest import run_cli
from tetragen.errors import UserError

SHAPES = ["bar", "column", "square"]
TINY = dict(width=4, feature_dim=16, epochs=6, batch_size=32, lr=1e-2)


def _draw(kind: str, rng: np.random.Generator) -> np.ndarray:
    img = np.zeros((16, 16), dtype=np.uint8)
    a, b = rng.integers(2, 6, size=2)
    v = rng.integers(160, 256)
    if kind == "bar":
        img[a + 3:a + 6, 2:14] = v
    elif kind == "column":
        img[2:14, b + 3:b + 6] = v
    else:
        img[a + 2:a + 9, b + 2:b + 9] = v
        img[a + 4:a + 7, b + 4:b + 7] = 0
    return img


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory):
    """A folder of 16x16 grey PNGs: 80 per class, one sub-folder per class."""
    from PIL import Image
    root = tmp_path_factory.mktemp("shapes")
    rng = np.random.default_rng(0)
    for kind in SHAPES:
        (root / kind).mkdir()
        for i in range(80):
            Image.fromarray(_draw(kind, rng), mode="L").save(root / kind / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def shapes(shapes_root, tmp_path_factory):
    """(ImageData, tiny Evaluator) built once, in the session's isolated cache (module fixtures run before the
    autouse per-test environment, so the cache variable is set here too)."""
    from tetragen.data.images import load_image_data
    from tetragen.eval.classifier import EvaluatorConfig, load_evaluator
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TETRAGEN_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        data = load_image_data(str(shapes_root), 16, 1, val_fraction=0.25)
        evaluator = load_evaluator(data, settings=EvaluatorConfig(**TINY), verbose=False)
    return data, evaluator


class FakeSampler:
    """A stand-in for an image family's pipeline that "generates" given images.

    Unconditional: it hands out `images` in order, chunk after chunk. Conditional: for each asked label it hands out
    the next image of class `label_map[label]` (the identity for a perfect model)."""

    def __init__(self, images, labels, classes, conditional=False, label_map=None):
        self.images, self.labels, self.classes, self.conditional = images, labels, classes, conditional
        self.label_map = label_map if label_map is not None else np.arange(len(classes))
        self.pos = 0
        self.per_class = {c: 0 for c in range(len(classes))}
        self.config = self.model = None
        self.seeds = []

    def sample(self, n, *, seed=None, labels=None):
        self.seeds.append(seed)
        if labels is None:
            idx = np.arange(self.pos, self.pos + n) % len(self.images)
            self.pos += n
            return self.images[idx]
        out = []
        for y in labels:
            pool = np.flatnonzero(self.labels == self.label_map[y])
            out.append(self.images[pool[self.per_class[int(y)] % len(pool)]])
            self.per_class[int(y)] += 1
        return np.stack(out)


def test_evaluator_is_cached_as_safetensors_and_json_and_reused(shapes, monkeypatch):
    from safetensors.torch import load_file

    from tetragen.eval import classifier
    data, ev = shapes
    assert sorted(p.name for p in ev.folder.iterdir()) == ["config.json", "metrics.json", "model.safetensors"]
    assert ev.folder.parent.name == "evaluators" and ev.folder.name.startswith(f"{data.name.split('/')[-1]}-16x16x1-")
    config = json.loads((ev.folder / "config.json").read_text())
    assert config["settings"]["width"] == TINY["width"] and config["classes"] == SHAPES
    assert any(k.endswith("weight") for k in load_file(str(ev.folder / "model.safetensors")))
    recorded = json.loads((ev.folder / "metrics.json").read_text())["test_acc"]
    assert recorded == pytest.approx(float(np.mean(ev.predict(data.test.images) == data.test.labels)))
    mtime = (ev.folder / "model.safetensors").stat().st_mtime_ns

    def no_training(*args, **kwargs):
        raise AssertionError("the cached evaluator was retrained")
    monkeypatch.setattr(classifier, "_train", no_training)
    again = classifier.load_evaluator(data, settings=classifier.EvaluatorConfig(**TINY))
    assert (ev.folder / "model.safetensors").stat().st_mtime_ns == mtime
    x = torch.from_numpy(data.test.images[:8])
    assert torch.equal(again.features(x), ev.features(x)) and again.features(x).shape == (8, TINY["feature_dim"])


def test_other_settings_retrain_into_the_same_folder(shapes):
    from tetragen.eval.classifier import EvaluatorConfig, load_evaluator
    data, ev = shapes
    other = load_evaluator(data, settings=EvaluatorConfig(**{**TINY, "epochs": 1}), verbose=False)
    assert other.config["settings"]["epochs"] == 1 and other.folder == ev.folder
    back = load_evaluator(data, settings=EvaluatorConfig(**TINY), verbose=False)  # same seed: the same weights
    x = torch.from_numpy(data.test.images[:8])
    assert torch.allclose(back.features(x), ev.features(x), atol=1e-5)


def test_fid_and_kid_of_the_test_split_against_itself_are_near_zero_and_far_below_noise(shapes):
    from tetragen.eval.image import image_metrics
    data, ev = shapes
    n = len(data.test.labels)
    perfect = FakeSampler(data.test.images, data.test.labels, data.classes)
    same = image_metrics(perfect.sample, data, n=n, evaluator=ev, batch_size=50)
    noise = np.random.default_rng(1).integers(0, 256, size=(n, 16, 16, 1), dtype=np.uint8)
    rand = image_metrics(FakeSampler(noise, None, data.classes).sample, data, n=n, evaluator=ev, batch_size=50)
    assert set(same) == {"fid", "kid", "kid_std"}
    assert abs(same["fid"]) < 1e-3 * rand["fid"] and rand["fid"] > 0
    # KID is an unbiased MMD estimate; with the very same images on both sides it dips slightly below 0
    assert abs(same["kid"]) < 0.1 * rand["kid"] and rand["kid"] > 5 * rand["kid_std"]
    assert perfect.seeds == [0, 1] and n == 60  # chunks of 50 with seeds seed, seed+1


def test_class_accuracy_of_true_labels_is_high_and_of_wrong_labels_low(shapes):
    from tetragen.eval.image import image_metrics
    data, ev = shapes
    args = (data.test.images, data.test.labels, data.classes, True)
    right = image_metrics(FakeSampler(*args).sample, data, n=60, evaluator=ev, conditional=True)
    wrong = image_metrics(FakeSampler(*args, label_map=np.array([1, 2, 0])).sample, data, n=60, evaluator=ev,
                          conditional=True)
    assert right["class_acc"] >= 0.9, right
    assert wrong["class_acc"] <= 0.2, wrong
    assert ev.test_acc >= 0.9  # the tiny evaluator learns the three shapes


def test_conditional_labels_cycle_evenly_over_the_samples(shapes):
    from tetragen.eval.image import class_cycle, image_metrics
    data, ev = shapes
    asked = []

    def sample(n, *, seed=None, labels=None):
        asked.extend(labels.tolist())
        return np.zeros((n, 16, 16, 1), dtype=np.uint8)
    image_metrics(sample, data, n=7, evaluator=ev, conditional=True, batch_size=3)
    assert asked == [0, 1, 2, 0, 1, 2, 0] == class_cycle(7, 3).tolist()


def test_references_are_positive_and_cached_beside_the_evaluator(shapes, monkeypatch):
    from tetragen.eval import image
    data, ev = shapes
    refs = image.reference_metrics(data, ev, n=60)
    assert refs["blur_fid"] > 0 and refs["train_fid"] >= 0 and refs["n_real"] == 60
    assert refs["blur_kid"] > 0
    cached = json.loads((ev.cache_folder / "references.json").read_text())
    assert cached["n=60,seed=0"] == refs

    def no_compute(*args, **kwargs):
        raise AssertionError("references recomputed instead of read from the cache")
    monkeypatch.setattr(image, "Distances", no_compute)
    assert image.reference_metrics(data, ev, n=60) == refs


def test_box_blur_averages_the_3x3_neighbourhood():
    from tetragen.data.images import box_blur
    x = np.zeros((1, 5, 5, 1), dtype=np.uint8)
    x[0, 2, 2, 0] = 180
    out = box_blur(x)[0, :, :, 0]
    assert out.dtype == np.uint8 and (out[1:4, 1:4] == 20).all() and out.sum() == 180
    corner = np.zeros((1, 3, 3, 1), dtype=np.uint8)
    corner[0, 0, 0, 0] = 200
    assert box_blur(corner)[0, 0, 0, 0] == 50  # the corner averages its 4 in-image pixels


def test_metrics_leave_the_callers_random_state_alone(shapes):
    from tetragen.eval.image import image_metrics
    data, ev = shapes
    torch.manual_seed(5)
    before = torch.get_rng_state()
    image_metrics(FakeSampler(data.test.images, data.test.labels, data.classes).sample, data, n=20, evaluator=ev)
    assert torch.equal(torch.get_rng_state(), before)


def test_bad_sample_count_and_bad_samples_are_clear_errors(shapes):
    from tetragen.eval.image import image_metrics
    data, ev = shapes
    sampler = FakeSampler(data.test.images, data.test.labels, data.classes)
    for n in (0, -3, 1):
        with pytest.raises(UserError, match="at least 2"):
            image_metrics(sampler.sample, data, n=n, evaluator=ev)
    with pytest.raises(ValueError, match="uint8"):
        image_metrics(lambda n, **kw: np.zeros((n, 16, 16, 1), np.float32), data, n=4, evaluator=ev)


@pytest.mark.parametrize("n", ["0", "-5"])
def test_cli_rejects_a_non_positive_sample_count(tmp_path, n):
    r = run_cli("eval", str(tmp_path), "--n", n)
    assert r.returncode == 2
    assert r.stderr.startswith("tetragen: error: --n") and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "Traceback" not in r.stderr


def test_evaluate_images_reports_everything(shapes):
    from tetragen.eval.classifier import EvaluatorConfig
    from tetragen.eval.image import evaluate_images, report_lines
    data, ev = shapes
    sampler = FakeSampler(data.test.images, data.test.labels, data.classes, conditional=True)
    m = evaluate_images(sampler, data, n=60, evaluator_settings=EvaluatorConfig(**TINY))
    for key in ["fid", "kid", "kid_std", "class_acc", "ref_train_fid", "ref_blur_fid", "evaluator_test_acc"]:
        assert isinstance(m[key], float), key
    assert m["evaluator_test_acc"] == ev.test_acc and m["feature_dim"] == TINY["feature_dim"]
    text = "\n".join(report_lines(data, m))
    assert "FID" in text and "3x3-blur" in text and "class accuracy" in text and "test accuracy" in text
    assert json.loads(json.dumps(m)) == m


def _image_families() -> list[str]:
    """The families that draw images and need no other run (tokenizers are evaluated on their reconstructions and
    families built from other runs through the CLI in their own tests)."""
    from tetragen.registry import get_family, list_families
    return [f for f in list_families() if "sample" in get_family(f).capabilities and not get_family(f).components]


@pytest.mark.parametrize("family", _image_families())
def test_cli_eval_of_a_trained_image_run(family, shapes_root, tmp_path):
    """Through the real entry point: train a tiny run on the shapes, then `tetragen eval` it (text and --json)."""
    import tetragen
    run = tmp_path / "run"
    r = run_cli("train", family, "--data", str(shapes_root), "--out", str(run), "--preset", "tiny",
                "model.image_size=16", "model.channels=1", "train.max_steps=4", "train.eval_samples=16")
    assert r.returncode == 0, r.stderr
    r = run_cli("eval", str(run), "--n", "40", "--json")
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout)
    assert m["n"] == 40 and m["fid"] > 0 and m["ref_blur_fid"] > 0 and 0 <= m["evaluator_test_acc"] <= 1
    assert ("class_acc" in m) == bool(tetragen.load(run).conditional)
    r = run_cli("eval", str(run), "--n", "40")
    assert r.returncode == 0, r.stderr
    assert "FID" in r.stdout and "3x3-blur vs test" in r.stdout and "test accuracy" in r.stdout


@pytest.mark.slow
def test_fashion_mnist_evaluator_reaches_90_percent():
    from tetragen.data.images import load_image_data
    from tetragen.eval.classifier import load_evaluator
    try:
        data = load_image_data("fashion-mnist", 28, 1)
    except UserError as e:
        pytest.skip(str(e))
    assert load_evaluator(data).test_acc >= 0.90


def test_a_parts_head_scores_a_class_as_the_sum_of_its_parts_and_its_own_bias():
    from tetragen.eval.classifier import PartsHead
    head = PartsHead(3, [[0, 2], [1, 2], [0, 1, 3]], dropout=0.0)
    with torch.no_grad():
        head.bias.copy_(torch.tensor([0.5, -1.0, 2.0]))
    x = torch.randn(5, 3)
    s = head.score(x)
    want = torch.stack([s[:, 0] + s[:, 2], s[:, 1] + s[:, 2], s[:, 0] + s[:, 1] + s[:, 3]], 1) + head.bias
    assert torch.allclose(head(x), want)
    assert set(head.state_dict()) == {"bias", "score.weight", "score.bias"}  # the parts come from config.json


def test_the_shipped_evaluator_matches_its_record_and_loads():
    import hashlib
    from tetragen.eval import classifier
    readme = (classifier.SHIPPED / "README.md").read_text()
    folders = [p for p in classifier.SHIPPED.iterdir() if p.is_dir()]
    assert folders, "no evaluator is shipped"
    for folder in folders:
        sha = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
        assert f"| {folder.name} |" in readme and sha in readme, folder
        config = json.loads((folder / "config.json").read_text())
        assert folder.name.endswith(config["data_sha256"][:12])
        ev = classifier._read(folder, config)
        # its accuracy is the one on record, and far above chance (the video one reads 20-pixel garments in motion)
        row = next(line for line in readme.splitlines() if line.startswith(f"| {folder.name} |"))
        assert ev is not None and abs(ev.test_acc - float(row.split("|")[2])) < 1e-4
        assert ev.test_acc >= 0.7, folder


def test_a_shipped_evaluator_is_used_instead_of_training(shapes, tmp_path, monkeypatch):
    """Where tetragen ships the evaluator for the data (same digest, same settings) nothing is trained."""
    from tetragen.eval import classifier
    data, trained = shapes
    settings = classifier.EvaluatorConfig(**TINY)
    shipped = tmp_path / "weights"
    shutil.copytree(trained.folder, shipped / trained.folder.name)
    monkeypatch.setattr(classifier, "SHIPPED", shipped)
    monkeypatch.setenv("TETRAGEN_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(classifier, "_train", lambda *a, **k: pytest.fail("trained although one is shipped"))
    ev = classifier.load_evaluator(data, settings=settings, verbose=False)
    assert ev.folder == shipped / trained.folder.name and ev.test_acc == trained.test_acc
    before = sorted(p.name for p in ev.folder.iterdir())
    from tetragen.eval.image import reference_metrics
    reference_metrics(data, ev, 8)
    assert sorted(p.name for p in ev.folder.iterdir()) == before, "the shipped folder was written"
    assert (ev.cache_folder / "references.json").is_file()


def test_an_evaluator_with_other_weights_does_not_read_anothers_references(shapes, tmp_path, monkeypatch):
    """The references cached beside an evaluator are its own: one of the same data retrained (other settings, or
    another machine's weights) under the same folder name scores them afresh."""
    from safetensors.torch import load_file
    from tetragen.eval import classifier
    from tetragen.files import save_tensors
    _, trained = shapes
    monkeypatch.setenv("TETRAGEN_CACHE", str(tmp_path / "cache"))
    first, second = tmp_path / "a" / trained.folder.name, tmp_path / "b" / trained.folder.name
    shutil.copytree(trained.folder, first)
    shutil.copytree(trained.folder, second)
    weights = load_file(second / "model.safetensors")
    save_tensors({k: v + 0.01 if v.is_floating_point() else v for k, v in weights.items()},
                 second / "model.safetensors")
    a, b = (classifier._read(f, trained.config) for f in (first, second))
    assert a.cache_folder != b.cache_folder and a.cache_folder.name.startswith(trained.folder.name)
    assert classifier._read(first, trained.config).cache_folder == a.cache_folder  # the same weights, the same place
