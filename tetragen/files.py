"""The files tetragen writes, and how: safetensors and JSON read and written atomically, and the layout of a run
folder. Imported by the trainer, the families, the evaluators and the data code alike; it imports none of them.

Every write goes to a temporary sibling that is flushed to disk and then renamed over the target (`os.replace` is
atomic on POSIX), so a kill at any moment leaves either the old file or the new one, never half of one. A folder is
written the same way under a temporary name (`write_folder_atomically`).

A run folder looks like this:

    RUN/config.json  model.safetensors  tokenizer.json  [ema.safetensors]  metrics.jsonl
    RUN/checkpoints/step_00000500/   the same files + optimizer.safetensors, rng.safetensors, trainer_state.json
    RUN/checkpoints/best/            weights at the best evaluation so far (+ metrics.json)
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .errors import UserError

CKPT_DIR = "checkpoints"
STATE_FILE = "trainer_state.json"


# ----------------------------------------------------------------------------------------------------------------
# atomic writes

def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def replace_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Call write(tmp) for a temporary sibling of `path` (same suffix), flush it to disk and rename it over `path`."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}{path.suffix}")
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def write_text(path: Path, text: str, *, newline: str | None = None) -> None:
    replace_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8", newline=newline))


def write_json(path: Path, doc) -> None:
    write_text(path, json.dumps(doc, indent=2, ensure_ascii=False))


def save_tensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict | None = None) -> None:
    state = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    replace_atomically(path, lambda tmp: save_file(state, str(tmp), metadata=metadata))


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not Path(path).is_file():
        raise UserError(f"{path}: missing; the run folder is incomplete")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise UserError(f"{path}: not a readable safetensors file (truncated or corrupt: "
                        f"{str(e).splitlines()[0][:100]}); {latest_hint(path)}") from None


def read_json(path: Path, what: str = "") -> dict:
    """A JSON object from `path`; a missing, unreadable or non-object file is a one-line UserError."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: missing; {what or 'the run folder is incomplete'}") from None
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not valid JSON ({type(e).__name__}: {str(e).splitlines()[0][:100]})") from None
    if not isinstance(doc, dict):
        raise UserError(f"{path}: expected a JSON object")
    return doc


# ----------------------------------------------------------------------------------------------------------------
# folders

def write_folder_atomically(final: Path, write: Callable[[Path], None]) -> None:
    """Call write(tmp_folder), then move the folder into place, replacing an old one of the same name.

    The old folder is renamed aside before the new one is renamed in; a kill between the two renames leaves it as
    `.old-NAME-PID`, which `recover_folders` puts back, so there is never a moment without a loadable copy."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".tmp-{final.name}-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    write(tmp)
    for root, _, names in os.walk(tmp):
        for name in names:
            with open(Path(root) / name, "rb") as f:
                os.fsync(f.fileno())
        _fsync_dir(Path(root))
    old = None
    if final.exists():
        old = final.with_name(f".old-{final.name}-{os.getpid()}")
        os.replace(final, old)
    os.replace(tmp, final)
    _fsync_dir(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def recover_folders(root: Path) -> None:
    """After a kill inside `write_folder_atomically`: put back an old folder whose replacement never arrived, and
    remove half-written or superseded temporaries."""
    root = Path(root)
    if not root.is_dir():
        return
    for p in sorted(root.iterdir()):
        if p.name.startswith(".old-") and p.is_dir():
            name = p.name[len(".old-"):].rsplit("-", 1)[0]
            if not (root / name).exists():
                os.replace(p, root / name)
            else:
                shutil.rmtree(p, ignore_errors=True)
    for p in root.iterdir():
        if p.name.startswith(".tmp-"):
            shutil.rmtree(p, ignore_errors=True)


def step_dirs(run_dir: Path) -> list[Path]:
    """A run's complete step checkpoints, oldest first."""
    root = Path(run_dir) / CKPT_DIR
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("step_") and (p / STATE_FILE).is_file())


def is_run_dir(path: Path) -> bool:
    """Whether `path` holds a config.json that tetragen wrote (other tools name their files config.json too)."""
    try:
        doc = json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return (isinstance(doc, dict) and isinstance(doc.get("family"), str)
            and all(isinstance(doc.get(k), dict) for k in ("model", "train", "data")))


def latest_hint(path: Path) -> str:
    """Where to find an intact copy of a damaged file of a run folder."""
    for run in (Path(path).parent, Path(path).parent.parent.parent):
        dirs = step_dirs(run)
        if dirs:
            return f"restore it from {dirs[-1]} or resume the run with --resume"
    return "retrain or copy the run folder again"


# ----------------------------------------------------------------------------------------------------------------
# run folders: what tetragen writes there, and one writer at a time

# Every name tetragen writes at the top of a run folder. `--overwrite` deletes these and refuses a folder that holds
# anything else.
RUN_ENTRIES = frozenset({"config.json", "model.safetensors", "ema.safetensors", "metrics.jsonl", "tokenizer.json",
                         "classes.json", "labels.json", "adapter.safetensors", "adapter.json", "components.json",
                         "captions.json", "image_tokenizer",
                         CKPT_DIR, "samples", "tensorboard", ".lock"})
LOCK_FILE = ".lock"


def foreign_entries(run_dir: Path) -> list[str]:
    """The names in a run folder that tetragen did not write (temporaries of a killed writer excepted)."""
    return sorted(p.name for p in Path(run_dir).iterdir()
                  if p.name not in RUN_ENTRIES and ".tmp" not in p.name)


def refuse_foreign(run_dir: Path) -> None:
    """A one-line refusal when a run folder holds anything tetragen did not write (which --overwrite would lose)."""
    other = foreign_entries(run_dir)
    if other:
        raise UserError(f"--out {run_dir}: --overwrite deletes only what tetragen wrote, and the folder also holds "
                        f"{', '.join(other[:3])}{' ...' if len(other) > 3 else ''}; move that away or choose "
                        f"another --out")


def clear_run(run_dir: Path) -> None:
    """Delete what tetragen wrote in a run folder (for --overwrite), keeping the lock; refuses in one line when the
    folder holds anything else, before deleting anything."""
    run_dir = Path(run_dir)
    refuse_foreign(run_dir)
    for p in run_dir.iterdir():
        if p.name == LOCK_FILE:
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


class RunLock:
    """An exclusive OS lock on a run folder (`RUN/.lock`, flock), held while a process writes the run and released
    by the kernel when the process dies. A second writer gets a one-line error naming the holder's pid."""

    def __init__(self, run_dir: Path):
        import fcntl
        self.fd = None
        self.path = Path(run_dir) / LOCK_FILE
        try:
            Path(run_dir).mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise UserError(f"--out {run_dir}: cannot create or write the folder ({e.strerror or e}); choose a "
                            f"folder you can write to") from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(self.fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            self.release()
            raise UserError(f"--out {run_dir}: another tetragen process (pid {holder}) is writing this run; wait "
                            f"for it to finish, stop it, or choose another --out") from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = None

    def __del__(self):
        self.release()
