"""What `tetragen.load(run_dir)` returns for a BERT run: fill-mask predictions (and class probabilities for a
fine-tuned classifier)."""
from __future__ import annotations

import warnings

import torch

from ...data.tokenizer import CLS, MASK
from ...errors import UserError


class MaskedLM:
    """A BERT model with its tokenizer and config: `fill_mask("To be, or not to [MASK]", top_k=5)`, and for a
    fine-tuned classifier `classify("some text")`."""

    def __init__(self, model, tokenizer, config):
        self.model, self.tokenizer, self.config = model.eval(), tokenizer, config
        self.assets = tokenizer

    @property
    def capabilities(self) -> frozenset[str]:
        return frozenset({"fill_mask"} | ({"classify"} if self.config.model.num_labels else set()))

    def evaluate(self, data, **_) -> tuple[dict, list[str]]:
        """A masked LM: loss and accuracy at the masked positions of the validation split; a classifier: loss and
        accuracy of its labels on the validation rows."""
        from ...eval.text import split_phrase
        from .objective import evaluate
        m = evaluate(self.model, data, self.config, next(self.model.parameters()).device)
        if self.config.model.num_labels:
            head = [f"{data.name}, validation split ({int(m['val_examples'])} examples)",
                    f"val_loss     {m['val_loss']:.4f} nats/example"]
        else:
            head = [f"{data.name}, {split_phrase(self.config.train.eval_tokens)} "
                    f"({int(m['val_masked_tokens'])} masked tokens)",
                    f"val_loss     {m['val_loss']:.4f} nats/masked token"]
        return m, [*head, f"val_accuracy {m['val_accuracy']:.4f}"]

    def encode_masked(self, text: str) -> tuple[list[int], list[int]]:
        """[CLS] + the text's ids with each literal `[MASK]` as the mask id -> (ids, the mask positions).

        With a tokenizer whose ids carry a word's leading space (byte-level BPE), one space before a `[MASK]` belongs
        to the masked token: "not to [MASK]" asks for " be", as RoBERTa's <mask> does, rather than for a word after
        a lone space id that the model has hardly ever seen."""
        tok, ids, positions = self.tokenizer, [self.config.model.special_ids[CLS]], []
        *before_masks, last = text.split(MASK)
        for piece in before_masks:
            if tok.spaces_lead_tokens and piece.endswith(" "):
                piece = piece[:-1]
            ids += tok.encode(piece)
            positions.append(len(ids))
            ids.append(self.config.model.special_ids[MASK])
        return ids + tok.encode(last), positions

    @torch.no_grad()
    def fill_mask(self, text: str, top_k: int = 5):
        """The `top_k` most likely tokens, with probabilities, for each [MASK] in `text`: one list of (token, prob)
        per [MASK], in order (a list of one list for one [MASK]). Special tokens are never proposed. A text longer
        than the model's context is read in the window of it centred on its [MASK]s (with a warning)."""
        if top_k < 1:
            raise UserError(f"--top-k: {top_k} must be at least 1")
        ids, positions = self.encode_masked(text)
        if not positions:
            raise UserError(f"--text: no {MASK} in {text!r}; write {MASK} where a token should be predicted")
        block = self.config.model.block_size
        if len(ids) > block:
            ids, positions = self._window(ids, positions, block)
        device = next(self.model.parameters()).device
        logits, _ = self.model(torch.tensor([ids], device=device))                    # (1, T, V)
        logits = logits[0, positions].float()                                          # (M, V)
        logits[:, sorted(self.config.model.special_ids.values())] = -torch.inf
        probs = torch.softmax(logits, dim=-1)
        top = probs.topk(min(top_k, probs.size(-1)), dim=-1)
        out = [[(self.tokenizer.token_str(int(i)), float(p)) for p, i in zip(ps, idx)]
               for ps, idx in zip(top.values, top.indices)]
        return out

    @staticmethod
    def _window(ids: list[int], positions: list[int], block: int) -> tuple[list[int], list[int]]:
        """[CLS] and the block - 1 tokens of ids[1:] centred on the [MASK] positions (all of which it must hold)."""
        body, first, last = block - 1, positions[0], positions[-1]
        if last - first + 1 > body:
            raise UserError(f"--text: its {MASK}s span {last - first + 1} tokens, but the model reads at most {body} "
                            f"besides [CLS]; predict them in shorter texts")
        lo, hi = max(1, last - body + 1), min(first, len(ids) - body)
        start = min(max((first + last) // 2 - body // 2, lo), hi)
        warnings.warn(f"the text is {len(ids)} tokens with [CLS], longer than the model's context of {block}; only "
                      f"the {body} tokens around its {MASK}s were read", stacklevel=3)
        return [ids[0], *ids[start:start + body]], [p - start + 1 for p in positions]

    @torch.no_grad()
    def classify(self, text: str) -> dict[str, float]:
        """The probability of each label for `text`, most likely first. A text longer than the model's context is
        cut to it (with a warning)."""
        labels = self.config.model.labels
        if not self.config.model.num_labels or not labels:
            raise UserError("this bert run is a masked LM without a classifier; make one with "
                            "`tetragen finetune RUN --task classify --data FILE.csv --out NEW_RUN`")
        block = self.config.model.block_size
        ids = [self.config.model.special_ids[CLS]] + self.tokenizer.encode(text)
        if len(ids) > block:
            warnings.warn(f"the text is {len(ids)} tokens with [CLS], longer than the model's context of {block}; "
                          f"only its first {block} tokens were read", stacklevel=2)
            ids = ids[:block]
        device = next(self.model.parameters()).device
        logits, _ = self.model(torch.tensor([ids], device=device), classify=True)     # (1, K)
        probs = torch.softmax(logits[0].float(), dim=-1).tolist()
        return dict(sorted(zip(labels, probs), key=lambda kv: -kv[1]))
