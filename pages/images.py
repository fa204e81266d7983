"""Image search: click an image (or upload one) and see its nearest neighbours; class separation."""

from __future__ import annotations

import numpy as np
import streamlit as st

from embeddings.errors import EmbeddingsError
from embeddings.image.display import (
    CIFAR_VEHICLES,
    class_name,
    group_purity,
    precision_of,
    valid_image_id,
    worst_confusions,
)
from embeddings.index.compare import pair_cosines
from embeddings.registry import joint_text_model
from embeddings.text.wordlists import escape_markdown
from ui.cached import (
    current_image_settings,
    gallery_spec,
    index_request,
    load_image_embedder,
    retrieval_scores,
    thumbnails,
)
from ui.charts.image import clicked_id, confusion_figure, precision_bars
from ui.sidebar import require_router
from ui.views import links
from ui.views.compare import load_variants, per_class_comparison, pick_variants, side_by_side
from ui.views.conflicts import label_conflicts_section, near_duplicates_section
from ui.views.exports import collection_downloads
from ui.views.image import base_index_of, neighbour_count, neighbour_grid, neighbours_download, require_index
from ui.views.knn import knn_curve_section, knn_vote_section
from ui.views.text import plain

PAGE_SIZE = 24
COLUMNS = 6
# ("id", int), ("upload", file id, name, vector, display image) or ("text", text, vector)
QUERY_KEY = "image_query"
TEXT_SEEN_KEY = "image_text_seen"  # (text, text model) last searched
UPLOAD_KEY = "image_upload_seen"  # ((file id, model, precision), vector, display image)
# (file id, name, bytes) of the uploaded query: kept (at most the 10 MB upload limit) so the query is
# embedded again after a model switch, even when the page stopped for the new model's index build
# and the uploader widget, not drawn meanwhile, lost the file.
UPLOAD_DATA_KEY = "image_upload_data"
UPLOAD_DISPLAY_MAX = 512  # an uploaded image is kept in the session at most this big (longer side)
VIEWS = ["Search by example", "How well are classes separated?"]

require_router()

st.title("Image search")
links.restore("images", image_views=VIEWS)
settings = current_image_settings()
index = require_index(settings)
request = index_request(settings)
st.caption(
    f"**{index.count:,}** images of **{settings.source}** ({settings.split} split) embedded with "
    f"**{settings.model_id}** ({index.dim}-d) · index built {index.manifest['built_at'][:16].replace('T', ' ')} UTC.",
    help=f"Why this model: {plain(settings.model_reason)}.",
)
if index.count < 2:
    st.warning(f"Searching needs at least 2 images; this collection has {index.count}.")
    st.stop()
links.check("images", "q", index.count - 1, f"this collection of {index.count:,} images")
links.check("images", "k", min(50, index.count - 1), "this collection")

text_model = joint_text_model(settings.model_id)
view = st.segmented_control(
    "View",
    VIEWS,
    default=VIEWS[0],
    key="image_view",
)


