"""Word similarity: heatmap, pairs, one-word ranking, analogies, nearest words, two models."""

import hashlib

import numpy as np
import streamlit as st

from embeddings.errors import EmbeddingsError
from embeddings.registry import max_chars
from embeddings.text.base import MAX_WORDS, duplicate_items, parse_word_list
from embeddings.text.wordlists import (
    CELL_TEXT_MAX,
    DEFAULT_WORDS,
    HEATMAP_MAX,
    escape_markdown,
    ranking,
    similar_pairs,
    spearman,
    trimmed_items,
    unique_labels,
    upper_triangle,
)
from ui import cached
from ui.charts import text as charts
from ui.settings import analogy_model, available_text_models, current_text_model, describe_text_model
from ui.sidebar import require_router
from ui.views import links
from ui.views.exports import csv_download
from ui.views.text import embedding_message, show_error, similarity_column, word_box

require_router()

TABS = ["Similarity matrix", "Compare to one word", "Analogy", "Nearest words", "Compare two models"]
COLOR_MODES = {"fixed": "−1 to 1 (absolute)", "data": "Stretch to the data (more contrast)"}
PAIRS_SHOWN = 10
BARS_SHOWN = 50


# ------------------------------------------------------------------------------ input


def read_items() -> list[str] | None:
    """The typed words and phrases, or None (after showing why) when the list is unusable."""
    raw = word_box(
        "Words or phrases, separated by commas or new lines",
        DEFAULT_WORDS,
        key="words_input",
        height=100,
        help=f"Up to {MAX_WORDS:,} items. Phrases, accents and emoji are fine. Press Ctrl+Enter to apply.",
    )
    try:
        items = parse_word_list(raw)
    except EmbeddingsError as exc:
        st.warning(escape_markdown(exc), icon=":material/edit_note:")
        return None
    links.length_note("words")
    dropped = duplicate_items(raw)
    if dropped:
        st.caption(duplicates_note(dropped))
    return items


def duplicates_note(dropped: list[tuple[str, str]], shown: int = 10) -> str:
    """One line naming the repeats left out of the list (case is ignored)."""
    names = ", ".join(
        f"“{escape_markdown(d)}”" + ("" if d == k else f" (as “{escape_markdown(k)}”)")
        for d, k in dropped[:shown]
    )
    more = f" and {len(dropped) - shown:,} more" if len(dropped) > shown else ""
    return f"Left out as repeats (case is ignored): {names}{more}; each item is embedded once."


def embed(model_id: str, items: list[str]) -> np.ndarray | None:
    """Vectors for ``items`` (cached), or None after showing the error."""
    try:
        with st.spinner(embedding_message(model_id, len(items)), show_time=True):
            return cached.embed_texts(model_id, tuple(items))
    except EmbeddingsError as exc:
        show_error(exc, model_id)
        return None


def similarities(model_id: str, items: list[str]) -> np.ndarray | None:
    vectors = embed(model_id, items)
    return None if vectors is None else vectors @ vectors.T


def need(items: list[str] | None, count: int, what: str) -> bool:
    """Whether there are at least ``count`` items; otherwise say so and return False."""
    if items is None:
        st.caption("Fix the word list above to see this.")
        return False
    if len(items) < count:
        st.info(f"{what} needs at least {count} words or phrases — add more to the list above.")
        return False
    return True


# ------------------------------------------------------------------------------ tabs


