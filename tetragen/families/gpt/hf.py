"""GPT runs <-> Hugging Face GPT-2 folders (config.json + model.safetensors [+ tokenizer files]).

tetragen's GPT keeps GPT-2's parameter names, so the conversion is small: GPT-2 stores its projections as `Conv1D`
(weight laid out (in, out)) where tetragen uses `nn.Linear` ((out, in)), so those four matrices per block are
transposed; a run trained with `model.bias=false` gets zero biases (the same function); the output projection is tied
to the token embedding in both. Neither direction needs `transformers`: the files are written and read directly.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from ...errors import UserError
from ...files import read_tensors, save_tensors, write_json, write_text

CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
TANH_GELU = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")
EXACT_GELU = ("gelu",)
LN_EPS = 1e-5  # nn.LayerNorm's default, which tetragen's blocks use


# ----------------------------------------------------------------------------------------------------------------
# export

def gpt2_config(model_config) -> dict:
    c = model_config
    return {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": c.vocab_size,
            "n_positions": c.block_size, "n_ctx": c.block_size, "n_embd": c.n_embd, "n_layer": c.n_layer,
            "n_head": c.n_head, "n_inner": None, "activation_function": "gelu_new" if c.activation == "gelu_tanh" else "gelu", "resid_pdrop": c.dropout,
            "embd_pdrop": c.dropout, "attn_pdrop": c.dropout, "layer_norm_epsilon": LN_EPS,
            "initializer_range": 0.02, "scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False,
            "reorder_and_upcast_attn": False, "tie_word_embeddings": True, "bos_token_id": None,
            "eos_token_id": None, "use_cache": True, "torch_dtype": "float32"}


def to_gpt2_state(model) -> dict[str, torch.Tensor]:
    """A tetragen GPT's weights under GPT-2's names and layouts (fp32, zero biases where the run has none)."""
    c = model.config
    state = {k: v.detach().float().cpu() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    out = {}
    for name, t in state.items():
        out[name] = t.t().contiguous() if name.endswith(CONV1D) else t.contiguous()
    if not c.bias:  # GPT-2 always has biases: zeros compute the same function
        width = {"ln_1": c.n_embd, "ln_2": c.n_embd, "attn.c_attn": 3 * c.n_embd, "attn.c_proj": c.n_embd,
                 "mlp.c_fc": 4 * c.n_embd, "mlp.c_proj": c.n_embd}
        for i in range(c.n_layer):
            for part, n in width.items():
                out[f"transformer.h.{i}.{part}.bias"] = torch.zeros(n)
        out["transformer.ln_f.bias"] = torch.zeros(c.n_embd)
    return out


def char_tokenizer_json(tokenizer) -> str:
    """tetragen's character tokenizer as a Hugging Face tokenizer.json: a BPE without merges (one token per
    character, unknown characters to id 0), no pre-tokenizer, and a decoder that joins the pieces as they are."""
    from tokenizers import AddedToken, Tokenizer, decoders, models
    vocab = {ch: i for i, ch in enumerate(tokenizer.chars)}
    hf = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=tokenizer.chars[0]))
    hf.decoder = decoders.Fuse()
    if tokenizer.specials:  # appended after the characters, in order, so they get the same ids
        hf.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in tokenizer.specials])
    return hf.to_str(pretty=True)


def write_hf(pipe, folder: Path) -> None:
    """Write the loaded GPT run `pipe` into the empty `folder` as a Hugging Face GPT-2 folder that
    `transformers.GPT2LMHeadModel.from_pretrained` and `AutoTokenizer.from_pretrained` load offline. The weights are
    those `tetragen.load` used (EMA when the run keeps one)."""
    model, tokenizer, cfg = pipe.model, pipe.tokenizer, pipe.config
    save_tensors(to_gpt2_state(model), folder / "model.safetensors", metadata={"format": "pt"})
    write_json(folder / "config.json", gpt2_config(cfg.model))
    tok_config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": cfg.model.block_size,
                  "clean_up_tokenization_spaces": False}
    if tokenizer.kind == "char":
        write_text(folder / "tokenizer.json", char_tokenizer_json(tokenizer))
        tok_config["unk_token"] = tokenizer.chars[0]
    else:
        tokenizer.save(folder / "tokenizer.json")
    write_json(folder / "tokenizer_config.json", tok_config)


# ----------------------------------------------------------------------------------------------------------------
# import

def read_gpt2_config(folder: Path) -> dict:
    """The GPT-2 config.json of `folder`, checked to describe a model tetragen's GPT computes exactly."""
    folder = Path(folder)
    path = folder / "config.json"
    hint = "give a folder written by save_pretrained of a GPT-2 model (config.json + model.safetensors)"
    if not folder.is_dir():
        raise UserError(f"--init-from {folder}: no such folder; {hint}")
    if not path.is_file():
        raise UserError(f"--init-from {folder}: no config.json; {hint}")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(doc, dict):
        raise UserError(f"{path}: not a model config (expected a JSON object)")
    if doc.get("model_type") != "gpt2":
        what = doc.get("model_type") or (doc.get("architectures") or ["no model_type"])[0]
        raise UserError(f"{path}: a {what} model, not GPT-2 (model_type gpt2); --init-from takes GPT-2 folders")
    if not (folder / "model.safetensors").is_file():
        extra = " (sharded checkpoints are not supported)" if (folder / "model.safetensors.index.json").is_file() \
            else ""
        raise UserError(f"--init-from {folder}: no model.safetensors{extra}; save the model with "
                        f"save_pretrained(..., safe_serialization=True)")
    n_embd = doc.get("n_embd", 768)
    checks = [("activation_function", doc.get("activation_function", "gelu_new") in TANH_GELU + EXACT_GELU,
               "gelu_new"),
              ("n_inner", doc.get("n_inner") in (None, 4 * n_embd), f"null or {4 * n_embd}"),
              ("layer_norm_epsilon", abs(doc.get("layer_norm_epsilon", LN_EPS) - LN_EPS) < 1e-12, LN_EPS),
              ("scale_attn_weights", doc.get("scale_attn_weights", True) is True, True),
              ("scale_attn_by_inverse_layer_idx", not doc.get("scale_attn_by_inverse_layer_idx", False), False),
              ("tie_word_embeddings", doc.get("tie_word_embeddings", True) is not False, True)]
    for key, ok, want in checks:
        if not ok:
            raise UserError(f"{path}: {key}={doc.get(key)!r} is a GPT-2 variant tetragen's GPT does not compute; "
                            f"it needs {key}={want!r}")
    return doc


