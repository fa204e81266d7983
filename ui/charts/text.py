"""Plotly figure builders: pure functions from arrays and labels to ``go.Figure``.

They import no streamlit, so tests can check the figures directly. Pages pass the results to
``st.plotly_chart``.
"""

from __future__ import annotations

import numpy as np

# plotly checks for pandas by peeking at sys.modules, past the import lock: while another session's
# thread is half-way through importing pandas, building any figure fails ("partially initialized
# module 'pandas' has no attribute 'Series"). Importing it here makes that thread's import finish first.
import pandas  # noqa: F401
import plotly.graph_objects as go

from embeddings.core.trust import MapTrust
from embeddings.text.wordlists import CELL_TEXT_MAX
from ui.charts.labels import escape_label
from ui.charts.trust import kept_line, share_marker

# Diverging: blue (opposite) - white (unrelated) - red (similar).
DIVERGING = "RdBu_r"
FONT = "Source Sans Pro, sans-serif"
MARGIN = dict(l=10, r=10, t=50, b=10)


def similarity_range(sims: np.ndarray, mode: str = "fixed") -> tuple[float, float]:
    """Colour range for a similarity matrix: ``fixed`` is [-1, 1]; ``data`` is symmetric
    around 0 and just covers the off-diagonal values (more contrast, 0 stays white)."""
    if mode == "fixed" or len(sims) < 2:
        return -1.0, 1.0
    off = np.asarray(sims)[~np.eye(len(sims), dtype=bool)]
    top = float(np.max(np.abs(off))) if off.size else 1.0
    top = min(1.0, max(top, 0.05))
    return -top, top


def similarity_heatmap(
    sims: np.ndarray,
    labels: list[str],
    title: str = "Cosine similarity",
    color_range: tuple[float, float] = (-1.0, 1.0),
    show_values: bool | None = None,
    height: int | None = None,
) -> go.Figure:
    """A square heatmap of a cosine-similarity matrix with values on hover (and in cells
    when there are at most :data:`CELL_TEXT_MAX` labels)."""
    sims = np.asarray(sims, dtype=float)
    n = len(labels)
    if sims.shape != (n, n):
        raise ValueError(f"similarity matrix shape {sims.shape} does not match {n} labels")
    if show_values is None:
        show_values = n <= CELL_TEXT_MAX
    zmin, zmax = color_range
    trace = go.Heatmap(
        z=sims,
        x=[escape_label(label) for label in labels],
        y=[escape_label(label) for label in labels],
        zmin=zmin,
        zmax=zmax,
        zmid=0.0,
        colorscale=DIVERGING,
        colorbar=dict(title=dict(text="cosine<br>similarity", side="top"), thickness=14, len=0.9),
        hovertemplate="<b>%{y}</b> · <b>%{x}</b><br>cosine similarity %{z:.3f}<extra></extra>",
        xgap=1 if n <= 60 else 0,
        ygap=1 if n <= 60 else 0,
    )
    if show_values:
        trace.update(texttemplate="%{z:.2f}", textfont=dict(size=11 if n <= 15 else 9))
    fig = go.Figure(trace)
    side = height or int(min(860, max(440, 150 + 36 * n)))
    fig.update_layout(
        title=dict(text=title, x=0, xanchor="left", font=dict(size=16)),
        height=side,
        margin=MARGIN,
        font=dict(family=FONT),
        plot_bgcolor="rgba(0,0,0,0)",
    )
    tickfont = dict(size=12 if n <= 20 else 10 if n <= 60 else 8)
    fig.update_xaxes(side="bottom", tickangle=-45 if n > 6 else 0, tickfont=tickfont, showgrid=False)
    fig.update_yaxes(autorange="reversed", tickfont=tickfont, showgrid=False)
    return fig


def ranking_bars(labels: list[str], scores: np.ndarray, word: str, color_range=(-1.0, 1.0)) -> go.Figure:
    """Horizontal bars of each item's similarity to ``word``, most similar on top."""
    scores = np.asarray(scores, dtype=float)
    fig = go.Figure(
        go.Bar(
            x=scores,
            y=[escape_label(label) for label in labels],
            orientation="h",
            marker=dict(
                color=scores,
                colorscale=DIVERGING,
                cmin=color_range[0],
                cmax=color_range[1],
                cmid=0.0,
                line=dict(width=0),
            ),
            text=[f"{s:.2f}" for s in scores],
            textposition="outside",
            cliponaxis=False,
            customdata=[escape_label(word)] * len(labels),
            hovertemplate="<b>%{customdata}</b> · <b>%{y}</b><br>cosine similarity %{x:.3f}<extra></extra>",
        )
    )
    low = min(0.0, float(scores.min()) if scores.size else 0.0)
    high = max(0.0, float(scores.max()) if scores.size else 1.0)
    pad = 0.12 * max(high - low, 0.1)
    fig.update_layout(
        title=dict(text=f"Similarity to “{escape_label(word)}”", x=0, xanchor="left", font=dict(size=16)),
        height=int(min(1400, max(260, 110 + 24 * len(labels)))),
        margin=MARGIN,
        font=dict(family=FONT),
        bargap=0.25,
    )
    fig.update_xaxes(
        title_text="cosine similarity", range=[low - (pad if low < 0 else 0), high + pad], zeroline=True
    )
    fig.update_yaxes(autorange="reversed")
    return fig


