"""Plotly figures of k-NN classification: one query's vote, and accuracy against k for a whole index."""

from __future__ import annotations

import numpy as np
import pandas  # noqa: F401  (see ui/charts/image.py: plotly's pandas check races another thread's import)
import plotly.graph_objects as go

from ui.charts.labels import escape_label

PLAIN_COLOUR = "#4f46e5"
WEIGHTED_COLOUR = "#f59e0b"
CENTROID_COLOUR = "#6b7280"


def vote_figure(classes: list[str], counts, weights, k: int) -> go.Figure:
    """Horizontal bars of one query's vote per class that got one: the share of its ``k`` neighbours
    (plain) and the share of their summed cosine (weighted), most votes at the top."""
    counts = np.asarray(counts, dtype=float)
    weights = np.asarray(weights, dtype=float)
    shown = [c for c in np.lexsort((-weights, -counts)) if counts[c] > 0][::-1]  # plotly draws bottom-up
    total = weights.sum()
    names = [escape_label(classes[c]) for c in shown]
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            x=[counts[c] / k for c in shown],
            y=names,
            orientation="h",
            name="plain (1 vote each)",
            marker_color=PLAIN_COLOUR,
            text=[f"{int(counts[c])}/{k}" for c in shown],
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{y}: %{text} votes<extra></extra>",
        )
    )
    fig.add_trace(
        go.Bar(
            x=[weights[c] / total if total > 0 else 0.0 for c in shown],
            y=names,
            orientation="h",
            name="weighted (by cosine)",
            marker_color=WEIGHTED_COLOUR,
            text=[f"{weights[c]:.2f}" for c in shown],
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{y}: summed cosine %{text}<extra></extra>",
        )
    )
    fig.update_layout(
        barmode="group",
        xaxis={
            "range": [0, 1.12],
            "tickformat": ".0%",
            "tickvals": [0, 0.25, 0.5, 0.75, 1],
            "title": "share of the vote",
        },
        height=110 + 40 * len(shown),
        legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0},
        margin={"l": 10, "r": 10, "t": 30, "b": 40},
    )
    return fig


def knn_curve_figure(
    ks, plain, weighted, centroid: float, best_k: int, best_accuracy: float, title: str = ""
) -> go.Figure:
    """Accuracy against k, plain and weighted, the nearest-class-centroid baseline as a horizontal line,
    and the best point marked."""
    ks = np.asarray(ks)
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=ks,
            y=plain,
            mode="lines+markers",
            name="plain vote",
            line={"color": PLAIN_COLOUR},
            marker={"size": 4},
            hovertemplate="k=%{x}: %{y:.4f}<extra>plain</extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=ks,
            y=weighted,
            mode="lines+markers",
            name="weighted vote",
            line={"color": WEIGHTED_COLOUR},
            marker={"size": 4},
            hovertemplate="k=%{x}: %{y:.4f}<extra>weighted</extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=[ks[0], ks[-1]],
            y=[centroid, centroid],
            mode="lines",
            name=f"nearest class centroid ({centroid:.3f})",
            line={"color": CENTROID_COLOUR, "dash": "dash"},
            hovertemplate="nearest class centroid: %{y:.4f}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=[best_k],
            y=[best_accuracy],
            mode="markers+text",
            name="best",
            marker={"size": 12, "symbol": "star", "color": "#16a34a"},
            text=[f"k={best_k}: {best_accuracy:.3f}"],
            textposition="top center",
            hovertemplate="best: k=%{x}, %{y:.4f}<extra></extra>",
            showlegend=False,
        )
    )
    values = np.concatenate([np.asarray(plain), np.asarray(weighted), [centroid]])
    low, high = float(values.min()), float(values.max())
    pad = max(0.02, (high - low) * 0.15)
    fig.update_layout(
        title=title or "k-NN accuracy against k (leave-one-out)",
        xaxis={"title": "k (neighbours voting)", "range": [0.5, ks[-1] + 0.5]},
        yaxis={
            "title": "accuracy",
            "range": [max(0.0, low - pad), min(1.0, high + pad)],
            "tickformat": ".0%",
        },
        height=380,
        legend={"orientation": "h", "y": -0.2},
        margin={"l": 10, "r": 10, "t": 50, "b": 40},
    )
    return fig
