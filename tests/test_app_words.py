"""The word-similarity page under AppTest with the ``hashing`` model, and its pure helpers."""

from pathlib import Path

import numpy as np
import plotly.io
import pytest
from streamlit.testing.v1 import AppTest

from embeddings.errors import AuthenticationError, RemoteServiceError
from embeddings.models.baselines import HashingTextEmbedder
from embeddings.text.base import MAX_TEXT_CHARS, MAX_WORDS
from embeddings.text.wordlists import similar_pairs, spearman, unique_labels
from tests.conftest import assert_clean, messages, type_words
from ui.charts.text import ranking_bars, similarity_heatmap, similarity_range

APP = str(Path(__file__).resolve().parent.parent / "app.py")
PAGE = "pages/words.py"
TIMEOUT = 60


def words_page(words: str | None = None, tab: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page(PAGE).run()
    return type_words(at, words, tab)


def charts(at: AppTest) -> dict:
    """Plotly figures (``go.Figure``) on the page by widget key."""
    return {c.key: plotly.io.from_json(c.proto.spec) for c in at.get("plotly_chart")}


# ------------------------------------------------------------------------------ the page


def test_example_words_give_heatmap_and_pairs(app_env):
    at = words_page()
    assert_clean(at)
    heatmap = charts(at)["words_heatmap"].data[0]
    assert heatmap.type == "heatmap"
    assert list(heatmap.x[:2]) == ["king", "queen"] and len(heatmap.x) == 9
    assert heatmap.texttemplate  # values printed in the cells of a small matrix
    assert heatmap.zmin == -1 and heatmap.zmax == 1
    most, least = at.dataframe[0].value, at.dataframe[1].value
    assert list(most.columns) == ["word A", "word B", "cosine similarity"]
    assert len(most) == 10 and most["cosine similarity"].is_monotonic_decreasing
    assert least["cosine similarity"].is_monotonic_increasing
    assert most["cosine similarity"].iloc[0] >= least["cosine similarity"].iloc[0]


def test_stretched_colour_scale(app_env):
    at = words_page()
    at.radio(key="words_color_mode").set_value("data").run()
    assert_clean(at)
    heatmap = charts(at)["words_heatmap"].data[0]
    assert heatmap.zmax < 1 and heatmap.zmin == -heatmap.zmax


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("", "empty"),
        (" , ,\n ;", "empty"),
        ("lonely", "at least 2"),
        (", ".join(f"w{i}" for i in range(5000)), "too many"),
    ],
    ids=["empty", "separators-only", "one-word", "5000-words"],
)
def test_bad_lists_get_a_message(app_env, raw, expected):
    at = words_page(raw)
    assert_clean(at)
    assert expected in messages(at)
    assert "words_heatmap" not in charts(at)


def test_too_many_message_names_the_limit(app_env):
    at = words_page(", ".join(f"w{i}" for i in range(MAX_WORDS + 1)))
    assert f"at most {MAX_WORDS}" in messages(at)


def test_emoji_and_accents(app_env):
    at = words_page("café, naïve, crème brûlée, 🙂, 🐱 cat, 東京, Zoë")
    assert_clean(at)
    labels = charts(at)["words_heatmap"].data[0].x
    assert "crème brûlée" in labels and "🙂" in labels and "東京" in labels


def test_very_long_phrase_is_embedded(app_env):
    phrase = ("the quick brown fox jumps over the lazy dog " * 500)[:20000]
    at = words_page(f"king, {phrase}, queen")
    assert_clean(at)
    labels = charts(at)["words_heatmap"].data[0].x
    assert len(labels) == 3 and any("20,000 chars" in label for label in labels)


def test_long_phrase_trim_is_shown_for_openai_models(app_env, add_model):
    add_model("openai:test-fake", HashingTextEmbedder, needs_key=True, max_chars=MAX_TEXT_CHARS)
    at = words_page()
    at.selectbox(key="text_model").set_value("openai:test-fake").run()
    at.text_area(key="words_input").set_value("king, " + "x" * 20000).run()
    assert_clean(at)
    assert "8,000" in messages(at)


