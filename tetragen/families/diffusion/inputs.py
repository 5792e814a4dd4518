"""The files an edit reads: the image to redraw and the mask of what to redraw, from a path or from bytes.

An image of another size or mode than the run's is converted to it (resized with Lanczos, turned grey or RGB) with a
warning that says what changed. A mask is not converted: it must already be the run's size and binary, either

- without transparency: black (0) where the image is kept, white (255, or 1) where it is drawn anew, the convention
  of inpainting pipelines; or
- with an alpha channel (OpenAI's images/edits): fully transparent where the image is drawn anew, fully opaque where
  it is kept (the colour is then ignored).
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np

from ...errors import UserError


def _open(file, name: str):
    """A path (str or Path) or the file's bytes -> a PIL image, loaded; one-line errors otherwise."""
    from PIL import Image, UnidentifiedImageError
    label = name if isinstance(file, (bytes, bytearray)) else f"{name} {file}"
    if not isinstance(file, (bytes, bytearray)):
        path = Path(file)
        if not path.is_file():
            raise UserError(f"{label}: {'is a folder' if path.is_dir() else 'no such file'}; give an image file "
                            f"(PNG, JPEG, ...)")
        file = path.read_bytes()
    if not file:
        raise UserError(f"{label}: the file is empty; give an image file (PNG, JPEG, ...)")
    try:
        im = Image.open(io.BytesIO(bytes(file)))
        im.load()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise UserError(f"{label}: not an image file that can be read ({type(e).__name__}); give a PNG or JPEG") \
            from None
    return im, label


def read_image(file, shape: tuple[int, int, int], name: str = "--init-image") -> np.ndarray:
    """An image file -> uint8 (H, W, C) of the run's `shape` (H, W, C), converted with a warning where it differs."""
    from PIL import Image
    im, label = _open(file, name)
    height, width, channels = shape
    mode = "L" if channels == 1 else "RGB"
    changes = []
    if im.mode != mode:
        changes.append(f"mode {im.mode} to {'grey (L)' if mode == 'L' else 'RGB'}")
        if "A" in im.getbands() or (im.mode == "P" and "transparency" in im.info):
            im = im.convert("RGBA")  # transparent parts read as white
            im = Image.alpha_composite(Image.new("RGBA", im.size, (255, 255, 255, 255)), im)
        im = im.convert(mode)
    if im.size != (width, height):
        changes.append(f"size {im.size[0]}x{im.size[1]} to {width}x{height}")
        im = im.resize((width, height), Image.LANCZOS)
    if changes:
        warnings.warn(f"{label}: converted from {' and '.join(changes)}, the model's", stacklevel=2)
    out = np.asarray(im, dtype=np.uint8)
    return out[..., None] if out.ndim == 2 else out


def read_mask(file, size: tuple[int, int], name: str = "--mask") -> np.ndarray:
    """A mask file -> uint8 (H, W), 1 where the image is drawn anew and 0 where it is kept; refused unless it is
    `size` (H, W) and binary."""
    im, label = _open(file, name)
    height, width = size
    if im.size != (width, height):
        raise UserError(f"{label}: {im.size[0]}x{im.size[1]}, the mask must be the model's size {width}x{height}")
    if "A" in im.getbands() or (im.mode == "P" and "transparency" in im.info):
        alpha = np.asarray(im.convert("RGBA"))[..., 3]
        if not np.isin(alpha, (0, 255)).all():
            raise UserError(f"{label}: the mask's transparency is not binary; make it fully transparent (0) where "
                            f"the image is drawn anew and fully opaque (255) where it is kept")
        return (alpha == 0).astype(np.uint8)
    rgb = np.asarray(im.convert("RGB"))
    if (rgb != rgb[..., :1]).any():
        raise UserError(f"{label}: the mask is in colour; give black (keep) and white (draw anew) only")
    grey = rgb[..., 0]
    values = set(np.unique(grey).tolist())
    if values <= {0, 1}:
        return grey.astype(np.uint8)
    if not values <= {0, 255}:
        other = sorted(values - {0, 255})
        raise UserError(f"{label}: the mask is not binary (it has grey level {other[0]}"
                        f"{f' and {len(other) - 1} more' if len(other) > 1 else ''}); give black (0) where the image "
                        f"is kept and white (255) where it is drawn anew")
    return (grey == 255).astype(np.uint8)
