"""Links that reproduce a view: each page's state in its URL (``st.query_params``).

The table of which widget key goes to which query parameter, and every check, are in the pure
:mod:`ui.urlstate`; this module binds them to the running app. Per page, three calls:

* :func:`restore` first thing on the page: on the page's first run in a session, the link's
  values go into ``st.session_state`` before any widget is drawn; values that do not fit are
  ignored, with a message saying which and why (shown until dismissed). Afterwards the widgets
  own the state: the URL is never read again in that session, so the two never fight.
* :func:`check` once the page knows its data: a linked image id past the end, or a k above
  what the collection allows, is ignored the same way.
* :func:`sync` at the end of the page (and of a fragment): the current state -> the URL.
  :func:`length_note` under a word box says when the list is too long for a link.

The sidebar's fields are restored by :func:`restore_sidebar`, before its widgets (``ui.sidebar``).
"""

from __future__ import annotations

import streamlit as st

from embeddings.text.wordlists import escape_markdown
from ui.urlstate import (
    PAGES,
    SIDEBAR,
    URL_STATE_MAX,
    check_below,
    decode,
    encode,
    field_for,
    fields_of,
    left_out_note,
)

RESTORED = "_links_restored"  # pages (and "sidebar") whose link was read this session
NOTES = "_links_notes"  # {page: [note, ...]} what the link asked for that was ignored, and why
PENDING = "_links_pending"  # {page: {param: value}} linked values the page checks against its data
SLOT = "_links_slot"  # this run's st.empty() where the message is drawn


def _params() -> dict[str, str]:
    """The URL's query parameters (the last value of a repeated one)."""
    return {name: st.query_params[name] for name in st.query_params}


def _restored() -> set:
    return st.session_state.setdefault(RESTORED, set())


def _sidebar_options() -> dict:
    from embeddings.image.collections import list_splits
    from ui.cached import image_model_choices
    from ui.settings import COLLECTION_KEY, available_sources, available_text_models

    sources = available_sources()

    def splits(decoded: dict) -> list[str]:
        source = decoded.get(COLLECTION_KEY) or st.session_state.get(COLLECTION_KEY) or sources[0]
        try:
            return list(list_splits(source))
        except Exception:  # noqa: BLE001 - a source that cannot be listed offers no split
            return []

    return {
        "text_models": available_text_models(),
        "collections": sources,
        "splits": splits,
        "image_models": image_model_choices()[0],
    }


def restore_sidebar() -> None:
    """On the session's first run, before the sidebar's widgets: the link's text model,
    collection, split and image model (what does not fit is noted for the page to show)."""
    done = _restored()
    if "sidebar" in done:
        return
    done.add("sidebar")
    names = {f.param for f in SIDEBAR}
    linked = {k: v for k, v in _params().items() if k in names}
    if not linked:
        return
    decoded = decode(linked, SIDEBAR, _sidebar_options())
    for key, value in decoded.values.items():
        st.session_state[key] = value
    st.session_state.setdefault(NOTES, {}).setdefault("sidebar", []).extend(decoded.notes)


def restore(page: str, **options) -> None:
    """First on ``page``: on its first run in this session, apply the link's values to the
    session state (``options``: the page's choice lists by name, e.g. ``words_tabs=TABS``);
    show what was ignored and why; then write the URL (:func:`sync`)."""
    done = _restored()
    if page not in done:
        first_of_session = not (done - {"sidebar"})
        done.add(page)
        sidebar_names = {f.param for f in SIDEBAR}
        linked = {k: v for k, v in _params().items() if k not in sidebar_names}
        if not first_of_session:  # a page switch may carry the last page's parameters: not this page's
            linked = {k: v for k, v in linked.items() if any(f.param == k for f in PAGES.get(page, ()))}
        decoded = decode(linked, PAGES.get(page, ()), {**_sidebar_options(), **options})
        for key, value in decoded.values.items():
            st.session_state[key] = value
        st.session_state.setdefault(PENDING, {})[page] = {
            f.param: decoded.values[f.key] for f in PAGES.get(page, ()) if f.key in decoded.values
        }
        notes = st.session_state.setdefault(NOTES, {})
        notes[page] = notes.pop("sidebar", []) + decoded.notes
        for other in [p for p in notes if p != page]:
            notes.pop(other)  # another page's message is not about this one
    show_notes(page)
    sync(page)


def check(page: str, param: str, upper: int, what: str) -> None:
    """Once ``page`` knows its data: a linked ``param`` above ``upper`` (an id past the end, a k
    above what ``what`` allows) is dropped from the session state, with a message saying so."""
    pending = st.session_state.get(PENDING, {}).get(page, {})
    if param not in pending:
        return
    f = field_for(page, param)
    note = check_below(f, pending.pop(param), upper, what)
    if note is None:
        return
    st.session_state.pop(f.key, None)  # the page's default instead
    notes = st.session_state.setdefault(NOTES, {}).setdefault(page, [])
    notes.append(note)
    slot = st.session_state.get(SLOT)
    if slot is not None:  # drawn by this run's restore(): the message grows in place
        with slot.container():
            _warn(notes)
    else:
        _warn([note])


def _warn(notes: list[str]) -> None:
    lines = "\n".join(f"- {escape_markdown(n[0].upper() + n[1:])}." for n in notes)
    st.warning(
        "Some of this link's settings could not be used, so the page shows its defaults for them:\n" + lines,
        icon=":material/link_off:",
    )


def show_notes(page: str) -> None:
    """The link's ignored values for ``page`` (in a slot :func:`check` can add to), with a
    button that dismisses them."""
    slot = st.session_state[SLOT] = st.empty()
    notes = st.session_state.get(NOTES, {}).get(page)
    if not notes:
        return
    with slot.container():
        _warn(notes)
    st.button("Dismiss", key=f"links_dismiss_{page}", on_click=st.session_state[NOTES].pop, args=(page, None))


def _state(page: str) -> dict:
    return {f.key: st.session_state.get(f.key) for f in fields_of(page)}


def sync(page: str):
    """Write ``page``'s current state (sidebar fields included) into the URL when it changed;
    returns the :class:`~ui.urlstate.Encoded` parameters."""
    encoded = encode(_state(page), fields_of(page))
    if encoded.params != _params():
        st.query_params.from_dict(encoded.params)
    return encoded


def length_note(page: str) -> None:
    """A caption when part of ``page``'s state (a long word list) does not fit in a link."""
    note = left_out_note(encode(_state(page), fields_of(page)).left_out, URL_STATE_MAX)
    if note:
        st.caption(note)