def scatter_map(
    coords: np.ndarray,
    labels: list[str],
    groups: list[str],
    title: str = "",
    show_text: bool = True,
    axis_names: tuple[str, str, str] = ("dimension 1", "dimension 2", "dimension 3"),
    trust: MapTrust | None = None,
    height: int = 620,
) -> go.Figure:
    """A 2-D or 3-D scatter of ``coords`` with one colour (trace) per group and text labels.

    With ``trust`` the points form one trace coloured by the share of their k nearest
    neighbours kept on the map (a colour bar), and the hover text says each point's count."""
    coords = np.asarray(coords, dtype=float)
    if coords.ndim != 2 or coords.shape[1] not in (2, 3) or not len(coords) == len(labels) == len(groups):
        raise ValueError(
            f"expected (n, 2) or (n, 3) coordinates for {len(labels)} labels, got {coords.shape}"
        )
    if trust is not None and trust.n != len(coords):
        raise ValueError(f"{trust.n} neighbourhood shares for {len(coords)} points")
    three_d = coords.shape[1] == 3
    fig = go.Figure()
    if trust is not None:
        fig.add_trace(_share_trace(coords, labels, groups, trust, three_d, show_text))
    for group in dict.fromkeys(groups) if trust is None else ():
        idx = [i for i, g in enumerate(groups) if g == group]
        pts = coords[idx]
        common = dict(
            name=escape_label(group),
            text=[escape_label(labels[i]) for i in idx],
            customdata=[escape_label(group)] * len(idx),
            mode="markers+text" if show_text else "markers",
            hovertemplate="<b>%{text}</b><br>%{customdata}<extra></extra>",
        )
        fig.add_trace(_group_trace(pts, three_d, common))
    fig.update_layout(
        title=dict(text=title, x=0, xanchor="left", font=dict(size=16)),
        height=height,
        margin=MARGIN,
        font=dict(family=FONT),
        legend=dict(title=dict(text="group"), itemsizing="constant"),
    )
    if three_d:
        fig.update_layout(
            scene=dict(xaxis_title=axis_names[0], yaxis_title=axis_names[1], zaxis_title=axis_names[2])
        )
    else:
        fig.update_xaxes(title_text=axis_names[0], zeroline=False, showticklabels=False)
        fig.update_yaxes(title_text=axis_names[1], zeroline=False, showticklabels=False)
    return fig


def _share_trace(coords, labels, groups, trust: MapTrust, three_d: bool, show_text: bool):
    """Every point in one trace, coloured by its share of neighbours kept; the count in the hover."""
    size, line = (5, None) if three_d else (11, dict(width=1, color="white"))
    common = dict(
        name="share kept",
        text=[escape_label(label) for label in labels],
        customdata=[[escape_label(g), int(c)] for g, c in zip(groups, trust.kept, strict=True)],
        mode="markers+text" if show_text else "markers",
        hovertemplate=f"<b>%{{text}}</b><br>%{{customdata[0]}}<br>{kept_line(trust.k)}<extra></extra>",
        marker=share_marker(trust.shares, trust.k, size, 0.9, line),
        showlegend=False,
    )
    if three_d:
        return go.Scatter3d(x=coords[:, 0], y=coords[:, 1], z=coords[:, 2], textfont=dict(size=11), **common)
    return go.Scatter(
        x=coords[:, 0], y=coords[:, 1], textposition="top center", textfont=dict(size=12), **common
    )


def _group_trace(pts: np.ndarray, three_d: bool, common: dict) -> go.Scatter | go.Scatter3d:
    """One group's points: a 3-D scatter, or a 2-D one with white-edged markers and labels above."""
    if three_d:
        return go.Scatter3d(
            x=pts[:, 0],
            y=pts[:, 1],
            z=pts[:, 2],
            marker=dict(size=5, opacity=0.9),
            textfont=dict(size=11),
            **common,
        )
    return go.Scatter(
        x=pts[:, 0],
        y=pts[:, 1],
        marker=dict(size=11, opacity=0.85, line=dict(width=1, color="white")),
        textposition="top center",
        textfont=dict(size=12),
        **common,
    )


def agreement_scatter(
    a: np.ndarray, b: np.ndarray, pair_labels: list[str], name_a: str, name_b: str
) -> go.Figure:
    """One point per word pair: its similarity under model A (x) and model B (y)."""
    fig = go.Figure(
        go.Scattergl(
            x=np.asarray(a, dtype=float),
            y=np.asarray(b, dtype=float),
            text=[escape_label(label) for label in pair_labels],
            mode="markers",
            marker=dict(size=8, opacity=0.75),
            hovertemplate=(
                f"<b>%{{text}}</b><br>{escape_label(name_a)}: %{{x:.3f}}<br>{escape_label(name_b)}: %{{y:.3f}}<extra></extra>"
            ),
        )
    )
    fig.update_layout(
        title=dict(text="Each dot is one pair of words", x=0, xanchor="left", font=dict(size=16)),
        height=420,
        margin=MARGIN,
        font=dict(family=FONT),
    )
    fig.update_xaxes(title_text=f"similarity with {name_a}")
    fig.update_yaxes(title_text=f"similarity with {name_b}")
    return fig
