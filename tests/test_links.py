"""Links that reproduce a view: the pure URL-state table and checks, and every page opened from a link."""

from pathlib import Path
from urllib.parse import urlencode

import pytest
from streamlit.testing.v1 import AppTest

from embeddings.text.wordlists import DEFAULT_GROUPS, DEFAULT_WORDS
from tests.conftest import assert_clean, messages, wait_for_jobs
from ui import settings, urlstate
from ui.urlstate import PAGES, SIDEBAR, URL_STATE_MAX, check_below, decode, encode, field_for, fields_of

APP = str(Path(__file__).resolve().parent.parent / "app.py")
TIMEOUT = 90
OPTIONS = {
    "text_models": ["hashing", "local", "openai:text-embedding-3-small"],
    "collections": ["sample", "/data/My Photos"],
    "splits": lambda decoded: ["train", "test"] if decoded.get("collection") == "sample" else ["all"],
    "image_models": ["pixels", "efficientnet_lite0"],
    "words_tabs": ["Similarity matrix", "Compare to one word", "Analogy"],
    "image_views": ["Search by example", "How well are classes separated?"],
    "tsne_sections": ["Words", "Images"],
    "tsne_methods": ["t-SNE", "PCA"],
    "tsne_dims": ["2D", "3D"],
    "docs_sources": ["Python standard library docs (bundled)", "/data/notes"],
    "docs_tabs": ["Results", "Map", "Two models, one query", "k-NN classification"],
    "docs_second_models": lambda decoded: ["local", "wordllama"],
    "docs_modes": ["chunk", "trim"],
    "docs_chunks": [250, 500, 1000, 2000, 4000],
    "docs_overlaps": lambda decoded: [
        o for o in (0, 50, 100, 200, 400) if o <= decoded.get("docs_chunk", 1000) // 2
    ],
}

pytestmark = pytest.mark.app_env(shared_data="links-data")


# ------------------------------------------------------------------------------ pure: the table


def test_one_table_names_every_param_once_per_page_and_the_sidebar_keys_are_the_settings_keys():
    keys = {f.param: f.key for f in SIDEBAR}
    assert keys == {
        "text_model": settings.TEXT_MODEL_KEY,
        "collection": settings.COLLECTION_KEY,
        "split": settings.SPLIT_KEY,
        "image_model": settings.IMAGE_MODEL_KEY,
    }
    for page in PAGES:
        params = [f.param for f in fields_of(page)]
        keys = [f.key for f in fields_of(page)]
        assert len(set(params)) == len(params) and len(set(keys)) == len(keys), page
    assert field_for("images", "q").key == "image_query"
    with pytest.raises(KeyError):
        field_for("home", "q")


def test_round_trip_of_every_page():
    state = {
        "text_model": "openai:text-embedding-3-small",
        "collection": "/data/My Photos",
        "split": "all",
        "image_model": "pixels",
        "words_input": "cat, dog\nkitten & puppy, naïve café 🐱",
        "words_tab": "Compare to one word",
        "compare_model": "local",
        "tsne_groups": DEFAULT_GROUPS,
        "tsne_section": "Images",
        "tsne_method": "PCA",
        "tsne_dims": "3D",
        "tsne_perplexity": 12.5,
        "tsne_seed": 2**31 - 1,
        "map_selected": 0,
        "map_k": 30,
        "image_view": "How well are classes separated?",
        "image_query": ("id", 1999),
        "image_k": 1,
        "docs_source": "/data/notes",
        "docs_query": "read a compressed file & unpack it: naïve 🐍",
        "docs_k": 50,
        "docs_tab": "Two models, one query",
        "docs_model_b": "wordllama",
        "docs_mode": "chunk",
        "docs_chunk": 500,
        "docs_overlap": 200,
    }
    for page in PAGES:
        fields = fields_of(page)
        encoded = encode(state, fields)
        assert not encoded.left_out and encoded.length <= URL_STATE_MAX
        decoded = decode(encoded.params, fields, OPTIONS)
        assert decoded.notes == []
        assert decoded.values == {f.key: state[f.key] for f in fields}, page
    images = encode(state, fields_of("images")).params
    assert images["view"] == "how-well-are-classes-separated" and images["q"] == "1999"
    docs = encode(state, fields_of("documents")).params
    assert docs["show"] == "two-models-one-query" and docs["chunk"] == "500" and docs["docs"] == "data-notes"


