"""Tokens and keys out of log lines, whoever wrote the line.

aiohttp logs a request it cannot parse with the raw request line (a `?token=` in it),
and an exception's text may quote a header; a log is read by more people than a
token may be shown to. Every formatter of ours passes its finished line through
`redact`, so no logger, ours or a library's, present or future, can leak one.
"""

from __future__ import annotations

import re

REDACTED = "[redacted]"

_PATTERNS = (
    # A compact JWS anywhere: a header segment always starts `{"` (base64url `eyJ`).
    (re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), REDACTED),
    # token=…, access_token=…, in a URL, a form or a repr, whatever the value is.
    (re.compile(r"(?i)([a-z_]*token=)[^&\s\"'\\<>]+"), rf"\g<1>{REDACTED}"),
    # Authorization: Bearer … (connection tokens and API keys alike).
    (re.compile(r"(?i)(bearer\s+)[^\s\"'\\<>,]+"), rf"\g<1>{REDACTED}"),
)


# Whether a line may hold one at all: one scan, and nearly every line stops here.
_HINT = re.compile(r"(?i)token|bearer|eyJ")


def redact(text: str) -> str:
    """`text` with every token and bearer credential replaced by `[redacted]`."""
    if _HINT.search(text) is None:
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text
