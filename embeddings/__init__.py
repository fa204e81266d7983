"""Embedding Explorer's plain-Python core: embedders, collections, indexes and math.

Nothing in this package imports streamlit; the app in ``app.py``/``pages/`` is a thin
layer over it, and ``python -m embeddings`` is its command line.
"""

__version__ = "0.1.0"
