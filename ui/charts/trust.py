"""How far a map can be trusted: the shared colour scale, hover line and share histogram."""

from __future__ import annotations

import numpy as np
import pandas  # noqa: F401  (see ui/charts/text.py: plotly peeks at sys.modules for pandas)
import plotly.graph_objects as go

SHARE_COLORSCALE = "Viridis"  # perceptually even, readable with colour-blindness; dark = lost, yellow = kept
FONT = "Source Sans Pro, sans-serif"


def kept_line(k: int, kept: str = "%{customdata[1]}") -> str:
    """The hover line, ``kept`` a plotly placeholder (or a number): "7 of its 10 nearest neighbours …"."""
    return f"{kept} of its {int(k)} nearest neighbours are also near it on the map"


def share_marker(shares: np.ndarray, k: int, size: int, opacity: float, line: dict | None = None) -> dict:
    """Marker settings colouring points by their share kept (0..1), with a colour bar."""
    marker = dict(
        size=size,
        opacity=opacity,
        color=np.asarray(shares, dtype=float),
        colorscale=SHARE_COLORSCALE,
        cmin=0.0,
        cmax=1.0,
        colorbar=dict(title=dict(text=f"share of {int(k)}<br>neighbours kept"), tickformat=".0%", len=0.8),
        showscale=True,
    )
    if line is not None:
        marker["line"] = line
    return marker


def share_histogram(counts: np.ndarray, k: int, height: int = 220) -> go.Figure:
    """Bars: how many points kept 0, 1, …, k of their k nearest neighbours (coloured like the map)."""
    counts = np.asarray(counts, dtype=int)
    kept = np.arange(len(counts))
    fig = go.Figure(
        go.Bar(
            x=kept,
            y=counts,
            marker=dict(color=kept / max(1, int(k)), colorscale=SHARE_COLORSCALE, cmin=0.0, cmax=1.0),
            hovertemplate=f"%{{y:,}} points kept %{{x}} of {int(k)}<extra></extra>",
        )
    )
    fig.update_layout(
        height=height,
        margin=dict(l=10, r=10, t=30, b=10),
        font=dict(family=FONT, size=11),
        title=dict(text="Points by neighbours kept", x=0, xanchor="left", font=dict(size=13)),
        bargap=0.1,
    )
    fig.update_xaxes(title_text=f"neighbours kept (of {int(k)})", dtick=max(1, int(k) // 5))
    fig.update_yaxes(title_text="points")
    return fig
