"""Pre-train -> fine-tune on the complete works: what pre-training on unlabelled text buys on a small task.

The data is built offline by `tetragen data shakespeare-tasks` (tetragen/data/shakespeare_tasks.py): pretrain.txt
is the complete works minus eight held-out works (two per genre), heldout/NAME.txt each held-out work, genre.csv
passages labelled comedy/history/tragedy/poetry with split=test rows from the held-out works only.

1. GPT domain adaptation. A GPT (4 layers, 192 dims) is pre-trained on pretrain.txt; then, on one held-out play alone
   (Macbeth: its first 90% for training, its last 10% for validation), the same number of steps of
   (a) full fine-tuning of the pre-trained model, (b) LoRA fine-tuning of it, (c) training from random
   initialisation with the same shape and tokenizer. Reported: validation loss on the held-out play (nats/char and
   bits/char), and the pre-trained model before any fine-tuning.
2. BERT genre classification. A byte-level BPE (2048 ids) is trained on pretrain.txt and a BERT (`baby`: 4 layers,
   128 dims, 128 positions) is pre-trained on it as a masked LM; then a classifier is trained on the genre rows
   (passages of 320 characters, about 115 BPE ids), with all training labels and with 5% of them (class-balanced,
   five different draws), from the pre-trained encoder (`tetragen finetune --task classify`: every weight, LoRA,
   or the head alone on the frozen encoder) and from random initialisation with the same shape and tokenizer
   (`tetragen train bert --task classify`), for the same number of steps. Each kind of classifier tries two peak
   learning rates; the one kept is the better by mean accuracy on a validation split carved from the training rows
   (VAL_PER_GENRE passages of each genre, never trained on); the test rows are read only to report the kept runs.
   Reported: accuracy on the test rows (passages of works no run has seen), and the majority-class baseline.

Every training is a subprocess `python -m tetragen ...` timed from outside. Budgets are step counts (stated in the
table with the wall time they took). The two parts can run separately (`--only gpt`, `--only bert`); each keeps its
results in bench/_work and writes its own section of bench/RESULTS.md.

    python bench/pretrain_finetune.py           # both parts; each writes its section of bench/RESULTS.md
    python bench/pretrain_finetune.py --write   # the sections again from the results saved in bench/_work
    python bench/pretrain_finetune.py --quick   # smoke run: a few steps of everything, nothing written
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import header, write_section  # noqa: E402

WORK = ROOT / "bench" / "_work" / "pretrain_finetune"
PLAY = "macbeth"  # the held-out play GPT is fine-tuned on
LABEL_FRACTION = 0.05
LABEL_SEEDS = (0, 1, 2, 3, 4)  # the 5% runs are repeated on five draws of the labelled rows: the spread is reported

# budgets: steps of each training (full run, --quick run)
GPT_PRETRAIN = (1500, 30)
GPT_FINETUNE = (300, 10)
BERT_PRETRAIN = (3000, 30)
BERT_CLASSIFY = {"100%": (300, 10), "5%": (100, 10)}  # 2.9 passes over the 100% rows, 19 over the 5% ones

# the shapes are spelled out rather than taken from a preset, so that the benchmark measures the same models when
# presets change; both train in bf16 autocast where the CPU has it natively (train.precision=auto)
GPT_MODEL = ["--preset", "baby", "model.n_head=6", "model.n_embd=192", "model.activation=gelu", "train.batch_size=32",
             "train.precision=auto"]
GPT_PRETRAIN_ARGS = ["train.lr=3e-3", "train.min_lr=3e-4", "train.warmup_steps=100", "train.eval_every=0",
                     "train.save_every=0", "train.log_every=100", "train.eval_tokens=65536"]
# fine-tuning: a third of the pre-training peak lr, so the pre-trained features are adjusted rather than overwritten;
# the run from scratch takes the lr the model is pre-trained with
GPT_FINETUNE_ARGS = ["train.lr=1e-3", "train.min_lr=1e-4", "train.warmup_steps=20"]
GPT_LORA_ARGS = ["finetune.method=lora", "finetune.lora_rank=16", "finetune.lora_targets=c_attn,c_proj,c_fc",
                 "train.lr=2e-3", "train.min_lr=2e-4", "train.warmup_steps=20"]
GPT_SCRATCH_ARGS = ["train.lr=3e-3", "train.min_lr=3e-4", "train.warmup_steps=20"]
GPT_COMMON = ["train.eval_every=0", "train.save_every=0", "train.eval_tokens=0", "train.log_every=50"]

# BERT reads byte-level BPE ids: a passage of 320 characters fits its 128 positions (a character-level encoder of the
# same size reads 127 characters, too little to tell a comedy from a tragedy), and word-sized ids let the masked LM
# learn which words keep company, which is what a classifier with few labels needs
BERT_BPE_VOCAB = 2048
# model.alibi: with learned positions alone this masked LM stays near the unigram loss for most of the budget (a
# masked character has no way to its neighbours until attention learns to find them by position); ALiBi's distance
# penalty gives it that way from the first step
# pre-training is without dropout (twice the steps per second on a CPU, and a few passes over the corpus do not
# overfit); the classifiers, which see their rows many times, train with dropout 0.1
BERT_MODEL = ["--preset", "baby", "model.block_size=128", "model.alibi=true", "model.dropout=0", "train.batch_size=32",
              "train.precision=auto"]
BERT_PRETRAIN_ARGS = ["train.warmup_steps=100", "train.lr=2e-3", "train.min_lr=2e-4", "train.eval_every=0",
                      "train.save_every=0", "train.log_every=100", "train.eval_tokens=65536"]
# the pooled representation is the mean over the passage's tokens: the masked LM trains every token position but
# never the [CLS] one, so a [CLS] read-out would start from nothing the pre-training taught
BERT_CLASSIFY_ARGS = ["model.pooling=mean", "model.dropout=0.1", "train.eval_every=0", "train.save_every=0",
                      "train.log_every=50", "train.warmup_steps=10"]
# every kind of classifier tries two peak lrs (min lr a tenth of the peak) and keeps the one with the better mean
# validation accuracy over the labelled sets of a fraction; the test rows play no part in the choice
LR_GRID = {
    "pretrained": ("1e-3", "3e-4"),  # fine-tuning every weight
    "lora": ("3e-3", "1e-3"),  # rank 8 on c_attn, c_proj, c_fc; the head trained whole
    "head": ("1e-2", "3e-3"),  # a linear probe: the classifier alone on the frozen pre-trained encoder
    "scratch": ("1e-3", "3e-4"),  # the same model from random initialisation: shape and tokenizer
}
METHOD = {"pretrained": [], "lora": ["finetune.method=lora", "finetune.lora_rank=8",
                                     "finetune.lora_targets=c_attn,c_proj,c_fc"],
          "head": ["finetune.method=head"]}
VAL_PER_GENRE = 60  # passages of each genre carved from the training rows (all four genres have ample: poetry 309)
PASSAGE_CHARS = 320  # about 115 BPE ids: with [CLS], most passages fit the encoder's 128 positions
TEST_PER_GENRE = 290  # every passage of the two held-out poems at this length: a balanced test split of 1160 rows


def tetragen(*args: str) -> tuple[float, str]:
    """Run `python -m tetragen ARGS`; returns (wall seconds, stdout)."""
    cmd = [sys.executable, "-m", "tetragen", *args]
    print("$ tetragen " + " ".join(args), flush=True)
    env = dict(os.environ, TETRAGEN_NO_PROGRESS="1")
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    if r.returncode:
        raise SystemExit(f"tetragen {' '.join(args)}: exit status {r.returncode}")
    return time.perf_counter() - t0, r.stdout


def describe(run: Path) -> str:
    """The model and batch of a run, from its config.json."""
    cfg = json.loads((run / "config.json").read_text())
    m, t = cfg["model"], cfg["train"]
    extra = ", ALiBi" if m.get("alibi") else ""
    return (f"{m['n_layer']} layers/{m['n_head']} heads/{m['n_embd']} dims{extra}, block {m['block_size']}, "
            f"batch {t['batch_size']}, {t['precision']}")


def final_metrics(run: Path) -> dict:
    records = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines() if ln.strip()]
    return [r for r in records if r.get("split") == "val"][-1]


def train(run: Path, family: str, data: Path, *args: str) -> dict:
    wall, _ = tetragen("train", family, "--data", str(data), "--out", str(run), "--no-progress", *args)
    return {"wall_s": wall, **final_metrics(run)}


def finetune(run: Path, base: Path, data: Path, *args: str) -> dict:
    wall, _ = tetragen("finetune", str(base), "--data", str(data), "--out", str(run), "--no-progress", *args)
    return {"wall_s": wall, **final_metrics(run)}


def label_subset(source: Path, dest: Path, fraction: float, seed: int = 0) -> dict[str, int]:
    """A copy of a split-column CSV keeping every test row and `fraction` of the training rows, as many of each label
    as the others (class-balanced, as semi-supervised benchmarks draw their labelled sets; a label with too few rows
    gives all it has), drawn with `seed`; returns the training rows kept per label."""
    with open(source, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        fields, rows = reader.fieldnames, list(reader)
    rng = np.random.default_rng(seed)
    labels = sorted({r["label"] for r in rows})
    pools = {label: [i for i, r in enumerate(rows) if r["split"] == "train" and r["label"] == label]
             for label in labels}
    total = max(len(labels), round(sum(map(len, pools.values())) * fraction))
    keep, kept = set(), {}
    for k, label in enumerate(labels):
        n = min(len(pools[label]), total // len(labels) + (k < total % len(labels)))
        keep.update(pools[label][j] for j in rng.permutation(len(pools[label]))[:n])
        kept[label] = n
    with open(dest, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(r for i, r in enumerate(rows) if r["split"] != "train" or i in keep)
    return kept


def steps(budget: tuple[int, int], quick: bool) -> list[str]:
    """The max_steps override of a budget (a --quick run also shortens the warm-up to fit)."""
    return [f"train.max_steps={budget[1]}", "train.warmup_steps=2"] if quick else [f"train.max_steps={budget[0]}"]


def n_steps(args: list[str]) -> int:
    return int(args[0].split("=")[1])


def gpt_part(tasks: Path, quick: bool) -> dict:
    play = tasks / "heldout" / f"{PLAY}.txt"
    n_pre, n_ft = steps(GPT_PRETRAIN, quick), steps(GPT_FINETUNE, quick)
    pre = WORK / "gpt_pretrain"
    out = {"pretrain": train(pre, "gpt", tasks / "pretrain.txt", *GPT_MODEL, *GPT_PRETRAIN_ARGS, *n_pre)}
    wall, stdout = tetragen("eval", str(pre), "--data", str(play), "--json")
    out["zero_shot"] = {"wall_s": wall, **json.loads(stdout)}
    out["finetune"] = finetune(WORK / "gpt_finetune", pre, play, *GPT_COMMON, *GPT_FINETUNE_ARGS, *n_ft)
    out["lora"] = finetune(WORK / "gpt_lora", pre, play, *GPT_COMMON, *GPT_LORA_ARGS, *n_ft)
    out["scratch"] = train(WORK / "gpt_scratch", "gpt", play, *GPT_MODEL, f"data.tokenizer={pre / 'tokenizer.json'}",
                           *GPT_COMMON, *GPT_SCRATCH_ARGS, *n_ft)
    out["steps"] = {"pretrain": n_steps(n_pre), "finetune": n_steps(n_ft)}
    out["model"] = describe(pre)
    return out


FILL_MASK_CONTEXT = 100  # characters either side of a masked word: with it, at most 128 BPE ids


def fill_mask_sanity(run: Path, text: str, n_words: int = 1000, context: int = FILL_MASK_CONTEXT,
                     seed: int = 0) -> dict:
    """Top-1 fill-mask on held-out text: `n_words` words (3 to 10 letters, after a space, each one BPE id with its
    space) drawn with `seed`, each replaced by [MASK] in `context` characters of text either side, through
    `fill_mask` as a user calls it ("... the [MASK] is dead ...")."""
    import re

    sys.path.insert(0, str(ROOT))
    import tetragen as tg
    pipe = tg.load(str(run))
    tok = pipe.tokenizer
    rng = np.random.default_rng(seed)
    words = [m for m in re.finditer(r"(?<= )[A-Za-z]{3,10}(?![A-Za-z'])", text)
             if m.start() >= context and m.end() + context <= len(text) and len(tok.encode(" " + m.group())) == 1]
    n = min(n_words, len(words))
    right = 0
    for i in rng.choice(len(words), size=n, replace=False):
        m = words[i]
        top = pipe.fill_mask(text[m.start() - context:m.start()] + "[MASK]" + text[m.end():m.end() + context],
                             top_k=1)
        right += top[0][0] == " " + m.group()
    return {"words": n, "top1": right / n}


def lr_args(lr: str) -> list[str]:
    return [f"train.lr={lr}", f"train.min_lr={float(lr) / 10:g}"]


def classify_runs(pre: Path, data: Path, test: Path, tag: str, budget: list[str]) -> dict:
    """Every classifier of one labelled set, each kind at each lr of LR_GRID: from the pre-trained encoder
    (fine-tuned, LoRA, head alone) and from scratch; returns by kind and lr the final validation metrics of each
    run and its accuracy on the test rows (`tetragen eval` on the test file)."""
    out: dict = {}
    for kind, lrs in LR_GRID.items():
        out[kind] = {}
        for lr in lrs:
            run = WORK / f"bert_cls_{kind}_{tag}_lr{lr}"
            if kind == "scratch":
                r = train(run, "bert", data, "--task", "classify", *BERT_MODEL,
                          f"data.tokenizer={pre / 'tokenizer.json'}", *BERT_CLASSIFY_ARGS, *lr_args(lr), *budget)
            else:
                r = finetune(run, pre, data, "--task", "classify", *BERT_CLASSIFY_ARGS, *METHOD[kind], *lr_args(lr),
                             *budget)
            _, stdout = tetragen("eval", str(run), "--data", str(test), "--json")
            out[kind][lr] = {**r, "test_accuracy": json.loads(stdout)["val_accuracy"]}
    return out


def carve_validation(source: Path, trainval: Path, test: Path, per_genre: int, seed: int = 0) -> int:
    """Split genre.csv in two: `trainval` (the training rows, `per_genre` of each label re-marked split=val, drawn
    with `seed`) and `test` (the test rows alone); returns the training rows left."""
    with open(source, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        fields, rows = reader.fieldnames, list(reader)
    rng = np.random.default_rng(seed)
    for label in sorted({r["label"] for r in rows}):
        pool = [r for r in rows if r["split"] == "train" and r["label"] == label]
        for j in rng.permutation(len(pool))[:per_genre]:
            pool[j]["split"] = "val"
    for dest, keep in ((trainval, ("train", "val")), (test, ("test",))):
        with open(dest, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=fields, lineterminator="\n")
            writer.writeheader()
            writer.writerows(r for r in rows if r["split"] in keep)
    return sum(r["split"] == "train" for r in rows)


def reused_pretrain(pre: Path, n_steps_: int) -> dict | None:
    """The final metrics and training wall time of a finished pre-training run kept from an earlier invocation
    (--reuse-pretrain), or None when there is none of the right length. The wall time is read from the run's own
    TensorBoard events: from the writer's start to the last training record."""
    if not (pre / "model.safetensors").is_file():
        return None
    if json.loads((pre / "config.json").read_text())["train"]["max_steps"] != n_steps_:
        return None
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(pre / "tensorboard"))
    events.Reload()
    wall = events.Scalars("train/loss")[-1].wall_time - events.FirstEventTimestamp()
    return {"wall_s": wall, "reused": True, **final_metrics(pre)}


