"""The Graph connector through the real pipeline, against the Graph TEST DOUBLE (tests/support/doubles/graph_double.py).

Real Microsoft servers cannot run here; the double answers with the documented response
shapes and records what syncd asked, so these tests check our requests and our handling.
"""

from __future__ import annotations

import json
import os
import stat
from datetime import timedelta
from pathlib import Path

import openpyxl
import sqlalchemy as sa

from support.doubles.graph_double import GraphDouble
from support.exchange import ALICE, BOB, NOW, config, iso, live_activities, rows, sync, with_a_person
from support.helpers import run_syncd

SECRET = "Graph-Secret-LEAKCHECK-93c1"
CLIENT = "11111111-2222-3333-4444-555555555555"


def graph_source(double: GraphDouble, tmp_path: Path, name: str, mailbox: str, **extra: object) -> str:
    secret = tmp_path / "client-secret"
    secret.write_text(SECRET)
    os.chmod(secret, 0o600)
    double.clients[CLIENT] = SECRET
    double.mailbox(mailbox)
    lines = [
        f'name = "{name}"',
        'kind = "graph"',
        f'tenant_id = "{double.tenant}"',
        f'client_id = "{CLIENT}"',
        f'client_secret_secret = {{ file = "{secret}" }}',
        f'owner = "{mailbox}"',
        f'authority_host = "{double.base}"',
        f'graph_url = "{double.graph_url}"',
    ]
    lines += [f"{k} = {json.dumps(v)}" for k, v in extra.items()]
    return "[[sources]]\n" + "\n".join(lines) + "\n"


def seed(double: GraphDouble, mailbox: str = ALICE) -> dict[str, dict]:
    items = {
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
            categories=["Private"],
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
            start=iso(NOW + timedelta(days=3))[:19],
            end=iso(NOW + timedelta(days=3, hours=1))[:19],
            organizer="ivana@adriaticfoods.hr",
            attendees=[(mailbox, "accepted"), ("marko@adriaticfoods.hr", "declined")],
        ),
    }
    return items


def test_first_sync_asks_only_for_timeline_fields_and_logs_mail_and_meetings(
    graph_double: GraphDouble, tmp_path: Path
) -> None:
    items = seed(graph_double)
    path = config(tmp_path, graph_source(graph_double, tmp_path, "alice", ALICE))
    sync(path)
    found = live_activities(tmp_path)
    assert found["offer@adriaticfoods.hr"] == ("email", "Offer for olive oil")  # no angle brackets
    assert found["reply@ourco.example"] == ("email", "RE: Offer for olive oil")
    assert "private@adriaticfoods.hr" not in found  # the "Private" category keeps it out
    assert "old@x.hr" not in found  # outside backfill_days
    meeting = f"graph-event:{items['meeting']['iCalUId']}"
    assert found[meeting] == ("meeting", "Tasting")
    participants = json.loads(
        rows(tmp_path, f"select participants from activities where message_id = '{meeting}'")[0][0]
    )
    assert "marko@adriaticfoods.hr" not in {p["email"] for p in participants}  # declined
    # What we asked for: only the fields the timeline needs, immutable ids, a bounded page.
    deltas = graph_double.recorded("GET", "/messages/delta")
    first = deltas[0]
    assert set(first.query["$select"].split(",")) == {
        "from",
        "toRecipients",
        "ccRecipients",
        "bccRecipients",
        "subject",
        "bodyPreview",
        "receivedDateTime",
        "sentDateTime",
        "internetMessageId",
        "conversationId",
        "webLink",
        "categories",
        "changeKey",
        "isDraft",
    }
    # No $filter: with one, a delta query returns at most 5,000 messages (message-delta, Remarks).
    assert "$filter" not in first.query and "body" not in first.query["$select"].split(",")
    assert 'IdType="ImmutableId"' in first.headers["Prefer"] and "odata.maxpagesize=" in first.headers["Prefer"]
    assert all(r.headers["Authorization"].startswith("Bearer ") for r in graph_double.recorded(contains="/users/"))
    calendar = graph_double.recorded("GET", "/calendarView/delta")[0]
    assert 'outlook.timezone="UTC"' in calendar.headers["Prefer"]
    assert {"startDateTime", "endDateTime"} <= set(calendar.query)
    # The token cache is private to the service user.
    cache = tmp_path / "state" / "tokens" / "alice.msal.json"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    # The timeline shows the next meeting for the customer.
    book = openpyxl.load_workbook(tmp_path / "timeline.xlsx", read_only=True)
    header, *lines = list(book["Customers"].iter_rows(values_only=True))
    adriatic = dict(zip(header, next(r for r in lines if r[0] == "Adriatic Foods d.o.o."), strict=False))
    assert adriatic["Next meeting"] is not None


