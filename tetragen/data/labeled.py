"""Labelled texts for sequence classification: `text,label` rows from the user's .csv (with a header) or .jsonl file.

Rows are split per label (seeded), so every label of the validation split is also in the training split; a `split`
column (train, or val/test for the evaluated split) fixes the split instead, e.g. to test on texts from sources the
training rows never come from. Each text
becomes [CLS] + its tokens, cut to the model's context (with a warning saying how many were cut). Batches are padded
to their longest text and carry a padding mask; training batches are random rows drawn from (seed, step, micro-batch),
so a resumed run sees the same batches as an uninterrupted one.
"""
from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from ..errors import UserError
from .tokenizer import CLS, PAD

TEXT, LABEL, SPLIT = "text", "label", "split"
TRAIN_SPLIT, EVAL_SPLITS = "train", ("val", "test")  # values of the split column
LABELS_FILE = "labels.json"
FORMATS = (".csv", ".jsonl")


def read_rows(source: str) -> list[tuple[str, str, str]]:
    """(text, label, split) of each row of a .csv or .jsonl file (split "" where the file has no split column);
    missing columns, empty labels, unknown splits or an empty file are user errors."""
    path = Path(source).expanduser()
    if not source or not path.is_file():
        raise UserError(f"--data {source}: no such file; give a .csv or .jsonl file of text,label rows")
    if path.suffix.lower() not in FORMATS:
        raise UserError(f"--data {source}: a {path.suffix or 'suffix-less'} file; classification reads .csv "
                        f"(header text,label) or .jsonl ({{\"text\": ..., \"label\": ...}} per line)")
    try:
        raw = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start}); "
                        f"save it as UTF-8") from None
    if not raw.strip():
        raise UserError(f"{path}: the file is empty; give text,label rows")
    rows = _csv_rows(path, raw) if path.suffix.lower() == ".csv" else _jsonl_rows(path, raw)
    if not rows:
        raise UserError(f"{path}: no rows after the header; give text,label rows")
    return rows


def _check_split(path: Path, line: int, value, has_split: bool) -> str:
    """A row's split: "" when the file has none, else one of train, val, test (for every row)."""
    if not has_split:
        return ""
    split = str(value).strip().lower() if isinstance(value, str) else value
    if split not in (TRAIN_SPLIT, *EVAL_SPLITS):
        raise UserError(f"{path}: line {line}: split {value!r} is not one of {TRAIN_SPLIT}, "
                        f"{', '.join(EVAL_SPLITS)}; mark every row, or drop the split column to split at random")
    return split


def _csv_rows(path: Path, raw: str) -> list[tuple[str, str, str]]:
    reader = csv.DictReader(io.StringIO(raw, newline=""))
    columns = [c.strip() for c in reader.fieldnames or []]
    for need in (TEXT, LABEL):
        if need not in columns:
            raise UserError(f"{path}: no {need!r} column (the header has: {', '.join(columns) or 'nothing'}); "
                            f"the first line must name the columns, e.g. text,label")
    reader.fieldnames = columns
    rows = []
    for line, row in enumerate(reader, 2):
        label = (row.get(LABEL) or "").strip()
        if not label:
            raise UserError(f"{path}: line {line}: empty label; every row needs a label")
        rows.append((row.get(TEXT) or "", label, _check_split(path, line, row.get(SPLIT) or "", SPLIT in columns)))
    return rows


def _jsonl_rows(path: Path, raw: str) -> list[tuple[str, str, str]]:
    rows, has_split = [], None
    for line, text in enumerate(raw.splitlines(), 1):
        if not text.strip():
            continue
        try:
            doc = json.loads(text)
        except ValueError as e:
            raise UserError(f"{path}: line {line}: not valid JSON ({e})") from None
        if not isinstance(doc, dict):
            raise UserError(f"{path}: line {line}: expected an object like {{\"text\": ..., \"label\": ...}}")
        for need in (TEXT, LABEL):
            if need not in doc:
                raise UserError(f"{path}: line {line}: no {need!r} field; every line needs text and label")
        label = doc[LABEL]
        if isinstance(label, bool) or not isinstance(label, (str, int)) or not str(label).strip():
            raise UserError(f"{path}: line {line}: label {label!r} is not a class name (a non-empty string or "
                            f"an integer)")
        if not isinstance(doc[TEXT], str):
            raise UserError(f"{path}: line {line}: text must be a string, got {type(doc[TEXT]).__name__}")
        if has_split is None:  # the first row decides whether the file fixes the split
            has_split = SPLIT in doc
        elif has_split != (SPLIT in doc):
            raise UserError(f"{path}: line {line}: {'no' if has_split else 'a'} {SPLIT!r} field where the first "
                            f"row {'has' if has_split else 'has none'}; give every row a split or none")
        rows.append((doc[TEXT], str(label).strip(), _check_split(path, line, doc.get(SPLIT), has_split)))
    return rows