def bert_part(tasks: Path, quick: bool, reuse: bool = False) -> dict:
    n_pre = steps(BERT_PRETRAIN, quick)
    bpe, pre = WORK / "bert_bpe", WORK / "bert_pretrain"
    kept = reused_pretrain(pre, n_steps(n_pre)) if reuse else None
    if kept is None:
        tetragen("tokenizer", "train", "--data", str(tasks / "pretrain.txt"), "--vocab-size", str(BERT_BPE_VOCAB),
                 "--out", str(bpe), "--overwrite")
        kept = train(pre, "bert", tasks / "pretrain.txt", *BERT_MODEL, f"data.tokenizer={bpe}/tokenizer.json",
                     *BERT_PRETRAIN_ARGS, *n_pre, "--overwrite")
    out = {"pretrain": kept}
    out["fill_mask"] = fill_mask_sanity(pre, (tasks / "heldout" / f"{PLAY}.txt").read_text(encoding="utf-8"))
    wall, stdout = tetragen("eval", str(pre), "--data", str(tasks / "heldout" / f"{PLAY}.txt"), "--json")
    out["heldout_mlm"] = json.loads(stdout)
    print(f"fill-mask on {PLAY}: top-1 {out['fill_mask']['top1']:.3f} of masked words; masked-LM accuracy "
          f"{out['heldout_mlm']['val_accuracy']:.3f}", flush=True)
    full, test_file = WORK / "bert_genre_trainval.csv", WORK / "bert_genre_test.csv"
    n_train = carve_validation(tasks / "genre.csv", full, test_file, VAL_PER_GENRE)
    with open(test_file, newline="", encoding="utf-8") as f:
        test = [r["label"] for r in csv.DictReader(f)]
    out["test_rows"] = len(test)
    out["majority"] = max(test.count(g) for g in set(test)) / len(test)
    budget = {frac: steps(BERT_CLASSIFY[frac], quick) for frac in BERT_CLASSIFY}
    out["steps"] = {"pretrain": n_steps(n_pre), **{frac: n_steps(b) for frac, b in budget.items()}}
    out["100%"] = [classify_runs(pre, full, test_file, "100", budget["100%"])]
    out["5%"], kept = [], {}
    for seed in LABEL_SEEDS[:1] if quick else LABEL_SEEDS:
        few = WORK / f"bert_genre_5pct_seed{seed}.csv"
        kept = label_subset(full, few, LABEL_FRACTION, seed=seed)  # the same counts for every seed
        out["5%"].append(classify_runs(pre, few, test_file, f"5_seed{seed}", budget["5%"]))
    out["train_rows"] = {"100%": n_train, "5%": sum(kept.values())}
    out["val_rows"] = VAL_PER_GENRE * 4
    out["model"] = describe(pre)
    return out