def test_incremental_sync_uses_the_delta_link_and_applies_changes_and_removals(
    graph_double: GraphDouble, tmp_path: Path
) -> None:
    items = seed(graph_double)
    path = config(tmp_path, graph_source(graph_double, tmp_path, "alice", ALICE))
    sync(path)
    tokens = len(graph_double.tokens)
    graph_double.clear_requests()
    graph_double.add_message(
        ALICE,
        "inbox",
        sender="ivana@adriaticfoods.hr",
        to=[ALICE],
        subject="Order 77",
        when=iso(NOW),
        message_id="order77@adriaticfoods.hr",
    )
    graph_double.delete(ALICE, "sentitems", items["reply"]["id"])
    graph_double.change(ALICE, "calendar", items["meeting"]["id"], isCancelled=True, subject="Canceled: Tasting")
    output = sync(path)
    found = live_activities(tmp_path)
    assert "order77@adriaticfoods.hr" in found and "reply@ourco.example" not in found
    meeting = f"graph-event:{items['meeting']['iCalUId']}"
    hints = json.loads(rows(tmp_path, f"select hints from activities where message_id = '{meeting}'")[0][0])
    assert hints["status"] == "cancelled"
    deltas = graph_double.recorded("GET", "/delta")
    assert deltas and all("$deltatoken" in r.query for r in deltas)  # no full re-read
    assert "$select" not in deltas[0].query  # parameters live inside the delta link
    assert len(graph_double.tokens) == tokens  # the cached token was reused, not fetched again
    assert "removed=1" in output


def test_an_expired_delta_token_resyncs_the_folder_without_duplicates(
    graph_double: GraphDouble, tmp_path: Path
) -> None:
    items = seed(graph_double)
    for n in range(12):  # several pages
        graph_double.add_message(
            ALICE,
            "inbox",
            sender="ivana@adriaticfoods.hr",
            to=[ALICE],
            subject=f"Note {n}",
            when=iso(NOW - timedelta(hours=n)),
            message_id=f"note{n}@adriaticfoods.hr",
        )
    path = config(tmp_path, graph_source(graph_double, tmp_path, "alice", ALICE))
    path.write_text(
        path.read_text().replace('[service]\nstate_dir = "state"', '[service]\nstate_dir = "state"\nbatch_size = 5')
    )
    sync(path)
    before = rows(tmp_path, "select count(*) from activities")[0][0]
    graph_double.expire(ALICE, "inbox")
    graph_double.delete(ALICE, "inbox", items["offer"]["id"])  # gone while our token was dead
    graph_double.add_message(
        ALICE,
        "inbox",
        sender="ivana@adriaticfoods.hr",
        to=[ALICE],
        subject="After",
        when=iso(NOW),
        message_id="after@adriaticfoods.hr",
    )
    output = sync(path)
    assert "delta token expired (410)" in output
    assert rows(tmp_path, "select count(*) from activities")[0][0] == before + 1
    assert rows(tmp_path, "select count(*) from occurrences where gone_at is null")[0][0] == before
    found = live_activities(tmp_path)
    assert "after@adriaticfoods.hr" in found and "offer@adriaticfoods.hr" not in found
    assert all(f"note{n}@adriaticfoods.hr" in found for n in range(12))
    # And the round after the resync is incremental again.
    graph_double.clear_requests()
    sync(path)
    assert all("$deltatoken" in r.query for r in graph_double.recorded("GET", "/delta"))


