"""Reading and writing 2-D images and label maps (PNG, JPG/JPEG, TIF/TIFF, BMP, NPY).

Conventions (DESIGN.md §1):

- An image is float32 ``[3, H, W]`` in [-1, 1]. Grey images are replicated to 3 channels; RGBA/LA lose their
  alpha channel; palette images are converted to RGB. 8- and 16-bit integer images are scaled by their dtype
  range (``0 .. 255`` or ``0 .. 65535`` to -1 .. 1), so the absolute intensity of a 16-bit scan is kept.
  Float images (NPY, float TIFF) and other integer dtypes are kept as they are when already inside
  [-1, 1] and min-max normalised per image to [-1, 1] otherwise (a constant image becomes 0). Note that a
  float image in [0, 1] is therefore read as-is, i.e. as the upper half of the range. NaN/inf is refused.
  NPY arrays may be ``[H, W]``, ``[H, W, C]`` or ``[C, H, W]`` with C in {1, 3, 4} (the last axis wins when
  both would fit).
- A label is int64 ``[H, W]``: 0 = background, 1..K classes. Palette PNGs are read by palette index; colour
  labels (RGB with unequal channels) are refused; masks stored as exactly the values {0, 255} are read as
  0/1. A label with more than ``max_classes + 1`` distinct values (e.g. JPEG-compressed or a continuous
  mask), with a class id above ``max_classes``, or with negative or non-integer values is refused.

In-memory input follows the same rules: :func:`image_from_array` / :func:`label_from_array` for arrays,
:func:`decode_image` / :func:`decode_label` for encoded bytes (uploads); :func:`encode_image_png` /
:func:`encode_label_png` give the exact bytes :func:`write_image_png` / :func:`write_label_png` write.

Every error the user can cause raises :class:`AugPaintError` with one line naming the file (``display``,
defaulting to the path).
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import AugPaintError

#: File suffixes (lower case) read by :func:`read_image` / :func:`read_label`.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".npy")


class TooManyPixels(AugPaintError):
    """An image larger than the caller's pixel limit (refused from its header, before decoding)."""


def _name(path, display) -> str:
    return display if display is not None else str(path)


