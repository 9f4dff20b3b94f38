"""IMAP servers other than Dovecot, through a stand-in set to answer as each was seen to.

Each test is named after the server and the quirk; the stand-in's switches
(``tests/support/servers/imap_standin.py``) reproduce what the real server sent.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, datetime, timezone

import pytest

from support.helpers import wait_for
from support.servers.imap_standin import ImapStandin, Quirks, StandinMailbox, message, utc
from syncd.connectors.imap.connector import ImapAccount, ImapConnector
from syncd.connectors.imap.idle import ImapIdleWatcher
from syncd.connectors.imap.quirks import GENERIC, KNOWN_SERVERS, identify
from syncd.model.records import ActivityRecord, Batch, ReadOptions, SourceState

TODAY = date(2026, 12, 1)
RECENT = utc(2026, 11, 20)


def connector(server: ImapStandin, **account: object) -> ImapConnector:
    settings = ImapAccount(
        host=server.host,
        port=server.port,
        tls="none",
        verify_tls=True,
        username="alice",
        owner="alice@ourco.example",
        password=lambda: "pw",
        backfill_days=365,
        retry_attempts=1,
    )
    settings = replace(settings, **account)  # type: ignore[arg-type]
    return ImapConnector("standin", ReadOptions(batch_size=10), settings, today=lambda: TODAY)


def read_all(server: ImapStandin, state: SourceState | None = None, **account: object) -> list[Batch]:
    reader = connector(server, **account)
    try:
        return list(reader.read(state or SourceState({}, frozenset())))
    finally:
        reader.close()


def records(batches: list[Batch]) -> list[ActivityRecord]:
    return [r for b in batches for r in b.records if isinstance(r, ActivityRecord)]


@pytest.fixture
def mailbox() -> Iterator[tuple[StandinMailbox, ImapStandin]]:
    box = StandinMailbox()
    box.folder("INBOX")
    with ImapStandin(box) as server:
        yield box, server


def test_mailutils_dateless_mail_left_out_of_date_searches_is_still_read(
    mailbox: tuple[StandinMailbox, ImapStandin],
) -> None:
    box, server = mailbox
    box.quirks = Quirks(search_date_skips_dateless=True)
    inbox = box.folders["INBOX"]
    for n in range(20):
        inbox.append(message(n, date_header=RECENT), RECENT)
    for n in range(20, 29):
        inbox.append(message(n, date_header=None), RECENT)  # no Date: header at all
    for n in range(29, 34):
        old = utc(2025, 1, 10)
        inbox.append(message(n, date_header=old), old)
    batches = read_all(server)
    read = records(batches)
    assert len(read) == 29
    assert {r.subject for r in read} >= {f"Order {n}" for n in range(20, 29)}
    outside = sum(b.outside_window for b in batches)
    quarantined = sum(len(b.problems) for b in batches)
    # Every message the folder lists is accounted for.
    assert len(read) + quarantined + outside == len(inbox.messages) == 34
    assert outside == 5


def test_courier_without_uidnext_keeps_the_backfill_window(mailbox: tuple[StandinMailbox, ImapStandin]) -> None:
    box, server = mailbox
    box.quirks = Quirks(greeting="Courier-IMAP ready. Copyright 1998-2018 Double Precision, Inc.", send_uidnext=False)
    inbox = box.folders["INBOX"]
    for n in range(3):
        inbox.append(message(n, date_header=RECENT), RECENT)
    old = utc(2025, 10, 27)  # 400 days before TODAY, but with the highest UID (moved in later)
    inbox.append(message(3, date_header=old), old)
    archive = box.folder("INBOX.Archive")
    very_old = utc(2025, 7, 19)
    for n in range(10, 15):
        archive.append(message(n, date_header=very_old), very_old)
    batches = read_all(server, include=("INBOX.Archive",))
    assert sorted(r.subject for r in records(batches)) == ["Order 0", "Order 1", "Order 2"]
    assert sum(b.outside_window for b in batches) == 6
    # And the next pass, from the committed cursors, reads nothing old either.
    cursors = {b.folder: b.cursor for b in batches if b.cursor}
    known = {r.key: r.version for r in records(batches)}
    inbox.append(message(4, date_header=RECENT), RECENT)
    again = read_all(server, SourceState(cursors, known), include=("INBOX.Archive",))
    assert [r.subject for r in records(again)] == ["Order 4"]


def test_cyrus_preview_nil_falls_back_to_the_text_and_stops_asking(
    mailbox: tuple[StandinMailbox, ImapStandin],
) -> None:
    box, server = mailbox
    box.quirks = Quirks(capabilities=("IMAP4rev1", "PREVIEW", "IDLE"), preview_nil=True)
    inbox = box.folders["INBOX"]
    for n in range(25):
        inbox.append(message(n, date_header=RECENT, body=f"Angebot Nummer {n} anbei."), RECENT)
    read = records(read_all(server))
    assert len(read) == 25
    assert all(r.snippet.startswith("Angebot Nummer") for r in read), [r.snippet for r in read][:3]
    fetches = [c for c in box.commands if c.startswith("UID FETCH") and "HEADER.FIELDS" in c]
    # The first batch asked for PREVIEW, got NIL for all and the session stopped asking.
    assert "PREVIEW" in fetches[0]
    assert not any("PREVIEW" in c for c in fetches[2:])


def test_cyrus_known_from_its_greeting_is_never_asked_for_preview(
    mailbox: tuple[StandinMailbox, ImapStandin],
) -> None:
    box, server = mailbox
    box.quirks = Quirks(
        greeting="mail.example Cyrus IMAP 3.6.1-Debian server ready",
        capabilities=("IMAP4rev1", "PREVIEW"),
        preview_nil=True,
    )
    box.folders["INBOX"].append(message(1, date_header=RECENT, body="Terminbestätigung"), RECENT)
    read = records(read_all(server))
    assert read[0].snippet == "Terminbestätigung" or read[0].snippet.startswith("Terminbest")
    assert not any("PREVIEW" in c for c in box.commands if c.startswith("UID FETCH"))


def test_a_server_whose_preview_works_is_still_asked(mailbox: tuple[StandinMailbox, ImapStandin]) -> None:
    box, server = mailbox
    box.quirks = Quirks(capabilities=("IMAP4rev1", "PREVIEW"))
    for n in range(5):
        box.folders["INBOX"].append(message(n, date_header=RECENT), RECENT)
    read = records(read_all(server))
    assert all(r.snippet.startswith("Hello, about order") for r in read)
    assert all("PREVIEW" in c for c in box.commands if c.startswith("UID FETCH") and "HEADER" in c)


def test_cyrus_lowercase_sent_flag_on_a_renamed_folder(mailbox: tuple[StandinMailbox, ImapStandin]) -> None:
    box, server = mailbox
    box.folder("Postausgang Kopien", flags=("\\HasNoChildren", "\\sent"))
    box.folders["Postausgang Kopien"].append(message(7, date_header=RECENT), RECENT)
    read = records(read_all(server))
    assert [r.folder for r in read] == ["Postausgang Kopien"]


def test_quirk_table_recognises_each_server_by_its_greeting() -> None:
    seen = {
        b"* OK [CAPABILITY IMAP4rev1] Dovecot (Debian) ready.": "Dovecot",
        b"* OK [CAPABILITY IMAP4rev1] host Cyrus IMAP 3.6.1-Debian-3.6.1-4 server ready": "Cyrus IMAP",
        b"* OK [CAPABILITY IMAP4rev1] Courier-IMAP ready. Copyright 1998-2018 Double Precision, Inc.": "Courier IMAP",
        b"* OK The Microsoft Exchange IMAP4 service is ready.": "Microsoft Exchange",
        b"* OK Gimap ready for requests from 10.0.0.1": "Gmail",
    }
    for greeting, name in seen.items():
        assert identify(greeting).name == name
    assert identify(b"* OK IMAP4rev1 server ready") is GENERIC
    assert identify(None) is GENERIC
    assert len({q.name for _p, q in KNOWN_SERVERS}) == len(KNOWN_SERVERS)


def test_a_message_the_server_lists_but_returns_nothing_for_is_quarantined(
    mailbox: tuple[StandinMailbox, ImapStandin], monkeypatch: pytest.MonkeyPatch
) -> None:
    box, server = mailbox
    for n in range(3):
        box.folders["INBOX"].append(message(n, date_header=RECENT), RECENT)
    from support.servers import imap_standin

    original = imap_standin._Handler._fetch

    def fetch_drops_uid_2(self, folder, args):  # type: ignore[no-untyped-def]
        if "HEADER" in args:
            kept = [m for m in folder.messages]
            folder.messages = [m for m in kept if m.uid != 2]
            try:
                return original(self, folder, args)
            finally:
                folder.messages = kept
        return original(self, folder, args)

    monkeypatch.setattr(imap_standin._Handler, "_fetch", fetch_drops_uid_2)
    batches = read_all(server)
    assert len(records(batches)) == 2
    problems = [p for b in batches for p in b.problems]
    assert [p.key for p in problems] == ["INBOX/1/2"]
    assert "returned nothing" in problems[0].reason


def _watch_until(box: StandinMailbox, server: ImapStandin, appends: int, poll: float) -> tuple[list[str | None], int]:
    """Run an IDLE watcher while ``appends`` messages arrive one after another."""
    box.quirks = Quirks(
        greeting="Courier-IMAP ready. Copyright 1998-2018 Double Precision, Inc.",
        send_uidnext=False,
        idle_poll_seconds=poll,
    )
    notices: list[str | None] = []
    woken = threading.Event()
    count = 0

    def on_change() -> None:
        woken.set()

    watcher = ImapIdleWatcher(connector(server), on_change=on_change, on_notice=notices.append, slow_seconds=1.5)
    stop = threading.Event()
    thread = threading.Thread(target=watcher.run, args=(stop,), daemon=True)
    thread.start()
    try:
        for n in range(appends):
            wait_for(watcher.idling.is_set, timeout=20, what="the watcher in IDLE")
            woken.clear()
            with box.lock:
                box.folders["INBOX"].append(message(100 + n, date_header=RECENT), datetime.now(timezone.utc))
            assert woken.wait(timeout=poll + 10), "IDLE never told of the new message"
            count += 1
            # The watcher reads INTERNALDATE after waking; wait for that FETCH to be answered.
            wait_for(lambda done=count: len(watcher.lags) >= done, timeout=10, what="the delay measured")
    finally:
        stop.set()
        thread.join(timeout=15)
    return notices, count


def test_courier_idle_that_polls_is_reported_with_its_setting(mailbox: tuple[StandinMailbox, ImapStandin]) -> None:
    box, server = mailbox
    notices, woken = _watch_until(box, server, appends=3, poll=3.0)
    assert woken == 3
    assert len(notices) == 1 and notices[0] is not None
    assert "IDLE notifications arrive about" in notices[0] and "IMAP_ENHANCEDIDLE=1" in notices[0]


def test_a_pushing_server_gets_no_idle_notice(mailbox: tuple[StandinMailbox, ImapStandin]) -> None:
    box, server = mailbox
    notices, woken = _watch_until(box, server, appends=3, poll=0.0)
    assert woken == 3 and notices == []
