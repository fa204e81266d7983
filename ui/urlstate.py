"""Which part of a page's state goes into its URL, and how: the pure half of shareable links.

No streamlit here (a ``lint-imports`` contract says so): plain functions over dicts, tested
without a running app. :mod:`ui.views.links` binds them to ``st.query_params`` and
``st.session_state``.

* :data:`SIDEBAR` and :data:`PAGES`: the one table of which session-state (widget) key is
  written to which query parameter, per page; the sidebar's fields go into every page's URL.
* :func:`decode`: query parameters -> session-state values, checked against what this server
  offers (``options``); every value that does not fit is left out with a note saying why.
* :func:`encode`: session-state values -> query parameters, at most :data:`URL_STATE_MAX`
  characters once encoded; long texts (word lists) that do not fit are left out, and said so.
* :func:`check_below`: a value that only the loaded data can judge (an image id past the end,
  a k above what the collection allows).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlencode

# What a link keeps, in characters of its encoded query string. Chromium opens URLs of 2 MB and the
# server reads request lines up to 64 KB (measured: README, Links and exports), but links are pasted
# into chats, mails and tickets whose tools cut or refuse long ones; 2,000 is the old common limit.
URL_STATE_MAX = 2000
TEXT_PARAM_MAX = 20_000  # a longer text in an incoming link is ignored (this app never writes one)
_WHOLE = re.compile(r"[0-9]{1,18}")
_DECIMAL = re.compile(r"[0-9]{1,9}(?:\.[0-9]{1,9})?")


@dataclass(frozen=True)
class Field:
    """One piece of state in the URL: query parameter ``param`` <-> session-state key ``key``.

    ``kind``: ``choice`` (one of ``options[options_name]``; written as a slug when ``slugs``),
    ``text``, ``int`` / ``float`` (within ``low``..``high``, ``None`` = unbounded), or ``query``
    (the image page's query ``("id", n)``: only a collection image can go into a link).
    ``long``: may be left out of a link that would be too long (word lists). ``ident``: an image id.
    A ``text`` field's ``high`` is its most characters (a longer linked text is ignored); ``never``:
    values that are never written into a link (an upload, which a link cannot carry).
    """

    param: str
    key: str
    label: str
    kind: str
    options_name: str = ""
    slugs: bool = False
    low: float | None = None
    high: float | None = None
    long: bool = False
    ident: bool = False  # an item id: "past the end" when too large
    never: tuple[str, ...] = ()


SIDEBAR: tuple[Field, ...] = (
    Field("text_model", "text_model", "text model", "choice", "text_models"),
    Field("collection", "collection", "image collection", "choice", "collections"),
    Field("split", "split", "split", "choice", "splits"),
    Field("image_model", "image_model", "image model", "choice", "image_models"),
)

PAGES: dict[str, tuple[Field, ...]] = {
    "home": (),
    "words": (
        Field("words", "words_input", "word list", "text", long=True),
        Field("tab", "words_tab", "tab", "choice", "words_tabs", slugs=True),
        Field("vs", "compare_model", "second model", "choice", "text_models"),
    ),
    "tsne": (
        Field("groups", "tsne_groups", "groups of words", "text", long=True),
        Field("section", "tsne_section", "section", "choice", "tsne_sections", slugs=True),
        Field("method", "tsne_method", "method", "choice", "tsne_methods", slugs=True),
        Field("dims", "tsne_dims", "dimensions", "choice", "tsne_dims", slugs=True),
        Field("perplexity", "tsne_perplexity", "perplexity", "float", low=1, high=50),
        Field("seed", "tsne_seed", "seed", "int", low=0, high=2**31 - 1),
        Field("point", "map_selected", "map point", "int", low=0, ident=True),
        Field("mk", "map_k", "neighbours to mark", "int", low=1, high=30),
    ),
    "images": (
        Field("view", "image_view", "view", "choice", "image_views", slugs=True),
        Field("q", "image_query", "query image", "query", low=0, ident=True),
        Field("k", "image_k", "neighbours (k)", "int", low=1, high=50),
    ),
    # names unlike the other pages' ("q", "tab", "vs"), so a page switch never reads theirs as its own
    "documents": (
        Field(
            "docs",
            "docs_source",
            "document collection",
            "choice",
            "docs_sources",
            slugs=True,
            never=("Upload a file",),
        ),
        Field("query", "docs_query", "query", "text", high=2000, long=True),
        Field("k", "docs_k", "top k", "int", low=1, high=50),
        Field("show", "docs_tab", "tab", "choice", "docs_tabs", slugs=True),
        Field("second", "docs_model_b", "second model", "choice", "docs_second_models"),
        Field("long", "docs_mode", "long-documents setting", "choice", "docs_modes"),
        Field("chunk", "docs_chunk", "passage length", "choice", "docs_chunks"),
        Field("overlap", "docs_overlap", "overlap", "choice", "docs_overlaps"),
    ),
}

Options = Mapping[str, Sequence[str] | Callable[[dict], Sequence[str]]]


def fields_of(page: str) -> tuple[Field, ...]:
    """The sidebar's fields and then ``page``'s (an unknown page has only the sidebar's)."""
    return SIDEBAR + PAGES.get(page, ())


def field_for(page: str, param: str) -> Field:
    """The field of ``page`` written to query parameter ``param`` (KeyError when there is none)."""
    for f in fields_of(page):
        if f.param == param:
            return f
    raise KeyError(param)


def slugify(value: str) -> str:
    """``value`` as a URL token: lower case, runs of other characters as one ``-``."""
    return re.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-")


def shown(text: str, limit: int = 40) -> str:
    """``text`` quoted for a note, cut to ``limit`` characters."""
    text = " ".join(str(text).split())
    return f"“{text if len(text) <= limit else text[: limit - 1] + '…'}”"


@dataclass
class Decoded:
    """What a link asked for: ``values`` (session-state key -> value) and ``notes`` (what was
    ignored and why, one plain sentence each)."""

    values: dict[str, object] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _number(f: Field, text: str, whole: bool) -> int | float:
    text = text.strip()
    if not (_WHOLE if whole else _DECIMAL).fullmatch(text):
        what = "a whole number" if whole else "a number"
        raise ValueError(f"the {f.label} {shown(text)} is not {what}")
    value = int(text) if whole else float(text)
    if (f.low is not None and value < f.low) or (f.high is not None and value > f.high):
        raise ValueError(f"the {f.label} {value:g} is out of range ({_range(f)})")
    return value


def _range(f: Field) -> str:
    if f.high is None:
        return f"at least {f.low:g}"
    return f"{f.low:g} to {f.high:g}"


def _choice(f: Field, text: str, options: Sequence[str]) -> str:
    for option in options:  # options may be numbers (passage lengths): compared as text
        if text == str(option) or (f.slugs and text == slugify(str(option))):
            return option
    names = ", ".join(slugify(str(o)) if f.slugs else str(o) for o in options[:8])
    more = ", …" if len(options) > 8 else ""
    return _fail(f"the {f.label} {shown(text)} is not available here (there are: {names}{more})")


def _fail(message: str):
    raise ValueError(message)


def decode_value(f: Field, text: str, options: Sequence[str] = ()) -> object:
    """The session-state value of field ``f`` for query-parameter text ``text``; ``ValueError``
    (its message says what is wrong) when it does not fit."""
    if f.kind == "choice":
        return _choice(f, text, options)
    if f.kind == "text":
        if len(text) > TEXT_PARAM_MAX:
            raise ValueError(
                f"the {f.label} is {len(text):,} characters long (a link holds at most {TEXT_PARAM_MAX:,})"
            )
        if not text.strip():
            raise ValueError(f"the {f.label} is empty")
        if f.high is not None and len(text) > f.high:
            raise ValueError(f"the {f.label} is {len(text):,} characters long (at most {f.high:,g})")
        return text
    if f.kind == "int":
        return int(_number(f, text, whole=True))
    if f.kind == "float":
        return float(_number(f, text, whole=False))
    if f.kind == "query":
        return ("id", int(_number(f, text, whole=True)))
    raise ValueError(f"unknown field kind {f.kind!r}")


def decode(params: Mapping[str, str], fields: Sequence[Field], options: Options) -> Decoded:
    """Check every query parameter against ``fields``; ``options`` maps each choice field's
    ``options_name`` to its allowed values, or to a function of the values decoded so far
    (a split's options depend on the collection). Unknown parameters are noted and ignored."""
    out = Decoded()
    known = {f.param for f in fields}
    for f in fields:
        if f.param not in params:
            continue
        allowed = options.get(f.options_name, ()) if f.kind == "choice" else ()
        if callable(allowed):
            allowed = allowed(out.values)
        try:
            out.values[f.key] = decode_value(f, params[f.param], list(allowed))
        except ValueError as exc:
            out.notes.append(str(exc))
    for name in params:
        if name not in known:
            out.notes.append(f"{shown(name)} is not a setting of this page")
    return out


def encode_value(f: Field, value: object) -> str | None:
    """The query-parameter text of field ``f`` for session-state ``value`` (None: not in the link)."""
    if value is None or (f.never and str(value) in f.never):
        return None
    if f.kind == "choice":
        return slugify(str(value)) if f.slugs else str(value)
    if f.kind == "text":
        return str(value) if str(value).strip() else None
    if f.kind == "query":
        ok = isinstance(value, tuple) and len(value) >= 2 and value[0] == "id"
        return str(int(value[1])) if ok else None
    if f.kind == "int":
        return str(int(value))
    if f.kind == "float":
        return f"{float(value):g}"
    return None


@dataclass
class Encoded:
    """A page's query parameters and the fields left out because the link would be too long,
    as (field, characters it would take once encoded)."""

    params: dict[str, str]
    left_out: list[tuple[Field, int]] = field(default_factory=list)

    @property
    def length(self) -> int:
        """Characters of the encoded query string."""
        return len(urlencode(self.params))


def encode(values: Mapping[str, object], fields: Sequence[Field], limit: int = URL_STATE_MAX) -> Encoded:
    """The query parameters of ``values`` (session-state key -> value), at most ``limit``
    characters once encoded: the longest ``long`` fields are left out first, then the longest
    others, until it fits (so every other setting still goes into the link)."""
    out = Encoded({})
    by_param = {}
    for f in fields:
        text = encode_value(f, values.get(f.key))
        if text is not None:
            out.params[f.param] = text
            by_param[f.param] = f
    while out.length > limit and out.params:
        sizes = {p: len(urlencode({p: t})) for p, t in out.params.items()}
        longs = [p for p in out.params if by_param[p].long]
        worst = max(longs or list(out.params), key=sizes.get)
        out.left_out.append((by_param[worst], sizes[worst]))
        del out.params[worst]
    return out


def check_below(f: Field, value: object, upper: int, what: str) -> str | None:
    """A note when a linked ``value`` of field ``f`` is above ``upper`` (the largest that fits
    the data now: the last image id, the largest k), else None. ``what`` names the data."""
    number = value[1] if f.kind == "query" and isinstance(value, tuple) else value
    if not isinstance(number, (int, float)) or number <= upper:
        return None
    if f.ident:
        return f"the {f.label} #{number} is past the end of {what} (ids 0 to {upper:,})"
    return f"the {f.label} {number:g} is more than {what} allows (at most {upper:,})"


def left_out_note(left_out: Sequence[tuple[Field, int]], limit: int = URL_STATE_MAX) -> str:
    """One sentence on what a too-long link leaves out ("" when nothing)."""
    if not left_out:
        return ""
    parts = ", ".join(f"the {f.label} ({size:,} characters)" for f, size in left_out)
    return (
        f"Too long for a link: {parts}; links keep at most {limit:,} characters. The page's link "
        "(the address bar) keeps every other setting."
    )
