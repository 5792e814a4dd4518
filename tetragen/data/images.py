"""Image datasets: Fashion-MNIST by name (gzipped IDX files, checksum-verified) and the user's own image folders.

`load_image_data(source, image_size, channels)` returns an `ImageData` with uint8 train/test arrays, integer labels
and class names. Batches are drawn from (seed, step, micro-batch) like text batches, so the data position is the step
counter and resuming reproduces them. Pixels reach the model as floats in [-1, 1], shaped (B, C, H, W).

For semi-supervised training (`ImageData.keep_labels`) only a seeded, per-class fraction of the training images keeps
its label; each batch then holds labelled images ("x", "y") and as many unlabelled ones ("x_u"), still a pure
function of (seed, step, micro-batch).

A new run on a folder trains at the folder's own shape (`fit_model_to_folder`): model.channels and model.image_size
left at their defaults are set from the images' headers, and one line on stderr says what the run trains at whenever
that is not the defaults or not simply what the images are. A trained run's config is never changed: its data is
converted to its shape.
"""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from ..files import replace_atomically
from . import grids
from .sources import FileSet, apt_command, cache_dir

# ----------------------------------------------------------------------------------------------------------------
# IDX files (the MNIST family's format): magic 0x00 0x00 <type> <ndim>, ndim big-endian uint32 sizes, then the data

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"),
              0x0E: np.dtype(">f8")}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (gzipped or not), rejecting truncated or malformed files with a one-line error."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise UserError(f"{path}: not a readable gzip file ({str(e) or type(e).__name__}); "
                        f"the download is damaged, fetch it again") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES or not 1 <= raw[3] <= 4:
        raise UserError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    ndim, dtype = raw[3], np.dtype(_IDX_TYPES[raw[2]])
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise UserError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape)) * dtype.itemsize
    body = len(raw) - header
    if body != expected:
        what = "truncated" if body < expected else "longer than its header says"
        raise UserError(f"{path}: IDX file is {what} ({body} data bytes for shape {shape}, expected {expected})")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _gunzip_sha256(path: Path) -> str:
    """Checksum of the decompressed content: the same whichever mirror compressed the file."""
    try:
        with gzip.open(path, "rb") as f:
            h = hashlib.sha256()
            while block := f.read(1 << 22):
                h.update(block)
            return h.hexdigest()
    except (OSError, EOFError, zlib.error):
        return "unreadable"


# ----------------------------------------------------------------------------------------------------------------
# Fashion-MNIST

FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                         "Ankle boot"]
FASHION_MNIST_FILES = {  # file -> sha256 of its decompressed content
    "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist package
# The checksums are of the decompressed content because the .gz bytes differ between mirrors: Debian's files are
# not byte-identical to the upstream downloads, yet both decompress to the same IDX files.
FASHION_MNIST = FileSet("fashion-mnist", FASHION_MNIST_FILES, FASHION_MNIST_URL, apt_package="dataset-fashion-mnist",
                        apt_folder=DEBIAN_FASHION_MNIST, digest=_gunzip_sha256)


def fashion_mnist_files() -> dict[str, Path]:
    """The four verified files from TETRAGEN_DATA, the cache (where `tetragen data fetch fashion-mnist` downloads
    them) or Debian's package folder. Loading never fetches: a machine without them gets a one-line error that
    says how to fetch them."""
    found, missing = FASHION_MNIST.find()
    if found is None:
        raise UserError(f"--data fashion-mnist: the dataset is not on this machine ({missing}); run `tetragen data "
                        f"fetch fashion-mnist` (or `{apt_command(FASHION_MNIST.apt_package)}`)")
    return found


@dataclass
class ImageSet:
    """uint8 images (N, H, W, C) with int64 labels (N,) and class names."""
    images: np.ndarray
    labels: np.ndarray
    classes: list[str]
    skipped: list[str] = field(default_factory=list)


def fashion_mnist() -> tuple[ImageSet, ImageSet]:
    f = fashion_mnist_files()
    parts = []
    for split in ("train", "t10k"):
        images = read_idx(f[f"{split}-images-idx3-ubyte.gz"])
        labels = read_idx(f[f"{split}-labels-idx1-ubyte.gz"]).astype(np.int64)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise UserError(f"fashion-mnist: {split} images {images.shape} and labels {labels.shape} do not match")
        parts.append(ImageSet(images[..., None], labels, FASHION_MNIST_CLASSES))
    return parts[0], parts[1]


IMAGE_DATASETS = {"fashion-mnist": ("Fashion-MNIST: 60k/10k 28x28 grey images of 10 clothing classes", fashion_mnist)}


# ----------------------------------------------------------------------------------------------------------------
# folders of images

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}


