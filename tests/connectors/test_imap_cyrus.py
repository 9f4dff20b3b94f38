"""The IMAP connector against a real Cyrus IMAP 3.6 (unpacked by scripts/cyrus-setup).

Cyrus differs from Dovecot where it matters here: its Sent folder is flagged ``\\sent`` in
lower case, it advertises PREVIEW and answers ``PREVIEW NIL``, it keeps Date-less mail in
date searches, and its user names carry no domain. Everything else must behave the same.
"""

from __future__ import annotations

import os
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import openpyxl
import sqlalchemy as sa

from support.helpers import make_message, run_syncd, wait_for, write_config
from syncd.connectors.imap.connector import ImapAccount, ImapConnector
from syncd.connectors.imap.idle import ImapIdleWatcher
from syncd.model.records import ReadOptions

NOW = datetime.now(timezone.utc).replace(microsecond=0)
ADDRESS = "{user}@ourco.example"


def source(cyrus, user: str, password_file: Path, **extra: str) -> str:  # type: ignore[no-untyped-def]
    password_file.write_text(cyrus.users[user])
    os.chmod(password_file, 0o600)
    lines = [
        'name = "mail"',
        'kind = "imap"',
        f'host = "{cyrus.host}"',
        f"port = {cyrus.port}",
        'tls = "none"',
        f'username = "{user}"',
        f'owner = "{ADDRESS.format(user=user)}"',
        "idle = false",
        f'password_secret = {{ file = "{password_file}" }}',
    ]
    lines += [f"{k} = {v}" for k, v in extra.items()]
    return "[[sources]]\n" + "\n".join(lines) + "\n"


def customers_workbook(path: Path) -> str:
    book = openpyxl.Workbook()
    book.active.append(["Person", "Email", "Company", "Website"])
    book.active.append(["Łukasz Nowak", "lukasz@nowak.example", "Nowak Sp. z o.o.", "nowak.example"])
    book.save(path)
    return (
        '[[sources]]\nname = "customers"\nkind = "excel_customers"\npath = "customers.xlsx"\n'
        '[sources.columns]\nperson = "Person"\nemail = "Email"\ncompany = "Company"\ndomain = "Website"\n'
    )


def rows(root: Path, query: str) -> list[tuple]:  # type: ignore[type-arg]
    engine = sa.create_engine(f"sqlite:///{root / 'state' / 'syncd.db'}")
    try:
        with engine.connect() as c:
            return [tuple(r) for r in c.execute(sa.text(query)).all()]
    finally:
        engine.dispose()


def test_cyrus_inbox_and_lowercase_sent_dateless_mail_snippets_and_keywords(cyrus, tmp_path: Path) -> None:
    user, _ = cyrus.new_user("backfill")
    me = ADDRESS.format(user=user)
    client = cyrus.client(user)
    listing = {name: flags for flags, _d, name in client.list_folders()}
    assert b"\\sent" in listing["Sent"], listing  # what this test is about: lower case, as Cyrus sends it
    for n in range(5):
        client.append(
            "INBOX",
            make_message(n, sender="lukasz@nowak.example", to=me, msgid=f"in{n}", when=NOW - timedelta(days=1)),
            msg_time=NOW - timedelta(days=1),
        )
    client.append(
        "INBOX",
        b"From: Lukasz <lukasz@nowak.example>\r\nTo: " + me.encode() + b"\r\nSubject: no date header\r\n"
        b"Message-ID: <dateless@nowak.example>\r\n\r\nZamowienie w zalaczniku.\r\n",
        msg_time=NOW - timedelta(hours=3),
    )
    for n in range(3):
        client.append(
            "Sent",
            make_message(10 + n, sender=me, to="lukasz@nowak.example", msgid=f"out{n}", when=NOW - timedelta(hours=n)),
            msg_time=NOW - timedelta(hours=n),
        )
    client.append(
        "INBOX",
        make_message(99, sender="lukasz@nowak.example", to=me, msgid="old", when=NOW - timedelta(days=400)),
        msg_time=NOW - timedelta(days=400),
    )
    client.logout()
    config = write_config(
        tmp_path / "syncd.toml",
        '[service]\nstate_dir = "state"\n[matching]\ninternal_domains = ["ourco.example"]\n'
        '[timeline]\npath = "timeline.xlsx"\n'
        + customers_workbook(tmp_path / "customers.xlsx")
        + source(cyrus, user, tmp_path / "pw", write_keywords="true"),
    )
    result = run_syncd("sync", "--once", "-c", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "before-window=1" in result.stdout
    stored = rows(tmp_path, "select message_id, direction, snippet from activities where gone_at is null")
    ids = sorted(r[0] for r in stored)
    assert ids == sorted([f"in{n}" for n in range(5)] + [f"out{n}" for n in range(3)] + ["dateless@nowak.example"])
    assert all(r[2] for r in stored), "Cyrus answers PREVIEW NIL: snippets come from the text"
    assert sorted(r[1] for r in stored).count("outbound") == 3
    # Keywords written back, transliterated: Ł is L, not dropped.
    checker = cyrus.client(user)
    checker.select_folder("INBOX", readonly=True)
    flags = checker.get_flags(checker.search(["ALL"]))
    checker.logout()
    labelled = [f for message_flags in flags.values() for f in message_flags if f.startswith(b"$crm_")]
    assert b"$crm_lukasz_nowak" in labelled and b"$crm_ukasz_nowak" not in labelled
    again = run_syncd("sync", "--once", "-c", str(config))
    assert "new=0 updated=0 removed=0" in again.stdout, again.stdout


def test_cyrus_idle_wakes_promptly_and_reports_nothing(cyrus) -> None:  # type: ignore[no-untyped-def]
    user, password = cyrus.new_user("live")
    account = ImapAccount(
        host=cyrus.host,
        port=cyrus.port,
        tls="none",
        verify_tls=True,
        username=user,
        owner=ADDRESS.format(user=user),
        password=lambda: password,
    )
    woken = threading.Event()
    notices: list[str | None] = []
    watcher = ImapIdleWatcher(
        ImapConnector("live", ReadOptions(), account), on_change=woken.set, on_notice=notices.append, slow_seconds=5
    )
    stop = threading.Event()
    thread = threading.Thread(target=watcher.run, args=(stop,), daemon=True)
    thread.start()
    try:
        sender = cyrus.client(user)
        for n in range(3):
            wait_for(watcher.idling.is_set, timeout=20, what="the watcher in IDLE")
            woken.clear()
            now = datetime.now(timezone.utc)
            sender.append("INBOX", make_message(200 + n, to=ADDRESS.format(user=user)), msg_time=now)
            assert woken.wait(timeout=20)
            wait_for(lambda n=n: len(watcher.lags) >= n + 1, timeout=10, what="the delay measured")
        sender.logout()
    finally:
        stop.set()
        thread.join(timeout=15)
    assert notices == []
    assert watcher.lags and max(watcher.lags) < 5
