"""The Semantic search page's map: documents coloured by group, the query's hits ringed, the query a star."""

from __future__ import annotations

import numpy as np
import pandas  # noqa: F401  (see ui/charts/image.py: plotly's pandas check races other threads)
import plotly.graph_objects as go

from embeddings.core.trust import MapTrust
from ui.charts.labels import escape_label
from ui.charts.maps import add_point_traces
from ui.charts.trust import kept_line, share_marker


def document_map_figure(
    layout: np.ndarray,
    labels: np.ndarray | None,
    classes: list[str],
    titles: list[str],
    hits: list[int] | None = None,
    query_xy: np.ndarray | None = None,
    query: str = "",
    trust: MapTrust | None = None,
) -> go.Figure:
    """WebGL scatter of a document map; hover shows a document's title and group.

    With ``trust`` the documents form one trace coloured by the share of their k nearest
    neighbours kept on the map (a colour bar), the hover saying each one's count; the hits'
    rings and the query's star stay on top."""
    fig = go.Figure()
    add_point_traces(
        fig,
        layout,
        labels,
        classes,
        "documents",
        {"size": 5, "opacity": 0.7},
        lambda members, name: {
            "text": [escape_label(titles[i]) for i in members],
            "hovertemplate": f"%{{text}}<br>{name}<extra></extra>",
        },
        trust,
        lambda: _share_trace(layout, labels, classes, titles, trust),
    )
    if hits:
        fig.add_trace(
            go.Scattergl(
                x=layout[hits, 0],
                y=layout[hits, 1],
                mode="markers",
                name="top hits",
                marker={"size": 13, "color": "rgba(0,0,0,0)", "line": {"width": 2, "color": "black"}},
                text=[f"#{rank} {escape_label(titles[i])}" for rank, i in enumerate(hits, 1)],
                hovertemplate="%{text}<extra></extra>",
            )
        )
    if query_xy is not None:
        fig.add_trace(
            go.Scatter(
                x=[float(query_xy[0])],
                y=[float(query_xy[1])],
                mode="markers",
                name="the query",
                marker={
                    "size": 20,
                    "symbol": "star",
                    "color": "gold",
                    "line": {"width": 1.5, "color": "black"},
                },
                text=[escape_label(query)],
                hovertemplate="query: %{text}<extra></extra>",
            )
        )
    fig.update_layout(
        height=560,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        legend={"itemsizing": "constant", "y": 1, "yanchor": "top"},
        xaxis={"visible": False},
        yaxis={"visible": False},
        hovermode="closest",
    )
    return fig


def _share_trace(layout, labels, classes, titles, trust: MapTrust) -> go.Scattergl:
    """Every document in one WebGL trace coloured by its share kept; customdata is [title, kept, group]."""
    escaped = [escape_label(c) for c in classes]  # once per group, not once per document
    names = [""] * len(layout) if labels is None else [escaped[int(c)] for c in labels]
    return go.Scattergl(
        x=layout[:, 0],
        y=layout[:, 1],
        mode="markers",
        name="share kept",
        showlegend=False,
        marker=share_marker(trust.shares, trust.k, 5, 0.8),
        customdata=[[escape_label(t), int(c), g] for t, c, g in zip(titles, trust.kept, names, strict=True)],
        hovertemplate=f"%{{customdata[0]}}<br>%{{customdata[2]}}<br>{kept_line(trust.k)}<extra></extra>",
    )
