"""Reading images safely: user uploads, files in folders, any PIL mode, display upscaling.

Everything here returns H x W x 3 uint8 RGB numpy arrays, the one image type the rest of the
package uses. Every problem a user's file can have (not an image, empty, truncated, too many
pixels, an odd format) becomes :class:`~embeddings.errors.InvalidInputError` with a message
meant for the user, never a crash.
"""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..core.files import open_regular_file
from ..errors import InvalidInputError

# 50 megapixels: above any phone camera (48 MP), far below what would exhaust memory.
DEFAULT_MAX_PIXELS = 50_000_000

# File name endings that folder collections treat as images (case-insensitive).
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm"}
    | {".pnm", ".ico", ".avif", ".qoi", ".jp2"}
)

# Formats Pillow may use for untrusted files. Image.open would otherwise try every plugin,
# some of which hand the file to external programs (EPS -> Ghostscript).
_SAFE_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "DIB", "WEBP", "TIFF", "PPM", "ICO", "AVIF", "QOI", "JPEG2000")

# Images from folders whose shorter side is at least twice this are reduced on decode by a whole
# factor, keeping the shorter side at least this long: 4x the largest model input (every model
# resizes the shorter side to at most 256), so a 7,000 x 7,000 PNG decodes to 1,166 x 1,166
# (4 MB) instead of 147 MB. Smaller images (the sample, CIFAR, most photos) are never touched.
DECODE_SHORT_SIDE = 1024

_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_INT16_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})


def _allowed_formats() -> list[str]:
    Image.init()
    return [f for f in _SAFE_FORMATS if f in Image.OPEN]


def is_image_filename(name: str | os.PathLike) -> bool:
    """True when ``name`` ends with an image extension that folder collections read."""
    return os.path.splitext(os.fspath(name))[1].lower() in IMAGE_EXTENSIONS  # no Path: 50,000 names a scan


# ----------------------------------------------------------------------------- PIL -> array


def _composite_on_white(rgba: np.ndarray) -> np.ndarray:
    """Blend an H x W x 4 uint8 RGBA array onto a white background (rounded)."""
    alpha = rgba[..., 3:4].astype(np.uint32)
    rgb = rgba[..., :3].astype(np.uint32)
    out = (rgb * alpha + 255 * (255 - alpha) + 127) // 255
    return out.astype(np.uint8)


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[..., None], 3, axis=2)


def _scale_to_uint8(values: np.ndarray, full_scale: float | None) -> np.ndarray:
    """Map ``values`` to 0..255: by ``full_scale`` when given, else by the image's own min..max."""
    values = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if full_scale is None:
        lo, hi = float(values.min()), float(values.max())
        values = (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)
    else:
        values = values / full_scale
    return np.clip(np.rint(values * 255.0), 0, 255).astype(np.uint8)


