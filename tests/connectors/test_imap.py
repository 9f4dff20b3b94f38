"""The IMAP connector against a real Dovecot: backfill, UIDVALIDITY, restarts, crashes, write-back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa

from support.helpers import make_message, run_syncd, wait_for, write_config
from syncd.connectors.imap.connector import ImapAccount, ImapConnector
from syncd.model.records import ReadOptions, SourceState
from syncd.outputs.labels import keyword_for

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def imap_source(dovecot, name: str, user: str, password_file: Path, **extra: object) -> str:  # type: ignore[no-untyped-def]
    password_file.write_text(dovecot.users[user])
    os.chmod(password_file, 0o600)
    lines = [
        f'name = "{name}"',
        'kind = "imap"',
        f'host = "{dovecot.host}"',
        f"port = {dovecot.port}",
        'tls = "none"',
        f'username = "{user}"',
        f'owner = "{user}"',
        "idle = false",
        f'password_secret = {{ file = "{password_file}" }}',
    ]
    lines += [f"{k} = {json.dumps(v)}" for k, v in extra.items()]
    return "[[sources]]\n" + "\n".join(lines) + "\n"


def config_text(*sources: str, batch_size: int = 50, interval: int = 3600) -> str:
    return (
        f'[service]\nstate_dir = "state"\nbatch_size = {batch_size}\ninterval_seconds = {interval}\n'
        f'[matching]\ninternal_domains = ["ourco.example"]\n[timeline]\npath = "timeline.xlsx"\n' + "".join(sources)
    )


def inbound(n: int, user: str, days_ago: float = 1.0) -> bytes:
    return make_message(
        n,
        sender=f"buyer{n % 7}@customer{n % 5}.example",
        to=user,
        msgid=f"in{n}.{user}",
        when=NOW - timedelta(days=days_ago, minutes=n),
    )


def outbound(n: int, user: str, days_ago: float = 1.0) -> bytes:
    return make_message(
        n,
        sender=user,
        to=f"buyer{n % 7}@customer{n % 5}.example",
        msgid=f"out{n}.{user}",
        when=NOW - timedelta(days=days_ago, minutes=n),
    )


def activities(root: Path) -> list[tuple[str, str]]:
    engine = sa.create_engine(f"sqlite:///{root / 'state' / 'syncd.db'}")
    try:
        with engine.connect() as c:
            return sorted(
                c.execute(sa.text("select message_id, direction from activities where gone_at is null")).all()
            )
    except sa.exc.OperationalError:
        return []
    finally:
        engine.dispose()


def occurrence_count(root: Path) -> int:
    engine = sa.create_engine(f"sqlite:///{root / 'state' / 'syncd.db'}")
    try:
        with engine.connect() as c:
            return c.execute(sa.text("select count(*) from occurrences")).scalar_one()
    except sa.exc.OperationalError:
        return 0
    finally:
        engine.dispose()


def test_backfill_reads_inbox_and_sent_with_direction_and_skips_old_mail(dovecot, tmp_path: Path) -> None:
    user, _ = dovecot.new_user("backfill")
    client = dovecot.client(user)
    for n in range(6):
        client.append("INBOX", inbound(n, user), msg_time=NOW - timedelta(days=1, minutes=n))
    for n in range(4):
        client.append("Sent", outbound(n, user), msg_time=NOW - timedelta(days=1, minutes=n))
    client.append("INBOX", inbound(99, user, days_ago=400), msg_time=NOW - timedelta(days=400))  # outside the window
    client.append("Trash", inbound(98, user), msg_time=NOW)  # excluded folder
    client.logout()
    config = write_config(tmp_path / "syncd.toml", config_text(imap_source(dovecot, "mail", user, tmp_path / "pw")))
    result = run_syncd("sync", "--once", "-c", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    expected = sorted(
        [(f"in{n}.{user}", "inbound") for n in range(6)] + [(f"out{n}.{user}", "outbound") for n in range(4)]
    )
    assert activities(tmp_path) == expected
    again = run_syncd("sync", "--once", "-c", str(config))
    assert "new=0 updated=0 removed=0" in again.stdout
    assert activities(tmp_path) == expected


def test_fetch_never_marks_mail_seen_and_write_back_adds_only_keywords(dovecot, tmp_path: Path) -> None:
    user, _ = dovecot.new_user("writeback")
    client = dovecot.client(user)
    for n in range(4):
        client.append("INBOX", inbound(n, user), flags=[b"\\Seen"] if n % 2 else [], msg_time=NOW)
    client.logout()
    workbook = tmp_path / "customers.xlsx"
    import openpyxl

    book = openpyxl.Workbook()
    book.active.append(["Company", "Website"])
    for n in range(5):
        book.active.append([f"Customer Nº{n} d.o.o.", f"customer{n}.example"])
    book.save(workbook)
    customers = (
        '[[sources]]\nname = "customers"\nkind = "excel_customers"\npath = "customers.xlsx"\n'
        '[sources.columns]\ncompany = "Company"\ndomain = "Website"\n'
    )
    config = write_config(
        tmp_path / "syncd.toml",
        config_text(customers, imap_source(dovecot, "mail", user, tmp_path / "pw", write_keywords=True)),
    )
    result = run_syncd("sync", "--once", "-c", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    checker = dovecot.client(user)
    checker.select_folder("INBOX", readonly=True)
    flags = checker.get_flags(checker.search(["ALL"]))
    checker.logout()
    for uid, message_flags in flags.items():
        n = uid - 1
        assert (b"\\Seen" in message_flags) == bool(n % 2), "\\Seen must stay exactly as the user left it"
        assert keyword_for(f"Customer Nº{n % 5} d.o.o.", "$crm_").encode() in message_flags
        assert [f for f in message_flags if f.startswith(b"$crm_")] == [
            b"$crm_customer_no" + str(n % 5).encode() + b"_d_o_o"
        ]
    # Idempotent: a second pass writes nothing more.
    assert "new=0" in run_syncd("sync", "--once", "-c", str(config)).stdout
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'state' / 'syncd.db'}")
    with engine.connect() as c:
        assert c.execute(sa.text("select count(*) from occurrences where labels_written is not null")).scalar_one() == 4


def test_forget_takes_back_the_keywords_syncd_wrote_and_leaves_the_users(dovecot, tmp_path: Path) -> None:
    """Erasure reaches the mailbox: the erased person's keyword comes off their own mail
    (deleted from the store) and off a mail shared with another customer (kept for them),
    while the other customer's keyword and the user's own flags stay."""
    import openpyxl

    user, _ = dovecot.new_user("forgetkw")
    client = dovecot.client(user)
    own = make_message(1, sender="Ana Novak <ana@novak.example>", to=user, msgid=f"own.{user}", when=NOW)
    shared = make_message(
        2, sender="ana@novak.example", to=user, cc="marko@babic.example", msgid=f"shared.{user}", when=NOW
    )
    client.append("INBOX", own, flags=[b"\\Flagged", b"$MyOwn"], msg_time=NOW)
    client.append("INBOX", shared, msg_time=NOW)
    client.logout()
    book = openpyxl.Workbook()
    book.active.append(["Contact", "E-mail"])
    book.active.append(["Ana Novak", "ana@novak.example"])
    book.active.append(["Marko Babić", "marko@babic.example"])
    book.save(tmp_path / "customers.xlsx")
    customers = (
        '[[sources]]\nname = "customers"\nkind = "excel_customers"\npath = "customers.xlsx"\n'
        '[sources.columns]\nperson = "Contact"\nemail = "E-mail"\n'
    )
    source = imap_source(dovecot, "mail", user, tmp_path / "pw", write_keywords=True)
    config = write_config(tmp_path / "syncd.toml", config_text(customers, source))
    assert run_syncd("sync", "--once", "-c", str(config)).returncode == 0

    def keywords() -> dict[bytes, set[bytes]]:
        checker = dovecot.client(user)
        checker.select_folder("INBOX", readonly=True)
        found = checker.fetch(checker.search(["ALL"]), ["FLAGS", "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
        checker.logout()
        return {
            data[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"].split(b"<")[1].split(b"@")[0].split(b".")[0]: set(data[b"FLAGS"])
            for data in found.values()
        }

    before = keywords()
    assert b"$crm_ana_novak" in before[b"own"] and {b"$crm_ana_novak", b"$crm_marko_babic"} <= before[b"shared"]
    forget = run_syncd("forget", "ana@novak.example", "--yes", "-c", str(config))
    assert forget.returncode == 0, forget.stderr
    assert run_syncd("sync", "--once", "-c", str(config)).returncode == 0
    after = keywords()
    assert after[b"own"] == {b"\\Flagged", b"$MyOwn"}
    assert b"$crm_ana_novak" not in after[b"shared"] and b"$crm_marko_babic" in after[b"shared"]
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'state' / 'syncd.db'}")
    with engine.connect() as c:
        assert c.execute(sa.text("select count(*) from label_cleanups")).scalar_one() == 0
        written = [r[0] for r in c.execute(sa.text("select labels_written from occurrences"))]
    engine.dispose()
    assert not any("ana" in (w or "") for w in written)


def test_recreated_folder_with_new_uidvalidity_does_not_duplicate(dovecot, tmp_path: Path) -> None:
    user, _ = dovecot.new_user("uidvalidity")
    client = dovecot.client(user)
    client.create_folder("Projects")
    messages = [inbound(n, user) for n in range(5)]
    for raw in messages:
        client.append("Projects", raw, msg_time=NOW)
    config = write_config(
        tmp_path / "syncd.toml",
        config_text(imap_source(dovecot, "mail", user, tmp_path / "pw", folders_include=["Projects"])),
    )
    assert run_syncd("sync", "--once", "-c", str(config)).returncode == 0
    before = activities(tmp_path)
    assert len(before) == 5
    old_validity = client.select_folder("Projects")[b"UIDVALIDITY"]
    client.unselect_folder()
    client.delete_folder("Projects")
    client.create_folder("Projects")
    for raw in messages:
        client.append("Projects", raw, msg_time=NOW)
    assert client.select_folder("Projects")[b"UIDVALIDITY"] != old_validity
    client.logout()
    result = run_syncd("sync", "--once", "-c", str(config))
    assert result.returncode == 0 and "SUSPECT" not in result.stdout, result.stdout
    assert activities(tmp_path) == before
    assert occurrence_count(tmp_path) == 10  # five live, five of the old UIDVALIDITY marked gone
    status = json.loads(run_syncd("status", "--json", "-c", str(config)).stdout)
    assert status["sources"][0]["ingested"] == 5 and status["activities"] == 5


def test_wrong_password_is_reported_and_the_other_mailbox_syncs(dovecot, tmp_path: Path) -> None:
    good, _ = dovecot.new_user("goodpw")
    bad, _ = dovecot.new_user("badpw")
    client = dovecot.client(good)
    client.append("INBOX", inbound(1, good), msg_time=NOW)
    client.logout()
    wrong = imap_source(dovecot, "bad-mail", bad, tmp_path / "pw-bad")
    (tmp_path / "pw-bad").write_text("not-the-password")
    config = write_config(
        tmp_path / "syncd.toml", config_text(imap_source(dovecot, "good-mail", good, tmp_path / "pw-good"), wrong)
    )
    result = run_syncd("sync", "--once", "-c", str(config))
    assert result.returncode == 1
    status = json.loads(run_syncd("status", "--json", "-c", str(config)).stdout)
    by_name = {s["name"]: s for s in status["sources"]}
    assert "login as badpw@ourco.example refused" in by_name["bad-mail"]["error"]
    assert "AUTHENTICATIONFAILED" in by_name["bad-mail"]["error"] or "failed" in by_name["bad-mail"]["error"]
    # Not hammered: the retry waits at least ten minutes.
    retry = datetime.fromisoformat(by_name["bad-mail"]["next_retry"])
    assert retry - datetime.now(timezone.utc) > timedelta(minutes=7)
    assert by_name["good-mail"]["error"] is None and by_name["good-mail"]["ingested"] == 1
    assert "not-the-password" not in result.stdout + result.stderr


def test_server_restart_during_backfill_resumes_to_the_exact_set(dovecot, tmp_path: Path, caplog) -> None:
    user, _ = dovecot.new_user("restart")
    total = 1500
    dovecot.deliver_files(user, "INBOX", {f"{1700000000 + n}.M{n}.restart": inbound(n, user) for n in range(total)})
    account = ImapAccount(
        host=dovecot.host,
        port=dovecot.port,
        tls="none",
        verify_tls=True,
        username=user,
        owner=user,
        password=lambda: dovecot.users[user],
        retry_max_wait=1,
    )
    connector = ImapConnector("restart", ReadOptions(batch_size=100), account)
    known: dict[str, str] = {}
    cursors: dict[str, str] = {}
    restarted = False
    for batch in connector.read(SourceState({}, {})):
        known.update({r.key: "" for r in batch.records})
        if batch.cursor:
            cursors[batch.folder] = batch.cursor
        if len(known) >= 300 and not restarted:
            dovecot.restart()  # drops every connection, as a real restart does
            restarted = True
    connector.close()
    assert restarted
    assert "transient error, reconnecting" in caplog.text
    assert len(known) == total
    message_ids = set()
    again = ImapConnector("restart", ReadOptions(batch_size=100), account)
    for batch in again.read(SourceState(cursors, known)):
        message_ids.update(r.message_id for r in batch.records)
    again.close()
    assert message_ids == set()  # nothing left to read, nothing read twice


def test_sigkill_during_backfill_then_rerun_gives_exactly_the_expected_set(dovecot, tmp_path: Path) -> None:
    user, _ = dovecot.new_user("sigkill")
    total = 2000
    dovecot.deliver_files(user, "INBOX", {f"{1700000000 + n}.M{n}.kill": inbound(n, user) for n in range(total)})
    config = write_config(
        tmp_path / "syncd.toml", config_text(imap_source(dovecot, "mail", user, tmp_path / "pw"), batch_size=25)
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "syncd", "sync", "--once", "-c", str(config)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: occurrence_count(tmp_path) >= 200, timeout=120, what="backfill under way")
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert occurrence_count(tmp_path) < total, "the backfill finished before it could be killed"
    result = run_syncd("sync", "--once", "-c", str(config), timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    got = activities(tmp_path)
    assert len(got) == total and {m for m, _d in got} == {f"in{n}.{user}" for n in range(total)}
    assert occurrence_count(tmp_path) == total


def test_new_mail_reaches_the_timeline_workbook_within_ten_seconds(dovecot, tmp_path: Path) -> None:
    import openpyxl

    user, _ = dovecot.new_user("live")
    client = dovecot.client(user)
    client.append("INBOX", inbound(1, user), msg_time=NOW)
    source = imap_source(dovecot, "mail", user, tmp_path / "pw").replace("idle = false", "idle = true")
    config = write_config(tmp_path / "syncd.toml", config_text(source, interval=3600))
    process = subprocess.Popen(
        [sys.executable, "-m", "syncd", "run", "-c", str(config)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "log", "w"),  # noqa: SIM115 - the child writes it until it is stopped
    )

    def subjects() -> list[str]:
        try:
            book = openpyxl.load_workbook(tmp_path / "timeline.xlsx", read_only=True)
        except Exception:  # noqa: BLE001 - not written yet
            return []
        try:
            return [row[4] for row in book["Timeline"].iter_rows(min_row=2, values_only=True)]
        finally:
            book.close()

    try:
        wait_for(lambda: "Message 1" in subjects(), timeout=60, what="first pass")
        wait_for(lambda: "idle" in (tmp_path / "log").read_text(), timeout=30, what="IDLE watcher started")
        client.append(
            "INBOX",
            make_message(2, sender="new@customer1.example", to=user, subject="Fresh order", msgid=f"live2.{user}"),
            msg_time=NOW,
        )
        wait_for(lambda: "Fresh order" in subjects(), timeout=10, interval=0.1, what="new mail in the workbook")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        client.logout()
    assert process.returncode == 0, (tmp_path / "log").read_text()[-2000:]
