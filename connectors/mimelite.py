"""Just enough MIME to build a timeline entry: raw headers and the first text part.

The stdlib ``email`` feedparser reads a message line by line in Python and builds an
object tree; for the dozen headers and 2 KB of text a timeline entry needs, that costs
more than fetching the message over IMAP. These functions split the same bytes with a
few ``bytes`` operations instead and give the same answers the compat32 parser gives
for what we read (header values keep their folding, exactly like ``Message.raw_items``;
a test compares the two on a varied corpus). Everything here is lenient by design: a
truncated part, a missing boundary or a bad transfer encoding yields less text, never
an exception.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass

_HEADER_NAME = re.compile(rb"[\041-\071\073-\176]+\Z")
_PARAM = re.compile(r';\s*([A-Za-z0-9_.*-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)')
_BLANK_LINE = re.compile(rb"\r?\n\r?\n|\r\r")


@dataclass(frozen=True, slots=True)
class RawHeaders:
    """Header values as ``(name, value)`` with the raw folding kept, in message order.

    Values are ``str`` decoded as ASCII with surrogate escapes, as compat32 gives them;
    callers decide how to read raw 8-bit bytes hidden in them.
    """

    items: tuple[tuple[str, str], ...]

    def first(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.items:
            if key.lower() == name:
                return value
        return None


def split_message(raw: bytes) -> tuple[RawHeaders, bytes]:
    """Headers and body of RFC 5322 bytes; the body starts after the first blank line.

    Like compat32: an mbox ``From `` first line is skipped, and a line in the header block
    that is neither a header nor a continuation starts the body (a missing separator).
    """
    if not raw.startswith((b"From ", b"\r", b"\n")):
        # The common cases, CRLF mail (what IMAP servers send) and LF mail (files), when
        # no earlier blank line of another kind exists: one C search, then str operations.
        end = raw.find(b"\r\n\r\n")
        if (
            end >= 0
            and raw.find(b"\n\n", 0, end + 2) < 0
            and raw.find(b"\r\r", 0, end + 2) < 0
            and raw.find(b"\n\r\n", 0, end + 1) < 0
        ):
            fast = _fast_fields(raw[: end + 2])
            if fast is not None:
                return RawHeaders(fast), raw[end + 4 :]
        else:
            end = raw.find(b"\n\n")
            if end >= 0 and raw.find(b"\r", 0, end + 2) < 0:
                fast = _fast_fields(raw[: end + 1])
                if fast is not None:
                    return RawHeaders(fast), raw[end + 2 :]
    return _split_by_lines(raw)


def _split_by_lines(raw: bytes) -> tuple[RawHeaders, bytes]:
    """``split_message`` for any shape, a line at a time (the reference for the fast paths)."""
    if raw.startswith((b"\r\n", b"\n", b"\r")):
        return RawHeaders(()), raw[2:] if raw.startswith(b"\r\n") else raw[1:]
    blank = _BLANK_LINE.search(raw)
    if blank is None:
        block, after = raw, b""
    else:
        # Keep the header block's last line ending, as compat32 does before rstripping it.
        ending = 2 if raw[blank.start() : blank.start() + 2] == b"\r\n" else 1
        block, after = raw[: blank.start() + ending], raw[blank.end() :]
    lines = block.splitlines(keepends=True)
    items: list[tuple[str, list[bytes]]] = []
    for index, line in enumerate(lines):
        if index == 0 and line.startswith(b"From "):
            continue
        if line[:1] in (b" ", b"\t"):
            if items:
                items[-1][1].append(line)
            continue
        name, colon, rest = line.partition(b":")
        if not colon or not _HEADER_NAME.match(name):
            after = b"".join(lines[index:]) + (raw[blank.start() + ending :] if blank is not None else b"")
            break
        items.append((name.decode("ascii"), [rest.lstrip(b" \t")]))
    headers = tuple((name, b"".join(parts).rstrip(b"\r\n").decode("ascii", "surrogateescape")) for name, parts in items)
    return RawHeaders(headers), after


def _fast_fields(block: bytes) -> tuple[tuple[str, str], ...] | None:
    """The header block read with a few ``str`` operations when its lines all end alike and
    each is a field or a continuation of one; None sends the caller to the line-by-line
    reading, which handles the rest (mixed or bare-CR line ends, junk lines, a body start)."""
    text = block.decode("ascii", "surrogateescape")
    crlf = text.count("\r\n")
    if crlf:
        if text.count("\n") != crlf or text.count("\r") != crlf:
            return None
        lines = text.split("\r\n")
        separator = "\r\n"
    else:
        if "\r" in text:
            return None
        lines = text.split("\n")
        separator = "\n"
    if lines and not lines[-1]:
        lines.pop()
    names: list[str] = []
    values: list[str] = []
    for line in lines:
        if line[:1] in (" ", "\t"):
            if values:
                values[-1] += separator + line
            continue
        name, colon, value = line.partition(":")
        if not colon or not name:
            return None
        names.append(name)
        values.append(value.lstrip(" \t"))
    every_name = "".join(names)  # printable ASCII without spaces, checked once for all
    if not every_name.isascii() or not every_name.isprintable() or " " in every_name:
        return None
    return tuple(zip(names, values, strict=True))


def content_type(value: str | None, default: str = "text/plain") -> tuple[str, dict[str, str]]:
    """``text/plain; charset="utf-8"`` -> ``("text/plain", {"charset": "utf-8"})``."""
    if not value:
        return default, {}
    main, _, _rest = value.partition(";")
    kind = "".join(main.split()).lower()
    if kind.count("/") != 1:
        kind = default  # what compat32's get_content_type does with a malformed type
    params: dict[str, str] = {}
    for name, raw in _PARAM.findall(value):
        if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        params.setdefault(name.lower().rstrip("*"), raw)
    return kind, params


def decode_transfer(body: bytes, encoding: str | None) -> bytes:
    """Undo a Content-Transfer-Encoding on a possibly truncated part, leniently."""
    encoding = (encoding or "").strip().lower()
    if encoding == "quoted-printable":
        return binascii.a2b_qp(body)
    if encoding == "base64":
        compact = b"".join(body.split())
        compact = compact[: len(compact) - len(compact) % 4]
        try:
            return binascii.a2b_base64(compact)
        except binascii.Error:
            return b""
    return body


@dataclass(frozen=True, slots=True)
class TextPart:
    subtype: str  # "plain" or "html"
    text: str


def first_text_part(headers: RawHeaders, body: bytes, depth: int = 0) -> TextPart | None:
    """The first text/plain part not sent as an attachment, else the first text/html one."""
    kind, params = content_type(headers.first("content-type"))
    if kind.startswith("multipart/"):
        boundary = params.get("boundary")
        if not boundary or depth > 8:
            return None
        html: TextPart | None = None
        delimiter = b"--" + boundary.encode("ascii", "surrogateescape")
        pieces = body.split(delimiter)
        for number, piece in enumerate(pieces[1:], start=2):
            if piece.startswith(b"--"):
                break  # the closing delimiter
            if number == len(pieces):
                piece = _without_cut_delimiter(piece, delimiter)  # the partial fetch ended in this part
            piece = piece.lstrip(b" \t")
            piece = piece[2:] if piece.startswith(b"\r\n") else piece[1:] if piece[:1] in (b"\n", b"\r") else piece
            if not _BLANK_LINE.search(piece) and not piece.startswith((b"\r\n", b"\n")):
                break  # part headers cut off by the partial fetch: nothing usable follows
            part_headers, part_body = split_message(piece)
            found = first_text_part(part_headers, _strip_delimiter_newline(part_body), depth + 1)
            if found is None:
                continue
            if found.subtype == "plain":
                return found
            html = html or found
        return html
    if kind not in ("text/plain", "text/html"):
        return None
    if (headers.first("content-disposition") or "").strip().lower().startswith("attachment"):
        return None
    payload = decode_transfer(body, headers.first("content-transfer-encoding"))
    charset = params.get("charset") or "utf-8"
    try:
        text = payload.decode(charset, errors="replace")
    except LookupError:
        text = payload.decode("utf-8", errors="replace")
    return TextPart(kind[5:], text)


def _without_cut_delimiter(piece: bytes, delimiter: bytes) -> bytes:
    """Drop a delimiter line that the end of a partial fetch cut short (``...\\n--=_bou``)."""
    start = piece.rfind(b"\n-")
    if start >= 0 and delimiter.startswith(piece[start + 1 :].rstrip(b"\r")):
        return piece[: start + 1]
    return piece


def _strip_delimiter_newline(body: bytes) -> bytes:
    # The line ending before the next "--boundary" belongs to the delimiter (RFC 2046).
    if body.endswith(b"\r\n"):
        return body[:-2]
    if body.endswith((b"\n", b"\r")):
        return body[:-1]
    return body
