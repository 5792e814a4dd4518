"""What a run on music reads, and how a language model of it is scored: per frame, each piece from its own start.

Sources (`claims`): the named sets `jsb-chorales` (the standard split of Boulanger-Lewandowski et al. 2012 as JSON)
and those read from music21's corpus (corpus.py), any .json file of the JSB shape (`{"train": [piece, ...],
"valid": [...], "test": [...]}`, a piece a list of frames, a frame the MIDI pitches sounding), and a folder of .mid /
.musicxml files (class sub-folders name the styles; a captions.jsonl or captions.csv gives pieces their prompts).

`MusicData` is the language-model dataset of a token form (tetragen/registry.py `TokenForm`): the trainer draws
random windows of the training pieces' tokens, as it does of a text corpus, and `score` gives a causal model's
negative log-likelihood of a split per frame, per token and per note (its prompt's words included, see
`scored_positions`): every piece is scored from its own start
(never a window that crosses from one piece into the next), and a piece longer than the model's context by a
sliding window whose stride is half the context, each token scored once, with at least half a window before it.
"""
from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from ...data.captions import caption_file, read_captions
from ...data.sources import NamedDataset, cache_dir, find_file
from ...errors import UserError
from ...files import write_text
from .midi import SUFFIXES, read_piece
from .pieces import Collection, Piece, captioned, collection_from_json, collection_to_json, prompt_of
from .tokens import HIGH, LOW, PITCH_CLASSES, MusicTokenizer, words_of

JSB_NAME = "jsb-chorales"
JSB_FILE = "jsb-chorales-quarter.json"
JSB_SHA256 = "2db9329f1881a1d3f49703ec556bf1d6f84b4f6c1d702c156536e93cf31e1c91"
JSB_STYLE = "bach chorale"
SPLITS = ("train", "valid", "test")
# data.tokenizer of a music run -> its tokenization ("char", the text default, is the frames)
TOKENIZATIONS = {"char": "frames", "frames": "frames", "events": "events"}
# a checkout's developer data, beside the repository; users' copies go in TETRAGEN_DATA or the cache
_BESIDE_CHECKOUT = Path(__file__).resolve().parents[3].parent / "shared" / "data"


# ----------------------------------------------------------------------------------------------------------------
# JSON files of the JSB shape

def _jsb_locate() -> list[Path]:
    path, refused = find_file(JSB_NAME, JSB_FILE, JSB_SHA256, extra_dirs=[_BESIDE_CHECKOUT])
    if path is None:
        why = "; ".join(refused) if refused else "no copy found"
        raise UserError(f"dataset {JSB_NAME!r}: {JSB_FILE} is not here ({why}); it is not downloadable from a "
                        f"package registry: put the file in a folder named by TETRAGEN_DATA (or "
                        f"{cache_dir() / JSB_NAME}), or pass any JSON file of its shape with --data PATH")
    return [path]


def _jsb_fetch() -> tuple[list[Path], str]:
    return _jsb_locate(), "already present"


JSB = NamedDataset(JSB_NAME, "JSB Chorales at quarter-note frames, the standard 229/76/77 split of "
                             "Boulanger-Lewandowski et al. (2012), scored per frame", "a JSON copy of the benchmark's "
                             "split (TETRAGEN_DATA, the cache, or ../shared/data beside a checkout)",
                   _jsb_locate, _jsb_fetch)


def looks_like_split_json(path: Path) -> bool:
    """Whether a file is a JSON object whose first key is a split (or the style): only its start is read."""
    if path.suffix.lower() != ".json" or not path.is_file():
        return False
    try:
        with open(path, encoding="utf-8") as f:
            head = f.read(4096)
    except (OSError, UnicodeDecodeError):
        return False
    return re.match(r'\s*\{\s*"(train|valid|test|style)"\s*:', head) is not None


def _check_frames(piece, where: str) -> tuple[list[list[int]], int]:
    if not isinstance(piece, list) or not piece:
        raise UserError(f"{where}: a piece must be a non-empty list of frames (lists of MIDI pitches)")
    frames, dropped = [], 0
    for k, frame in enumerate(piece):
        if not isinstance(frame, list) or not all(isinstance(p, int) and not isinstance(p, bool) for p in frame):
            raise UserError(f"{where}[{k}]: a frame must be a list of MIDI pitches (integers), got {str(frame)[:40]}")
        kept = sorted({p for p in frame if LOW <= p <= HIGH})
        dropped += len(set(frame)) - len(kept)
        frames.append(kept)
    return frames, dropped


