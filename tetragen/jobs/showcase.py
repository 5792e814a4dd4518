"""A job that trains several families for shares of one time budget on built-in data, evaluates each with
`tetragen eval` and asks each what it learnt: `tetragen quickstart` and `tetragen bench` are such jobs.

Each family says how it is shown in its own registration (`register_showcase`: data, weight, preset, prompts,
components), apart from its model contract. The
job gives a family its weight's share of the time still left (so one that ends early leaves more to the next) and
trains it with `train.budget_minutes`, which plans the step count so the schedule ends in time. A family built from
another run (a prior over an image tokenizer) gets its component trained first, as a family of the job.

The job folder holds one run folder per family, `job.json` (what the job is, and the result of each family as it
finishes) and what the report shows (`show/FAMILY/`). A re-run with the same folder skips the families that
finished, resumes the one that was interrupted (its checkpoint and its budget plan) and trains the rest.
"""
from __future__ import annotations

import json
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import api, files
from ..errors import UserError
from ..registry import get_family, get_showcase, list_showcases, run_modality, showcase_family

JOB_FILE = "job.json"
SHOW_DIR = "show"
MIN_MINUTES_PER_FAMILY, MAX_BUDGET_MINUTES = 0.1, 1440.0
EVAL_N = 2000  # image runs: samples scored with FID/KID after training (as `tetragen eval --n 2000`)
EVAL_IW = 10  # importance samples per test image for likelihood bounds (as `tetragen eval --iw-samples 10`)
EVAL_TOKENS = 131072  # text runs: validation tokens scored after training (as `tetragen eval --eval-tokens`)


@dataclass
class Result:
    """What one family's part of the job left: its run, timings, metrics, what it was asked and answered."""
    family: str
    run: str
    data: str
    preset: str
    overrides: list[str]
    budget_minutes: float
    train_s: float = 0.0
    eval_s: float = 0.0
    steps: int = 0
    params: int = 0
    precision: str = ""
    budget_used: float = 0.0  # the share of its training budget the run used (its last "budget" record)
    kind: str = ""  # the kind of content the run made (its data's); "": what its family makes
    showcase: str = ""  # the name the job lists it under ("": the family's)

    @property
    def name(self) -> str:
        return self.showcase or self.family
    metrics: dict = field(default_factory=dict)
    eval_lines: list[str] = field(default_factory=list)
    # what it was asked and answered, as its modality's `show` made it (files under show/FAMILY/)
    shown: list[dict] = field(default_factory=list)
    per_s: dict = field(default_factory=dict)  # {"unit": ..., "value": ...}: generation speed, measured here

    @classmethod
    def of(cls, doc: dict) -> "Result":
        """A result from job.json; fields this tetragen does not know (an older job's) are left out."""
        return cls(**{k: v for k, v in doc.items() if k in cls.__dataclass_fields__})


def check_budget(minutes: float, families: int, *, each: bool) -> float:
    """A job's budget: at least MIN_MINUTES_PER_FAMILY for each family, at most a day."""
    low = MIN_MINUTES_PER_FAMILY * (1 if each else families)
    if not (low <= minutes <= MAX_BUDGET_MINUTES):  # also refuses nan
        what = "each family's budget" if each else f"the whole job's budget, shared by {families} families"
        raise UserError(f"--budget-minutes {minutes:g}: give between {low:g} and {MAX_BUDGET_MINUTES:g} minutes "
                        f"({what})")
    return minutes


def choose_families(asked: list[str] | None, *, default_only: bool) -> list[str]:
    """The families of a job in training order: `asked` (every family with a showcase when None and not
    `default_only`; the quickstart's own set when `default_only`), each preceded by the families its components
    come from."""
    shown = list_showcases()
    if asked is None:
        asked = [n for n in shown if get_showcase(n).quickstart or not default_only]
    for name in asked:
        if name not in shown:
            raise UserError(f"--families: unknown family {name!r}; the families are: {', '.join(shown)}")
    chosen: list[str] = []

    def add(name: str) -> None:
        for component in get_showcase(name).components.values():
            add(component)
        if name not in chosen:
            chosen.append(name)
    for name in asked:
        add(name)
    order = {n: (get_showcase(n).order, n) for n in chosen}
    # components stay before what is built from them: their order is lower by construction of the records
    return sorted(chosen, key=lambda n: order[n])


def pick_data(names: tuple[str, ...], override: str | None) -> str:
    """The data of a family's run: `override` (the job's --data for its kind of content) or the first named
    dataset at hand, else the last one named (its loader fetches it, or says in one line how to get it)."""
    if override:
        return override
    from ..data.catalog import at_hand
    for name in names:
        if at_hand(name):
            return name
    return names[-1]


