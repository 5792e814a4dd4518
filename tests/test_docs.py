"""The documentation cannot rot: README.md and docs/*.md are checked against the code.

1. The generated blocks (`<!-- config:NAME:start -->` ... `end`) equal what tools/gen_config_docs.py writes now.
2. Every `tetragen ...` line of an `sh` code block is run, page by page and in order, as a user would run it, in
   an empty folder of the page's own, with the CLI's in-process entry point (conftest.run_cli). Each must exit 0;
   a line ending in `# fails: TEXT` must fail with exit status 2 and a one-line error containing TEXT.
3. Synopses (`text` blocks, with placeholders such as RUN_DIR and [--flag X]) are not run, but each `--flag` in
   them must belong to their verb and each `section.key` must be a config key. The prose is held to the same: every
   `section.key`, `tetragen VERB`, `--flag` (of a verb, or of a bench/ script) and server route quoted in backticks
   must exist.
4. Every family has a page with its generated block; a `tetragen` line in a block tagged neither `sh` nor `text`
   is an error (so that no command escapes the checks).

Substitutions that make the commands tiny and offline (docs/README.md lists them for readers too):

- Every page runs in an empty temporary folder of its own, so `runs/...`, `grid.png` and the like land there.
- `--data NAME` (a named dataset) or `--data PATH` where no earlier command wrote PATH: synthetic data of the same
  kind, made once per session: a folder of 28x28 grey shapes in 3 classes (conftest.make_image_folder), a play-like
  corpus (conftest.make_corpus), a folder of WAV clips in 3 classes (the sound modality's example), or a
  `text,label` CSV for `.csv`/`.jsonl`. The kind comes from the name (the modality that lists it), the suffix
  (`.txt`: text), or else the command's family (`train FAMILY`, or the run it reads).
- quickstart and bench: `--data image=...`/`text=...`/`sound=...` likewise, and a job without them gets all three.
- `--preset NAME` -> `--preset tiny`; a new `tetragen train` without a preset, quickstart and bench get it too.
- `train.max_steps=N` -> 8; with `--resume`, the run's saved `train.max_steps` + 4 (an extension stays one).
- `--config FILE`: the file from the repository root, followed by `train.max_steps=8 train.warmup_steps=2`.
- `train.budget_minutes=M` -> 0.02. `--budget-minutes M` -> 0.02 (quickstart, the whole job) or 0.01 (bench, each
  family), added to a quickstart without it, with the job's per-family minimum lowered to 0.001 minutes;
  `--eval-n N` -> 20, added when absent.
- `sample`/`reconstruct --n N` -> 8; `eval --n N` -> 20, added when absent; `--iw-samples K` -> 2;
  `--max-new-tokens N` -> 20, added to `generate` when absent; `--class K|NAME` -> `--class 1`.
- `tetragen serve ...`, `tetragen data fetch NAME` and `tetragen data shakespeare-tasks ...` are not run: their
  arguments go through tetragen's own parser; serve's runs must be runs (written earlier on the page), fetch's NAME a
  named dataset.
- `torchrun [...] -m tetragen ARGS` runs `tetragen ARGS` in one process (tests/test_distributed.py covers torchrun).
- `VAR=value` before a command sets that environment variable for it; `python -m tetragen` and `.venv/bin/tetragen`
  are `tetragen`.

A command that runs past COMMAND_LIMIT_S (a job: FAMILY_LIMIT_S per family it trains) is stopped and fails: a
size the substitutions should have made tiny.
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import importlib.util
import io
import json
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .conftest import make_corpus, make_image_folder, run_cli

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
PARSE_ONLY = {("serve",), ("data", "fetch"), ("data", "shakespeare-tasks")}  # need a port, a network, the corpus
SECTIONS = ("model", "train", "data", "finetune")
FILE_SUFFIXES = {"py", "json", "jsonl", "txt", "csv", "md", "yaml", "safetensors", "html", "png", "npz", "lock"}
FOREIGN_FLAGS = {"--nproc-per-node", "--standalone", "--nnodes", "--help"}  # torchrun's, argparse's


def load_generator():
    spec = importlib.util.spec_from_file_location("gen_config_docs", ROOT / "tools" / "gen_config_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------------------------------------------
# reading the pages

@dataclass
class Block:
    lang: str
    start: int                                   # line number of the first line inside the fence
    lines: list[str]


@dataclass
class Command:
    where: str                                   # "README.md:42"
    argv: list[str]                              # after `tetragen`
    env: dict = field(default_factory=dict)
    fails: str | None = None                     # the text a `# fails:` line expects in its error


def split_page(text: str) -> tuple[list[Block], list[str]]:
    """The fenced code blocks of a Markdown page, and its prose lines (blank where a block was)."""
    blocks, prose, current = [], [], None
    for i, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            if current is None:
                current = Block(line[3:].strip(), i + 1, [])
            else:
                blocks.append(current)
                current = None
            prose.append("")
        elif current is not None:
            current.lines.append(line)
            prose.append("")
        else:
            prose.append(line)
    assert current is None, f"an unclosed code block starts at line {current.start - 1}"
    return blocks, prose


def logical_lines(block: Block, indent_continues: bool) -> list[tuple[int, str]]:
    """(line number, text): lines ending in `\\` go on on the next; in a synopsis an indented line does too."""
    out: list[tuple[int, str]] = []
    pending = None
    for offset, line in enumerate(block.lines):
        number = block.start + offset
        if pending is not None:
            out[-1] = (out[-1][0], out[-1][1] + " " + line.strip())
        elif indent_continues and out and line[:1].isspace() and line.strip():
            out[-1] = (out[-1][0], out[-1][1] + " " + line.strip())
        else:
            out.append((number, line.strip()))
        pending = True if out[-1][1].endswith("\\") else None
        if pending:
            out[-1] = (out[-1][0], out[-1][1][:-1].rstrip())
    return out


def tetragen_argv(tokens: list[str]) -> list[str] | None:
    """The arguments after `tetragen` of a shell command, or None when the command is not tetragen's."""
    if not tokens:
        return None
    if tokens[0] in ("tetragen", ".venv/bin/tetragen"):
        return tokens[1:]
    if tokens[0] in ("python", "python3", ".venv/bin/python") and tokens[1:3] == ["-m", "tetragen"]:
        return tokens[3:]
    if tokens[0] == "torchrun" and "-m" in tokens and tokens[tokens.index("-m") + 1:][:1] == ["tetragen"]:
        return tokens[tokens.index("-m") + 2:]
    return None