def pil_to_rgb_array(img: Image.Image) -> np.ndarray:
    """Return a PIL image as a writable H x W x 3 uint8 RGB array, whatever its mode.

    * transparency (RGBA, LA, PA, premultiplied modes, palette or L/RGB with a transparent
      colour) is composited onto white, as a browser shows it on a white page;
    * L and 1 are replicated to three channels; CMYK, YCbCr, HSV, LAB convert to RGB;
    * 16-bit integer modes (I;16*) are scaled from 0..65535; mode I is scaled the same way when
      its values fit 0..65535 (16-bit PNG/TIFF/PGM data), else by its own min..max;
    * float mode F is scaled from 0..1 when its values lie there, else by its own min..max.
    """
    if not isinstance(img, Image.Image):
        raise InvalidInputError(f"expected a PIL image, got {type(img).__name__}")
    mode = img.mode
    try:
        if mode == "RGB" and "transparency" not in img.info:
            arr = np.array(img, dtype=np.uint8)
        elif mode == "L" and "transparency" not in img.info:
            arr = _gray_to_rgb(np.array(img, dtype=np.uint8))
        elif mode == "1":
            arr = _gray_to_rgb(np.array(img.convert("L"), dtype=np.uint8))
        elif mode in _INT16_MODES:
            arr = _gray_to_rgb(_scale_to_uint8(np.array(img), 65535.0))
        elif mode == "I":
            values = np.array(img)
            in_16_bit = values.size and values.min() >= 0 and values.max() <= 65535
            arr = _gray_to_rgb(_scale_to_uint8(values, 65535.0 if in_16_bit else None))
        elif mode == "F":
            values = np.array(img, dtype=np.float32)
            finite = values[np.isfinite(values)]
            unit = finite.size == 0 or (finite.min() >= 0.0 and finite.max() <= 1.0)
            arr = _gray_to_rgb(_scale_to_uint8(values, 1.0 if unit else None))
        elif mode in _ALPHA_MODES or "transparency" in img.info:
            if mode == "La":  # premultiplied; Pillow only converts it to LA
                img = img.convert("LA")
            arr = _composite_on_white(np.array(img.convert("RGBA"), dtype=np.uint8))
        else:  # P without transparency, CMYK, YCbCr, LAB, HSV, RGBX, ...
            arr = np.array(img.convert("RGB"), dtype=np.uint8)
    except InvalidInputError:
        raise
    except Exception as exc:  # Pillow raises ValueError/OSError for unsupported conversions
        raise InvalidInputError(f"cannot convert a {mode} image to RGB: {exc}") from exc
    if arr.ndim != 3 or arr.shape[2] != 3:  # pragma: no cover - defensive
        raise InvalidInputError(f"could not convert a {mode} image to RGB (got shape {arr.shape})")
    return np.ascontiguousarray(arr)


# ----------------------------------------------------------------------------- decoding


def _sniff(head: bytes) -> str:
    """A hint about what a file Pillow cannot read actually is."""
    if (
        len(head) >= 12
        and head[4:8] == b"ftyp"
        and head[8:12] in (b"heic", b"heix", b"mif1", b"msf1", b"hevc")
    ):
        return " (it looks like a HEIC/HEIF photo; convert it to JPEG or PNG first)"
    if head.lstrip().startswith((b"<svg", b"<?xml")):
        return " (it looks like SVG/XML; vector images are not supported, export a PNG)"
    if head.startswith(b"%PDF"):
        return " (it is a PDF document)"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return ""
    if text and all(ch.isprintable() or ch in "\r\n\t" for ch in text):
        return " (it looks like a text file; was it renamed to an image extension?)"
    return ""


def _describe_size(width: int, height: int) -> str:
    return f"{width} x {height} = {width * height:,} pixels"


