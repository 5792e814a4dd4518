"""`tetragen bench`: every chosen family trained for the same budget on the same data, evaluated with `tetragen
eval`, and ranked in one leaderboard per kind of content (image families, text families, ...): bench.md, bench.json, bench.html."""
from __future__ import annotations

import platform
import sys
from pathlib import Path

from ..errors import Interrupted
from ..jobs.leaderboard import write_bench
from ..jobs.report import write_report
from ..jobs.showcase import Job, choose_families, machine
from .quickstart import add_job_arguments, parse_data, parse_families, progress_line


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="train every chosen family for the same budget and rank them")
    p.add_argument("--budget-minutes", type=float, required=True, help="minutes of training for each family")
    add_job_arguments(p, "every family with a built-in showcase", "runs/bench")
    p.set_defaults(run=run)


def run(args) -> int:
    families = choose_families(parse_families(args.families), default_only=False)
    out = Path(args.out)
    job = Job("bench", out, budget_minutes=args.budget_minutes, families=families, seed=args.seed,
              data=parse_data(args.data), preset=args.preset, each=True, eval_n=args.eval_n,
              progress=not args.no_progress)
    print(f"tetragen bench: {', '.join(families)}, {args.budget_minutes:g} minutes each -> {out}/", file=sys.stderr)
    try:
        results = job.run(on_start=progress_line(families))
    except Interrupted as e:
        raise Interrupted(e.signum, f"{e}; or run the same `tetragen bench` again: it resumes") from None
    meta = {"budget_minutes": args.budget_minutes, "seed": args.seed, "families": families,
            "machine": machine(), "python": platform.python_version(), "eval_n": args.eval_n,
            "precision": {r.name: r.precision for r in results}}
    paths = write_bench(out, results, meta)
    write_report(out / "report.html", "tetragen bench", results, out, machine=meta["machine"],
                 intro=f"Every family trained for {args.budget_minutes:g} minutes on this machine.")
    print(paths[0].read_text(encoding="utf-8"))
    print("wrote " + ", ".join(map(str, paths)) + f" and {out / 'report.html'}")
    return 0
