"""Image file helpers shared by the folder, NCT-CRC-HE and ISIC loaders.

Every loader turns image files into ``uint8`` arrays shaped ``[H, W, C]`` with a fixed channel
count ``C`` (1 grayscale, 3 RGB) and a fixed size, read lazily through :class:`LazyImages`.
Errors name the file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from medactive.data.pool import LazyImages
from medactive.errors import DataError

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
GRAYSCALE_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"})


def check_image_size(image_size: int | tuple[int, int] | None) -> tuple[int, int] | None:
    """Return ``image_size`` as ``(height, width)`` (an int means square), or ``None``."""
    if image_size is None:
        return None
    size = (image_size, image_size) if isinstance(image_size, (int, np.integer)) else image_size
    try:
        height, width = (int(s) for s in size)
    except (TypeError, ValueError):
        raise DataError(f"image_size must be an int or (height, width), got {image_size!r}")
    if height < 1 or width < 1:
        raise DataError(f"image_size must be positive, got {image_size!r}")
    return height, width


def probe_image(path: Path) -> tuple[tuple[int, int], str]:
    """``((height, width), mode)`` of an image file, reading only its header."""
    try:
        with Image.open(path) as img:
            return (img.height, img.width), img.mode
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise DataError(f"{path}: not a readable image ({exc})") from exc


def _to_uint8(img: Image.Image, channels: int) -> Image.Image:
    """Convert any Pillow mode to ``L`` (``channels=1``) or ``RGB`` (``channels=3``)."""
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        # 16-bit / float images: stretch to 0..255 instead of clipping at 255.
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        img = Image.fromarray(np.round(arr).astype(np.uint8), mode="L")
    elif img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
    return img.convert("L" if channels == 1 else "RGB")


def read_image(path: str | Path, *, channels: int,
               size: tuple[int, int] | None = None) -> np.ndarray:
    """Read one image file as ``uint8`` ``[H, W, channels]``, resized to ``size`` if given.

    Args:
        path: PNG, JPEG or TIFF file.
        channels: 1 (grayscale) or 3 (RGB).
        size: ``(height, width)``; resized with bilinear interpolation when it differs.

    Raises:
        DataError: the file is missing or is not a readable image (message names the file).
    """
    try:
        with Image.open(path) as img:
            img.load()
            img = _to_uint8(img, channels)
            if size is not None and (img.height, img.width) != tuple(size):
                img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            arr = np.asarray(img, dtype=np.uint8)
    except FileNotFoundError as exc:
        raise DataError(f"{path}: image file not found") from exc
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
        raise DataError(f"{path}: not a readable image ({exc})") from exc
    return arr[..., None] if arr.ndim == 2 else arr


def lazy_images(paths: Sequence[Path], *, channels: int,
                size: tuple[int, int] | None) -> LazyImages:
    """A :class:`LazyImages` reading ``paths[i]`` with :func:`read_image` on demand."""
    paths = list(paths)
    return LazyImages(len(paths), lambda i: read_image(paths[i], channels=channels, size=size))


def infer_format(paths: Sequence[Path], *, channels: int | None,
                 image_size: int | tuple[int, int] | None) -> tuple[int, tuple[int, int]]:
    """Decide the channel count and size of a set of files from their headers.

    ``channels=None``: 1 if every file is grayscale, else 3. ``image_size=None``: the common
    size of all files, or a :class:`DataError` asking for ``image_size`` when they differ.
    """
    size = check_image_size(image_size)
    if channels is not None and channels not in (1, 3):
        raise DataError(f"channels must be 1 or 3, got {channels!r}")
    if channels is not None and size is not None:
        return channels, size
    sizes: dict[tuple[int, int], Path] = {}
    grayscale = True
    for path in paths:
        shape, mode = probe_image(path)
        sizes.setdefault(shape, path)
        grayscale = grayscale and mode in GRAYSCALE_MODES
    if size is None:
        if len(sizes) > 1:
            (s1, p1), (s2, p2) = list(sizes.items())[:2]
            raise DataError(f"images differ in size ({p1}: {s1[0]}x{s1[1]}, {p2}: "
                            f"{s2[0]}x{s2[1]}); pass image_size to resize them")
        if not sizes:
            raise DataError("no images to infer the image size from; pass image_size")
        size = next(iter(sizes))
    if channels is None:
        channels = 1 if grayscale else 3
    return channels, size


def resize_array(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an in-memory ``uint8`` stack ``[N, H, W, C]`` to ``[N, *size, C]`` (bilinear)."""
    if images.shape[1:3] == tuple(size):
        return images
    out = np.empty((images.shape[0], size[0], size[1], images.shape[3]), dtype=np.uint8)
    for i, image in enumerate(images):
        img = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
        img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        out[i] = np.asarray(img).reshape(size[0], size[1], images.shape[3])
    return out


def find_images(root: str | Path) -> list[tuple[str, Path]]:
    """All image files under ``root`` as ``(id, path)`` sorted by id.

    The id is the path relative to ``root`` without extension, with ``/`` separators
    (``case0001``, ``site2/case0001``). Hidden files and folders are skipped.

    Raises:
        DataError: two files share an id (e.g. ``a.png`` and ``a.jpg``).
    """
    root = Path(root)
    found: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for filename in filenames:
            path = Path(dirpath) / filename
            if filename.startswith(".") or path.suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            sample_id = path.relative_to(root).with_suffix("").as_posix()
            if sample_id in found:
                raise DataError(f"{root}: two images share the id {sample_id!r} "
                                f"({found[sample_id].name} and {filename})")
            found[sample_id] = path
    return sorted(found.items())
