"""The members of one large JSON object, read from a byte stream one at a time.

``ref_captions.json`` of CapOnImage2M is one object of 2M records (about 1.5 GB): ``json.loads``
holds all of it, and Python's objects for it, at once (9 GB). ``iter_object_members`` holds the
unread part of one chunk and one record: memory is flat in the file's size. Values are decoded by
the standard library's decoder; a repeated key yields both members (``json.loads`` keeps the last).
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from typing import Any, BinaryIO

from components.errors import DatasetFormatError

CHUNK_BYTES = 1 << 22
MAX_MEMBER_CHARS = 1 << 26  # a record this long is not a record: stop reading instead of holding the file
WHITESPACE = " \t\n\r"
DELIMITERS = tuple(WHITESPACE + ",:}]")  # what may follow a value ("" is not one: the buffer ended)


class _Buffer:
    """Decoded text of a byte stream, read on demand, with a cursor and a consumed prefix dropped."""

    def __init__(self, stream: BinaryIO, name: str, chunk_bytes: int):
        self.stream, self.name, self.chunk_bytes = stream, name, chunk_bytes
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.text, self.at, self.ended = "", 0, False

    def more(self) -> bool:
        """Read another chunk; False at the end of the stream."""
        if self.ended:
            return False
        data = self.stream.read(self.chunk_bytes)
        self.ended = not data
        try:
            added = self.decoder.decode(data, final=self.ended)
        except UnicodeDecodeError as err:
            raise DatasetFormatError(f"{self.name}: not valid UTF-8 ({err})") from err
        # Keep what is unread only: the buffer never grows past a chunk plus one member.
        self.text, self.at = self.text[self.at :] + added, 0
        return not self.ended or bool(added)

    def more_for_one_member(self) -> bool:
        """Read on for the member at the cursor, unless it is already longer than any record."""
        return len(self.text) - self.at < MAX_MEMBER_CHARS and self.more()

    def skip_space(self) -> str:
        """The next character that is not whitespace ("" at the end), not consumed."""
        while True:
            while self.at < len(self.text) and self.text[self.at] in WHITESPACE:
                self.at += 1
            if self.at < len(self.text):
                return self.text[self.at]
            if not self.more():
                return ""

    def expect(self, allowed: str, what: str) -> str:
        found = self.skip_space()
        if not found or found not in allowed:
            found = repr(found) if found else "the end"
            raise DatasetFormatError(f"{self.name}: expected {what} at character {self.at}, found {found}")
        self.at += 1
        return found

    def value(self, decoder: json.JSONDecoder) -> Any:
        """One JSON value from the cursor, reading more until it is complete."""
        self.skip_space()
        while True:
            try:
                value, end = decoder.raw_decode(self.text, self.at)
            except json.JSONDecodeError as err:
                if self.more_for_one_member():
                    continue
                raise DatasetFormatError(f"{self.name}: not valid JSON ({err.msg} near character {err.pos})") from err
            # A number cut by the chunk's end parses as a shorter one ("2." as 2): a complete value is
            # always followed by a delimiter, so anything else means the value may go on.
            if (
                self.text[end : end + 1] not in DELIMITERS
                and len(self.text) - self.at < MAX_MEMBER_CHARS
                and self.more()
            ):
                continue
            self.at = end
            return value


def iter_object_members(
    stream: BinaryIO, name: str = "JSON", chunk_bytes: int = CHUNK_BYTES
) -> Iterator[tuple[str, Any]]:
    """``(key, value)`` of each member of the JSON object ``stream`` holds, in the file's order.

    ``DatasetFormatError`` (naming ``name``) when the stream is not one JSON object.
    """
    buffer, decoder = _Buffer(stream, name, chunk_bytes), json.JSONDecoder()
    buffer.expect("{", "an object keyed by image id ('{')")
    if buffer.skip_space() == "}":
        buffer.at += 1
    else:
        while True:
            key = buffer.value(decoder)
            if not isinstance(key, str):
                raise DatasetFormatError(f"{name}: expected a string key, found {key!r}")
            buffer.expect(":", "':'")
            yield key, buffer.value(decoder)
            if buffer.expect(",}", "',' or '}'") == "}":
                break
    if buffer.skip_space():
        raise DatasetFormatError(f"{name}: more data after the object (character {buffer.at})")
