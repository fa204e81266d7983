"""What ``serve.py`` does at start-up to bring the first page sooner (plain Python, no ui import
at module level): skip Streamlit's scan for custom components, warm the first page's imports."""

from __future__ import annotations

import importlib
import logging

log = logging.getLogger(__name__)


# Modules every first page needs, imported by serve.py in a background thread at start-up.
WARM_MODULES = (
    "pandas",
    "plotly.graph_objects",
    "faiss",
    "embeddings.registry",
    "embeddings.index.service",
    "ui.sidebar",
    "ui.views.image",
    "ui.charts.text",
)


def warm_imports(modules=WARM_MODULES) -> list[str]:
    """Import ``modules`` (the first page's), logging and skipping any that fails; returns those
    imported. Safe beside the script thread: Python's per-module import locks make a page that
    imports the same module wait for it to finish, never see it half-done."""
    done = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - warming is an optimisation; the page reports real errors
            log.warning("warming %s failed: %s", name, exc)
        else:
            done.append(name)
    return done


def skip_component_scan() -> bool:
    """Skip Streamlit's start-up scan of every installed package's metadata for custom (v2)
    components: this app uses none, and reading ~500 metadata files took 1.1 s of every start
    here. Returns False (and changes nothing) if this Streamlit has no such scan."""
    try:
        from streamlit.components.v2 import manifest_scanner
    except ImportError:
        return False
    if not hasattr(manifest_scanner, "scan_component_manifests"):
        return False
    manifest_scanner.scan_component_manifests = lambda max_workers=None: []
    return True