def split_comment(line: str) -> tuple[str, str]:
    """(the command, its `# comment`): a `#` outside quotes at the start of a word begins the comment."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i], line[i + 1:].strip()
    return line, ""


def parse_command(where: str, line: str) -> Command | None:
    line, comment = split_comment(line)
    tokens = shlex.split(line)
    env = {}
    while tokens and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", tokens[0]):
        key, value = tokens.pop(0).split("=", 1)
        env[key] = value
    argv = tetragen_argv(tokens)
    if argv is None:
        return None
    fails = comment[len("fails:"):].strip() if comment.startswith("fails:") else None
    return Command(where, argv, env, fails)


def commands_of(name: str, text: str) -> tuple[list[Command], list[Command]]:
    """(the commands to run, the synopses to check) of a page."""
    blocks, _ = split_page(text)
    run, synopses = [], []
    for block in blocks:
        if block.lang == "python":
            continue
        for number, line in logical_lines(block, indent_continues=block.lang == "text"):
            if not line or line.startswith("#"):
                continue
            cmd = parse_command(f"{name}:{number}", line)
            if cmd is None:
                continue
            if block.lang == "sh":
                run.append(cmd)
            elif block.lang == "text":
                synopses.append(cmd)
            else:
                raise AssertionError(f"{name}:{number}: a tetragen command in a code block tagged "
                                     f"{block.lang or 'nothing'}; tag the block `sh` (it is run by "
                                     f"tests/test_docs.py) or `text` (a synopsis)")
    return run, synopses


# ---------------------------------------------------------------------------------------------------------------
# what exists: verbs and their flags, config keys, routes

def parsers() -> dict[tuple[str, ...], object]:
    """Every verb's argparse parser: ("train",) -> parser, ("data", "fetch") -> parser, ..."""
    import argparse
    from tetragen.cli.main import build_parser
    out = {}

    def walk(parser, path):
        out[path] = parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, (*path, name))
    walk(build_parser(), ())
    return out


def verb_path(argv: list[str], known: dict) -> tuple[str, ...]:
    path: tuple[str, ...] = ()
    for tok in argv:
        if (*path, tok) in known:
            path = (*path, tok)
        else:
            break
    return path


