"""t-SNE map: lay embedded words (and, later, images) out in 2-D or 3-D."""

import streamlit as st

from embeddings.core.projection import DEFAULT_SEED
from embeddings.errors import EmbeddingsError
from embeddings.registry import max_chars
from embeddings.text.wordlists import (
    DEFAULT_GROUPS,
    clamp_perplexity,
    escape_markdown,
    parse_groups,
    trimmed_items,
    unique_labels,
)
from ui import cached
from ui.settings import current_text_model
from ui.sidebar import require_router
from ui.views import links
from ui.views.exports import csv_download
from ui.views.text import show_error, word_box
from ui.views.trust import method_comparison, neighbourhood_map

require_router()

METHODS = {
    "t-SNE": "t-SNE keeps near neighbours near; distances between far-apart clusters mean little.",
    "PCA": "PCA is a linear projection on the directions of largest variance: faithful, less clustered.",
}
DEFAULT_PERPLEXITY = 8.0
LABELS_MAX = 300  # beyond this many points, text labels are not drawn (hover still works)


def render_words_section() -> None:
    model_id = current_text_model()
    st.markdown(
        "Type one group per line as `group: word, word, …`. Each word is embedded with "
        f"**{model_id}** and the points are coloured by group — do the groups form clusters?"
    )
    input_col, controls_col = st.columns([3, 2], gap="large")
    with input_col:
        raw = word_box(
            "Groups of words",
            DEFAULT_GROUPS,
            key="tsne_groups",
            height=170,
            help="Lines without a colon go to the group “ungrouped”. Press Ctrl+Enter to apply.",
        )
        links.length_note("tsne")
    with controls_col:
        method, dims, requested, seed, show_text = _words_map_controls()
    try:
        groups = parse_groups(raw)
    except EmbeddingsError as exc:
        st.warning(escape_markdown(exc), icon=":material/edit_note:")
        return
    for note in groups.notes[:5]:
        st.caption(escape_markdown(note))
    if len(groups.notes) > 5:
        st.caption(f"…and {len(groups.notes) - 5:,} more repeated words, each kept in its first group.")
    n = len(groups)
    if n < 2:
        st.info("A map needs at least 2 words — add more to the groups above.")
        return
    perplexity, clamp_note = clamp_perplexity(requested, n)
    if method == "t-SNE" and clamp_note:
        st.info(clamp_note, icon=":material/tune:")
    trimmed = trimmed_items(max_chars(model_id), groups.words)
    if trimmed:
        st.info(f"{len(trimmed)} item(s) were cut to 8,000 characters for {model_id}.")
    n_components = 3 if dims == "3D" else 2
    try:
        with st.spinner(f"Embedding {n:,} words with {model_id} and running {method}…"):
            coords = cached.text_map(
                model_id, tuple(groups.words), method, n_components, perplexity, int(seed)
            )
    except EmbeddingsError as exc:
        show_error(exc, model_id)
        return
    _show_words_map(model_id, groups, coords, method, perplexity, int(seed), show_text)


def _words_map_controls() -> tuple[str, str, float, int, bool]:
    """Method, dimensions, perplexity, seed and the labels toggle of the words map."""
    method_col, dims_col = st.columns(2)
    method = method_col.segmented_control(
        "Method", list(METHODS), default="t-SNE", key="tsne_method", persist_state="session"
    )
    method = method or "t-SNE"
    dims = dims_col.segmented_control(
        "Dimensions", ["2D", "3D"], default="2D", key="tsne_dims", persist_state="session"
    )
    requested = st.slider(
        "Perplexity",
        1.0,
        50.0,
        DEFAULT_PERPLEXITY,
        step=1.0,
        format="%.0f",
        key="tsne_perplexity",
        persist_state="session",
        disabled=method != "t-SNE",
        help="Roughly how many neighbours each point pays attention to. It must be below the number of points.",
    )
    seed_col, labels_col = st.columns(2, vertical_alignment="bottom")
    seed = seed_col.number_input(
        "Seed",
        0,
        2**31 - 1,
        DEFAULT_SEED,
        step=1,
        key="tsne_seed",
        persist_state="session",
        disabled=method != "t-SNE",
        help="t-SNE starts from a seeded layout: the same seed gives the same map.",
    )
    show_text = labels_col.toggle("Show labels", value=True, key="tsne_labels", persist_state="session")
    return method, dims, requested, seed, show_text


