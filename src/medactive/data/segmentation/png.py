"""2D image/mask pairs (PNG, JPEG, TIFF) as one-slice volumes.

Many 2D segmentation sets (skin lesions, polyps, breast ultrasound, chest X-ray lungs) come as::

    FOLDER/images/NAME.png     .png, .jpg, .jpeg, .tif, .tiff (sub-folders allowed: site2/NAME)
    FOLDER/masks/NAME.png      (or labels/): .png, .tif, .tiff; NAME_mask.png etc. also match
    FOLDER/val.list, FOLDER/test.list   optional: image ids (one NAME a line) for evaluation
    FOLDER/classes.txt                   optional: class names, background first

(the image and mask folder names of :mod:`.nifti` are accepted too). The sample id is the
image's path relative to ``images/`` without extension, with ``/`` separators.

- **Images** are read as grey: the U-Net of :mod:`.unet` has one input channel, so an RGB(A)
  image is converted with Pillow's ``convert("L")`` (ITU-R 601 luma
  ``L = 0.299 R + 0.587 G + 0.114 B``, alpha dropped); 16-bit and float images keep their
  values. Each image is then min-max normalised to ``[0, 1]``, as a NIfTI volume is. A
  multi-page TIFF is refused (a stack is a volume: store it as NIfTI).
- **Masks** hold class indices ``0..C-1`` in one channel (a palette PNG's indices are the
  values; an RGB mask is accepted only when its three channels are equal). A mask whose only
  values are 0 and 255 is a **binary mask**: 255 is read as class 1. JPEG masks are refused
  (compression changes the label values).
- Each pair is a volume ``[1, H, W]`` with unknown spacing, so Dice/ASD/HD95 are those of a 2D
  label map and distances are in **pixels**. Images may differ in size: the task resizes every
  slice to the preset's ``image_size`` and scores predictions at the original size.

Classes come from ``classes.txt``, else ``background, class_1 .. class_K`` for the largest mask
value ``K`` found (every mask is read once to find it). The split comes from
``val.list``/``test.list``, else the fixed seeded 70/10/20 split by image of
:func:`~medactive.data.segmentation.base.split_groups` (each image is its own group: images of one
patient may land in different splits; give the lists to keep them together).

Example:
    >>> data = load_image_folder("kvasir")  # doctest: +SKIP
    >>> data.train[0].id, data.train[0].load()[0].shape  # doctest: +SKIP
    ('cju0qkwl35piu0993l0dewei2', (529, 622))
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medactive.data.segmentation.base import (
    SegmentationData,
    SliceRef,
    VolumeRef,
    check_pair,
    natural_key,
    read_classes,
    read_list,
    split_groups,
)
from medactive.errors import DataError

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
MASK_FILE_SUFFIXES = (".png", ".tif", ".tiff")
#: Pillow modes read with their own values (not converted to 8-bit grey)
_DEEP_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "F"})

Pair = tuple[str, Path, Path]


def _dirs():
    from medactive.data.segmentation.nifti import IMAGE_DIRS, MASK_DIRS, MASK_SUFFIXES

    return IMAGE_DIRS, MASK_DIRS, MASK_SUFFIXES


def pair_dirs(path: str | Path) -> tuple[Path | None, Path | None]:
    """``(images folder, masks folder)`` of ``path``, each ``None`` when absent."""
    path = Path(path)
    image_dirs, mask_dirs, _ = _dirs()
    image_dir = next((path / d for d in image_dirs if (path / d).is_dir()), None)
    mask_dir = next((path / d for d in mask_dirs if (path / d).is_dir()), None)
    return image_dir, mask_dir


def is_image_file(path: str | Path) -> bool:
    """Whether ``path`` has a 2D image extension (reads nothing)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def _files(folder: Path, suffixes: Sequence[str]) -> dict[str, Path]:
    """``{id: path}`` of the files under ``folder`` with one of ``suffixes`` (hidden skipped)."""
    from medactive.data.images import find_images

    return {sid: p for sid, p in find_images(folder) if p.suffix.lower() in suffixes}