def config_fields(section: str, family: str | None = None) -> set[str]:
    from tetragen.config import DataConfig, FinetuneConfig, TrainConfig
    from tetragen.registry import get_family, list_families
    if section != "model":
        cls = {"train": TrainConfig, "data": DataConfig, "finetune": FinetuneConfig}[section]
        return {f.name for f in dataclasses.fields(cls)}
    families = [family] if family else list_families()
    return {f.name for name in families for f in dataclasses.fields(get_family(name).config)}


def check_synopsis(cmd: Command, known: dict) -> None:
    from tetragen.registry import list_families
    path = verb_path(cmd.argv, known)
    assert path, f"{cmd.where}: `tetragen {' '.join(cmd.argv)}`: no such verb"
    flags = set(known[path]._option_string_actions)
    family = cmd.argv[1] if path == ("train",) and len(cmd.argv) > 1 and cmd.argv[1] in list_families() else None
    for tok in cmd.argv[len(path):]:
        for piece in re.split(r"[\[\]|]", tok):
            if piece.startswith("--"):
                flag = piece.split("=", 1)[0]
                assert flag in flags, (f"{cmd.where}: `tetragen {' '.join(path)}` has no flag {flag}; it has: "
                                       f"{', '.join(sorted(flags))}")
            m = re.fullmatch(r"(model|train|data|finetune)\.([a-z_0-9]+)=.*", piece)
            if m:
                assert m.group(2) in config_fields(m.group(1), family), \
                    f"{cmd.where}: {m.group(1)}.{m.group(2)} is not a config key"


def check_prose(name: str, text: str, known: dict) -> None:
    """Keys, verbs, flags and routes quoted in backticks outside code blocks."""
    from tetragen.serve.app import served_routes
    routes = served_routes()
    _, prose = split_page(text)
    bench_flags = {f for script in (ROOT / "bench").glob("*.py")
                   for f in re.findall(r"add_argument\(\s*\"(--[a-z0-9-]+)\"", script.read_text(encoding="utf-8"))}
    all_flags = {f for p in known.values() for f in p._option_string_actions} | FOREIGN_FLAGS | bench_flags
    verbs = {path[0] for path in known if path}
    text = "\n".join(prose)
    for match in re.finditer(r"`([^`]+)`", text):  # a span may run over a line break, never over a code block
        span = " ".join(match.group(1).split())
        number = text.count("\n", 0, match.start()) + 1
        where = f"{name}:{number}: `{span}`"
        for section, key in re.findall(r"(?<![\w/.])(model|train|data|finetune)\.([a-z_0-9]+)(?![\w/(])", span):
            if key not in FILE_SUFFIXES:
                assert key in config_fields(section), f"{where}: {section}.{key} is not a config key"
        words = span.split()
        if words[0] == "tetragen" and len(words) > 1 and re.fullmatch(r"[a-z][a-z-]*", words[1]):
            assert words[1] in verbs, f"{where}: tetragen has no verb {words[1]!r}"
            path = verb_path(words[1:], known)
            if len(words) > 2 and not words[2].startswith("-") and words[2].islower() and \
                    any(len(p) == 2 and p[0] == path[0] for p in known):
                assert len(path) == 2, f"{where}: `tetragen {words[1]}` has no {words[2]!r}"
        for flag in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", span):
            assert flag in all_flags, f"{where}: no tetragen verb (nor bench/ script) has the flag {flag}"
        if span.startswith("/v1/") or span in ("/health", "/metrics"):
            assert span in routes, f"{where}: the server has no route {span}; it has: {', '.join(routes)}"


# ---------------------------------------------------------------------------------------------------------------
# running a page

@dataclass
class Data:
    images: Path
    corpus: Path
    rows: Path
    sound: Path

    def of(self, kind: str | None) -> Path | str:
        # video's example is its smallest named set (made here from Fashion-MNIST, at a tiny size)
        return {"text": self.corpus, "sound": self.sound, "video": "moving-fashion-mnist"}.get(kind, self.images)