def test_large_list_drops_cell_text_then_heatmap(app_env):
    at = words_page(", ".join(f"word{i}" for i in range(40)))
    assert_clean(at)
    assert charts(at)["words_heatmap"].data[0].texttemplate is None
    at = words_page(", ".join(f"word{i}" for i in range(200)))
    assert_clean(at)
    assert "words_heatmap" not in charts(at)
    assert "too dense" in messages(at)
    assert len(at.dataframe) == 2  # the pair tables still show


def test_compare_to_one_word(app_env):
    at = words_page(tab="Compare to one word")
    assert_clean(at)
    bars = charts(at)["words_ranking"].data[0]
    assert bars.type == "bar" and len(bars.y) == 8 and "king" not in bars.y
    at.selectbox(key="words_focus").set_value("cat").run()
    bars = charts(at)["words_ranking"].data[0]
    assert "cat" not in bars.y and "king" in bars.y
    assert list(bars.x) == sorted(bars.x, reverse=True)


def test_analogy_uses_the_vocabulary(app_env):
    at = words_page(tab="Analogy")
    assert_clean(at)
    answer = at.metric[0]
    assert answer.label.startswith("king − man + woman")
    assert answer.value not in {"king", "man", "woman"}
    bars = charts(at)["analogy_chart"].data[0]
    assert len(bars.y) == 8 and not {"king", "man", "woman"} & set(bars.y)


def test_analogy_tab_offers_the_best_measured_model_and_both_scorings(app_env, add_model, monkeypatch):
    from embeddings.text import analogies

    add_model("test-bigrams", lambda: HashingTextEmbedder(dim=256, n=2))
    monkeypatch.setenv("EMBEDDINGS_ANALOGY_MODEL", "test-bigrams")  # stands in for the measured best
    at = words_page(tab="Analogy")
    assert_clean(at)
    model = at.selectbox(key="analogy_model")
    assert model.value == "test-bigrams" and model.options == [
        "test-bigrams (best measured)",
        "hashing (the sidebar's)",
    ]
    assert at.session_state["analogy_method"] == analogies.BEST_METHOD
    first = charts(at)["analogy_chart"].data[0].y
    at.session_state["analogy_method"] = "3cosadd"
    at.session_state["analogy_model"] = "hashing"
    at.button[0].click().run()
    assert_clean(at)
    assert any("embedded with hashing" in str(c.value) for c in at.caption)
    assert list(charts(at)["analogy_chart"].data[0].y) != list(first)


def test_analogy_bad_input(app_env):
    at = words_page(tab="Analogy")
    at.text_input(key="analogy_b").set_value("king")
    at.button[0].click().run()  # the form's "Solve" button
    assert not at.exception
    assert "three different words" in "\n".join(e.value for e in at.error)


def test_nearest_words(app_env):
    at = words_page("king, dog", tab="Nearest words")
    assert_clean(at)
    table = at.dataframe[0].value
    assert list(table.columns) == ["king", "dog"] and len(table) == 8
    assert not table["king"].str.startswith("king ").any()  # the word itself is left out


def test_compare_two_models(app_env, add_model):
    add_model("test-bigrams", lambda: HashingTextEmbedder(dim=256, n=2))
    at = words_page(tab="Compare two models")
    assert_clean(at)
    assert "compare_a" not in charts(at)  # nothing until a second model is chosen
    at.selectbox(key="compare_model").set_value("test-bigrams").run()
    assert_clean(at)
    figures = charts(at)
    assert {"compare_a", "compare_b", "compare_scatter"} <= set(figures)
    assert len(figures["compare_scatter"].data[0].text) == 9 * 8 // 2  # one dot per pair
    rho = at.metric[0]
    assert "Spearman" in rho.label and -1 <= float(rho.value) <= 1


def test_model_errors_are_messages_with_a_hint(app_env, add_model):
    def broken():
        raise AuthenticationError("OpenAI rejected the key (HTTP 401).")

    add_model("openai:test-broken", broken, needs_key=True, max_chars=MAX_TEXT_CHARS)
    at = words_page()
    at.selectbox(key="text_model").set_value("openai:test-broken").run()
    assert not at.exception
    assert "rejected the key" in at.error[0].value
    assert "local" in "\n".join(i.value for i in at.info)


