"""The raw FETCH reader: canned imaplib shapes, and the same records as imapclient on Dovecot."""

from __future__ import annotations

import imaplib
import io
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from support.helpers import make_message
from syncd.connectors.imap import wire as imapwire
from syncd.connectors.imap.connector import ImapAccount, ImapConnector
from syncd.model.records import ReadOptions, SourceState

HEADER = b"From: a@b.example\r\nSubject: Hi\r\n\r\n"


def test_literals_quoted_values_nil_and_unsolicited_responses() -> None:
    data = [
        (
            b'1 (UID 7 FLAGS (\\Seen $crm_acme) INTERNALDATE " 2-Nov-2026 10:00:00 +0100" RFC822.SIZE 2048 '
            b"BODY[HEADER.FIELDS (FROM SUBJECT)] {%d}" % len(HEADER),
            HEADER,
        ),
        (b" BODY[TEXT]<0> {5}", b"hello"),
        b")",
        b"2 (FLAGS (\\Flagged) MODSEQ (99))",  # unsolicited flag change without a UID
        b'3 (UID 9 FLAGS () INTERNALDATE "30-Oct-2026 23:59:59 -0700" MODSEQ (12) '
        b'BODY[HEADER.FIELDS (FROM SUBJECT)] "From: \\"C\\" <c@d.example>" BODY[TEXT]<0> NIL)',
    ]
    items = {item.uid: item for item in imapwire.parse_fetch_data(data)}
    assert set(items) == {7, 9}
    assert items[7].flags == ("\\Seen", "$crm_acme") and items[7].size == 2048
    assert items[7].header == HEADER and items[7].text == b"hello"
    assert imapwire.internal_date(items[7].internal_date) == datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)
    assert items[9].header == b'From: "C" <c@d.example>' and items[9].text == b""
    assert imapwire.internal_date(items[9].internal_date) == datetime(2026, 10, 31, 6, 59, 59, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "data",
    [
        [b"1 (UID 7 FLAGS (\\Seen"],  # cut inside the list
        [(b"1 (UID 7 BODY[TEXT]<0> 5", b"hello")],  # literal without a size
        [b"(UID 7)"],  # no sequence number
        [b'1 (UID 7 BODYSTRUCTURE ("text" "plain"))'],  # a shape this reader does not handle
    ],
)
def test_shapes_it_does_not_know_raise_so_the_caller_falls_back(data: list[object]) -> None:
    with pytest.raises(imapwire.WireFormatError):
        imapwire.parse_fetch_data(data)


class _Wire:
    """What read_fetch_responses uses of an imaplib connection: its documented readline and read."""

    abort = imaplib.IMAP4.abort
    error = imaplib.IMAP4.error

    def __init__(self, stream: bytes):
        self.stream = io.BufferedReader(io.BytesIO(stream))  # type: ignore[arg-type]

    def readline(self) -> bytes:
        return self.stream.readline()

    def read(self, size: int) -> bytes:
        return self.stream.read(size)


class _Unusable:
    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"IMAP4.file.{name} used: imaplib no longer reads through it (Python 3.14)")


class _OwnBufferImap(imaplib.IMAP4):
    """An imaplib connection that reads through a buffer of its own, as Python 3.14's does,
    with bytes already buffered before the FETCH (the end of an earlier response and the
    whole answer to ours), and a ``file`` that must not be read."""

    def __init__(self, answer: bytes):  # no server: what it would send is ``answer``
        self.debug = 0
        self.answer = answer
        self.buffer = io.BytesIO(b"")
        self.sent: list[bytes] = []
        self.file = _Unusable()

    def send(self, data: bytes) -> None:
        self.sent.append(data)
        tag = data.split(b" ", 1)[0]
        self.buffer = io.BytesIO(self.answer.replace(b"TAG", tag))

    def readline(self) -> bytes:
        return self.buffer.readline()

    def read(self, size: int) -> bytes:
        return self.buffer.read(size)


def test_the_fast_reader_reads_what_imaplib_buffered_not_its_file() -> None:
    answer = (
        b'* 1 FETCH (UID 7 FLAGS (\\Seen) INTERNALDATE "17-Jul-2026 02:44:25 +0000" RFC822.SIZE 99 '
        b"BODY[HEADER.FIELDS (FROM SUBJECT)] {%d}\r\n" % len(HEADER) + HEADER + b")\r\n"
        b"TAG OK Fetch completed.\r\n* 2 EXISTS\r\n"
    )
    imap = _OwnBufferImap(answer)
    found = imapwire.fetch(imap, [7], "BODY.PEEK[HEADER.FIELDS (FROM SUBJECT)]", "PREVIEW")
    assert list(found) == [7] and found[7].header == HEADER and found[7].flags == ("\\Seen",)
    [command] = imap.sent
    assert command.endswith(
        b" UID FETCH 7 (UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER.FIELDS (FROM SUBJECT)] PREVIEW)\r\n"
    )
    assert imap.buffer.read() == b"* 2 EXISTS\r\n"  # the next response stays for imaplib


