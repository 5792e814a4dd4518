"""BERT's objectives (one phase each): the masked LM, or sequence classification once a classifier head is added
(`tetragen finetune --task classify`); and their evaluation on the validation split.

Masking (Devlin et al. 2018, section 3.1): each text position is chosen with probability `model.mask_prob`; a chosen
position becomes [MASK] 80% of the time, a random text token 10%, and stays itself 10%; the loss is the
cross-entropy of the original token at the chosen positions only. The draws come from a generator seeded by the
batch's own (seed, step, micro-batch, rank), so a resumed run masks exactly as an uninterrupted one, and evaluation
masks the same way every time.
"""
from __future__ import annotations

import numpy as np
import torch

from ...data.tokenizer import CLS, MASK
from ...train.phase import Phase
from .model import IGNORE

_MASK_STREAM = 0x6D61736B  # keeps the masking draws apart from any other use of the same numbers


def generator_for(*numbers: int) -> torch.Generator:
    """A CPU generator seeded from a tuple of non-negative integers."""
    g = torch.Generator()
    g.manual_seed(int(np.random.SeedSequence([*map(int, numbers), _MASK_STREAM]).generate_state(1, np.uint64)[0]
                      >> 1))
    return g


def with_cls(x: torch.Tensor, cls_id: int) -> torch.Tensor:
    """A window of text (B, T) as an encoder input: [CLS] in place of its first token."""
    x = x.clone()
    x[:, 0] = cls_id
    return x


def mask_tokens(ids: torch.Tensor, config, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """ids (B, T) -> (inputs, targets): inputs with the chosen positions replaced, targets IGNORE elsewhere."""
    special = torch.tensor(sorted(config.special_ids.values()))
    ordinary = torch.tensor([i for i in range(config.vocab_size) if i not in set(special.tolist())])
    cpu = ids.cpu()
    u = torch.rand(cpu.shape, generator=generator)
    how = torch.rand(cpu.shape, generator=generator)
    random_ids = ordinary[torch.randint(len(ordinary), cpu.shape, generator=generator)]
    text = ~torch.isin(cpu, special)
    chosen = (u < config.mask_prob) & text
    if not chosen.any():  # a loss needs at least one position
        first = text.flatten().nonzero()[:1]
        chosen.view(-1)[first] = True
    inputs = torch.where(chosen & (how < 0.8), config.special_ids[MASK], cpu)
    inputs = torch.where(chosen & (how >= 0.8) & (how < 0.9), random_ids, inputs)
    targets = torch.where(chosen, cpu, IGNORE)
    return inputs.to(ids.device), targets.to(ids.device)


def objective(model, cfg) -> list[Phase]:
    c = cfg.model
    if c.num_labels:
        return classify_objective(model, cfg)

    def loss(m, batch):
        ids = with_cls(batch["x"], c.special_ids[CLS])
        inputs, targets = mask_tokens(ids, c, generator_for(*batch["draw"].tolist()))
        logits, loss = m(inputs, targets)
        accuracy = (logits.argmax(-1) == targets[targets != IGNORE]).float().mean()
        return loss, {"mlm_accuracy": accuracy.detach()}
    return [Phase("main", list(model.parameters()), loss)]


def classify_objective(model, cfg) -> list[Phase]:
    """Sequence classification (a BERT with model.num_labels > 0): cross-entropy of the class logits read from the
    pooled representation (model.pooling: the [CLS] position by default, or the mean over the text's tokens)."""
    # the masked-LM head is not used by the classifier: frozen, it keeps its weights (fill-mask still works) and
    # no parameter goes without a gradient
    for p in (*model.mlm_transform.parameters(), model.mlm_bias):
        p.requires_grad_(False)

    def loss(m, batch):
        logits, loss = m(batch["x"], batch["label"], padding_mask=batch["mask"], classify=True)
        accuracy = (logits.argmax(-1) == batch["label"]).float().mean()
        return loss, {"accuracy": accuracy.detach()}
    return [Phase("main", [p for p in model.parameters() if p.requires_grad], loss)]


@torch.no_grad()
def evaluate(model, data, cfg, device, batch_size: int = 32) -> dict:
    """Masked-token loss (nats per chosen token) and accuracy over the validation split, masked from a fixed seed;
    for a classifier, the cross-entropy and accuracy of its labels over the validation examples."""
    c = cfg.model
    if c.num_labels:
        nats, correct, n = 0.0, 0, 0
        for batch in data.val_batches(batch_size):
            batch = {k: v.to(device) for k, v in batch.items()}
            logits, _ = model(batch["x"], padding_mask=batch["mask"], classify=True)
            nats += torch.nn.functional.cross_entropy(logits.float(), batch["label"], reduction="sum").item()
            correct += int((logits.argmax(-1) == batch["label"]).sum())
            n += len(batch["label"])
        return {"val_loss": nats / max(n, 1), "val_accuracy": correct / max(n, 1), "val_examples": float(n)}
    nats, correct, n = 0.0, 0, 0
    for i, batch in enumerate(data.val_batches(batch_size, cfg.train.eval_tokens)):
        ids = with_cls(batch["x"], c.special_ids[CLS]).to(device)
        inputs, targets = mask_tokens(ids, c, generator_for(cfg.train.seed, i))
        logits, _ = model(inputs, targets)
        chosen = targets[targets != IGNORE]
        nats += torch.nn.functional.cross_entropy(logits.float(), chosen, reduction="sum").item()
        correct += int((logits.argmax(-1) == chosen).sum())
        n += chosen.numel()
    return {"val_loss": nats / max(n, 1), "val_accuracy": correct / max(n, 1), "val_masked_tokens": float(n)}
