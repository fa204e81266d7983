"""Shared fixtures: a data folder under tmp_path, tiny image collections, deterministic embedders,
the app's test environment (:func:`app_env`), what a page shows (:func:`messages`, :func:`assert_clean`)
and driving it (:func:`wait_for_jobs`, :func:`type_words`)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
import streamlit as st

import embeddings.config
from embeddings.core.fingerprint import fingerprint
from embeddings.image.collection import ImageCollection
from embeddings.models.baselines import PixelImageEmbedder
from tests.browser_support import app_url, browser, page  # noqa: F401  (browser-test fixtures)

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (40, 50, 230)}


class ArrayCollection(ImageCollection):
    """An in-memory :class:`ImageCollection` over an (n, h, w, 3) uint8 array (kept as ``images``),
    fingerprinted from its pixels."""

    def __init__(self, images: np.ndarray, labels, classes, name="tiny", split="test", source="memory"):
        fp = fingerprint(images.tobytes().hex()[:4096], len(images), images.sum().item())
        super().__init__(name, source, split, images, fp, classes, labels)
        self.images = images


def make_colour_images(per_class: int = 6, size: int = 8, seed: int = 0):
    """Noisy solid-colour squares, ``per_class`` of each colour in COLOURS (class order kept)."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label, rgb in enumerate(COLOURS.values()):
        for _ in range(per_class):
            noise = rng.integers(-25, 26, size=(size, size, 3))
            images.append(np.clip(np.array(rgb) + noise, 0, 255).astype(np.uint8))
            labels.append(label)
    return np.stack(images), np.array(labels)


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path_factory, monkeypatch):
    """No test touches the user's data folder, uses an OpenAI key, or loads a big image model by default."""
    monkeypatch.setenv("EMBEDDINGS_DATA_DIR", str(tmp_path_factory.mktemp("default-data")))
    monkeypatch.setenv("EMBEDDINGS_IMAGE_MODEL", "pixels")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("EMBEDDINGS_FOLDERS", raising=False)
    monkeypatch.delenv("EMBEDDINGS_TEXT_FOLDERS", raising=False)
    monkeypatch.delenv("EMBEDDINGS_COLLECTION", raising=False)


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """A fresh data folder, also exported as EMBEDDINGS_DATA_DIR."""
    path = tmp_path / "data"
    path.mkdir()
    monkeypatch.setenv("EMBEDDINGS_DATA_DIR", str(path))
    return path


@pytest.fixture
def colour_collection():
    images, labels = make_colour_images()
    return ArrayCollection(images, labels, list(COLOURS))


@pytest.fixture
def pixel_embedder():
    return PixelImageEmbedder()


@pytest.fixture
def add_model(request):
    """Register a model for one test: ``add_model(model_id, factory, kind="text", **spec fields)``;
    whatever it replaced (a built-in of the same id) is put back afterwards."""
    from embeddings import registry

    def add(model_id, factory, kind=registry.TEXT, description="a test model", **fields):
        previous = registry.register(registry.ModelSpec(model_id, kind, factory, description, **fields))
        request.addfinalizer(lambda: registry.unregister(model_id, restore=previous))

    return add


# ------------------------------------------------------------------------------ the app under AppTest


def fresh_caches() -> None:
    """Forget every st.cache_* value: a cached OpenAI client would still point at an old server."""
    st.cache_resource.clear()
    st.cache_data.clear()


def use_app_env(monkeypatch, data: Path, secrets: Path) -> Path:
    """Run the app on the instant models (``hashing``, ``pixels``) with ``data`` as its data folder,
    no OpenAI key or server, and ``secrets`` (a missing file) as its secrets.toml."""
    monkeypatch.setenv("EMBEDDINGS_TEXT_MODEL", "hashing")
    monkeypatch.setenv("EMBEDDINGS_ANALOGY_MODEL", "hashing")
    monkeypatch.setenv("EMBEDDINGS_IMAGE_MODEL", "pixels")
    monkeypatch.setenv("EMBEDDINGS_DATA_DIR", str(data))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setattr(embeddings.config, "SECRETS_FILE", secrets)
    return data


@pytest.fixture
def app_env(request, monkeypatch, tmp_path, tmp_path_factory):
    """The app's environment (:func:`use_app_env`); yields its data folder, ``tmp_path`` by default.

    A module changes it with ``pytestmark = pytest.mark.app_env(...)``:

    * ``data="name"``: the data folder is ``tmp_path / name`` instead;
    * ``shared_data="name"``: one data folder ``name`` under pytest's base temp folder, shared by
      every test that asks for it (e.g. the sample index is built once for the module);
    * ``fresh_caches=True``: every st.cache_* value is forgotten before and after the test.
    """
    marker = request.node.get_closest_marker("app_env")
    options = dict(marker.kwargs) if marker else {}
    if "shared_data" in options:
        data = tmp_path_factory.getbasetemp() / options["shared_data"]
        data.mkdir(exist_ok=True)
    elif "data" in options:
        data = tmp_path / options["data"]
        data.mkdir()
    else:
        data = tmp_path
    clear = options.get("fresh_caches", False)
    if clear:
        fresh_caches()
    yield use_app_env(monkeypatch, data, tmp_path / "no-secrets.toml")
    if clear:
        fresh_caches()


def shown_text(markdown: str) -> str:
    """What the browser shows for Markdown source: backslash escapes (``escape_markdown``) removed."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", str(markdown))


def messages(at) -> str:
    """The text of every warning, info and error an AppTest run shows (as the browser shows it)."""
    return "\n".join(shown_text(m.value) for kind in ("warning", "info", "error") for m in at.get(kind))


def assert_clean(at) -> None:
    """The run raised nothing (no exception box) and showed no error."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def wait_for_jobs(at, timeout: float, poll: float = 0.5):
    """Rerun ``at`` every ``poll`` seconds while a background job (index build, image map) shows its
    progress bar, for at most ``timeout`` seconds; the caller asserts what it expects afterwards."""
    deadline = time.monotonic() + timeout
    while at.get("progress") and time.monotonic() < deadline:
        time.sleep(poll)
        at.run()
    return at


def type_words(at, words: str | None = None, tab: str | None = None):
    """Type ``words`` into the words page's input and open the words tab ``tab`` (each if given)."""
    if words is not None:
        at.text_area(key="words_input").set_value(words).run()
    if tab is not None:
        at.session_state["words_tab"] = tab
        at.run()
    return at


@pytest.fixture
def downloads(monkeypatch):
    """What an AppTest run's download buttons serve: ``downloads(at, key)`` returns the file's
    name and bytes, built as a click builds them (a deferred button's callable is run)."""
    import streamlit.testing.v1.app_test as app_test
    from streamlit.runtime.media_file_manager import MediaFileManager

    managers: list[MediaFileManager] = []

    class Recording(MediaFileManager):
        def __init__(self, storage):
            super().__init__(storage)
            managers.append(self)

    monkeypatch.setattr(app_test, "MediaFileManager", Recording)

    def read(at, key: str) -> tuple[str | None, bytes]:
        buttons = [b for b in at.get("download_button") if b.key == key]
        assert buttons, f"no download button {key!r}: {[b.key for b in at.get('download_button')]}"
        proto, manager = buttons[0].proto, managers[-1]
        if proto.deferred_file_id:
            url = manager.execute_deferred(proto.deferred_file_id)
        else:
            url = proto.url
        stored = manager._storage.get_file(url.rsplit("/", 1)[-1])
        return stored.filename, stored.content

    return read
