"""Fine-tuning: a run that starts from another run's weights (and tokenizer): fully, through LoRA adapters, or
(`finetune.method=head`) only a new task head on the frozen base model.

`prepare(model, cfg)` is applied by the trainer to every freshly built model: it loads `finetune.init_from` (a run's
weights file, or another library's folder read by the family's `importer`) and, for `finetune.method=lora`, wraps the
target layers with adapters and freezes the rest but a task head (the family's `task_heads`, e.g. a classifier),
which is trained whole beside the adapters as it starts from random. A resumed fine-tune rebuilds the
same structure and then loads its checkpoint over it. `finish(run_dir, cfg)` writes the LoRA result as asked:
merged into plain weights (model.safetensors, loadable as any run) or as an adapter (adapter.safetensors +
adapter.json naming the base weights; the task head, when there is one, is saved in the adapter file too).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from ..errors import UserError
from ..nn import lora
from ..registry import get_family
from . import checkpoint as ck

ADAPTER_FILE, ADAPTER_JSON = "adapter.safetensors", "adapter.json"


def targets(cfg) -> list[str]:
    """The layers LoRA adapts: finetune.lora_targets, or the family's default when it is empty."""
    named = [t.strip() for t in cfg.finetune.lora_targets.split(",") if t.strip()]
    return named or list(get_family(cfg.family).lora_targets)


def new_heads(cfg) -> tuple[str, ...]:
    """Parameter-name prefixes of the task heads a fine-tune of this family may add to its base model."""
    return get_family(cfg.family).task_heads


def prepare(model: torch.nn.Module, cfg) -> torch.nn.Module:
    f, heads = cfg.finetune, new_heads(cfg)
    if f.init_from:
        path = Path(f.init_from)
        if path.is_dir():  # another library's folder (`tetragen train FAMILY --init-from`)
            importer = get_family(cfg.family).importer
            if importer is None:
                raise UserError(f"finetune.init_from={f.init_from}: a folder, and the {cfg.family} family starts "
                                f"from no other library's folders; give a run's weights file")
            path, tensors = path / "model.safetensors", importer.weights(path)
        else:
            tensors = ck.read_tensors(path)
        # a task head the base run lacks (a masked LM fine-tuned into a classifier) keeps its fresh initialisation
        fresh = {k: v for k, v in model.state_dict().items() if heads and k.startswith(heads) and k not in tensors}
        ck.load_weights(model, path, {**tensors, **fresh})
    if f.method == "lora":
        lora.inject(model, targets(cfg), f.lora_rank, f.lora_alpha, cfg.family)  # freezes all but the adapters
    elif f.method == "head":
        if not heads or not any(name.startswith(heads) for name, _ in model.named_parameters()):
            raise UserError("finetune.method=head trains a task head on the frozen model, and this run has none; "
                            "use it with --task classify, or choose finetune.method=full or lora")
        model.requires_grad_(False)
    if f.method in ("lora", "head"):
        for name, p in model.named_parameters():  # frozen, a new head would stay a random projection
            if heads and name.startswith(heads):
                p.requires_grad_(True)
    return model


def structure_for(model: torch.nn.Module, cfg, tensors: dict) -> torch.nn.Module:
    """A built model shaped for `tensors`: with adapters when the file holds them (a LoRA run's checkpoints)."""
    if lora.has_adapters(tensors):
        lora.inject(model, targets(cfg), cfg.finetune.lora_rank, cfg.finetune.lora_alpha, cfg.family)
    return model


def finish(run_dir: Path, cfg) -> None:
    """After a LoRA fine-tune: merge the adapters into model.safetensors, or keep only the adapter files."""
    f = cfg.finetune
    if f.method != "lora":
        return
    scale = f.lora_alpha / f.lora_rank
    names = ["model.safetensors"] + (["ema.safetensors"] if (run_dir / "ema.safetensors").is_file() else [])
    if f.lora_save == "merged":
        for name in names:
            ck.save_tensors(lora.merge_state(ck.read_tensors(run_dir / name), scale), run_dir / name)
        return
    weights = run_dir / names[-1]  # what inference uses: the EMA when there is one
    state = ck.read_tensors(weights)
    prefixes = new_heads(cfg)
    heads = {k: v for k, v in state.items() if prefixes and k.startswith(prefixes)}
    ck.save_tensors({**lora.adapter_state(state), **heads}, run_dir / ADAPTER_FILE)
    ck.write_json(run_dir / ADAPTER_JSON, {"base": f.init_from, "rank": f.lora_rank, "alpha": f.lora_alpha,
                                           "targets": targets(cfg)})
    for name in names:
        (run_dir / name).unlink()


def read_adapter(run_dir: Path, cfg) -> dict:
    """The plain weights of an adapter-only run: its base model's with the adapter merged in."""
    try:
        doc = json.loads((run_dir / ADAPTER_JSON).read_text(encoding="utf-8"))
        base = Path(doc["base"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"{run_dir / ADAPTER_JSON}: missing or unreadable ({type(e).__name__}); the run folder is "
                        f"incomplete") from None
    if not base.is_file():
        raise UserError(f"{run_dir / ADAPTER_JSON}: its base weights {base} are gone; restore them or fine-tune "
                        f"with finetune.lora_save=merged")
    state = dict(ck.read_tensors(base))
    adapter = ck.read_tensors(run_dir / ADAPTER_FILE)
    for k, v in adapter.items():  # the adapter's keys sit beside the base layer's: prefix.lora_A / prefix.base.*
        if k.endswith(lora.LORA_KEYS):
            prefix = k.rsplit(".", 1)[0]
            for leaf in ("weight", "bias"):
                if f"{prefix}.{leaf}" in state:
                    state[f"{prefix}.base.{leaf}"] = state.pop(f"{prefix}.{leaf}")
        state[k] = v  # a LoRA matrix, or a task head's weights in full
    return lora.merge_state(state, doc["alpha"] / doc["rank"])
