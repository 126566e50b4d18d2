"""Progress for long work, where a person watches: bars on a terminal, a log line every so often in a
log file (where a redrawn bar would leave every frame)."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def on_terminal() -> bool:
    """Whether progress bars can redraw in place (stderr, where they draw, is a terminal)."""
    return sys.stderr.isatty()


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
