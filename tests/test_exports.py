"""Downloads: the pure builders of their bytes, and every download button's file under AppTest,
read back (CSV parsed, ``.npy`` loaded, Parquet read) and compared with what the page shows."""

import base64
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.io
import pyarrow.parquet as pq
import pytest
from streamlit.testing.v1 import AppTest

from embeddings.core.exports import (
    array_npy,
    class_names,
    export_name,
    map_csv,
    neighbours_csv,
    pairs_csv,
    similarity_matrix_csv,
    vectors_parquet,
    write_vectors_parquet,
)
from tests.conftest import assert_clean, wait_for_jobs

APP = str(Path(__file__).resolve().parent.parent / "app.py")
TIMEOUT = 90

pytestmark = pytest.mark.app_env(shared_data="exports-data")


# ------------------------------------------------------------------------------ pure builders


def test_file_names_follow_model_and_data():
    assert export_name("similarity", "minilm", "words", "csv") == "similarity-minilm-words.csv"
    assert export_name("vectors", "efficientnet_lite0", "cifar10-test", ".npy") == (
        "vectors-efficientnet_lite0-cifar10-test.npy"
    )
    assert export_name("pairs", "openai:text-embedding-3-small", "words", "csv") == (
        "pairs-openai-text-embedding-3-small-words.csv"
    )
    assert export_name("map-t-SNE", "clip", "/home/me/My Photos/", "csv") == "map-t-sne-clip-my-photos.csv"


def test_similarity_matrix_and_pairs_csv():
    items = ["cat", 'dog, the "good" one', "日本"]
    sims = np.array([[1.0, 0.5, -0.25], [0.5, 1.0, 0.125], [-0.25, 0.125, 1.0]], np.float32)
    matrix = pd.read_csv(io.BytesIO(similarity_matrix_csv(items, sims)))
    assert list(matrix.columns) == ["item", *items] and list(matrix["item"]) == items
    np.testing.assert_allclose(matrix[items].to_numpy(), sims, atol=1e-6)
    pairs = pd.read_csv(io.BytesIO(pairs_csv(items, sims)))
    assert list(pairs.columns) == ["word A", "word B", "cosine similarity"]
    assert pairs.values.tolist() == [
        ["cat", items[1], 0.5],
        [items[1], "日本", 0.125],
        ["cat", "日本", -0.25],
    ]
    with pytest.raises(ValueError):
        similarity_matrix_csv(items, sims[:2])


def test_neighbours_and_map_csv():
    table = pd.read_csv(
        io.BytesIO(neighbours_csv("#7", [3, 9], [0.9, 0.8], ["cat", None])), keep_default_na=False
    )
    assert table.to_dict("list") == {
        "query": ["#7", "#7"], "rank": [1, 2], "id": [3, 9], "label": ["cat", ""], "cosine": [0.9, 0.8],
    }  # fmt: skip
    coords = np.array([[0.5, -1.0, 2.0], [1.5, 2.0, -3.0]])
    frame = pd.read_csv(io.BytesIO(map_csv(coords, {"word": ["a", "b"], "group": ["g", "g"]})))
    assert list(frame.columns) == ["word", "group", "x", "y", "z"]
    np.testing.assert_allclose(frame[["x", "y", "z"]].to_numpy(), coords)
    with pytest.raises(ValueError):
        map_csv(coords, {"word": ["a"]})
    with pytest.raises(ValueError):
        map_csv(np.zeros((2, 4)), {})