def test_state_not_in_a_link_is_left_out():
    fields = fields_of("images")
    upload = ("upload", "file-id", "me.png", None, None)
    assert "q" not in encode({"image_query": upload}, fields).params
    assert "q" not in encode({"image_query": ("text", "a red truck", None)}, fields).params
    assert encode({}, fields).params == {}
    assert "words" not in encode({"words_input": "  \n "}, fields_of("words")).params
    from ui.views.documents import UPLOAD_LABEL

    assert field_for("documents", "docs").never == (UPLOAD_LABEL,)  # the page's own label
    docs = encode({"docs_source": UPLOAD_LABEL, "docs_k": 5}, fields_of("documents")).params
    assert docs == {"k": "5"}  # an upload cannot go into a link


@pytest.mark.parametrize(
    "param, value, expected",
    [
        ("docs", "/etc", "document collection “/etc” is not available here"),
        ("docs", "upload-a-file", "document collection “upload-a-file” is not available here"),
        ("query", " ", "the query is empty"),
        ("query", "x" * 2001, "the query is 2,001 characters long (at most 2,000)"),
        ("k", "0", "top k 0 is out of range (1 to 50)"),
        ("k", "many", "top k “many” is not a whole number"),
        ("show", "graphs", "tab “graphs” is not available here"),
        ("second", "gpt-9", "second model “gpt-9” is not available here"),
        ("long", "squash", "long-documents setting “squash” is not available here"),
        (
            "chunk",
            "300",
            "passage length “300” is not available here (there are: 250, 500, 1000, 2000, 4000)",
        ),
        ("overlap", "300", "overlap “300” is not available here (there are: 0, 50, 100, 200, 400)"),
        ("q", "7", "“q” is not a setting of this page"),
    ],
)
def test_bad_values_of_the_documents_page(param, value, expected):
    decoded = decode({param: value}, fields_of("documents"), OPTIONS)
    assert decoded.values == {} and len(decoded.notes) == 1 and expected in decoded.notes[0], decoded.notes
    good = decode(
        {"docs": "python-standard-library-docs-bundled", "chunk": "500", "overlap": "200"},
        fields_of("documents"),
        OPTIONS,
    )
    assert good.notes == [] and good.values["docs_chunk"] == 500 and good.values["docs_overlap"] == 200
    short = decode(
        {"chunk": "500", "overlap": "400"}, fields_of("documents"), OPTIONS
    )  # at most half the length
    assert short.values == {"docs_chunk": 500}
    assert short.notes == ["the overlap “400” is not available here (there are: 0, 50, 100, 200)"]


@pytest.mark.parametrize(
    "param, value, expected",
    [
        ("text_model", "gpt-9", "text model “gpt-9” is not available here"),
        ("collection", "/etc", "image collection “/etc” is not available here"),
        ("split", "validation", "split “validation” is not available here"),
        ("image_model", "resnet1000", "image model “resnet1000” is not available here"),
        ("k", "ten", "neighbours (k) “ten” is not a whole number"),
        ("k", "2.5", "is not a whole number"),
        ("k", "-3", "is not a whole number"),
        ("k", "0", "neighbours (k) 0 is out of range (1 to 50)"),
        ("k", "51", "out of range (1 to 50)"),
        ("k", "٣", "is not a whole number"),  # an Arabic-Indic digit: Python's int() would take it
        ("k", "1_0", "is not a whole number"),
        ("q", "-1", "query image “-1” is not a whole number"),
        ("q", "1e3", "is not a whole number"),
        ("q", "99999999999999999999999", "is not a whole number"),
        ("view", "gallery", "view “gallery” is not available here"),
        ("nonsense", "1", "“nonsense” is not a setting of this page"),
    ],
)
def test_every_bad_value_is_ignored_with_a_reason(param, value, expected):
    decoded = decode({param: value}, fields_of("images"), OPTIONS)
    assert decoded.values == {}
    (note,) = decoded.notes
    assert expected in note


@pytest.mark.parametrize(
    "page, param, value, expected",
    [
        ("tsne", "perplexity", "nan", "perplexity “nan” is not a number"),
        ("tsne", "perplexity", "inf", "is not a number"),
        ("tsne", "perplexity", "0.5", "out of range (1 to 50)"),
        ("tsne", "seed", "2147483648", "out of range"),
        ("tsne", "dims", "4D", "not available here (there are: 2d, 3d)"),
        ("words", "words", "", "word list is empty"),
        ("words", "words", "x" * (urlstate.TEXT_PARAM_MAX + 1), "20,001 characters long"),
        ("words", "tab", "analogies", "tab “analogies” is not available here"),
    ],
)
def test_bad_values_of_the_text_pages(page, param, value, expected):
    decoded = decode({param: value}, fields_of(page), OPTIONS)
    assert decoded.values == {} and expected in decoded.notes[0]


