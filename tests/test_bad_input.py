"""Bad input through the real entry point: one-line error naming the file or key, non-zero exit, no traceback, and
nothing already on disk changed."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from .conftest import make_corpus, run_cli

TINY = ["--preset", "tiny", "train.eval_tokens=256"]


def assert_user_error(r, *needles: str) -> str:
    """The command failed with exactly one line on stderr that contains every needle, and no traceback."""
    assert r.returncode != 0, f"expected a failure, got rc 0\nstdout: {r.stdout}\nstderr: {r.stderr}"
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{r.stderr}"
    line = lines[0]
    assert line.startswith("tetragen: error: "), line
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    return line


def snapshot(folder: Path) -> dict:
    """Every file under `folder` with its bytes' digest and mtime; equal snapshots mean nothing was touched."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        if p.is_file():
            st = p.stat()
            out[rel] = (hashlib.sha256(p.read_bytes()).hexdigest(), st.st_size, st.st_mtime_ns)
        else:
            out[rel] = "dir"
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny finished run (checkpoints at steps 2 and 4) that tests copy before using."""
    base = tmp_path_factory.mktemp("trained")
    corpus = base / "corpus.txt"
    corpus.write_text(make_corpus(), encoding="utf-8")
    env = {"TETRAGEN_CACHE": str(tmp_path_factory.getbasetemp() / "cache"), "TETRAGEN_NO_PROGRESS": "1"}
    r = run_cli("train", "gpt", "--data", str(corpus), "--out", str(base / "run"), *TINY, "train.max_steps=4",
                "train.warmup_steps=1", "train.save_every=2", "train.eval_every=0", env=env)
    assert r.returncode == 0, r.stderr
    assert (base / "run" / "checkpoints" / "step_00000004").is_dir()
    return base / "run"


@pytest.fixture
def run(trained, tmp_path) -> Path:
    dest = tmp_path / "run"
    shutil.copytree(trained, dest)  # copy2 keeps mtimes, so snapshots compare like for like
    return dest


@pytest.fixture
def bad_files(tmp_path) -> dict[str, Path]:
    files = {
        "empty": tmp_path / "empty.txt",
        "binary": tmp_path / "binary.txt",
        "latin1": tmp_path / "latin1.txt",
        "short": tmp_path / "short.txt",
    }
    files["empty"].write_bytes(b"")
    files["binary"].write_bytes(b"ROMEO: hello\x00\x01\x02 there\n" * 20)
    files["latin1"].write_bytes("ROMEO: caf\u00e9 cr\u00e8me\n".encode("latin-1") * 20)
    files["short"].write_text("ROMEO: too short\n", encoding="utf-8")
    return files


# ----------------------------------------------------------------------------------------------------------------
# data

DATA_CASES = {
    "missing": ("missing.txt", ["missing.txt", "no such file"]),
    "empty": ("empty", ["empty.txt", "empty"]),
    "binary": ("binary", ["binary.txt", "binary", "NUL"]),
    "non-utf8": ("latin1", ["latin1.txt", "not UTF-8", "at byte 10", "iconv"]),
    "shorter-than-context": ("short", ["short.txt", "model.block_size", "32"]),
    "unknown-dataset": ("nosuchdataset", ["nosuchdataset", "unknown dataset", "tinyshakespeare"]),
}


def _data_arg(key: str, bad_files: dict, tmp_path: Path) -> str:
    if key in bad_files:
        return str(bad_files[key])
    if key.endswith(".txt"):
        return str(tmp_path / key)
    return key


@pytest.mark.parametrize("case", sorted(DATA_CASES))
def test_bad_data_new_run(case, bad_files, tmp_path):
    key, needles = DATA_CASES[case]
    out = tmp_path / "out"
    r = run_cli("train", "gpt", "--data", _data_arg(key, bad_files, tmp_path), "--out", str(out), *TINY)
    assert_user_error(r, *needles)
    assert not out.exists()  # nothing written for a run that never started


@pytest.mark.parametrize("case", ["empty", "non-utf8", "shorter-than-context", "unknown-dataset"])
def test_bad_data_overwrite_keeps_run(case, bad_files, run, tmp_path):
    key, needles = DATA_CASES[case]
    before = snapshot(run)
    r = run_cli("train", "gpt", "--data", _data_arg(key, bad_files, tmp_path), "--out", str(run), "--overwrite",
                *TINY)
    assert_user_error(r, *needles)
    assert snapshot(run) == before


def test_folder_without_txt_files(tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "readme.md").write_text("no text files here")
    r = run_cli("train", "gpt", "--data", str(folder), "--out", str(tmp_path / "out"), *TINY)
    assert_user_error(r, str(folder), "no .txt files")


def test_empty_file_inside_a_folder_is_named(tmp_path, bad_files):
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "a.txt").write_text(make_corpus(50), encoding="utf-8")
    (folder / "b.txt").write_bytes(b"")
    r = run_cli("train", "gpt", "--data", str(folder), "--out", str(tmp_path / "out"), *TINY)
    assert_user_error(r, str(folder / "b.txt"), "empty")


def test_eval_with_missing_run_data_suggests_data_flag(run, corpus):
    cfg = json.loads((run / "config.json").read_text())
    cfg["data"]["source"] = str(corpus.parent / "gone.txt")
    (run / "config.json").write_text(json.dumps(cfg))
    before = snapshot(run)
    r = run_cli("eval", str(run))
    assert_user_error(r, str(run), "gone.txt", "--data")
    assert snapshot(run) == before


# ----------------------------------------------------------------------------------------------------------------
# overrides, presets, families

OVERRIDE_CASES = {
    "not-a-number": (["train.lr=abc"], ["train.lr", "expected a number", "abc"]),
    "unknown-key": (["train.foo=1"], ["train.foo", "unknown key", "max_steps"]),
    "unknown-section": (["optim.lr=1"], ["optim.lr", "unknown key"]),
    "bad-choice": (["train.precision=fp16"], ["train.precision", "fp16", "fp32, bf16"]),
    "out-of-range": (["train.max_steps=0"], ["train.max_steps", "out of range", ">= 1"]),
    "not-an-integer": (["model.n_layer=2.5"], ["model.n_layer", "expected an integer"]),
    "heads-do-not-divide": (["model.n_head=3"], ["model.n_embd", "model.n_head", "divisible"]),
    "not-key-value": (["train.lr"], ["train.lr"]),
}


@pytest.mark.parametrize("case", sorted(OVERRIDE_CASES))
def test_bad_override_new_run(case, corpus, tmp_path):
    overrides, needles = OVERRIDE_CASES[case]
    out = tmp_path / "out"
    r = run_cli("train", "gpt", "--data", str(corpus), "--out", str(out), *TINY, *overrides)
    assert_user_error(r, *needles)
    assert not out.exists()


@pytest.mark.parametrize("flag", ["--overwrite", "--resume"])
@pytest.mark.parametrize("case", ["not-a-number", "bad-choice", "out-of-range"])
def test_bad_override_keeps_existing_run(case, flag, run, corpus):
    overrides, needles = OVERRIDE_CASES[case]
    before = snapshot(run)
    r = run_cli("train", "gpt", "--data", str(corpus), "--out", str(run), flag, *TINY, *overrides)
    assert_user_error(r, *needles)
    assert snapshot(run) == before


def test_unknown_preset(corpus, tmp_path):
    r = run_cli("train", "gpt", "--data", str(corpus), "--out", str(tmp_path / "out"), "--preset", "huge")
    assert_user_error(r, "--preset", "huge", "tiny")
    assert not (tmp_path / "out").exists()


def test_unknown_preset_on_resume_keeps_run(run, corpus):
    before = snapshot(run)
    r = run_cli("train", "gpt", "--data", str(corpus), "--out", str(run), "--resume", "--preset", "huge")
    assert_user_error(r, "--preset", "huge")
    assert snapshot(run) == before


def test_unknown_family(corpus, tmp_path):
    r = run_cli("train", "flowmatcher", "--data", str(corpus), "--out", str(tmp_path / "out"), *TINY)
    assert_user_error(r, "unknown family", "flowmatcher", "gpt")
    assert not (tmp_path / "out").exists()


def test_unknown_family_on_resume_keeps_run(run, corpus):
    before = snapshot(run)
    r = run_cli("train", "flowmatcher", "--data", str(corpus), "--out", str(run), "--resume")
    assert_user_error(r, "unknown family", "flowmatcher")
    assert snapshot(run) == before


def test_print_config_with_bad_override(corpus):
    r = run_cli("train", "gpt", "--data", str(corpus), "--print-config", "train.schedule=wavy")
    assert_user_error(r, "train.schedule", "wavy", "cosine")
    assert r.stdout == ""


# ----------------------------------------------------------------------------------------------------------------
# YAML --config

YAML_CASES = {
    "invalid-yaml": ("train:\n  lr: [1, 2\n  batch_size: 4\n", ["not valid YAML", "line "]),
    "unknown-section": ("optim:\n  lr: 0.1\n", ["unknown section", "optim"]),
    "wrong-family": ("family: vae\ntrain:\n  lr: 0.001\n", ["family", "vae", "gpt"]),
    "bad-value": ("train:\n  lr: fast\n", ["train.lr", "fast"]),
    "section-not-mapping": ("train: 5\n", ["section 'train'", "mapping"]),
    "top-level-list": ("- train\n- model\n", ["mapping of sections"]),
    "not-utf8": (b"train:\n  lr: 0.001 # caf\xe9\n", ["not UTF-8"]),
}


@pytest.mark.parametrize("case", sorted(YAML_CASES))
def test_bad_yaml_config(case, corpus, tmp_path):
    text, needles = YAML_CASES[case]
    cfg = tmp_path / "run.yaml"
    cfg.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    out = tmp_path / "out"
    r = run_cli("train", "gpt", "--data", str(corpus), "--out", str(out), *TINY, "--config", str(cfg))
    assert_user_error(r, str(cfg), *needles)
    assert not out.exists()


def test_missing_yaml_config(corpus, tmp_path):
    r = run_cli("train", "gpt", "--data", str(corpus), "--out", str(tmp_path / "out"), *TINY,
                "--config", str(tmp_path / "nope.yaml"))
    assert_user_error(r, "--config", "nope.yaml", "no such file")


def test_yaml_config_that_is_a_folder(corpus, tmp_path):
    r = run_cli("train", "gpt", "--data", str(corpus), "--out", str(tmp_path / "out"), *TINY,
                "--config", str(tmp_path))
    assert_user_error(r, "--config", str(tmp_path), "folder")


def test_bad_yaml_on_resume_keeps_run(run, corpus, tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("optim:\n  lr: 0.1\n")
    before = snapshot(run)
    r = run_cli("train", "gpt", "--data", str(corpus), "--out", str(run), "--resume", "--config", str(cfg))
    assert_user_error(r, str(cfg), "unknown section")
    assert snapshot(run) == before


# ----------------------------------------------------------------------------------------------------------------
# --out: existing runs and other folders are never lost

def test_train_onto_existing_run_needs_resume_or_overwrite(run, corpus):
    before = snapshot(run)
    r = run_cli("train", "gpt", "--data", str(corpus), "--out", str(run), *TINY)
    assert_user_error(r, str(run), "--resume", "--overwrite")
    assert snapshot(run) == before


@pytest.mark.parametrize("flag", ["--overwrite", "--resume"])
def test_folder_that_is_not_a_run_is_refused(flag, corpus, tmp_path):
    folder = tmp_path / "mystuff"
    folder.mkdir()
    (folder / "notes.txt").write_text("my notes\n")
    (folder / "sub").mkdir()
    (folder / "sub" / "data.bin").write_bytes(b"\x00\x01" * 100)
    before = snapshot(folder)
    r = run_cli("train", "gpt", "--data", str(corpus), "--out", str(folder), flag, *TINY)
    assert_user_error(r, str(folder), "not")
    assert snapshot(folder) == before


@pytest.mark.parametrize("flag", ["--overwrite", "--resume"])
def test_folder_with_a_foreign_config_json_is_refused(flag, corpus, tmp_path):
    """Other tools write config.json too (a Hugging Face model folder): that is no tetragen run to replace."""
    folder = tmp_path / "hf-model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 768}))
    (folder / "pytorch_model.bin").write_bytes(b"weights" * 100)
    before = snapshot(folder)
    r = run_cli("train", "gpt", "--data", str(corpus), "--out", str(folder), flag, *TINY)
    assert_user_error(r, str(folder), "config.json", "not written by tetragen")
    assert snapshot(folder) == before


def test_out_is_a_file(corpus, tmp_path):
    target = tmp_path / "afile"
    target.write_text("keep me")
    r = run_cli("train", "gpt", "--data", str(corpus), "--out", str(target), *TINY)
    assert_user_error(r, str(target), "not a folder")
    assert target.read_text() == "keep me"


def test_resume_with_other_data_keeps_run(run, tmp_path):
    other = tmp_path / "other.txt"
    other.write_text(make_corpus(seed=1), encoding="utf-8")
    before = snapshot(run)
    r = run_cli("train", "gpt", "--data", str(other), "--out", str(run), "--resume")
    assert_user_error(r, "other.txt", "--data", "same data")
    assert snapshot(run) == before


# ----------------------------------------------------------------------------------------------------------------
# run folders for generate / eval

@pytest.mark.parametrize("verb", ["generate", "eval"])
def test_folder_that_is_not_a_run(verb, tmp_path):
    folder = tmp_path / "notarun"
    folder.mkdir()
    (folder / "a.txt").write_text("hello")
    before = snapshot(folder)
    r = run_cli(verb, str(folder))
    assert_user_error(r, str(folder), "not a tetragen run")
    assert snapshot(folder) == before


@pytest.mark.parametrize("verb", ["generate", "eval"])
def test_run_folder_does_not_exist(verb, tmp_path):
    r = run_cli(verb, str(tmp_path / "nowhere"))
    assert_user_error(r, "nowhere", "does not exist")
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize("verb, device", [("generate", "nope"), ("eval", "cuda:99"), ("sample", "mps")])
def test_a_device_that_is_not_here_is_one_line(verb, device, run):
    before = snapshot(run)
    extra = ["--out", str(run.parent / "x.png")] if verb == "sample" else []
    r = run_cli(verb, str(run), "--device", device, *extra)
    assert_user_error(r, f"--device {device}")
    assert snapshot(run) == before and not (run.parent / "x.png").exists()


def test_generate_on_the_cpu_device(run):
    r = run_cli("generate", str(run), "--device", "cpu", "--max-new-tokens", "5", "--seed", "1")
    assert r.returncode == 0, r.stderr


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _garble_header(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[:8] = b"\xff" * 8  # the header length: now absurdly large
    path.write_bytes(bytes(data))


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _cut_tail(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:-16])  # header intact, tensor data short


CORRUPTIONS = {"truncated": _truncate, "garbled-header": _garble_header, "empty": _empty, "short-data": _cut_tail}


@pytest.mark.parametrize("verb", ["generate", "eval"])
@pytest.mark.parametrize("how", sorted(CORRUPTIONS))
def test_corrupt_weights(verb, how, run):
    weights = run / "model.safetensors"
    CORRUPTIONS[how](weights)
    before = snapshot(run)
    r = run_cli(verb, str(run), *(["--max-new-tokens", "5"] if verb == "generate" else []))
    # names the file, says what is wrong and where a good copy is
    assert_user_error(r, str(weights), "truncated or corrupt", "checkpoints")
    assert snapshot(run) == before


@pytest.mark.parametrize("verb", ["generate", "eval"])
def test_missing_weights(verb, run):
    (run / "model.safetensors").unlink()
    r = run_cli(verb, str(run))
    assert_user_error(r, str(run / "model.safetensors"), "missing")


def test_missing_tokenizer(run):
    (run / "tokenizer.json").unlink()
    r = run_cli("generate", str(run), "--max-new-tokens", "5")
    assert_user_error(r, str(run / "tokenizer.json"), "missing")


def _edit_config(run: Path, edit) -> Path:
    path = run / "config.json"
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize("verb", ["generate", "eval"])
def test_config_naming_unknown_family(verb, run):
    path = _edit_config(run, lambda d: d.update(family="no-such-family"))
    before = snapshot(run)
    r = run_cli(verb, str(run))
    assert_user_error(r, str(path), "unknown family", "'no-such-family'")
    assert snapshot(run) == before


@pytest.mark.parametrize("verb", ["generate", "eval"])
def test_config_family_not_a_name(verb, run):
    path = _edit_config(run, lambda d: d.update(family=["gpt"]))
    r = run_cli(verb, str(run))
    assert_user_error(r, str(path), "family")


def test_config_with_out_of_range_value(run):
    path = _edit_config(run, lambda d: d["model"].update(n_head=0))
    r = run_cli("eval", str(run))
    assert_user_error(r, str(path), "model.n_head", "out of range")


def test_config_not_json(run):
    (run / "config.json").write_text("{not json")
    r = run_cli("generate", str(run))
    assert_user_error(r, str(run / "config.json"), "not valid JSON")


# ----------------------------------------------------------------------------------------------------------------
# generate and eval flags

SAMPLING_CASES = {
    "negative-temperature": (["--temperature", "-1"], "--temperature"),
    "nan-temperature": (["--temperature", "nan"], "--temperature"),
    "top-p-zero": (["--top-p", "0"], "--top-p"),
    "top-p-above-one": (["--top-p", "1.5"], "--top-p"),
    "negative-max-new-tokens": (["--max-new-tokens", "-1"], "--max-new-tokens"),
    "negative-top-k": (["--top-k", "-1"], "--top-k"),
    "min-p-one": (["--min-p", "1"], "--min-p"),
    "zero-repetition-penalty": (["--repetition-penalty", "0"], "--repetition-penalty"),
    "seed-too-large": (["--seed", str(1 << 70)], "--seed"),
    "not-a-number": (["--temperature", "hot"], "--temperature"),
}


@pytest.mark.parametrize("case", sorted(SAMPLING_CASES))
def test_bad_sampling_flags(case, run):
    flags, needle = SAMPLING_CASES[case]
    before = snapshot(run)
    r = run_cli("generate", str(run), "--prompt", "ROMEO:", *flags)
    assert_user_error(r, needle)
    assert r.stdout == ""  # nothing printed before the error
    assert snapshot(run) == before


def test_eval_negative_eval_tokens(run):
    r = run_cli("eval", str(run), "--eval-tokens", "-5")
    assert_user_error(r, "--eval-tokens", "-5")
    assert r.stdout == ""


def test_unknown_verb_and_flag():
    assert_user_error(run_cli("trian", "gpt"), "trian")
    assert_user_error(run_cli("ls", "--colour"), "--colour")