def test_npy_and_parquet_round_trip():
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((2500, 7)).astype(np.float32)
    names = class_names(rng.integers(0, 3, 2500), ["cat", "dog", "ship"], 2500)
    assert np.array_equal(np.load(io.BytesIO(array_npy(vectors)), allow_pickle=False), vectors)
    loaded = np.load(io.BytesIO(array_npy(names)), allow_pickle=False)
    assert loaded.dtype.kind == "U" and list(loaded) == list(names)
    assert class_names(None, [], 3).tolist() == ["", "", ""]
    steps = []
    buffer = io.BytesIO()
    write_vectors_parquet(
        buffer, vectors, names, {"model": "m"}, progress=lambda done, total: steps.append(done)
    )
    assert steps == [1000, 2000, 2500]
    table = pq.read_table(io.BytesIO(buffer.getvalue()))
    assert table.column_names == ["id", "label", "vector"]
    assert table.schema.metadata[b"model"] == b"m"
    assert np.array_equal(np.stack(table["vector"].to_numpy(zero_copy_only=False)), vectors)
    assert table["id"].to_pylist() == list(range(2500)) and table["label"].to_pylist() == list(names)
    assert pq.read_table(io.BytesIO(vectors_parquet(vectors[:3], names[:3]))).num_rows == 3
    with pytest.raises(ValueError):
        vectors_parquet(vectors, names[:5])


# ------------------------------------------------------------------------------ the buttons' files


def values(array) -> np.ndarray:
    """A figure's numbers, whether plain lists or plotly's typed arrays (``{"dtype", "bdata", "shape"}``)."""
    if isinstance(array, dict) and "bdata" in array:
        flat = np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"])
        shape = [int(n) for n in str(array.get("shape", len(flat))).split(",")]
        return flat.reshape(shape).astype(float)
    return np.asarray(array, dtype=float)


def open_page(page: str, **params) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update(params)
    at.switch_page(page).run()
    wait_for_jobs(at, TIMEOUT, poll=1)
    assert_clean(at)
    return at


def test_word_similarity_downloads_hold_the_shown_numbers(app_env, downloads):
    words = "king, queen, man, woman, apple"
    at = open_page("pages/words.py", words=words)
    name, data = downloads(at, "export_similarity")
    assert name == "similarity-hashing-words.csv"
    matrix = pd.read_csv(io.BytesIO(data))
    items = [w.strip() for w in words.split(",")]
    assert list(matrix["item"]) == items
    heatmap = plotly.io.from_json(
        next(c for c in at.get("plotly_chart") if c.key == "words_heatmap").proto.spec
    )
    np.testing.assert_allclose(matrix[items].to_numpy(), values(heatmap.data[0].z), atol=1e-5)
    name, data = downloads(at, "export_pairs")
    assert name == "pairs-hashing-words.csv"
    pairs = pd.read_csv(io.BytesIO(data))
    assert len(pairs) == 10  # every pair of 5 items once
    most, least = at.dataframe[0].value, at.dataframe[1].value
    np.testing.assert_allclose(
        pairs["cosine similarity"].head(len(most)), most["cosine similarity"], atol=1e-4
    )
    shown_least = least["cosine similarity"].to_numpy()
    np.testing.assert_allclose(
        pairs["cosine similarity"].to_numpy()[::-1][: len(shown_least)], shown_least, atol=1e-4
    )
    assert list(pairs[["word A", "word B"]].iloc[0]) == list(most[["word A", "word B"]].iloc[0])


def test_words_map_download_holds_the_drawn_points(app_env, downloads):
    groups = "fruit: apple, pear, plum\ntools: hammer, saw, drill"
    at = open_page("pages/tsne.py", groups=groups, method="pca")
    name, data = downloads(at, "export_words_map")
    assert name == "map-pca-hashing-words.csv"
    table = pd.read_csv(io.BytesIO(data))
    assert list(table.columns) == ["word", "group", "x", "y"]
    assert list(table["group"]) == ["fruit"] * 3 + ["tools"] * 3
    fig = plotly.io.from_json(at.get("plotly_chart")[0].proto.spec)
    drawn = {
        (w, round(x, 5), round(y, 5))
        for t in fig.data
        for w, x, y in zip(t.text, values(t.x), values(t.y), strict=True)
    }
    assert drawn == {(r.word, round(r.x, 5), round(r.y, 5)) for r in table.itertuples()}


def captions_of_neighbours(at) -> list[tuple[str, float]]:
    out = []
    for caption in at.caption:
        found = re.match(r"^[✓✗] ?(\S+)\s+cos (-?[0-9.]+)$", str(caption.value).replace("  \n", " "))
        if found:
            out.append((found[1], float(found[2])))
    return out


