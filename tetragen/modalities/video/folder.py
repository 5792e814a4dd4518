"""A user's folder of clips: animated GIFs, folders of numbered frames, and MP4 / WebM / AVI / MOV files where a
decoder is installed (`pip install 'tetragen[video]'`: imageio with imageio-ffmpeg, a wheel that ships its own
ffmpeg).

    clips/
      waving/  a.gif  b.gif  c/000.png c/001.png ...     one sub-folder per class (its name is the class)
      walking/ d.mp4 ...

A folder is video when it holds animated images or movie files; one whose clips are all folders of numbered frames
looks like images, and is read as clips with data.kind=video.

Every clip becomes `frames` grey frames of `side` x `side` pixels: its frames are picked evenly over its length
(a longer clip is thinned, a shorter one repeats frames), each centre-cropped to a square and resized; what was
converted is said once. Files that cannot be read, clips of one frame, clips of more than MAX_FRAMES frames and
MP4s without a decoder are skipped, counted and listed; a folder with no clip it can read is one error line. A
folder of numbered frames whose frames differ in size has each frame resized (said once).
"""
from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

import numpy as np

from ...data.grids import held_out
from ...data.images import IMAGE_SUFFIXES, ImageSet, is_animated
from ...data.sources import cache_dir
from ...errors import UserError
from ...files import replace_atomically

MOVIES = {".mp4", ".webm", ".avi", ".mov", ".mkv"}
MAX_FRAMES = 2000            # a longer clip is skipped (a 10,000-frame GIF is not a short clip)
FRAME_NAME = re.compile(r"^\D*(\d+)$")


MOVIES_HOW = "pip install 'tetragen[video]' (imageio with imageio-ffmpeg, a wheel with its own ffmpeg)"


def movie_codec() -> bool:
    """Whether movie files can be decoded, and MP4s written, here (imageio with imageio-ffmpeg's own ffmpeg)."""
    import importlib.util
    return all(importlib.util.find_spec(m) is not None for m in ("imageio", "imageio_ffmpeg"))


def frame_folder(path: Path) -> bool:
    """Whether a folder is one clip: still image files only, each named by its number (000.png, frame_12.jpg, ...;
    a folder of numbered animated GIFs is a class of clips)."""
    files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    return (len(files) > 0 and all(p.suffix.lower() in IMAGE_SUFFIXES and FRAME_NAME.match(p.stem) for p in files)
            and not is_animated(files[0]))


def find_clips(root: Path) -> list[Path]:
    """The clips under `root`, sorted: folders of numbered frames, movie files, and image files outside those
    folders (animated ones are clips; a still one is found here to be skipped and listed as one frame)."""
    found = [p for p in sorted(root.rglob("*")) if not any(s.startswith(".") for s in p.relative_to(root).parts)]
    folders = {p for p in found if p.is_dir() and frame_folder(p)}
    return [p for p in found if p in folders or (p.is_file() and p.parent not in folders
                                                  and p.suffix.lower() in MOVIES | IMAGE_SUFFIXES)]


def claims(root: Path) -> bool:
    """Whether a folder holds clips, by its animated images and movie files (stopping at the first one found). A
    folder of numbered frames alone looks like images to everyone else, so such a folder is read as video when
    data.kind=video says so."""
    for p in root.rglob("*"):
        if p.is_file() and (p.suffix.lower() in MOVIES or (p.suffix.lower() in IMAGE_SUFFIXES and is_animated(p))):
            return True
    return False


def _square(im, side: int) -> np.ndarray:
    from PIL import Image, ImageOps
    return np.asarray(ImageOps.fit(im.convert("L"), (side, side), method=Image.Resampling.BILINEAR), np.uint8)


def _even(count: int, frames: int) -> np.ndarray:
    """Which of `count` frames make a clip of `frames`: picked evenly from the first to the last."""
    return np.rint(np.linspace(0, count - 1, frames)).astype(int)


def read_clip(path: Path, frames: int, side: int, notes: set) -> np.ndarray:
    """One clip uint8 (frames, side, side); a UserError (its reason) when it cannot be a clip."""
    from PIL import Image
    if path.is_dir():
        files = sorted((p for p in path.iterdir() if p.is_file()), key=lambda p: int(FRAME_NAME.match(p.stem)[1]))
        count = len(files)
        if count < 2:
            raise UserError("one frame: not a clip")
        if count > MAX_FRAMES:
            raise UserError(f"{count} frames, more than {MAX_FRAMES}")
        sizes = set()
        out = []
        for i in _even(count, frames):
            with Image.open(files[i]) as im:
                sizes.add(im.size)
                out.append(_square(im, side))
        if len(sizes) > 1:
            notes.add(f"frames of different sizes in one clip folder ({path.name}: "
                      + ", ".join(f"{w}x{h}" for w, h in sorted(sizes)) + f") were each resized to {side}x{side}")
        return np.stack(out)
    if path.suffix.lower() in MOVIES:
        if not movie_codec():
            raise UserError(f"no {path.suffix.lower()} decoder here ({MOVIES_HOW})")
        import imageio.v3 as iio
        import imageio_ffmpeg
        try:
            # a probe that ends its ffmpeg process whatever happens (the reader leaves its pipes open on a file
            # it cannot decode), then the frames
            imageio_ffmpeg.count_frames_and_secs(str(path))
            raw = iio.imread(path, index=None, plugin="FFMPEG")
        except Exception as e:
            raise UserError(f"unreadable ({type(e).__name__})") from None
        count = len(raw)
        if count < 2 or count > MAX_FRAMES:
            raise UserError("one frame: not a clip" if count < 2 else f"{count} frames, more than {MAX_FRAMES}")
        return np.stack([_square(Image.fromarray(raw[i]), side) for i in _even(count, frames)])
    with Image.open(path) as im:
        count = getattr(im, "n_frames", 1)
        if count < 2:
            raise UserError("one frame: not a clip")
        if count > MAX_FRAMES:
            raise UserError(f"{count} frames, more than {MAX_FRAMES}")
        out = []
        for i in _even(count, frames):
            im.seek(int(i))
            out.append(_square(im, side))
    return np.stack(out)


