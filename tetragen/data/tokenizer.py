"""Tokenizers: characters (one id per distinct character) and byte-level BPE (Hugging Face `tokenizers`).

Both are saved as `tokenizer.json` beside the model, so a run always decodes with the vocabulary it was trained with:
the character tokenizer in tetragen's own small format (`{"tetragen_tokenizer": "char", ...}`), BPE in the Hugging
Face format, which `tokenizers.Tokenizer.from_file` (and so `transformers`) reads. `load_tokenizer` tells them apart.

Both report `num_chars(ids)`, the number of characters the ids decode to, so that bits per character compare across
tokenizers. Special tokens ([PAD], [MASK], [CLS]) decode to nothing and count no characters.

Byte-level BPE: Neural Machine Translation of Rare Words with Subword Units (Sennrich et al. 2016),
https://arxiv.org/abs/1508.07909, on bytes as in GPT-2.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import numpy as np

from ..errors import UserError

UNK = "\ufffd"  # what an unknown character decodes to
PAD, MASK, CLS = "[PAD]", "[MASK]", "[CLS]"
SPECIAL_TOKENS = (PAD, MASK, CLS)  # what a masked-LM / classifier input needs besides text


class CharTokenizer:
    """One id per character, id 0 for characters never seen in training; special tokens (if any) come last."""
    kind = "char"
    spaces_lead_tokens = False  # a space is a token of its own

    def __init__(self, chars: list[str], specials: Iterable[str] = ()):
        self.chars = [UNK] + [c for c in chars if c != UNK]
        self.specials = list(specials)
        self.index = {c: i for i, c in enumerate(self.chars)}
        codepoints = np.array([ord(c) for c in self.chars], dtype=np.int64)
        # Lookup table from code point to id, for encoding large texts with numpy. Its last entry lies past every
        # known code point and stays 0 (unknown): encode_array clamps larger code points onto it.
        self._lut = np.zeros(int(codepoints.max()) + 2, dtype=np.int64)
        self._lut[codepoints] = np.arange(len(self.chars))
        self._lut[ord(UNK)] = 0

    @property
    def vocab_size(self) -> int:
        return len(self.chars) + len(self.specials)

    def special_id(self, token: str) -> int | None:
        return len(self.chars) + self.specials.index(token) if token in self.specials else None

    def with_specials(self, tokens: Iterable[str]) -> "CharTokenizer":
        """This tokenizer with `tokens` appended as special ids (itself when it has them all already)."""
        missing = [t for t in tokens if t not in self.specials]
        return self if not missing else CharTokenizer(self.chars[1:], self.specials + missing)

    def token_str(self, i: int) -> str:
        """How one id reads on its own (special tokens by name)."""
        return self.specials[i - len(self.chars)] if len(self.chars) <= i < self.vocab_size else self.decode([i])

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
        n, v = len(self.chars), self.vocab_size
        return "".join(self.chars[i] if 0 <= i < n else ("" if n <= i < v else UNK) for i in ids)

    def chars_per_token(self, ids) -> np.ndarray:
        """Characters each id decodes to: one, none for a special id."""
        ids = np.asarray(ids)
        return np.where((ids >= len(self.chars)) & (ids < self.vocab_size), 0, 1)

    def num_chars(self, ids) -> int:
        """Characters of text that these ids decode to (for bits per character): all but the special ids."""
        ids = np.asarray(ids)
        return int(ids.size) if not self.specials else int(self.chars_per_token(ids).sum())

    def to_dict(self) -> dict:
        doc = {"tetragen_tokenizer": "char", "vocab": self.chars}
        if self.specials:
            doc["special"] = self.specials
        return doc

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), ensure_ascii=False), encoding="utf-8")


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's printable stand-in for each byte, which byte-level BPE vocabularies are written in."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("\u00a1"), ord("\u00ac") + 1), *range(ord("\u00ae"), 256)]
    cs, n = list(bs), 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


class HFTokenizer:
    """A Hugging Face `tokenizers` tokenizer (tetragen trains byte-level BPE ones; any tokenizer.json loads)."""
    kind = "bpe"

    def __init__(self, tokenizer):
        self.hf = tokenizer
        self.specials = [t.content for t in tokenizer.get_added_tokens_decoder().values() if t.special]
        # byte-level BPE ids carry the space before a word (" king" is one id), so a space is rarely an id alone
        self.spaces_lead_tokens = self._byte_level()
        self._chars = self._chars_per_id()

    @classmethod
    def from_str(cls, text: str) -> "HFTokenizer":
        from tokenizers import Tokenizer
        return cls(Tokenizer.from_str(text))

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int, specials: Iterable[str] = SPECIAL_TOKENS) -> "HFTokenizer":
        """Train a byte-level BPE of `vocab_size` ids (the 256 bytes, the special tokens and the merges learned)."""
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
        specials = list(specials)
        if vocab_size < 256 + len(specials) + 1:
            raise UserError(f"data.vocab_size: {vocab_size} is too small for byte-level BPE; it needs at least "
                            f"{256 + len(specials) + 1} (256 bytes, {len(specials)} special tokens and one merge)")
        tok = Tokenizer(models.BPE())
        # no prefix space: decode(encode(text)) gives the text back exactly
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator(texts, trainer)
        return cls(tok)

    def _byte_level(self) -> bool:
        doc = json.loads(self.hf.to_str())
        return "ByteLevel" in json.dumps([doc.get("pre_tokenizer"), doc.get("decoder")])

    def _chars_per_id(self) -> np.ndarray:
        """How many characters each id adds to decoded text: for byte-level vocabularies, the bytes of the token that
        start a UTF-8 character, so a character split over two tokens is counted once; specials count none."""
        out = np.zeros(self.vocab_size, dtype=np.int64)
        special = set(self.specials)
        if self.spaces_lead_tokens:  # byte-level: count the bytes that start a character
            to_byte = {c: b for b, c in _bytes_to_unicode().items()}
            for i in range(self.vocab_size):
                piece = self.hf.id_to_token(i)
                if piece is None or piece in special:
                    continue
                raw = [to_byte.get(c) for c in piece]
                if None in raw:  # an added, non-byte-level token: count its text
                    out[i] = len(piece)
                else:
                    out[i] = sum(1 for b in raw if b & 0xC0 != 0x80)
        else:
            for i in range(self.vocab_size):
                piece = self.hf.id_to_token(i)
                if piece is not None and piece not in special:
                    out[i] = len(self.hf.decode([i], skip_special_tokens=True))
        return out

    @property
    def vocab_size(self) -> int:
        return self.hf.get_vocab_size(with_added_tokens=True)

    def special_id(self, token: str) -> int | None:
        return self.hf.token_to_id(token) if token in self.specials else None

    def with_specials(self, tokens: Iterable[str]) -> "HFTokenizer":
        missing = [t for t in tokens if t not in self.specials]
        if not missing:
            return self
        from tokenizers import AddedToken
        copy = HFTokenizer.from_str(self.hf.to_str())
        copy.hf.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in missing])
        return HFTokenizer(copy.hf)

    def token_str(self, i: int) -> str:
        piece = self.hf.id_to_token(int(i))
        return piece if piece in self.specials else self.hf.decode([int(i)], skip_special_tokens=False)

    def encode(self, text: str) -> list[int]:
        return self.hf.encode(text, add_special_tokens=False).ids

    def encode_array(self, text: str) -> np.ndarray:
        return np.asarray(self.encode(text), dtype=np.int64)

    def count_unknown(self, text: str) -> int:
        return 0  # bytes cover every text

    def decode(self, ids) -> str:
        ids = [int(i) for i in ids]
        return self.hf.decode([i for i in ids if 0 <= i < self.vocab_size], skip_special_tokens=True)

    def chars_per_token(self, ids) -> np.ndarray:
        return self._chars[np.clip(np.asarray(ids, dtype=np.int64), 0, self.vocab_size - 1)]

    def num_chars(self, ids) -> int:
        """Characters of text that these ids decode to (for bits per character)."""
        return int(self.chars_per_token(ids).sum())

    def to_dict(self) -> dict:
        return json.loads(self.hf.to_str())

    def save(self, path: Path) -> None:
        Path(path).write_text(self.hf.to_str(pretty=True), encoding="utf-8")


def load_tokenizer(path: Path, *, what: str = "the run folder is incomplete (copy tokenizer.json from the run's "
                                               "checkpoints/ folder)"):
    """Read a tokenizer.json: tetragen's character format or a Hugging Face tokenizer file."""
    if not Path(path).is_file():
        raise UserError(f"{path}: missing; {what}")
    try:
        text = Path(path).read_text(encoding="utf-8")
        doc = json.loads(text)
        if isinstance(doc, dict) and "tetragen_tokenizer" not in doc and isinstance(doc.get("model"), dict):
            try:
                return HFTokenizer.from_str(text)
            except Exception as e:  # the Rust library's own exception type
                raise UserError(f"{path}: not a tokenizer file that Hugging Face tokenizers can read "
                                f"({' '.join(str(e).split())[:120]})") from None
        kind = doc.get("tetragen_tokenizer")
        if kind == "char":
            return CharTokenizer(doc["vocab"][1:], doc.get("special", []))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise UserError(f"{path}: not a readable tokenizer file ({type(e).__name__})") from None
    raise UserError(f"{path}: unknown tokenizer type {kind!r}; expected tetragen's char format or a Hugging Face "
                    f"tokenizer.json")