def make_rows(path: Path) -> Path:
    """A text,label CSV: lines of the synthetic play labelled by who speaks them."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for speech in make_corpus(200, seed=1).split("\n\n"):
            speaker, words = speech.split(":\n", 1)
            w.writerow([words.strip(), "lovers" if speaker in ("ROMEO", "JULIET") else "others"])
    return path


@pytest.fixture(scope="session")
def docs_data(tmp_path_factory) -> Data:
    root = tmp_path_factory.mktemp("docs_data")
    corpus = root / "corpus.txt"
    corpus.write_text(make_corpus(), encoding="utf-8")
    from tetragen.registry import get_modality
    sound = Path(get_modality("sound").example(root / "sound"))
    return Data(make_image_folder(root / "images"), corpus, make_rows(root / "rows.csv"), sound)


def _value(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv and argv.index(flag) + 1 < len(argv) else None


def _family_of(argv: list[str], path: tuple[str, ...], cwd: Path) -> str | None:
    from tetragen.registry import get_family, list_families
    if path == ("train",):
        name = argv[1] if len(argv) > 1 else None
        if name not in list_families():
            return None
        return get_family(name).makes
    if path == ("tokenizer", "train"):
        return "text"
    positional = [a for a in argv[len(path):] if not a.startswith("-")]
    config = cwd / positional[0] / "config.json" if positional else None
    if config is not None and config.is_file():
        doc = json.loads(config.read_text())
        return doc.get("data", {}).get("kind") or get_family(doc["family"]).makes
    return None


def substitute(argv: list[str], cwd: Path, data: Data, known: dict) -> list[str]:
    """The tiny, offline version of a documented command (the rules are at the top of this file)."""
    from tetragen.registry import get_modality, list_modalities
    kind_of_name = {d.name: m for m in list_modalities() for d in get_modality(m).datasets()}
    argv = [piece for tok in argv for piece in (tok.split("=", 1) if tok.startswith("--") and "=" in tok else [tok])]
    path = verb_path(argv, known)
    kind = _family_of(argv, path, cwd)
    job = path in (("quickstart",), ("bench",))
    resume = "--resume" in argv

    def data_for(value: str, kind: str | None) -> str:
        if value not in kind_of_name and (cwd / value).exists():
            return value
        suffix = Path(value).suffix
        if suffix in (".csv", ".jsonl"):
            return str(data.rows)
        if value in kind_of_name:
            return str(data.of(kind_of_name[value]))
        if suffix == ".txt":
            return str(data.corpus)
        return str(data.of(kind))

    def value(flag: str, given: str) -> str:
        if flag == "--data":
            if job:
                source_kind, _, source = given.partition("=")
                return f"{source_kind}={data_for(source, source_kind)}"
            return data_for(given, kind)
        if flag == "--config":
            tail[:] = ["train.max_steps=8", "train.warmup_steps=2"]
            return str(ROOT / given) if (ROOT / given).exists() else given
        if flag == "--budget-minutes":
            return "0.02" if path == ("quickstart",) else "0.01"
        if flag == "--n":
            return "20" if path == ("eval",) else "8"
        return {"--preset": "tiny", "--eval-n": "20", "--iw-samples": "2", "--max-new-tokens": "20",
                "--class": "1"}.get(flag, given)

    def override(tok: str) -> str:
        if tok.startswith("train.max_steps="):
            steps = 8
            run = cwd / (_value(argv, "--out") or "") / "config.json"
            if resume and run.is_file():
                steps = json.loads(run.read_text())["train"]["max_steps"] + 4
            return f"train.max_steps={steps}"
        if tok.startswith("train.budget_minutes="):
            return "train.budget_minutes=0.02"
        return tok

    rewritten = {"--data", "--config", "--budget-minutes", "--n", "--preset", "--eval-n", "--iw-samples",
                 "--max-new-tokens", "--class"}
    out: list[str] = []
    tail: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] in rewritten and i + 1 < len(argv):
            out += [argv[i], value(argv[i], argv[i + 1])]
            i += 2
        else:
            out.append(override(argv[i]))
            i += 1
    if path == ("train",) and "--preset" not in out and not resume:
        out += ["--preset", "tiny"]
    if path == ("eval",) and "--n" not in out:
        out += ["--n", "20"]
    if path == ("generate",) and "--max-new-tokens" not in out:
        out += ["--max-new-tokens", "20"]
    if job:
        if "--budget-minutes" not in out:
            out += ["--budget-minutes", "0.02"]
        if "--preset" not in out:
            out += ["--preset", "tiny"]
        if "--eval-n" not in out:
            out += ["--eval-n", "20"]
        given = {_value(out[j:], "--data").partition("=")[0] for j, t in enumerate(out) if t == "--data"}
        for source_kind, source in (("image", data.images), ("text", data.corpus), ("sound", data.sound)):
            if source_kind not in given:
                out += ["--data", f"{source_kind}={source}"]
    return out + tail


@contextlib.contextmanager
def _in(cwd: Path):
    saved = os.getcwd()
    os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(saved)


COMMAND_LIMIT_S = 60  # a tiny command takes seconds; longer means the substitutions missed a size
FAMILY_LIMIT_S = 12   # a job (quickstart, bench) trains many tiny runs: this much for each family it trains


def limit_s(path: tuple[str, ...], argv: list[str]) -> int:
    """How long a command may run: COMMAND_LIMIT_S, or for a job FAMILY_LIMIT_S per family it trains (at least
    COMMAND_LIMIT_S)."""
    if path not in (("quickstart",), ("bench",)):
        return COMMAND_LIMIT_S
    from tetragen.jobs.showcase import choose_families
    named = argv[argv.index("--families") + 1].split(",") if "--families" in argv else None
    return max(COMMAND_LIMIT_S, FAMILY_LIMIT_S * len(choose_families(named, default_only=path == ("quickstart",))))


@contextlib.contextmanager
def watchdog(what: str, seconds: int = COMMAND_LIMIT_S):
    """Stop a command that runs past `seconds` (SIGALRM raises inside it; run_cli reports it as a failure)."""
    import signal
    import threading
    if not hasattr(signal, "SIGALRM") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise TimeoutError(f"{what} ran past {seconds} s: a size the substitutions should make tiny?")
    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def parse_only(cmd: Command, argv: list[str], path: tuple[str, ...], cwd: Path) -> None:
    """The checks of a command that is not run: tetragen's parser takes it, and what it names exists."""
    from tetragen.cli.main import build_parser
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            args, extra = build_parser().parse_known_args(argv)
    except SystemExit:
        raise AssertionError(f"{cmd.where}: `tetragen {' '.join(cmd.argv)}`: {err.getvalue().strip()}") from None
    assert not extra, f"{cmd.where}: `tetragen {' '.join(cmd.argv)}`: unrecognized arguments {' '.join(extra)}"
    if path == ("serve",):
        from tetragen import api
        from tetragen.cli.serve import parse_runs
        with _in(cwd):
            for name, run in parse_runs(args.runs).items():
                assert (cwd / run / "config.json").is_file(), \
                    f"{cmd.where}: serves {run}, which no earlier command on the page wrote"
                api.read_run_config(cwd / run)
    if path == ("data", "fetch"):
        from tetragen.data.catalog import named_datasets
        assert args.name in named_datasets(), f"{cmd.where}: {args.name} is not a named dataset"


