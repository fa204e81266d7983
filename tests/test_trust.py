"""Where the map lies: neighbourhood preservation and trustworthiness, saved beside an index's map,
and the "Colour by neighbourhood kept" switch on the word and image maps."""

import base64
from pathlib import Path

import numpy as np
import plotly.io
import pytest
from sklearn.manifold import trustworthiness
from streamlit.testing.v1 import AppTest

from embeddings.core import trust as core_trust
from embeddings.core.mathops import normalize
from embeddings.core.trust import MapTrust, check_k, compare_layouts, map_neighbours, map_trust, max_k
from embeddings.errors import InvalidInputError
from embeddings.index import service
from embeddings.index import trust as index_trust
from embeddings.registry import get_text_embedder
from embeddings.text.wordlists import DEFAULT_GROUPS, parse_groups
from tests.conftest import ArrayCollection, assert_clean, make_colour_images, wait_for_jobs
from ui.charts.image import image_map_figure
from ui.charts.text import scatter_map

APP = str(Path(__file__).resolve().parent.parent / "app.py")
TIMEOUT = 90
HOVER = "nearest neighbours are also near it on the map"


def values(data) -> np.ndarray:
    """An array as a figure holds it: a plotly JSON typed array (``bdata``) decoded, else as it is."""
    if isinstance(data, dict) and "bdata" in data:
        return np.frombuffer(base64.b64decode(data["bdata"]), dtype=np.dtype(data["dtype"]))
    return np.asarray(data)


def points(trace) -> np.ndarray:
    return np.stack([values(trace.x), values(trace.y)], axis=1)


def unit_rows(n: int, d: int, seed: int = 0) -> np.ndarray:
    return normalize(np.random.default_rng(seed).normal(size=(n, d)))


def brute_force_shares(x: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    """Share kept from the full n x n distance matrices (the definition, no shortcuts)."""
    dx = 1 - x @ x.T
    dy = np.linalg.norm(y[:, None] - y[None], axis=2)
    np.fill_diagonal(dx, np.inf)
    np.fill_diagonal(dy, np.inf)
    true, near = np.argsort(dx, axis=1)[:, :k], np.argsort(dy, axis=1)[:, :k]
    return np.array([len(set(a) & set(b)) / k for a, b in zip(true, near, strict=True)])


# ------------------------------------------------------------------------------ the measures


def test_an_isometric_layout_keeps_every_neighbourhood():
    x = unit_rows(120, 3)
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(3, 3)))
    layout = 4.0 * x @ q + 2.5  # rotated, scaled, shifted: Euclidean order = cosine order on unit vectors
    found = map_trust(x, layout, k=10)
    assert found.shares.min() == 1.0 and found.mean_share == 1.0
    assert found.trustworthiness == pytest.approx(1.0)
    assert found.histogram().tolist() == [0] * 10 + [120]
    # points on a circle embedded in 50 dims, laid out on a circle: a true 2-D map
    angles = np.random.default_rng(2).uniform(0, 2 * np.pi, 80)
    basis, _ = np.linalg.qr(np.random.default_rng(3).normal(size=(50, 2)))
    circle = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    assert map_trust(circle @ basis.T, 3 * circle, k=5).trustworthiness == pytest.approx(1.0)


def test_a_shuffled_layout_keeps_almost_nothing():
    x = unit_rows(300, 3)
    shuffled = x[np.random.default_rng(4).permutation(300), :2]
    found = map_trust(x, shuffled, k=10)
    assert found.mean_share < 0.1  # chance level is k / (n - 1) = 0.03
    assert found.trustworthiness < 0.6  # a random map scores about 0.5
    assert map_trust(x, x[:, :2], k=10).trustworthiness > found.trustworthiness + 0.2


@pytest.mark.parametrize("k", [1, 4, 10, 29])
def test_agrees_with_brute_force_and_scikit_learn(k):
    x = unit_rows(60, 12, seed=k)
    layout = x[:, :2] + 0.05 * np.random.default_rng(k).normal(size=(60, 2))
    found = map_trust(x, layout, k=k)
    np.testing.assert_allclose(found.shares, brute_force_shares(x, layout, k))
    assert found.trustworthiness == pytest.approx(trustworthiness(x, layout, n_neighbors=k, metric="cosine"))


