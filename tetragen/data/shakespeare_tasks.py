"""Tasks built offline from the complete works (the `shakespeare` corpus): pre-training text, held-out works, genre.

`write_tasks(out)` (`tetragen data shakespeare-tasks --out DIR`) writes

    DIR/pretrain.txt         the complete works minus the held-out works: a corpus for `tetragen train`
    DIR/heldout/NAME.txt     each held-out work alone: a small corpus for `tetragen finetune`
    DIR/genre.csv            text,label,work,split rows: passages of a fixed number of characters labelled with the
                             genre of their work; split=train rows come from the other works, split=test rows from
                             the held-out works only (`tetragen finetune RUN --task classify --data DIR/genre.csv`)
    DIR/tasks.json           what was written: the held-out works, the passage counts, the settings

Genres are the First Folio's three categories (comedy, history, tragedy; Mr. William Shakespeares Comedies,
Histories, & Tragedies, 1623), with Troilus and Cressida and Cymbeline where the Folio prints them (among the
tragedies) and Pericles, which the Folio leaves out, with the late romances among the comedies; the poems are
poetry. Passages never include a work's front matter (its title and list of persons), so no passage names its genre.
"""
from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..files import write_text
from .text import resolve_text_source

GENRES = ("comedy", "history", "tragedy", "poetry")

WORKS = {  # name in works.json: (title, genre)
    "alls_well_that_ends_well": ("All's Well That Ends Well", "comedy"),
    "antony_and_cleopatra": ("Antony and Cleopatra", "tragedy"),
    "as_you_like_it": ("As You Like It", "comedy"),
    "comedy_of_errors": ("The Comedy of Errors", "comedy"),
    "coriolanus": ("Coriolanus", "tragedy"),
    "cymbeline": ("Cymbeline", "tragedy"),
    "hamlet": ("Hamlet", "tragedy"),
    "henry_iv_part_1": ("Henry IV, Part 1", "history"),
    "henry_iv_part_2": ("Henry IV, Part 2", "history"),
    "henry_v": ("Henry V", "history"),
    "henry_vi_part_1": ("Henry VI, Part 1", "history"),
    "henry_vi_part_2": ("Henry VI, Part 2", "history"),
    "henry_vi_part_3": ("Henry VI, Part 3", "history"),
    "henry_viii": ("Henry VIII", "history"),
    "john": ("King John", "history"),
    "julius_caesar": ("Julius Caesar", "tragedy"),
    "lear": ("King Lear", "tragedy"),
    "lovers_complaint": ("A Lover's Complaint", "poetry"),
    "loves_labours_lost": ("Love's Labour's Lost", "comedy"),
    "macbeth": ("Macbeth", "tragedy"),
    "measure_for_measure": ("Measure for Measure", "comedy"),
    "merchant_of_venice": ("The Merchant of Venice", "comedy"),
    "merry_wives_of_windsor": ("The Merry Wives of Windsor", "comedy"),
    "midsummer_nights_dream": ("A Midsummer Night's Dream", "comedy"),
    "much_ado_about_nothing": ("Much Ado About Nothing", "comedy"),
    "othello": ("Othello", "tragedy"),
    "passionate_pilgrim": ("The Passionate Pilgrim", "poetry"),
    "pericles": ("Pericles, Prince of Tyre", "comedy"),
    "phoenix_and_the_turtle": ("The Phoenix and the Turtle", "poetry"),
    "rape_of_lucrece": ("The Rape of Lucrece", "poetry"),
    "richard_ii": ("Richard II", "history"),
    "richard_iii": ("Richard III", "history"),
    "romeo_and_juliet": ("Romeo and Juliet", "tragedy"),
    "sonnets": ("The Sonnets", "poetry"),
    "taming_of_the_shrew": ("The Taming of the Shrew", "comedy"),
    "tempest": ("The Tempest", "comedy"),
    "timon_of_athens": ("Timon of Athens", "tragedy"),
    "tragedy_of_titus_andronicus": ("Titus Andronicus", "tragedy"),
    "troilus_and_cressida": ("Troilus and Cressida", "tragedy"),
    "twelfth_night": ("Twelfth Night", "comedy"),
    "two_gentlemen_of_verona": ("The Two Gentlemen of Verona", "comedy"),
    "winters_tale": ("The Winter's Tale", "comedy"),
}