def test_throttling_honours_retry_after_and_a_long_wait_does_not_hold_up_other_mailboxes(
    graph_double: GraphDouble, tmp_path: Path
) -> None:
    seed(graph_double, ALICE)
    seed(graph_double, BOB)
    path = config(
        tmp_path,
        graph_source(graph_double, tmp_path, "alice", ALICE, throttle_max_wait_seconds=5),
        graph_source(graph_double, tmp_path, "bob", BOB, throttle_max_wait_seconds=5),
    )
    graph_double.throttle(ALICE, 1, 1)  # two short 429s: waited out inside the pass
    graph_double.throttle(BOB, 600)  # ten minutes: bob's pass ends, retried next pass
    output = sync(path, ok=False)
    alice = graph_double.recorded(contains=f"/users/{ALICE}/mailFolders/inbox/messages/delta")
    assert len(alice) == 3  # two 429s, then the page
    assert "throttled" in output
    status = run_syncd("status", "-c", str(path)).stdout
    bob_line = next(line for line in status.splitlines() if line.lstrip().startswith("bob"))
    alice_line = next(line for line in status.splitlines() if line.lstrip().startswith("alice"))
    assert "ERROR" in bob_line and "Retry-After 600s" in bob_line, status
    assert "ERROR" not in alice_line
    assert "offer@adriaticfoods.hr" in live_activities(tmp_path)


def test_a_mailbox_with_revoked_consent_reports_its_error_while_others_sync(
    graph_double: GraphDouble, tmp_path: Path
) -> None:
    seed(graph_double, ALICE)
    seed(graph_double, BOB)
    graph_double.deny(BOB)
    path = config(
        tmp_path, graph_source(graph_double, tmp_path, "alice", ALICE), graph_source(graph_double, tmp_path, "bob", BOB)
    )
    sync(path, ok=False)
    status = run_syncd("status", "-c", str(path)).stdout
    bob_line = next(line for line in status.splitlines() if line.lstrip().startswith("bob"))
    assert "ERROR" in bob_line and "ErrorAccessDenied" in bob_line, status
    assert "offer@adriaticfoods.hr" in live_activities(tmp_path)
    # A refused credential (the secret rotated in Entra ID but not here) is an auth error too.
    graph_double.clients[CLIENT] = "a-new-secret"
    (tmp_path / "state" / "tokens" / "alice.msal.json").unlink()  # no cached token to hide it
    sync(path, ok=False)
    status = run_syncd("status", "-c", str(path)).stdout
    alice_line = next(line for line in status.splitlines() if line.lstrip().startswith("alice"))
    assert "ERROR" in alice_line and "invalid_client" in alice_line and "AADSTS7000215" in alice_line, status


def test_write_back_sets_categories_and_keeps_customer_contacts_and_a_second_pass_sends_nothing(
    graph_double: GraphDouble, tmp_path: Path
) -> None:
    items = seed(graph_double)
    graph_double.mailbox(ALICE).categories.append({"id": "c1", "displayName": "Follow up", "color": "preset0"})
    path = config(
        tmp_path, graph_source(graph_double, tmp_path, "alice", ALICE, write_categories=True, write_contacts=True)
    )
    sync(path)
    created = graph_double.recorded("POST", "/outlook/masterCategories")
    assert [r.body["displayName"] for r in created] == ["Adriatic Foods d.o.o."]
    box = graph_double.mailbox(ALICE)
    offer = box.folders["inbox"].items[items["offer"]["id"]]
    assert offer["categories"] == ["Follow up", "Adriatic Foods d.o.o."]  # the user's own category kept
    assert box.calendar.items[items["meeting"]["id"]]["categories"] == ["Adriatic Foods d.o.o."]
    folder = next(f for f in box.contact_folders.values() if f["displayName"] == "Customers")
    contact = next(iter(folder["contacts"].values()))
    assert contact["displayName"] == "Adriatic Foods d.o.o."
    assert "Offer for olive oil" in contact["personalNotes"] and "Tasting" in contact["personalNotes"]
    # Idempotent: nothing changed, nothing written.
    graph_double.clear_requests()
    sync(path)
    assert [r for r in graph_double.requests if r.method in ("POST", "PATCH")] == []
    # A new mail updates the contact's notes in place.
    graph_double.add_message(
        ALICE,
        "inbox",
        sender="ivana@adriaticfoods.hr",
        to=[ALICE],
        subject="Invoice 12",
        when=iso(NOW),
        message_id="inv12@adriaticfoods.hr",
    )
    graph_double.clear_requests()
    sync(path)
    patches = graph_double.recorded("PATCH", "/contacts/")
    assert len(patches) == 1 and "Invoice 12" in patches[0].body["personalNotes"]
    assert len(folder["contacts"]) == 1


