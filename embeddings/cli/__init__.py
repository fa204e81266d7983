"""Command line: build and query indexes, evaluate text and image models.

Run ``python -m embeddings --help``. Long work shows a progress bar on stderr; results go
to stdout, and the evaluation commands end with one machine-readable line. The commands are in
``commands``, their argument parser in ``parser``.
"""

from __future__ import annotations

import logging
import sys

from ..config import DATA_DIR_ENV, data_dir
from ..errors import EmbeddingsError, InvalidInputError, explain_os_error
from .parser import build_parser

__all__ = ["build_parser", "main"]
log = logging.getLogger(__name__)


def _check_data_dir(override: str | None) -> None:
    """A data folder (``--data-dir`` or ``$EMBEDDINGS_DATA_DIR``) that exists must be a folder."""
    path = data_dir(override, create=False)
    if path.exists() and not path.is_dir():
        log.info("details: the data folder %s is not a folder", path)
        where = "--data-dir" if override else f"${DATA_DIR_ENV} (or the default data folder)"
        raise InvalidInputError(
            f"the data folder ({where}) is a file, not a folder: give a folder, or a path that does not "
            "exist yet (it is created)"
        )


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors and OS errors (full disk, no permission) print one ``error: ...`` line
    and exit 2 instead of a traceback; the raw OS error is logged (``-v`` shows it). Anything else is
    a bug and keeps its traceback."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s"
    )
    try:
        _check_data_dir(args.data_dir)
        return args.func(args)
    except EmbeddingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        happened, todo = explain_os_error(exc)
        log.info("details: %s: %s", type(exc).__name__, exc)
        more = "" if args.verbose else " (-v shows the details)"
        print(f"error: {happened}: {todo}, then run the command again{more}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
