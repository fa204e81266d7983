"""Optional packages: import one with its install command in the error, and read versions."""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import Any

from ..errors import MissingDependencyError


def require(module: str, pip_command: str, what: str) -> Any:
    """Import ``module`` or raise :class:`MissingDependencyError` naming ``pip_command``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(f"{what} needs the {module!r} package: {pip_command}") from exc


def package_version(distribution: str) -> str:
    """The installed version of ``distribution``, or ``"not-installed"``."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not-installed"