def is_image_folder(path: str | Path) -> bool:
    """Whether ``path`` holds an images folder with 2D images beside a masks folder (lists
    files, reads none)."""
    image_dir, mask_dir = pair_dirs(path)
    if image_dir is None or mask_dir is None:
        return False
    return any(p.is_file() and is_image_file(p) and not p.name.startswith(".")
               for p in image_dir.rglob("*"))


def match_images(root: str | Path, *, require_masks: bool = True
                 ) -> list[tuple[str, Path, Path | None]]:
    """``(id, image, mask or None)`` of the 2D images of ``root``, in natural id order.

    The mask of image ``NAME`` is ``masks/NAME`` with a mask extension, or ``NAME_mask`` (also
    ``_gt``, ``_seg``, ``_label``, ``_labels``).

    Args:
        root: the folder holding ``images/`` (and ``masks/`` or ``labels/``).
        require_masks: every image needs a mask (``medactive run``); else a missing mask is
            ``None`` (an annotation project's unlabelled pool).

    Raises:
        DataError: no images folder or no images in it; a mask without an image (or, with
            ``require_masks``, an image without a mask, or no masks folder); a JPEG mask; two
            files with one id. The message names the file.
    """
    root = Path(root)
    image_dir, mask_dir = pair_dirs(root)
    _, _, suffixes = _dirs()
    if image_dir is None:
        raise DataError(f"{root}: no images/ folder of 2D images")
    if mask_dir is None and require_masks:
        raise DataError(f"{root}: no masks/ (or labels/) folder beside {image_dir.name}/; "
                        "segmentation needs a mask per image")
    images = _files(image_dir, IMAGE_SUFFIXES)
    if not images:
        raise DataError(f"{image_dir}: no 2D images ({', '.join(IMAGE_SUFFIXES)}) found")
    masks: dict[str, Path] = {}
    if mask_dir is not None:
        found = _files(mask_dir, IMAGE_SUFFIXES)
        jpeg = [p for p in found.values() if p.suffix.lower() not in MASK_FILE_SUFFIXES]
        if jpeg:
            raise DataError(f"{min(jpeg)}: JPEG masks are not accepted (compression changes "
                            "the label values); save masks as PNG or TIFF")
        masks = found
    out: list[tuple[str, Path, Path | None]] = []
    for sid in sorted(images, key=natural_key):
        key = next((k for k in (sid, *(sid + s for s in suffixes)) if k in masks), None)
        mask = masks.pop(key) if key is not None else None
        if mask is None and require_masks:
            raise DataError(f"{images[sid]}: no mask named {sid}.png (or .tif) in {mask_dir}")
        out.append((sid, images[sid], mask))
    if masks:
        name = min(masks, key=natural_key)
        raise DataError(f"{masks[name]}: mask without an image in {image_dir}")
    return out


def find_image_pairs(root: str | Path) -> list[Pair]:
    """``(id, image, mask)`` of every 2D image of ``root`` (see :func:`match_images`)."""
    return [(sid, image, mask) for sid, image, mask in match_images(root)
            if mask is not None]


def _open(path: Path, what: str):
    """An opened, loaded single-page Pillow image; every failure is a DataError naming it."""
    from PIL import Image, UnidentifiedImageError

    errors = (OSError, UnidentifiedImageError, ValueError, SyntaxError,
              Image.DecompressionBombError)
    try:
        img = Image.open(path)
    except FileNotFoundError as exc:
        raise DataError(f"{path}: {what} file not found") from exc
    except errors as exc:
        raise DataError(f"{path}: not a readable {what} ({exc})") from exc
    try:
        n_pages = getattr(img, "n_frames", 1)
        if n_pages > 1:
            raise DataError(f"{path}: a multi-page {what} ({n_pages} pages); a 2D {what} has "
                            "one (store a stack as a NIfTI volume)")
        img.load()
    except DataError:
        img.close()
        raise
    except errors as exc:
        img.close()
        raise DataError(f"{path}: not a readable {what} ({exc})") from exc
    return img