def matrix_tab(model_id: str, items: list[str] | None) -> None:
    if not need(items, 2, "A similarity matrix"):
        return
    sims = similarities(model_id, items)
    if sims is None:
        return
    labels = unique_labels(items)
    most, least = similar_pairs(labels, sims, PAIRS_SHOWN)
    n = len(items)
    if n > HEATMAP_MAX:
        st.info(
            f"{n:,} items make a {n:,} × {n:,} heatmap, too dense to read (the limit is {HEATMAP_MAX}). "
            "The tables below list the most and least similar pairs, and **Compare to one word** "
            "ranks every item against the one you choose."
        )
        left, right = st.columns(2, gap="large")
        pairs_tables(most, least, left, right)
        matrix_downloads(model_id, items, sims)
        return
    chart_col, table_col = st.columns([5, 3], gap="large")
    with chart_col:
        mode = st.radio(
            "Colour scale",
            list(COLOR_MODES),
            format_func=COLOR_MODES.get,
            horizontal=True,
            key="words_color_mode",
            persist_state="session",
            help="Red is similar, white is unrelated (0), blue is opposite. Stretching keeps 0 white "
            "but makes the strongest off-diagonal value the deepest colour.",
        )
        fig = charts.similarity_heatmap(
            sims,
            labels,
            title=f"Cosine similarity · {model_id}",
            color_range=charts.similarity_range(sims, mode),
        )
        st.plotly_chart(fig, key="words_heatmap")
        if n > CELL_TEXT_MAX:
            st.caption(f"More than {CELL_TEXT_MAX} items: hover over a cell to read its value.")
    pairs_tables(most, least, table_col, table_col)
    with table_col:
        matrix_downloads(model_id, items, sims)


def matrix_downloads(model_id: str, items: list[str], sims: np.ndarray) -> None:
    """The similarity matrix and every pair (the tables' full version) as CSV, full texts."""
    from embeddings.core.exports import pairs_csv, similarity_matrix_csv

    left, right = st.columns(2)
    with left:
        csv_download(
            "Matrix (CSV)", lambda: similarity_matrix_csv(items, sims),
            "similarity", model_id, "words", "export_similarity",
        )  # fmt: skip
    with right:
        csv_download(
            "All pairs (CSV)", lambda: pairs_csv(items, sims), "pairs", model_id, "words", "export_pairs"
        )  # fmt: skip


def pairs_tables(most, least, top_slot, bottom_slot) -> None:
    column = "cosine similarity"
    with top_slot:
        st.markdown("**Most similar pairs**")
        config = {column: similarity_column(most[column])}
        st.dataframe(most, hide_index=True, column_config=config, width="stretch")
    with bottom_slot:
        st.markdown("**Least similar pairs**")
        config = {column: similarity_column(least[column])}
        st.dataframe(least, hide_index=True, column_config=config, width="stretch")


def ranking_tab(model_id: str, items: list[str] | None) -> None:
    if not need(items, 2, "A ranking"):
        return
    labels = unique_labels(items)
    choice_col, chart_col = st.columns([1, 3], gap="large")
    with choice_col:
        focus = st.selectbox("Compare every item to", labels, key="words_focus")
        st.caption("Bars show each other item's cosine similarity to this one, most similar first.")
    sims = similarities(model_id, items)
    if sims is None:
        return
    others, scores = ranking(labels, sims, labels.index(focus) if focus in labels else 0)
    if len(others) > BARS_SHOWN:
        half = BARS_SHOWN // 2
        others, scores = others[:half] + others[-half:], np.concatenate([scores[:half], scores[-half:]])
        choice_col.caption(f"Showing the {half} most and {half} least similar of {len(sims) - 1:,} items.")
    with chart_col:
        st.plotly_chart(charts.ranking_bars(others, scores, focus), key="words_ranking")


def load_vocabulary(model_id: str) -> cached.Vocabulary | None:
    """The vocabulary embedded with ``model_id``, with a progress bar the first time."""
    slot = st.empty()

    def progress(done: int, total: int) -> None:
        slot.progress(
            done / max(total, 1),
            text=f"Embedding the {total:,}-word vocabulary with {model_id} (once per model)… {done:,}/{total:,}",
        )

    if not cached.vocabulary_ready(model_id):
        slot.progress(0.0, text=f"Preparing the vocabulary for {model_id} (once per model)…")
    try:
        with st.spinner("Loading the vocabulary…"):
            return cached.vocabulary(model_id, progress)
    except EmbeddingsError as exc:
        show_error(exc, model_id)
        return None
    finally:
        slot.empty()


