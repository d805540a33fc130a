"""Label Studio's brush RLE: the run-length code of a brush mask's RGBA pixels.

Label Studio stores a ``BrushLabels`` region as ``value.rle``, a list of bytes holding the
``[H, W, 4]`` RGBA image of the region (row-major, 8-bit channels) coded by thi.ng's
``rle-pack``; the mask is the alpha channel. The bit stream (most significant bit first):

- 32 bits: ``num``, the number of values (``H * W * 4``);
- 5 bits: ``word_size - 1`` (bits per value, 8 for RGBA bytes);
- 4 × 4 bits: ``rle_sizes[k] - 1``, the bit widths of the four run-length fields;
- then blocks until ``num`` values are read: 1 bit ``repeat``, 2 bits ``k``, ``rle_sizes[k]``
  bits ``n - 1``; a repeat block holds one value used ``n`` times, a literal block ``n``
  values; the last byte is padded with zeros.

The decoder reads any word size and field widths from the header (Label Studio's front end and
``label-studio-converter`` choose their own); the encoder writes 8-bit words with field widths
``(3, 4, 8, 16)`` as ``label-studio-converter.brush.encode_rle`` does. That package is not a
dependency (it pulls pandas and nltk), so the format is implemented here and tested against a
bit string decoded by hand (``tests/project/test_interchange_label_studio.py``).

References:
    https://github.com/thi-ng/umbrella/blob/develop/packages/rle-pack/src/index.ts;
    label-studio-converter ``brush.py`` (decode_rle, encode_rle, mask2rle).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medactive.errors import DataError

RLE_SIZES = (3, 4, 8, 16)
#: alpha at or above this is inside the region (brush strokes may have soft edges)
ALPHA_THRESHOLD = 128


def encode(values: np.ndarray, *, rle_sizes: Sequence[int] = RLE_SIZES) -> list[int]:
    """Code ``values`` (``[n]`` integers 0..255) as RLE bytes with 8-bit words.

    Example:
        >>> encode(np.array([0, 0, 0, 0, 255, 255, 255, 255]))[:4]
        [0, 0, 0, 8]
    """
    values = np.asarray(values).ravel()
    if values.size and (values.min() < 0 or values.max() > 255):
        raise ValueError("brush RLE values must be 0..255")
    bits = [f"{values.size:032b}", f"{8 - 1:05b}", "".join(f"{s - 1:04b}" for s in rle_sizes)]
    longest = 1 << rle_sizes[-1]
    if values.size:
        change = np.flatnonzero(values[1:] != values[:-1]) + 1
        starts = np.concatenate([[0], change])
        lengths = np.diff(np.concatenate([starts, [values.size]]))
        for start, length in zip(starts.tolist(), lengths.tolist()):
            word = f"{int(values[start]):08b}"
            while length > 0:
                n = min(length, longest)
                k = next(i for i, s in enumerate(rle_sizes) if n <= 1 << s)
                # a run of one is a literal block of one value, as the converter writes it
                bits.append(("1" if n > 1 else "0") + f"{k:02b}"
                            + f"{n - 1:0{rle_sizes[k]}b}" + word)
                length -= n
    stream = "".join(bits)
    stream += "0" * (-len(stream) % 8)
    return [int(stream[i:i + 8], 2) for i in range(0, len(stream), 8)]


def decode(rle: Sequence[int]) -> np.ndarray:
    """The ``[num]`` values of RLE bytes (any word size of at most 8 bits).

    Raises:
        DataError: not a list of bytes, or a stream that ends early.
    """
    try:
        data = bytes(int(b) for b in rle)
    except (TypeError, ValueError) as exc:
        raise DataError(f"brush RLE is not a list of bytes 0..255 ({exc})") from None
    stream = "".join(f"{b:08b}" for b in data)
    pos = 0

    def read(n: int) -> int:
        nonlocal pos
        if pos + n > len(stream):
            raise DataError("brush RLE ends early (truncated)")
        value = int(stream[pos:pos + n], 2) if n else 0
        pos += n
        return value

    num = read(32)
    word_size = read(5) + 1
    sizes = [read(4) + 1 for _ in range(4)]
    if word_size > 8:
        raise DataError(f"brush RLE has {word_size}-bit values; masks need 8 at most")
    if num > 8 * len(stream) * 1024:  # a run codes at most 2**16 values per ~27 bits
        raise DataError(f"brush RLE claims {num} values, more than its bytes can hold")
    out = np.zeros(num, dtype=np.uint8)
    i = 0
    while i < num:
        repeat = read(1)
        j = min(num, i + 1 + read(sizes[read(2)]))
        if repeat:
            out[i:j] = read(word_size)
        else:
            out[i:j] = [read(word_size) for _ in range(j - i)]
        i = j
    return out


def mask_to_rle(mask: np.ndarray) -> list[int]:
    """The RLE of a ``[H, W]`` boolean region as Label Studio draws it: RGBA ``255`` inside,
    ``0`` outside (``label-studio-converter``'s ``mask2rle`` of ``mask * 255``)."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"a brush mask is [H, W], got shape {mask.shape}")
    return encode(np.repeat((mask > 0).astype(np.uint8).ravel() * 255, 4))


def rle_to_mask(rle: Sequence[int], height: int, width: int) -> np.ndarray:
    """The ``[H, W]`` boolean region of a brush RLE (alpha ≥ :data:`ALPHA_THRESHOLD`).

    Raises:
        DataError: bad RLE, or a value count other than ``height * width * 4``.
    """
    values = decode(rle)
    if values.size != height * width * 4:
        raise DataError(f"brush RLE holds {values.size} values, expected {height} x {width} x 4 "
                        f"= {height * width * 4} (original_height x original_width x RGBA)")
    return values.reshape(height, width, 4)[:, :, 3] >= ALPHA_THRESHOLD