class Job:
    """One quickstart or bench: the folder `out`, its families, its budget; `run()` trains what is not done."""

    def __init__(self, kind: str, out: str | Path, *, budget_minutes: float, families: list[str],
                 seed: int = 1337, data: dict[str, str] | None = None, preset: str | None = None,
                 each: bool = False, eval_n: int = EVAL_N, progress: bool = True):
        """`each`: every family gets the whole budget (a bench) rather than a share of it (the quickstart).
        `data`: a modality's name -> the source every family that makes it trains on instead of its own.
        `preset`: every family's preset instead of its showcase's."""
        self.kind, self.out, self.seed, self.each = kind, Path(out), seed, each
        self.budget_minutes = check_budget(budget_minutes, len(families), each=each)
        self.families, self.data, self.preset, self.progress = families, data or {}, preset, progress
        from ..eval.image import check_n
        check_n(eval_n, "--eval-n")
        self.eval_n = eval_n
        self.state = self._open()

    # -- the folder -----------------------------------------------------------------------------------------------
    def _open(self) -> dict:
        path = self.out / JOB_FILE
        if path.is_file():
            try:
                state = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as e:
                raise UserError(f"{path}: unreadable ({e}); move the folder away or choose another --out") from None
            if state.get("job") != self.kind:
                raise UserError(f"--out {self.out}: it holds a tetragen {state.get('job')}, not a {self.kind}; "
                                f"choose another --out")
            if state.get("seed") != self.seed:
                raise UserError(f"--out {self.out}: the {self.kind} there ran with --seed {state.get('seed')}; "
                                f"re-run with that seed to resume it, or choose another --out")
            return state
        if self.out.exists() and (not self.out.is_dir() or any(self.out.iterdir())):
            raise UserError(f"--out {self.out}: the folder holds something other than an earlier tetragen "
                            f"{self.kind}; choose another --out (nothing there was touched)")
        return {"job": self.kind, "seed": self.seed, "results": {}, "spent_s": {}}

    def _save(self) -> None:
        self.state.update(budget_minutes=self.budget_minutes, families=self.families, machine=machine())
        try:
            files.write_text(self.out / JOB_FILE, json.dumps(self.state, indent=1) + "\n")
        except OSError as e:
            raise UserError(f"--out {self.out}: cannot write {JOB_FILE} ({e.strerror or e}); free space and re-run "
                            f"the same command: finished families are kept") from None

    def result(self, family: str) -> Result | None:
        r = self.state["results"].get(family)
        return Result.of(r) if r else None

    # -- running ----------------------------------------------------------------------------------------------------
    def run(self, on_start=None) -> list[Result]:
        """Train, evaluate and show each family not yet done; returns every family's result in order.
        `on_start(index, family, elapsed_s, eta_s)` is called before each family (the overall progress)."""
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"--out {self.out}: cannot create the folder ({e.strerror or e})") from None
        self._save()
        t0 = time.perf_counter()
        before = sum(self.state["spent_s"].values())  # an interrupted job's earlier time counts against its budget
        for i, name in enumerate(self.families):
            if name in self.state["results"]:
                continue
            elapsed = before + time.perf_counter() - t0
            left = max(0.0, 60 * self.budget_minutes - elapsed)
            todo = [n for n in self.families[i:] if n not in self.state["results"]]
            weights = {n: get_showcase(n).weight for n in todo}
            share = 60 * self.budget_minutes if self.each else left * weights[name] / sum(weights.values())
            if on_start is not None:  # a bench's families each take the whole budget
                on_start(i, name, elapsed, 60 * self.budget_minutes * len(todo) if self.each else left)
            start = time.perf_counter()
            try:
                result = self._one(name, share)
            finally:
                self.state["spent_s"][name] = self.state["spent_s"].get(name, 0.0) + time.perf_counter() - start
                self._save()
            self.state["results"][name] = result.__dict__
            self._save()
        return [self.result(n) for n in self.families]

    def _one(self, name: str, share_s: float) -> Result:
        show = get_showcase(name)
        fam = get_family(showcase_family(name))
        run = self.out / name
        done = [Result.of(r) for r in self.state["results"].values()]
        past = [(get_showcase(r.name).weight, self.state["spent_s"].get(r.name, 0.0) - r.train_s) for r in done]
        if self.each:  # its own budget: the most that one done so far took past its training (a fifth before any)
            overhead = max((s for _, s in past), default=0.2 * share_s)
        else:
            overhead = reserve_s(show.weight, past, sum(get_showcase(n).weight for n in self.families),
                                 60 * self.budget_minutes)
        train_min = max(60 * MIN_MINUTES_PER_FAMILY, share_s - overhead) / 60
        # evaluations while it trains draw no more samples than the job's own at the end (--eval-n)
        overrides = [*(capped_eval(o, self.eval_n) for o in show.overrides), f"train.seed={self.seed}"]
        for key, component in show.components.items():
            overrides.append(f"{key}={(self.out / component).resolve()}")
        data = pick_data(show.data, self.data.get(show.kind or fam.makes))
        preset = self.preset or show.preset or fam.default_preset
        # a resumed family keeps the budget it planned with; a fresh one gets its share now
        cfg_file = run / "config.json"
        resuming = cfg_file.is_file() and bool(files.step_dirs(run))
        if resuming:
            train_min = json.loads(cfg_file.read_text(encoding="utf-8"))["train"].get("budget_minutes", train_min)
        result = Result(family=fam.name, run=str(run), data=data, preset=preset, overrides=overrides,
                        budget_minutes=round(train_min, 3), showcase=name if name != fam.name else "")
        t0 = time.perf_counter()
        api.train(fam.name, data, run, preset=preset, overrides=[*overrides, f"train.budget_minutes={train_min:.3f}"],
                  resume=resuming, overwrite=not resuming and run.exists(), progress=self.progress)
        result.train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        result.metrics, result.eval_lines = api.evaluate(run, n=self.eval_n, seed=0, iw_samples=EVAL_IW,
                                                         eval_tokens=EVAL_TOKENS)
        result.eval_s = time.perf_counter() - t0
        pipe = api.load(run)
        records = read_metrics(run)
        # the last evaluation is at the last step, also when the budget's hard stop ends the run
        result.steps = max((r["step"] for r in records if r.get("split") == "val"), default=0)
        result.params = sum(p.numel() for p in pipe.model.parameters())
        result.precision = next((r.get("precision", "") for r in reversed(records) if r.get("split") == "train"), "")
        result.budget_used = next((r["budget_used"] for r in reversed(records)
                                   if r.get("split") == "budget" and "budget_used" in r), 0.0)
        result.kind = run_modality(pipe.config).name
        show_what_it_learnt(pipe, show.prompts, self.out / SHOW_DIR / name, result, data)
        return result


