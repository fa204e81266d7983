"""Where a map lies: the "Colour by neighbourhood kept" switch, its k, and the summary beside a map.

:func:`neighbourhood_map` is the whole view for a small map (words, documents): it takes the
high-dimensional vectors, the layout and the labels. The image map uses :func:`trust_controls`
and :func:`trust_summary` around its own figure (its scores come from a background job).
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from embeddings.core.trust import DEFAULT_K, MapTrust, max_k
from embeddings.errors import EmbeddingsError
from ui import cached
from ui.charts.text import scatter_map
from ui.charts.trust import share_histogram
from ui.views.text import show_problem

TOGGLE_LABEL = "Colour by neighbourhood kept"
TOGGLE_HELP = (
    "Colour each point by the share of its k nearest neighbours in the original space that are "
    "also among its k nearest points on the map. Dark points were torn from their neighbourhood: "
    "do not trust what lies around them on the map."
)
TRUST_HELP = (
    "Trustworthiness (Venna & Kaski): 1.0 when every point's nearest points on the map are also "
    "near it in the original space; it drops the further down the true ranking the map's false "
    "neighbours are."
)


def trust_controls(key: str, n_points: int) -> tuple[bool, int]:
    """The switch and k (1 up to below half the points, default 10): (switch on, k)."""
    top = max_k(n_points)
    switch, k_col, _ = st.columns([2, 1, 2], vertical_alignment="bottom")
    on = switch.toggle(
        TOGGLE_LABEL, key=f"{key}_trust", disabled=top < 1, help=TOGGLE_HELP, persist_state="session"
    )
    if top < 1:
        k_col.caption("Needs at least 3 points.")
        return False, 1
    kept = st.session_state.get(f"{key}_trust_k")
    if isinstance(kept, (int, float)) and not 1 <= kept <= top:  # e.g. fewer words than before
        st.session_state[f"{key}_trust_k"] = int(min(max(kept, 1), top))
    k = k_col.number_input(
        "Neighbours per point (k)",
        1,
        top,
        min(DEFAULT_K, top),
        step=1,
        key=f"{key}_trust_k",
        help=f"How many nearest neighbours each point is judged by (1 to {top}: below half the points).",
    )
    return bool(on), int(min(max(int(k), 1), top))


def trust_summary(trust: MapTrust, key: str) -> None:
    """Trustworthiness, the mean share kept, and the share's distribution, for beside a map."""
    st.metric("Trustworthiness", f"{trust.trustworthiness:.3f}", help=TRUST_HELP)
    st.metric(
        f"Mean share of {trust.k} neighbours kept",
        f"{trust.mean_share:.0%}",
        help="The average, over all points, of the share of their k nearest neighbours kept on the map.",
    )
    st.plotly_chart(share_histogram(trust.histogram(), trust.k), key=f"{key}_trust_hist", width="stretch")
    lost = int((trust.kept <= trust.k // 2).sum())
    st.caption(
        f"{lost:,} of {trust.n:,} points kept half of their {trust.k} neighbours or fewer. "
        "The share asks only whether a true neighbour stayed among the nearest on the map; "
        "trustworthiness also asks how far the map's false neighbours really are, so it stays "
        "high when they come from just outside the k nearest."
    )


def neighbourhood_map(
    vectors: np.ndarray,
    layout: np.ndarray,
    labels: list[str],
    groups: list[str],
    *,
    key: str,
    title: str = "",
    show_text: bool = True,
    axis_names: tuple[str, str, str] = ("dimension 1", "dimension 2", "dimension 3"),
) -> MapTrust | None:
    """A map coloured by group, or, with the switch on, by each point's share of neighbours kept,
    with the summary beside it. The chart's key is ``{key}_chart``. Returns the scores shown, if any."""
    on, k = trust_controls(key, len(layout))
    trust = None
    if on:
        try:
            trust = cached.map_trust(np.asarray(vectors), np.asarray(layout), k)
        except EmbeddingsError as exc:
            show_problem(f"The neighbourhoods could not be scored: {exc}")
    fig = scatter_map(
        layout, labels, groups, title=title, show_text=show_text, axis_names=axis_names, trust=trust
    )
    if trust is None:
        st.plotly_chart(fig, key=f"{key}_chart")
        return None
    map_col, side = st.columns([3, 1], gap="medium")
    with map_col:
        st.plotly_chart(fig, key=f"{key}_chart")
    with side:
        trust_summary(trust, key)
    return trust


def method_comparison(
    vectors: np.ndarray,
    layouts: dict[str, np.ndarray],
    labels: list[str],
    groups: list[str],
    k: int,
    *,
    key: str,
    show_text: bool = True,
    top: int = 12,
) -> None:
    """Two maps of the same vectors side by side, each coloured by its shares kept, and the points
    whose neighbourhoods the two keep most differently."""
    (name_a, layout_a), (name_b, layout_b) = layouts.items()
    try:
        found = cached.layout_comparison(np.asarray(vectors), np.asarray(layout_a), np.asarray(layout_b), k)
    except EmbeddingsError as exc:
        show_problem(f"The two maps could not be compared: {exc}")
        return
    columns = st.columns(2, gap="medium")
    for col, name, layout, trust in zip(
        columns, (name_a, name_b), (layout_a, layout_b), (found.first, found.second), strict=True
    ):
        title = f"{name} · trustworthiness {trust.trustworthiness:.3f} · mean kept {trust.mean_share:.0%}"
        fig = scatter_map(
            layout,
            labels,
            groups,
            title=title,
            show_text=show_text,
            axis_names=(f"{name} 1", f"{name} 2", f"{name} 3"),
            trust=trust,
            height=480,
        )
        fig.update_layout(title_font_size=13)
        col.plotly_chart(fig, key=f"{key}_{name}_chart")
    ids = found.most_different(top)
    if not ids:
        st.caption(f"Both maps keep the same number of each point's {k} nearest neighbours.")
        return
    st.markdown(f"**Where the two maps disagree most** (of each point's {k} nearest neighbours):")
    st.dataframe(
        {
            "point": [labels[i] for i in ids],
            "group": [groups[i] for i in ids],
            f"kept by {name_a}": [int(found.first.kept[i]) for i in ids],
            f"kept by {name_b}": [int(found.second.kept[i]) for i in ids],
            f"neighbours only {name_a} keeps near": [
                ", ".join(labels[j] for j in found.only_first[i]) for i in ids
            ],
            f"neighbours only {name_b} keeps near": [
                ", ".join(labels[j] for j in found.only_second[i]) for i in ids
            ],
        },
        hide_index=True,
    )