def test_a_good_value_survives_beside_a_bad_one_and_splits_follow_the_collection():
    decoded = decode({"collection": "sample", "split": "all", "k": "7"}, fields_of("images"), OPTIONS)
    assert decoded.values == {"collection": "sample", "image_k": 7}
    assert "split “all” is not available here (there are: train, test)" in decoded.notes[0]
    assert decode({"tab": "Analogy"}, fields_of("words"), OPTIONS).values == {"words_tab": "Analogy"}


def test_a_long_word_list_is_left_out_and_everything_else_kept():
    words = ", ".join(f"word{i}" for i in range(400))
    state = {"text_model": "hashing", "words_input": words, "words_tab": "Analogy"}
    encoded = encode(state, fields_of("words"))
    assert "words" not in encoded.params and encoded.params == {"text_model": "hashing", "tab": "analogy"}
    ((field, size),) = encoded.left_out
    assert field.param == "words" and size == len(urlencode({"words": words})) > URL_STATE_MAX
    note = urlstate.left_out_note(encoded.left_out)
    assert "word list" in note and f"{size:,} characters" in note and "2,000" in note
    # just under the limit fits, just over does not
    fits = "a" * (URL_STATE_MAX - len(urlencode({"words": ""})))
    assert encode({"words_input": fits}, fields_of("words")).length == URL_STATE_MAX
    assert encode({"words_input": fits + "a"}, fields_of("words")).left_out


def test_values_only_the_data_can_judge():
    q, k = field_for("images", "q"), field_for("images", "k")
    assert check_below(q, ("id", 1999), 1999, "this collection") is None
    assert "query image #2000 is past the end of this collection (ids 0 to 1,999)" in check_below(
        q, ("id", 2000), 1999, "this collection"
    )
    assert check_below(k, 17, 17, "this collection") is None
    assert "neighbours (k) 18 is more than this collection allows (at most 17)" in check_below(
        k, 18, 17, "this collection"
    )


# ------------------------------------------------------------------------------ pages opened from a link