def chosen_lr(runs: list[dict], kind: str) -> str:
    """The lr of `kind` with the better mean validation accuracy over the labelled sets `runs`."""
    return max(LR_GRID[kind], key=lambda lr: np.mean([r[kind][lr]["val_accuracy"] for r in runs]))


def accuracies(runs: list[dict], kind: str, lr: str | None = None, metric: str = "test_accuracy") -> list[float]:
    """`metric` of classifier `kind` at `lr` (default: the lr chosen on validation) in each labelled set."""
    lr = lr or chosen_lr(runs, kind)
    return [r[kind][lr][metric] for r in runs]


def gain_summary(pre: list[float], scratch: list[float]) -> str:
    """The mean gain of pre-training; with several draws, each draw's (paired: the same labelled rows)."""
    gains = [p - s for p, s in zip(pre, scratch)]
    if len(gains) == 1:
        return f"{gains[0]:+.3f}"
    return (f"{np.mean(gains):+.3f} ({' / '.join(f'{g:+.3f}' for g in gains)}; positive in "
            f"{sum(g > 0 for g in gains)} of {len(gains)})")


def summary(accs: list[float]) -> str:
    """One accuracy, or the mean ± sample standard deviation of several with each value."""
    if len(accs) == 1:
        return f"{accs[0]:.3f}"
    return f"{np.mean(accs):.3f} ± {np.std(accs, ddof=1):.3f} ({' / '.join(f'{a:.3f}' for a in accs)})"


