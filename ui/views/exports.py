"""Download buttons: each file is built only when its button is clicked (``st.download_button``
with a callable), from the pure builders of :mod:`embeddings.core.exports`, and named after the
model and the data (``similarity-minilm-words.csv``)."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from embeddings.core.exports import CSV_MIME, NPY_MIME, PARQUET_MIME, array_npy, export_name, name_part
from embeddings.errors import EmbeddingsError
from ui.settings import ImageSettings

PREPARE_KEY = "export_parquet_wanted"  # set by the Prepare button's callback: it survives a rerun


def download(
    label: str, build: Callable[[], bytes], file_name: str, mime: str, key: str, help: str | None = None
):
    """A download button whose file ``build()`` makes on click (nothing is built on a rerun)."""
    st.download_button(
        label, data=build, file_name=file_name, mime=mime, key=key, on_click="ignore",
        icon=":material/download:", help=help or f"Saves `{file_name}`.",
    )  # fmt: skip


def csv_download(label: str, build: Callable[[], bytes], what: str, model: str, data: str, key: str) -> None:
    """A CSV download named ``{what}-{model}-{data}.csv``."""
    download(label, build, export_name(what, model, data, "csv"), CSV_MIME, key)


def collection_name(settings: ImageSettings) -> str:
    """The collection split as a file-name part: ``cifar10-test``, ``sample-test``, ``photos-train``."""
    return f"{name_part(settings.source)}-{name_part(settings.split)}"


def collection_downloads(index, settings: ImageSettings) -> None:
    """The collection's vectors and labels: ``.npy`` (built on click) and Parquet (written once
    per index beside it, with a progress bar, then served from disk)."""
    from embeddings.index.exports import labels_of, saved_parquet, write_parquet

    data = collection_name(settings)
    size = index.count * index.dim * 4 / 1e6
    with st.expander(f"Download this collection's vectors and labels ({size:,.0f} MB of vectors)"):
        st.caption(
            f"{index.count:,} vectors of {index.dim} float32, one row per image id (row *i* is image #*i*), "
            f"embedded with **{settings.model_id}**. `.npy`: `np.load(path)`; the labels are the class "
            "names in the same order. Parquet: columns `id`, `label`, `vector` (one table, for pandas, "
            "polars, DuckDB or Spark)."
        )
        vec_col, lab_col, pq_col = st.columns(3)
        with vec_col:
            download(
                "Vectors (.npy)", lambda: array_npy(index.embeddings),
                export_name("vectors", settings.model_id, data, "npy"), NPY_MIME, "export_vectors_npy",
            )  # fmt: skip
        with lab_col:
            download(
                "Labels (.npy)", lambda: array_npy(labels_of(index)),
                export_name("labels", settings.model_id, data, "npy"), NPY_MIME, "export_labels_npy",
            )  # fmt: skip
        with pq_col:
            path = saved_parquet(index)
            if path is None and st.session_state.pop(PREPARE_KEY, False):
                path = _write_parquet(index, settings, write_parquet)
            if path is None:
                st.button(
                    "Prepare the Parquet file", key="export_parquet_prepare",
                    on_click=st.session_state.__setitem__, args=(PREPARE_KEY, True),
                    help="Written once per index, beside it on disk (seconds for 10,000 images), then downloadable.",
                )  # fmt: skip
            if path is not None:
                download(
                    "Vectors and labels (.parquet)", path.read_bytes,
                    export_name("vectors", settings.model_id, data, "parquet"), PARQUET_MIME, "export_parquet",
                )  # fmt: skip


def _write_parquet(index, settings: ImageSettings, write):
    """Write the Parquet export with a progress bar; None (after saying why) when it fails."""
    bar = st.progress(0.0, text="Writing the Parquet file…")

    def progress(done: int, total: int) -> None:
        bar.progress(done / max(total, 1), text=f"Writing the Parquet file… {done:,} / {total:,} rows")

    metadata = {"model": settings.model_id, "collection": settings.source, "split": settings.split}
    try:
        return write(index, metadata, progress)
    except (OSError, EmbeddingsError) as exc:
        from embeddings.errors import explain_os_error

        if isinstance(exc, OSError):
            happened, todo = explain_os_error(exc)
            st.error(f"The Parquet file could not be written: {happened}. {todo[0].upper()}{todo[1:]}.")
        else:
            st.error(f"The Parquet file could not be written: {exc}")
        return None
    finally:
        bar.empty()