def read_image_2d(path: str | Path) -> np.ndarray:
    """A 2D image as grey float32 ``[H, W]`` min-max normalised to ``[0, 1]``.

    RGB(A), palette and 1-bit images are converted with Pillow's ``convert("L")``
    (``0.299 R + 0.587 G + 0.114 B``); 16-bit and float images keep their values.

    Raises:
        DataError: missing, unreadable or multi-page file, or NaN/inf values (names the file).

    Example:
        >>> read_image_2d("images/case0.png").shape  # doctest: +SKIP
        (12, 16)
    """
    from medactive.data.segmentation.base import normalise

    path = Path(path)
    with _open(path, "image") as img:
        arr = np.asarray(img if img.mode in _DEEP_MODES else img.convert("L"),
                         dtype=np.float32)
    if arr.ndim != 2:
        raise DataError(f"{path}: image has shape {arr.shape}; expected a 2D image")
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{path}: image contains NaN or infinite values")
    return normalise(arr)


def read_mask_2d(path: str | Path, *, n_classes: int | None = None) -> np.ndarray:
    """A 2D mask as ``[H, W]`` class indices, a 0/255 binary mask mapped to 0/1.

    Args:
        path: PNG or TIFF file, one channel (an RGB mask must have equal channels; a palette
            PNG gives its indices).
        n_classes: the class count; 255 is mapped to 1 only when it is not a class itself
            (``n_classes`` unknown or at most 255).

    Raises:
        DataError: missing, unreadable or multi-page file, or a colour mask (names the file).
    """
    path = Path(path)
    with _open(path, "mask") as img:
        mode = img.mode
        arr = np.asarray(img)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if arr.ndim == 3:
        colour = arr[..., :3] if mode.startswith(("RGB", "CMYK")) else arr[..., :1]
        if not np.all(colour == colour[..., :1]):
            raise DataError(f"{path}: a colour mask (mode {mode}); store class indices "
                            "0..C-1 in a single-channel (grey or palette) PNG")
        arr = colour[..., 0]
    if arr.ndim != 2:
        raise DataError(f"{path}: mask has shape {arr.shape}; expected a 2D mask")
    if n_classes is None or n_classes <= 255:
        values = np.unique(arr)
        if 255 in values and np.isin(values, (0, 255)).all():
            arr = (arr == 255).astype(np.uint8)
    return arr


