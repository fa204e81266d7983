"""What ``make run`` starts: ``app.py`` behind the server's Host check (``ui/server.py``).

``streamlit run serve.py`` finds the ``st.App`` below and serves it with uvicorn; the app
itself (router, pages, sidebar) is ``app.py`` as before. ``streamlit run app.py`` still works
but has no Host check.
"""

import streamlit as st
from starlette.middleware import Middleware

from ui.server import HostCheckMiddleware

app = st.App("app.py", middleware=[Middleware(HostCheckMiddleware)])