def test_blocks_give_the_same_answer(monkeypatch):
    x = unit_rows(100, 8)
    layout = x[:, 3:5]
    whole = map_trust(x, layout, k=7)
    monkeypatch.setattr(core_trust, "BLOCK_ROWS", 9)
    reports = []
    blocked = map_trust(x, layout, k=7, progress=lambda done, total: reports.append((done, total)))
    np.testing.assert_array_equal(blocked.kept, whole.kept)
    np.testing.assert_allclose(blocked.penalty, whole.penalty)
    assert reports[0] == (9, 100) and reports[-1] == (100, 100) and len(reports) == 12


def test_saved_form_round_trips():
    found = map_trust(unit_rows(40, 5), unit_rows(40, 2, seed=9), k=3)
    back = MapTrust.from_array(3, found.as_array())
    np.testing.assert_array_equal(back.kept, found.kept)
    assert back.trustworthiness == found.trustworthiness


def test_map_neighbours_skip_the_point_itself_even_among_duplicates():
    layout = np.zeros((5, 2))  # five points at one spot: the point itself may not come back first
    near = map_neighbours(layout, 2)
    assert all(i not in row for i, row in enumerate(near))
    assert map_neighbours(np.array([[0.0, 0], [1, 0], [3, 0], [7, 0]]), 1).ravel().tolist() == [1, 0, 1, 2]


def test_k_bounds_and_bad_input():
    assert max_k(21) == 10 and max_k(20) == 9 and max_k(3) == 1
    assert check_k(np.int64(4), 9) == 4
    x, layout = unit_rows(21, 4), unit_rows(21, 2)
    for bad in (0, -1, 11, 1.5, True, "3"):
        with pytest.raises(InvalidInputError, match="k must"):
            map_trust(x, layout, k=bad)
    with pytest.raises(InvalidInputError, match="at least 3 points"):
        map_trust(x[:2], layout[:2], k=1)
    with pytest.raises(InvalidInputError, match="one map point per vector"):
        map_trust(x, layout[:-1], k=3)
    with pytest.raises(InvalidInputError, match="2 or 3 columns"):
        map_trust(x, x, k=3)
    broken = layout.copy()
    broken[3, 1] = np.nan
    with pytest.raises(InvalidInputError, match="NaN"):
        map_trust(x, broken, k=3)


def test_compare_layouts_says_which_map_keeps_which_neighbours():
    x = unit_rows(50, 3)
    good, bad = x[:, :3], x[np.random.default_rng(5).permutation(50), :2]
    found = compare_layouts(x, good, bad, k=5)
    assert found.first.mean_share == 1.0 and found.second.mean_share < 0.5
    worst = found.most_different(top=5)
    assert len(worst) == 5
    diffs = [int(found.first.kept[i] - found.second.kept[i]) for i in worst]
    assert diffs == sorted(diffs, reverse=True) and diffs[0] > 0
    for i in worst:
        assert len(found.only_first[i]) == diffs[worst.index(i)] + len(found.only_second[i])
    same = compare_layouts(x, good, good, k=5)
    assert same.most_different() == [] and not any(same.only_first) and not any(same.only_second)


# ------------------------------------------------------------------------------ saved beside the map


@pytest.fixture
def colour_index(data_dir, pixel_embedder):
    images, labels = make_colour_images(per_class=20)
    index, _ = service.get_or_build_index(
        ArrayCollection(images, labels, ["r", "g", "b"]), pixel_embedder, data_dir
    )
    return index