def analogy_tab(model_id: str) -> None:
    from embeddings.text import analogies
    from embeddings.text.vocab import analogy_words

    st.markdown(
        "Vector arithmetic on meanings: **a − b + c** asks *“what is to c as a is to b?”* "
        "The answers are the vocabulary words the model puts closest to that (the three "
        "inputs themselves are left out)."
    )
    best = analogy_model()
    choices = list(dict.fromkeys([best, model_id]))
    with st.form("analogy_form", border=False):
        a_col, b_col, c_col, k_col, go_col = st.columns([2, 2, 2, 2, 1], vertical_alignment="bottom")
        a = a_col.text_input("a", value="king", key="analogy_a", persist_state="session")
        b = b_col.text_input("− b", value="man", key="analogy_b", persist_state="session")
        c = c_col.text_input("+ c", value="woman", key="analogy_c", persist_state="session")
        k = k_col.slider("answers", 1, 20, 8, key="analogy_k", persist_state="session")
        go_col.form_submit_button("Solve", type="primary", width="stretch")
        model_col, method_col = st.columns(2)
        solver = model_col.selectbox(
            "Model for analogies",
            choices,
            format_func=lambda m: f"{m} (the sidebar's)" if m == model_id else f"{m} (best measured)",
            key="analogy_model",
            help="Analogy accuracy differs a lot between models: the best offline model on the Google "
            "analogy test set is the default here, whatever the sidebar says (README, Measured quality).",
        )
        method = method_col.segmented_control(
            "Scoring",
            list(analogies.METHODS),
            default=analogies.BEST_METHOD,
            format_func={"3cosadd": "3CosAdd (a − b + c)", "3cosmul": "3CosMul (Levy & Goldberg)"}.get,
            key="analogy_method",
            help="3CosAdd takes the word closest to a − b + c; 3CosMul multiplies the similarities to a "
            "and c and divides by the one to b, so one large similarity cannot outvote the others.",
        )
    voc = load_vocabulary(solver)
    if voc is None:
        return
    try:
        with st.spinner("Solving…"):
            answers = analogy_words(
                a,
                b,
                c,
                cached.load_text_embedder(solver),
                k,
                words=voc.words,
                vectors=voc.vectors,
                method=method or analogies.BEST_METHOD,
            )
    except EmbeddingsError as exc:
        show_error(exc, solver)
        return
    if not answers:
        st.info("No answer found in the vocabulary.")
        return
    top, score = answers[0]
    result_col, chart_col = st.columns([1, 2], gap="large")
    with result_col:
        st.metric(
            f"{escape_markdown(a)} − {escape_markdown(b)} + {escape_markdown(c)} ≈",
            escape_markdown(top),
            f"cosine {score:.3f}",
            delta_color="off",
            delta_arrow="off",
        )
        st.caption(f"Answered from a {len(voc):,}-word English vocabulary embedded with {solver}.")
    with chart_col:
        words, scores = [w for w, _ in answers], np.array([s for _, s in answers])
        st.plotly_chart(charts.ranking_bars(words, scores, f"{a} − {b} + {c}"), key="analogy_chart")


def nearest_tab(model_id: str, items: list[str] | None) -> None:
    from embeddings.text.vocab import nearest_words

    if not need(items, 1, "Nearest words"):
        return
    labels = unique_labels(items)
    pick_col, k_col = st.columns([3, 1], gap="large")
    # keyed by the list, so a new list starts from the default selection again
    list_key = hashlib.sha1("\n".join(labels).encode()).hexdigest()[:10]
    chosen = pick_col.multiselect(
        "Words to look up", labels, default=labels[:6], key=f"nearest_pick_{list_key}", max_selections=12
    )
    k = k_col.slider("neighbours", 3, 25, 8, key="nearest_k", persist_state="session")
    if not chosen:
        st.info("Choose at least one word to look up.")
        return
    vectors = embed(model_id, items)
    voc = load_vocabulary(model_id) if vectors is not None else None
    if voc is None:
        return
    rows = [labels.index(label) for label in chosen]
    try:
        neighbours = nearest_words(
            vectors[rows], voc.words, voc.vectors, k, exclude_per_query=[[items[i]] for i in rows]
        )
    except EmbeddingsError as exc:
        show_error(exc, model_id)
        return
    import pandas as pd

    table = pd.DataFrame(
        {
            label: [f"{w}  ·  {s:.2f}" for w, s in found]
            for label, found in zip(chosen, neighbours, strict=True)
        },
        index=pd.RangeIndex(1, k + 1, name="rank")[: max(len(f) for f in neighbours)],
    )
    st.dataframe(table, width="stretch")
    st.caption(
        f"The {k} words of the {len(voc):,}-word vocabulary closest to each typed item (cosine similarity "
        "after the dot); the item itself is left out."
    )