def test_responses_are_read_off_the_wire_in_imaplibs_shape() -> None:
    stream = (
        b"* 1 FETCH (UID 7 FLAGS (\\Seen) BODY[HEADER.FIELDS (FROM SUBJECT)] {%d}\r\n" % len(HEADER)
        + HEADER
        + b" BODY[TEXT]<0> {5}\r\nhello)\r\n"
        + b"* 3 EXISTS\r\n"  # new mail arriving meanwhile: read past
        + b"* 2 FETCH (FLAGS (\\Flagged))\r\n"
        + b"A7 OK Fetch completed.\r\n"
        + b"* 4 EXISTS\r\n"
    )  # the next command's: left unread
    wire = _Wire(stream)
    data = imapwire.read_fetch_responses(wire, b"A7")  # type: ignore[arg-type]
    assert data == [
        (b"1 (UID 7 FLAGS (\\Seen) BODY[HEADER.FIELDS (FROM SUBJECT)] {%d}" % len(HEADER), HEADER),
        (b" BODY[TEXT]<0> {5}", b"hello"),
        b")",
        b"2 (FLAGS (\\Flagged))",
    ]
    assert wire.stream.read() == b"* 4 EXISTS\r\n"
    [item] = imapwire.parse_fetch_data(data)
    assert (item.uid, item.header, item.text) == (7, HEADER, b"hello")


@pytest.mark.parametrize(
    ("stream", "error", "message"),
    [
        (b"* 1 FETCH (UID 7)\r\nA7 NO [SERVERBUG] Internal error\r\n", imaplib.IMAP4.error, "NO.*Internal error"),
        (b"* BYE shutting down\r\n", imaplib.IMAP4.abort, "BYE shutting down"),
        (b"* 1 FETCH (UID 7 BODY[TEXT] {50}\r\nonly part of it", imaplib.IMAP4.abort, "inside a literal"),
        (b"* 1 FETCH (UID 7", imaplib.IMAP4.abort, "connection closed"),
    ],
)
def test_a_refused_fetch_or_a_dropped_connection_raises_what_imaplib_would(
    stream: bytes, error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        imapwire.read_fetch_responses(_Wire(stream), b"A7")  # type: ignore[arg-type]


def test_internal_date_rejects_garbage() -> None:
    assert imapwire.internal_date(b"yesterday") is None
    assert imapwire.internal_date(None) is None


def test_fast_reader_and_imapclient_give_identical_records_on_dovecot(dovecot, tmp_path: Path, monkeypatch) -> None:
    user, password = dovecot.new_user("wire")
    client = dovecot.client(user)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    for n in range(40):
        raw = make_message(
            n,
            sender=f"Buyer {n} <buyer{n}@customer{n % 4}.example>",
            to=user,
            body="Zdravo, šaljem ponudu.\n" * (n + 1),
            when=now - timedelta(hours=n),
        )
        client.append("INBOX", raw, flags=[b"\\Seen"] if n % 3 else [], msg_time=now - timedelta(hours=n))
    client.logout()
    account = ImapAccount(
        host=dovecot.host,
        port=dovecot.port,
        tls="none",
        verify_tls=True,
        username=user,
        owner=user,
        password=lambda: password,
    )

    def read_all(preview: bool = True) -> list[object]:
        connector = ImapConnector("wire", ReadOptions(batch_size=15), replace(account, server_preview=preview))
        try:
            return sorted(
                (r for b in connector.read(SourceState({}, frozenset())) for r in b.records), key=lambda r: r.key
            )
        finally:
            connector.close()

    fast = read_all()
    from_body = read_all(preview=False)

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise imapwire.WireFormatError("forced for the test")

    monkeypatch.setattr(imapwire, "fetch", refuse)
    fallback = read_all()
    assert len(fast) == 40
    assert fast == fallback
    assert all(r.snippet.startswith("Zdravo, šaljem ponudu.") for r in fast)  # Dovecot's PREVIEW
    assert all(r.snippet.startswith("Zdravo, šaljem ponudu.") for r in from_body)  # our own, from 2 KB of body
    assert [replace(r, snippet="") for r in from_body] == [replace(r, snippet="") for r in fast]
    assert read_all(preview=False) == from_body


def test_dovecot_responses_take_the_one_match_fast_path(dovecot, monkeypatch) -> None:
    user, password = dovecot.new_user("wire")
    client = dovecot.client(user)
    client.append("INBOX", make_message(1, to=user), msg_time=datetime.now(timezone.utc))
    client.enable("CONDSTORE")
    client.select_folder("INBOX", readonly=True)

    def no_tokenizer(_stream: bytes) -> list[tuple[str, bytes]]:
        raise AssertionError("the general tokenizer was needed")

    monkeypatch.setattr(imapwire, "_tokens", no_tokenizer)
    found = imapwire.fetch(
        client._imap, client.search(["ALL"]), "BODY.PEEK[HEADER.FIELDS (FROM SUBJECT)]", "BODY.PEEK[TEXT]<0.2048>"
    )
    client.logout()
    assert found and all(item.header.startswith(b"From:") for item in found.values())
