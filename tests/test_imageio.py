"""Reading images: every PIL mode, uploads that are not images, truncated files, bombs, display."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from image_fixtures import encode, png_header_claiming, rgb, solid, truncated_jpeg, write_image
from PIL import Image

from embeddings.errors import InvalidInputError
from embeddings.image.io import (
    decode_image_bytes,
    enlarge,
    is_image_filename,
    load_image_file,
    pil_to_rgb_array,
)


def _all(arr: np.ndarray, colour) -> None:
    """Every pixel of ``arr`` equals ``colour`` (numpy 2.4's assert_array_equal wants equal shapes)."""
    assert (np.asarray(arr) == np.asarray(colour, dtype=np.uint8)).all(), arr


def _check(arr: np.ndarray, shape=(4, 6)) -> np.ndarray:
    assert arr.dtype == np.uint8 and arr.shape == (*shape, 3)
    assert arr.flags.writeable and arr.flags.c_contiguous
    return arr


# ----------------------------------------------------------------------------- PIL modes


def test_rgb_and_l_and_1():
    src = rgb(4, 6)
    np.testing.assert_array_equal(_check(pil_to_rgb_array(Image.fromarray(src))), src)
    gray = np.arange(24, dtype=np.uint8).reshape(4, 6) * 10
    out = _check(pil_to_rgb_array(Image.fromarray(gray, "L")))
    np.testing.assert_array_equal(out, np.repeat(gray[..., None], 3, axis=2))
    bits = Image.fromarray(gray > 100)  # mode "1"
    assert bits.mode == "1"
    out = _check(pil_to_rgb_array(bits))
    assert set(np.unique(out)) == {0, 255}
    np.testing.assert_array_equal(out[..., 0] == 255, gray > 100)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "RGBa", "La"])
def test_alpha_modes_composite_on_white(mode):
    rgba = np.zeros((4, 6, 4), dtype=np.uint8)
    rgba[..., 0] = 255  # red (or white-ish grey in L modes)
    rgba[:, :3, 3] = 255  # left half opaque
    rgba[:, 3:, 3] = 0  # right half fully transparent
    img = Image.fromarray(rgba, "RGBA")
    img = img.convert("LA").convert("La") if mode == "La" else img.convert(mode)
    out = _check(pil_to_rgb_array(img))
    np.testing.assert_array_equal(out[:, 3:], 255)  # transparent -> white
    if mode.startswith("RGB"):
        _all(out[:, :3], [255, 0, 0])


def test_half_transparent_blends_with_white():
    rgba = np.zeros((4, 6, 4), dtype=np.uint8)
    rgba[..., 3] = 128  # black at ~50%
    out = pil_to_rgb_array(Image.fromarray(rgba, "RGBA"))
    np.testing.assert_array_equal(out, 127)  # 255 * (255 - 128) / 255 = 127


def test_palette_with_and_without_transparency():
    arr = np.zeros((4, 6), dtype=np.uint8)
    arr[:, 3:] = 1
    pal = Image.fromarray(arr, "P")
    pal.putpalette([0, 0, 255, 0, 255, 0] + [0] * 762)  # 0 blue, 1 green
    _all(_check(pil_to_rgb_array(pal))[:, 3:], [0, 255, 0])
    gif = Image.open(io.BytesIO(encode(pal, "GIF", transparency=1)))  # green is the transparent index
    assert gif.mode == "P" and "transparency" in gif.info
    out = _check(pil_to_rgb_array(gif))
    _all(out[:, :3], [0, 0, 255])
    np.testing.assert_array_equal(out[:, 3:], 255)


def test_png_transparent_colour_in_l_and_rgb():
    gray = np.full((4, 6), 50, dtype=np.uint8)
    gray[:, 3:] = 7
    png = Image.open(io.BytesIO(encode(Image.fromarray(gray, "L"), "PNG", transparency=7)))
    out = _check(pil_to_rgb_array(png))
    np.testing.assert_array_equal(out[:, 3:], 255)
    np.testing.assert_array_equal(out[:, :3], 50)
    colour = solid((1, 2, 3), 4, 6)
    png = Image.open(io.BytesIO(encode(Image.fromarray(colour), "PNG", transparency=(1, 2, 3))))
    np.testing.assert_array_equal(pil_to_rgb_array(png), 255)


def test_cmyk_and_other_colour_spaces():
    cmyk = Image.new("CMYK", (6, 4), (0, 255, 255, 0))  # no cyan/black, full magenta+yellow = red
    _all(_check(pil_to_rgb_array(cmyk)), [255, 0, 0])
    for mode in ("YCbCr", "HSV", "RGBX"):
        out = _check(pil_to_rgb_array(Image.fromarray(rgb(4, 6)).convert(mode)))
        assert out.shape == (4, 6, 3)


