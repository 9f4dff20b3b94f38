"""The EWS connector through the real pipeline, against the EWS TEST DOUBLE (tests/support/doubles/ews_double.py).

exchangelib speaks real SOAP to the double (its version probe included); the double
records what was asked, so these tests check our requests and our handling.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from support.doubles.ews_double import EwsDouble
from support.exchange import ALICE, BOB, NOW, config, iso, live_activities, rows, sync, with_a_person
from support.helpers import run_syncd, write_config

PASSWORD = "Ews-Pw-LEAKCHECK-4d2e"


def ews_source(double: EwsDouble, tmp_path: Path, name: str, mailbox: str, **extra: object) -> str:
    secret = tmp_path / "ews-password"
    secret.write_text(PASSWORD)
    os.chmod(secret, 0o600)
    double.mailbox(mailbox)
    lines = [
        f'name = "{name}"',
        'kind = "ews"',
        f'service_endpoint = "{double.url}"',
        'username = "svc-syncd"',
        'auth_type = "basic"',
        f'password_secret = {{ file = "{secret}" }}',
        f'owner = "{mailbox}"',
    ]
    lines += [f"{k} = {json.dumps(v)}" for k, v in extra.items()]
    return "[[sources]]\n" + "\n".join(lines) + "\n"


def seed(double: EwsDouble, mailbox: str = ALICE) -> dict[str, dict]:
    return {
        "offer": double.add_message(
            mailbox,
            "inbox",
            sender="ivana@adriaticfoods.hr",
            to=[mailbox],
            subject="Offer for olive oil",
            when=iso(NOW - timedelta(days=2)),
            message_id="offer@adriaticfoods.hr",
            categories=["Follow up"],
        ),
        "reply": double.add_message(
            mailbox,
            "sentitems",
            sender=mailbox,
            to=["ivana@adriaticfoods.hr"],
            subject="RE: Offer for olive oil",
            when=iso(NOW - timedelta(days=1)),
            message_id="reply@ourco.example",
        ),
        "private": double.add_message(
            mailbox,
            "inbox",
            sender="ivana@adriaticfoods.hr",
            to=[mailbox],
            subject="Family dinner",
            when=iso(NOW - timedelta(days=1)),
            message_id="private@adriaticfoods.hr",
            sensitivity="Private",
        ),
        "old": double.add_message(
            mailbox,
            "inbox",
            sender="ivana@adriaticfoods.hr",
            to=[mailbox],
            subject="Too old",
            when=iso(NOW - timedelta(days=800)),
            message_id="old@x.hr",
        ),
        "meeting": double.add_event(
            mailbox,
            subject="Tasting",
            start=iso(NOW + timedelta(days=3)),
            end=iso(NOW + timedelta(days=3, hours=1)),
            organizer="ivana@adriaticfoods.hr",
            attendees=[(mailbox, "Accept"), ("marko@adriaticfoods.hr", "Decline")],
        ),
    }


def test_first_and_incremental_sync_with_sync_states(ews_double: EwsDouble, tmp_path: Path) -> None:
    items = seed(ews_double)
    path = config(tmp_path, ews_source(ews_double, tmp_path, "alice", ALICE))
    sync(path)
    found = live_activities(tmp_path)
    assert found["offer@adriaticfoods.hr"] == ("email", "Offer for olive oil")
    assert found["reply@ourco.example"] == ("email", "RE: Offer for olive oil")
    assert "private@adriaticfoods.hr" not in found and "old@x.hr" not in found
    meeting = f"ews-event:{items['meeting']['UID']}"
    assert found[meeting] == ("meeting", "Tasting")
    participants = json.loads(
        rows(tmp_path, f"select participants from activities where message_id = '{meeting}'")[0][0]
    )
    assert {p["email"] for p in participants} == {"ivana@adriaticfoods.hr", ALICE}  # the decliner is not there
    # No version probe (the API version is pinned to Exchange2013); every request authenticated;
    # only needed fields asked.
    assert "ConvertId" not in {r.operation for r in ews_double.requests}
    assert 'Version="Exchange2013"' in ews_double.requests[0].xml
    assert all(r.headers.get("Authorization", "").startswith("Basic ") for r in ews_double.requests)
    syncs = ews_double.recorded("SyncFolderItems")
    assert syncs and all(r.sync_state is None for r in syncs) and "<m:MaxChangesReturned>" in syncs[0].xml
    get = next(r for r in ews_double.recorded("GetItem") if "message:InternetMessageId" in r.fields)
    assert "item:Body" not in get.fields and "item:MimeContent" not in get.fields
    # Incremental: the stored sync states are sent back, and only changes come.
    ews_double.clear_requests()
    ews_double.add_message(
        ALICE,
        "inbox",
        sender="ivana@adriaticfoods.hr",
        to=[ALICE],
        subject="Order 77",
        when=iso(NOW),
        message_id="order77@adriaticfoods.hr",
    )
    ews_double.delete(ALICE, "sentitems", items["reply"]["id"])
    ews_double.change(ALICE, "calendar", items["meeting"]["id"], IsCancelled=True)
    output = sync(path)
    assert all(r.sync_state for r in ews_double.recorded("SyncFolderItems"))
    found = live_activities(tmp_path)
    assert "order77@adriaticfoods.hr" in found and "reply@ourco.example" not in found
    hints = json.loads(rows(tmp_path, f"select hints from activities where message_id = '{meeting}'")[0][0])
    assert hints["status"] == "cancelled"
    assert "new=1 updated=1 removed=1" in output


def test_a_rejected_sync_state_resyncs_the_folder_without_duplicates(ews_double: EwsDouble, tmp_path: Path) -> None:
    items = seed(ews_double)
    for n in range(7):
        ews_double.add_message(
            ALICE,
            "inbox",
            sender="ivana@adriaticfoods.hr",
            to=[ALICE],
            subject=f"Note {n}",
            when=iso(NOW - timedelta(hours=n)),
            message_id=f"note{n}@adriaticfoods.hr",
        )
    path = config(tmp_path, ews_source(ews_double, tmp_path, "alice", ALICE))
    path.write_text(path.read_text().replace('state_dir = "state"', 'state_dir = "state"\nbatch_size = 3'))
    sync(path)
    before = rows(tmp_path, "select count(*) from activities")[0][0]
    ews_double.expire(ALICE, "inbox")
    ews_double.delete(ALICE, "inbox", items["offer"]["id"])
    output = sync(path)
    assert "sync state rejected" in output
    assert rows(tmp_path, "select count(*) from activities")[0][0] == before
    found = live_activities(tmp_path)
    assert "offer@adriaticfoods.hr" not in found and all(f"note{n}@adriaticfoods.hr" in found for n in range(7))


def test_write_back_categories_and_customer_contacts_then_nothing_when_unchanged(
    ews_double: EwsDouble, tmp_path: Path
) -> None:
    items = seed(ews_double)
    path = config(
        tmp_path, ews_source(ews_double, tmp_path, "alice", ALICE, write_categories=True, write_contacts=True)
    )
    sync(path)
    inbox = ews_double.folder(ALICE, "inbox")
    assert inbox.items[items["offer"]["id"]]["Categories"] == ["Follow up", "Adriatic Foods d.o.o."]
    customers = ews_double.folder(ALICE, "Customers")
    contact = next(iter(customers.items.values()))
    assert contact["DisplayName"] == "Adriatic Foods d.o.o." and "syncd" in contact["Categories"]
    assert "Offer for olive oil" in contact["Body"] and "Tasting" in contact["Body"]
    ews_double.clear_requests()
    sync(path)
    assert ews_double.recorded("UpdateItem") == [] and ews_double.recorded("CreateItem") == []
    ews_double.add_message(
        ALICE,
        "inbox",
        sender="ivana@adriaticfoods.hr",
        to=[ALICE],
        subject="Invoice 12",
        when=iso(NOW),
        message_id="inv12@adriaticfoods.hr",
    )
    sync(path)
    assert "Invoice 12" in next(iter(customers.items.values()))["Body"] and len(customers.items) == 1


def test_denied_and_busy_mailboxes_report_errors_while_others_sync(ews_double: EwsDouble, tmp_path: Path) -> None:
    for mailbox in (ALICE, BOB, "carol@ourco.example"):
        seed(ews_double, mailbox)
    ews_double.denied.add(BOB)
    ews_double.busy.add("carol@ourco.example")
    path = config(
        tmp_path,
        ews_source(ews_double, tmp_path, "alice", ALICE),
        ews_source(ews_double, tmp_path, "bob", BOB, impersonation=True),
        ews_source(ews_double, tmp_path, "carol", "carol@ourco.example"),
    )
    sync(path, ok=False)
    status = run_syncd("status", "-c", str(path)).stdout
    line = {n: next(x for x in status.splitlines() if x.lstrip().startswith(n)) for n in ("alice", "bob", "carol")}
    assert "ERROR" in line["bob"] and "ErrorAccessDenied" in line["bob"], status
    assert "ERROR" in line["carol"] and "ErrorServerBusy" in line["carol"], status
    assert "ERROR" not in line["alice"]
    assert any(r.impersonating == BOB for r in ews_double.requests)  # ExchangeImpersonation header sent
    assert "offer@adriaticfoods.hr" in live_activities(tmp_path)
    # A wrong password is an authentication error.
    (tmp_path / "ews-password").write_text("wrong")
    sync(path, ok=False)
    status = run_syncd("status", "-c", str(path)).stdout
    assert "ERROR" in next(x for x in status.splitlines() if x.lstrip().startswith("alice"))


def test_a_contact_folder_is_a_customer_source(ews_double: EwsDouble, tmp_path: Path) -> None:
    ews_double.add_contact(ALICE, name="Petra Novak", emails=["petra@novak-trgovina.si"], company="Novak Trgovina")
    ews_double.add_message(
        ALICE,
        "inbox",
        sender="petra@novak-trgovina.si",
        to=[ALICE],
        subject="Samples",
        when=iso(NOW),
        message_id="samples@novak.si",
    )
    source = ews_source(ews_double, tmp_path, "alice", ALICE, calendar=False)
    source += (
        source.replace('name = "alice"', 'name = "alice-contacts"')
        .replace('kind = "ews"', 'kind = "ews_contacts"')
        .replace(f'owner = "{ALICE}"', f'mailbox = "{ALICE}"')
        .replace("calendar = false\n", "")
    )
    path = config(tmp_path, source)
    sync(path)
    linked = rows(
        tmp_path,
        "select c.name from links l join customers c on c.id = l.customer_id "
        "join activities a on a.id = l.activity_id where a.message_id = 'samples@novak.si'",
    )
    assert {r[0] for r in linked} == {"Petra Novak", "Novak Trgovina"}


def test_ews_pointed_at_exchange_online_warns_with_the_retirement_dates(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from syncd.config import parse_config
    from syncd.pipeline import warn_insecure

    config_text = (
        '[[sources]]\nname = "o365"\nkind = "ews"\nservice_endpoint = '
        '"https://outlook.office365.com/EWS/Exchange.asmx"\nusername = "svc"\nowner = "a@ourco.example"\n'
        'password_secret = { env = "NOPE" }\n'
        '[[sources]]\nname = "onprem"\nkind = "ews"\nservice_endpoint = '
        '"https://mail.ourco.example/EWS/Exchange.asmx"\nusername = "svc"\nowner = "b@ourco.example"\n'
        'password_secret = { env = "NOPE" }\n'
    )
    with caplog.at_level(logging.WARNING, logger="syncd.pipeline"):
        warn_insecure(parse_config(config_text, tmp_path / "syncd.toml"))
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "source=o365" in warnings[0]
    assert "1 Oct 2026" in warnings[0] and "1 Apr 2027" in warnings[0] and 'kind = "graph"' in warnings[0]


def test_the_password_never_reaches_the_logs(ews_double: EwsDouble, tmp_path: Path) -> None:
    seed(ews_double)
    path = config(tmp_path, ews_source(ews_double, tmp_path, "alice", ALICE))
    result = run_syncd("--debug", "sync", "--once", "-c", str(path))
    logs = result.stdout + result.stderr
    assert "source=alice" in logs and PASSWORD not in logs
    import base64

    assert base64.b64encode(f"svc-syncd:{PASSWORD}".encode()).decode() not in logs


def series_ics(uid: str, first: datetime, organizer: str, attendee: str) -> str:
    """A weekly series of five as Exchange gives it in MimeContent: the second occurrence
    deleted (EXDATE), the third moved two hours later (an exception VEVENT)."""

    def stamp(moment: datetime) -> str:
        return moment.strftime("%Y%m%dT%H%M%SZ")

    second, third = first + timedelta(weeks=1), first + timedelta(weeks=2)
    return "\r\n".join(
        [
            "BEGIN:VCALENDAR",
            "VERSION:2.0",
            "PRODID:Microsoft Exchange Server 2019",
            "BEGIN:VEVENT",
            f"UID:{uid}",
            f"DTSTART:{stamp(first)}",
            f"DTEND:{stamp(first + timedelta(hours=1))}",
            "RRULE:FREQ=WEEKLY;COUNT=5",
            f"EXDATE:{stamp(second)}",
            "SUMMARY:Weekly supply call",
            f"ORGANIZER:mailto:{organizer}",
            f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:{attendee}",
            f"DTSTAMP:{stamp(first)}",
            "END:VEVENT",
            "BEGIN:VEVENT",
            f"UID:{uid}",
            f"RECURRENCE-ID:{stamp(third)}",
            f"DTSTART:{stamp(third + timedelta(hours=2))}",
            f"DTEND:{stamp(third + timedelta(hours=3))}",
            "SUMMARY:Weekly supply call (moved)",
            f"ORGANIZER:mailto:{organizer}",
            f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:{attendee}",
            f"DTSTAMP:{stamp(first)}",
            "END:VEVENT",
            "END:VCALENDAR",
            "",
        ]
    )


def test_a_recurring_series_becomes_its_occurrences_and_leaves_with_its_master(
    ews_double: EwsDouble, tmp_path: Path
) -> None:
    from datetime import datetime as dt

    first = (NOW - timedelta(days=20)).replace(hour=9, minute=0, second=0)
    uid = "040000008200E00074C5B7101A82E008SERIES1"
    series = ews_double.add_event(
        ALICE,
        subject="Weekly supply call",
        start=iso(first),
        end=iso(first + timedelta(hours=1)),
        organizer="ivana@adriaticfoods.hr",
        attendees=[(ALICE, "Accept")],
        ics=series_ics(uid, first, "ivana@adriaticfoods.hr", ALICE),
    )
    path = config(tmp_path, ews_source(ews_double, tmp_path, "alice", ALICE))
    sync(path)
    found = rows(
        tmp_path,
        "select subject, occurred_at from activities where gone_at is null and kind = 'meeting' order by occurred_at",
    )
    starts = [dt.fromisoformat(str(when)).replace(tzinfo=None) for _subject, when in found]
    naive = first.replace(tzinfo=None)
    assert starts == [
        naive,
        naive + timedelta(weeks=2, hours=2),
        naive + timedelta(weeks=3),
        naive + timedelta(weeks=4),
    ]  # 5 weekly, minus the deleted one; the moved one moved
    assert [s for s, _w in found][1] == "Weekly supply call (moved)"
    mime_asked = [r for r in ews_double.recorded("GetItem") if "item:MimeContent" in r.fields]
    assert len(mime_asked) == 1  # only the series master's MIME was read
    ews_double.delete(ALICE, "calendar", series["id"])
    output = sync(path)
    assert "removed=4" in output
    assert rows(tmp_path, "select count(*) from activities where gone_at is null and kind = 'meeting'")[0][0] == 0


def test_server_busy_back_off_is_waited_for_within_the_pass(ews_double: EwsDouble, tmp_path: Path) -> None:
    """ErrorServerBusy's BackOffMilliseconds is honoured by exchangelib's retry policy: the pass goes on."""
    seed(ews_double, ALICE)
    ews_double.busy_faults[ALICE] = [1200, 800]
    path = config(tmp_path, ews_source(ews_double, tmp_path, "alice", ALICE))
    output = sync(path)
    assert "ERROR" not in run_syncd("status", "-c", str(path)).stdout, output
    assert "offer@adriaticfoods.hr" in live_activities(tmp_path)
    assert ews_double.busy_faults[ALICE] == []  # both faults were answered, then the requests went through


def test_bodies_are_asked_for_only_with_keep_bodies(ews_double: EwsDouble, tmp_path: Path) -> None:
    """Without store.keep_bodies no body is requested at all (EWS has no server preview)."""
    seed(ews_double, ALICE)
    path = config(tmp_path, ews_source(ews_double, tmp_path, "alice", ALICE))
    sync(path)
    asked = [f for r in ews_double.recorded("GetItem") for f in r.fields]
    assert "item:TextBody" not in asked
    ews_double.clear_requests()
    kept = tmp_path / "kept"
    kept.mkdir()
    text = config(kept, ews_source(ews_double, kept, "alice", ALICE)).read_text()
    path = write_config(kept / "syncd.toml", text.replace("[matching]", "[store]\nkeep_bodies = true\n[matching]"))
    sync(path)
    asked = [f for r in ews_double.recorded("GetItem") for f in r.fields]
    assert "item:TextBody" in asked
    bodies = rows(kept, "select body from activities where message_id = 'offer@adriaticfoods.hr'")
    assert bodies and bodies[0][0]


def test_forget_moves_the_contact_syncd_wrote_to_deleted_items_and_takes_back_its_category(
    ews_double: EwsDouble, tmp_path: Path
) -> None:
    """DeleteItem with DeleteType MoveToDeletedItems for syncd's own contact of the erased
    person; the category it put on their mail comes off, the user's stays."""
    items = seed(ews_double)
    path = config(
        tmp_path,
        ews_source(
            ews_double, tmp_path, "alice", ALICE, write_categories=True, write_contacts=True, category_people=True
        ),
    )
    with_a_person(tmp_path, path)
    sync(path)
    customers = ews_double.folder(ALICE, "Customers")
    assert {c["DisplayName"] for c in customers.items.values()} == {"Adriatic Foods d.o.o.", "Ivana Horvat"}
    inbox = ews_double.folder(ALICE, "inbox")
    assert "Ivana Horvat" in inbox.items[items["offer"]["id"]]["Categories"]
    assert run_syncd("forget", "ivana@adriaticfoods.hr", "--yes", "-c", str(path)).returncode == 0
    sync(path)
    assert {c["DisplayName"] for c in customers.items.values()} == {"Adriatic Foods d.o.o."}
    assert [kind for _box, _id, kind in ews_double.deleted] == ["MoveToDeletedItems"]
    assert inbox.items[items["offer"]["id"]]["Categories"] == ["Follow up"]
