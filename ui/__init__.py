"""The Streamlit layer of Embedding Explorer: everything the pages in ``pages/`` wire together.

Layout:

* :mod:`ui.settings`: the sidebar's choices as small frozen dataclasses (``TextSettings``,
  ``ImageSettings``, ``IndexRequest``), their session-state keys, and the readers of the text
  side's current choice.
* :mod:`ui.jobs`: the background job runner (index builds, image maps).
* :mod:`ui.charts`: plotly figures, ``text`` and ``image``.
* :mod:`ui.cached`: every ``st.cache_resource``/``st.cache_data`` wrapper around the
  ``embeddings`` package and every background-job start, text and image, and the current image
  settings and index request (they need the cached collection fingerprint).
* :mod:`ui.views`: page sections, ``text``, ``image`` and the before/after layout ``compare``.
* :mod:`ui.sidebar`: the whole sidebar (text model, key status, image controls).

Each layer imports only the ones listed before it (checked by ``lint-imports``).

Pure helpers live in the package: word lists, labels and pair tables in
:mod:`embeddings.text.wordlists`, image tiles and class summaries in :mod:`embeddings.image.display`.
"""