def report(part: str, r: dict) -> str:
    """The RESULTS.md section of one part, from its saved results (with the header taken when it ended)."""
    title = {"gpt": f"GPT: fine-tuning on one held-out play ({PLAY})",
             "bert": "BERT: genre classification (comedy / history / tragedy / poetry)"}[part]
    lines = [f"## Pre-train -> fine-tune, {title} (`bench/pretrain_finetune.py`)", "", *r["header"],
             f"- data: `tetragen data shakespeare-tasks`: pretrain.txt = the complete works minus 8 held-out works "
             f"(two per genre); wall time of this part {r['part_s'] / 60:.1f} min", ""]
    return "\n".join(lines + (gpt_report(r) if part == "gpt" else bert_report(r)))


def gpt_report(g: dict) -> list[str]:
    ln2 = np.log(2)
    lines = [f"Pre-training: {g['model']}, {' '.join(GPT_PRETRAIN_ARGS[:2])}, {g['steps']['pretrain']} steps on "
             f"pretrain.txt in {g['pretrain']['wall_s']:.0f} s. Each row below then trains "
             f"{g['steps']['finetune']} steps (the same batch) on the first 90% of {PLAY}.txt only; validation is "
             f"its last 10% (full split), never trained on.", "",
             "| model | training on the play | wall time | val loss (nats/char) | bits/char |",
             "|---|---|---:|---:|---:|"]
    rows = [("pre-trained, not fine-tuned", "none", g["zero_shot"]),
            ("pre-trained + full fine-tune", " ".join(GPT_FINETUNE_ARGS), g["finetune"]),
            ("pre-trained + LoRA", " ".join(GPT_LORA_ARGS), g["lora"]),
            ("from scratch (same shape and tokenizer)", " ".join(GPT_SCRATCH_ARGS), g["scratch"])]
    for name, how, r in rows:
        lines.append(f"| {name} | {how} | {r['wall_s']:.0f} s | {r['val_loss']:.4f} | {r['val_loss'] / ln2:.4f} |")
    gain = g["scratch"]["val_loss"] - g["finetune"]["val_loss"]
    return lines + ["", f"Fine-tuned from pre-trained vs from scratch at {g['steps']['finetune']} steps: "
                        f"**{gain:+.4f} nats/char** ({gain / ln2:+.4f} bits/char) in favour of pre-training."]


