"""Text documents: collections (bundled, uploaded, folders), parsing, and passages for long texts.

Plain Python below the index layer: :mod:`embeddings.index.documents` builds and loads a
collection's index with the same machinery as the image index.
"""
