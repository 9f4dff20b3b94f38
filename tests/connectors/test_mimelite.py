"""The light MIME splitter gives what the stdlib email package gives, on varied real shapes.

The reference here is the stdlib compat32 parser: raw header values (folding kept) and the
first text/plain part (else text/html) that is not an attachment, decoded. The light
splitter exists only for speed; any disagreement on these messages is a bug in it.
"""

from __future__ import annotations

import email
import random
from email import policy
from email.message import EmailMessage, Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.connectors.mailparse import _addresses
from syncd.connectors.mimelite import _split_by_lines, content_type, first_text_part, split_message


def reference_text(raw: bytes) -> tuple[str, str] | None:
    msg = email.message_from_bytes(raw, policy=policy.compat32)
    html: Message | None = None
    chosen: Message | None = None
    for part in msg.walk():
        if part.is_multipart():
            continue
        if (part.get("content-disposition") or "").lower().startswith("attachment"):
            continue
        if part.get_content_type() == "text/plain":
            chosen = part
            break
        if part.get_content_type() == "text/html" and html is None:
            html = part
    chosen = chosen or html
    if chosen is None:
        return None
    payload = chosen.get_payload(decode=True)
    charset = chosen.get_content_charset() or "utf-8"
    try:
        text = payload.decode(charset, errors="replace")
    except LookupError:
        text = payload.decode("utf-8", errors="replace")
    return chosen.get_content_subtype(), text


def corpus() -> list[bytes]:
    rng = random.Random(3)
    found: list[bytes] = []
    for n in range(60):
        msg = EmailMessage()
        msg["From"] = f'"Horvat, Ivana" <ivana{n}@adriatic.hr>' if n % 3 else f"ivana{n}@adriatic.hr"
        msg["To"] = ", ".join(f"Person {k} <p{k}@x{n}.example>" for k in range(rng.randint(1, 12)))
        msg["Subject"] = "Ponuda za žitarice " * rng.randint(1, 8)  # long: folded, RFC 2047 encoded
        msg["Date"] = "Mon, 02 Nov 2026 10:00:00 +0100"
        msg["Message-ID"] = f"<m{n}@adriatic.hr>"
        body = "Poštovana,\n" + "šaljemo ponudu = cijena 5€\n" * rng.randint(1, 30)
        if n % 4 == 0:
            msg.set_content(body)
        elif n % 4 == 1:
            msg.set_content(body, cte="base64")
        elif n % 4 == 2:
            msg.set_content(body)
            msg.add_alternative(f"<p>{body}</p>", subtype="html")
        else:
            msg.set_content(body, cte="quoted-printable")
            msg.add_attachment(rng.randbytes(3000), maintype="application", subtype="pdf", filename="x.pdf")
        found.append(bytes(msg))
    # Attachment first, then nested alternative inside mixed, HTML only, Latin-2 8-bit.
    outer = MIMEMultipart("mixed")
    outer["From"] = "a@b.example"
    attachment = MIMEText("not this", "plain")
    attachment.add_header("Content-Disposition", "attachment", filename="notes.txt")
    outer.attach(attachment)
    inner = MIMEMultipart("alternative")
    inner.attach(MIMEText("<b>html version</b>", "html"))
    inner.attach(MIMEText("plain version", "plain"))
    outer.attach(inner)
    found.append(outer.as_bytes())
    found.append(b"From: a@b.example\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>only html</p>")
    found.append(
        b"From: a@b.example\nContent-Type: text/plain; charset=iso-8859-2\n\n" + "Dobar dan, šef".encode("iso-8859-2")
    )
    found.append(b"From a@b Mon Nov  2 10:00:00 2026\nFrom: a@b.example\nSubject: mbox line first\n\nbody here\n")
    found.append(b"From: a@b.example\r\nSubject: no blank line\r\nthis line starts the body\r\nmore\r\n")
    found.append(b"From: a@b.example\r\nSubject: headers only\r\n")
    found.append(b"From: a@b.example\r\nContent-Type: image/png\r\n\r\n\x89PNG")
    return found


