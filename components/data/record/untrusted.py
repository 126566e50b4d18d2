"""What comes from outside, checked before it is used: ids and JSON text.

An id names a record, a request or a product, and for records and products also a file
(``images/<id>.png``): one check for all of them, on the whole id. Refused as ``unsafe_id``: empty or
over 255 characters, a character no file name or log line should hold (a control character, a NUL
byte, an unpaired surrogate, ``\\``, a line or paragraph separator), space at either end, and a path
that is not plainly relative (``/`` may separate folders, as in a request's default id, its image
path, but no part may be empty, ``.`` or ``..``).

A JSON line from a crawl, a requests file or a caller is parsed only within limits, so that one line
costs bounded memory and never exhausts the parser's recursion: at most ``MAX_JSON_CHARS`` characters
(``too_large``), nesting at most ``MAX_JSON_DEPTH`` deep (``too_deep``), counted without recursing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from components.data.record.rejection import RecordRejected

MAX_ID_CHARS = 255  # a file name's limit on common filesystems (in bytes there; close enough for ids)
_UNSAFE_ID_CHARACTER = re.compile(r"[\x00-\x1f\x7f-\x9f\\\ud800-\udfff\u2028\u2029]")
MAX_JSON_CHARS = 1_000_000  # a product or a request is a few kilobytes; an image travels by path or bytes
MAX_JSON_DEPTH = 32  # records nest three deep (a record, its box lists, a box)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")


def id_problem(value: Any) -> str | None:
    """Why ``value`` cannot be an id, or None."""
    if not isinstance(value, str):
        return f"expected a string, got {type(value).__name__}"
    if not value or len(value) > MAX_ID_CHARS:
        return f"must be 1 to {MAX_ID_CHARS} characters (got {len(value)})"
    bad = _UNSAFE_ID_CHARACTER.search(value)
    if bad is not None:
        return f"holds {bad.group(0)!r} at {bad.start()}, which no id may hold"
    if value != value.strip():
        return "starts or ends with space"
    if any(part in ("", ".", "..") for part in value.split("/")):
        return "is not a plain relative name (an empty, '.' or '..' part)"
    return None


def checked_id(value: Any, field: str = "image_id") -> str:
    """``value`` if it is a safe id (the whole of it), else ``RecordRejected(field, "unsafe_id")``."""
    problem = id_problem(value)
    if problem is not None:
        raise RecordRejected(field, "unsafe_id", f"{printable(value)} {problem}")
    return value


def printable(value: Any, limit: int = 80) -> str:
    """``value`` for a message: repr'd (control characters and surrogates escaped), cut to ``limit``."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def json_depth(text: str) -> int:
    """How deep the arrays and objects of a JSON text nest, counted without recursion."""
    depth = deepest = 0
    for bracket in _BRACKET.findall(_STRING.sub('""', text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def parse_json(text: str, field: str = "<line>") -> Any:
    """A JSON text from outside, within the size and depth limits, or ``RecordRejected`` naming
    ``field``: ``too_large``, ``too_deep`` or ``bad_json``."""
    if len(text) > MAX_JSON_CHARS:
        raise RecordRejected(field, "too_large", f"{len(text):,} characters, at most {MAX_JSON_CHARS:,}")
    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise RecordRejected(field, "too_deep", f"nested {depth} deep, at most {MAX_JSON_DEPTH}")
    try:
        return json.loads(text)
    except RecursionError as err:  # not reached within the depth limit; kept as the parser's own guard
        raise RecordRejected(field, "too_deep", "nested too deep for the parser") from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RecordRejected(field, "bad_json", str(err)) from err


def json_object(text: str, required: Sequence[str], where: str = "the line") -> dict[str, Any]:
    """One JSON-lines entry (``parse_json``) that must be an object with ``required`` keys, or
    ``RecordRejected``."""
    value = parse_json(text)
    if not isinstance(value, dict):
        raise RecordRejected("<line>", "bad_type", f"expected an object, got {type(value).__name__}")
    for key in required:
        if key not in value:
            raise RecordRejected(key, "missing_key", f"{where} has no '{key}'")
    return value


def json_lines(data: bytes) -> list[tuple[int, str]]:
    """(line number, text) of every non-empty line of a JSON-lines file from outside. Bytes that are
    not UTF-8 become U+FFFD (that line then fails its own checks, not the file); lines end at ``\\n``
    only (``str.splitlines`` would also end one at a U+2028, which JSON allows inside a string)."""
    text = data.decode("utf-8", errors="replace")
    return [(n, line.removesuffix("\r")) for n, line in enumerate(text.split("\n"), 1) if line.strip()]
