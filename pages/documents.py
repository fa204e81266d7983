"""Semantic search: a query against a collection of documents, ranked by cosine (with the k-NN vote
of its hits), on a map, under two text models side by side, and k-NN classification of the
collection; the view is kept in the page's link, results and map downloadable as CSV."""

from __future__ import annotations

import streamlit as st

from embeddings.errors import EmbeddingsError
from embeddings.text.base import normalize_text
from ui.cached import embed_texts
from ui.settings import available_text_models, current_text_model
from ui.sidebar import require_router
from ui.views import links
from ui.views.documents import (
    SECOND_MODEL,
    TABS,
    choose_collection,
    choose_passages,
    count_of,
    cut_note,
    document_map,
    hits_frame,
    index_or_wait,
    link_options,
    overlap_line,
    results_download,
    results_list,
    second_models,
)
from ui.views.knn import knn_curve_section, knn_vote_section
from ui.views.text import show_error

require_router()

st.title("Semantic search")
links.restore("documents", **link_options())
st.caption(
    "Type what you are looking for in your own words: documents are ranked by the cosine between "
    "the query's vector and each document's best passage, not by shared keywords."
)
collection = choose_collection()
if collection is None:
    st.stop()

models = available_text_models()
model_id = current_text_model()
settings = choose_passages(model_id)
index = index_or_wait(collection, model_id, settings)
groups = f" in {len(collection.classes)} groups" if collection.classes else ""
st.caption(
    f"**{count_of(index.count, 'document')}**{groups}, **{count_of(len(index.spans), 'passage')}**, embedded with "
    f"**{model_id}** ({index.dim}-d, the sidebar's text model) · index built {index.manifest['built_at'][:16].replace('T', ' ')} UTC."
)
cut_note(collection, index)
links.check("documents", "k", min(50, index.count), f"this collection of {count_of(index.count, 'document')}")

q1, q2 = st.columns([5, 1], vertical_alignment="bottom")
query = q1.text_input("Query", value="read a compressed file", key="docs_query", max_chars=2000)
k = q2.number_input("Top k", 1, min(50, index.count), min(10, index.count), key="docs_k")
links.length_note("documents")
cleaned = normalize_text(query or "")
hits = None
if not cleaned:
    st.info("Type a query: it is empty or only spaces.", icon=":material/keyboard:")
else:
    try:
        hits = index.search_documents(embed_texts(model_id, (cleaned,))[0], int(k))
    except EmbeddingsError as exc:
        show_error(exc, model_id)

tab_results, tab_map, tab_compare, tab_knn = st.tabs(TABS, key="docs_tab", on_change="rerun")
with tab_results:
    if hits is not None:
        results_list(hits_frame(collection, index, hits), key="docs_results")
        results_download(collection, index, hits, model_id, cleaned, "export_docs_results")
        if collection.classes:
            st.markdown("#### Which group do its neighbours vote for?")
        knn_vote_section(index, hits.ids, hits.scores, None, key="docs_vote")
with tab_map:
    if st.toggle("Show the map", value=True, key="docs_show_map"):
        document_map(collection, index, hits, cleaned, model_id)
with tab_compare:
    others = second_models(models, model_id)
    if hits is None:
        st.info("Type a query above to compare two models on it.")
    elif not others:
        st.info("Only one text model is available.")
    else:
        other = st.selectbox(
            "Second model",
            others,
            index=None,
            placeholder="Choose a second text model",
            key="docs_model_b",
            help="Offline models whose files are here, and OpenAI's when a key is set. "
            f"Its index of these documents is built once (`{SECOND_MODEL}` is quick).",
        )
        other_index = index_or_wait(collection, other, settings, stop=False) if other else None
        if other_index is not None:
            try:
                other_hits = other_index.search_documents(embed_texts(other, (cleaned,))[0], int(k))
            except EmbeddingsError as exc:
                show_error(exc, other)
            else:
                st.markdown(overlap_line(hits.ids, other_hits.ids, model_id, other))
                left, right = st.columns(2)
                with left:
                    st.subheader(model_id)
                    results_list(hits_frame(collection, index, hits), key="docs_results_a")
                with right:
                    st.subheader(other)
                    results_list(hits_frame(collection, other_index, other_hits), key="docs_results_b")
with tab_knn:
    if tab_knn.open:  # computed (once per index, in the background) only when asked for
        knn_curve_section(index, key="docs_knn")
links.sync("documents")