def run_page(name: str, text: str, cwd: Path, data: Data) -> list[tuple[str, float]]:
    """Check a page's synopses, then run its commands in order; raises AssertionError naming the first command that
    does not do what the page says. Returns (command, seconds) of each command run."""
    import time
    known = parsers()
    run, synopses = commands_of(name, text)
    for cmd in synopses:
        check_synopsis(cmd, known)
    timings = []
    for cmd in run:
        path = verb_path(cmd.argv, known)
        assert path, f"{cmd.where}: `tetragen {' '.join(cmd.argv)}`: tetragen has no such verb"
        argv = substitute(cmd.argv, cwd, data, known)
        if path in PARSE_ONLY:
            parse_only(cmd, argv, path, cwd)
            continue
        t0 = time.perf_counter()
        with watchdog(f"{cmd.where}: `tetragen {' '.join(cmd.argv)}` (run as `tetragen {' '.join(argv)}`)",
                      limit_s(path, argv)):
            r = run_cli(*argv, cwd=cwd, env=cmd.env)
        timings.append((f"{cmd.where} tetragen {' '.join(cmd.argv)}", time.perf_counter() - t0))
        shown = f"{cmd.where}: `tetragen {' '.join(cmd.argv)}` (run as `tetragen {' '.join(argv)}`)"
        if cmd.fails is None:
            assert r.returncode == 0, f"{shown} exited {r.returncode}:\n{r.stderr[-3000:]}"
        else:
            assert r.returncode == 2, f"{shown} should fail with a one-line error (`# fails:`) but exited " \
                                      f"{r.returncode}:\n{r.stderr[-3000:]}"
            lines = r.stderr.strip().splitlines()
            assert len(lines) == 1 and "Traceback" not in r.stderr, f"{shown}: not a one-line error:\n{r.stderr}"
            assert cmd.fails in lines[0], f"{shown}: the error does not say {cmd.fails!r}: {lines[0]}"
    return timings