def model_overrides(doc: dict) -> list[str]:
    """The model.* overrides that give a tetragen GPT the shape of this GPT-2 config."""
    return [f"model.vocab_size={doc.get('vocab_size', 50257)}", f"model.block_size={doc.get('n_positions', 1024)}",
            f"model.n_layer={doc.get('n_layer', 12)}", f"model.n_head={doc.get('n_head', 12)}",
            f"model.n_embd={doc.get('n_embd', 768)}", "model.bias=true",
            f"model.activation={'gelu' if doc.get('activation_function') in EXACT_GELU else 'gelu_tanh'}"]


def init_overrides(folder: Path) -> list[str]:
    """`--init-from FOLDER`: the run takes the folder's shape, and its tokenizer.json when it has one (the
    command line's own overrides come after these)."""
    folder = Path(folder)
    out = model_overrides(read_gpt2_config(folder))
    if (folder / "tokenizer.json").is_file():
        out.append(f"data.tokenizer={(folder / 'tokenizer.json').resolve()}")
    return out


def check_vocabulary(cfg, data) -> None:
    """The GPT-2 folder's vocabulary and the run's tokenizer have the same size (the embedding rows are the
    tokens)."""
    if cfg.model.vocab_size != data.tokenizer.vocab_size:
        raise UserError(f"--init-from {cfg.finetune.init_from}: the model has vocab_size {cfg.model.vocab_size} but "
                        f"the tokenizer ({cfg.data.tokenizer}) has {data.tokenizer.vocab_size} tokens; use the "
                        f"folder's own tokenizer.json (data.tokenizer=PATH)")


def read_gpt2_weights(folder: str | Path) -> dict[str, torch.Tensor]:
    """A GPT-2 folder's model.safetensors under tetragen's names and layouts (read with safetensors, no pickle)."""
    folder = Path(folder)
    read_gpt2_config(folder)
    raw = read_tensors(folder / "model.safetensors")
    out = {}
    for name, t in raw.items():
        key = name if name.startswith(("transformer.", "lm_head.")) else f"transformer.{name}"
        if key.endswith((".attn.bias", ".attn.masked_bias")):  # causal-mask buffers, not weights
            continue
        if key == "lm_head.weight":  # tied to the embedding
            continue
        out[key] = t.t().contiguous() if key.endswith(CONV1D) and t.dim() == 2 else t
    return out