def test_saved_scores_are_reused_and_keyed(colour_index, monkeypatch):
    first = index_trust.index_map_trust(colour_index, method="pca", k=5)
    assert first.n == colour_index.count and 0 < first.trustworthiness <= 1
    (path,) = colour_index.path.glob("trust-pca-k5-*.npy")
    calls = []
    real = index_trust.map_trust

    def counting(*args, **kwargs):
        calls.append(kwargs.get("progress"))
        return real(*args, **kwargs)

    monkeypatch.setattr(index_trust, "map_trust", counting)
    again = index_trust.index_map_trust(colour_index, method="pca", k=5)
    np.testing.assert_array_equal(again.kept, first.kept)
    assert calls == [], "saved scores were recomputed"
    index_trust.index_map_trust(colour_index, method="pca", k=6)  # another k misses
    index_trust.index_map_trust(colour_index, method="pca", k=5, seed=3)  # another seed misses
    assert len(calls) == 2
    assert len(list(colour_index.path.glob("trust-pca-*.npy"))) == 3
    assert index_trust.saved_map_trust(colour_index, method="pca", k=7) is None
    path.write_bytes(b"not an array")  # unreadable: recomputed, never used
    assert index_trust.saved_map_trust(colour_index, method="pca", k=5) is None
    np.testing.assert_array_equal(
        index_trust.index_map_trust(colour_index, method="pca", k=5).kept, first.kept
    )
    assert len(calls) == 3


def test_saved_scores_reject_a_bad_k(colour_index):
    with pytest.raises(InvalidInputError, match="k must"):
        index_trust.index_map_trust(colour_index, method="pca", k=colour_index.count)


# ------------------------------------------------------------------------------ the figures


def test_figures_colour_points_by_their_share():
    x = unit_rows(30, 6)
    layout = x[:, :2]
    found = map_trust(x, layout, k=4)
    labels, groups = [f"w{i}" for i in range(30)], ["a"] * 15 + ["b"] * 15
    fig = scatter_map(layout, labels, groups, trust=found)
    (trace,) = fig.data
    np.testing.assert_allclose(values(trace.marker.color), found.shares)
    assert trace.marker.showscale and f"of its 4 {HOVER}" in trace.hovertemplate
    assert [c[1] for c in trace.customdata] == found.kept.tolist()
    assert [t.name for t in scatter_map(layout, labels, groups).data] == ["a", "b"]
    with pytest.raises(ValueError, match="shares"):
        scatter_map(layout[:10], labels[:10], groups[:10], trust=found)
    three_d = scatter_map(np.c_[layout, x[:, 2]], labels, groups, trust=found, show_text=False)
    assert three_d.data[0].type == "scatter3d" and three_d.data[0].mode == "markers"
    np.testing.assert_allclose(three_d.data[0].marker.color, found.shares)
    image_fig = image_map_figure(layout, np.array([0, 1, 2] * 10), ["r", "g", "b"], selected=2, trust=found)
    shares_trace = image_fig.data[0]
    np.testing.assert_allclose(shares_trace.marker.color, found.shares)
    assert [c[0] for c in shares_trace.customdata] == list(range(30))  # a click still reads the id
    assert shares_trace.customdata[4][2] == "g"


# ------------------------------------------------------------------------------ the pages


def tsne_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page("pages/tsne.py").run()
    return at


def chart(at: AppTest, key: str):
    found = [c for c in at.get("plotly_chart") if c.key == key]
    return plotly.io.from_json(found[0].proto.spec) if found else None


def test_word_map_switch_colours_points_by_share(app_env):
    at = tsne_page()
    assert_clean(at)
    assert len(chart(at, "tsne_words_chart").data) == 4  # one trace per group
    assert not at.metric
    at.toggle(key="tsne_words_trust").set_value(True).run()
    assert_clean(at)
    fig = chart(at, "tsne_words_chart")
    (trace,) = fig.data
    words = parse_groups(DEFAULT_GROUPS).words
    vectors = get_text_embedder("hashing").embed(words)
    expected = map_trust(vectors, points(trace), k=10)  # scored independently
    np.testing.assert_allclose(values(trace.marker.color), expected.shares)
    assert f"of its 10 {HOVER}" in trace.hovertemplate
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Trustworthiness"] == f"{expected.trustworthiness:.3f}"
    assert metrics["Mean share of 10 neighbours kept"] == f"{expected.mean_share:.0%}"
    assert chart(at, "tsne_words_trust_hist") is not None
    at.number_input(key="tsne_words_trust_k").set_value(4).run()
    assert_clean(at)
    assert f"of its 4 {HOVER}" in chart(at, "tsne_words_chart").data[0].hovertemplate
    at.toggle(key="tsne_words_trust").set_value(False).run()
    assert_clean(at)
    assert [t.name for t in chart(at, "tsne_words_chart").data] == [
        "animals",
        "vehicles",
        "fruits",
        "emotions",
    ]
    assert not at.metric


