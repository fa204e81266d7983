"""Plotly figures for the image pages, as pure functions of arrays (unit-testable), and reading a click."""

from __future__ import annotations

import numpy as np

# plotly checks for pandas by peeking at sys.modules, past the import lock: while another session's
# thread is half-way through importing pandas, building any figure fails ("partially initialized
# module 'pandas' has no attribute 'Series"). Importing it here makes that thread's import finish first.
import pandas  # noqa: F401
import plotly.graph_objects as go

from embeddings.core.trust import MapTrust
from embeddings.image.display import mosaic
from ui.charts.labels import escape_label
from ui.charts.maps import add_point_traces
from ui.charts.trust import kept_line, share_marker

# A gallery image sent as PNG above this many bytes (photos rather than CIFAR's flat pixels) is
# sent as JPEG instead, at the best quality that fits.
MAX_IMAGE_BYTES = 200_000
_JPEG_QUALITIES = (90, 80, 70, 60, 50)


def _encode(image: np.ndarray, fmt: str, quality: int = 90) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    options = {"compress_level": 1} if fmt == "PNG" else {"quality": quality}
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def image_data_uri(image: np.ndarray, max_bytes: int = MAX_IMAGE_BYTES) -> str:
    """``image`` as a PNG data URI when it encodes to at most ``max_bytes`` (lossless, crisp pixels),
    else as the best-quality JPEG that fits (the lowest quality tried when none does)."""
    import base64

    data, mime = _encode(image, "PNG"), "png"
    if len(data) > max_bytes:
        mime = "jpeg"
        for quality in _JPEG_QUALITIES:
            data = _encode(image, "JPEG", quality)
            if len(data) <= max_bytes:
                break
    return f"data:image/{mime};base64," + base64.b64encode(data).decode("ascii")


SELECTED_FRAME = "#4f46e5"  # the theme's primary colour


