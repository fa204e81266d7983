"""Sections of the Semantic search page: choosing the documents, waiting for their index, the ranked
results with the passage that matched (and their CSV), the map (coloured by group or by
neighbourhood kept, its coordinates as CSV), two models side by side, and what the page's link keeps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from embeddings.core.projection import DEFAULT_SEED
from embeddings.documents.collection import DocumentCollection
from embeddings.documents.passages import (
    DEFAULT_CHUNK_CHARS,
    DEFAULT_MODE,
    DEFAULT_OVERLAP,
    PassageSettings,
)
from embeddings.errors import EmbeddingsError
from embeddings.text.base import MAX_TEXT_CHARS
from embeddings.text.wordlists import escape_markdown
from ui.documents import (
    SHIPPED_LABEL,
    DocRequest,
    doc_index_or_job,
    doc_map_or_job,
    doc_request,
    stored_collection,
)
from ui.jobs import Job
from ui.views.image import map_trust_or_progress, show_job_failure, wait_for_job
from ui.views.text import show_error, show_problem

BUNDLED_LABEL = "Python standard library docs (bundled)"
UPLOAD_LABEL = "Upload a file"
UPLOAD_STATE = "docs_upload_parsed"  # (file id, text column, collection or error) of this session's upload
CHUNK_SIZES = (250, 500, 1000, 2000, 4000)
OVERLAPS = (0, 50, 100, 200, 400)
SECOND_MODEL = "wordllama"  # the second model offered first: offline, and fast to build
PASSAGE_SHOWN = 400  # characters of the matching passage shown in the table
TABS = ["Results", "Map", "Two models, one query", "k-NN classification"]
MODES = ["chunk", "trim"]


def link_options() -> dict:
    """The choices a link's values are checked against (``links.restore("documents", **...)``): the
    listed collections (never an upload), the tabs, the second models, the passage settings."""
    from embeddings.documents.folders import configured_text_folders
    from ui.settings import available_text_models, current_text_model

    def overlaps(decoded: dict) -> list[int]:
        size = decoded.get("docs_chunk") or st.session_state.get("docs_chunk") or DEFAULT_CHUNK_CHARS
        return [o for o in OVERLAPS if o <= int(size) // 2]

    return {
        "docs_sources": [BUNDLED_LABEL, *(str(p) for p in configured_text_folders())],
        "docs_tabs": TABS,
        "docs_second_models": lambda _decoded: second_models(available_text_models(), current_text_model()),
        "docs_modes": MODES,
        "docs_chunks": list(CHUNK_SIZES),
        "docs_overlaps": overlaps,
    }


def collection_name(collection: DocumentCollection) -> str:
    """The collection as a file-name part (``docs``, a folder's name, an upload's file name)."""
    from embeddings.core.exports import name_part

    return name_part(collection.name)


def choose_collection() -> DocumentCollection | None:
    """The collection chooser (bundled, the folders of ``$EMBEDDINGS_TEXT_FOLDERS``, an upload);
    None (with a message) until there is a collection to search."""
    from embeddings.documents.folders import TEXT_FOLDERS_ENV, configured_text_folders

    folders = [str(p) for p in configured_text_folders()]
    options = [BUNDLED_LABEL, *folders, UPLOAD_LABEL]
    choice = st.radio(
        "Documents",
        options,
        key="docs_source",
        horizontal=True,
        help=f"Folders of .txt/.md files are listed by the environment variable `{TEXT_FOLDERS_ENV}` "
        "(never typed here). An upload stays in this browser session only.",
    )
    if choice == UPLOAD_LABEL:
        return _upload()
    try:
        return stored_collection("docs" if choice == BUNDLED_LABEL else choice)
    except EmbeddingsError as exc:
        show_problem(exc, "Choose another collection, or fix the folder and reload the page.")
        return None


def _upload() -> DocumentCollection | None:
    from embeddings.documents.parsing import MAX_UPLOAD_BYTES, TEXT_COLUMNS, parse_documents, table_columns

    file = st.file_uploader(
        "A .txt, .md, .csv or .jsonl file",
        type=["txt", "md", "markdown", "csv", "jsonl", "ndjson"],
        key="docs_file",
        help="TXT: one document per paragraph (blank-line separated). Markdown: one per heading's section. "
        f"CSV/JSONL: one per row, text in a column named {', '.join(TEXT_COLUMNS)} (or chosen below), "
        "groups in an optional label/group/category column. At most "
        f"{MAX_UPLOAD_BYTES // 2**20} MB and 20,000 documents.",
    )
    if file is None:
        st.info(
            "Upload a file to search it. It is kept for this session only.", icon=":material/upload_file:"
        )
        return None
    seen = st.session_state.get(UPLOAD_STATE)
    if seen is not None and seen[0] != file.file_id:  # another file: its columns are its own
        st.session_state.pop("docs_text_column", None)
    column = st.session_state.get("docs_text_column") or None
    if seen is None or seen[:2] != (file.file_id, column):
        data = file.getvalue()
        try:
            result = parse_documents(data, file.name, text_column=column)
        except EmbeddingsError as exc:
            columns = (
                table_columns(data, file.name)
                if file.name.lower().endswith((".csv", ".jsonl", ".ndjson"))
                else []
            )
            result = (exc, columns)
        st.session_state[UPLOAD_STATE] = seen = (file.file_id, column, result)
    result = seen[2]
    if isinstance(result, tuple):
        exc, columns = result
        show_problem(exc, "Fix the file and upload it again.")
        if columns:
            st.selectbox(
                "Text column",
                [""] + columns,
                key="docs_text_column",
                help="The column holding each document's text.",
            )
        return None
    groups = f" in {len(result.classes)} groups" if result.classes else " (no groups)"
    st.caption(f"**{escape_markdown(file.name)}**: {count_of(len(result), 'document')}{groups}.")
    return result


def count_of(n: int, noun: str) -> str:
    """``1 document``, ``2,186 documents``."""
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def choose_passages(model_id: str, key: str = "docs") -> PassageSettings:
    """Trim or chunk, with the chunk size and overlap shown (and changeable in "Passage settings")."""
    from embeddings.registry import max_chars

    labels = {"chunk": "Split into passages", "trim": "Trim"}
    mode = (
        st.segmented_control(
            "Long documents",
            list(labels),
            format_func=labels.get,
            default=DEFAULT_MODE,
            key=f"{key}_mode",
            help="Split: a document scores as its best passage. Trim: the model reads only the start "
            "(OpenAI's models are cut to 8,000 characters). Measured on the bundled documents: README, Measured quality.",
        )
        or DEFAULT_MODE
    )
    trim_chars = max_chars(model_id) or MAX_TEXT_CHARS
    if mode == "trim":
        settings = PassageSettings("trim", trim_chars=trim_chars)
    else:
        with st.expander("Passage settings"):
            size = st.select_slider(
                "Passage length (characters)", CHUNK_SIZES, value=DEFAULT_CHUNK_CHARS, key=f"{key}_chunk"
            )
            overlap = st.select_slider(
                "Overlap (characters)",
                [o for o in OVERLAPS if o <= size // 2],
                value=min(DEFAULT_OVERLAP, size // 2),
                key=f"{key}_overlap",
            )
        settings = PassageSettings("chunk", size, overlap, trim_chars)
    st.caption(f"Documents are {settings.describe()}.")
    return settings


def index_or_wait(
    collection: DocumentCollection, model_id: str, settings: PassageSettings, stop: bool = True
):
    """The document index, or its build's progress bar (with ``stop``, the page stops there;
    otherwise None is returned)."""
    request: DocRequest = doc_request(collection, model_id, settings)
    try:
        result = doc_index_or_job(request, collection)
    except EmbeddingsError as exc:
        show_error(exc, model_id)
        return _halt(stop)
    if not isinstance(result, Job):
        return result
    if result.stopped:
        show_job_failure(f"Embedding the documents with {model_id}", result, key=f"retry:{result.key}")
        return _halt(stop)
    wait_for_job(
        result,
        "The passages' vectors ship with the app: nothing to embed, only the model to load for your query."
        if SHIPPED_LABEL in result.label
        else "Every passage is embedded once and the index is saved to disk, so this happens only the first time.",
    )
    return _halt(stop)


def _halt(stop: bool):
    if stop:
        st.stop()
    return None


def cut_note(collection: DocumentCollection, index) -> None:
    """Which documents lost text (trimmed, or past the passage limit)."""
    cut = index.cut()
    if not cut:
        return
    settings = index.settings
    how = (
        f"trimmed to {settings.get('trim_chars', MAX_TEXT_CHARS):,} characters"
        if settings.get("mode") == "trim"
        else "longer than 100 passages (the rest is not read)"
    )
    were = "document was" if len(cut) == 1 else "documents were"
    with st.expander(f"{len(cut):,} {were} cut: {how}"):
        st.dataframe(
            pd.DataFrame(
                {
                    "document": [collection.first_line(i) for i in cut],
                    "characters": [len(collection.texts[i]) for i in cut],
                }
            ),
            hide_index=True,
        )


def hit_rows(collection: DocumentCollection, index, hits) -> list[dict]:
    """Rank, document id, title, group, cosine and the whole matching passage of each hit."""
    rows = []
    for rank, (doc, score, row) in enumerate(zip(hits.ids, hits.scores, hits.passages, strict=True), start=1):
        rows.append(
            {
                "rank": rank,
                "id": collection.ids[int(doc)],
                "title": collection.first_line(int(doc)),
                "group": collection.groups[int(doc)] or "",
                "cosine": float(score),
                "matching passage": " ".join(index.passage_text(collection, int(row)).split()),
            }
        )
    return rows


def hits_frame(collection: DocumentCollection, index, hits) -> pd.DataFrame:
    """Rank, title, group, cosine and the matching passage (cut to ``PASSAGE_SHOWN``) of each hit."""
    rows = []
    for hit in hit_rows(collection, index, hits):
        passage = hit["matching passage"]
        rows.append(
            {
                "rank": hit["rank"],
                "document": hit["title"],
                "group": hit["group"],
                "cosine": hit["cosine"],
                "matching passage": passage[:PASSAGE_SHOWN] + ("…" if len(passage) > PASSAGE_SHOWN else ""),
            }
        )
    frame = pd.DataFrame(rows)
    return frame if collection.classes else frame.drop(columns="group")


def results_download(
    collection: DocumentCollection, index, hits, model_id: str, query: str, key: str
) -> None:
    """The ranked documents (rank, id, title, group, cosine, whole matching passage) as CSV."""
    from embeddings.core.exports import document_hits_csv
    from ui.views.exports import csv_download

    csv_download(
        "Results (CSV)", lambda: document_hits_csv(query, hit_rows(collection, index, hits)),
        "search", model_id, collection_name(collection), key,
    )  # fmt: skip


def results_list(frame: pd.DataFrame, key: str) -> None:
    """Each hit: rank, title, group and cosine on one line, the passage that matched below it."""
    with st.container(key=key):
        for row in frame.to_dict("records"):
            group = f" · {escape_markdown(row['group'])}" if row.get("group") else ""
            st.markdown(
                f"**{row['rank']}. {escape_markdown(row['document'])}**{group} · cosine **{row['cosine']:.3f}**"
            )
            st.caption(escape_markdown(row["matching passage"]))


def document_map(collection: DocumentCollection, index, hits, query: str, model_id: str) -> None:
    """The t-SNE map coloured by group (or, switched, by neighbourhood kept), the hits ringed, the
    query a star at its hits' weighted mean; its coordinates as CSV."""
    from embeddings.core.exports import map_csv
    from embeddings.index.documents import place_query
    from ui.charts.documents import document_map_figure
    from ui.views.exports import csv_download
    from ui.views.trust import trust_summary

    if index.count < 5:
        st.info("The map needs at least 5 documents.")
        return
    result = doc_map_or_job(index)
    if isinstance(result, Job):
        if result.stopped:
            show_job_failure("Laying out the map", result, key=f"retry:{result.key}")
        elif result.state == "finished":
            from ui.documents import forget_job

            forget_job(result)
            st.rerun()
        else:
            wait_for_job(result, "The map is computed once per index and saved beside it.")
        return
    trust = _map_trust(index)
    query_xy = place_query(result, hits.ids, hits.scores) if hits is not None else None
    titles = [collection.first_line(i, 80) for i in range(len(collection))]
    fig = document_map_figure(
        result,
        index.labels,
        index.classes,
        titles,
        list(map(int, hits.ids)) if hits is not None else None,
        query_xy,
        query,
        trust=trust,
    )
    map_col, side = st.columns([3, 1], gap="medium") if trust is not None else (st.container(), None)
    with map_col:
        st.plotly_chart(fig, key="docs_map", config={"displaylogo": False})
    if side is not None:
        with side:
            trust_summary(trust, "docs_map")
    csv_download(
        "Map coordinates (CSV)",
        lambda: map_csv(result, {"id": collection.ids, "title": titles, "group": list(collection.groups)}),
        "map-tsne", model_id, collection_name(collection), "export_docs_map",
    )  # fmt: skip
    st.caption(
        "t-SNE of the documents' vectors (openTSNE, computed once and saved beside the index). "
        "The query is not part of the layout: its star sits at the mean position of its top hits, "
        "weighted by their cosine scores; the ringed points are those hits."
    )


def _map_trust(index):
    """With the switch on: the saved share of neighbours each document kept on the map, or None
    after showing the background job computing it (the map keeps its group colours meanwhile)."""
    from ui.documents import map_perplexity

    return map_trust_or_progress(index, map_perplexity(index), DEFAULT_SEED, "docs_map", noun="documents")


def second_models(models: list[str], first: str) -> list[str]:
    """The text models the comparison offers: not ``first``, not one whose files are missing, not
    an OpenAI model without a key."""
    from embeddings.registry import needs_key
    from ui.cached import model_unavailable_reason
    from ui.settings import current_data_dir, has_openai_key

    key = has_openai_key()
    return [
        m
        for m in models
        if m != first and (key or not needs_key(m)) and not model_unavailable_reason(m, current_data_dir())
    ]


def overlap_line(a: np.ndarray, b: np.ndarray, model_a: str, model_b: str) -> str:
    """How many of the two top-k lists' documents are shared."""
    shared = len(set(map(int, a)) & set(map(int, b)))
    return f"**{shared} of {len(a)}** documents are in both top-{len(a)} lists ({model_a} and {model_b})."


def escape(text: str) -> str:
    return escape_markdown(text)
