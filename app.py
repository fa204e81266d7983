"""Embedding Explorer: the Streamlit entry point (``streamlit run app.py``).

It only routes: page config, the page list, the shared sidebar, then the chosen page.
Each page imports what it needs, so nothing heavy loads before a page asks for it.
"""

import streamlit as st

from ui.sidebar import render_sidebar

st.set_page_config(page_title="Embedding Explorer", page_icon="🧭", layout="wide")

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/words.py", title="Word similarity", icon=":material/compare_arrows:"),
    st.Page("pages/tsne.py", title="t-SNE map", icon=":material/scatter_plot:"),
    st.Page("pages/images.py", title="Image search", icon=":material/image_search:"),
    st.Page("pages/documents.py", title="Semantic search", icon=":material/manage_search:"),
]

page = st.navigation(PAGES)
render_sidebar()
page.run()