# ---------------------------------------------------------------------------------------------------------------
# the tests

def test_generated_blocks_are_current():
    stale = load_generator().outdated(ROOT)
    assert not stale, (f"{', '.join(str(p.relative_to(ROOT)) for p in stale)}: the generated config tables differ "
                       f"from the code; run `python tools/gen_config_docs.py` and commit the result")


def test_every_family_has_a_page_with_its_generated_block():
    from tetragen.registry import list_families
    for name in list_families():
        page = DOCS / f"{name}.md"
        assert page.is_file(), (f"the {name} family has no page: write docs/{name}.md (see docs/gpt.md) with a "
                                f"`<!-- config:{name}:start -->` / `end` block, then run "
                                f"`python tools/gen_config_docs.py`")
        assert f"<!-- config:{name}:start -->" in page.read_text(encoding="utf-8"), \
            f"docs/{name}.md: no `<!-- config:{name}:start -->` block for its generated keys and presets"
        assert f"docs/{name}.md" in (ROOT / "README.md").read_text(encoding="utf-8"), \
            f"README.md does not link docs/{name}.md"


IDS = [str(p.relative_to(ROOT)) for p in PAGES]


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_prose_names_only_keys_verbs_flags_and_routes_that_exist(page):
    check_prose(str(page.relative_to(ROOT)), page.read_text(encoding="utf-8"), parsers())


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_every_command_of_the_page_runs(page, docs_data, tmp_path, monkeypatch):
    from tetragen.jobs import showcase
    monkeypatch.setattr(showcase, "MIN_MINUTES_PER_FAMILY", 0.001)
    from tetragen.modalities.video import moving  # the clip set at a tiny size, made in this session's cache
    monkeypatch.setitem(moving.VARIANTS, "moving-fashion-mnist", moving.Variant("moving-fashion-mnist", 32, 400, 80))
    cwd = tmp_path / "work"
    cwd.mkdir()
    run_page(str(page.relative_to(ROOT)), page.read_text(encoding="utf-8"), cwd, docs_data)


def test_a_changed_flag_or_key_in_a_page_fails_it(docs_data, tmp_path):
    """The checks can fail: a copy of gpt.md with a flag renamed, a copy with a key renamed, a synopsis with a flag
    its verb lacks, and a `# fails:` line that succeeds are each caught, naming the line."""
    page = (DOCS / "gpt.md").read_text(encoding="utf-8")
    assert "--max-new-tokens" in page and "train.lr=1e-3" in page
    for n, (old, new) in enumerate([("--max-new-tokens", "--max-new-tokenz"), ("--preset fast", "--preset fast "
                                                                             "train.learning_rate=1")]):
        broken = page.replace(old, new, 1)
        cwd = tmp_path / f"copy{n}"
        cwd.mkdir()
        with pytest.raises(AssertionError, match=re.escape(new.split()[-1])) as e:
            run_page("gpt.md (altered)", broken, cwd, docs_data)
        assert "gpt.md (altered):" in str(e.value)
    synopsis = "```text\ntetragen generate RUN_DIR [--temperature 0.8] [--top-q Q]\n```\n"
    with pytest.raises(AssertionError, match="has no flag --top-q"):
        run_page("synopsis.md", synopsis, tmp_path, docs_data)
    quiet = "```sh\ntetragen ls    # fails: unknown\n```\n"
    with pytest.raises(AssertionError, match="should fail"):
        run_page("fails.md", quiet, tmp_path, docs_data)
    untagged = "```\ntetragen ls\n```\n"
    with pytest.raises(AssertionError, match="tag the block"):
        run_page("untagged.md", untagged, tmp_path, docs_data)
    with pytest.raises(AssertionError, match="train.learning_rate is not a config key"):
        check_prose("prose.md", "Set `train.learning_rate=1e-3`.\n", parsers())