def read_split_json(path: Path, style: str, val_fraction: float = 0.1) -> Collection:
    """A JSON file of the JSB shape -> its pieces by split. A file without 'valid' lends the end of 'train'."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not a readable JSON file ({type(e).__name__})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("train"), list) or not isinstance(doc.get("test"), list):
        raise UserError(f"{path}: expected a JSON object with 'train' and 'test' lists of pieces (and 'valid'), "
                        f"each piece a list of frames, each frame a list of MIDI pitches")
    if isinstance(doc.get("style"), str) and doc["style"].strip():
        style = " ".join(words_of(doc["style"]))
    splits, dropped = {}, 0
    for split in SPLITS:
        if split not in doc:
            continue
        if not isinstance(doc[split], list):
            raise UserError(f"{path}: '{split}' must be a list of pieces")
        pieces = []
        for i, raw in enumerate(doc[split]):
            frames, d = _check_frames(raw, f"{path}: {split}[{i}]")
            dropped += d
            pieces.append(Piece(frames, prompt_of(style, frames), f"{split}[{i}]"))
        splits[split] = pieces
    if "valid" not in splits:
        n = max(1, int(len(splits["train"]) * val_fraction))
        splits["train"], splits["valid"] = splits["train"][:-n], splits["train"][-n:]
    for split in SPLITS:
        if not splits[split]:
            raise UserError(f"{path}: the {split} split has no pieces")
    if dropped:
        print(f"tetragen: {path}: {dropped} pitches outside the piano's range {LOW}..{HIGH} dropped", file=sys.stderr)
    return Collection(str(path), splits, [style] if style else [])


# ----------------------------------------------------------------------------------------------------------------
# a folder of .mid / .musicxml files

def music_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))


def style_of(root: Path, path: Path) -> str:
    """A file's style: the name of its class sub-folder ("irish_reels" -> "irish reels"); "" at the top."""
    rel = path.relative_to(root)
    return " ".join(words_of(rel.parts[0].replace("_", " ").replace("-", " "))) if len(rel.parts) > 1 else ""


