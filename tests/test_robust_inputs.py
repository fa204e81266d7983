"""Whatever users type or upload gets a clear message, never a crash: the package and every page.

Pages run under ``AppTest`` with the instant models (``hashing`` for text, ``pixels`` for images);
the OpenAI trim is checked against a local mock server. Cases already covered elsewhere are not
repeated here: the empty list, one word and 5,000 words on the similarity matrix, emoji, a
20,000-character phrase and the analogy's repeated word (tests/test_app_words.py); groups that
are empty or one word and the perplexity clamp (tests/test_app_tsne.py); every PIL mode, HEIC/PDF/
SVG/EPS, truncated files and header bombs (tests/test_imageio.py); k and ids out of range in the
index (tests/test_index.py).
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import plotly.io
import pytest
from image_fixtures import encode, make_class_folder, rgb, truncated_jpeg
from openai_server import MockOpenAIServer
from PIL import Image
from streamlit.testing.v1 import AppTest

from embeddings.core.projection import check_perplexity, pca, tsne
from embeddings.errors import InvalidInputError, WorkCancelledError
from embeddings.image.base import Preprocess
from embeddings.image.io import DEFAULT_MAX_PIXELS, decode_image_bytes
from embeddings.registry import get_text_embedder
from embeddings.text.base import (
    MAX_REQUEST_CHARS,
    MAX_TEXT_CHARS,
    MAX_WORDS,
    TextEmbedder,
    clean_text,
    parse_word_list,
)
from embeddings.text.wordlists import clamp_perplexity, parse_groups
from tests.conftest import assert_clean, messages, shown_text, type_words, wait_for_jobs

pytestmark = [
    pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning"),  # huge.png
    pytest.mark.app_env(shared_data="robust-inputs-data"),  # one data folder: the sample index is built once
]

APP = str(Path(__file__).resolve().parent.parent / "app.py")
TIMEOUT = 90
WORD_TABS = ["Similarity matrix", "Compare to one word", "Analogy", "Nearest words", "Compare two models"]
# Typed input -> the items the app keeps (control and invisible characters gone, scripts intact)
SCRIPTS = (
    "שלום, مرحبا, café, naïve, 🙂, 👨\u200d👩\u200d👧, tab\tinside, bell\x07word, \u202eevil, zero\u200bwidth"
)
SCRIPTS_CLEANED = [
    "שלום",
    "مرحبا",
    "café",
    "naïve",
    "🙂",
    "👨\u200d👩\u200d👧",
    "tab inside",
    "bell word",
    "evil",
    "zero width",
]
BLANK_INPUTS = {
    "spaces-and-tabs": "   \t  \n ",
    "control-characters": "\x00\x01\x02\x1b\x7f",
    "invisible-characters": "\u200b\ufeff\u2060",
    "separators-only": " , ;\n,",
}


# ------------------------------------------------------------------------------ helpers


def open_page(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page(page).run()
    return wait_ready(at)


def wait_ready(at: AppTest) -> AppTest:
    """Rerun while a background job (index build, image map) shows its progress bar."""
    wait_for_jobs(at, TIMEOUT)
    assert not at.get("progress"), "a background job did not finish"
    return at


def all_text(at: AppTest) -> str:
    kinds = ("markdown", "caption", "info", "success", "warning", "error", "title", "subheader")
    return "\n".join(str(el.value) for kind in kinds for el in at.get(kind))


def charts(at: AppTest) -> dict:
    return {c.key: plotly.io.from_json(c.proto.spec) for c in at.get("plotly_chart")}


def assert_no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def png(arr_or_img, **kwargs) -> bytes:
    return encode(arr_or_img, "PNG", **kwargs)


# ------------------------------------------------------------------------------ text: package


@pytest.mark.parametrize("raw", BLANK_INPUTS.values(), ids=BLANK_INPUTS.keys())
def test_blank_word_lists_are_refused(raw):
    with pytest.raises(InvalidInputError, match="empty"):
        parse_word_list(raw)
    if "," not in raw:  # one text to embed (the separators are text there)
        with pytest.raises(InvalidInputError, match="empty"):
            clean_text(raw)


def test_lone_surrogates_never_reach_a_model():
    # not encodable as UTF-8: before, the hashing model, the OpenAI cache key and every
    # fingerprint raised UnicodeEncodeError on them
    assert parse_word_list("ok\ud800, \udfff") == ["ok"]
    vectors = get_text_embedder("hashing").embed(["a\ud800b"])
    assert np.isfinite(vectors).all()


def test_scripts_and_control_characters_are_cleaned_not_lost():
    items = parse_word_list(SCRIPTS)
    assert items == SCRIPTS_CLEANED
    vectors = get_text_embedder("hashing").embed(items)
    assert vectors.shape == (len(items), 512) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)


def test_duplicates_are_dropped_ignoring_case_first_spelling_kept():
    assert parse_word_list("Cat, cat ,CAT\ndog;cat, Dog") == ["Cat", "dog"]


def test_word_and_group_limits():
    many = ", ".join(f"w{i}" for i in range(5000))
    with pytest.raises(InvalidInputError, match=f"5000 items is too many: at most {MAX_WORDS}"):
        parse_word_list(many)
    with pytest.raises(InvalidInputError, match="too many"):
        parse_groups("big: " + many)
    with pytest.raises(InvalidInputError, match="must be text"):
        parse_word_list(None)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="expected text"):
        clean_text(42)  # type: ignore[arg-type]


@pytest.mark.parametrize("perplexity", [0, -1, 3, 10, float("nan"), float("inf")])
def test_perplexity_out_of_range_is_refused(perplexity):
    vectors = np.eye(3, 8, dtype=np.float32)
    with pytest.raises(InvalidInputError, match="perplexity must be above 0 and below"):
        tsne(vectors, perplexity=perplexity)


def test_maps_of_one_point_are_refused():
    one = np.ones((1, 8), dtype=np.float32)
    with pytest.raises(InvalidInputError, match="at least 2"):
        check_perplexity(0.5, 1)
    with pytest.raises(InvalidInputError, match="at least 2"):
        pca(one)
    perplexity, note = clamp_perplexity(50, 2)
    assert perplexity == 1.0 and "too high for 2 points" in note
    assert clamp_perplexity(5, 100) == (5.0, None)


# ------------------------------------------------------------------------------ text: pages


@pytest.mark.parametrize("raw", BLANK_INPUTS.values(), ids=BLANK_INPUTS.keys())
def test_blank_input_on_every_tab_and_the_map(app_env, raw):
    at = open_page("pages/words.py")
    type_words(at, raw)
    for tab in WORD_TABS:
        at.session_state["words_tab"] = tab
        at.run()
        assert_no_exception(at)
        if tab != "Analogy":  # the analogy has its own three boxes
            assert "empty" in messages(at) or "Fix the word list" in all_text(at)
    assert not {"words_heatmap", "words_ranking"} & set(charts(at))
    at.switch_page("pages/tsne.py").run()
    at.text_area(key="tsne_groups").set_value(raw).run()
    assert_clean(at)
    assert "no words to map" in messages(at) and "tsne_words_chart" not in charts(at)


def test_scripts_and_control_characters_on_both_pages(app_env):
    at = type_words(open_page("pages/words.py"), SCRIPTS)
    assert_clean(at)
    labels = list(charts(at)["words_heatmap"].data[0].x)
    assert labels == SCRIPTS_CLEANED
    assert not any(re.search(r"[\x00-\x1f\x7f\u200b\u202e]", label) for label in labels)
    at.switch_page("pages/tsne.py").run()
    at.text_area(key="tsne_groups").set_value(
        "rtl: שלום, مرحبا, \u202eevil\nmixed: café, 🙂, bell\x07word"
    ).run()
    assert_clean(at)
    points = [t for trace in charts(at)["tsne_words_chart"].data for t in trace.text]
    assert {"שלום", "مرحبا", "evil", "café", "🙂", "bell word"} == set(points)


def test_duplicates_make_one_row_each(app_env):
    at = type_words(open_page("pages/words.py"), "cat, Cat, CAT , dog, cat\ndog")
    assert_clean(at)
    assert list(charts(at)["words_heatmap"].data[0].x) == ["cat", "dog"]
    notes = [shown_text(c.value) for c in at.caption if "Left out as repeats" in c.value]
    assert notes == [
        "Left out as repeats (case is ignored): “Cat” (as “cat”), “CAT” (as “cat”), “cat”, “dog”; "
        "each item is embedded once."
    ]
    at.session_state["words_tab"] = "Compare to one word"
    at.run()
    assert_clean(at)
    assert list(charts(at)["words_ranking"].data[0].y) == ["dog"]
    at.switch_page("pages/tsne.py").run()
    at.text_area(key="tsne_groups").set_value("a: cat, dog\nb: Cat, cow").run()
    assert_clean(at)
    assert "appears twice" in all_text(at)


def test_duplicate_items_names_what_parse_word_list_drops():
    from embeddings.text.base import duplicate_items, parse_word_list

    raw = "cat, Cat, CAT , dog\n\n dog ; bird"
    assert parse_word_list(raw) == ["cat", "dog", "bird"]  # unchanged for existing callers
    assert duplicate_items(raw) == [("Cat", "cat"), ("CAT", "cat"), ("dog", "dog")]
    assert duplicate_items("a, b") == [] and duplicate_items(None) == []


def test_one_word_where_more_are_needed(app_env):
    at = type_words(open_page("pages/words.py"), "lonely", tab="Compare to one word")
    assert_clean(at)
    assert "A ranking needs at least 2" in messages(at) and "words_ranking" not in charts(at)
    at.session_state["words_tab"] = "Nearest words"  # one word is enough here
    at.run()
    assert_clean(at)
    assert list(at.dataframe[0].value.columns) == ["lonely"]
    at.session_state["words_tab"] = "Compare two models"
    at.run()
    at.selectbox(key="compare_model").set_value("local").run()  # never loaded: 1 word stops first
    assert_clean(at)
    assert "Comparing two models needs at least 3" in messages(at)


def test_5000_words_on_every_tab_and_the_map(app_env):
    many = ", ".join(f"word{i}" for i in range(5000))
    at = type_words(open_page("pages/words.py"), many)
    for tab in WORD_TABS:
        at.session_state["words_tab"] = tab
        at.run()
        assert_no_exception(at)
        if tab != "Analogy":
            assert f"at most {MAX_WORDS}" in messages(at)
    at.switch_page("pages/tsne.py").run()
    at.text_area(key="tsne_groups").set_value("many: " + many).run()
    assert_clean(at)
    assert "5000 words is too many" in messages(at) and "tsne_words_chart" not in charts(at)


def test_100k_character_phrase_on_both_pages(app_env):
    phrase = ("a very long phrase " * 6000)[:100_000]
    at = type_words(open_page("pages/words.py"), f"king, {phrase}, queen")
    assert_clean(at)
    labels = charts(at)["words_heatmap"].data[0].x
    assert len(labels) == 3 and any("(100,000 chars)" in label for label in labels)
    assert "8,000" not in messages(at)  # only the OpenAI models cut
    at.switch_page("pages/tsne.py").run()
    at.text_area(key="tsne_groups").set_value(f"long: {phrase}, king\nshort: queen, cat").run()
    assert_clean(at)
    assert "tsne_words_chart" in charts(at)


def test_100k_character_phrase_is_trimmed_for_openai_and_says_so(app_env, monkeypatch):
    from ui import cached

    phrase = "x" * 100_000
    with MockOpenAIServer() as server:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-robust-inputs-0000")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("EMBEDDINGS_TEXT_MODEL", "openai:text-embedding-3-small")
        cached.load_text_embedder.clear()  # a fresh client for this server
        cached.embed_texts.clear()
        try:
            at = type_words(open_page("pages/words.py"), f"king, {phrase}")
            assert_clean(at)
            assert "longer than 8,000 characters" in messages(at) and "(100,000 chars)" in messages(at)
            assert "words_heatmap" in charts(at)
            assert max(len(t) for t in server.inputs) == MAX_TEXT_CHARS  # what was sent: 8,000
            # "king" came from the disk cache (the default words were embedded first)
            assert server.requests[-1]["body"]["input"] == ["x" * MAX_TEXT_CHARS]
            at.switch_page("pages/tsne.py").run()
            at.text_area(key="tsne_groups").set_value(f"a: king, {phrase}\nb: queen").run()
            assert_clean(at)
            assert "cut to 8,000 characters" in messages(at)
        finally:
            cached.load_text_embedder.clear()


@pytest.mark.parametrize(
    "a, b, c, expected",
    [
        ("", "man", "woman", "a is empty"),
        ("king", "   ", "woman", "b is empty"),
        ("king", "king", "king", "three different words"),
        ("King", "KING", "king", "three different words"),
        ("king", "man", "\x00\x01", "empty or only whitespace/control characters"),
    ],
    ids=["a-missing", "b-blank", "all-same", "same-ignoring-case", "control-only"],
)
def test_analogy_missing_or_same_words(app_env, a, b, c, expected):
    at = type_words(open_page("pages/words.py"), "king, queen", tab="Analogy")
    at.text_input(key="analogy_a").set_value(a)
    at.text_input(key="analogy_b").set_value(b)
    at.text_input(key="analogy_c").set_value(c)
    at.button[0].click().run()  # the form's "Solve" button
    assert_no_exception(at)
    assert expected in "\n".join(shown_text(e.value) for e in at.error)
    assert not at.metric and "analogy_chart" not in charts(at)


# ------------------------------------------------------------------------------ images: page


def show_query(at: AppTest, query) -> AppTest:
    at.session_state["image_query"] = query
    at.run()
    return at


@pytest.mark.parametrize("bad", [10**9, 2000, -1, -3, "7", 7.5, True], ids=repr)
def test_image_id_out_of_range_or_not_an_id(app_env, bad):
    at = show_query(open_page("pages/images.py"), ("id", bad))
    assert_clean(at)
    assert "Pick a query" in all_text(at)


@pytest.mark.parametrize("kept, shown", [(500, 50), (0, 1), (-7, 1)])
def test_k_out_of_range_in_the_session_is_clamped(app_env, kept, shown):
    at = open_page("pages/images.py")  # no query yet, so no slider: the value is plain session state
    at.session_state["image_k"] = kept
    show_query(at, ("id", 3))
    assert_clean(at)
    assert f"Top {shown} neighbours" in all_text(at)


@pytest.fixture
def tiny_folders(tmp_path, monkeypatch):
    """Two folder collections: 2 classes x 3 images, and a single image."""
    six = make_class_folder(tmp_path / "six", classes=("red", "blue"), per_class=3)
    one = tmp_path / "one"
    one.mkdir()
    (one / "only.png").write_bytes(png(rgb(8, 8)))
    monkeypatch.setenv("EMBEDDINGS_FOLDERS", f"{six}:{one}")
    return six, one


def test_small_collections_cap_k_and_the_map(app_env, tiny_folders):
    six, one = tiny_folders
    at = show_query(open_page("pages/images.py"), ("id", 3))
    at.session_state["image_k"] = 40  # chosen on the 2,000-image sample ...
    at.run()
    at.selectbox(key="collection").set_value(str(six)).run()  # ... then a 6-image folder is picked
    wait_ready(at)
    show_query(at, ("id", 1))
    assert_clean(at)
    assert at.slider(key="image_k").max == 5 and "Top 5 neighbours" in all_text(at)
    at.toggle(key="image_compare").set_value(True).run()  # every variant, k-reciprocal included
    names = at.multiselect(key="image_variants").options
    at.multiselect(key="image_variants").set_value(names).run()
    assert_clean(at)
    at.toggle(key="image_compare").set_value(False).run()
    at.segmented_control(key="image_view").set_value("How well are classes separated?").run()
    assert_clean(at)
    assert "Mean precision@5" in all_text(at)
    at.toggle(key="category_compare").set_value(True).run()
    at.multiselect(key="category_variants").set_value(names).run()
    assert_clean(at)
    at.toggle(key="category_compare").set_value(False).run()

    at.switch_page("pages/tsne.py").run()
    at.session_state["tsne_section"] = "Images"
    at.run()
    wait_ready(at)
    for bad in (-1, 6, 10**6, "3"):  # a selected point that is not an image of this collection
        at.session_state["map_selected"] = bad
        at.run()
        assert_clean(at)
        assert "Click any point" in all_text(at)
    at.session_state["map_selected"] = 2
    at.run()
    assert_clean(at)
    assert "perplexity 5" in all_text(at) and "nearest points *on the map*" in all_text(at)

    at.selectbox(key="collection").set_value(str(one)).run()
    wait_ready(at)
    assert_clean(at)
    assert "at least 3 images" in messages(at)
    at.switch_page("pages/images.py").run()
    assert_no_exception(at)
    assert "at least 2 images; this collection has 1" in messages(at)


# ------------------------------------------------------------------------------ uploads


def cmyk_jpeg() -> bytes:
    return encode(Image.new("CMYK", (40, 30), (0, 255, 255, 0)), "JPEG", quality=95)


def palette_png() -> bytes:
    img = Image.fromarray(rgb(20, 20)).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return png(img, transparency=0)


def sixteen_bit_png() -> bytes:
    return png(Image.fromarray(np.tile(np.arange(0, 65536, 2048, dtype=np.uint16), (16, 1))))


def alpha_png(mode: str) -> bytes:
    rgba = np.dstack([rgb(24, 24), np.tile(np.arange(0, 240, 10, dtype=np.uint8), (24, 1))])
    return png(Image.fromarray(rgba, "RGBA").convert(mode))


def huge_png() -> bytes:
    """A real 10,000 x 10,000 PNG (bilevel, so the file is small and quick to make)."""
    return png(Image.new("1", (10_000, 10_000)))


GOOD_UPLOADS = {
    "1x1.png": lambda: png(np.array([[[9, 8, 7]]], dtype=np.uint8)),
    "cmyk.jpg": cmyk_jpeg,
    "palette.png": palette_png,
    "16bit.png": sixteen_bit_png,
    "rgba.png": lambda: alpha_png("RGBA"),
    "la.png": lambda: alpha_png("LA"),
    "panorama.png": lambda: png(rgb(10, 60_000)),  # a long strip: resized without a memory blow-up
}
BAD_UPLOADS = {
    "notes.png": (lambda: b"my shopping list\nmilk\neggs\n", "was it renamed"),
    "cut.jpg": (truncated_jpeg, "truncated or corrupt"),
    "empty.png": (lambda: b"", "empty"),
    "huge.png": (huge_png, "above the limit of 50,000,000 pixels"),
}


@pytest.mark.parametrize("name", GOOD_UPLOADS)
def test_unusual_images_decode_to_rgb(name):
    out = decode_image_bytes(GOOD_UPLOADS[name](), name=name)
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3 and out.flags.c_contiguous
    if name == "cmyk.jpg":
        assert (np.abs(out.astype(int) - [255, 0, 0]).max(axis=2) < 8).all()  # CMYK red is RGB red


@pytest.mark.parametrize("name", BAD_UPLOADS)
def test_bad_files_raise_a_precise_error(name):
    make, expected = BAD_UPLOADS[name]
    with pytest.raises(InvalidInputError, match=expected) as info:
        decode_image_bytes(make(), name=name)
    assert name in str(info.value) or name == "empty.png"


def test_pixel_limit_is_checked_before_decoding():
    data = huge_png()
    start = time.perf_counter()
    with pytest.raises(InvalidInputError, match="10000 x 10000 = 100,000,000 pixels"):
        decode_image_bytes(data, name="huge.png")
    assert time.perf_counter() - start < 2  # refused from the header, not after decoding 300 MB
    assert DEFAULT_MAX_PIXELS == 50_000_000


def test_long_strips_are_resized_in_bounded_memory(monkeypatch):
    import torch.nn.functional as F

    sizes = []
    real = F.interpolate
    monkeypatch.setattr(
        F, "interpolate", lambda x, size, **kw: sizes.append(size) or real(x, size=size, **kw)
    )
    resnet_like = Preprocess(resize=256, crop=224, mean=(0.5,) * 3, std=(0.5,) * 3)
    for shape in [(10, 100_000, 3), (100_000, 10, 3)]:
        assert tuple(resnet_like([np.zeros(shape, np.uint8)]).shape) == (1, 3, 224, 224)
    assert max(max(s) for s in sizes) <= 4 * 256  # was 2,560,000 x 256: about 8 GB of floats
    strip = rgb(100, 1500)  # moderate: the bounded path gives exactly the same pixels
    bounded = resnet_like([strip])
    monkeypatch.setattr("embeddings.image.base.STRIP_SIDE_FACTOR", 10**9)
    assert (bounded == resnet_like([strip])).all()


def test_upload_limit_is_set_and_applied_to_the_uploader(app_env):
    import tomllib

    config = tomllib.loads((Path(APP).parent / ".streamlit" / "config.toml").read_text())
    assert 1 <= config["server"]["maxUploadSize"] <= 10  # MB: the server refuses bigger files
    at = open_page("pages/images.py")
    uploader = at.file_uploader(key="image_upload")
    assert uploader.proto.max_upload_size_mb == config["server"]["maxUploadSize"]
    assert sorted(uploader.allowed_type) == [".jpeg", ".jpg", ".png"]
    # what fits in 10 MB can still claim a huge pixel count; the decoder refuses it
    assert len(huge_png()) < config["server"]["maxUploadSize"] * 1024 * 1024


def upload(at: AppTest, name: str, data: bytes) -> AppTest:
    mime = "image/jpeg" if name.endswith(".jpg") else "image/png"
    at.file_uploader(key="image_upload").set_value((name, data, mime)).run()
    return at


def test_uploads_on_the_page(app_env):
    at = open_page("pages/images.py")
    for name, (make, expected) in BAD_UPLOADS.items():
        upload(at, name, make())
        assert_no_exception(at)
        errors = "\n".join(shown_text(e.value) for e in at.error)
        assert "That file can't be used" in errors and expected in errors, (name, errors)
        assert "Top 10 neighbours" not in all_text(at)
    for name, make in GOOD_UPLOADS.items():
        upload(at, name, make())
        assert_clean(at)
        assert "Top 10 neighbours" in all_text(at), name
        query_image = at.get("image")[0]
        assert shown_text(query_image.proto.imgs[0].caption) == f"Your image: {name}"
    kept = at.session_state["image_query"][4]  # only a display-sized copy stays in the session
    assert max(kept.shape[:2]) <= 512
    at.file_uploader(key="image_upload").clear().run()
    assert_no_exception(at)


def test_upload_of_a_non_image_with_an_image_name_shows_the_hint(app_env):
    at = upload(open_page("pages/images.py"), "photo.jpg", b"GIF89a-not-really")
    assert_no_exception(at)
    shown = shown_text(at.error[0].value)
    assert "That file can't be used" in shown and "photo.jpg" in shown


def test_uploaded_query_follows_an_image_model_switch(app_env, add_model):
    from embeddings.models.baselines import PixelImageEmbedder

    class Pixels8(PixelImageEmbedder):  # another cheap model, with another dimension (192)
        model_id = "pixels8"
        dim = 8 * 8 * 3
        preprocess = Preprocess(resize=8, crop=8, mean=(0.5,) * 3, std=(0.5,) * 3)

    add_model("pixels8", Pixels8, kind="image")
    at = upload(open_page("pages/images.py"), "mine.png", png(rgb(30, 30)))
    assert_clean(at)
    at.sidebar.selectbox(key="image_model").set_value("pixels8").run()  # was: "query vectors are 768-d"
    wait_ready(at)
    assert_clean(at)
    assert shown_text(
        at.get("image")[0].proto.imgs[0].caption
    ) == "Your image: mine.png" and "Top 10 neighbours" in all_text(at)
    at.file_uploader(key="image_upload").clear().run()
    at.sidebar.selectbox(key="image_model").set_value("pixels").run()  # the kept query is 192-d
    wait_ready(at)
    assert_clean(at)
    assert "Pick a query" in all_text(at)


# ------------------------------------------------------------------------------ total size, stopping


class CountingEmbedder(TextEmbedder):
    """A slow model stand-in: counts its batches, and marks the session gone after the first."""

    model_id, dim, batch_size = "counting", 4, 2

    def __init__(self, on_batch=None):
        self.batches = 0
        self.on_batch = on_batch

    def embed_batch(self, texts):
        self.batches += 1
        if self.on_batch:
            self.on_batch()
        return np.ones((len(texts), self.dim), dtype=np.float32)


TOO_MUCH = ["x" * 20_000 + f" {i}" for i in range(300)]  # the 6 MB request that took 87-105 s


def test_total_characters_per_request_are_capped():
    assert sum(map(len, TOO_MUCH)) > MAX_REQUEST_CHARS
    with pytest.raises(InvalidInputError, match=f"at most {MAX_REQUEST_CHARS:,} per request"):
        parse_word_list(", ".join(TOO_MUCH))
    with pytest.raises(InvalidInputError, match=f"at most {MAX_REQUEST_CHARS:,} per request"):
        parse_groups("long: " + ", ".join(TOO_MUCH))
    model = CountingEmbedder()
    with pytest.raises(InvalidInputError, match="fewer or shorter items"):
        model.embed(TOO_MUCH)
    assert model.batches == 0  # refused before any work
    fits = ["y" * (MAX_REQUEST_CHARS // 4 - 2) + f" {i}" for i in range(4)]
    assert len(parse_word_list(", ".join(fits))) == 4 and model.embed(fits).shape == (4, 4)


def test_the_pages_refuse_too_much_text_with_the_limit(app_env):
    at = type_words(open_page("pages/words.py"), ", ".join(TOO_MUCH))
    assert_no_exception(at)
    assert f"at most {MAX_REQUEST_CHARS:,} per request" in messages(at)
    assert "words_heatmap" not in charts(at)
    at.switch_page("pages/tsne.py").run()
    at.text_area(key="tsne_groups").set_value("long: " + ", ".join(TOO_MUCH)).run()
    assert_no_exception(at)
    assert f"at most {MAX_REQUEST_CHARS:,} per request" in messages(at)
    assert "tsne_words_chart" not in charts(at)


def test_embedding_stops_within_a_batch_once_should_stop_says_so():
    gone = threading.Event()
    model = CountingEmbedder(on_batch=gone.set)  # the tab closes while the first batch runs
    with pytest.raises(WorkCancelledError, match="stopped after 2 of 10"):
        model.embed([f"w{i}" for i in range(10)], should_stop=gone.is_set)
    assert model.batches == 1


def test_the_app_stops_embedding_for_a_session_that_has_gone(monkeypatch):
    """ui.cached.embed_texts asks the Streamlit runtime whether its session is still connected."""
    from streamlit import runtime
    from streamlit.runtime import scriptrunner

    from ui import cached

    class FakeRuntime:
        active = {"s1"}

        def is_active_session(self, session_id):
            return session_id in self.active

    fake = FakeRuntime()
    model = CountingEmbedder(on_batch=lambda: fake.active.discard("s1"))  # closed during batch 1
    monkeypatch.setattr(runtime, "exists", lambda: True)
    monkeypatch.setattr(runtime, "get_instance", lambda: fake)
    monkeypatch.setattr(
        scriptrunner, "get_script_run_ctx", lambda suppress_warning=False: SimpleNamespace(session_id="s1")
    )
    monkeypatch.setattr(cached, "load_text_embedder", lambda model_id: model)
    with pytest.raises(WorkCancelledError):
        cached.embed_texts.__wrapped__("counting", tuple(f"w{i}" for i in range(10)))
    assert model.batches == 1
    fake.active.add("s1")
    model.on_batch = None
    assert cached.embed_texts.__wrapped__("counting", ("a", "b", "c")).shape == (3, 4)


def test_uploaded_query_survives_the_new_models_index_build(app_env, add_model):
    import threading

    from embeddings.models.baselines import PixelImageEmbedder

    gate = threading.Event()  # the build waits here, so the page surely stops for it (no timing)

    class GatedPixels(PixelImageEmbedder):
        model_id = "pixels-gated"
        dim = 8 * 8 * 3
        preprocess = Preprocess(resize=8, crop=8, mean=(0.5,) * 3, std=(0.5,) * 3)

        def embed(self, images, progress=None):
            assert gate.wait(TIMEOUT), "the test never opened the gate"
            return super().embed(images, progress)

    add_model("pixels-gated", GatedPixels, kind="image")
    at = upload(open_page("pages/images.py"), "mine.png", png(rgb(30, 30)))
    assert_clean(at)
    try:
        at.sidebar.selectbox(key="image_model").set_value("pixels-gated").run()
        assert at.get("progress"), "the new model's index is being built"
        assert not at.get("file_uploader")  # the page stopped before drawing the uploader ...
        # ... so the browser unmounts it and its next rerun sends no file for it (AppTest alone
        # would keep the server-side value: drop it as the browser does)
        del at.session_state["image_upload"]
    finally:
        gate.set()
    wait_ready(at)
    assert_clean(at)
    caption = at.get("image")[0].proto.imgs[0].caption
    assert shown_text(caption) == "Your image: mine.png" and "Top 10 neighbours" in all_text(at)
    assert np.shape(at.session_state["image_query"][3])[-1] == 192  # embedded by the new model


def _mixed_size_folder(root: Path) -> Path:
    """Two classes of noisy images (PNG's worst case) at 150x200, 640x480, 32x32 and 10x600."""
    sizes = [(150, 200), (480, 640), (32, 32), (600, 10)]
    for k, name in enumerate(("noise", "stripes")):
        for i in range(16):
            h, w = sizes[i % len(sizes)]
            (root / name).mkdir(parents=True, exist_ok=True)
            (root / name / f"{i:02d}.png").write_bytes(png(rgb(h, w, seed=100 * k + i)))
    return root


def test_a_folder_of_mixed_sizes_shows_bounded_galleries_and_grids(app_env, tmp_path, monkeypatch):
    import ui.views.compare
    import ui.views.image

    folder = _mixed_size_folder(tmp_path / "mixed")
    shown = []  # every neighbour tile's shape, as the grids frame it

    def recording(framed):
        return lambda thumb, *args, **kwargs: shown.append(thumb.shape) or framed(thumb, *args, **kwargs)

    for module in (ui.views.image, ui.views.compare):
        monkeypatch.setattr(module, "framed", recording(module.framed))
    monkeypatch.setenv("EMBEDDINGS_FOLDERS", str(folder))
    monkeypatch.setenv("EMBEDDINGS_COLLECTION", str(folder))
    at = open_page("pages/images.py")
    assert_clean(at)
    assert "32" in all_text(at) and "mixed" in all_text(at)
    gallery = [c for c in at.get("plotly_chart") if c.key and c.key.startswith("gallery_")]
    assert gallery and len(gallery[0].proto.spec) < 400_000, len(gallery[0].proto.spec)
    at.selectbox(key="gallery_class").set_value("stripes").run()
    assert_clean(at)
    show_query(at, ("id", 1))  # a 640 x 480 query: the neighbour grid
    assert_clean(at)
    assert "Top 10 neighbours" in all_text(at)
    assert set(shown) == {(128, 128, 3)}, set(shown)
    shown.clear()
    at.toggle(key="image_compare").set_value(True).run()  # the before/after grid
    assert_clean(at)
    assert set(shown) == {(72, 72, 3)}, set(shown)


def test_names_that_are_not_utf8_on_the_image_page(app_env, tmp_path, monkeypatch):
    import os

    root = make_class_folder(tmp_path / "odd", classes=("dog",), per_class=3)
    raw = os.fsencode(root) + b"/caf\xe9"
    os.mkdir(raw)
    for i in range(3):
        with open(raw + b"/na\xefve-%d.png" % i, "wb") as fh:
            fh.write(png(rgb(8, 8, i)))
    monkeypatch.setenv("EMBEDDINGS_FOLDERS", str(root))
    monkeypatch.setenv("EMBEDDINGS_COLLECTION", str(root))
    at = open_page("pages/images.py")
    assert_clean(at)
    assert "caf\\xe9" in at.selectbox(key="gallery_class").options  # was: UnicodeEncodeError
    at.selectbox(key="gallery_class").set_value("caf\\xe9").run()
    assert_clean(at)
    show_query(at, ("id", 0))
    assert_clean(at)
    assert "Top 5 neighbours" in all_text(at)
    at.segmented_control(key="image_view").set_value("How well are classes separated?").run()
    assert_clean(at)
