"""The video modality's files, its tiny example set, and what a job asks a trained run on video and how the report
plays it."""
from __future__ import annotations

import base64
import html as _html
import io
import shlex
import tempfile
from pathlib import Path

import numpy as np

from ...errors import UserError
from ...files import replace_atomically
from ...sample.adapted import show_prompts
from ...sample.images import image_grid, write_png
from .data import grids_of
from .folder import MOVIES_HOW, movie_codec

SEED = 1            # the seed of every shown sample
SHOWN_PER_PROMPT = 4
MAX_SIDE = 4096      # of a GIF's or MP4's picture: the clips side by side
MP4_MISSING = f"no MP4 encoder here: {MOVIES_HOW}, or write .gif"


def tiles(frames: np.ndarray, columns: int | None = None) -> list[np.ndarray]:
    """Clips uint8 (N, T, H, W) -> T pictures (h, w): picture t shows frame t of every clip, side by side."""
    n, t = frames.shape[:2]
    out = [image_grid(frames[:, k, :, :, None], columns)[..., 0] for k in range(t)]
    if max(out[0].shape) > MAX_SIDE:
        raise UserError(f"--n {n}: {n} clips side by side make a picture over {MAX_SIDE} pixels wide; ask for "
                        f"fewer, or write a folder (one GIF per clip)")
    return out


def gif_bytes(frames: np.ndarray, fps: int, columns: int | None = None) -> bytes:
    """Clips uint8 (N, T, H, W) as one looping animated GIF, side by side."""
    from PIL import Image
    pictures = [Image.fromarray(tile, mode="L") for tile in tiles(frames, columns)]
    buf = io.BytesIO()
    pictures[0].save(buf, format="GIF", save_all=True, append_images=pictures[1:], duration=round(1000 / fps),
                     loop=0, optimize=False, disposal=1)
    return buf.getvalue()


def mp4_bytes(frames: np.ndarray, fps: int, columns: int | None = None) -> bytes:
    """Clips uint8 (N, T, H, W) as one H.264 MP4, side by side: yuv420p, which browsers and players take (an odd
    side gets a black line), nearly lossless (crf 12), its index first (faststart) so that it plays while loading."""
    if not movie_codec():
        raise UserError(MP4_MISSING)
    import imageio_ffmpeg
    pictures = tiles(frames, columns)
    h, w = pictures[0].shape
    size = (w + w % 2, h + h % 2)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.mp4"
        writer = imageio_ffmpeg.write_frames(str(path), size, pix_fmt_in="gray", pix_fmt_out="yuv420p", fps=fps,
                                             codec="libx264", quality=None, macro_block_size=1,
                                             ffmpeg_log_level="error",
                                             output_params=["-crf", "12", "-movflags", "+faststart"])
        writer.send(None)
        for picture in pictures:
            writer.send(np.ascontiguousarray(np.pad(picture, ((0, size[1] - h), (0, size[0] - w)))).tobytes())
        writer.close()
        return path.read_bytes()


def write_gif_output(path: Path, clips, *, columns: int | None = None, **_) -> None:
    """Every clip in one looping GIF, side by side."""
    data = gif_bytes(clips.frames, clips.fps, columns)
    replace_atomically(Path(path), lambda tmp: Path(tmp).write_bytes(data))


def write_mp4_output(path: Path, clips, *, columns: int | None = None, **_) -> None:
    """Every clip in one MP4, side by side (where imageio-ffmpeg is installed)."""
    data = mp4_bytes(clips.frames, clips.fps, columns)
    replace_atomically(Path(path), lambda tmp: Path(tmp).write_bytes(data))


def write_folder_output(path: Path, clips, **_) -> None:
    """One GIF per clip, 000.gif, 001.gif, ... in the folder `path` (made; files already there are refused)."""
    path = Path(path)
    names = [path / f"{i:03d}.gif" for i in range(len(clips.frames))]
    taken = [p for p in names if p.exists()]
    if taken:
        raise UserError(f"--out {path}: {taken[0].name} is already there; choose an empty folder")
    path.mkdir(exist_ok=True)
    for p, f in zip(names, clips.frames):
        data = gif_bytes(f[None], clips.fps)
        replace_atomically(p, lambda tmp, data=data: Path(tmp).write_bytes(data))


def write_png_output(path: Path, clips, **_) -> None:
    """A strip per clip: its frames side by side, one clip per row."""
    write_png(path, grids_of(clips.frames), columns=1)


def write_npz_output(path: Path, clips, **_) -> None:
    """frames uint8 (N, T, H, W), fps and, when asked, labels."""
    arrays = {"frames": clips.frames, "fps": np.int64(clips.fps)}
    if clips.labels is not None:
        arrays["labels"] = np.asarray(clips.labels, dtype=np.int64)
    replace_atomically(Path(path), lambda tmp: np.savez_compressed(tmp, **arrays))


def example(folder: Path) -> str:
    """A tiny folder of clips in three classes (GIFs and folders of numbered frames)."""
    from .folder import make_clip_folder
    return str(make_clip_folder(folder))


# ----------------------------------------------------------------------------------------------------------------
# what a job asks, and the report's block

def show(pipe, prompts: tuple[str, ...], folder: Path, data: str) -> tuple[list[dict], dict]:
    """For each prompt (by default a few classes) a few clips, kept as a GIF and a strip of their frames; speed in
    clips made per second."""
    def write(clips, stem: Path) -> dict:
        gif, png = stem.with_suffix(".gif"), stem.with_suffix(".png")
        write_gif_output(gif, clips, columns=SHOWN_PER_PROMPT)
        write_png_output(png, clips)
        job = folder.parent.parent
        return {"file": str(gif.relative_to(job)), "picture": str(png.relative_to(job))}
    items, made, spent = show_prompts(pipe, prompts, folder, n=SHOWN_PER_PROMPT, seed=SEED, write=write, amount=len)
    return items, ({"unit": "clips/s", "value": made / spent} if spent else {})


def html(item: dict, out: Path) -> str:
    """The clips of one prompt playing (the GIF inlined) above the strips of their frames."""
    gif = base64.b64encode((Path(out) / item["file"]).read_bytes()).decode()
    picture = base64.b64encode((Path(out) / item["picture"]).read_bytes()).decode()
    title = _html.escape(item["title"], quote=True)
    return (f"<figure><img class='grid clip' alt='clips of {title}' src='data:image/gif;base64,{gif}'><br>"
            f"<img class='grid' alt='frames of {title}' src='data:image/png;base64,{picture}'>"
            f"<figcaption>{title}: {SHOWN_PER_PROMPT} clips, seed {SEED}</figcaption></figure>")


def card(pipe) -> dict:
    """A run on video says its frames and frame rate, and a class-conditional one its classes."""
    out = {"frames": int(pipe.frames), "fps": int(pipe.fps)} if pipe.capabilities & {"prompt", "sample"} else {}
    if pipe.conditional:
        out["classes"] = list(pipe.classes)
    return out


def commands(run: str, prompt: str, capabilities) -> list[str]:
    q = shlex.quote
    if "prompt" in capabilities and prompt:
        return [f"tetragen sample {q(run)} --prompt {q(prompt)} --n 4 --out {q(prompt.replace(' ', '_'))}.gif"]
    if "sample" in capabilities:
        return [f"tetragen sample {q(run)} --n 8 --seed {SEED} --out clips.gif"]
    return []