def _show_words_map(
    model_id: str, groups, coords, method: str, perplexity: float, seed: int, show_text: bool
) -> None:
    """The words map (coloured by group) and the note under it."""
    n = len(groups)
    labels = unique_labels(groups.words, limit=24)
    show_text = show_text and n <= LABELS_MAX
    detail = f"perplexity {perplexity:g}, seed {seed}" if method == "t-SNE" else "top principal components"
    vectors = cached.embed_texts(model_id, tuple(groups.words))
    trust = neighbourhood_map(
        vectors,
        coords,
        labels,
        groups.groups,
        key="tsne_words",
        title=f"{method} of {n} words · {model_id} · {detail}",
        show_text=show_text,
        axis_names=(f"{method} 1", f"{method} 2", f"{method} 3"),
    )
    note = METHODS[method] + " The axes have no units: only relative positions matter."
    if n > LABELS_MAX:
        note += f" Labels are hidden above {LABELS_MAX} points; hover to read them."
    st.caption(note)
    from embeddings.core.exports import map_csv

    csv_download(
        "Map coordinates (CSV)", lambda: map_csv(coords, {"word": groups.words, "group": groups.groups}),
        f"map-{method}", model_id, "words", "export_words_map",
    )  # fmt: skip
    if trust is not None:
        _compare_methods(model_id, groups, labels, coords.shape[1], perplexity, seed, trust.k, show_text)


def _compare_methods(model_id, groups, labels, n_components, perplexity, seed, k, show_text) -> None:
    """t-SNE and PCA of the same words side by side: which method keeps which words together."""
    if not st.toggle(
        "Compare t-SNE with PCA",
        key="tsne_compare",
        persist_state="session",
        help="Both maps of these words side by side, each coloured by the neighbours it keeps.",
    ):
        return
    words = tuple(groups.words)
    try:
        with st.spinner("Laying the words out with both methods…"):
            layouts = {
                method: cached.text_map(model_id, words, method, n_components, perplexity, seed)
                for method in METHODS
            }
    except EmbeddingsError as exc:
        show_error(exc, model_id)
        return
    method_comparison(
        cached.embed_texts(model_id, words),
        layouts,
        labels,
        groups.groups,
        k,
        key="tsne_compare",
        show_text=show_text,
    )


# ---------------------------------------------------------------- sections of the page
# One (title, render function) per section; with more than one section the page shows them as tabs.
def render_images_section() -> None:
    from ui.views.image import render_image_map_section

    render_image_map_section()


SECTIONS = [
    ("Words", render_words_section),
    ("Images", render_images_section),
]


def render() -> None:
    st.title("t-SNE map")
    sections = [title for title, _ in SECTIONS]
    links.restore("tsne", tsne_sections=sections, tsne_methods=list(METHODS), tsne_dims=["2D", "3D"])
    st.caption(
        "Embeddings have hundreds of dimensions; a map squeezes them into two (or three) so you can "
        "see which items the model considers close."
    )
    if len(SECTIONS) == 1:
        SECTIONS[0][1]()
        links.sync("tsne")
        return
    tabs = st.tabs([title for title, _ in SECTIONS], key="tsne_section", on_change="rerun")
    for tab, (_, section) in zip(tabs, SECTIONS, strict=True):
        with tab:
            if tab.open:  # only the visible section runs
                section()
    links.sync("tsne")


render()