@pytest.mark.parametrize("mode", ["I;16", "I;16B"])
def test_16_bit_scaled_to_8_bit(mode):
    values = np.array([[0, 257, 32896, 65535, 1000, 60000]] * 4, dtype=np.uint16)
    img = Image.frombytes(mode, (6, 4), values.astype("<u2" if mode == "I;16" else ">u2").tobytes())
    assert img.mode == mode
    out = _check(pil_to_rgb_array(img))
    _all(out[0, :4, 0], [0, 1, 128, 255])


def test_16_bit_png_file_round_trip():
    values = np.tile(np.array([0, 65535, 32896], dtype=np.uint16), (4, 2))
    img = Image.open(io.BytesIO(encode(Image.fromarray(values), "PNG")))
    assert img.mode.startswith("I")
    _all(pil_to_rgb_array(img)[0, :3, 1], [0, 255, 128])


def test_mode_i_16_bit_range_and_other_range():
    sixteen = Image.fromarray(np.array([[0, 65535, 32896, 0, 0, 0]] * 4, dtype=np.int32), "I")
    _all(pil_to_rgb_array(sixteen)[0, :3, 0], [0, 255, 128])
    wide = Image.fromarray(np.array([[-100, 100, 0, 0, 0, 0]] * 4, dtype=np.int32), "I")
    out = _check(pil_to_rgb_array(wide))
    assert out[0, 0, 0] == 0 and out[0, 1, 0] == 255 and out[0, 2, 0] == 128  # min..max


def test_float_mode_unit_range_and_other_range():
    unit = Image.fromarray(np.array([[0.0, 1.0, 0.5, 0.25, 0, 0]] * 4, dtype=np.float32), "F")
    _all(_check(pil_to_rgb_array(unit))[0, :4, 0], [0, 255, 128, 64])
    other = Image.fromarray(np.array([[-3.0, 5.0, 1.0, np.nan, 0, 0]] * 4, dtype=np.float32), "F")
    out = _check(pil_to_rgb_array(other))
    assert out[0, 0, 0] == 0 and out[0, 1, 0] == 255 and out[0, 2, 0] == 128
    flat = Image.fromarray(np.full((4, 6), 7.0, dtype=np.float32), "F")
    np.testing.assert_array_equal(pil_to_rgb_array(flat), 0)


def test_not_a_pil_image():
    with pytest.raises(InvalidInputError):
        pil_to_rgb_array(np.zeros((2, 2, 3), np.uint8))


# ----------------------------------------------------------------------------- decoding


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "TIFF", "WEBP", "PPM"])
def test_decode_lossless_formats_round_trip(fmt):
    src = rgb(5, 7)
    kwargs = {"lossless": True} if fmt == "WEBP" else {}
    np.testing.assert_array_equal(decode_image_bytes(encode(src, fmt, **kwargs)), src)


def test_decode_jpeg_and_1x1():
    src = solid((200, 100, 50), 16, 16)
    out = decode_image_bytes(encode(src, "JPEG", quality=95))
    assert out.shape == (16, 16, 3) and np.abs(out.astype(int) - src).max() < 6
    tiny = decode_image_bytes(encode(solid((9, 8, 7), 1, 1), "PNG"))
    np.testing.assert_array_equal(tiny, [[[9, 8, 7]]])


def test_decode_accepts_bytearray_and_memoryview():
    data = encode(rgb(3, 3), "PNG")
    np.testing.assert_array_equal(decode_image_bytes(bytearray(data)), decode_image_bytes(memoryview(data)))


def test_text_renamed_png_is_rejected_with_a_hint():
    with pytest.raises(InvalidInputError, match="not an image.*text file"):
        decode_image_bytes(b"hello, this is my shopping list\nmilk\n", name="list.png")


@pytest.mark.parametrize(
    "data,pattern",
    [
        (b"", "empty"),
        (b"\x00\x00\x00\x18ftypheic" + b"\x00" * 40, "HEIC"),
        (b"%PDF-1.7\n" + b"\x00\xff" * 20, "PDF"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", "SVG"),
        (bytes(range(256)) * 4, "not an image"),
        # EPS would make Pillow run Ghostscript: it is not among the formats uploads may use
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "not an image"),
    ],
)
def test_non_images_are_rejected(data, pattern):
    with pytest.raises(InvalidInputError, match=pattern):
        decode_image_bytes(data)


def test_wrong_type_rejected():
    with pytest.raises(InvalidInputError, match="bytes"):
        decode_image_bytes("not bytes")  # type: ignore[arg-type]