def test_a_contact_folder_is_a_customer_source(graph_double: GraphDouble, tmp_path: Path) -> None:
    graph_double.add_contact(
        ALICE, name="Petra Novak", emails=["petra@novak-trgovina.si"], company="Novak Trgovina", folder="Clients"
    )
    graph_double.add_message(
        ALICE,
        "inbox",
        sender="petra@novak-trgovina.si",
        to=[ALICE],
        subject="Samples",
        when=iso(NOW),
        message_id="samples@novak.si",
    )
    contacts = graph_source(graph_double, tmp_path, "alice", ALICE, calendar=False)
    contacts += (
        '[[sources]]\nname = "alice-contacts"\nkind = "graph_contacts"\n'
        f'tenant_id = "{graph_double.tenant}"\nclient_id = "{CLIENT}"\n'
        f'client_secret_secret = {{ file = "{tmp_path / "client-secret"}" }}\n'
        f'mailbox = "{ALICE}"\ncontacts_folder = "Clients"\n'
        f'authority_host = "{graph_double.base}"\ngraph_url = "{graph_double.graph_url}"\n'
    )
    path = config(tmp_path, contacts)
    sync(path)
    linked = rows(
        tmp_path,
        "select c.name from links l join customers c on c.id = l.customer_id "
        "join activities a on a.id = l.activity_id where a.message_id = 'samples@novak.si'",
    )
    assert {r[0] for r in linked} == {"Petra Novak", "Novak Trgovina"}
    again = next(line for line in sync(path).splitlines() if line.lstrip().startswith("alice-contacts"))
    assert "new=0 updated=0 removed=0" in again


def test_client_secret_and_tokens_never_reach_the_logs(graph_double: GraphDouble, tmp_path: Path) -> None:
    seed(graph_double)
    path = config(tmp_path, graph_source(graph_double, tmp_path, "alice", ALICE, write_categories=True))
    result = run_syncd("--debug", "sync", "--once", "-c", str(path))
    logs = result.stdout + result.stderr
    assert "source=alice" in logs
    assert SECRET not in logs
    for token in graph_double.tokens:
        assert token not in logs and token.split(".", 1)[1] not in logs
    assert "Bearer" not in logs
    cache = (tmp_path / "state" / "tokens" / "alice.msal.json").read_text()
    assert SECRET not in cache


def test_certificate_credentials_send_a_signed_assertion_not_a_secret(
    graph_double: GraphDouble, tmp_path: Path
) -> None:
    from support.doubles.tls import client_certificate_pem
    from syncd.connectors.graph.auth import GraphSignIn, GraphTokens

    pem = client_certificate_pem()
    graph_double.clients[CLIENT] = None
    tokens = GraphTokens(
        GraphSignIn(
            tenant_id=graph_double.tenant,
            client_id=CLIENT,
            mode="app",
            authority_host=graph_double.base,
            certificate=lambda: pem,
            cache_path=tmp_path / "cache.json",
        ),
        "cert",
    )
    assert tokens.token() in graph_double.tokens
    request = graph_double.recorded("POST", "/oauth2/v2.0/token")[0]
    assert request.body["grant_type"] == "client_credentials" and "client_secret" not in request.body
    assert request.body["client_assertion"].count(".") == 2
    assert tokens.token() == tokens.token()  # cached until shortly before it expires
    assert len(graph_double.recorded("POST", "/oauth2/v2.0/token")) == 1


