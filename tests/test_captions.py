"""Captions for text-to-image training: measured attributes and their terciles, built phrasings (train and
held-out), the user's captions.jsonl / captions.csv for an image folder, and deterministic picks."""
import csv
import json

import numpy as np
import pytest

from tetragen.data import captions as C
from tetragen.data.images import DEBIAN_FASHION_MNIST, FASHION_MNIST_CLASSES, FASHION_MNIST_FILES, load_image_data
from tetragen.errors import UserError

from .conftest import make_image_folder

ATTRIBUTE_COMBOS = [(b, s) for b in range(3) for s in range(3)]
UNKNOWN_CLASSES = ["disc", "cats", "7", "My_Dog/puppy", "ostrich"]


def squares(values, sides, size=16, channels=1):
    """One image per (value, side): a centred side x side square of grey `value` on black."""
    images = np.zeros((len(values), size, size, channels), np.uint8)
    for i, (v, s) in enumerate(zip(values, sides)):
        images[i, :s, :s] = v
    return images


def all_captions(classes, phrasings):
    builder = C.CaptionBuilder(classes, phrasings)
    return {c for label in range(len(classes)) for b, s in ATTRIBUTE_COMBOS for c in builder.captions(label, b, s)}


# ----------------------------------------------------------------------------------------------------------------
# measured attributes

def test_tercile_cuts_put_a_third_of_the_training_images_in_each_bucket():
    rng = np.random.default_rng(0)
    n = 30  # distinct ink values and ink areas, shuffled independently of each other
    values, areas = rng.permutation(np.arange(60, 60 + 6 * n, 6)), rng.permutation(np.arange(1, n + 1))
    images = np.zeros((n, 8 * 8), np.uint8)
    for i in range(n):
        images[i, :areas[i]] = values[i]
    images = images.reshape(n, 8, 8, 1)
    labels = np.arange(n) % 2
    terciles = C.Terciles.fit(images, labels, num_classes=2)
    overall = terciles.buckets(images)
    per_class = terciles.buckets(images, labels)
    for attribute in C.ATTRIBUTES:
        assert len(np.unique(C.measure(images)[attribute])) == n, attribute
        assert np.bincount(overall[attribute], minlength=3).tolist() == [10, 10, 10], attribute
        for c in (0, 1):
            assert np.bincount(per_class[attribute][labels == c], minlength=3).tolist() == [5, 5, 5], attribute
    again = C.Terciles.from_json(json.loads(json.dumps(terciles.to_json())))
    assert again == terciles


def test_measure_buckets_dark_light_small_large_squares():
    values, sides = np.repeat([60, 150, 250], 3), np.tile([3, 8, 14], 3)  # a 3x3 grid of brightness x size
    train = squares(values, sides)
    m = C.measure(train)
    assert np.allclose(m["brightness"], values / 255) and np.allclose(m["size"], sides ** 2 / 256)
    terciles = C.Terciles.fit(train)
    probe = squares([50, 255, 40, 245, 0], [2, 2, 15, 15, 4])  # dark small, light small, dark large, light large,
    got = terciles.buckets(probe)                                # and a black image: no ink at all
    assert got["brightness"].tolist() == [0, 2, 0, 2, 0]
    assert got["size"].tolist() == [0, 0, 2, 2, 0]
    grey = squares(values, sides, channels=3)  # grey RGB measures as its one channel
    assert np.allclose(C.measure(grey)["brightness"], m["brightness"], atol=1e-3)
    faint = squares([C.INK_THRESHOLD], [10])  # at the threshold: background, not ink
    assert C.measure(faint)["size"][0] == 0


# ----------------------------------------------------------------------------------------------------------------
# built captions

@pytest.mark.parametrize("classes", [FASHION_MNIST_CLASSES, UNKNOWN_CLASSES], ids=["fashion-mnist", "unknown"])
@pytest.mark.parametrize("phrasings", list(C.PHRASINGS))
def test_built_captions_name_the_class_and_the_image_attributes(classes, phrasings):
    builder = C.CaptionBuilder(classes, phrasings)
    for label in range(len(classes)):
        nouns = [noun for _, noun in C.noun_phrases(classes[label])]
        for b, s in ATTRIBUTE_COMBOS:
            words = C.attribute_words(b, s)
            options = builder.captions(label, b, s)
            assert len(options) >= 2
            for caption in options:
                assert any(noun in caption for noun in nouns), caption
                tokens = caption.replace(",", " ").split()
                assert all(w in tokens for w in words), (caption, words)
                others = {w for ws in C.ATTRIBUTE_WORDS.values() for w in ws if w} - set(words)
                assert not others & set(tokens), caption
    assert C.CaptionBuilder(FASHION_MNIST_CLASSES).class_prompt(1) == "a pair of trousers"
    assert C.CaptionBuilder(FASHION_MNIST_CLASSES).attribute_prompt(9, "dark", "large") == "a large dark ankle boot"
    assert C.CaptionBuilder(FASHION_MNIST_CLASSES).attribute_prompt(9, brightness=2) == "a light ankle boot"
    assert C.CaptionBuilder(FASHION_MNIST_CLASSES).attribute_prompt(4, 1, 1) == "a coat"