def gallery(ids_all: np.ndarray) -> None:
    """Filter, shuffle and page through the collection; one click on an image makes it the query."""
    c1, c2, c3 = st.columns([3, 2, 2], vertical_alignment="bottom")
    options = ["all classes", *index.classes] if index.classes else ["all images"]
    chosen = c1.selectbox("Show", options, key="gallery_class")
    if c2.button("Shuffle", icon=":material/shuffle:", width="stretch"):
        st.session_state["gallery_seed"] = int(np.random.default_rng().integers(1 << 30))
        st.session_state["gallery_page"] = 1
    ids = ids_all
    if index.classes and chosen != "all classes":
        ids = ids[index.labels == index.classes.index(chosen)]
    seed = st.session_state.setdefault("gallery_seed", 0)  # mixed classes from the first page on
    ids = np.random.default_rng(seed).permutation(ids)
    pages = max(1, -(-len(ids) // PAGE_SIZE))
    page = c3.number_input(f"Page (of {pages})", 1, pages, key="gallery_page", step=1)
    shown = [int(i) for i in ids[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]]
    captions = tuple(f"#{i} {class_name(index, i) or ''} — click to search" for i in shown)
    query = st.session_state.get(QUERY_KEY, (None, None))
    selected = query[1] if query[0] == "id" else None
    event = st.plotly_chart(
        gallery_spec(request, tuple(shown), captions, COLUMNS, selected),
        on_select="rerun",
        selection_mode="points",
        key=f"gallery_{chosen}_{seed}_{page}",
        config={"displayModeBar": False},
        width="stretch",
    )
    clicked = clicked_id(event)
    if valid_image_id(clicked, index.count):
        if st.session_state.get(QUERY_KEY, (None, None))[:2] != ("id", clicked):
            st.session_state[QUERY_KEY] = ("id", clicked)
            _rerun_here()  # draw the gallery again with the clicked tile framed
    st.caption("Click any image to use it as the query.")


def _rerun_here() -> None:
    """Rerun this fragment (a click's own run), or the page when this is a full run."""
    from streamlit.errors import StreamlitAPIException

    try:
        st.rerun(scope="fragment")
    except StreamlitAPIException:
        st.rerun()


def _upload_removed() -> None:
    """The user took the file out of the uploader: its bytes are forgotten (the query it made
    stays, for this model, until another one is picked)."""
    if st.session_state.get("image_upload") is None:
        st.session_state.pop(UPLOAD_DATA_KEY, None)


def upload() -> None:
    """Use an uploaded PNG/JPEG as the query (read in memory, never written to disk)."""
    from embeddings.image.io import decode_image_bytes

    file = st.file_uploader(
        "…or upload your own image",
        type=["png", "jpg", "jpeg"],
        key="image_upload",
        on_change=_upload_removed,
    )
    if file is not None:
        file_id, name, data = file.file_id, file.name, None
    else:  # no file in the widget: re-embed the kept upload if it is still the query (after a model switch)
        kept = st.session_state.get(UPLOAD_DATA_KEY)
        if kept is None or st.session_state.get(QUERY_KEY, (None, None))[:2] != ("upload", kept[0]):
            return
        file_id, name, data = kept
    # decoded and embedded once per file and image model, not on every rerun
    seen_key = (file_id, settings.model_id, settings.precision)
    previous = st.session_state.get(UPLOAD_KEY)
    if previous is not None and previous[0] == seen_key:
        return  # already the query, or the user has since clicked a gallery image: keep their choice
    try:
        data = file.getvalue() if data is None else data
        image = decode_image_bytes(data, name=name)
        vector = load_image_embedder(settings.model_id, settings.precision).embed([image])
    except EmbeddingsError as exc:
        st.error(f"That file can't be used: {escape_markdown(exc)}")
        return
    picture = display_copy(image)
    st.session_state[UPLOAD_KEY] = (seen_key, vector, picture)
    st.session_state[UPLOAD_DATA_KEY] = (file_id, name, data)
    query = st.session_state.get(QUERY_KEY, (None, None))
    new_file = previous is None or previous[0][0] != file_id
    if new_file or query[:2] == ("upload", file_id):  # a new upload, or the same one under a new model
        st.session_state[QUERY_KEY] = ("upload", file_id, name, vector, picture)


def text_query(text_model: str) -> None:
    """Describe the image in words: the text model shares the image model's space (CLIP)."""
    from ui.cached import embed_texts
    from ui.views.text import show_error

    text = st.text_input(
        "…or describe what you are looking for (press Enter)",
        placeholder="a photo of a red truck",
        key="image_text_query",
        max_chars=300,
    ).strip()
    seen_key = (text, text_model)
    if not text or st.session_state.get(TEXT_SEEN_KEY) == seen_key:
        return  # nothing typed, or already searched (a later gallery click keeps its place)
    try:
        vector = embed_texts(text_model, (text,))
    except EmbeddingsError as exc:
        show_error(exc, text_model)
        return
    st.session_state[TEXT_SEEN_KEY] = seen_key
    st.session_state[QUERY_KEY] = ("text", text, vector)


def display_copy(image: np.ndarray) -> np.ndarray:
    """``image`` shrunk to at most UPLOAD_DISPLAY_MAX pixels on its longer side, enlarged if tiny.

    Only this copy stays in the session: a 50-megapixel upload would otherwise keep 150 MB
    per session and be sent to the browser at full size.
    """
    from PIL import Image

    from embeddings.image.io import enlarge

    if max(image.shape[:2]) < 224:
        return enlarge(image, 224)
    if max(image.shape[:2]) <= UPLOAD_DISPLAY_MAX:
        return image
    small = Image.fromarray(image)
    small.thumbnail((UPLOAD_DISPLAY_MAX, UPLOAD_DISPLAY_MAX), Image.Resampling.LANCZOS)
    return np.asarray(small)


def results() -> tuple[int, int] | None:
    """The query and its neighbours; (query id, k) when the before/after comparison is switched on."""
    query = st.session_state.get(QUERY_KEY)
    if query is None:
        st.info("Pick a query: click an image in the gallery, or upload one.")
        return
    k = neighbour_count("Neighbours (k)", index.count - 1, key="image_k")
    if query[0] == "id" and valid_image_id(query[1], index.count):
        qid = query[1]
        label = class_name(index, qid)
        ids, scores = index.neighbours([qid], k)
        picture = thumbnails(request, (qid,), 224)[0]
        title = f"Query #{qid}" + (f" · {escape_markdown(label)}" if label else "")
    elif query[0] == "upload" and np.shape(query[3])[-1] == index.dim:  # else made by another model
        _, _, name, vector, picture = query
        label = None
        ids, scores = index.search(vector, k)
        title = f"Your image: {escape_markdown(name)}"
    elif query[0] == "text" and text_model is not None and np.shape(query[2])[-1] == index.dim:
        _, text, vector = query
        label = None
        ids, scores = index.search(vector, k)
        st.markdown(f"#### Images matching “{escape_markdown(text)}”")
        st.caption(f"The text is embedded with **{text_model}**, in the same space as the images.")
        neighbour_grid(request, index, ids[0], scores[0], None)
        neighbours_download(settings, index, text, ids[0], scores[0])
        return
    else:
        st.session_state.pop(QUERY_KEY, None)
        st.rerun()
    compare = query[0] == "id" and st.toggle(
        "Before / after: compare with the adapted model and re-ranking",
        key="image_compare",
        help="The same query under the base model, its projection heads and fine-tuned versions, and "
        "label-free re-ranking, side by side.",
    )
    if compare:
        st.image(picture, caption=title, width=160)
        st.caption("The variants are compared below, across the page.")
        return qid, k
    q1, q2 = st.columns([2, 3])
    q1.image(picture, caption=title, width="stretch")
    with q2:
        share = precision_of(index, ids[0], label)
        if share is not None:
            st.metric(
                f"precision@{k} for this query",
                f"{share:.2f}",
                help="share of neighbours in the query's class",
            )
            wrong = [class_name(index, int(i)) for i in ids[0] if class_name(index, int(i)) != label]
            if wrong:
                common = max(set(wrong), key=wrong.count)
                st.markdown(
                    f"Most frequent other class among the neighbours: **{escape_markdown(common)}** "
                    f"({wrong.count(common)})."
                )
        if label is not None:  # an upload has no class: no frames to explain
            st.caption(
                "Green frame ✓ = same class as the query, red frame ✗ = another class. Scores are cosine similarity."
            )
        else:
            st.caption("Scores are cosine similarity.")
    knn_vote_section(index, ids[0], scores[0], label)
    st.subheader(f"Top {k} neighbours")
    base_scores = None
    if query[0] == "id":
        base_index = base_index_of(settings)
        if base_index is not None and base_index.count == index.count:
            base_scores = pair_cosines(base_index, qid, ids[0])
    neighbour_grid(request, index, ids[0], scores[0], label, base_scores=base_scores)
    neighbours_download(settings, index, f"#{qid}" if query[0] == "id" else name, ids[0], scores[0])


def categories() -> None:
    if index.labels is None:
        st.info("This collection has no class labels, so class separation can't be measured.")
        return
    k = neighbour_count("k", index.count - 1, key="category_k")
    if st.toggle(
        "Compare variants: base, adapted, fine-tuned, re-ranked",
        key="category_compare",
        help="Per-class precision@k of every variant, to see which classes improve.",
    ):
        per_class_comparison(settings, k)
        return
    result = retrieval_scores(request, k)
    st.markdown(
        f"Every image queries all the others (itself excluded). **Mean precision@{k} = {result.precision:.3f}** "
        f"over {result.queries:,} queries with **{settings.model_id}**. Chance would be about "
        f"{1 / max(1, len(result.classes)):.2f}."
    )
    left, right = st.columns(2)
    left.plotly_chart(precision_bars(result.per_class, k), width="stretch")
    right.plotly_chart(confusion_figure(result.confusion, result.classes, k), width="stretch")
    worst = worst_confusions(result.confusion, result.classes, top=4)
    st.markdown(
        "**Most confused pairs:** "
        + "; ".join(f"*{a}* queries get {share:.0%} *{b}* neighbours" for a, b, share in worst)
    )
    purity = group_purity(result.confusion, result.classes, CIFAR_VEHICLES)
    if purity is not None:
        st.markdown(
            f"**Vehicles vs animals:** neighbours of a vehicle are vehicles {purity[0]:.0%} of the time; "
            f"neighbours of an animal are animals {purity[1]:.0%} of the time. The coarse split is easy; "
            "telling similar classes apart (cat/dog, automobile/truck) is where ImageNet features struggle."
        )
    focus = st.selectbox("Look at one class", result.classes, key="category_focus")
    row = result.confusion[result.classes.index(focus)]
    order = np.argsort(row)[::-1]
    st.markdown(
        f"Neighbours of **{focus}** images: "
        + ", ".join(f"{result.classes[j]} {row[j]:.0%}" for j in order if row[j] >= 0.01)
    )
    st.subheader("k-NN classification")
    knn_curve_section(index, key="image_knn")
    st.divider()
    label_conflicts_section(settings, index)
    st.divider()
    near_duplicates_section(settings, index)


@st.fragment
def search_by_example() -> None:
    """Gallery, query and neighbours: a fragment, so a click reruns only this part of the page."""
    left, right = st.columns([1, 1], gap="large")
    with left:
        st.subheader("Gallery")
        gallery(np.arange(index.count))
        upload()
        if text_model is not None:
            text_query(text_model)
    with right:
        compared = results()
    if compared is not None:
        st.subheader("Before / after: the same query under each variant")
        variants = pick_variants(load_variants(settings)[0], key="image_variants")
        side_by_side(request, variants, *compared)
    links.sync("images")  # a click reruns only this fragment: its query and k go into the URL here


if view == VIEWS[1]:
    categories()
else:
    search_by_example()
collection_downloads(index, settings)
links.sync("images")
