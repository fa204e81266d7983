"""Embedding Explorer's plain-Python core: embedders, collections, indexes and math.

Nothing in this package imports streamlit; the app in ``app.py``/``pages/`` is a thin
layer over it, and ``python -m embeddings`` is its command line.
"""

import os

# Busy-waiting OpenMP threads make torch several times slower on a small, shared CPU
# (measured: MiniLM on 2,000 words took 15.4 s by default, 2.1 s with PASSIVE on 2 cores).
# It only takes effect if set before torch is first imported, so it is set here.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