def test_word_orders_vary():
    options = C.CaptionBuilder(FASHION_MNIST_CLASSES).captions(2, 2, 2)
    assert {"a large light pullover", "a light large pullover", "a pullover, large and light"} <= set(options)


def test_held_out_phrasings_never_occur_in_training():
    classes = FASHION_MNIST_CLASSES + UNKNOWN_CLASSES
    train, held_out = all_captions(classes, "train"), all_captions(classes, "held-out")
    assert len(held_out) > 100 and len(train) > 100
    assert not train & held_out, sorted(train & held_out)[:5]
    prompt = C.CaptionBuilder(classes, "held-out").attribute_prompt(4, "dark")
    assert prompt == "an image showing a dark coat" and prompt not in train


def test_unknown_class_names_get_a_fallback_phrase():
    builder = C.CaptionBuilder(UNKNOWN_CLASSES)
    assert [builder.class_prompt(i) for i in range(len(UNKNOWN_CLASSES))] == [
        "a disc", "cats", "an object of class 7", "a my dog", "an ostrich"]
    assert "dark cats" in builder.captions(1, 0, 1)
    assert "a small dark puppy" in builder.captions(3, 0, 0)
    assert C.noun_phrases("") == [("a", "object")]
    with pytest.raises(UserError, match="brightness 'blue'"):
        builder.attribute_prompt(0, "blue")


def test_the_same_seed_gives_the_same_caption_and_steps_vary_it():
    values, sides = np.repeat([60, 150, 250], 4), np.tile([3, 6, 10, 14], 3)
    images, labels = squares(values, sides), np.arange(12) % 3
    terciles = C.Terciles.fit(images, labels, 3)
    one = C.built_captions(images, labels, ["disc", "square", "bar"], terciles)
    two = C.CaptionSet.from_json(json.loads(json.dumps(one.to_json())), images, labels)
    picks = [[s.pick(i, (7, step)) for step in range(40)] for s in (one, two) for i in range(12)]
    assert picks[:12] == picks[12:]  # a stored run rebuilds the same draws
    for i in range(12):
        assert len(set(picks[i])) >= min(4, len(one.candidates(i))) >= 3, picks[i]  # fresh phrasings per step
        assert set(picks[i]) <= set(one.candidates(i))
    assert one.picks([0, 0, 0, 0, 0, 0], 3) != [one.pick(0, 3)] * 6  # batch positions draw separately
    held = one.held_out()
    assert all(held.pick(i, 1) in held.candidates(i) for i in range(12))
    assert not {held.pick(i, s) for i in range(12) for s in range(20)} & set(all_captions(one.builder.classes,
                                                                                         "train"))
    assert len(one.captioned) == 12


# ----------------------------------------------------------------------------------------------------------------
# the user's captions for an image folder

def folder(tmp_path, n_per_class=3):
    root = make_image_folder(tmp_path / "images", n_per_class=n_per_class)
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))
    return root, files


def loaded(root):
    data = load_image_data(str(root), 28, 1, val_fraction=0.34)
    return data, C.load_captions(data)


def test_captions_jsonl_is_read_and_mapped_to_the_loaded_images(tmp_path):
    from PIL import Image
    root, files = folder(tmp_path)
    lines = [json.dumps({"file": f, "text": f"picture {f}"}) for f in files] + [
        json.dumps({"file": files[0], "text": "  a second\ncaption "})]
    (root / "captions.jsonl").write_text("\n".join(lines) + "\n\n")
    data, (train, test) = loaded(root)
    assert (len(train), len(test)) == (len(data.train.labels), len(data.test.labels)) and len(test) > 0
    for split, captions in ((data.train, train), (data.test, test)):
        for i, options in enumerate(captions.texts):
            name = options[0].split()[1]
            assert np.array_equal(np.asarray(Image.open(root / name))[..., None], split.images[i]), name
    first = train.texts[0]
    assert first == [f"picture {files[0]}", "a second caption"]  # several captions per file, whitespace folded
    assert {train.pick(0, s) for s in range(20)} == set(first)
    assert train.to_json()["kind"] == "file" and len(train.to_json()["sha256"]) == 64