@pytest.mark.parametrize("raw", corpus())
def test_headers_and_first_text_part_match_the_stdlib_parser(raw: bytes) -> None:
    headers, body = split_message(raw)
    reference = email.message_from_bytes(raw, policy=policy.compat32)
    assert list(headers.items) == [(k, str(v)) for k, v in reference.raw_items()]
    ours = first_text_part(headers, body)
    expected = reference_text(raw)
    assert (None if ours is None else (ours.subtype, ours.text.replace("\r\n", "\n"))) == (
        None if expected is None else (expected[0], expected[1].replace("\r\n", "\n"))
    )


@pytest.mark.parametrize("raw", corpus()[:40:3])
def test_a_partial_fetch_cut_anywhere_never_raises_and_gives_a_prefix(raw: bytes) -> None:
    headers, body = split_message(raw)
    full = first_text_part(headers, body)
    for cut in range(0, len(body), max(1, len(body) // 25)):
        part = first_text_part(headers, body[:cut])
        if part is not None and full is not None and part.subtype == full.subtype:
            # A cut may end inside a character or an escape; what comes before it is exact.
            head = part.text.replace("\r\n", "\n")[:-3]
            assert full.text.replace("\r\n", "\n").startswith(head)


def test_content_type_parameters() -> None:
    assert content_type('multipart/mixed; boundary="=_a b\\"c"') == ("multipart/mixed", {"boundary": '=_a b"c'})
    assert content_type("TEXT/Plain;charset=ISO-8859-2") == ("text/plain", {"charset": "ISO-8859-2"})
    assert content_type("garbage") == ("text/plain", {})
    assert content_type(None) == ("text/plain", {})


_atom = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789.-_+", min_size=1, max_size=12)
_name = st.text(alphabet=st.characters(codec="utf-8", exclude_characters='"\\<>,()[]:;@=\r\n\t'), max_size=20)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_name, _atom, _atom), min_size=1, max_size=5))
def test_address_fast_path_agrees_with_getaddresses(entries: list[tuple[str, str, str]]) -> None:
    from email.utils import getaddresses

    value = ", ".join(
        f"{name} <{local}@{domain}.example>" if name.strip() else f"{local}@{domain}.example"
        for name, local, domain in entries
    )

    def tidy(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return [(" ".join(name.split()), address) for name, address in pairs]  # as _clean does later

    assert tidy(_addresses([value])) == tidy(getaddresses([value]))


_NAMES = st.sampled_from(
    ["From", "To", "Subject", "X-Odd_Name.1", "Date", "Cc", "Message-ID", "Re", "Bad Name", "", "Ümlaut"]
)
_VALUE_TEXT = st.text(alphabet=st.sampled_from(list('abc <>@,;:"()=?') + ["\t", "é"]), max_size=20)
_ENDINGS = st.sampled_from(["\r\n", "\n", "\r"])


@st.composite
def header_blocks(draw) -> bytes:  # type: ignore[no-untyped-def]
    """Header blocks as mail really has them, and as it breaks: folded lines, mixed and bare-CR
    line ends, 8-bit bytes, names with spaces, junk lines, an mbox first line."""
    ending = draw(_ENDINGS) if draw(st.booleans()) else None  # None: a different end per line
    lines: list[str] = []
    if draw(st.integers(0, 9)) == 0:
        lines.append("From a@b Mon Nov  2 10:00:00 2026")
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.integers(0, 19))
        if kind == 0:
            lines.append(draw(_VALUE_TEXT))  # junk, or a continuation if it starts with a blank
        elif kind == 1:
            lines.append(draw(st.sampled_from([" ", "\t"])) + draw(_VALUE_TEXT))
        else:
            lines.append(f"{draw(_NAMES)}:{draw(st.sampled_from(['', ' ', '  ', chr(9)]))}{draw(_VALUE_TEXT)}")
    text = "".join(line + (ending or draw(_ENDINGS)) for line in lines)
    text += (ending or draw(_ENDINGS)) + draw(st.sampled_from(["", "body\r\n", "body\nmore"]))
    return text.encode("utf-8")


@settings(max_examples=400, deadline=None)
@given(header_blocks())
def test_header_fast_paths_read_exactly_what_the_line_by_line_reading_reads(raw: bytes) -> None:
    """The line-by-line reading is held to the stdlib parser by the corpus test above."""
    assert split_message(raw) == _split_by_lines(raw)