def _decode(path: Path, size: int, channels: int) -> np.ndarray:
    """Decode one image, centre-crop to a square and resize to size x size (PIL's decompression-bomb guard on)."""
    from PIL import Image, ImageOps
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        im = im.convert("L" if channels == 1 else "RGB")
        im = ImageOps.fit(im, (size, size), method=Image.Resampling.BICUBIC)
        arr = np.asarray(im, dtype=np.uint8)
    return arr[..., None] if channels == 1 else arr


def image_files(root: Path) -> list[Path]:
    """The image files under `root`, sorted; none is an error."""
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UserError(f"--data {root}: no images (.png, .jpg, ...) in the folder")
    return files


def image_folder(root: Path, size: int, channels: int, val_fraction: float) -> tuple[ImageSet, ImageSet]:
    """Class sub-folders become labels (sorted names); images directly in `root` form one class. Undecodable
    files are skipped and listed. The last `val_fraction` of each class (in sorted order) is the test split."""
    from PIL import Image
    files = image_files(root)
    classes = sorted({p.relative_to(root).parts[0] for p in files if len(p.relative_to(root).parts) > 1})
    if any(len(p.relative_to(root).parts) == 1 for p in files):
        classes = [root.name] + classes if classes else [root.name]
    index = {c: i for i, c in enumerate(classes)}
    key = hashlib.sha256(json.dumps([size, channels] + [[str(p), p.stat().st_size, p.stat().st_mtime_ns]
                                                        for p in files]).encode()).hexdigest()[:24]
    cached = cache_dir() / "images" / f"{key}.npz"
    if cached.is_file():
        with np.load(cached, allow_pickle=False) as z:
            images, labels, skipped = z["images"], z["labels"], [str(s) for s in z["skipped"]]
    else:
        images_l, labels_l, skipped = [], [], []
        for p in files:
            rel = p.relative_to(root).parts
            try:
                images_l.append(_decode(p, size, channels))
            except (OSError, ValueError, Image.DecompressionBombError, SyntaxError) as e:
                skipped.append(f"{p} ({type(e).__name__})")
                continue
            labels_l.append(index[rel[0] if len(rel) > 1 else root.name])
        if not images_l:
            raise UserError(f"--data {root}: none of the {len(files)} image files could be decoded")
        images, labels = np.stack(images_l), np.array(labels_l, dtype=np.int64)
        cached.parent.mkdir(parents=True, exist_ok=True)
        replace_atomically(cached, lambda tmp: np.savez(tmp, images=images, labels=labels,
                                                        skipped=np.array(skipped, dtype=str)))
    if skipped:
        print(f"tetragen: skipped {len(skipped)} undecodable image(s) in {root}: {skipped[0]}"
              + (" ..." if len(skipped) > 1 else ""), file=sys.stderr)
    test_mask = grids.held_out(labels, len(classes), val_fraction)
    train = ImageSet(images[~test_mask], labels[~test_mask], classes, skipped)
    test = ImageSet(images[test_mask], labels[test_mask], classes, skipped)
    return train, test


# ----------------------------------------------------------------------------------------------------------------
# a folder's own shape, and what a new run on it trains at

AUTO_MAX_SIZE = 64  # the largest side a folder sets by itself (a CPU-sized model); model.image_size asks for more
GREY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
PALETTE_MODES = {"P", "PA"}


def _is_colour(im) -> bool:
    """Whether an opened (not yet decoded) image is in colour: a colour mode, or a palette with a non-grey colour in
    use (a palette image is decoded for that; palette files are small)."""
    if im.mode in GREY_MODES:
        return False
    if im.mode in PALETTE_MODES:
        rgb = np.asarray(im.convert("RGB"))
        return bool((rgb[..., 0] != rgb[..., 1]).any() or (rgb[..., 1] != rgb[..., 2]).any())
    return True