def split_rows(rows, val_fraction: float, seed: int, source: str):
    """(train rows, validation rows) of (text, label): as the rows' split column says, or else each label's rows
    shuffled, about val_fraction of them held out, at least one kept for training."""
    if rows and rows[0][2]:  # the file fixes the split
        train = [(text, label) for text, label, split in rows if split == TRAIN_SPLIT]
        val = [(text, label) for text, label, split in rows if split != TRAIN_SPLIT]
        if not val:
            raise UserError(f"--data {source}: no row has split {' or '.join(EVAL_SPLITS)}; mark the rows to "
                            f"evaluate on")
        return train, val
    rows = [(text, label) for text, label, _ in rows]
    by_label: dict[str, list[int]] = {}
    for i, (_, label) in enumerate(rows):
        by_label.setdefault(label, []).append(i)
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in sorted(by_label):
        idx = by_label[label]
        order = [idx[j] for j in rng.permutation(len(idx))]
        n_val = 0 if len(idx) < 2 else min(len(idx) - 1, max(1, round(len(idx) * val_fraction)))
        val += order[:n_val]
        train += order[n_val:]
    if not val:
        raise UserError(f"--data {source}: {len(rows)} rows leave no validation split; give at least two rows of "
                        f"some label")
    return [rows[i] for i in sorted(train)], [rows[i] for i in sorted(val)]


class LabeledText:
    """Train/validation examples of ([CLS] + token ids, class id), batched with padding."""
    unit = "ex"  # what throughput is counted in

    def __init__(self, name: str, train_rows, val_rows, tokenizer, block_size: int, labels: list[str],
                 special_ids: dict):
        self.name, self.tokenizer, self.labels, self.block_size = name, tokenizer, list(labels), block_size
        self.cls_id, self.pad_id = special_ids[CLS], special_ids[PAD]
        index = {label: i for i, label in enumerate(self.labels)}
        cut = 0

        def encode(rows):
            nonlocal cut
            out = []
            for text, label in rows:
                ids = [self.cls_id] + tokenizer.encode(text)
                if len(ids) > block_size:
                    cut += 1
                    ids = ids[:block_size]
                out.append((ids, index[label]))
            return out
        self.train, self.val = encode(train_rows), encode(val_rows)
        if cut:
            print(f"tetragen: warning: {cut} of {len(self.train) + len(self.val)} texts in {name} are longer than "
                  f"the model's context of {block_size} tokens ([CLS] included) and were truncated to it",
                  file=sys.stderr)

    def collate(self, examples) -> dict[str, torch.Tensor]:
        T = max(len(ids) for ids, _ in examples)
        x = torch.full((len(examples), T), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(examples), T), dtype=torch.bool)
        for i, (ids, _) in enumerate(examples):
            x[i, :len(ids)] = torch.tensor(ids)
            mask[i, :len(ids)] = True
        return {"x": x, "mask": mask, "label": torch.tensor([label for _, label in examples])}

    def train_batch(self, *, seed: int, step: int, micro: int, batch_size: int, rank: int = 0,
                    world_size: int = 1) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng((seed, step, micro))
        picks = rng.integers(0, len(self.train), size=batch_size * world_size)[rank * batch_size:
                                                                              (rank + 1) * batch_size]
        return self.collate([self.train[i] for i in picks])

    def count(self, batch: dict) -> int:
        return len(batch["label"])

    def val_batches(self, batch_size: int, max_tokens: int = 0) -> Iterator[dict[str, torch.Tensor]]:
        """Every validation example once, in file order (`max_tokens` does not apply)."""
        for i in range(0, len(self.val), batch_size):
            yield self.collate(self.val[i:i + batch_size])

    def save_assets(self, folder: Path) -> None:
        """The tokenizer and the label names in the classifier's output order (labels.json)."""
        self.tokenizer.save(Path(folder) / "tokenizer.json")
        (Path(folder) / LABELS_FILE).write_text(json.dumps({"labels": self.labels}, ensure_ascii=False, indent=1),
                                                encoding="utf-8")


def load_labeled_data(cfg, tokenizer) -> LabeledText:
    """The run's labelled data. A new classifier takes its labels from the training split (setting model.labels and
    model.num_labels); a trained one refuses labels it was not trained on."""
    rows = read_rows(cfg.data.source)
    train, val = split_rows(rows, cfg.data.val_fraction, cfg.train.seed, cfg.data.source)
    m = cfg.model
    if not m.labels:
        if not train:
            raise UserError(f"--data {cfg.data.source}: no row has split {TRAIN_SPLIT}; a new classifier needs "
                            f"training rows")
        m.labels = sorted({label for _, label in train})
        m.num_labels = len(m.labels)
        if m.num_labels < 2:
            raise UserError(f"--data {cfg.data.source}: every row has the label {m.labels[0]!r}; a classifier "
                            f"needs at least two labels")
    unseen = sorted({label for _, label, _ in rows} - set(m.labels))
    if unseen:
        raise UserError(f"--data {cfg.data.source}: label(s) {', '.join(map(repr, unseen[:5]))} were not seen in "
                        f"training (the model knows {', '.join(map(repr, m.labels[:10]))}); remove those rows or "
                        f"fine-tune a classifier on them")
    return LabeledText(str(cfg.data.source), train, val, tokenizer, m.block_size, m.labels, m.special_ids)
