"""Tasks built from the complete works (`tetragen data shakespeare-tasks`) on a small fake `shakespeare` corpus: the
genre table, passages, the split by work, and bad input as one-line errors."""
from __future__ import annotations

import csv
import json

import pytest

from tetragen.data import shakespeare_tasks as tasks
from tetragen.data.sources import cache_dir

from .conftest import one_line_error, run_cli

# two works of each genre, each with a play's or a poem's front matter
FAKE = {
    "hamlet": "tragedy", "macbeth": "tragedy", "henry_v": "history", "richard_ii": "history",
    "tempest": "comedy", "twelfth_night": "comedy", "sonnets": "poetry", "lovers_complaint": "poetry",
}
WORDS = {"tragedy": "blood death grave", "history": "crown king england", "comedy": "wedding jest song",
         "poetry": "thy beauty summer"}


def fake_work(name: str, genre: str) -> str:
    title = tasks.WORKS[name][0].upper()
    front = f"{title}\n\nby William Shakespeare\n\n\n\n\n"
    if genre != "poetry":
        front += f"PERSONS REPRESENTED.\n\n{name.upper()}, a lord.\n\nSCENE: {title}\n\n\nACT I.\n\n"
    lines = [f"FIRST LORD.\n{WORDS[genre]} line {i} of {name}\n" for i in range(40)]
    return front + "\n".join(lines) + "\n"


@pytest.fixture
def fake_corpus() -> dict[str, str]:
    """The `shakespeare` corpus as built in the cache: shakespeare.txt + works.json (no archive, no network)."""
    folder = cache_dir() / "shakespeare"
    folder.mkdir(parents=True, exist_ok=True)
    texts = {name: fake_work(name, genre) for name, genre in sorted(FAKE.items())}
    works, offset = [], 0
    for name, text in texts.items():
        works.append({"name": name, "start": offset, "end": offset + len(text)})
        offset += len(text)
    (folder / "shakespeare.txt").write_text("".join(texts.values()), encoding="utf-8")
    (folder / "works.json").write_text(json.dumps(works), encoding="utf-8")
    yield texts
    for p in folder.iterdir():
        p.unlink()


def test_genre_table_covers_the_complete_works():
    genres = [g for _, g in tasks.WORKS.values()]
    assert len(tasks.WORKS) == 42
    assert {g: genres.count(g) for g in tasks.GENRES} == {"comedy": 15, "history": 10, "tragedy": 12, "poetry": 5}
    held = [tasks.genre(w) for w in tasks.HELD_OUT]
    assert all(held.count(g) == 2 for g in tasks.GENRES)


def test_passages_have_the_length_and_start_on_lines():
    text = "\n\nab cd\nefgh\n\n   \nijkl mnop\nq\nrstu\n"
    got = tasks.passages(text, 6)
    assert got == ["ab cd\n", "efgh\n\n", "ijkl m", "q\nrstu"]  # blank lines skipped; the rest of a cut line too
    assert tasks.passages("short\n", 10) == []


def test_shakespeare_tasks_split_by_work(tmp_path, fake_corpus):
    out = tmp_path / "tasks"
    held = ["macbeth", "henry_v", "tempest", "lovers_complaint"]
    r = run_cli("data", "shakespeare-tasks", "--out", str(out), "--hold-out", ",".join(held),
                "--passage-chars", "40", "--train-per-genre", "0", "--test-per-genre", "5")
    assert r.returncode == 0, r.stderr
    assert (out / "pretrain.txt").read_text(encoding="utf-8") == "".join(
        t for n, t in fake_corpus.items() if n not in held)
    for name in held:
        assert (out / "heldout" / f"{name}.txt").read_text(encoding="utf-8") == fake_corpus[name]
    with open(out / "genre.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert {(r["split"], r["work"] in held) for r in rows} == {("train", False), ("test", True)}
    for split in ("train", "test"):
        assert {r["label"] for r in rows if r["split"] == split} == set(tasks.GENRES)
    assert all(r["label"] == FAKE[r["work"]] for r in rows)
    assert all(len(r["text"]) == 40 for r in rows)
    assert all(r["text"] in fake_corpus[r["work"]] for r in rows)
    for r in rows:  # the front matter never gets into a passage
        assert "Shakespeare" not in r["text"] and "PERSONS" not in r["text"]
        assert tasks.WORKS[r["work"]][0].upper() not in r["text"]
    manifest = json.loads((out / "tasks.json").read_text())
    assert manifest["held_out"] == held and manifest["passage_chars"] == 40
    assert manifest["genre_rows"]["test"] == {g: 5 for g in tasks.GENRES}
    n_train = sum(r["split"] == "train" for r in rows)
    assert sum(manifest["genre_rows"]["train"].values()) == n_train > 20
    # the same seed draws the same passages
    again = tasks.genre_rows(list(fake_corpus.items()), tuple(held), passage_chars=40, train_per_genre=0,
                             test_per_genre=5)
    assert [r["text"] for r in again] == [r["text"] for r in rows]


def test_bad_hold_out_is_one_line_and_writes_nothing(tmp_path, fake_corpus):
    out = tmp_path / "tasks"
    one_line_error(run_cli("data", "shakespeare-tasks", "--out", str(out), "--hold-out", "macbet,tempest"),
                   "macbet", "not a work")
    one_line_error(run_cli("data", "shakespeare-tasks", "--out", str(out), "--hold-out", "macbeth,tempest"),
                   "history or poetry")
    one_line_error(run_cli("data", "shakespeare-tasks", "--out", str(out), "--hold-out",
                           "macbeth,hamlet,tempest,henry_v,sonnets"), "every tragedy work")
    one_line_error(run_cli("data", "shakespeare-tasks", "--out", str(out), "--passage-chars", "3"),
                   "--passage-chars")
    assert not out.exists()
    held = "macbeth,henry_v,tempest,sonnets"
    assert run_cli("data", "shakespeare-tasks", "--out", str(out), "--hold-out", held).returncode == 0
    one_line_error(run_cli("data", "shakespeare-tasks", "--out", str(out), "--hold-out", held), "--overwrite")
