"""The Streamlit layer of Embedding Explorer: everything the pages in ``pages/`` wire together.

Layout:

* :mod:`ui.settings`: the sidebar's choices as small frozen dataclasses (``TextSettings``,
  ``ImageSettings``, ``IndexRequest``), their session-state keys, and the functions that read
  the current ones.
* :mod:`ui.sidebar`: the whole sidebar (text model, key status, image controls).
* :mod:`ui.cached`: every ``st.cache_resource``/``st.cache_data`` wrapper around the
  ``embeddings`` package and every background-job start, text and image.
* :mod:`ui.jobs`: the background job runner (index builds, image maps).
* :mod:`ui.text`: the text pages' plotly figures (``charts``) and sections (``views``).
* :mod:`ui.image`: the image pages' figures (``charts``), sections (``views``) and the
  before/after layout (``compare``).

Pure helpers live in the package: word lists, labels and pair tables in
:mod:`embeddings.wordlists`, image tiles and class summaries in :mod:`embeddings.imageviews`.
"""