def reserve_s(weight: float, past: list[tuple[float, float]], total_weight: float, budget_s: float) -> float:
    """What a family of `weight` keeps of its share for evaluating and showing it: its weight times the seconds per
    unit of weight that the families done so far took past their training (`past`: weight, seconds), those figures
    counted beside a prior of a fifth of the budget for the whole job's weight. Evaluations differ by far (seconds
    for most, as long as the training for some), so what one family took does not say what the next will; what a
    family leaves unused, or takes beyond its reserve, the families after it share by weight."""
    return weight * (0.2 * budget_s + sum(s for _, s in past)) / (total_weight + sum(w for w, _ in past))


def capped_eval(override: str, eval_n: int) -> str:
    """A showcase's `train.eval_samples=N` as at most `eval_n`; any other override as it is."""
    key, _, value = override.partition("=")
    return f"{key}={eval_n}" if key == "train.eval_samples" and value.isdigit() and int(value) > eval_n else override


def read_metrics(run: Path) -> list[dict]:
    """The records of a run's metrics.jsonl (a torn last line, from a kill, is left out)."""
    out = []
    path = Path(run) / "metrics.jsonl"
    if path.is_file():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def show_what_it_learnt(pipe, prompts: tuple[str, ...], folder: Path, result: Result, data: str) -> None:
    """Ask a trained run what its kind of content lets it answer (its modality's `show`), keeping the answers in
    `result` and their files in `folder`; the speed of generation is measured there too."""
    folder.mkdir(parents=True, exist_ok=True)
    result.shown, result.per_s = run_modality(pipe.config).show(pipe, prompts, folder, data)


def machine() -> dict:
    """What the job ran on: CPU model and the flags that decide precision, cores, versions."""
    import os

    import torch
    model, flags = "", []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and not model:
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                flags = sorted(have & {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"})
                break
    except OSError:
        pass
    return {"cpu": model or platform.processor() or platform.machine(), "cpu_flags": flags, "cores": os.cpu_count(),
            "torch": torch.__version__, "python": sys.version.split()[0], "platform": platform.platform()}
