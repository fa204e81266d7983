"""What every collection map's figure shares (images, documents): one WebGL trace per class in
the class palette, or, with the neighbourhood switch on, the one trace coloured by share kept."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas  # noqa: F401  (see ui/charts/image.py: plotly's pandas check races other threads)
import plotly.graph_objects as go

from embeddings.core.trust import MapTrust
from ui.charts.labels import escape_label


def add_point_traces(
    fig: go.Figure,
    layout: np.ndarray,
    labels: np.ndarray | None,
    classes: list[str],
    noun: str,
    marker: dict,
    hover: Callable[[np.ndarray, str], dict],
    trust: MapTrust | None = None,
    share_trace: Callable[[], go.Scattergl] | None = None,
) -> None:
    """Add the map's points to ``fig``: a trace per class (one named ``noun`` when unlabelled),
        ``marker`` plus the class colour, ``hover(members, name)`` giving each trace's hover fields
    (``name`` is the class name escaped for plotly, see :mod:`ui.charts.labels`);
        with ``trust``, only ``share_trace()`` (raises ValueError when trust is for another map)."""
    if trust is not None:
        if trust.n != len(layout):
            raise ValueError(f"{trust.n} neighbourhood shares for {len(layout)} {noun}")
        fig.add_trace(share_trace())
        return
    import plotly.express as px

    palette = px.colors.qualitative.T10 + px.colors.qualitative.Alphabet
    ids = np.arange(len(layout))
    groups = [(None, ids)] if labels is None else [(c, ids[labels == c]) for c in range(len(classes))]
    for c, members in groups:
        name = noun if c is None else escape_label(classes[c])
        fig.add_trace(
            go.Scattergl(
                x=layout[members, 0],
                y=layout[members, 1],
                mode="markers",
                name=name,
                marker={**marker, "color": palette[(c or 0) % len(palette)]},
                **hover(members, name),
            )
        )
