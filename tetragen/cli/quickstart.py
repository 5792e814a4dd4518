"""`tetragen quickstart`: one model of each family trained on built-in data within one time budget, each evaluated
with `tetragen eval` and asked what it learnt, all in one report (tetragen/jobs/).

Ctrl-C stops the family in training after a checkpoint; the same command again resumes it and skips the families
that finished.
"""
from __future__ import annotations

import shlex
import sys
from pathlib import Path

from ..errors import Interrupted, UserError
from ..jobs.report import headline, servable, write_report
from ..jobs.showcase import EVAL_N, Job, choose_families, machine
from ..registry import get_modality, list_modalities

REPORT = "report.html"


def add_parser(sub) -> None:
    p = sub.add_parser("quickstart", help="train one model of every family within a time budget and write a report")
    p.add_argument("--budget-minutes", type=float, default=15.0,
                   help="the whole job's time budget (default 15); each family gets a share of it")
    add_job_arguments(p, "the quickstart's own set", "runs/quickstart")
    p.set_defaults(run=run)


def add_job_arguments(p, default_families: str, default_out: str) -> None:
    """The flags the quickstart and the bench share."""
    p.add_argument("--families", default=None,
                   help=f"comma-separated families (default: {default_families}; components are added)")
    p.add_argument("--data", action="append", default=[], metavar="KIND=SOURCE",
                   help="train every family that makes a kind of content on SOURCE instead of its built-in data, "
                        "e.g. " + " or ".join(get_modality(m).data_help for m in list_modalities()
                                               if get_modality(m).data_help) + " (repeatable)")
    p.add_argument("--preset", default=None, help="every family's preset (default: each family's showcase preset)")
    p.add_argument("--eval-n", type=int, default=EVAL_N, help=f"generative runs: samples scored by the evaluator (default {EVAL_N})")
    p.add_argument("--out", default=default_out, help=f"the job's folder (default {default_out})")
    p.add_argument("--seed", type=int, default=1337, help="seed of every run (default 1337)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def parse_data(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        kind, sep, source = item.partition("=")
        if not sep or kind not in list_modalities() or not source:
            raise UserError(f"--data {item}: give KIND=SOURCE with KIND one of {', '.join(list_modalities())}, "
                            f"e.g. image=./my-images")
        out[kind] = source
    return out


def parse_families(raw: str | None) -> list[str] | None:
    return None if raw is None else [n.strip() for n in raw.split(",") if n.strip()]


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def progress_line(families: list[str]):
    def on_start(i: int, name: str, elapsed: float, left: float) -> None:
        print(f"\n[{i + 1}/{len(families)}] {name}  ·  job elapsed {_clock(elapsed)}  ·  ETA of the job "
              f"{_clock(left)}", file=sys.stderr, flush=True)
    return on_start


def run(args) -> int:
    families = choose_families(parse_families(args.families), default_only=True)
    out = Path(args.out)
    job = Job("quickstart", out, budget_minutes=args.budget_minutes, families=families, seed=args.seed,
              data=parse_data(args.data), preset=args.preset, eval_n=args.eval_n, progress=not args.no_progress)
    print(f"tetragen quickstart: {', '.join(families)} in {args.budget_minutes:g} minutes -> {out}/",
          file=sys.stderr)
    try:
        results = job.run(on_start=progress_line(families))
    except Interrupted as e:
        raise Interrupted(e.signum, f"{e}; or run the same `tetragen quickstart` again: it resumes this family "
                                    f"and skips the finished ones") from None
    report = write_report(out / REPORT, "tetragen quickstart", results, out, machine=machine(),
                          intro=f"One model of each family, trained on this machine within a budget of "
                                f"{args.budget_minutes:g} minutes.")
    print()
    for r in results:
        key, value = headline(r)
        print(f"{r.name:8s} {key} {value:.4f}  ({r.steps} steps, {r.train_s / 60:.1f} min, {r.budget_used:.0%} of its "
              f"budget)")
    print(f"\nreport: {report}")
    print("serve:  tetragen serve " + " ".join(shlex.quote(r.run) for r in servable(results)))
    return 0