def compare_tab(model_id: str, items: list[str] | None) -> None:
    others = [m for m in available_text_models() if m != model_id]
    pick_col, note_col = st.columns([1, 2], gap="large")
    if st.session_state.get("compare_model") not in [None, *others]:  # a link's model that is the sidebar's
        st.session_state.pop("compare_model")
    other = pick_col.selectbox(
        f"Compare {model_id} with",
        others,
        index=None,
        placeholder="Choose a second model…",
        key="compare_model",
        persist_state="session",
    )
    note_col.caption(
        "Both models embed the same list. The **Spearman correlation** compares the *order* of "
        "the pairwise similarities: 1 means both models rank every pair the same way, 0 means "
        "their rankings are unrelated. Try `hashing` (spelling only) against a model that knows meaning."
    )
    if other is None or not need(items, 3, "Comparing two models"):
        return
    sims_a = similarities(model_id, items)
    sims_b = similarities(other, items) if sims_a is not None else None
    if sims_b is None:
        return
    labels = unique_labels(items)
    rows, cols, values_a = upper_triangle(sims_a)
    values_b = sims_b[rows, cols]
    rho = spearman(values_a, values_b)
    metric_col, desc_col = st.columns([1, 3], gap="large")
    metric_col.metric(
        "Spearman rank correlation",
        "n/a" if np.isnan(rho) else f"{rho:.3f}",
        help=f"Computed over the {len(values_a):,} word pairs: do both models order the pairs the same way?",
    )
    desc_col.caption(
        f"**{model_id}**: {describe_text_model(model_id)}  \n**{other}**: {describe_text_model(other)}"
    )
    if len(items) <= HEATMAP_MAX:
        left, right = st.columns(2, gap="large")
        for column, name, sims, key in (
            (left, model_id, sims_a, "compare_a"),
            (right, other, sims_b, "compare_b"),
        ):
            with column:
                fig = charts.similarity_heatmap(
                    sims, labels, title=name, color_range=charts.similarity_range(sims, "data"), height=520
                )
                st.plotly_chart(fig, key=key)
        st.caption("Each heatmap's colours are stretched to its own values, since models differ in scale.")
    else:
        st.info(f"{len(items):,} items are too many for side-by-side heatmaps (the limit is {HEATMAP_MAX}).")
    pair_labels = [f"{labels[i]} · {labels[j]}" for i, j in zip(rows, cols, strict=True)]
    st.plotly_chart(
        charts.agreement_scatter(values_a, values_b, pair_labels, model_id, other), key="compare_scatter"
    )


# ------------------------------------------------------------------------------ page


def render() -> None:
    model_id = current_text_model()
    st.title("Word similarity")
    links.restore("words", words_tabs=TABS)
    st.caption(
        "Each word or phrase becomes a vector; **cosine similarity** measures how closely two vectors "
        f"point the same way (1 same, 0 unrelated, −1 opposite). Text model: **{model_id}** (change it in the sidebar)."
    )
    items = read_items()
    if items is not None:
        trimmed = trimmed_items(max_chars(model_id), items)
        if trimmed:
            st.info(
                f"{len(trimmed)} item(s) are longer than 8,000 characters; {model_id} only reads the first "
                f"8,000: {', '.join(escape_markdown(t) for t in trimmed[:5])}",
                icon=":material/content_cut:",
            )
    tabs = st.tabs(TABS, key="words_tab", on_change="rerun")
    sections = (
        lambda: matrix_tab(model_id, items),
        lambda: ranking_tab(model_id, items),
        lambda: analogy_tab(model_id),
        lambda: nearest_tab(model_id, items),
        lambda: compare_tab(model_id, items),
    )
    for tab, section in zip(tabs, sections, strict=True):
        with tab:
            if tab.open:
                section()
    links.sync("words")


render()