def test_device_code_sign_in_then_silent_renewal_from_the_private_cache(
    graph_double: GraphDouble, tmp_path: Path
) -> None:
    import pytest

    from syncd.connectors.graph.auth import GraphSignIn, GraphTokens
    from syncd.model.errors import SourceAuthError

    graph_double.clients[CLIENT] = None
    sign_in = GraphSignIn(
        tenant_id=graph_double.tenant,
        client_id=CLIENT,
        mode="device_code",
        authority_host=graph_double.base,
        cache_path=tmp_path / "state" / "dc.json",
    )
    with pytest.raises(SourceAuthError, match="graph-login"):
        GraphTokens(sign_in, "solo").token()
    said: list[str] = []

    def say(message: str) -> None:
        said.append(message)
        graph_double.approve_device_codes("solo@ourco.example")

    user = GraphTokens(sign_in, "solo").device_login(say)
    assert user == "solo@ourco.example" and "SYNCD-TEST" in said[0]
    assert stat.S_IMODE(sign_in.cache_path.stat().st_mode) == 0o600  # type: ignore[union-attr]
    later = GraphTokens(sign_in, "solo")  # a new process: only the cache file
    first = later.token()
    assert first in graph_double.tokens
    later.discard(first)  # Graph refused it (401): renewed with the refresh token
    renewed = later.token()
    assert renewed in graph_double.tokens and renewed != first
    grants = [r.body["grant_type"] for r in graph_double.recorded("POST", "/oauth2/v2.0/token")]
    assert grants[-1] == "refresh_token"


def test_graph_login_command_signs_in_once_and_the_next_sync_runs_silently(
    graph_double: GraphDouble, tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    from syncd.cli import main

    seed(graph_double)
    graph_double.clients[CLIENT] = None  # a public client: no secret
    graph_double.auto_approve = ALICE
    source = graph_source(graph_double, tmp_path, "alice", ALICE).replace(
        f'client_secret_secret = {{ file = "{tmp_path / "client-secret"}" }}', 'auth = "device_code"'
    )
    path = config(tmp_path, source)
    assert "syncd graph-login alice" in sync(path, ok=False)  # not signed in yet: says what to do
    assert main(["graph-login", "alice", "-c", str(path)]) == 0
    said = capsys.readouterr().out
    assert "SYNCD-TEST" in said and f"signed in as {ALICE}" in said
    assert stat.S_IMODE((tmp_path / "state" / "tokens" / "alice.msal.json").stat().st_mode) == 0o600
    sync(path)
    assert "offer@adriaticfoods.hr" in live_activities(tmp_path)


def test_forget_deletes_the_contact_syncd_wrote_and_takes_back_its_category(
    graph_double: GraphDouble, tmp_path: Path
) -> None:
    """Erasure reaches Outlook: the contact syncd wrote for the person goes ("Delete
    contact", 204), and so does the category it put on their mail; the user's own category
    and the company's contact stay."""
    seed(graph_double)
    path = config(
        tmp_path,
        graph_source(
            graph_double, tmp_path, "alice", ALICE, write_categories=True, write_contacts=True, category_people=True
        ),
    )
    with_a_person(tmp_path, path)
    sync(path)
    box = graph_double.mailbox(ALICE)
    folder = next(f for f in box.contact_folders.values() if f["displayName"] == "Customers")
    assert {c["displayName"] for c in folder["contacts"].values()} == {"Adriatic Foods d.o.o.", "Ivana Horvat"}
    offer = next(i for i in box.folders["inbox"].items.values() if i["subject"] == "Offer for olive oil")
    assert "Ivana Horvat" in offer["categories"]
    forget = run_syncd("forget", "ivana@adriaticfoods.hr", "--yes", "-c", str(path))
    assert forget.returncode == 0, forget.stderr
    sync(path)
    assert {c["displayName"] for c in folder["contacts"].values()} == {"Adriatic Foods d.o.o."}
    assert len(graph_double.recorded("DELETE", "/contacts/")) == 1
    assert offer["categories"] == ["Follow up"]  # hers taken back (her own mail), the user's kept
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'state' / 'syncd.db'}")
    with engine.connect() as c:
        assert c.execute(sa.text("select count(*) from label_cleanups")).scalar_one() == 0
    engine.dispose()