@dataclass(frozen=True)
class FolderShape:
    """What a folder's image headers say: how many images could be opened, how many of them are in colour, and
    how many have each size (width, height)."""
    count: int
    colour: int
    sizes: dict

    @property
    def channels(self) -> int:
        """3 when any image is in colour, else 1."""
        return 3 if self.colour else 1

    @property
    def side(self) -> int:
        """The median of the images' shorter sides (each image is centre-cropped to a square of its shorter side)."""
        seen = 0
        for short, k in sorted((min(w, h), k) for (w, h), k in self.sizes.items()):
            seen += k
            if 2 * seen >= self.count:
                return short
        return 0

    def fits(self, size: int, channels: int) -> bool:
        """Whether the images are size x size x channels already (nothing is cropped, resized or converted)."""
        return set(self.sizes) == {(size, size)} and self.colour == (self.count if channels == 3 else 0)

    def describe(self) -> str:
        """'120 colour images of 64x64', '40 images (12 colour, 28 grey) of sizes from 16x16 to 64x48'."""
        if self.colour in (0, self.count):
            what = f"{self.count} {'colour' if self.colour else 'grey'} image{'s' if self.count > 1 else ''}"
        else:
            what = f"{self.count} images ({self.colour} colour, {self.count - self.colour} grey)"
        if len(self.sizes) == 1:
            (w, h), = self.sizes
            return f"{what} of {w}x{h}"
        ordered = sorted(self.sizes, key=lambda wh: (wh[0] * wh[1], wh))
        return f"{what} of sizes from {ordered[0][0]}x{ordered[0][1]} to {ordered[-1][0]}x{ordered[-1][1]}"


def scan_folder(root: Path) -> FolderShape:
    """The sizes and colour of a folder's images, read from their headers (files that cannot be opened are left
    out here; decoding lists them)."""
    from PIL import Image, UnidentifiedImageError
    sizes: dict[tuple[int, int], int] = {}
    count = colour = 0
    for p in image_files(root):
        try:
            with Image.open(p) as im:
                size, is_colour = im.size, _is_colour(im)
        except (OSError, ValueError, UnidentifiedImageError, Image.DecompressionBombError, SyntaxError):
            continue
        sizes[size] = sizes.get(size, 0) + 1
        count += 1
        colour += is_colour
    return FolderShape(count, colour, sizes)


def supported_sizes(model_config, upto: int = AUTO_MAX_SIZE) -> list[int]:
    """The image sides up to `upto` a model config takes, smallest first: n * 2^k with n from 4 to 7 (the sides the
    image families' conv stacks reach by doubling from a start of at most 7 pixels, tetragen/nn/conv.py
    `start_size`), kept where the config's own `validate` accepts them (a vqvae's downsample must divide the side,
    a vqgan's patch discriminator must leave a grid)."""
    lowest = next(f.metadata.get("min") or 1 for f in dataclasses.fields(model_config) if f.name == "image_size")
    out = []
    for side in sorted({n << k for n in range(4, 8) for k in range(1, 16) if lowest <= n << k <= upto}):
        try:
            dataclasses.replace(model_config, image_size=side).validate()
        except UserError:
            continue
        out.append(side)
    return out


def nearest_size(side: int, sizes: list[int]) -> int:
    """The size nearest to `side` (the larger of two as near)."""
    return min(sizes, key=lambda s: (abs(s - side), -s))


def conversion_notice(root, shape: FolderShape, size: int, channels: int, change: str,
                      always: bool = False) -> str | None:
    """The one line that says what a folder's images become at size x size x channels and what changes it, or None
    when they are that already (unless `always`)."""
    if shape.fits(size, channels) and not always:
        return None
    how = []
    if any(w != h for w, h in shape.sizes):
        how.append("centre-cropped to squares")
    if any(min(w, h) != size for w, h in shape.sizes):
        how.append("resized")
    if channels == 1 and shape.colour:
        how.append("colour turned grey")
    if channels == 3 and shape.colour < shape.count:
        how.append("grey ones as RGB" if shape.colour else "grey as RGB")
    done = f" ({', '.join(how)})" if how else ""
    return f"tetragen: {root}: {shape.describe()} -> training at {size}x{size}x{channels}{done}; {change}"


