"""Which folders of a mailbox are read, and which of a folder's messages the backfill reads.

Both decide what syncd sees of a mailbox; both were where other servers differed: a Sent
folder flagged ``\\sent`` (Cyrus), Date-less mail that a date SEARCH leaves out (GNU
Mailutils), no UIDNEXT to bound the backfill (Courier).
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Sequence
from datetime import date, datetime

from imapclient import IMAPClient

from syncd.connectors.imap import wire as imapwire

log = logging.getLogger("syncd.connectors.imap")

SENT_NAMES = (
    "sent",
    "sent items",
    "sent messages",
    "sent mail",
    "inbox.sent",
    "[gmail]/sent mail",
    "gesendet",
    "gesendete objekte",
    "poslano",
    "poslane",
    "wysłane",
    "skickat",
    "envoyés",
    "enviados",
)


def choose_folders(
    listing: Sequence[tuple[Sequence[bytes], object, str]], include: Sequence[str], exclude: Sequence[str]
) -> list[str]:
    """INBOX, the Sent folder (SPECIAL-USE, else by name), and included folders, from LIST."""
    names = [name for _flags, _delim, name in listing]
    chosen = ["INBOX"] if any(n.upper() == "INBOX" for n in names) else []
    # Flags are case-insensitive (RFC 3501 2.3.2): Cyrus lists Sent as \sent.
    sent = next((name for flags, _d, name in listing if any(f.lower() == b"\\sent" for f in flags)), None)
    if sent is None:
        sent = next((name for name in names if name.lower() in SENT_NAMES), None)
    if sent:
        chosen.append(sent)
    for name in names:
        if name in chosen:
            continue
        if any(fnmatch.fnmatch(name, p) for p in include) and not any(fnmatch.fnmatch(name, p) for p in exclude):
            chosen.append(name)
    return chosen


def backfill_window(client: IMAPClient, since: date, where: str) -> tuple[list[int], list[int]]:
    """The selected folder's UIDs split into (in the window, before it), each ascending; none left out.

    ``SINCE``/``BEFORE`` compare INTERNALDATE, but servers differ on messages they hold no
    date for (one left nine Date-less messages out of both): whatever neither search
    returns is decided by its INTERNALDATE here, and read when that is missing too.
    """
    listed = sorted(client.search(["ALL"]))
    window = set(client.search(["SINCE", since]))
    older = set(client.search(["BEFORE", since])) - window if len(window) < len(listed) else set()
    doubtful = [u for u in listed if u not in window and u not in older]
    if doubtful:
        log.info("%s %d messages matched neither SINCE nor BEFORE: deciding by INTERNALDATE", where, len(doubtful))
        for start in range(0, len(doubtful), 1000):
            chunk = doubtful[start : start + 1000]
            dates = client.fetch(chunk, ["INTERNALDATE"])
            for uid in chunk:
                value = dates.get(uid, {}).get(b"INTERNALDATE")
                arrived = imapwire.internal_date(value) if isinstance(value, (bytes, datetime)) else None
                (older if arrived is not None and arrived.date() < since else window).add(uid)
    present = set(listed)
    return sorted(window & present), sorted(older & present)
