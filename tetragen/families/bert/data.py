"""What a BERT run trains on: a corpus for the masked LM, or text,label rows for a classifier (`--task classify`,
and any run whose model has labels)."""
from __future__ import annotations

from ...data.labeled import load_labeled_data, read_rows
from ...data.text import fit_vocabulary, load_lm_data, resolve_tokenizer
from ...data.tokenizer import SPECIAL_TOKENS, CharTokenizer
from ...errors import UserError


def load_data(cfg, tokenizer=None, task: str = "lm"):
    if task == "classify" or cfg.model.num_labels:
        return load_classifier_data(cfg, tokenizer)
    return load_lm_data(cfg, tokenizer, specials=SPECIAL_TOKENS)


def load_classifier_data(cfg, tokenizer=None):
    """The text,label rows of a classifier run (data.source a .csv/.jsonl), tokenized by `tokenizer` (a trained
    run's), by the file data.tokenizer names, or by the characters of the rows' texts."""
    if tokenizer is None:
        if cfg.data.tokenizer == "bpe":
            raise UserError("data.tokenizer=bpe: a classifier trained from scratch takes its characters (char) or "
                            "a tokenizer file; train one with `tetragen tokenizer train` and pass "
                            "data.tokenizer=PATH/tokenizer.json")
        tokenizer = resolve_tokenizer(cfg.data.tokenizer)
        if tokenizer is None:
            tokenizer = CharTokenizer.from_charset({ch for text, _, _ in read_rows(cfg.data.source) for ch in text})
    tokenizer = tokenizer.with_specials(SPECIAL_TOKENS)
    fit_vocabulary(cfg.model, tokenizer, SPECIAL_TOKENS)
    return load_labeled_data(cfg, tokenizer)
