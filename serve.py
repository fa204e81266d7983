"""What ``make run`` starts: ``app.py`` behind the server's Host check (``ui/server.py``).

``streamlit run serve.py`` finds the ``st.App`` below and serves it with uvicorn; the app
itself (router, pages, sidebar) is ``app.py`` as before. ``streamlit run app.py`` still works
but has no Host check (and starts slower: neither of the two start-up savings below).
"""

import threading

import streamlit as st
from starlette.middleware import Middleware

from ui.server import HostCheckMiddleware
from ui.startup import skip_component_scan, warm_imports

skip_component_scan()
# The first page's imports (pandas, plotly, faiss, the ui and package modules: about 1.5 s) run
# while the server starts and the browser loads the front end, not after the first request.
threading.Thread(target=warm_imports, name="warm-imports", daemon=True).start()

app = st.App("app.py", middleware=[Middleware(HostCheckMiddleware)])