def _open_pil(path, display: str, max_pixels: int | None = None, min_side: int | None = None) -> Image.Image:
    """Open and decode an image file (a path or a binary file object); ``max_pixels`` refuses larger images
    from their header, before decoding (decompression bombs); ``min_side`` reduces the image while decoding
    (see :func:`decode_image`)."""
    try:
        img = Image.open(path)
        if max_pixels is not None and img.width * img.height > max_pixels:
            raise TooManyPixels(f"{display} is {img.width}x{img.height} pixels, more than the limit of {max_pixels}")
        if min_side is not None and _reduction(img.size, min_side) > 1:
            img.draft(img.mode, tuple(side // _reduction(img.size, min_side) for side in img.size))  # JPEG only
        img.load()  # decode now, so truncated files fail here
    except FileNotFoundError:
        raise AugPaintError(f"{display} does not exist") from None
    except UnidentifiedImageError:
        raise AugPaintError(f"{display} is not a readable image (corrupt or unknown format)") from None
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise AugPaintError(f"{display} is corrupt or truncated ({msg})") from None
    if min_side is not None and _reduction(img.size, min_side) > 1:
        img = _reducible(img).reduce(_reduction(img.size, min_side))
    return img


def _reduction(size: tuple[int, int], min_side: int) -> int:
    """The largest integer factor that keeps the short side of ``size`` at ``min_side`` or more (1: none)."""
    return max(1, min(size) // min_side)


def _reducible(img: Image.Image) -> Image.Image:
    """``img`` in a mode ``Image.reduce`` averages, by the module's conversions (palette to RGB, 16-bit to 32)."""
    converted = {"1": "L", "P": "RGB", "PA": "RGBA"}.get(img.mode, "I" if img.mode.startswith("I;16") else None)
    return img if converted is None else img.convert(converted)


def image_header(data: bytes, display: str = "image") -> tuple[int, int, str]:
    """``(width, height, PIL mode)`` of an encoded image from its header alone (nothing is decoded)."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.width, img.height, img.mode
    except UnidentifiedImageError:
        raise AugPaintError(f"{display} is not a readable image (corrupt or unknown format)") from None
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise AugPaintError(f"{display} is corrupt or truncated ({msg})") from None


def decoded_bytes_per_pixel(mode: str) -> int:
    """Bytes a pixel of a PIL image in ``mode`` takes once decoded, and once more for the conversion
    :func:`decode_image` makes before reducing (palette to RGB, 1-bit to 8, 16-bit to 32)."""
    stored = 1 if mode in ("1", "L", "P") else 2 if mode.startswith("I;16") else 4
    converted = {"1": 1, "P": 4, "PA": 4}.get(mode, 4 if mode.startswith("I;16") else 0)
    return stored + converted


def _load_npy(path: Path, display: str) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise AugPaintError(f"{display} does not exist") from None
    except (OSError, ValueError, EOFError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise AugPaintError(f"{display} is not a readable .npy array ({msg})") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "biuf":
        raise AugPaintError(f"{display} holds {getattr(arr, 'dtype', type(arr))} data; expected a numeric array")
    return arr


def _pil_to_array(img: Image.Image) -> np.ndarray:
    """PIL image -> numpy [H, W] or [H, W, 3] keeping integer depth (uint8 / uint16) or float32."""
    mode = img.mode
    if mode in ("RGBA", "CMYK", "YCbCr", "LAB", "HSV", "RGBX", "RGBa"):
        img = img.convert("RGB")
    elif mode == "P" or mode == "PA":
        img = img.convert("RGB")
    elif mode in ("LA", "La", "1"):
        img = img.convert("L")
    elif mode.startswith("I;16"):
        return np.asarray(img).astype(np.uint16, copy=False)
    elif mode == "I":
        arr = np.asarray(img)
        # Pillow reads 16-bit greyscale from some formats as 32-bit "I"; treat values that fit as 16-bit.
        if arr.size and arr.min() >= 0 and arr.max() <= 65535:
            return arr.astype(np.uint16)
        return arr.astype(np.int64)
    return np.asarray(img)


def _hwc_from_array(arr: np.ndarray, display: str) -> np.ndarray:
    """Bring an array to [H, W, C] with C in {1, 3}."""
    if arr.ndim == 2:
        arr = arr[:, :, None]
    elif arr.ndim == 3:
        if arr.shape[-1] not in (1, 2, 3, 4) and arr.shape[0] in (1, 2, 3, 4):
            arr = np.moveaxis(arr, 0, -1)
        if arr.shape[-1] not in (1, 2, 3, 4):
            raise AugPaintError(f"{display} has shape {arr.shape}; expected [H, W], [H, W, C] or [C, H, W], C <= 4")
        if arr.shape[-1] == 2:  # grey + alpha
            arr = arr[:, :, :1]
        elif arr.shape[-1] == 4:  # RGBA
            arr = arr[:, :, :3]
    else:
        raise AugPaintError(f"{display} has shape {arr.shape}; expected a 2-D image")
    if arr.shape[0] < 2 or arr.shape[1] < 2:
        raise AugPaintError(f"{display} is only {arr.shape[0]}x{arr.shape[1]} pixels")
    return arr


def normalise_intensity(arr: np.ndarray, display: str) -> np.ndarray:
    """Any numeric array -> float32 in [-1, 1] following the module conventions."""
    if arr.dtype == np.bool_:
        return arr.astype(np.float32) * 2.0 - 1.0
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) * np.float32(2.0 / 255.0) - 1.0
    if arr.dtype == np.uint16:
        return (arr.astype(np.float64) * (2.0 / 65535.0) - 1.0).astype(np.float32)
    x = arr.astype(np.float64)
    if not np.isfinite(x).all():
        raise AugPaintError(f"{display} contains NaN or infinite values")
    if x.size == 0:
        raise AugPaintError(f"{display} is empty")
    lo, hi = float(x.min()), float(x.max())
    if lo >= -1.0 and hi <= 1.0:
        return x.astype(np.float32)
    if hi <= lo:
        return np.zeros(x.shape, np.float32)
    return ((x - lo) * (2.0 / (hi - lo)) - 1.0).clip(-1.0, 1.0).astype(np.float32)


def image_from_array(arr: np.ndarray, display: str = "image") -> np.ndarray:
    """An image array (``[H, W]``, ``[H, W, C]`` or ``[C, H, W]``, any numeric dtype) as float32 ``[3, H, W]``
    in [-1, 1], by the module's rules."""
    arr = _hwc_from_array(np.asarray(arr), display)
    x = normalise_intensity(arr, display)
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    return np.ascontiguousarray(np.moveaxis(x, -1, 0), dtype=np.float32)


def read_image(path, display: str | None = None) -> np.ndarray:
    """Read a 2-D image file as float32 ``[3, H, W]`` in [-1, 1] (see the module docstring)."""
    path = Path(path)
    display = _name(path, display)
    if path.suffix.lower() == ".npy":
        return image_from_array(_load_npy(path, display), display)
    return image_from_array(_pil_to_array(_open_pil(path, display)), display)


def decode_image(data: bytes, display: str = "image", max_pixels: int | None = None,
                 min_side: int | None = None) -> np.ndarray:
    """An encoded image (PNG, JPEG, TIFF, BMP bytes) as float32 ``[3, H, W]`` in [-1, 1], like ``read_image``.

    ``max_pixels`` refuses a larger image (:class:`TooManyPixels`) from its header. ``min_side`` reduces an
    image whose short side is at least twice that while decoding, by the largest integer factor that keeps the
    short side at ``min_side`` or more (JPEG: decoded at a smaller scale with ``Image.draft``; else a box
    filter, ``Image.reduce``, on the decoded pixels), so no float copy at full size is made; smaller images are
    decoded exactly as ``read_image`` reads them.
    """
    return image_from_array(_pil_to_array(_open_pil(io.BytesIO(data), display, max_pixels, min_side)), display)


def check_label_values(arr: np.ndarray, display: str, max_classes: int) -> np.ndarray:
    """Validate a 2-D (or 3-D volume) label array and return it as int64 (0/255 masks become 0/1)."""
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise AugPaintError(f"{display} contains NaN or infinite values; a label must be a class map")
        if not np.array_equal(arr, np.round(arr)):
            raise AugPaintError(f"{display} has non-integer values; a label must be a class map of integers")
    elif arr.dtype.kind not in "biu":
        raise AugPaintError(f"{display} holds {arr.dtype} data; a label must be a class map of integers")
    values = np.unique(arr)
    if values.size and values[0] < 0:
        raise AugPaintError(f"{display} has negative values ({values[0]:g}); a label must use 0 = background, 1..K")
    lab = arr.astype(np.int64)
    vals = set(int(v) for v in values)
    if vals == {0, 255} or vals == {255}:
        return (lab == 255).astype(np.int64)
    if len(vals) > max_classes + 1:
        raise AugPaintError(
            f"{display} has {len(vals)} distinct values; a label must be a class map with at most "
            f"{max_classes} classes (--max-classes)"
        )
    top = max(vals) if vals else 0
    if top > max_classes:
        raise AugPaintError(
            f"{display} has class value {top}; a label must be a class map with at most {max_classes} classes "
            f"(0 = background, 1..{max_classes}; --max-classes)"
        )
    return lab


def label_from_array(arr: np.ndarray, max_classes: int = 16, display: str = "label") -> np.ndarray:
    """A label array (``[H, W]``, or ``[1, H, W]`` / ``[H, W, 1]``) as int64 ``[H, W]``, checked."""
    arr = np.asarray(arr)
    if arr.ndim == 3 and 1 in (arr.shape[0], arr.shape[-1]):
        arr = arr[0] if arr.shape[0] == 1 else arr[..., 0]
    if arr.ndim != 2:
        raise AugPaintError(f"{display} has shape {arr.shape}; a label must be a 2-D class map")
    return check_label_values(arr, display, max_classes)


def _label_from_pil(img: Image.Image, display: str, max_classes: int) -> np.ndarray:
    if img.mode in ("P", "PA"):
        arr = np.asarray(img if img.mode == "P" else img.convert("P"))  # palette indices are the classes
    elif img.mode in ("1", "LA", "La"):
        arr = np.asarray(img.convert("L"))
    elif img.mode in ("RGB", "RGBA", "RGBX"):
        rgb = np.asarray(img.convert("RGB"))
        if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])):
            raise AugPaintError(
                f"{display} is a colour image; a label must be a single-channel class map (0 = background)"
            )
        arr = rgb[..., 0]
    else:
        arr = _pil_to_array(img)
    return label_from_array(arr, max_classes, display)