def open_link(page: str, **params) -> AppTest:
    """A new browser opening ``/page?params``: the first run of a fresh session is that page."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update(params)
    at.switch_page(page).run()
    return at


def test_words_link_shows_the_same_words_tab_and_model(app_env):
    link = {"text_model": "hashing", "words": "cat, dog, kitten, puppy", "tab": "compare-to-one-word"}
    at = open_link("pages/words.py", **link)
    assert_clean(at)
    assert not at.warning
    assert at.session_state["words_input"] == "cat, dog, kitten, puppy"
    assert at.session_state["words_tab"] == "Compare to one word"
    assert [c.key for c in at.get("plotly_chart")] == ["words_ranking"]  # the ranking tab is the one drawn
    assert at.selectbox(key="words_focus").options == ["cat", "dog", "kitten", "puppy"]
    assert {k: at.query_params[k] for k in link} == link  # the address bar still reproduces the view
    # after the first load the widgets own the state: the URL follows them
    at.text_area(key="words_input").set_value("sun, moon, star").run()
    assert at.session_state["words_input"] == "sun, moon, star"
    assert at.query_params["words"] == "sun, moon, star" and at.query_params["tab"] == "compare-to-one-word"
    at.run()
    assert at.session_state["words_input"] == "sun, moon, star"


def test_a_stale_words_link_says_what_it_ignored_and_opens_with_defaults(app_env):
    at = open_link("pages/words.py", text_model="gpt-9", tab="analogies", words="", extra="1")
    assert_clean(at)
    shown = messages(at)
    for part in ("text model “gpt-9” is not available", "tab “analogies”", "word list is empty", "“extra”"):
        assert part in shown, shown
    assert at.session_state["text_model"] == "hashing" and at.session_state["words_input"] == DEFAULT_WORDS
    assert "words_heatmap" in [c.key for c in at.get("plotly_chart")]  # the first tab, as without a link
    assert at.query_params["text_model"] == "hashing" and "extra" not in at.query_params
    at.button(key="links_dismiss_words").click().run()
    assert not at.warning


def test_a_word_list_too_long_for_a_link_says_so_and_keeps_the_rest(app_env):
    at = open_link("pages/words.py", tab="analogy")
    words = ", ".join(f"word{i}" for i in range(400))
    at.text_area(key="words_input").set_value(words).run()
    assert_clean(at)
    assert any("Too long for a link: the word list" in c.value for c in at.caption)
    assert "words" not in at.query_params and at.query_params["tab"] == "analogy"


def test_tsne_words_link(app_env):
    groups = "fruit: apple, pear, plum\ntools: hammer, saw, drill"
    at = open_link("pages/tsne.py", groups=groups, method="pca", dims="3d", seed="7", perplexity="2")
    assert_clean(at)
    assert at.session_state["tsne_groups"] == groups
    assert (at.session_state["tsne_method"], at.session_state["tsne_dims"]) == ("PCA", "3D")
    assert at.session_state["tsne_seed"] == 7 and at.session_state["tsne_perplexity"] == 2.0
    (chart,) = at.get("plotly_chart")
    assert "PCA of 6 words" in chart.proto.spec and '"scatter3d"' in chart.proto.spec
    bad = open_link("pages/tsne.py", perplexity="abc", seed="-1", section="maps")
    assert_clean(bad)
    shown = messages(bad)
    assert "perplexity “abc” is not a number" in shown and "seed “-1”" in shown and "section “maps”" in shown
    assert bad.session_state["tsne_groups"] == DEFAULT_GROUPS


def test_tsne_images_link_marks_the_same_point_and_a_point_past_the_end_is_ignored(app_env):
    # the bundled sample ships its index and map for the default image model: no map is computed here
    at = open_link("pages/tsne.py", section="images", point="3", mk="5", image_model="efficientnet_lite0")
    wait_for_jobs(at, TIMEOUT, poll=1)
    assert_clean(at)
    assert at.session_state["map_selected"] == 3 and at.slider(key="map_k").value == 5
    assert any("of its 5 nearest neighbours" in str(m.value) for m in at.markdown)
    bad = open_link(
        "pages/tsne.py", section="images", point="2000", mk="30", image_model="efficientnet_lite0"
    )
    wait_for_jobs(bad, TIMEOUT, poll=1)
    assert_clean(bad)
    assert "map point #2000 is past the end of this collection of 2,000 images (ids 0 to 1,999)" in messages(
        bad
    )
    assert "Click any point" in messages(bad) and "map_selected" not in bad.session_state


def images_link(**params) -> AppTest:
    at = open_link("pages/images.py", **params)
    wait_for_jobs(at, TIMEOUT)
    assert not at.get("progress"), "the index build did not finish"
    return at


def test_images_link_shows_the_same_query_and_k(app_env):
    at = images_link(q="7", k="5")
    assert_clean(at)
    assert not at.warning
    text = " ".join(str(m.value) for m in [*at.markdown, *at.subheader])
    assert "Top 5 neighbours" in text
    assert at.session_state["image_query"] == ("id", 7)
    assert at.query_params["q"] == "7" and at.query_params["k"] == "5"
    assert at.query_params["collection"] == "sample" and at.query_params["image_model"] == "pixels"
    at.slider(key="image_k").set_value(8).run()
    assert at.query_params["k"] == "8" and at.session_state["image_query"] == ("id", 7)


def test_images_link_to_the_class_view(app_env):
    at = images_link(view="how-well-are-classes-separated")
    assert_clean(at)
    assert at.segmented_control(key="image_view").value == "How well are classes separated?"
    assert any("Mean precision@10" in str(m.value) for m in at.markdown)


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"q": "2000", "k": "5"}, "query image #2000 is past the end of this collection of 2,000 images"),
        ({"q": "7", "k": "ten"}, "neighbours (k) “ten” is not a whole number"),
        ({"q": "7", "k": "80"}, "neighbours (k) 80 is out of range (1 to 50)"),
        ({"collection": "cifar100"}, "image collection “cifar100” is not available here"),
        ({"image_model": "vit-huge", "q": "x"}, "image model “vit-huge” is not available here"),
        ({"split": "train"}, "split “train” is not available here (there are: test)"),
    ],
)
def test_a_stale_images_link_says_what_it_ignored_and_opens_with_defaults(app_env, params, expected):
    at = images_link(**params)
    assert_clean(at)
    shown = messages(at)
    assert expected in shown, shown
    assert at.session_state["collection"] == "sample" and at.session_state["image_model"] == "pixels"
    if params.get("q") == "7":  # the good value is kept, the bad k gives the default 10
        assert "Top 10 neighbours" in " ".join(str(m.value) for m in at.subheader)
    elif "q" in params:
        assert "Pick a query" in shown


def test_home_link_with_a_stale_collection(app_env):
    at = open_link("pages/home.py", collection="/nowhere", text_model="hashing")
    assert_clean(at)
    assert "image collection “/nowhere” is not available here" in messages(at)
    assert at.query_params["collection"] == "sample"