REUSED = (" (this run was kept from an earlier invocation of the bench, `--reuse-pretrain`, whose classifiers "
          "did not finish; it ran beside other work, and its wall time is read from its TensorBoard events)")
KIND_NAMES = {"pretrained": "fine-tune", "lora": "LoRA", "head": "head alone", "scratch": "from scratch"}


def bert_report(b: dict) -> list[str]:
    choices = "; ".join(
        f"{frac}: " + ", ".join(
            f"{KIND_NAMES[kind]} " + " / ".join(
                f"{lr}{'*' if lr == chosen_lr(b[frac], kind) else ''} "
                f"{np.mean(accuracies(b[frac], kind, lr, 'val_accuracy')):.3f}" for lr in LR_GRID[kind])
            for kind in LR_GRID) for frac in ("100%", "5%"))
    lines = [f"Pre-training: masked LM, {b['model']}, byte-level BPE of {BERT_BPE_VOCAB} ids trained on "
             f"pretrain.txt, {' '.join(BERT_PRETRAIN_ARGS[1:3])}, {b['steps']['pretrain']} steps in "
             f"{b['pretrain']['wall_s']:.0f} s{REUSED if b['pretrain'].get('reused') else ''} (masked-token accuracy "
             f"{b['pretrain']['val_accuracy']:.3f} on its validation split). Classification: passages of {PASSAGE_CHARS} characters (longer than 127 ids with "
             f"[CLS]: cut to the context, as the runs warn); from the rows of the 34 other works a validation split "
             f"of {b['val_rows']} ({VAL_PER_GENRE} per genre, never trained on), and training rows: all the other "
             f"{b['train_rows']['100%']} (100%) or {b['train_rows']['5%']} of them ({100 * LABEL_FRACTION:g}%, the "
             f"same number of each genre, drawn {len(b['5%'])} times with seeds "
             f"{', '.join(map(str, LABEL_SEEDS[:len(b['5%'])]))}: mean ± standard deviation, then each draw); test: "
             f"{b['test_rows']} rows from the 8 held-out works, {TEST_PER_GENRE} per genre, read only to report. "
             f"Classifiers are mean-pooled, dropout 0.1, batch 32, {b['steps']['100%']} steps with 100% of the "
             f"labels and {b['steps']['5%']} with 5%: fine-tuned whole, LoRA (rank 8 on c_attn, c_proj, c_fc; the "
             f"head trained whole), the head alone (`finetune.method=head`, the encoder frozen), and from scratch "
             f"(the same shape and tokenizer). Each tried two peak lrs (min lr a tenth), and the table reports the "
             f"one with the better mean validation accuracy (marked *; mean validation accuracy of each: "
             f"{choices}). Majority-class baseline: **{b['majority']:.3f}**.", "",
             f"Fill-mask sanity on held-out text ({PLAY}, never trained on): {b['fill_mask']['words']} words of "
             f"3-10 letters that are one BPE id with their leading space, each replaced by [MASK] with "
             f"{FILL_MASK_CONTEXT} characters of context either side; `fill_mask` puts the right word first for "
             f"**{b['fill_mask']['top1']:.3f}** of them. Masked-LM accuracy on the play's validation split (its "
             f"last 10%) with the training recipe (15% of ids; `tetragen eval`): "
             f"{b['heldout_mlm']['val_accuracy']:.3f}.", "",
             "| labels | steps | pre-trained + fine-tune | pre-trained + LoRA | pre-trained, head alone | from scratch "
             "| gain (fine-tune vs scratch) | wall time per run (fine-tune / LoRA / head / scratch) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for frac in ("100%", "5%"):
        runs = b[frac]
        pre, scratch = accuracies(runs, "pretrained"), accuracies(runs, "scratch")
        walls = " / ".join(f"{np.mean([r[k][chosen_lr(runs, k)]['wall_s'] for r in runs]):.0f} s" for k in LR_GRID)
        lines.append(f"| {frac} | {b['steps'][frac]} | {summary(pre)} | {summary(accuracies(runs, 'lora'))} | "
                     f"{summary(accuracies(runs, 'head'))} | {summary(scratch)} | "
                     f"{gain_summary(pre, scratch)} | {walls} |")
    return lines


def saved_header(part: str) -> list[str]:
    """The header of results saved without one: dated when the file was written; the load then is unknown."""
    import datetime
    when = datetime.datetime.fromtimestamp((WORK / f"{part}.json").stat().st_mtime).astimezone()
    lines = header(["python", "bench/pretrain_finetune.py", "--only", part])
    return [f"- date: {when.strftime('%Y-%m-%d %H:%M %Z')}"] + [ln for ln in lines[1:] if "load average" not in ln]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: a few steps of every training, nothing written")
    ap.add_argument("--no-write", action="store_true", help="print only; do not touch bench/RESULTS.md")
    ap.add_argument("--only", choices=["gpt", "bert"], help="run one part (each part writes its own section)")
    ap.add_argument("--reuse-pretrain", action="store_true",
                    help="bert: keep a finished pre-training run (same step count) from an earlier invocation")
    ap.add_argument("--write", action="store_true",
                    help="run nothing: write the sections of the parts whose results are saved in bench/_work")
    args = ap.parse_args()
    t0 = time.perf_counter()
    WORK.mkdir(parents=True, exist_ok=True)
    tasks = WORK / "tasks"
    built = json.loads((tasks / "tasks.json").read_text()) if (tasks / "tasks.json").exists() else {}
    if (built.get("passage_chars"), built.get("test_per_genre")) != (PASSAGE_CHARS, TEST_PER_GENRE):
        tetragen("data", "shakespeare-tasks", "--out", str(tasks), "--passage-chars", str(PASSAGE_CHARS),
                 "--test-per-genre", str(TEST_PER_GENRE), "--overwrite")
    results = {}
    for part, run in (("gpt", gpt_part), ("bert", bert_part)):
        if args.only in (None, part) and not args.write:
            keep = {WORK / "bert_bpe", WORK / "bert_pretrain"} if args.reuse_pretrain else set()
            for old in WORK.glob(f"{part}_*"):  # this part's runs from an earlier invocation
                if old not in keep:
                    shutil.rmtree(old) if old.is_dir() else old.unlink()
            start = time.perf_counter()
            results[part] = {**(bert_part(tasks, args.quick, args.reuse_pretrain) if part == "bert"
                                else run(tasks, args.quick)), "part_s": 0.0}
            results[part]["part_s"] = time.perf_counter() - start
            results[part]["header"] = header(["python", "bench/pretrain_finetune.py", "--only", part,
                                              *(["--reuse-pretrain"] if args.reuse_pretrain else [])])
            if not args.quick:
                (WORK / f"{part}.json").write_text(json.dumps(results[part]))
        elif args.write and (WORK / f"{part}.json").exists():
            results[part] = json.loads((WORK / f"{part}.json").read_text())
            results[part].setdefault("header", saved_header(part))
    gpt, bert = results.get("gpt"), results.get("bert")
    if gpt and args.only != "bert":
        print(f"GPT, val loss on {PLAY} (nats/char): pre-trained only {gpt['zero_shot']['val_loss']:.4f}, "
              f"fine-tuned {gpt['finetune']['val_loss']:.4f}, LoRA {gpt['lora']['val_loss']:.4f}, "
              f"scratch {gpt['scratch']['val_loss']:.4f}", flush=True)
    if bert and args.only != "gpt":
        print("BERT test accuracy: " + "; ".join(
            f"{frac} {name} {summary(accuracies(bert[frac], name))}" for frac in ("100%", "5%")
            for name in LR_GRID) + f"; majority {bert['majority']:.3f}", flush=True)
    print(f"total {(time.perf_counter() - t0) / 60:.1f} min", flush=True)
    if args.quick or args.no_write:
        return
    for part, r in results.items():
        write_section(f"pretrain_finetune_{part}", report(part, r))
        print(f"wrote the pretrain_finetune_{part} section of bench/RESULTS.md")


if __name__ == "__main__":
    main()
