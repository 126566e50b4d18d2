"""Credentials never reach a log, a message or a tracking store: ``redact`` for any text that may
hold a URI. On the ground floor, so that the one error handler (``cli``) and the log handlers use it.

URIs are parsed by hand rather than with ``urllib.parse``, which ends the authority at the first
``/``, ``?`` or ``#`` and so would show a password holding one: the user-info is the user, a colon and
anything up to the last ``@`` that a host follows.
"""

from __future__ import annotations

import logging
import re

_URI = re.compile(r"\b[A-Za-z][\w+.-]*://[^\s'\"<>]+")
# The user-info after "scheme://": a user (no "/", "?", "#", "@" or ":"), then ":" and a password that
# may hold any of them, up to the last "@" that a host follows (a name, an IP or [IPv6], a port), and
# after the host the end of the URI or its path, query or fragment.
_USER_INFO = re.compile(r"^[^/?#@:]*(?::.*)?@(?=[\w.%\[\]:-]+(?:[/?#]|$))", re.DOTALL)
# Query or fragment parameters that carry credentials: tokens (``#access_token=`` of an OAuth
# redirect too), signatures (pre-signed URLs), keys, passwords.
_SECRET_PARAMETER = re.compile(
    r"([?&;#](?:[\w.-]*(?:token|signature|credential|secret|password|passwd|pwd|key|sig|auth|session)[\w.-]*)=)"
    r"[^&;#\s]*",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """Credentials inside the URIs of ``text`` never reach a log or a tracking store: the user-info
    part (``scheme://user:password@host``, a password holding ``@``, ``/``, ``?`` or ``#`` included) and
    the values of query and fragment parameters that carry secrets (``?token=``, ``X-Amz-Signature=``,
    ``X-Amz-Credential=``, ``#access_token=``)."""
    return _URI.sub(lambda match: _redact_uri(match.group(0)), text)


def _redact_uri(uri: str) -> str:
    scheme, _, rest = uri.partition("://")
    rest = _USER_INFO.sub("***@", rest, count=1)
    return f"{scheme}://" + _SECRET_PARAMETER.sub(r"\1***", rest)


class RedactingFilter(logging.Filter):
    """A log handler's filter that redacts every record's message (arguments merged in first)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True
