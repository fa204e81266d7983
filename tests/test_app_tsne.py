"""The t-SNE page under AppTest with the ``hashing`` model, the group parser and the scatter builder."""

from pathlib import Path

import numpy as np
import plotly.io
import pytest
from streamlit.testing.v1 import AppTest

from embeddings.errors import InvalidInputError
from embeddings.text.wordlists import DEFAULT_GROUPS, UNGROUPED, clamp_perplexity, parse_groups
from tests.conftest import assert_clean, messages
from ui.charts.text import scatter_map

APP = str(Path(__file__).resolve().parent.parent / "app.py")
PAGE = "pages/tsne.py"
TIMEOUT = 60


def tsne_page(groups: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page(PAGE).run()
    if groups is not None:
        at.text_area(key="tsne_groups").set_value(groups).run()
    return at


def scatter(at: AppTest):
    charts = [c for c in at.get("plotly_chart") if c.key == "tsne_words_chart"]
    return plotly.io.from_json(charts[0].proto.spec) if charts else None


# ------------------------------------------------------------------------------ the page


def test_default_groups_make_a_scatter(app_env):
    at = tsne_page()
    assert_clean(at)
    fig = scatter(at)
    assert [trace.name for trace in fig.data] == ["animals", "vehicles", "fruits", "emotions"]
    assert sum(len(trace.text) for trace in fig.data) == len(parse_groups(DEFAULT_GROUPS))
    assert all(trace.type == "scatter" and "text" in trace.mode for trace in fig.data)
    assert "clamp" not in messages(at) and "too high" not in messages(at)


def test_few_points_clamp_perplexity_with_a_reason(app_env):
    at = tsne_page("pets: cat, dog, hamster\nfarm: cow, pig")
    assert_clean(at)
    text = messages(at)
    assert "too high for 5 points" in text and "below the number of points" in text
    assert scatter(at) is not None
    assert "perplexity 4" in scatter(at).layout.title.text


def test_pca_and_3d(app_env):
    at = tsne_page()
    at.segmented_control(key="tsne_method").set_value("PCA").run()
    assert_clean(at)
    assert scatter(at).layout.title.text.startswith("PCA")
    at.segmented_control(key="tsne_dims").set_value("3D").run()
    assert_clean(at)
    assert all(trace.type == "scatter3d" for trace in scatter(at).data)


def test_seed_and_labels_controls(app_env):
    at = tsne_page()
    at.number_input(key="tsne_seed").set_value(7).run()
    at.toggle(key="tsne_labels").set_value(False).run()
    assert_clean(at)
    fig = scatter(at)
    assert "seed 7" in fig.layout.title.text
    assert all(trace.mode == "markers" for trace in fig.data)


@pytest.mark.parametrize(
    "raw, expected",
    [("", "no words"), ("animals:", "no words"), ("solo: cat", "at least 2")],
    ids=["empty", "empty-group", "one-word"],
)
def test_bad_groups_get_a_message(app_env, raw, expected):
    at = tsne_page(raw)
    assert_clean(at)
    assert expected in messages(at)
    assert scatter(at) is None


def test_emoji_and_ungrouped_words(app_env):
    at = tsne_page("🐱, 🐶, café\nfood: crème brûlée, 寿司, pizza")
    assert_clean(at)
    assert [trace.name for trace in scatter(at).data] == [UNGROUPED, "food"]


# ------------------------------------------------------------------------------ pure helpers


def test_parse_groups():
    parsed = parse_groups("# a comment\nanimals: dog, Cat ; cow\n\nloose, words\nfruit: apple, dog, ,")
    assert parsed.words == ["dog", "Cat", "cow", "loose", "words", "apple"]
    assert parsed.groups == ["animals"] * 3 + [UNGROUPED] * 2 + ["fruit"]
    assert parsed.group_names == ["animals", UNGROUPED, "fruit"]
    assert len(parsed.notes) == 1 and "dog" in parsed.notes[0]


def test_parse_groups_rejects_empty_and_too_many():
    with pytest.raises(InvalidInputError):
        parse_groups("\n  \n# nothing")
    with pytest.raises(InvalidInputError, match="too many"):
        parse_groups("g: " + ", ".join(f"w{i}" for i in range(30)), max_items=20)


def test_parse_groups_default_is_about_30_words():
    parsed = parse_groups(DEFAULT_GROUPS)
    assert len(parsed.group_names) == 4 and 24 <= len(parsed) <= 32


@pytest.mark.parametrize(
    "requested, n, used", [(8, 28, 8), (30, 28, 27), (30, 5, 4), (5, 2, 1), (60, 1000, 50)]
)
def test_clamp_perplexity(requested, n, used):
    value, note = clamp_perplexity(requested, n)
    assert value == used and value < n
    assert (note is None) == (value == requested)


def test_scatter_map_builder():
    coords = np.arange(12, dtype=float).reshape(6, 2)
    fig = scatter_map(coords, list("abcdef"), ["x", "x", "y", "y", "z", "z"], show_text=False)
    assert [trace.name for trace in fig.data] == ["x", "y", "z"]
    assert all(trace.mode == "markers" for trace in fig.data)
    fig3 = scatter_map(np.zeros((2, 3)), ["a", "b"], ["g", "g"])
    assert fig3.data[0].type == "scatter3d"
    with pytest.raises(ValueError):
        scatter_map(coords, list("abc"), ["x"] * 3)
