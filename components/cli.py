"""The flows' command line: the one place that turns typed errors into a message and an exit code,
and the help format every flow shares."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from components.errors import CapOnImageError
from components.redaction import RedactingFilter, redact

T = TypeVar("T")


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


def on_terminal() -> bool:
    """Whether progress bars can redraw in place (stderr, where they draw, is a terminal)."""
    return sys.stderr.isatty()


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


def logged_progress(
    items: Iterable[T], total: int | None, unit: str, logger: logging.Logger, every_s: float = 30.0
) -> Iterator[T]:
    """``items`` passed through, with a log line every ``every_s`` seconds and at the end: how many
    of ``total``, the rate and, with a total, the time left. Progress in a log, where bars would redraw."""
    started = last = time.perf_counter()
    done = 0
    for item in items:
        done += 1
        now = time.perf_counter()
        if now - last >= every_s:
            last = now
            rate = done / (now - started)
            left = f", {(total - done) / rate:.0f} s left" if total and rate > 0 else ""
            of = f"/{total}" if total else ""
            logger.info("%d%s %s, %.2f/s%s", done, of, unit, rate, left)
        yield item
    elapsed = time.perf_counter() - started
    logger.info("%d %s in %.1f s (%.2f/s)", done, unit, elapsed, done / elapsed if elapsed else 0.0)
