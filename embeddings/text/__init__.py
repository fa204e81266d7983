"""The text side: the text embedder interface and input cleaning (``base``), the 20,000-word
vocabulary with nearest words and analogies (``vocab``), word-similarity evaluation
(``wordeval``) and the SQLite cache of remote vectors (``cache``)."""