# two works of each genre: the test split of the genre task, and text no pre-training run has read
HELD_OUT = ("twelfth_night", "much_ado_about_nothing", "richard_ii", "henry_v", "macbeth", "othello",
            "rape_of_lucrece", "lovers_complaint")
PASSAGE_CHARS = 127  # with [CLS], the 128 positions of a default bert run's context (char tokenizer)
TRAIN_PER_GENRE, TEST_PER_GENRE = 1000, 250

_AUTHOR_LINE = re.compile(r"^by William Shakespeare\s*$", re.M)
# a play's text starts at its first act, induction or prologue; before it come the title and the persons
_FIRST_HEADING = re.compile(r"^(?:THE )?(?:ACT|Act|INDUCTION|Induction|PROLOGUE|Prologue)\b", re.M)


def read_works(source: str = "shakespeare") -> list[tuple[str, str]]:
    """(name, text) of every work of the complete works, in corpus order (fetched like `--data shakespeare`)."""
    _, files = resolve_text_source(source)
    index = files[0].with_name("works.json")
    try:
        works = json.loads(index.read_text(encoding="utf-8"))
        text = files[0].read_text(encoding="utf-8")
        return [(w["name"], text[w["start"]:w["end"]]) for w in works]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"{index}: missing or unreadable ({type(e).__name__}); delete {files[0].parent} to have "
                        f"the corpus built again") from None


def genre(name: str) -> str:
    if name not in WORKS:
        raise UserError(f"work {name!r} has no genre; known works: {', '.join(WORKS)}")
    return WORKS[name][1]


def body(name: str, text: str) -> str:
    """The work without its front matter: after the author line, and for a play from its first act (or induction,
    or prologue) on."""
    m = _AUTHOR_LINE.search(text)
    start = m.end() if m else 0
    if genre(name) != "poetry" and (h := _FIRST_HEADING.search(text, start)):
        start = h.start()
    return text[start:]


def passages(text: str, length: int) -> list[str]:
    """Passages of exactly `length` characters that do not overlap, each starting at the start of a line that is
    not blank; the rest of the line where one ends is skipped."""
    out, i, n = [], 0, len(text)
    while i < n:
        eol = text.find("\n", i)
        eol = n if eol == -1 else eol
        if not text[i:eol].strip():  # a blank line: passages start on lines with text
            i = eol + 1
            continue
        if i + length > n:
            break
        out.append(text[i:i + length])
        end = text.find("\n", i + length - 1)  # the line the passage ends on
        if end == -1:
            break
        i = end + 1
    return out


def genre_rows(works: list[tuple[str, str]], held_out: tuple[str, ...], *, passage_chars: int = PASSAGE_CHARS,
               train_per_genre: int = TRAIN_PER_GENRE, test_per_genre: int = TEST_PER_GENRE,
               seed: int = 0) -> list[dict]:
    """Rows {text, label, work, split}: up to `*_per_genre` passages of each genre per split (0: all of them),
    drawn at random (seeded) from all of the genre's passages in that split, listed in corpus order."""
    pools: dict[tuple[str, str], list[tuple[int, int, str]]] = {}
    for w, (name, text) in enumerate(works):
        split = "test" if name in held_out else "train"
        for p, passage in enumerate(passages(body(name, text), passage_chars)):
            pools.setdefault((split, genre(name)), []).append((w, p, passage))
    rng = np.random.default_rng(seed)
    rows = []
    for split, cap in (("train", train_per_genre), ("test", test_per_genre)):
        chosen = []
        for g in GENRES:
            pool = pools.get((split, g), [])
            keep = sorted(rng.permutation(len(pool))[:cap] if cap else range(len(pool)))
            chosen += [pool[i] for i in keep]
        for w, _, passage in sorted(chosen, key=lambda c: c[:2]):
            name = works[w][0]
            rows.append({"text": passage, "label": genre(name), "work": name, "split": split})
    return rows