def test_neighbours_download_holds_the_shown_neighbours(app_env, downloads):
    at = open_page("pages/images.py", q="7", k="6")
    name, data = downloads(at, "export_neighbours")
    assert name == "neighbours-pixels-sample-test.csv"
    table = pd.read_csv(io.BytesIO(data))
    assert list(table.columns) == ["query", "rank", "id", "label", "cosine"]
    assert list(table["rank"]) == [1, 2, 3, 4, 5, 6] and set(table["query"]) == {"#7"}
    in_dom_order = captions_of_neighbours(at)
    assert len(in_dom_order) == 6
    ranks = [n for column in range(5) for n in range(column, 6, 5)]  # the grid is drawn column by column
    shown = [caption for _, caption in sorted(zip(ranks, in_dom_order, strict=True))]
    assert [label for label, _ in shown] == list(table["label"])
    np.testing.assert_allclose([s for _, s in shown], table["cosine"], atol=5e-4)
    assert 7 not in set(table["id"])


def test_collection_downloads_hold_the_index(app_env, downloads):
    at = open_page("pages/images.py")
    (index_dir,) = [p for p in (app_env / "indexes").iterdir() if p.is_dir() and "pixels" in p.name]
    vectors = np.load(index_dir / "embeddings.npy", allow_pickle=False)
    labels = np.load(index_dir / "labels.npy", allow_pickle=False)
    name, data = downloads(at, "export_vectors_npy")
    assert name == "vectors-pixels-sample-test.npy"
    got = np.load(io.BytesIO(data), allow_pickle=False)
    assert got.dtype == np.float32 and np.array_equal(got, vectors)
    assert f"{len(vectors):,} vectors of {vectors.shape[1]} float32" in " ".join(
        str(c.value) for c in at.caption
    )
    name, data = downloads(at, "export_labels_npy")
    assert name == "labels-pixels-sample-test.npy"
    names = np.load(io.BytesIO(data), allow_pickle=False)
    classes = sorted(set(names.tolist()))
    assert len(names) == len(vectors) and len(classes) == 10
    # the names follow the stored label numbers
    assert all(len(set(labels[names == c])) == 1 for c in classes)
    assert not [
        b for b in at.get("download_button") if b.key == "export_parquet"
    ]  # not before it is prepared
    at.button(key="export_parquet_prepare").click().run()
    assert_clean(at)
    name, data = downloads(at, "export_parquet")
    assert name == "vectors-pixels-sample-test.parquet"
    table = pq.read_table(io.BytesIO(data))
    assert np.array_equal(np.stack(table["vector"].to_numpy(zero_copy_only=False)), vectors)
    assert table["label"].to_pylist() == names.tolist() and table["id"].to_pylist() == list(
        range(len(vectors))
    )
    assert table.schema.metadata[b"model"] == b"pixels" and table.schema.metadata[b"collection"] == b"sample"
    assert len(list(index_dir.glob("export-*.parquet"))) == 1  # written once, beside the index
    again = open_page("pages/images.py")
    assert [b for b in again.get("download_button") if b.key == "export_parquet"]  # served from disk


def test_image_map_download_holds_the_drawn_points(app_env, downloads):
    at = open_page("pages/tsne.py", section="images", image_model="efficientnet_lite0")  # its map is shipped
    wait_for_jobs(at, TIMEOUT, poll=1)
    name, data = downloads(at, "export_image_map")
    assert name == "map-tsne-efficientnet_lite0-sample-test.csv"
    table = pd.read_csv(io.BytesIO(data))
    assert list(table.columns) == ["id", "label", "x", "y"] and len(table) == 2000
    fig = plotly.io.from_json(next(c for c in at.get("plotly_chart") if c.key == "image_map").proto.spec)
    drawn = {}
    for trace in fig.data:
        for (i,), x, y in zip(trace.customdata, values(trace.x), values(trace.y), strict=True):
            drawn[int(i)] = (trace.name, x, y)
    assert len(drawn) == 2000
    for row in table.itertuples():
        label, x, y = drawn[row.id]
        assert label.startswith(row.label) and abs(x - row.x) < 1e-4 and abs(y - row.y) < 1e-4