def read_image_pair(image_path: str | Path, mask_path: str | Path, n_classes: int,
                    classes: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read and check a pair as a one-slice volume: ``(image [1, H, W] float32,
    mask [1, H, W] uint8)``.

    Raises:
        DataError: an unreadable file, a mask whose size differs from its image, or mask values
            outside ``0..n_classes-1``; the message names the file.
    """
    image = read_image_2d(image_path)
    mask = read_mask_2d(mask_path, n_classes=n_classes)
    if image.shape != mask.shape:
        raise DataError(f"{mask_path}: mask size {mask.shape[1]}x{mask.shape[0]} (WxH) differs "
                        f"from its image {image_path} ({image.shape[1]}x{image.shape[0]})")
    if mask.size and np.issubdtype(mask.dtype, np.integer):
        values = np.unique(mask)
        bad = values[(values < 0) | (values >= n_classes)]
        if bad.size:
            names = f" ({', '.join(classes)})" if classes else ""
            raise DataError(f"{mask_path}: mask values {[int(v) for v in bad[:5]]} are outside "
                            f"the classes 0..{n_classes - 1}{names}; a binary mask holds 0/1 "
                            "or 0/255 only (threshold an anti-aliased mask)")
    image, mask = check_pair(image, mask, n_classes, str(mask_path), classes=classes)
    return image[None], mask[None]


def image_refs(pairs: Sequence[Pair], n_classes: int, classes: tuple[str, ...], *,
               slices: bool) -> tuple[list[SliceRef], list[VolumeRef]]:
    """Slice references (``slices=True``, the pool) or one-slice volume references of
    ``(id, image, mask)`` pairs; each image is its own group and volume. Reads no file."""
    slice_refs: list[SliceRef] = []
    volumes: list[VolumeRef] = []
    for sid, image_path, mask_path in pairs:
        def load(image_path=image_path, mask_path=mask_path):
            return read_image_pair(image_path, mask_path, n_classes, classes)

        if slices:
            def load_slice(load=load):
                image, mask = load()
                return image[0], mask[0]

            slice_refs.append(SliceRef(sid, sid, sid, str(image_path), load_slice))
        else:
            volumes.append(VolumeRef(sid, sid, str(image_path), None, load))
    return slice_refs, volumes


def read_id_list(file: Path, ids: set[str]) -> set[str]:
    """The image ids a ``val.list``/``test.list`` names (an image extension is allowed).

    Raises:
        DataError: the list names an id not in ``ids``.
    """
    names = set()
    for name in read_list(file):
        stem = name
        for suffix in IMAGE_SUFFIXES:
            if name.lower().endswith(suffix) and name[: -len(suffix)] in ids:
                stem = name[: -len(suffix)]
        names.add(stem)
    unknown = names - ids
    if unknown:
        raise DataError(f"{file}: names images not in the folder: "
                        f"{sorted(unknown, key=natural_key)[:5]}")
    return names


def load_image_folder(path: str | Path) -> SegmentationData:
    """Read a folder of 2D image/mask pairs (see the module docstring).

    Sample ids are the image paths relative to ``images/`` without extension; every val/test
    "volume" is one image ``[1, H, W]``.

    Raises:
        DataError: no images, unmatched files, unreadable masks (when inferring the classes),
            a list naming an unknown image, fewer than 3 images without lists; image/mask
            errors surface when a pair is read, naming its file.
    """
    path = Path(path)
    pairs = find_image_pairs(path)
    classes, class_note = read_classes(path, [m for _, _, m in pairs], read_mask_2d,
                                       integers_only=True)
    ids = [p[0] for p in pairs]
    notes = [class_note, ("2D image/mask pairs: one-slice volumes, images converted to grey, "
                          "0/255 masks read as 0/1, distances in pixels")]
    if (path / "test.list").is_file() or (path / "val.list").is_file():
        named = {split: read_id_list(path / f"{split}.list", set(ids))
                 if (path / f"{split}.list").is_file() else set() for split in ("val", "test")}
        if not named["val"] or not named["test"]:
            raise DataError(f"{path}: give both val.list and test.list (one image id a line)")
        both = named["val"] & named["test"]
        if both:
            raise DataError(f"{path}: val.list and test.list both name "
                            f"{sorted(both, key=natural_key)[:5]}")
        val, test = named["val"], named["test"]
        train = set(ids) - val - test
        notes.append("split from val.list/test.list")
    else:
        train, val, test = split_groups(ids)
        notes.append("fixed 70/10/20 split by image (seed 0); add val.list/test.list to choose")
    by_split = {s: [p for p in pairs if p[0] in members]
                for s, members in (("train", train), ("val", val), ("test", test))}
    if not by_split["train"]:
        raise DataError(f"{path}: no training images left after the val/test split")
    train_slices, _ = image_refs(by_split["train"], len(classes), classes, slices=True)
    _, val_volumes = image_refs(by_split["val"], len(classes), classes, slices=False)
    _, test_volumes = image_refs(by_split["test"], len(classes), classes, slices=False)
    logger.info("%s: %d 2D image/mask pairs (%d train, %d val, %d test)", path, len(pairs),
                len(train_slices), len(val_volumes), len(test_volumes))
    return SegmentationData(name=path.name, source=str(path), layout="image-folder",
                            classes=classes, train=train_slices, val=val_volumes,
                            test=test_volumes, frames="all", spacing_source=None, notes=notes)
