"""Command line: build and query indexes, evaluate text and image models.

Run ``python -m embeddings --help``. Long work shows a progress bar on stderr; results go
to stdout, and the evaluation commands end with one machine-readable line. The commands are in
``commands``, their argument parser in ``parser``.
"""

from __future__ import annotations

import logging
import sys

from ..errors import EmbeddingsError
from .parser import build_parser

__all__ = ["build_parser", "main"]


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors print one line and exit 2 instead of a traceback."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s"
    )
    try:
        return args.func(args)
    except EmbeddingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