def read_folder(root: Path, val_fraction: float) -> Collection:
    """Every score in the folder, the last `val_fraction` of each style held out (as both the validation and the
    test split); read once and cached by the files' names, sizes and times. A captions.jsonl or captions.csv beside
    them (a file and a text per line) gives a piece its prompt: the caption, with the key where it names none."""
    files = music_files(root)
    if not files:
        raise UserError(f"--data {root}: no .mid or .musicxml files in the folder")
    captions_at = caption_file(root)
    h = hashlib.sha256(f"v5|{val_fraction}".encode())
    for f in files + ([captions_at] if captions_at else []):
        st = f.stat()
        h.update(f"{f.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    cached = cache_dir() / "music-folders" / f"{h.hexdigest()[:24]}.json"
    if cached.is_file():
        try:
            return collection_from_json(json.loads(cached.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError):
            pass
    captions = read_captions(captions_at, {f.relative_to(root).as_posix() for f in files}) if captions_at else {}
    by_style: dict[str, list[Piece]] = {}
    for f in files:
        frames, notes, metre, notices = read_piece(f)
        for line in notices:
            print(f"tetragen: {line}", file=sys.stderr)
        style, rel = style_of(root, f), f.relative_to(root).as_posix()
        prompt = captioned(captions[rel][0], frames, metre) if rel in captions else prompt_of(style, frames, metre)
        by_style.setdefault(style, []).append(Piece(frames, prompt, rel, [list(n) for n in notes],
                                                    style if rel in captions else ""))
    train, held = [], []
    for style, pieces in sorted(by_style.items()):
        n = int(len(pieces) * val_fraction)
        train += pieces[:len(pieces) - n]
        held += pieces[len(pieces) - n:]
    if not held:  # too few files for a share per style: the last file overall
        held, train = train[-1:], train[:-1]
    if not train:
        raise UserError(f"--data {root}: one score is too few; a run needs at least one to train on and one to test")
    out = Collection(str(root), {"train": train, "valid": held, "test": held}, sorted(s for s in by_style if s))
    cached.parent.mkdir(parents=True, exist_ok=True)
    write_text(cached, json.dumps(collection_to_json(out)))
    return out


# ----------------------------------------------------------------------------------------------------------------
# the token form: which sources are music, and reading one

def _named():
    from .corpus import named
    return {JSB_NAME: (JSB, lambda cfg: read_split_json(_jsb_locate()[0], JSB_STYLE)),
            **{name: (d, lambda cfg, read=read: read()) for name, (d, read) in named().items()}}


def named_datasets() -> list[NamedDataset]:
    return [d for d, _ in _named().values()]


def claims(source: str) -> bool:
    """Whether a --data source is music: a named music set, a JSON file of the JSB shape, a folder of scores."""
    if source in _named():
        return True
    p = Path(source).expanduser()
    if p.is_dir():
        return any(q.is_file() and q.suffix.lower() in SUFFIXES for q in p.rglob("*"))
    return looks_like_split_json(p)


def read_collection(cfg) -> Collection:
    source = cfg.data.source
    named = _named()
    if source in named:
        return named[source][1](cfg)
    p = Path(source).expanduser()
    if p.is_dir():
        return read_folder(p, cfg.data.val_fraction)
    return read_split_json(p, "", cfg.data.val_fraction)


def read_run_music(cfg, tokenizer=None, task: str = "lm") -> "MusicData":
    """The token form's read: the pieces a run config asks for, tokenized by the run's tokenizer (a trained run's)
    or by a new one whose words are the training pieces' prompts."""
    if task != "lm":
        raise UserError(f"--task {task}: a run on music learns its pieces (the main task); there are no labels to "
                        f"learn a {task} task from")
    if tokenizer is not None and not isinstance(tokenizer, MusicTokenizer):
        raise UserError(f"--data {cfg.data.source}: music, but the run's tokenizer is a {tokenizer.kind} text "
                        f"tokenizer; a run trained on text cannot read music, train a new run")
    tokenization = tokenizer.tokenization if tokenizer is not None else TOKENIZATIONS.get(cfg.data.tokenizer)
    if tokenization is None:
        raise UserError(f"data.tokenizer={cfg.data.tokenizer}: music is tokenized as frames (the default) or events; "
                        f"set data.tokenizer=frames or data.tokenizer=events")
    collection = read_collection(cfg)
    if tokenizer is None:
        tokenizer = MusicTokenizer({w for p in collection.splits["train"] for w in words_of(p.prompt)},
                                   tokenization=tokenization)
    return MusicData(collection, tokenizer, cfg.model.block_size, cfg.data.transpose)


# ----------------------------------------------------------------------------------------------------------------
# the language-model dataset

class MusicData:
    """Pieces as token sequences: random training windows, validation windows, and per-piece scoring."""
    unit = "tok"
    kind = "music"

    def __init__(self, collection: Collection, tokenizer: MusicTokenizer, block_size: int, transpose: int = 0):
        self.collection, self.name, self.tokenizer, self.block_size = collection, collection.name, tokenizer, \
            block_size
        self.transpose = int(transpose)
        self.shifted = transposition_tables(tokenizer, self.transpose)
        self.styles = collection.styles
        encode = (lambda p: tokenizer.encode_piece(p.frames, p.prompt)) if tokenizer.tokenization == "frames" \
            else (lambda p: tokenizer.encode_events(p.events(), p.prompt))
        self.pieces = {s: [encode(p) for p in ps] for s, ps in collection.splits.items()}
        self.train = np.concatenate([np.asarray(ids, dtype=np.int64) for ids in self.pieces["train"]])
        self.val = np.concatenate([np.asarray(ids, dtype=np.int64) for ids in self.pieces["valid"]])
        for part, arr in (("training", self.train), ("validation", self.val)):
            if len(arr) < block_size + 1:
                raise UserError(f"--data {self.name}: the {part} split has {len(arr)} tokens but model.block_size "
                                f"is {block_size}; use more pieces or a smaller model.block_size")

    def eval_view(self):
        """What its evaluator (the style classifier) reads: piano-roll windows labelled by style (styles.py)."""
        from .styles import StyleRolls
        return StyleRolls(self.collection)

    def split(self, name: str) -> list[Piece]:
        return self.collection.splits[name]

    def train_batch(self, *, seed: int, step: int, micro: int, batch_size: int, rank: int = 0,
                    world_size: int = 1) -> dict[str, torch.Tensor]:
        """Windows of the training pieces one after another, drawn from (seed, step, micro) alone (as text's)."""
        rng = np.random.default_rng((seed, step, micro))
        starts = rng.integers(0, len(self.train) - self.block_size, size=batch_size * world_size)
        starts = starts[rank * batch_size:(rank + 1) * batch_size]
        rows = np.stack([self.train[s:s + self.block_size + 1] for s in starts])
        if self.transpose:  # each window by its own shift, drawn from the same numbers (after the starts)
            rows = transpose_rows(rows, self.tokenizer, self.shifted, self.transpose,
                                  rng.random(batch_size * world_size)[rank * batch_size:(rank + 1) * batch_size])
        rows = torch.from_numpy(rows)
        return {"x": rows[:, :-1], "y": rows[:, 1:], "draw": torch.tensor([seed, step, micro, rank])}

    def count(self, batch: dict) -> int:
        return batch["x"].numel()

    def save_assets(self, folder: Path) -> None:
        """The tokenizer (tokenizer.json) and the styles a prompt can name (music.json)."""
        self.tokenizer.save(Path(folder) / "tokenizer.json")
        write_text(Path(folder) / "music.json", json.dumps({"styles": self.styles, "tokenization": "frames"}))

    def val_batches(self, batch_size: int, max_tokens: int = 0) -> Iterator[dict[str, torch.Tensor]]:
        """Non-overlapping windows of the validation pieces one after another (a masked LM's evaluation)."""
        val = self.val if not max_tokens else self.val[: max_tokens + 1]
        T, n = self.block_size, len(val) - 1
        starts = list(range(0, n - T + 1, T)) or [0]
        for i in range(0, len(starts), batch_size):
            rows = torch.from_numpy(np.stack([val[s:s + T + 1] for s in starts[i:i + batch_size]]))
            yield {"x": rows[:, :-1], "y": rows[:, 1:]}

    def score(self, model, device, *, split: str = "valid", max_tokens: int = 0) -> dict:
        """A causal model's NLL of a split's pieces (the first pieces holding `max_tokens`, 0: all): `{prefix}loss`
        and `{prefix}nll_token` nats per music token, `{prefix}nll_frame` per frame, `{prefix}nll_note` per note,
        with prefix val_ or test_."""
        pieces = self.pieces[split]
        if max_tokens:
            kept, total = [], 0
            for ids in pieces:
                if kept and total + len(ids) > max_tokens:
                    break
                kept.append(ids)
                total += len(ids)
            pieces = kept
        s = score_pieces(model, pieces, self.tokenizer, self.block_size, device)
        prefix = "val_" if split == "valid" else f"{split}_"
        out = {f"{prefix}loss": s["nats"] / s["tokens"], f"{prefix}nll_token": s["nats"] / s["tokens"],
               f"{prefix}nll_note": s["nats"] / max(s["notes"], 1), f"{prefix}tokens": float(s["tokens"]),
               f"{prefix}notes": float(s["notes"]), f"{prefix}pieces": float(len(pieces))}
        if self.tokenizer.tokenization == "frames":  # the piano roll's figure: events have no frames to divide by
            out = {f"{prefix}nll_frame": s["nats"] / s["frames"], **out, f"{prefix}frames": float(s["frames"])}
        return out


def transposition_tables(tok: MusicTokenizer, most: int) -> np.ndarray:
    """(2 * most + 1, vocab) id maps, row most + s shifting every pitch by s semitones and every key name with it
    (pitches shifted off the piano are never asked for: `transpose_rows` keeps each window's shift inside it)."""
    V = tok.vocab_size
    tables = np.tile(np.arange(V, dtype=np.int64), (2 * most + 1, 1))
    for k, s in enumerate(range(-most, most + 1)):
        for p in range(LOW, HIGH + 1):
            if LOW <= p + s <= HIGH:
                tables[k, tok.pitch0 + p - LOW] = tok.pitch0 + p + s - LOW
        for i, name in enumerate(PITCH_CLASSES):
            if name in tok.index:
                tables[k, tok.index[name]] = tok.index.get(PITCH_CLASSES[(i + s) % 12], tok.index[name])
    return tables


def transpose_rows(rows: np.ndarray, tok: MusicTokenizer, tables: np.ndarray, most: int,
                   u: np.ndarray) -> np.ndarray:
    """Each window (row) shifted by a whole number of semitones drawn uniformly (from u in [0, 1)) among those up to
    `most` that keep all its pitches on the piano."""
    out = rows.copy()
    for j, row in enumerate(rows):
        pitches = row[(row >= tok.pitch0) & (row < tok.pitch0 + HIGH - LOW + 1)] - tok.pitch0 + LOW
        low = max(-most, LOW - int(pitches.min())) if len(pitches) else -most
        high = min(most, HIGH - int(pitches.max())) if len(pitches) else most
        shift = low + int(u[j] * (high - low + 1))
        out[j] = tables[shift + most][row]
    return out


def scored_positions(ids: list[int], tok: MusicTokenizer) -> np.ndarray:
    """Which tokens of a piece are scored: everything after `<bos>` but `<end>`. The prompt's words are scored with
    the frames because its key is estimated from the piece's own notes: read for free, it would tell the model
    something of the piece. So the figure is -log p(prompt, frames), an upper bound of the piano roll's own NLL."""
    mask = np.zeros(len(ids), dtype=bool)
    start = 1 if ids and ids[0] == tok.bos else 0
    stop = len(ids) - 1 if ids and ids[-1] == tok.end else len(ids)
    mask[start:stop] = True
    return mask


def windows(n_targets: int, block: int) -> list[tuple[int, int, int]]:
    """(start, end, first scored target) of each window over targets 0..n-1 (target t is token t+1 read after
    tokens 0..t): one window when they fit, else windows of `block` every block // 2 targets, each scoring the
    targets the one before it did not reach."""
    if n_targets <= block:
        return [(0, n_targets, 0)]
    stride, out, start, done = max(1, block // 2), [], 0, 0
    while True:
        end = min(start + block, n_targets)
        out.append((start, end, done))
        if end == n_targets:
            return out
        done, start = end, start + stride
        if start + block > n_targets:  # the last window ends at the end, as long as the others
            start = n_targets - block


@torch.no_grad()
def score_pieces(model, pieces: list[list[int]], tok: MusicTokenizer, block: int, device,
                 batch_size: int = 16) -> dict:
    """Summed NLL (nats) of the pieces' frame tokens under a causal model `model(x) -> (logits, _)`, with counts."""
    rows = []
    for ids in pieces:
        mask = scored_positions(ids, tok)
        for start, end, first in windows(len(ids) - 1, block):
            keep = mask[start + 1:end + 1].copy()
            keep[:first - start] = False
            if keep.any():
                rows.append((ids[start:end + 1], keep))
    nats, tokens, frames, notes = 0.0, 0, 0, 0
    rows.sort(key=lambda r: len(r[0]))  # similar lengths together: less padding
    for i in range(0, len(rows), batch_size):
        chunk = rows[i:i + batch_size]
        T = max(len(r[0]) for r in chunk) - 1
        x = torch.zeros(len(chunk), T, dtype=torch.long)
        y = torch.zeros(len(chunk), T, dtype=torch.long)
        m = torch.zeros(len(chunk), T, dtype=torch.bool)
        for j, (ids, keep) in enumerate(chunk):
            L = len(ids) - 1
            x[j, :L] = torch.tensor(ids[:-1])
            y[j, :L] = torch.tensor(ids[1:])
            m[j, :L] = torch.from_numpy(keep)
        logits, _ = model(x.to(device))
        nll = F.cross_entropy(logits.float().transpose(1, 2), y.to(device), reduction="none").cpu()
        nats += float(nll[m].sum())
        target = y[m]
        tokens += int(m.sum())
        frames += int((target == tok.frame).sum())
        notes += int(((target >= tok.pitch0) & (target < tok.pitch0 + HIGH - LOW + 1)).sum())
    if not tokens:
        raise UserError("nothing to score: the pieces are empty")
    return {"nats": nats, "tokens": tokens, "frames": frames, "notes": notes}