def check_held_out(works: list[tuple[str, str]], held_out: tuple[str, ...]) -> None:
    """Held-out works must be works of the corpus, and each genre needs works on both sides of the split."""
    names = [name for name, _ in works]
    unknown = [h for h in held_out if h not in names]
    if unknown:
        raise UserError(f"--hold-out: {', '.join(unknown)} is not a work of the corpus; choose from: "
                        f"{', '.join(names)}")
    present = [g for g in GENRES if any(genre(n) == g for n in names)]
    untested = [g for g in present if not any(genre(h) == g for h in held_out)]
    if untested:
        raise UserError(f"--hold-out: no {' or '.join(untested)} work is held out, so the genre test split would "
                        f"lack it; hold out at least one work of every genre")
    untrained = [g for g in present if all(n in held_out for n in names if genre(n) == g)]
    if untrained:
        raise UserError(f"--hold-out: every {' and '.join(untrained)} work is held out, so the genre training "
                        f"split would lack it; keep at least one work of every genre")


def write_tasks(out: str | Path, *, source: str = "shakespeare", held_out: tuple[str, ...] = HELD_OUT,
                passage_chars: int = PASSAGE_CHARS, train_per_genre: int = TRAIN_PER_GENRE,
                test_per_genre: int = TEST_PER_GENRE, seed: int = 0, overwrite: bool = False) -> dict:
    """Write the pre-training corpus, the held-out works and the genre task into `out`; returns tasks.json's
    content (see the module docstring)."""
    if passage_chars < 16:
        raise UserError(f"--passage-chars: {passage_chars} is too short; use at least 16 characters")
    if train_per_genre < 0 or test_per_genre < 0:
        raise UserError("--train-per-genre, --test-per-genre: must be >= 0 (0: every passage)")
    out = Path(out)
    targets = [out / "pretrain.txt", out / "genre.csv", out / "tasks.json", out / "heldout"]
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder")
    if not overwrite and (there := [p.name for p in targets if p.exists()]):
        raise UserError(f"--out {out}: {', '.join(there)} already there; pass --overwrite or choose another folder")
    works = read_works(source)
    check_held_out(works, held_out)
    rows = genre_rows(works, held_out, passage_chars=passage_chars, train_per_genre=train_per_genre,
                      test_per_genre=test_per_genre, seed=seed)
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=["text", "label", "work", "split"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    counts = {split: {g: sum(r["split"] == split and r["label"] == g for r in rows) for g in GENRES}
              for split in ("train", "test")}
    manifest = {
        "source": source, "held_out": list(held_out), "passage_chars": passage_chars,
        "train_per_genre": train_per_genre, "test_per_genre": test_per_genre, "seed": seed,
        "pretrain_chars": sum(len(t) for n, t in works if n not in held_out),
        "heldout_chars": {n: len(t) for n, t in works if n in held_out},
        "genre_rows": counts, "genres": {n: genre(n) for n, _ in works},
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "heldout").mkdir(exist_ok=True)
    write_text(out / "pretrain.txt", "".join(t for n, t in works if n not in held_out), newline="")
    for name, text in works:
        if name in held_out:
            write_text(out / "heldout" / f"{name}.txt", text, newline="")
    write_text(out / "genre.csv", buffer.getvalue(), newline="")
    write_text(out / "tasks.json", json.dumps(manifest, indent=1) + "\n", newline="")
    return manifest