def gallery_figure(
    thumbs: list[np.ndarray],
    ids: list[int],
    captions: list[str],
    columns: int = 6,
    gap: int = 6,
    selected: int | None = None,
) -> go.Figure:
    """A clickable grid of images: one click on an image selects its (invisible) centre point.
    The tile of image ``selected`` (the current query), when shown, gets a frame.

    The selected point's ``customdata`` is the image id. ``thumbs`` share one size (tiles made
    by :func:`embeddings.image.io.thumbnail`); the grid goes out as one image of at most
    ``MAX_IMAGE_BYTES`` (:func:`image_data_uri`).
    """
    tile = mosaic(thumbs, columns, gap)
    h, w = thumbs[0].shape[:2]
    xs = [(i % columns) * (w + gap) + w / 2 for i in range(len(ids))]
    ys = [(i // columns) * (h + gap) + h / 2 for i in range(len(ids))]
    # The mosaic goes to the browser as one PNG data URI: as a ``z`` array it would be ~1.5 MB of
    # JSON numbers for 24 tiles, rebuilt into pixels by plotly.js on every rerun.
    fig = go.Figure(go.Image(source=image_data_uri(tile), hoverinfo="skip"))
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=ys,
            mode="markers",
            marker={"size": max(8, min(h, w) // 2), "symbol": "square", "color": "rgba(0,0,0,0.01)"},
            customdata=[[int(i)] for i in ids],
            text=captions,
            hovertemplate="%{text}<extra></extra>",
            selected={"marker": {"color": "rgba(0,0,0,0.01)"}},
            unselected={"marker": {"opacity": 1}},
            showlegend=False,
        )
    )
    if selected in ids:
        n = ids.index(selected)
        x0, y0 = xs[n] - w / 2, ys[n] - h / 2
        fig.add_shape(
            type="rect",
            x0=x0 - gap / 2,
            y0=y0 - gap / 2,
            x1=x0 + w + gap / 2 - 1,
            y1=y0 + h + gap / 2 - 1,
            line={"color": SELECTED_FRAME, "width": 4},
            layer="above",
        )
    fig.update_xaxes(visible=False, range=[-0.5, tile.shape[1] - 0.5])
    fig.update_yaxes(visible=False, range=[tile.shape[0] - 0.5, -0.5], scaleanchor="x")
    fig.update_layout(
        margin={"l": 0, "r": 0, "t": 0, "b": 0},
        height=int(tile.shape[0] * 1.0) + 10,
        dragmode=False,
        hovermode="closest",
        hoverdistance=-1,
        clickmode="event+select",
    )
    return fig


def clicked_id(event) -> int | None:
    """The image id of the first point selected in a plotly selection event (None if none).

    Our figures put the id first in each point's ``customdata``; the browser may send it
    back as a list, a dict keyed by position, or a bare number.
    """
    points = event.selection.points if event and getattr(event, "selection", None) else []
    for point in points:
        data = point.get("customdata")
        if isinstance(data, dict):
            data = data.get("0", data.get(0))
        elif isinstance(data, (list, tuple)):
            data = data[0] if data else None
        if isinstance(data, (int, float)) and not isinstance(data, bool):
            return int(data)
    return None


def precision_bars(per_class: dict[str, float], k: int, title: str = "") -> go.Figure:
    """Horizontal bars of precision@k per class, worst at the top."""
    items = sorted(per_class.items(), key=lambda kv: kv[1])
    fig = go.Figure(
        go.Bar(
            x=[v for _, v in items],
            y=[escape_label(name) for name, _ in items],
            orientation="h",
            text=[f"{v:.2f}" for _, v in items],
            textposition="auto",
            marker_color=[v for _, v in items],
            marker_colorscale="RdYlGn",
            marker_cmin=0,
            marker_cmax=1,
            hovertemplate="%{y}: precision@" + str(k) + " = %{x:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=title or f"Precision@{k} per class",
        xaxis={"range": [0, 1], "title": f"precision@{k}"},
        height=60 + 28 * len(items),
        margin={"l": 10, "r": 10, "t": 50, "b": 40},
    )
    return fig


def variant_bars(table: dict[str, list], k: int, labels: dict[str, str] | None = None) -> go.Figure:
    """Grouped horizontal bars: precision@k per class (and "all") for each variant column of
    ``table`` (as made by :func:`embeddings.compare.per_class_table`)."""
    labels = labels or {}
    classes = list(table["class"])
    fig = go.Figure()
    for name, values in table.items():
        if name == "class":
            continue
        fig.add_trace(
            go.Bar(
                x=values,
                y=classes,
                orientation="h",
                name=labels.get(name, name),
                hovertemplate="%{y}: precision@" + str(k) + " = %{x:.3f}<extra>%{fullData.name}</extra>",
            )
        )
    fig.update_layout(
        barmode="group",
        title=f"Precision@{k} per class, by variant",
        xaxis={"range": [0, 1], "title": f"precision@{k}"},
        yaxis={"autorange": "reversed"},
        height=120 + 18 * len(classes) * max(1, len(table) - 1),
        legend={"orientation": "h", "y": -0.12},
        margin={"l": 10, "r": 10, "t": 50, "b": 40},
    )
    return fig


def confusion_figure(confusion: np.ndarray, classes: list[str], k: int) -> go.Figure:
    """Heatmap: row = query class, column = class of its neighbours (share of neighbours)."""
    names = [escape_label(c) for c in classes]
    fig = go.Figure(
        go.Heatmap(
            z=confusion,
            x=names,
            y=names,
            colorscale="Blues",
            zmin=0,
            zmax=1,
            text=np.round(confusion, 2),
            texttemplate="%{text}" if len(classes) <= 12 else None,
            hovertemplate="query %{y} → neighbour %{x}: %{z:.1%}<extra></extra>",
            colorbar={"title": "share"},
        )
    )
    fig.update_layout(
        title=f"Which classes show up among the {k} nearest neighbours",
        xaxis={"title": "neighbour's class", "side": "bottom"},
        yaxis={"title": "query's class", "autorange": "reversed"},
        height=520,
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
    )
    return fig


def image_map_figure(
    layout: np.ndarray,
    labels: np.ndarray | None,
    classes: list[str],
    selected: int | None = None,
    neighbours: list[int] | None = None,
    trust: MapTrust | None = None,
) -> go.Figure:
    """WebGL scatter of an image map coloured by class; the selected image and its neighbours marked.

    With ``trust`` the images form one trace coloured by the share of their k nearest
    neighbours kept on the map (a colour bar); the hover says each image's count."""
    fig = go.Figure()
    add_point_traces(
        fig,
        layout,
        labels,
        classes,
        "images",
        {"size": 4, "opacity": 0.75},
        lambda members, name: {
            "customdata": [[int(i)] for i in members],
            "hovertemplate": f"{name} #%{{customdata[0]}}<extra></extra>",
        },
        trust,
        lambda: _share_trace(layout, labels, classes, trust),
    )
    if neighbours:
        fig.add_trace(_neighbours_trace(layout, neighbours))
    if selected is not None:
        fig.add_trace(_selected_trace(layout, selected))
    fig.update_layout(
        height=620,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},  # the toolbar sits in the top margin, not on the legend
        legend={"itemsizing": "constant", "y": 1, "yanchor": "top"},
        xaxis={"visible": False},
        yaxis={"visible": False},
        clickmode="event+select",
        hovermode="closest",
    )
    return fig


def _share_trace(layout: np.ndarray, labels: np.ndarray | None, classes: list[str], trust: MapTrust):
    """Every image in one WebGL trace coloured by its share kept; customdata is [id, kept, class]."""
    escaped = [escape_label(c) for c in classes]  # once per class, not once per image
    names = ["image"] * len(layout) if labels is None else [escaped[int(c)] for c in labels]
    return go.Scattergl(
        x=layout[:, 0],
        y=layout[:, 1],
        mode="markers",
        name="share kept",
        showlegend=False,
        marker=share_marker(trust.shares, trust.k, 4, 0.8),
        customdata=[[i, int(c), name] for i, (c, name) in enumerate(zip(trust.kept, names, strict=True))],
        hovertemplate=f"%{{customdata[2]}} #%{{customdata[0]}}<br>{kept_line(trust.k)}<extra></extra>",
    )


def _neighbours_trace(layout: np.ndarray, neighbours: list[int]) -> go.Scattergl:
    """Rings around the selected image's neighbours."""
    return go.Scattergl(
        x=layout[neighbours, 0],
        y=layout[neighbours, 1],
        mode="markers",
        name="its neighbours",
        marker={"size": 11, "color": "rgba(0,0,0,0)", "line": {"width": 2, "color": "black"}},
        customdata=[[int(i)] for i in neighbours],
        hovertemplate="neighbour #%{customdata[0]}<extra></extra>",
    )


def _selected_trace(layout: np.ndarray, selected: int) -> go.Scattergl:
    """A gold star on the selected image."""
    return go.Scattergl(
        x=[layout[selected, 0]],
        y=[layout[selected, 1]],
        mode="markers",
        name="selected image",
        marker={"size": 16, "symbol": "star", "color": "gold", "line": {"width": 1.5, "color": "black"}},
        customdata=[[selected]],
        hovertemplate="selected #%{customdata[0]}<extra></extra>",
    )