def fit_model_to_folder(cfg) -> None:
    """A new run on an image folder takes its shape from the images: model.channels left at its default becomes 3
    when any image is in colour, and model.image_size left at its default becomes the images' side (the median of
    their shorter sides when they differ), or the nearest side the model takes, at most AUTO_MAX_SIZE. One line on
    stderr says what the run trains at when that changed a key or the images are not exactly that already. (The run
    config keeps no record of which keys the user gave, so a key at its default counts as not given.)"""
    root = Path(cfg.data.source).expanduser()
    m = cfg.model
    if not root.is_dir() or grids.is_trained(m):
        return
    shape = scan_folder(root)
    if not shape.count:
        return  # decoding the folder says what is wrong with its files
    defaults = {f.name: f.default for f in dataclasses.fields(m)}
    before = (m.image_size, m.channels)
    if m.channels == defaults.get("channels"):
        m.channels = shape.channels
    if m.image_size == defaults.get("image_size"):
        sizes = supported_sizes(m)
        if sizes:
            m.image_size = nearest_size(shape.side, sizes)
    notice = conversion_notice(root, shape, m.image_size, m.channels,
                               "set model.image_size / model.channels to change",
                               always=(m.image_size, m.channels) != before)
    if notice:
        print(notice, file=sys.stderr)


# ----------------------------------------------------------------------------------------------------------------
# the dataset object the trainer and evaluators use

LABEL_DRAW = 0x1ABE1  # second seed word: the labelled subset's draw never coincides with a batch's (seed, step, micro)