def test_captions_csv_is_read(tmp_path, capsys):
    root, files = folder(tmp_path)
    with open(root / "captions.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["file", "text"])
        for k, name in enumerate(files[1:]):
            w.writerow([name, f"shape {k}, drawn in white"])
    data, (train, test) = loaded(root)
    texts = [t for s in (train, test) for options in s.texts for t in options]
    assert len(texts) == len(files) - 1 and "shape 0, drawn in white" in texts
    assert sum(not options for options in train.texts + test.texts) == 1  # the uncaptioned image keeps its place
    assert len(train.captioned) + len(test.captioned) == len(files) - 1
    err = capsys.readouterr().err
    assert f"1 of {len(files)} images in {root} have no caption" in err, err


def test_bad_caption_lines_are_skipped_counted_and_listed(tmp_path, capsys):
    root, files = folder(tmp_path)
    (root / "disc" / "broken.png").write_bytes(b"not a png")
    good = [json.dumps({"file": f, "text": "ok"}) for f in files]
    bad = ['{"file": "disc/000.png", "text": ', json.dumps({"file": files[1]}),
           json.dumps({"file": "disc/nope.png", "text": "x"}), json.dumps({"file": files[2], "text": 5}),
           json.dumps({"file": "disc/broken.png", "text": "x"})]
    (root / "captions.jsonl").write_text("\n".join(good[:2] + bad + good[2:]) + "\n")
    data, (train, test) = loaded(root)
    err = [line for line in capsys.readouterr().err.splitlines() if "caption lines" in line]
    assert len(err) == 1, err
    assert f"skipped 5 of {len(files) + 5} caption lines" in err[0]
    assert "line 3: bad JSON; line 4: no 'text'; line 5: no file 'disc/nope.png' ..." in err[0]
    assert sum(len(o) for o in train.texts + test.texts) == len(files)


def test_bad_lines_past_the_first_few_still_name_their_problem(tmp_path, capsys):
    root, files = folder(tmp_path)
    (root / "disc" / "broken.png").write_bytes(b"not a png")
    lines = [json.dumps({"file": f, "text": "ok"}) for f in files] + [
        json.dumps({"file": "disc/broken.png", "text": "x"}), json.dumps({"file": files[0], "text": " "})]
    (root / "captions.jsonl").write_text("\n".join(lines))
    loaded(root)
    err = capsys.readouterr().err
    n = len(files)
    assert f"line {n + 1}: file 'disc/broken.png' could not be decoded; line {n + 2}: 'text' is empty" in err


def test_a_caption_file_without_a_usable_line_is_a_user_error(tmp_path):
    root, _ = folder(tmp_path)
    path = root / "captions.jsonl"
    path.write_text('not json\n{"file": "disc/none.png", "text": "x"}\n["a list"]\n')
    with pytest.raises(UserError) as e:
        loaded(root)
    message = str(e.value)
    assert "\n" not in message and str(path) in message
    assert "line 1: bad JSON; line 2: no file 'disc/none.png'; line 3: not a JSON object" in message
    path.unlink()
    (root / "captions.csv").write_text("path,caption\ndisc/000.png,a disc\n")
    with pytest.raises(UserError, match=r"captions\.csv: the first line must be the header file,text"):
        loaded(root)


def test_a_folder_without_a_caption_file_gets_built_captions(tmp_path):
    root, _ = folder(tmp_path)
    data, (train, test) = loaded(root)
    assert train.kind == test.kind == "built"
    assert all(any(n in train.pick(i, 0) for n in ("disc", "square", "bar")) for i in range(len(train)))
    again = C.load_captions(data, stored=train.to_json())
    assert [again[1].pick(i, 2) for i in range(len(test))] == [test.pick(i, 2) for i in range(len(test))]


# ----------------------------------------------------------------------------------------------------------------
# optional: the real data

def test_fashion_mnist_terciles_and_captions():
    if not all((DEBIAN_FASHION_MNIST / name).is_file() for name in FASHION_MNIST_FILES):
        pytest.skip(f"Fashion-MNIST is not installed in {DEBIAN_FASHION_MNIST}")
    data = load_image_data("fashion-mnist", 28, 1)
    train, test = C.load_captions(data)
    for attribute in C.ATTRIBUTES:
        share = np.bincount(train.buckets[attribute], minlength=3) / len(train)
        assert np.all(np.abs(share - 1 / 3) < 0.02), (attribute, share)
        share = np.bincount(test.buckets[attribute], minlength=3) / len(test)
        assert np.all(np.abs(share - 1 / 3) < 0.05), (attribute, share)
    for i in range(50):
        nouns = [n for _, n in C.noun_phrases(data.classes[data.test.labels[i]])]
        assert any(n in test.pick(i, 0) for n in nouns)
