"""The character tokenizer: one id per distinct character, id 0 reserved for characters never seen in training.

Saved as `tokenizer.json` beside the model, so a run always decodes with the vocabulary it was trained with.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import UserError

UNK = "\ufffd"  # what an unknown character decodes to


class CharTokenizer:
    kind = "char"

    def __init__(self, chars: list[str]):
        self.chars = [UNK] + [c for c in chars if c != UNK]
        self.index = {c: i for i, c in enumerate(self.chars)}
        codepoints = np.array([ord(c) for c in self.chars], dtype=np.int64)
        # Lookup table from code point to id, for encoding large texts with numpy. Its last entry lies past every
        # known code point and stays 0 (unknown): encode_array clamps larger code points onto it.
        self._lut = np.zeros(int(codepoints.max()) + 2, dtype=np.int64)
        self._lut[codepoints] = np.arange(len(self.chars))
        self._lut[ord(UNK)] = 0

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    @classmethod
    def from_charset(cls, charset: set[str]) -> "CharTokenizer":
        return cls(sorted(charset))

    def encode(self, text: str) -> list[int]:
        return self.encode_array(text).tolist()

    def encode_array(self, text: str) -> np.ndarray:
        cps = np.frombuffer(text.encode("utf-32-le", errors="surrogatepass"), dtype="<u4")
        # one gather, no int64 copy or mask: code points beyond the table map to its last entry, id 0
        return self._lut[np.minimum(cps, len(self._lut) - 1)]

    def count_unknown(self, text: str) -> int:
        return int(sum(1 for c in set(text) if c not in self.index))

    def decode(self, ids) -> str:
        n = len(self.chars)
        return "".join(self.chars[i] if 0 <= i < n else UNK for i in ids)

    def num_chars(self, ids: np.ndarray) -> int:
        """Characters of text that these ids stand for (for bits per character)."""
        return int(len(ids))

    def to_dict(self) -> dict:
        return {"tetragen_tokenizer": "char", "vocab": self.chars}

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), ensure_ascii=False), encoding="utf-8")


def load_tokenizer(path: Path):
    if not Path(path).is_file():
        raise UserError(f"{path}: missing; the run folder is incomplete (copy tokenizer.json from the run's "
                        f"checkpoints/ folder)")
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        kind = doc.get("tetragen_tokenizer")
        if kind == "char":
            return CharTokenizer(doc["vocab"][1:])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise UserError(f"{path}: not a readable tokenizer file ({type(e).__name__})") from None
    raise UserError(f"{path}: unknown tokenizer type {kind!r}")