def read_label(path, max_classes: int = 16, display: str | None = None) -> np.ndarray:
    """Read a label map as int64 ``[H, W]`` (see the module docstring for what is accepted)."""
    path = Path(path)
    display = _name(path, display)
    if path.suffix.lower() == ".npy":
        return label_from_array(_load_npy(path, display), max_classes, display)
    return _label_from_pil(_open_pil(path, display), display, max_classes)


def decode_label(data: bytes, max_classes: int = 16, display: str = "label",
                 max_pixels: int | None = None, size: tuple[int, int] | None = None) -> np.ndarray:
    """An encoded label map (PNG bytes, ...) as int64 ``[H, W]``, like ``read_label``; ``size`` ``(H, W)``
    resizes it (nearest neighbour, on the decoded class map) to the size its image was reduced to."""
    img = _open_pil(io.BytesIO(data), display, max_pixels)
    if size is not None and img.size != (size[1], size[0]):
        img = img.resize((size[1], size[0]), Image.Resampling.NEAREST)
    return _label_from_pil(img, display, max_classes)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """float [-1, 1] -> uint8 by ``round((x + 1) * 127.5)`` clipped to 0..255 (round half to even)."""
    x = np.asarray(image, dtype=np.float32)
    return np.clip(np.rint((x.astype(np.float64) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def _write_bytes(path, data: bytes) -> None:
    try:
        Path(path).write_bytes(data)
    except OSError as e:
        raise AugPaintError(f"cannot write {path} ({e.strerror or e})") from None


def _png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def encode_image_png(image: np.ndarray) -> bytes:
    """A float image ``[3, H, W]`` / ``[1, H, W]`` / ``[H, W]`` in [-1, 1] as 8-bit PNG bytes.

    Values map by ``round((x + 1) * 127.5)`` clipped to 0..255; the PNG is greyscale when all channels are
    equal after rounding, else RGB.
    """
    x = np.asarray(image)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[0] not in (1, 3):
        raise ValueError(f"encode_image_png expects [3, H, W], [1, H, W] or [H, W], got {x.shape}")
    u = to_uint8(x)
    if u.shape[0] == 1 or (np.array_equal(u[0], u[1]) and np.array_equal(u[0], u[2])):
        img = Image.fromarray(np.ascontiguousarray(u[0]))
    else:
        img = Image.fromarray(np.ascontiguousarray(np.moveaxis(u, 0, -1)))
    return _png_bytes(img)


def encode_label_png(label: np.ndarray, display: str = "label") -> bytes:
    """An integer class map ``[H, W]`` as 8-bit greyscale PNG bytes (values must be 0..255)."""
    lab = np.asarray(label)
    if lab.ndim != 2:
        raise ValueError(f"encode_label_png expects [H, W], got {lab.shape}")
    if lab.dtype.kind == "f" and not np.array_equal(lab, np.round(lab)):
        raise AugPaintError(f"cannot write {display}: the label has non-integer values")
    if lab.size and (lab.min() < 0 or lab.max() > 255):
        raise AugPaintError(f"cannot write {display}: label values must be 0..255 for an 8-bit PNG, got "
                            f"{lab.min()}..{lab.max()}")
    return _png_bytes(Image.fromarray(np.ascontiguousarray(lab.astype(np.uint8))))


def write_image_png(path, image: np.ndarray) -> None:
    """Write ``encode_image_png(image)`` to ``path`` (PNG whatever the file name: temp files are fine)."""
    _write_bytes(path, encode_image_png(image))


def write_label_png(path, label: np.ndarray) -> None:
    """Write ``encode_label_png(label)`` to ``path``."""
    _write_bytes(path, encode_label_png(label, str(path)))


__all__ = [
    "IMAGE_SUFFIXES",
    "read_image",
    "read_label",
    "image_from_array",
    "label_from_array",
    "decode_image",
    "decode_label",
    "image_header",
    "decoded_bytes_per_pixel",
    "encode_image_png",
    "encode_label_png",
    "write_image_png",
    "write_label_png",
    "normalise_intensity",
    "check_label_values",
    "to_uint8",
    "TooManyPixels",
]