def test_truncated_jpeg_and_png_are_rejected():
    with pytest.raises(InvalidInputError, match="truncated or corrupt"):
        decode_image_bytes(truncated_jpeg(), name="cut.jpg")
    png = encode(rgb(32, 32), "PNG")
    with pytest.raises(InvalidInputError, match="cut.png"):
        decode_image_bytes(png[: len(png) // 2], name="cut.png")


def test_decompression_bomb_header_is_refused_cheaply():
    # 100,000 x 100,000 claimed: Pillow's own DecompressionBombError becomes InvalidInputError
    with pytest.raises(InvalidInputError, match="too large"):
        decode_image_bytes(png_header_claiming(100_000, 100_000))
    # 10,000 x 6,000 (60 MP): under Pillow's limit, above ours
    with pytest.raises(InvalidInputError, match="above the limit"):
        decode_image_bytes(png_header_claiming(10_000, 6_000))


def test_pixel_limit_is_configurable():
    data = encode(rgb(40, 40), "PNG")
    with pytest.raises(InvalidInputError, match="1,600 pixels, above the limit of 1,000"):
        decode_image_bytes(data, max_pixels=1000)
    assert decode_image_bytes(data, max_pixels=None).shape == (40, 40, 3)


def test_pillow_bomb_warning_as_error_becomes_invalid_input(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    data = encode(rgb(12, 12), "PNG")  # 144 px: between Pillow's limit and twice it -> warning
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.raises(InvalidInputError, match="too large"):
            decode_image_bytes(data, max_pixels=None)
    with pytest.raises(InvalidInputError, match="too large"):  # 400 px > 2 x 100: Pillow's error
        decode_image_bytes(encode(rgb(20, 20), "PNG"), max_pixels=None)


def test_animated_gif_gives_first_frame():
    frames = [Image.fromarray(solid(c, 6, 6)) for c in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    out = decode_image_bytes(buffer.getvalue())
    assert out.shape == (6, 6, 3)
    _all(out, [255, 0, 0])


def test_exif_orientation_is_applied():
    img = Image.fromarray(rgb(4, 8))  # 8 wide, 4 high
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    data = encode(img, "JPEG", exif=exif.tobytes())
    assert decode_image_bytes(data).shape == (8, 4, 3)


def test_load_image_file(tmp_path):
    src = rgb(5, 5)
    path = write_image(tmp_path / "a.png", src)
    np.testing.assert_array_equal(load_image_file(path), src)
    with pytest.raises(InvalidInputError, match="does not exist"):
        load_image_file(tmp_path / "missing.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(InvalidInputError, match="empty"):
        load_image_file(tmp_path / "empty.png")
    (tmp_path / "cut.jpg").write_bytes(truncated_jpeg())
    with pytest.raises(InvalidInputError, match="truncated"):
        load_image_file(tmp_path / "cut.jpg")


def test_is_image_filename():
    assert is_image_filename("a/B.JPG") and is_image_filename("x.png") and is_image_filename("y.webp")
    assert not is_image_filename("notes.txt") and not is_image_filename("archive.tar.gz")


# ----------------------------------------------------------------------------- display


def test_enlarge_is_crisp_nearest_neighbour():
    src = rgb(32, 32)
    big = enlarge(src, 128)
    assert big.shape == (128, 128, 3)
    np.testing.assert_array_equal(big[::4, ::4], src)
    np.testing.assert_array_equal(big[3::4, 3::4], src)
    odd = enlarge(rgb(32, 16), 100)  # not a multiple: exact target on the longer side
    assert odd.shape == (100, 50, 3)
    assert set(map(tuple, odd.reshape(-1, 3))) <= set(map(tuple, rgb(32, 16).reshape(-1, 3)))
    large = rgb(300, 200)
    assert enlarge(large, 128) is large or np.array_equal(enlarge(large, 128), large)  # never shrinks
    with pytest.raises(InvalidInputError):
        enlarge(src, 0)
    with pytest.raises(InvalidInputError):
        enlarge(np.zeros((4, 4), np.uint8), 16)


@pytest.mark.parametrize("shape", [(150, 200), (480, 640), (32, 32), (600, 10), (10, 600), (96, 96), (1, 1)])
def test_thumbnails_fit_one_tile_whatever_the_image(shape):
    from embeddings.image.io import thumbnail

    src = np.random.default_rng(0).integers(0, 256, size=(*shape, 3), dtype=np.uint8)
    tile = thumbnail(src, 96)
    assert tile.shape == (96, 96, 3) and tile.dtype == np.uint8
    if shape[0] != shape[1]:  # letterboxed on white
        assert (tile[0] == 255).all() or (tile[:, 0] == 255).all()


def test_thumbnails_of_cifar_size_images_are_unchanged():
    from embeddings.image.io import enlarge, thumbnail

    src = np.random.default_rng(1).integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    for size in (72, 96, 128, 192, 224):
        np.testing.assert_array_equal(thumbnail(src, size), enlarge(src, size))


def test_gallery_images_are_bounded_in_bytes():
    from ui.charts.image import MAX_IMAGE_BYTES, image_data_uri

    noise = np.random.default_rng(2).integers(0, 256, size=(402, 606, 3), dtype=np.uint8)
    uri = image_data_uri(noise)
    assert uri.startswith("data:image/jpeg;base64,") and len(uri) < MAX_IMAGE_BYTES * 4 / 3 + 100
    flat = np.repeat(np.repeat(noise[:40, :60], 10, axis=0), 10, axis=1)[:402, :606]
    assert image_data_uri(np.ascontiguousarray(flat)).startswith("data:image/png;base64,")
