"""House rules read from the source rather than run: a family's config says why its presets are what they are but
holds no measured figure (figures live in bench/RESULTS.md and docs/<family>.md, where their date, machine and command
go with them), and no family imports another family's private (underscore) names (shared pieces live in tetragen/nn/).
"""
import ast
import io
import re
import tokenize

import pytest

from .conftest import ROOT

FAMILIES = ROOT / "tetragen" / "families"
CONFIGS = sorted(FAMILIES.glob("*/config.py"))

# What a measurement looks like in prose. Each pattern is narrow enough to leave alone the numbers a config does
# need to state (sizes such as 28x28 or 7x7 = 49 tokens, Adam betas (0.5, 0.999), an EMA decay 0.995, "80% [MASK]").
METRIC = r"(?:FID|KID|MSE|NLL|-?ELBO|val_loss|val_bpc|accuracy|perplexity|bits/char|nats/char|recon FID)"
FIGURES = {
    "a date": r"\b20\d\d-[01]\d(?:-[0-3]\d)?\b",
    "a metric's value": rf"\b{METRIC}\W+(?:[a-z]+\W+){{0,2}}?\d+\.\d+",
    "a likelihood in nats": r"\b\d+(?:\.\d+)?\s*nats\b",
    "a throughput": r"\d\s*(?:steps/s|s/step|ms/step|images/s|img/s|tokens/s|tok/s|it/s|samples/s)\b",
    "seconds per step": r"\b\d+\.\d+\s*s\b|\bs(?:econds)? (?:per|a) step\b.{0,12}\d",
    "a speed ratio": r"\b\d+(?:\.\d+)?x\s+(?:faster|slower|dearer|cheaper|longer|shorter|as fast|the)\b",
    "a percentage beside a metric": rf"\d+(?:\.\d+)?%\s*(?:faster|slower|MFU|speed-?up|{METRIC})|"
                                    rf"(?:{METRIC}|MFU|speed-?up)\W+(?:[a-z]+\W+){{0,3}}?\d+(?:\.\d+)?%",
    "a step count reached": r"\b\d+ steps (?:to|in)\b|\bafter \d+ steps\b",
}


def figures_in(text: str) -> list[str]:
    """The kinds of measured figure found in `text` (empty: none)."""
    return [kind for kind, pattern in FIGURES.items() if re.search(pattern, text)]


def prose(path) -> list[tuple[int, str]]:
    """(first line, text) of each comment block and each string literal of a Python file: comment lines in a row
    are joined, so that a figure wrapped over two lines is still seen whole."""
    out, block, start, last = [], [], 0, -2
    for tok in tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline):
        if tok.type == tokenize.COMMENT:
            line = tok.start[0]
            if line != last + 1 and block:
                out.append((start, " ".join(block)))
                block = []
            if not block:
                start = line
            block.append(tok.string.lstrip("#").strip())
            last = line
        elif tok.type == tokenize.STRING:
            out.append((tok.start[0], tok.string))
    if block:
        out.append((start, " ".join(block)))
    return out


@pytest.mark.parametrize("text", [
    "Without dropout: 2.2 minutes on the complete works (2026-12-02, Intel Xeon with AMX, 2 cores)",
    "ran 1369 steps to val_loss 1.880 (masked accuracy 0.463)",
    "causal FID 12.55 and prompted-class accuracy 0.920 at 78.8 images/s",
    "512 codes reconstruct better than 256 (recon FID 5.68 vs 6.51 in the second run)",
    "every training step of the prior 3.2x dearer (0.85 vs 0.27 s without dropout)",
    "bf16 autocast is 2.1x faster than fp32",
    "after 500 steps it was ahead on both -ELBO (257 vs 262 nats) and FID",
    "the baby model trains at 1200 tokens/s, 0.12 s/step, 35 ms/step",
    "accuracy went up by 12.5% with the new head",
    "a 40% speed-up",
])
def test_the_patterns_catch_measured_figures(text):
    assert figures_in(text), text


@pytest.mark.parametrize("text", [
    "GAN recipes: Adam betas (0.5, 0.999) as in DCGAN, a constant learning rate, no weight decay.",
    "Fashion-MNIST 28x28 grey -> 7x7 = 49 tokens from 512 codes (9 bits each).",
    "A short CPU budget buys a few thousand steps, so the EMA horizon is about 200 steps (0.995).",
    "fraction of positions chosen for the masked-LM loss (80% [MASK], 10% a random token, 10% kept)",
    "a 12-step test run trains both phases (and its checkpoint at step 4 already holds the discriminator's state)",
    "the discriminator's widest layer: disc_width * 8 (taming's cap); 28x28 with 2 layers: a 5x5 grid of logits",
    "the GAN on for the last three fifths of the steps; sampling four times as long",
])
def test_the_patterns_leave_ordinary_numbers_alone(text):
    assert not figures_in(text), (text, figures_in(text))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.parent.name)
def test_family_configs_hold_no_measured_figures(path):
    """A figure belongs in bench/RESULTS.md or docs/<family>.md with its date, machine and command; the config's
    comment says why the preset is what it is and names that section."""
    found = [f"{path.relative_to(ROOT)}:{line}: {', '.join(kinds)}: {text[:100]}"
             for line, text in prose(path) if (kinds := figures_in(text))]
    assert not found, "measured figures in a config (move them to bench/RESULTS.md or docs/):\n" + "\n".join(found)


def test_every_family_has_a_config_to_check():
    assert len(CONFIGS) == len([p for p in FAMILIES.iterdir() if (p / "__init__.py").is_file()])


@pytest.mark.parametrize("path", sorted(FAMILIES.glob("*/*.py")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_family_imports_another_familys_private_names(path):
    """Public reuse (cgan builds on dcgan's GAN, cvae on vae's VAE) is fine; a private helper two families need
    belongs in tetragen/nn/ (as dcgan_init and frozen do)."""
    own = path.parent.name
    bad = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.ImportFrom) or not node.module:
            continue
        parts = node.module.split(".")
        if node.level == 2:                       # from ..other.module import name
            family = parts[0]
        elif node.level == 0 and parts[:2] == ["tetragen", "families"] and len(parts) > 2:
            family = parts[2]
        else:
            continue
        if family != own:
            bad += [f"{node.module}.{a.name} (line {node.lineno})" for a in node.names if a.name.startswith("_")]
    assert not bad, f"{path.relative_to(ROOT)} imports private names of another family: {', '.join(bad)}"
