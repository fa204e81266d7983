"""User text in plotly figures: plotly draws labels, legends and hover text as a small HTML
dialect and fills ``%{...}`` in hover templates, so text from a user (words, titles, group
and class names) is escaped once, here, before it goes into a figure."""

from __future__ import annotations


def escape_label(text) -> str:
    """``text`` shown literally by plotly: ``& < >`` as entities and ``%{`` no longer a template field."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("%{", "%&#123;")