def clip_folder(root: Path, frames: int, side: int, val_fraction: float) -> tuple[ImageSet, ImageSet]:
    """(train, test) clips of a folder as grids uint8 (N, side, side, frames): class sub-folders become labels
    (sorted names; clips directly in `root` form one class named after it); the last `val_fraction` of each class
    is the test split. Read once, then cached by the files' names, sizes and times."""
    clips = find_clips(root)
    if not clips:
        raise UserError(f"--data {root}: no clips (animated .gif, folders of numbered frames, .mp4) in the folder")

    def class_of(p: Path) -> str:
        rel = p.relative_to(root).parts
        return rel[0] if len(rel) > 1 else root.name
    classes = sorted({class_of(p) for p in clips})
    stamp = [[str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in clips]
    key = hashlib.sha256(json.dumps([frames, side, stamp]).encode()).hexdigest()[:24]
    cached = cache_dir() / "clips" / f"{key}.npz"
    if cached.is_file():
        with np.load(cached, allow_pickle=False) as z:
            grids, labels, skipped = z["grids"], z["labels"], [str(s) for s in z["skipped"]]
            notes = [str(s) for s in z["notes"]]
    else:
        out, labels_l, skipped, found_notes = [], [], [], set()
        for p in clips:
            try:
                out.append(read_clip(p, frames, side, found_notes))
            except UserError as e:
                skipped.append(f"{p.relative_to(root)} ({e})")
                continue
            except Exception as e:  # a damaged file of any kind is skipped, never fatal
                skipped.append(f"{p.relative_to(root)} (unreadable: {type(e).__name__})")
                continue
            labels_l.append(classes.index(class_of(p)))
        if not out:
            raise UserError(f"--data {root}: none of its {len(clips)} clips could be read ({skipped[0]}"
                            + (", ..." if len(skipped) > 1 else "") + ")")
        grids = np.ascontiguousarray(np.moveaxis(np.stack(out), 1, -1))
        labels, notes = np.array(labels_l, dtype=np.int64), sorted(found_notes)
        cached.parent.mkdir(parents=True, exist_ok=True)
        replace_atomically(cached, lambda tmp: np.savez(tmp, grids=grids, labels=labels,
                                                        skipped=np.array(skipped, dtype=str),
                                                        notes=np.array(notes, dtype=str)))
    print(f"tetragen: {root}: {len(labels)} clips in {len(classes)} class(es), each made {frames} grey frames of "
          f"{side}x{side} (frames picked evenly over its length, centre-cropped and resized)", file=sys.stderr)
    for note in notes:
        print(f"tetragen: {note}", file=sys.stderr)
    if skipped:
        print(f"tetragen: skipped {len(skipped)} clip(s) in {root}: {'; '.join(skipped[:3])}"
              + (" ..." if len(skipped) > 3 else ""), file=sys.stderr)
    test = held_out(labels, len(classes), val_fraction)
    return (ImageSet(grids[~test], labels[~test], classes, skipped),
            ImageSet(grids[test], labels[test], classes, skipped))


def make_clip_folder(root: Path, n_per_class: int = 10, side: int = 32, frames: int = 8, seed: int = 0) -> Path:
    """Three classes of little clips as animated GIFs in class folders: a dot moving right, a dot moving down, and a
    square that blinks."""
    from PIL import Image
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:side, :side]
    for name in ("right", "down", "blink"):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            y0, x0 = rng.integers(4, side // 2, 2)
            clip = []
            for t in range(frames):
                if name == "blink":
                    on = (abs(yy - y0 - 4) < 5) & (abs(xx - x0 - 4) < 5) & (t % 2 == 0)
                else:
                    cy, cx = (y0, x0 + 2 * t) if name == "right" else (y0 + 2 * t, x0)
                    on = (yy - cy) ** 2 + (xx - cx) ** 2 < 12
                clip.append(Image.fromarray(np.where(on, 255, 0).astype(np.uint8)))
            clip[0].save(root / name / f"{i:03d}.gif", save_all=True, append_images=clip[1:], duration=100, loop=0)
    return root