def labelled_subset(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of the images whose labels are kept: round(fraction * n_c) of each class c (at least one),
    drawn with `seed`. Stratified, so every class has labelled examples even at a few percent."""
    rng = np.random.default_rng((seed, LABEL_DRAW))
    keep = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        k = min(len(idx), max(1, round(fraction * len(idx))))
        keep.append(rng.permutation(idx)[:k])
    return np.sort(np.concatenate(keep))


class ImageData:
    """A dataset of images: uint8 (N, H, W, C) grids as they are (tetragen/data/grids.py `GridData`)."""
    kind = "image"
    unit = "img"
    item = "image"
    distance = "FID"  # how a line names the Fréchet distance (the key stays "fid" for every kind)
    references_named = {"train": "train vs test", "blur": "3x3-blur vs test"}
    class_parts: dict = {}  # part name -> class index -> the part's index; scored apart when there are any
    stats: dict = {}        # name -> (title, per-item figure of evaluator inputs): none for images
    views: dict = {}        # name -> grids.View, another evaluator's reading: none for images

    def __init__(self, name: str, train: ImageSet, test: ImageSet):
        self.name, self.train, self.test = name, train, test
        self.classes = train.classes
        self.image_shape = train.images.shape[1:]  # (H, W, C)
        # semi-supervised: indices of the training images with and without their label (None: all labelled)
        self.labelled: np.ndarray | None = None
        self.unlabelled: np.ndarray | None = None

    def keep_labels(self, fraction: float, seed: int) -> None:
        """Keep the labels of `fraction` of each class of the training split (see `labelled_subset`); batches then
        carry the other images without labels as "x_u". The test split keeps all its labels."""
        self.labelled = labelled_subset(self.train.labels, fraction, seed)
        self.unlabelled = np.setdiff1d(np.arange(len(self.train.labels)), self.labelled)

    to_model = staticmethod(grids.to_model)
    to_uint8 = staticmethod(grids.to_uint8)

    def count(self, batch: dict) -> int:
        return int(batch["x"].shape[0]) + (int(batch["x_u"].shape[0]) if "x_u" in batch else 0)

    def train_batch(self, *, seed: int, step: int, micro: int, batch_size: int, rank: int = 0,
                    world_size: int = 1) -> dict[str, torch.Tensor]:
        """{"x": (B, C, H, W), "y": (B,), "index": (B,) which training items they are} drawn with replacement from
        (seed, step, micro); after `keep_labels`, "x" and "y" come from the labelled images and "x_u" (B, C, H, W)
        from the others."""
        rng = np.random.default_rng((seed, step, micro))

        def draw(pool: np.ndarray | None) -> np.ndarray:  # this process's share of one global batch
            idx = rng.integers(0, len(self.train.labels) if pool is None else len(pool), size=batch_size * world_size)
            idx = idx if pool is None else pool[idx]
            return np.sort(idx[rank * batch_size:(rank + 1) * batch_size])
        idx = draw(self.labelled)
        batch = {"x": self.to_model(self.train.images[idx]), "y": torch.from_numpy(self.train.labels[idx]),
                 "index": torch.from_numpy(idx)}
        if self.unlabelled is not None and len(self.unlabelled):
            batch["x_u"] = self.to_model(self.train.images[draw(self.unlabelled)])
        return batch

    def save_assets(self, folder: Path) -> None:
        (Path(folder) / "classes.json").write_text(json.dumps({"classes": self.classes,
                                                                "image_shape": list(self.image_shape)}))

    # what the image evaluator reads: the images themselves, real or generated
    def eval_inputs(self, split: str, idx: np.ndarray | None = None) -> np.ndarray:
        images = (self.train if split == "train" else self.test).images
        return images if idx is None else images[idx]

    @property
    def eval_shape(self) -> tuple:
        return tuple(self.image_shape)

    def eval_front(self):
        from ..eval.classifier import ImageFront
        return ImageFront()

    def eval_identity(self) -> dict:
        return {}

    def eval_settings(self) -> dict:
        return {}

    def scored(self, images: np.ndarray) -> np.ndarray:
        return images

    def references(self, real_idx: np.ndarray, train_idx: np.ndarray) -> dict[str, np.ndarray]:
        """The train split (what a perfect generator would score) and the test images blurred with a 3x3 box filter
        (a visibly degraded generator)."""
        return {"train": self.train.images[train_idx], "blur": box_blur(self.test.images[real_idx])}

    def evaluator(self, device, settings=None):
        from ..eval.classifier import load_evaluator
        return load_evaluator(self, device, settings)


def box_blur(images: np.ndarray) -> np.ndarray:
    """3x3 box filter on uint8 (N, H, W, C); at the borders each pixel averages the neighbours inside the image."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    x = torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def test_batches(data: ImageData, device, limit: int = 0, batch_size: int = 500):
    """The test split as (x, y) batches on `device`, x in the models' [-1, 1]; the first `limit` images only when
    limit > 0."""
    n = len(data.test.labels) if limit <= 0 else min(limit, len(data.test.labels))
    for i in range(0, n, batch_size):
        j = min(i + batch_size, n)
        yield (data.to_model(data.test.images[i:j]).to(device), torch.from_numpy(data.test.labels[i:j]).to(device))


def load_image_data(source: str, image_size: int, channels: int, val_fraction: float = 0.1) -> ImageData:
    if not source:
        raise UserError("--data is required: a dataset name (" + ", ".join(IMAGE_DATASETS) + ") or an image folder")
    p = Path(source).expanduser()
    if p.is_dir():
        train, test = image_folder(p, image_size, channels, val_fraction)
        return ImageData(str(p), train, test)
    if p.exists():
        raise UserError(f"--data {source}: expected a folder of images (class sub-folders become labels)")
    if source not in IMAGE_DATASETS:
        raise UserError(f"--data {source}: unknown image dataset; known: {', '.join(IMAGE_DATASETS)}; "
                        f"or pass a folder of images")
    train, test = IMAGE_DATASETS[source][1]()
    h, w, c = train.images.shape[1:]
    if (h, w, c) != (image_size, image_size, channels):
        raise UserError(f"--data {source}: images are {h}x{w}x{c} but the model expects "
                        f"{image_size}x{image_size}x{channels}; set model.image_size={h} model.channels={c}")
    return ImageData(source, train, test)


# ----------------------------------------------------------------------------------------------------------------
# what a run on images reads (the image modality's GridForm; tetragen/data/grids.py does the rest)

def is_animated(path: Path) -> bool:
    """Whether an image file holds more than one frame (an animated GIF, PNG or WebP: a clip, not an image)."""
    from PIL import Image
    try:
        with Image.open(path) as im:
            return getattr(im, "n_frames", 1) > 1
    except Exception:
        return False


def claims(source: str) -> bool:
    """Whether a --data source is images: Fashion-MNIST, or a folder with image files in it (animated ones are
    clips, not images)."""
    if source in IMAGE_DATASETS:
        return True
    p = Path(source).expanduser()
    return p.is_dir() and any(q.suffix.lower() in IMAGE_SUFFIXES and not is_animated(q)
                              for q in p.rglob("*") if q.is_file())


def read_run_images(cfg, assets=None) -> ImageData:
    """The images a run config asks for; a new run on a folder takes model.channels and model.image_size from it
    (`fit_model_to_folder`)."""
    if assets is None:
        fit_model_to_folder(cfg)
    if cfg.model.channels not in (1, 3):
        raise UserError(f"model.channels={cfg.model.channels}: images have 1 (grey) or 3 (RGB) channels")
    return load_image_data(cfg.data.source, cfg.model.image_size, cfg.model.channels, cfg.data.val_fraction)

