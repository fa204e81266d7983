"""Where things live on disk, and where secrets come from."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

DATA_DIR_ENV = "EMBEDDINGS_DATA_DIR"
REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DATA = Path(__file__).resolve().parent / "data"  # files shipped with the package
SECRETS_FILE = REPO_ROOT / ".streamlit" / "secrets.toml"


def data_dir(override: str | os.PathLike | None = None, create: bool = True) -> Path:
    """Return the data folder: ``override``, else ``$EMBEDDINGS_DATA_DIR``, else a per-user default.

    The default follows XDG: ``$XDG_CACHE_HOME/embedding-explorer`` or
    ``~/.cache/embedding-explorer``. The folder is created if missing (unless ``create=False``).
    """
    if override:
        path = Path(override)
    elif os.environ.get(DATA_DIR_ENV):
        path = Path(os.environ[DATA_DIR_ENV])
    else:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        path = Path(base) / "embedding-explorer"
    path = path.expanduser()
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def openai_api_key(secrets_file: Path | None = None) -> str | None:
    """Return the OpenAI key from ``$OPENAI_API_KEY`` or ``.streamlit/secrets.toml``, or None.

    The key is returned to the caller only; it is never logged or stored.
    """
    key = os.environ.get("OPENAI_API_KEY", "").strip()
    if key:
        return key
    path = secrets_file or SECRETS_FILE
    try:
        with open(path, "rb") as fh:
            secrets = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError):
        return None
    section = secrets.get("openai")
    value = secrets.get("OPENAI_API_KEY") or (
        section.get("api_key") if isinstance(section, dict) else section
    )
    return value.strip() if isinstance(value, str) and value.strip() else None


FOLDERS_ENV = "EMBEDDINGS_FOLDERS"


def configured_folders() -> list[Path]:
    """Image folders the app may offer, from ``$EMBEDDINGS_FOLDERS`` (``os.pathsep``-separated).

    Folder paths come from configuration only, never from a text box in the web page.
    Missing folders are left out.
    """
    raw = os.environ.get(FOLDERS_ENV, "")
    folders = [Path(p).expanduser() for p in raw.split(os.pathsep) if p.strip()]
    return [p for p in folders if p.is_dir()]
