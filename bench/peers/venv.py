"""The benchmarks' separate venv for public peers (bench/_peers/venv, git-ignored): a peer's own Python
dependencies go there, never into tetragen's.

It reuses the torch of the venv that runs the bench, and only that: bench/_peers/torch holds links to that venv's
torch packages and their dist-info, and a .pth file puts it on the peer venv's path, so torch stays the CPU build
tetragen tests with (nothing else of tetragen's venv is seen: a peer's pins cannot clash with ours). pip is told
`torch==<that version>` as a constraint, so nothing it installs can pull another torch; torch's own small
dependencies (sympy, networkx, ...) and what a peer needs on top (librosa, diffusers, accelerate, datasets,
torchvision, ...) are installed from PyPI into the peer venv itself, once per requirement list (a stamp file
remembers it).

torchvision's PyPI wheel is a CUDA build: its C++ ops cannot load beside a CPU torch, and `import torchvision` then
fails on registering fake kernels for two of those ops (torchvision::nms, qnms). The peers use only its pure-Python
transforms, so a start-up hook of this venv declares those two op schemas just before torchvision is first imported
(see SHIM); the peers' own code is untouched.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / "bench" / "_peers" / "venv"
TORCH_LINKS = ROOT / "bench" / "_peers" / "torch"

SHIM = '''"""Declares torchvision::nms and ::qnms before torchvision is imported (written by tetragen's bench/peers/venv.py):
its CUDA-built C++ ops do not load with a CPU torch, and its import registers fake kernels for these two."""
import sys


class _DeclareTorchvisionOps:
    def find_spec(self, name, path=None, target=None):
        if name == "torchvision":
            sys.meta_path.remove(self)
            try:
                import torch
                for op in ("nms", "qnms"):
                    try:
                        torch.library.define(f"torchvision::{op}",
                                             "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
                    except RuntimeError:
                        pass  # already declared (by torchvision's own ops, where they load)
            except ImportError:
                pass
        return None


sys.meta_path.insert(0, _DeclareTorchvisionOps())
'''


def python() -> Path:
    return VENV / "bin" / "python"


def _site_packages(venv: Path) -> Path:
    return venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


def _create() -> None:
    if not python().is_file():
        print(f"peer venv: creating {VENV}", file=sys.stderr, flush=True)
        subprocess.run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", str(VENV)], check=True)
    packages = _site_packages(VENV)
    import torch
    ours = Path(torch.__file__).resolve().parents[1]  # the site-packages that holds our torch
    TORCH_LINKS.mkdir(parents=True, exist_ok=True)
    for name in ("torch", "torchgen", "functorch", f"torch-{torch.__version__}.dist-info"):
        link = TORCH_LINKS / name
        if (ours / name).exists() and not link.exists():
            link.symlink_to(ours / name)
    (packages / "tetragen_torch.pth").write_text(f"{TORCH_LINKS}\n")
    (packages / "_tetragen_torchvision_ops.py").write_text(SHIM)
    (packages / "zz_tetragen_torchvision_ops.pth").write_text("import _tetragen_torchvision_ops\n")


def ensure(requirements: list[str], what: str) -> Path:
    """The peer venv's python, with `requirements` (pip arguments: names, -r FILE, a local path) installed."""
    import torch
    _create()
    stamp = VENV / f".installed-{hashlib.sha256(repr(requirements).encode()).hexdigest()[:16]}"
    if stamp.is_file():
        return python()
    constraints = VENV / "constraints.txt"
    constraints.write_text(f"torch=={torch.__version__.split('+')[0]}\n")
    print(f"peer venv: installing {what}: {' '.join(requirements)}", file=sys.stderr, flush=True)
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    r = subprocess.run([str(python()), "-m", "pip", "install", "-q", "-c", str(constraints), *requirements],
                       env=env, capture_output=True, text=True)
    noise = "is ignored: it is neither a file nor a directory"
    sys.stderr.write("".join(ln + "\n" for ln in r.stderr.splitlines() if noise not in ln))
    if r.returncode != 0:
        raise SystemExit(f"peer venv: pip could not install {what} (exit {r.returncode}); see above")
    stamp.write_text("\n".join(requirements) + "\n")
    return python()


def checkout_commit(peer_dir: Path) -> str:
    """The commit checked out in `peer_dir` (which must be a checkout's top: not a folder inside another repo)."""
    def git(*a):
        return subprocess.run(["git", "-C", str(peer_dir), *a], capture_output=True, text=True).stdout.strip()
    try:
        if Path(git("rev-parse", "--show-toplevel") or "/nonexistent").resolve() == peer_dir.resolve():
            return git("rev-parse", "HEAD")
    except OSError:
        pass
    return "unknown (not a git checkout)"
