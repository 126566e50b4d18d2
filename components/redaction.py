"""Credentials never reach a log, a message or a tracking store: ``redact`` for any text that may
hold a URI. On the ground floor, so that the one error handler (``cli``) and the log handlers use it.

URIs are split into scheme, authority, path and query by hand rather than with ``urllib.parse``,
which ends the authority at the first ``/`` and so would show a password holding one.
"""

from __future__ import annotations

import logging
import re

_URI = re.compile(r"\b[A-Za-z][\w+.-]*://[^\s'\"<>]+")
# Query parameters that carry credentials: tokens, signatures (pre-signed URLs), keys, passwords.
_SECRET_PARAMETER = re.compile(
    r"([?&;](?:[\w.-]*(?:token|signature|credential|secret|password|passwd|pwd|key|sig|auth|session)[\w.-]*)=)"
    r"[^&;#\s]*",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """Credentials inside the URIs of ``text`` never reach a log or a tracking store: the user-info
    part (``scheme://user:password@host``, a password holding ``@`` or ``/`` included) and the values
    of query parameters that carry secrets (``?token=``, ``X-Amz-Signature=``, ``X-Amz-Credential=``)."""
    return _URI.sub(lambda match: _redact_uri(match.group(0)), text)


def _redact_uri(uri: str) -> str:
    scheme, _, rest = uri.partition("://")
    address, mark, query = rest.partition("?")
    authority = address.split("/", 1)[0]
    if "@" in authority:  # the user-info ends at the last "@" of the authority
        address = "***@" + address[len(authority.rpartition("@")[0]) + 1 :]
    elif ":" in authority and "@" in address:  # a password holding "/" ends the authority early
        address = "***@" + address.rpartition("@")[2]
    return f"{scheme}://{address}" + _SECRET_PARAMETER.sub(r"\1***", mark + query)


class RedactingFilter(logging.Filter):
    """A log handler's filter that redacts every record's message (arguments merged in first)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True
