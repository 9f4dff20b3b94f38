"""UID FETCH responses read straight off imaplib, for the backfill's hot loop.

imapclient parses every FETCH response with a general tokenizer written in Python; for
the handful of items a timeline entry needs, that parser costs more than the server
takes to send them (about 7,500 messages/s against 50,000 for the raw bytes on this
kind of machine). Here the connection stays imapclient's (login, SELECT, SEARCH, IDLE,
STORE all go through it) and only the bulk FETCH is read here: the command is sent with
imaplib's ``send``, its response lines are read with imaplib's ``readline`` and ``read``
(public since Python 3.0, and what 3.14's own buffering reads through), and a tokenizer
that knows just the shapes of those items reads them. A response it
does not understand raises ``WireFormatError`` and the caller falls back to imapclient
for that batch, so an odd server costs speed, never messages.
"""

from __future__ import annotations

import imaplib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

_TOKEN = re.compile(
    rb"""\s*(?:
      (?P<open>\()
    | (?P<close>\))
    | (?P<literal>\x00(?P<index>\d+)\x00)
    | "(?P<quoted>[^"\\]*(?:\\.[^"\\]*)*)"
    | (?P<section>BODY\[[^\]]*\](?:<\d+>)?)
    | (?P<atom>[^\s()"\x00\[\]]+(?:\[[^\]]*\](?:<\d+>)?)?)
    )""",
    re.X,
)
_MONTHS = {
    m: i
    for i, m in enumerate(
        (b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"), start=1
    )
}


# The shape Dovecot, Cyrus and most servers send for our request, read in one match;
# anything else goes through the general tokenizer below.
_COMMON = re.compile(
    rb'\d+ \(UID (?P<uid>\d+) FLAGS \((?P<flags>[^()"]*)\) INTERNALDATE "(?P<date>[^"]*)" '
    rb"RFC822\.SIZE (?P<size>\d+)(?: MODSEQ \(\d+\))?"
    rb'(?: PREVIEW (?:"(?P<quoted>[^"\\]*(?:\\.[^"\\]*)*)"|\x00(?P<literal>\d+)\x00|(?P<nil>NIL)))?'
    rb" BODY\[HEADER\.FIELDS \([^()]*\)\] \x00(?P<header>\d+)\x00"
    rb"(?: BODY\[TEXT\]<0> \x00(?P<text>\d+)\x00)?\)\n"
)


class WireFormatError(ValueError):
    """A FETCH response this reader does not know; the caller uses imapclient instead."""


@dataclass(frozen=True, slots=True)
class FetchedItem:
    uid: int
    flags: tuple[str, ...]
    internal_date: bytes | datetime | None  # raw bytes parsed on demand: only mail without a usable Date needs it
    size: int | None
    header: bytes
    text: bytes  # the first bytes of the body, when asked for
    preview: str | None = None  # the server's RFC 8970 PREVIEW, when asked for


def fetch(imap: imaplib.IMAP4, uids: Sequence[int], header_item: str, text_item: str) -> dict[int, FetchedItem]:
    """``UID FETCH`` the flags, internal date, header fields and ``text_item`` (``PREVIEW``
    or a partial ``BODY.PEEK[TEXT]``) of ``uids``.

    Only imaplib's documented ``send``, ``readline`` and ``read`` are used: the command
    goes out with a tag of our own (imaplib never hears of it, so its bookkeeping is left
    as it was) and its whole response is read back through imaplib's own reading, which
    since Python 3.14 buffers on its own instead of through ``IMAP4.file``.
    """
    items = f"(UID FLAGS INTERNALDATE RFC822.SIZE {header_item} {text_item})"
    tag = b"SW" + secrets.token_hex(4).upper().encode("ascii")
    imap.send(tag + b" UID FETCH " + uid_set(uids).encode("ascii") + b" " + items.encode("ascii") + b"\r\n")
    data = read_fetch_responses(imap, tag)
    wanted = set(uids)
    found: dict[int, FetchedItem] = {}
    for item in parse_fetch_data(data):
        if item.uid in wanted:
            found[item.uid] = item
    return found


def read_fetch_responses(imap: imaplib.IMAP4, tag: bytes) -> list[object]:
    """The responses to the command ``tag``, up to its completion, in the shape imaplib's
    ``uid("FETCH", ...)`` returns: a FETCH response is ``b"seq (..."`` or, when it carries
    literals, ``(line, literal)`` pairs then the line that ends it.

    imaplib reads the same lines with several regex matches and method calls per line;
    for a few hundred responses of three lines each that was a fifth of a backfill. Other
    untagged responses (EXISTS, FLAGS...) are read past. The whole response is always read
    up to the tagged line, so the connection stays in step whatever the content.
    """
    readline, read = imap.readline, imap.read
    prefix = tag + b" "
    data: list[object] = []
    while True:
        line = readline()
        if not line.endswith(b"\n"):
            raise imap.abort(f"connection closed or line too long while reading FETCH: {line[:80]!r}")
        if line.startswith(prefix):
            status, _, text = line[len(prefix) :].rstrip(b"\r\n").partition(b" ")
            if status != b"OK":
                raise imap.error(
                    f"UID FETCH failed: {status.decode('ascii', 'replace')} {text.decode('utf-8', 'replace')}"
                )
            return data
        if line.startswith(b"* BYE"):
            raise imap.abort(f"server said {line.rstrip().decode('utf-8', 'replace')}")
        sequence, found, rest = line[2:].partition(b" FETCH ")
        wanted = line.startswith(b"* ") and bool(found) and sequence.isdigit()
        if wanted:
            line = sequence + b" " + rest
        pieces: list[object] = []
        while line.endswith(b"}\r\n"):
            brace = line.rfind(b"{")
            size = line[brace + 1 : -3]
            if brace < 0 or not size.isdigit():
                raise imap.abort(f"unreadable literal size in {line[:80]!r}")
            literal = read(int(size))
            if len(literal) != int(size):
                raise imap.abort("connection closed inside a literal")
            pieces.append((line[:-2], literal))
            line = readline()
            if not line.endswith(b"\n"):
                raise imap.abort("connection closed or line too long after a literal")
        pieces.append(line.rstrip(b"\r\n"))
        if wanted:
            data.extend(pieces)


def uid_set(uids: Sequence[int]) -> str:
    ordered = sorted(set(uids))
    ranges: list[str] = []
    start = previous = ordered[0]
    for uid in ordered[1:]:
        if uid == previous + 1:
            previous = uid
            continue
        ranges.append(f"{start}:{previous}" if start != previous else str(start))
        start = previous = uid
    ranges.append(f"{start}:{previous}" if start != previous else str(start))
    return ",".join(ranges)


def parse_fetch_data(data: Sequence[object]) -> list[FetchedItem]:
    """imaplib's FETCH data (lines, and ``(line, literal)`` pairs) -> items that carry a UID.

    imaplib splits a response at each literal: ``(b'1 (UID 5 ... BODY[...] {120}', header)``,
    ``(b' BODY[TEXT]<0> {900}', text)``, ``b')'``. The lines are joined with a marker for
    each literal, and the joined text is read as ``seq (name value ...)`` responses.
    """
    stream: list[bytes] = []
    literals: list[bytes] = []
    for element in data:
        if isinstance(element, tuple):
            line, literal = element
            if not isinstance(line, bytes) or not isinstance(literal, bytes):
                raise WireFormatError(f"unexpected element {element!r:.80}")
            brace = line.rfind(b"{")
            if brace < 0 or not line.endswith(b"}"):
                raise WireFormatError(f"literal without a size: {line!r:.80}")
            stream.append(line[:brace] + b"\x00%d\x00" % len(literals))
            literals.append(literal)
        elif isinstance(element, bytes):
            stream.append(element)
            stream.append(b"\n")  # a line without a literal ends a response
        elif element is None:
            continue
        else:
            raise WireFormatError(f"unexpected element {element!r:.80}")
    joined = b"".join(stream)
    items: list[FetchedItem] = []
    position = 0
    while True:
        common = _COMMON.match(joined, position)
        if common is None:
            break
        if common["quoted"] is not None:
            preview: str | None = _unquote(common["quoted"]).decode("utf-8", "replace")
        elif common["literal"] is not None:
            preview = literals[int(common["literal"])].decode("utf-8", "replace")
        else:
            preview = None
        items.append(
            FetchedItem(
                uid=int(common["uid"]),
                flags=tuple(common["flags"].decode("utf-8", "replace").split()),
                internal_date=common["date"],
                size=int(common["size"]),
                header=literals[int(common["header"])],
                text=literals[int(common["text"])] if common["text"] is not None else b"",
                preview=preview,
            )
        )
        position = common.end()
    if position == len(joined):
        return items
    tokens = _tokens(joined[position:])
    position = 0
    while position < len(tokens):
        kind, value = tokens[position]
        if kind != "atom" or not value.isdigit():
            raise WireFormatError(f"expected a sequence number, got {value!r:.40}")
        if position + 1 >= len(tokens) or tokens[position + 1][0] != "open":
            raise WireFormatError("expected '(' after the sequence number")
        position, fields = _fields(tokens, position + 2, literals)
        if "UID" in fields:
            items.append(_item(fields))
    return items


def _tokens(stream: bytes) -> list[tuple[str, bytes]]:
    tokens: list[tuple[str, bytes]] = []
    position = 0
    end = len(stream.rstrip())
    while position < end:
        match = _TOKEN.match(stream, position)
        if match is None or match.end() == position:
            raise WireFormatError(f"cannot read {stream[position : position + 40]!r}")
        position = match.end()
        kind = match.lastgroup
        if kind == "literal":
            tokens.append(("literal", match.group("index")))
        elif kind == "quoted":
            tokens.append(("quoted", _unquote(match.group("quoted"))))
        elif kind in ("open", "close"):
            tokens.append((kind, b""))
        else:
            tokens.append(("atom", match.group(kind or 0)))
        position = _skip_space(stream, position)
    return tokens


def _unquote(value: bytes) -> bytes:
    return re.sub(rb"\\(.)", rb"\1", value) if b"\\" in value else value


def _skip_space(stream: bytes, position: int) -> int:
    while position < len(stream) and stream[position] in b" \r\n\t":
        position += 1
    return position


def _fields(tokens: list[tuple[str, bytes]], position: int, literals: list[bytes]) -> tuple[int, dict[str, object]]:
    fields: dict[str, object] = {}
    while True:
        if position >= len(tokens):
            raise WireFormatError("response ends inside its parentheses")
        kind, name = tokens[position]
        if kind == "close":
            return position + 1, fields
        if kind != "atom" or position + 1 >= len(tokens):
            raise WireFormatError(f"expected an item name, got {name!r:.40}")
        kind, value = tokens[position + 1]
        key = name.decode("ascii", "replace").upper()
        if kind == "open":
            values: list[bytes] = []
            position += 2
            while position < len(tokens) and tokens[position][0] != "close":
                if tokens[position][0] != "atom":
                    raise WireFormatError(f"unexpected token in the {key} list")
                values.append(tokens[position][1])
                position += 1
            fields[key] = tuple(values)
            position += 1
            continue
        if kind == "literal":
            fields[key] = literals[int(value)]
        elif kind == "quoted":
            fields[key] = value
        elif kind == "atom":
            fields[key] = None if value.upper() == b"NIL" else value
        else:
            raise WireFormatError(f"unexpected value for {key}")
        position += 2


def _item(fields: dict[str, object]) -> FetchedItem:
    header = text = b""
    for key, value in fields.items():
        if key.startswith("BODY[HEADER"):
            header = value if isinstance(value, bytes) else b""
        elif key.startswith("BODY[TEXT]") or key.startswith("BODY[1]"):
            text = value if isinstance(value, bytes) else b""
    preview = fields.get("PREVIEW")
    uid = fields["UID"]
    flags = fields.get("FLAGS") or ()
    internal = fields.get("INTERNALDATE")
    size = fields.get("RFC822.SIZE")
    if not isinstance(uid, bytes) or not uid.isdigit() or not isinstance(flags, tuple):
        raise WireFormatError("malformed UID or FLAGS")
    return FetchedItem(
        uid=int(uid),
        flags=tuple(f.decode("utf-8", "replace") for f in flags),
        internal_date=internal if isinstance(internal, bytes) else None,
        size=int(size) if isinstance(size, bytes) and size.isdigit() else None,
        header=header,
        text=text,
        preview=preview.decode("utf-8", "replace") if isinstance(preview, bytes) else None,
    )


def internal_date(value: bytes | datetime | None) -> datetime | None:
    """``17-Jul-1996 02:44:25 -0700`` -> an aware UTC datetime, or None if malformed.
    A datetime (imapclient's fallback parse) is only made aware and UTC."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)
    if not value:
        return None
    try:
        day_month_year, clock, zone = value.strip().split()
        day, month, year = day_month_year.split(b"-")
        hour, minute, second = (int(x) for x in clock.split(b":"))
        offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5]))
        local = datetime(int(year), _MONTHS[month.capitalize()], int(day), hour, minute, second, tzinfo=timezone.utc)
    except (ValueError, KeyError, IndexError):
        return None
    return local - offset if zone[:1] == b"+" else local + offset
