"""The flows' command line: the one place that turns typed errors into a message and an exit code,
and the help format every flow shares."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable

from components.errors import CapOnImageError
from components.progress import on_terminal
from components.redaction import RedactingFilter, redact


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps a flow's docstring as written and shows each option's default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        hidden = default is None or default is False or default is argparse.SUPPRESS or default == []
        shown = action.option_strings and not hidden and "%(default)" not in text
        return f"{text} (default: %(default)s)" if shown else text


def setup_logging(level: int = logging.INFO) -> None:
    """Log lines with time and source; off a terminal, no progress bars (a log file would keep every
    redraw): MLflow's transfer bars go, and ``on_terminal()`` tells the others."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:  # credentials in a logged URI never reach the log
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
    if not on_terminal():
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def run(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> int:
    """Call a flow's ``main``; a ``CapOnImageError`` becomes ``error: ...`` on stderr and its exit code."""
    setup_logging()
    try:
        code = main(argv)
    except CapOnImageError as err:
        print(f"error: {redact(str(err))}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(code or 0)
