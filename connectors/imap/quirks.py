"""What each known IMAP server does differently, in one table the connector and its tests share.

In the spirit of the caldav library's compatibility hints: the connector does the standard
thing and checks the answer, so an unknown server with the same quirk is still handled
(a ``PREVIEW NIL`` falls back per message, a missing UIDNEXT is found by ``UID SEARCH``);
the table lets a known server skip the doomed attempt from the first message
(``preview_nil``), and names what an admin can change on the server (``advice``, logged at
connect and shown with a slow-IDLE notice). The other fields record the server's ways for
docs/servers.md and the tests; the connector does not need them to cope.

A server is recognised from its greeting, which every one of these sends unasked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class ServerQuirks:
    """One server's known departures from what the connector would otherwise assume."""

    name: str
    #: Advertises PREVIEW (RFC 8970) but answers ``PREVIEW NIL``: fetch the first KB instead.
    preview_nil: bool = False
    #: SELECT/EXAMINE sends no UIDNEXT: the top UID comes from ``UID SEARCH``.
    no_uidnext: bool = False
    #: IDLE notifications come from the server polling its store this often (seconds).
    idle_poll_seconds: float | None = None
    #: No custom keywords (PERMANENTFLAGS without ``\\*``): categories must come another way.
    no_keywords: bool = False
    #: What an admin can set on the server to do better, shown in the log and status.
    advice: str = ""


GENERIC = ServerQuirks(name="unknown")

#: (greeting pattern, quirks), first match wins. Patterns are matched case-insensitively.
KNOWN_SERVERS: tuple[tuple[str, ServerQuirks], ...] = (
    (r"\bdovecot\b", ServerQuirks(name="Dovecot")),
    (
        r"\bcyrus imap\b",
        ServerQuirks(name="Cyrus IMAP", preview_nil=True),
    ),
    (
        r"\bcourier-imap\b",
        ServerQuirks(
            name="Courier IMAP",
            no_uidnext=True,
            idle_poll_seconds=60,
            advice="set IMAP_ENHANCEDIDLE=1 in Courier's imapd config for immediate IDLE notifications",
        ),
    ),
    (
        r"\bmicrosoft exchange\b",
        ServerQuirks(
            name="Microsoft Exchange",
            no_keywords=True,
            advice="Exchange IMAP keeps no custom keywords: use an ews or graph source to write categories",
        ),
    ),
    (r"\bgimap\b", ServerQuirks(name="Gmail")),
)


def identify(greeting: bytes | str | None) -> ServerQuirks:
    """The quirks of the server that sent ``greeting``, or ``GENERIC``."""
    if greeting is None:
        return GENERIC
    text = greeting.decode("utf-8", "replace") if isinstance(greeting, bytes) else greeting
    for pattern, quirks in KNOWN_SERVERS:
        if re.search(pattern, text, re.IGNORECASE):
            return quirks
    return GENERIC