def test_word_map_k_is_clamped_to_few_words(app_env):
    at = tsne_page()
    at.text_area(key="tsne_groups").set_value("pets: cat, dog, hamster\nfarm: cow, pig").run()
    at.toggle(key="tsne_words_trust").set_value(True).run()
    assert_clean(at)
    assert at.number_input(key="tsne_words_trust_k").value == 2  # 5 words: k below 2.5
    assert "of its 2" in chart(at, "tsne_words_chart").data[0].hovertemplate


def test_word_map_compares_tsne_with_pca(app_env):
    at = tsne_page()
    at.toggle(key="tsne_words_trust").set_value(True).run()
    at.toggle(key="tsne_compare").set_value(True).run()
    assert_clean(at)
    tsne_fig, pca_fig = chart(at, "tsne_compare_t-SNE_chart"), chart(at, "tsne_compare_PCA_chart")
    assert tsne_fig.layout.title.text.startswith("t-SNE · trustworthiness")
    assert pca_fig.layout.title.text.startswith("PCA · trustworthiness")
    words = parse_groups(DEFAULT_GROUPS).words
    vectors = get_text_embedder("hashing").embed(words)
    layout = {name: points(f.data[0]) for name, f in (("t", tsne_fig), ("p", pca_fig))}
    expected = compare_layouts(vectors, layout["t"], layout["p"], k=10)
    np.testing.assert_allclose(values(pca_fig.data[0].marker.color), expected.second.shares)
    (table,) = at.dataframe
    frame = table.value
    assert list(frame["point"]) == [words[i] for i in expected.most_different(12)]
    assert list(frame["kept by PCA"]) == [int(expected.second.kept[i]) for i in expected.most_different(12)]


def test_image_map_switch_scores_in_the_background_and_saves_beside_the_map(app_env):
    # The sample's index, built as the app builds it, and a map saved under the app's t-SNE key
    # (a PCA layout: a real t-SNE of 2,000 images takes a minute on two busy cores, and what is
    # tested here is the switch and the scores, not the layout).
    from embeddings.core.files import save_npy_atomic
    from embeddings.core.projection import pca
    from embeddings.image.base import default_precision
    from embeddings.image.collections import open_collection
    from embeddings.index.maps import _map_path
    from embeddings.registry import get_image_embedder

    embedder = get_image_embedder("pixels").set_precision(default_precision())
    index, _ = service.get_or_build_index(open_collection("sample", "test"), embedder, app_env)
    save_npy_atomic(_map_path(index, "tsne", 30.0, 0), pca(index.embeddings, 2))
    at = tsne_page()
    at.session_state["tsne_section"] = "Images"
    at.run()
    wait_for_jobs(at, TIMEOUT, poll=1)
    assert_clean(at)
    assert len(chart(at, "image_map").data) == 10  # one trace per class
    at.toggle(key="image_map_trust").set_value(True).run()
    wait_for_jobs(at, TIMEOUT, poll=0.5)
    assert_clean(at)
    fig = chart(at, "image_map")
    (trace,) = fig.data
    (saved,) = index.path.glob("trust-tsne-k10-*.npy")
    found = MapTrust.from_array(10, np.load(saved))
    np.testing.assert_allclose(values(trace.marker.color), found.shares)
    assert f"of its 10 {HOVER}" in trace.hovertemplate
    assert {m.label for m in at.metric} >= {"Trustworthiness", "Mean share of 10 neighbours kept"}
    at.session_state["map_selected"] = 3  # a click still selects an image
    at.run()
    assert_clean(at)
    assert [t.name for t in chart(at, "image_map").data][-1] == "selected image"
    at.toggle(key="image_map_trust").set_value(False).run()
    assert_clean(at)
    assert (
        len([t for t in chart(at, "image_map").data if t.name not in ("its neighbours", "selected image")])
        == 10
    )
