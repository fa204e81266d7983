"""User text (titles, group and class names, queries, words) is shown literally in every map:
plotly draws labels as a small HTML dialect and fills ``%{...}`` in hover templates."""

import numpy as np

from embeddings.core.trust import map_trust
from ui.charts.documents import document_map_figure
from ui.charts.image import confusion_figure, image_map_figure, precision_bars
from ui.charts.knn import vote_figure
from ui.charts.labels import escape_label

NASTY = '<b>bold</b> & %{x} "q"'
SAFE = '&lt;b&gt;bold&lt;/b&gt; &amp; %&#123;x} "q"'


def test_escape_label_leaves_no_markup_and_no_template_field():
    assert escape_label(NASTY) == SAFE
    assert escape_label("plain words") == "plain words" and escape_label(3) == "3"


def strings(fig) -> str:
    """Every string the figure sends to plotly, as one text."""
    out = []
    for trace in fig.data:
        out += [str(trace.name), str(trace.hovertemplate), str(trace.text), str(trace.customdata)]
    return "\n".join(out)


def layout_and_trust():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((12, 5)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x[:, :2].copy(), map_trust(x, x[:, :2].copy(), k=3)


def test_the_document_map_escapes_titles_groups_hits_and_the_query():
    layout, trust = layout_and_trust()
    labels = np.array([0, 1] * 6)
    titles = [NASTY] * 12
    for with_trust in (None, trust):
        fig = document_map_figure(
            layout,
            labels,
            ["drinks", NASTY],
            titles,
            hits=[0, 1],
            query_xy=layout[0],
            query=NASTY,
            trust=with_trust,
        )
        text = strings(fig)
        assert "<b>bold" not in text and "%{x}" not in text, text
        assert SAFE in text


def test_the_image_map_escapes_class_names():
    layout, trust = layout_and_trust()
    labels = np.array([0, 1] * 6)
    for with_trust in (None, trust):
        text = strings(image_map_figure(layout, labels, ["cat", NASTY], trust=with_trust))
        assert "<b>bold" not in text and "%{x}" not in text and SAFE in text


def test_class_charts_escape_class_names():
    classes = ["cat", NASTY]
    figures = [
        vote_figure(classes, [3, 2], [0.9, 0.5], k=5),
        precision_bars({"cat": 0.5, NASTY: 0.25}, k=10),
        confusion_figure(np.eye(2), classes, k=10),
    ]
    for fig in figures:
        shown = [str(v) for v in fig.data[0].y]
        assert SAFE in shown and NASTY not in shown, shown