def reduction_factor(width: int, height: int, short_side: int | None) -> int:
    """The whole factor an image of ``width`` x ``height`` is reduced by on decode so its shorter
    side stays at least ``short_side`` (1 = unchanged; always 1 when ``short_side`` is None)."""
    if short_side is None or short_side < 1:
        return 1
    return max(1, min(width, height) // short_side)


def decoded_size(width: int, height: int, short_side: int | None = DECODE_SHORT_SIDE) -> tuple[int, int]:
    """(width, height) of an image of that size once decoded with ``short_side`` (see :func:`_decode`)."""
    factor = reduction_factor(width, height, short_side)
    return -(-width // factor), -(-height // factor)


def _reduce(img: Image.Image, factor: int) -> np.ndarray:
    """Frame ``img`` (loaded) as RGB, box-reduced by ``factor`` (reduced before converting when
    Pillow can, so the full-size RGB copy is never made)."""
    if factor > 1:
        try:
            return pil_to_rgb_array(img.reduce(factor))
        except (ValueError, OSError):  # a mode Image.reduce does not support (P, 1, I;16, ...)
            pass
    arr = pil_to_rgb_array(img)
    if factor > 1:
        arr = np.asarray(Image.fromarray(arr).reduce(factor), dtype=np.uint8)
    return np.ascontiguousarray(arr)


def _decode(
    source, name: str, max_pixels: int | None, head: bytes, short_side: int | None = None
) -> np.ndarray:
    """Open ``source`` (a path or file object) with Pillow and return frame 0 as RGB.

    With ``short_side``, an image whose shorter side is at least twice that is reduced by a whole
    factor while decoding (JPEG decodes at 1/2, 1/4 or 1/8 scale directly), so its shorter side
    stays at least ``short_side``; smaller images are decoded bitwise as without it.
    """
    try:
        img = Image.open(source, formats=_allowed_formats())
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidInputError(f"{name} is too large to open safely: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise InvalidInputError(f"{name} is not an image file that can be read{_sniff(head)}") from exc
    except FileNotFoundError as exc:
        raise InvalidInputError(f"{name} does not exist") from exc
    except Exception as exc:  # OSError, SyntaxError, struct.error, ... from a damaged header
        raise InvalidInputError(f"{name} could not be read as an image ({exc})") from exc
    with img:
        width, height = img.size
        if width < 1 or height < 1:
            raise InvalidInputError(f"{name} has no pixels ({width} x {height})")
        if max_pixels is not None and width * height > max_pixels:
            raise InvalidInputError(
                f"{name} is {_describe_size(width, height)}, above the limit of {max_pixels:,} pixels "
                "(very large images are refused to protect memory; resize it first)"
            )
        try:
            if getattr(img, "n_frames", 1) > 1:
                img.seek(0)  # animated GIF/PNG/WebP, multi-page TIFF: the first frame
            factor = reduction_factor(width, height, short_side)
            if factor > 1 and img.format == "JPEG":  # DCT scaling: never smaller than asked
                img.draft(img.mode, (-(-width // factor), -(-height // factor)))
            img.load()
            frame = img
            try:
                frame = ImageOps.exif_transpose(img) or img
            except Exception:  # a broken EXIF block must not lose the picture
                frame = img
            if factor == 1:
                return pil_to_rgb_array(frame)
            # what is left to reduce after the draft (e.g. 7 from a 1/2-scale JPEG decode: 3)
            return _reduce(frame, max(1, min(frame.size) // short_side))
        except InvalidInputError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise InvalidInputError(f"{name} is too large to decode safely: {exc}") from exc
        except Exception as exc:  # OSError("image file is truncated"), SyntaxError, ValueError, ...
            raise InvalidInputError(
                f"{name} is truncated or corrupt and could not be decoded ({exc})"
            ) from exc


def decode_image_bytes(
    data: bytes | bytearray | memoryview,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    name: str = "the file",
    short_side: int | None = None,
) -> np.ndarray:
    """Decode an uploaded file's bytes (in memory) into an H x W x 3 uint8 RGB array.

    Raises :class:`InvalidInputError` for empty data, non-images (a text file renamed
    ``.png``), truncated or corrupt files, and images above ``max_pixels`` (decompression
    bombs; Pillow's own bomb error/warning is converted too). Animated images give their
    first frame; EXIF orientation is applied. ``name`` is used in messages. ``short_side``
    reduces large images on decode (:func:`_decode`; folders pass :data:`DECODE_SHORT_SIDE`).
    """
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    if not isinstance(data, bytes):
        raise InvalidInputError(f"expected image bytes, got {type(data).__name__}")
    if not data:
        raise InvalidInputError(f"{name} is empty (0 bytes)")
    return _decode(io.BytesIO(data), name, max_pixels, data[:64], short_side)


def read_regular_file(path: str | os.PathLike) -> bytes:
    """The bytes of ``path``, only if it is a regular file (a FIFO or device raises ``OSError`` at
    once instead of blocking or reading forever)."""
    with open_regular_file(path) as fh:
        return fh.read()


def load_image_file(
    path: str | os.PathLike, max_pixels: int | None = DEFAULT_MAX_PIXELS, short_side: int | None = None
) -> np.ndarray:
    """Read one image file into an H x W x 3 uint8 RGB array (same checks as uploads).

    The file is read into memory first (one open; faster than letting Pillow seek the file);
    anything but a regular file is refused before any read.
    """
    try:
        data = read_regular_file(path)
    except FileNotFoundError as exc:
        raise InvalidInputError(f"{path} does not exist") from exc
    except OSError as exc:
        raise InvalidInputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return decode_image_bytes(data, max_pixels=max_pixels, name=str(path), short_side=short_side)


# ----------------------------------------------------------------------------- display


def enlarge(img_array: np.ndarray, size: int = 128) -> np.ndarray:
    """Upscale an image with nearest-neighbour so its longer side is ``size`` (crisp pixels).

    Meant for showing 32 x 32 CIFAR images at a visible size; an exact multiple (32 -> 128)
    repeats every pixel the same number of times. Images already at least ``size`` are
    returned unchanged (this never shrinks).
    """
    arr = check_image_array(img_array)
    if not isinstance(size, (int, np.integer)) or size < 1:
        raise InvalidInputError(f"size must be a positive integer, got {size!r}")
    height, width = arr.shape[:2]
    longest = max(height, width)
    if size <= longest:
        return arr
    if size % longest == 0:
        factor = size // longest
        return np.repeat(np.repeat(arr, factor, axis=0), factor, axis=1)
    new_w = max(1, round(width * size / longest))
    new_h = max(1, round(height * size / longest))
    return np.array(Image.fromarray(arr).resize((new_w, new_h), Image.Resampling.NEAREST), dtype=np.uint8)


def thumbnail(img_array: np.ndarray, size: int, background: int = 255) -> np.ndarray:
    """The image fitted into a ``size`` x ``size`` tile, letterboxed with ``background``.

    Larger images shrink (Lanczos), smaller ones are enlarged crisply (:func:`enlarge`), so a
    32 x 32 CIFAR image gives exactly what :func:`enlarge` gives; the tile's size and bytes are
    the same whatever the source image.
    """
    arr = check_image_array(img_array)
    if not isinstance(size, (int, np.integer)) or size < 1:
        raise InvalidInputError(f"size must be a positive integer, got {size!r}")
    if max(arr.shape[:2]) > size:
        small = Image.fromarray(arr)
        small.thumbnail((size, size), Image.Resampling.LANCZOS)
        fitted = np.asarray(small, dtype=np.uint8)
    else:
        fitted = enlarge(arr, size)
    h, w = fitted.shape[:2]
    if (h, w) == (size, size):
        return fitted
    out = np.full((size, size, 3), background, dtype=np.uint8)
    top, left = (size - h) // 2, (size - w) // 2
    out[top : top + h, left : left + w] = fitted[:size, :size]
    return out


def probe_size(path: str) -> tuple[int, int] | None:
    """(width, height) from the file header, or None when it is not a readable image (or not a
    regular file: a FIFO or device is never opened for reading)."""
    try:
        with open_regular_file(path) as fh, Image.open(fh, formats=_allowed_formats()) as img:
            return img.size
    except Exception:
        return None


def decode_all(
    datas: list[bytes | None],
    names: list[str],
    max_pixels: int | None,
    budget: int | None = None,
    short_side: int | None = None,
) -> tuple[list[np.ndarray | None], list[str]]:
    """Decode file contents (None = unreadable) with Pillow, in memory.

    Returns (arrays with None for failures, error messages). Raises MemoryError when
    ``budget`` (bytes of decoded pixels) is exceeded. (torchvision's batched JPEG decoder was
    ~30% faster for CIFAR's tiny files but is deprecated since torchvision 0.29.)
    """
    out: list[np.ndarray | None] = [None] * len(datas)
    errors: list[str] = []
    total = 0
    for i, data in enumerate(datas):
        if data is None:
            errors.append(f"{names[i]}: cannot read the file")
            continue
        try:
            out[i] = decode_image_bytes(data, max_pixels=max_pixels, name=names[i], short_side=short_side)
        except InvalidInputError as exc:
            errors.append(str(exc))
            continue
        total += out[i].nbytes
        if budget is not None and total > budget:
            raise MemoryError("decoded images exceed the in-memory budget")
    return out, errors


def check_image_array(image) -> np.ndarray:
    """Validate one image as an H x W x 3 uint8 RGB array (converting PIL images)."""
    if hasattr(image, "convert") and hasattr(image, "size"):
        image = pil_to_rgb_array(image)
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise InvalidInputError(f"expected an H x W x 3 uint8 RGB image, got {arr.dtype} {arr.shape}")
    if min(arr.shape[:2]) < 1:
        raise InvalidInputError(f"image has no pixels: {arr.shape}")
    return arr