def test_hints_say_what_is_true_for_the_model_that_failed(app_env, add_model):
    """Comparing with a key-needing model: the hint names that model, not the sidebar's (already
    offline) one; the sidebar's key line says what the chosen model needs."""
    from embeddings.errors import ModelUnavailableError

    def no_key():
        raise ModelUnavailableError("No OpenAI API key found: set OPENAI_API_KEY.")

    add_model("openai:test-nokey", no_key, needs_key=True, max_chars=MAX_TEXT_CHARS)
    at = words_page(tab="Compare two models")
    model = at.selectbox(key="text_model").value
    footer = [c.value for c in at.sidebar.caption if c.value.startswith("OpenAI key")]
    assert footer == [f"OpenAI key: not set — `{model}` runs offline and needs none"]
    at.selectbox(key="compare_model").set_value("openai:test-nokey").run()
    assert not at.exception
    hints = "\n".join(i.value for i in at.info)
    assert "choose the `local` text model in the sidebar" not in hints
    assert "instead of `openai:test-nokey` here" in hints
    at.selectbox(key="text_model").set_value("openai:test-nokey").run()  # now the sidebar's own model
    footer = [c.value for c in at.sidebar.caption if c.value.startswith("OpenAI key")]
    assert (
        footer and "`openai:test-nokey` needs one" in footer[0] and "using the local model" not in footer[0]
    )


def test_failures_are_not_cached(app_env, add_model):
    calls = {"n": 0}

    class Flaky(HashingTextEmbedder):
        def embed_batch(self, texts):
            calls["n"] += 1
            if calls["n"] == 1:
                raise RemoteServiceError("OpenAI did not answer; try again in a minute.")
            return super().embed_batch(texts)

    add_model("test-flaky", Flaky)
    at = words_page()
    at.selectbox(key="text_model").set_value("test-flaky").run()
    assert not at.exception and "try again" in at.error[0].value
    at.run()  # the same request again: recomputed, not the cached failure
    assert_clean(at)
    assert "words_heatmap" in charts(at)


# ------------------------------------------------------------------------------ pure helpers


def test_similar_pairs_orders_each_pair_once():
    sims = np.array([[1.0, 0.9, -0.2], [0.9, 1.0, 0.1], [-0.2, 0.1, 1.0]])
    most, least = similar_pairs(["a", "b", "c"], sims, k=5)
    assert list(zip(most["word A"], most["word B"], strict=True)) == [("a", "b"), ("b", "c"), ("a", "c")]
    assert least["cosine similarity"].tolist() == [-0.2, 0.1, 0.9]


def test_spearman():
    a = np.array([0.1, 0.5, 0.3, 0.9])
    assert spearman(a, a * 2 + 1) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)


def test_unique_labels_shortens_and_deduplicates():
    labels = unique_labels(["x" * 50 + "a", "x" * 50 + "b", "dog"])
    assert len(set(labels)) == 3 and all(len(label) < 40 for label in labels)


def test_heatmap_and_bars_builders():
    sims = np.array([[1.0, 0.2], [0.2, 1.0]])
    fig = similarity_heatmap(sims, ["<b>", "x"], color_range=similarity_range(sims, "data"))
    trace = fig.data[0]
    assert trace.zmax == pytest.approx(0.2) and trace.zmin == pytest.approx(-0.2)
    assert trace.x[0] == "&lt;b&gt;"  # user text is escaped for plotly's HTML labels
    bars = ranking_bars(["b", "c"], np.array([0.5, -0.1]), "a")
    assert list(bars.data[0].y) == ["b", "c"]
    with pytest.raises(ValueError):
        similarity_heatmap(sims, ["only one"])


def test_similarity_bars_start_at_zero_and_negatives_are_numbers():
    """A −1..1 bar draws 0 half full: non-negative values get a 0..1 bar, a column with a
    negative value the plain number."""
    from ui.views.text import similarity_column

    bar = similarity_column(np.array([0.0, 0.4, 0.9]))
    assert bar["type_config"]["type"] == "progress"
    assert (bar["type_config"]["min_value"], bar["type_config"]["max_value"]) == (0.0, 1.0)
    assert similarity_column(np.array([0.3, -0.2]))["type_config"]["type"] == "number"
