"""The one place that turns typed errors into a message and an exit code."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from components.errors import CapOnImageError


def setup_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def run(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> int:
    """Call a flow's ``main``; a ``CapOnImageError`` becomes ``error: ...`` on stderr and its exit code."""
    setup_logging()
    try:
        code = main(argv)
    except CapOnImageError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(code or 0)
