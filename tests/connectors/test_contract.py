"""One contract every connector passes. A new kind adds a subclass of ``ConnectorContract``.

The harness plays the pipeline's part: it drains a connector, applies each batch to a
``SourceState`` the way the store would (keys become known, cursors advance), and checks
the invariants the pipeline relies on, among them the one crash safety rests on: a
connector stopped after any batch and resumed from the state committed so far neither
loses nor repeats an item.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timezone
from pathlib import Path

import openpyxl
import pytest

from support.helpers import make_message, write_maildir
from syncd.connectors.base import Connector
from syncd.connectors.excel_activities import ActivitySheet, ExcelActivitiesConnector
from syncd.connectors.excel_customers import ExcelCustomersConnector
from syncd.connectors.maildir import MaildirConnector, MboxConnector
from syncd.model.records import ActivityKind, ActivityRecord, Batch, ReadOptions, SourceState

OPTIONS = ReadOptions(snippet_chars=50, batch_size=3)


def apply(batches: list[Batch], state: SourceState) -> SourceState:
    """The state the store holds after committing ``batches`` on top of ``state``."""
    known = dict(state.known)
    cursors = dict(state.cursors)
    for batch in batches:
        for record in batch.records:
            known[record.key] = record.version
        for problem in batch.problems:
            known[problem.key] = problem.version
        for key in batch.removed:
            known.pop(key, None)
        if batch.cursor is not None:
            cursors[batch.folder] = batch.cursor
    return SourceState(cursors=cursors, known=known)


def drain(connector: Connector, state: SourceState) -> tuple[list[Batch], SourceState]:
    batches = list(connector.read(state))
    return batches, apply(batches, state)


def item_keys(batches: list[Batch]) -> list[str]:
    return [r.key for b in batches for r in b.records] + [p.key for b in batches for p in b.problems]


class ConnectorContract:
    """Subclasses provide ``make`` (a connector over a fresh source with 7 items) and ``remove_one``."""

    items = 7

    @pytest.fixture
    def setup(self, tmp_path: Path) -> tuple[Connector, Callable[[], None]]:
        raise NotImplementedError

    def test_first_read_yields_every_item_once_in_bounded_batches(self, setup) -> None:
        connector, _remove = setup
        batches, _state = drain(connector, SourceState({}, {}))
        keys = [r.key for b in batches for r in b.records] + [p.key for b in batches for p in b.problems]
        assert len(keys) == len(set(keys)) >= self.items
        assert all(k for k in keys)
        assert all(len(b.records) + len(b.problems) <= OPTIONS.batch_size for b in batches)
        for record in (r for b in batches for r in b.records if isinstance(r, ActivityRecord)):
            assert record.occurred_at.tzinfo is not None
            assert record.occurred_at.utcoffset() == timezone.utc.utcoffset(None)

    def test_second_read_from_the_resulting_state_yields_nothing(self, setup) -> None:
        connector, _remove = setup
        _batches, state = drain(connector, SourceState({}, {}))
        again, _ = drain(connector, state)
        assert [r for b in again for r in b.records] == []
        assert [k for b in again for k in b.removed] == []

    def test_reads_are_deterministic(self, setup) -> None:
        connector, _remove = setup
        first, _ = drain(connector, SourceState({}, {}))
        second, _ = drain(connector, SourceState({}, {}))
        assert sorted(r.key for b in first for r in b.records) == sorted(r.key for b in second for r in b.records)

    def test_stopped_after_any_batch_and_resumed_nothing_is_lost_or_doubled(self, setup) -> None:
        connector, _remove = setup
        everything, _ = drain(connector, SourceState({}, {}))
        expected = sorted(item_keys(everything))
        for stop_after in range(1, len(everything)):
            reading = connector.read(SourceState({}, {}))
            committed = [next(reading) for _ in range(stop_after)]
            reading.close()  # stopped between batches: the rest is never handed over
            connector.close()
            state = apply(committed, SourceState({}, {}))
            rest, _ = drain(connector, state)
            first, second = item_keys(committed), item_keys(rest)
            assert sorted(first + second) == expected, f"stopped after batch {stop_after}"
            assert not set(first) & set(second), f"items read again after a stop after batch {stop_after}"
            assert [k for b in rest for k in b.removed if k in state.known] == []

    def test_a_removed_item_is_reported_by_key(self, setup) -> None:
        connector, remove = setup
        _batches, state = drain(connector, SourceState({}, {}))
        remove()
        again, _ = drain(connector, state)
        removed = [k for b in again for k in b.removed]
        assert len(removed) == 1 and removed[0] in state.known


class TestMaildirContract(ConnectorContract):
    @pytest.fixture
    def setup(self, tmp_path: Path):
        root = write_maildir(tmp_path / "md", {f"{1000 + n}.M{n}.host": make_message(n) for n in range(5)})
        write_maildir(root, {f"{2000 + n}.M{n}.host": make_message(100 + n) for n in range(2)}, folder="Sent")
        connector = MaildirConnector("md", OPTIONS, path=root, owner="alice@ourco.example", owner_addresses=frozenset())
        return connector, lambda: (root / "new" / "1000.M0.host").unlink()


class TestMboxContract(ConnectorContract):
    @pytest.fixture
    def setup(self, tmp_path: Path):
        import mailbox

        path = tmp_path / "export.mbox"
        box = mailbox.mbox(str(path))
        for n in range(7):
            box.add(make_message(n))
        box.flush()
        box.close()

        def remove() -> None:
            box = mailbox.mbox(str(path))
            box.remove(next(iter(box.keys())))
            box.flush()
            box.close()

        return MboxConnector("mb", OPTIONS, path=path, owner="alice@ourco.example", owner_addresses=frozenset()), remove


class TestExcelCustomersContract(ConnectorContract):
    @pytest.fixture
    def setup(self, tmp_path: Path):
        path = tmp_path / "customers.xlsx"

        def write(rows: int) -> None:
            workbook = openpyxl.Workbook()
            sheet = workbook.active
            sheet.append(["Company", "Contact", "Email"])
            for n in range(rows):
                sheet.append([f"Company {n}", f"Person {n}", f"p{n}@c{n}.example"])
            workbook.save(path)

        write(4)  # 4 companies + 4 people = 8 records
        connector = ExcelCustomersConnector(
            "cu",
            OPTIONS,
            path=path,
            sheet=None,
            header_row=1,
            columns={"company": "Company", "person": "Contact", "email": "Email"},
        )
        # Removing the last row removes its person; the company goes with it only if no other row names it.
        return connector, lambda: _remove_last_person(path)


def _remove_last_person(path: Path) -> None:
    workbook = openpyxl.load_workbook(path)
    sheet = workbook.active
    sheet.cell(row=sheet.max_row, column=2).value = None
    sheet.cell(row=sheet.max_row, column=3).value = None
    workbook.save(path)


class TestImapContract(ConnectorContract):
    """On Dovecot and on Cyrus: the same contract, whatever the server."""

    @pytest.fixture(params=["dovecot", "cyrus"])
    def setup(self, request, tmp_path: Path):  # type: ignore[no-untyped-def]
        from datetime import datetime, timedelta, timezone

        from syncd.connectors.imap.connector import ImapAccount, ImapConnector

        server = request.getfixturevalue(request.param)
        user, password = server.new_user("contract")
        address = user if "@" in user else f"{user}@ourco.example"
        client = server.client(user)
        for folder in ("INBOX", "Sent"):
            client.select_folder(folder)
            uids = client.search(["ALL"])
            if uids:
                client.delete_messages(uids)
                client.expunge()
        now = datetime.now(timezone.utc)
        for n in range(5):
            client.append("INBOX", make_message(n, to=address, when=now - timedelta(hours=n)), msg_time=now)
        for n in range(2):
            client.append("Sent", make_message(10 + n, sender=address, when=now - timedelta(hours=n)), msg_time=now)

        def remove() -> None:
            client.select_folder("INBOX")
            client.delete_messages([client.search(["ALL"])[0]])
            client.expunge()

        account = ImapAccount(
            host=server.host,
            port=server.port,
            tls="none",
            verify_tls=True,
            username=user,
            owner=address,
            password=lambda: password,
        )
        connector = ImapConnector("imap", OPTIONS, account)
        yield connector, remove
        connector.close()
        client.logout()


class TestCaldavContract(ConnectorContract):
    """On Radicale (a calendar chosen by name) and Xandikos (discovered from its bare root URL)."""

    @pytest.fixture(params=["radicale", "xandikos"])
    def setup(self, request, tmp_path: Path):  # type: ignore[no-untyped-def]
        from datetime import datetime, timedelta, timezone

        from support.ics import ics
        from syncd.connectors.caldav_calendar import CaldavAccount, CaldavConnector

        server = request.getfixturevalue(request.param)
        user = "contract@ourco.example"
        if request.param == "radicale":
            calendar, password, chosen = server.calendar(user, "Contract"), server.users[user], ("Contract",)
        else:
            calendar, password, chosen = server.calendar(), "any", ()
        for event in calendar.events():
            event.delete()
        now = datetime.now(timezone.utc).replace(microsecond=0)
        events = [
            calendar.save_event(ics(f"c{n}", now + timedelta(days=n - 3), f"Meeting {n}", attendees=(user,)))
            for n in range(7)
        ]

        def remove() -> None:
            events[0].delete()

        account = CaldavAccount(url=server.url, username=user, password=lambda: password, owner=user, calendars=chosen)
        connector = CaldavConnector("caldav", OPTIONS, account)
        yield connector, remove
        connector.close()


class TestGraphContract(ConnectorContract):
    """Against the Graph TEST DOUBLE (tests/support/doubles/graph_double.py): 5 inbox + 2 sent messages."""

    @pytest.fixture
    def setup(self, graph_double, tmp_path: Path):  # type: ignore[no-untyped-def]
        from datetime import datetime, timedelta, timezone

        from syncd.connectors.graph.auth import GraphSignIn, GraphTokens
        from syncd.connectors.graph.client import GraphClient
        from syncd.connectors.graph.connector import GraphConnector, GraphMailbox

        user = "contract@ourco.example"
        graph_double.clients["contract-app"] = "s3cret"
        now = datetime.now(timezone.utc)
        stamp = lambda n: (now - timedelta(hours=n)).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
        inbox = [
            graph_double.add_message(
                user, "inbox", sender="ivana@adriaticfoods.hr", to=[user], subject=f"Message {n}", when=stamp(n)
            )
            for n in range(5)
        ]
        for n in range(2):
            graph_double.add_message(
                user, "sentitems", sender=user, to=["ivana@adriaticfoods.hr"], subject=f"Reply {n}", when=stamp(n)
            )
        tokens = GraphTokens(
            GraphSignIn(
                tenant_id=graph_double.tenant,
                client_id="contract-app",
                mode="app",
                authority_host=graph_double.base,
                client_secret=lambda: "s3cret",
            ),
            "graph",
        )
        connector = GraphConnector(
            "graph",
            OPTIONS,
            GraphMailbox(mailbox=user, owner=user, calendar=False),
            GraphClient(graph_double.graph_url, tokens, source="graph"),
        )
        yield connector, lambda: graph_double.delete(user, "inbox", inbox[0]["id"])
        connector.close()


class TestEwsContract(ConnectorContract):
    """Against the EWS TEST DOUBLE (tests/support/doubles/ews_double.py): 5 inbox + 2 sent messages."""

    @pytest.fixture
    def setup(self, ews_double, tmp_path: Path):  # type: ignore[no-untyped-def]
        from datetime import datetime, timedelta, timezone

        from syncd.connectors.ews.connector import EwsConnector
        from syncd.connectors.ews.session import EwsAccount

        user = "contract@ourco.example"
        now = datetime.now(timezone.utc)
        stamp = lambda n: (now - timedelta(hours=n)).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
        inbox = [
            ews_double.add_message(
                user, "inbox", sender="ivana@adriaticfoods.hr", to=[user], subject=f"Message {n}", when=stamp(n)
            )
            for n in range(5)
        ]
        for n in range(2):
            ews_double.add_message(
                user, "sentitems", sender=user, to=["ivana@adriaticfoods.hr"], subject=f"Reply {n}", when=stamp(n)
            )
        password = ews_double.users["svc-syncd"]
        account = EwsAccount(
            mailbox=user,
            username="svc-syncd",
            password=lambda: password,
            auth_type="basic",
            service_endpoint=ews_double.url,
        )
        connector = EwsConnector("ews", OPTIONS, account, owner=user, calendar=False)
        yield connector, lambda: ews_double.delete(user, "inbox", inbox[0]["id"])
        connector.close()


class TestExcelActivitiesContract(ConnectorContract):
    @pytest.fixture
    def setup(self, tmp_path: Path):
        path = tmp_path / "orders.xlsx"
        workbook = openpyxl.Workbook()
        sheet = workbook.active
        sheet.title = "Orders"
        sheet.append(["Order no.", "Date", "Customer", "Amount"])
        for n in range(7):
            sheet.append([f"2026-{100 + n}", f"2026-10-{n + 1:02d}", f"Company {n}", 100 + n])
        workbook.save(path)

        def remove() -> None:
            book = openpyxl.load_workbook(path)
            book.active.delete_rows(2)
            book.save(path)

        columns = {"date": "Date", "customer": "Customer", "amount": "Amount", "subject": "Order no."}
        connector = ExcelActivitiesConnector(
            "orders",
            OPTIONS,
            ActivitySheet(
                path=path,
                sheet="Orders",
                header_row=1,
                columns=columns,
                kind=ActivityKind.ORDER,
                key_columns=("Order no.",),
            ),
        )
        return connector, remove


class TestGraphContactsContract(ConnectorContract):
    """Against the Graph TEST DOUBLE: 7 contacts without a company (7 people)."""

    @pytest.fixture
    def setup(self, graph_double, tmp_path: Path):  # type: ignore[no-untyped-def]
        from syncd.connectors.graph.auth import GraphSignIn, GraphTokens
        from syncd.connectors.graph.client import GraphClient
        from syncd.connectors.graph.contacts import GraphContactsConnector

        user = "contract@ourco.example"
        graph_double.clients["contract-app"] = "s3cret"
        graph_double.mailbox(user)
        contacts = [graph_double.add_contact(user, name=f"Person {n}", emails=[f"p{n}@c{n}.example"]) for n in range(7)]
        tokens = GraphTokens(
            GraphSignIn(
                tenant_id=graph_double.tenant,
                client_id="contract-app",
                mode="app",
                authority_host=graph_double.base,
                client_secret=lambda: "s3cret",
            ),
            "graph-contacts",
        )
        connector = GraphContactsConnector(
            "graph-contacts",
            OPTIONS,
            user,
            "Contacts",
            GraphClient(graph_double.graph_url, tokens, source="graph-contacts"),
        )

        yield connector, lambda: graph_double.delete_contact(user, contacts[0]["id"])
        connector.close()


class TestEwsContactsContract(ConnectorContract):
    """Against the EWS TEST DOUBLE: 7 contacts in the default Contacts folder."""

    @pytest.fixture
    def setup(self, ews_double, tmp_path: Path):  # type: ignore[no-untyped-def]
        from syncd.connectors.ews.contacts import EwsContactsConnector
        from syncd.connectors.ews.session import EwsAccount

        user = "contract@ourco.example"
        contacts = [ews_double.add_contact(user, name=f"Person {n}", emails=[f"p{n}@c{n}.example"]) for n in range(7)]
        password = ews_double.users["svc-syncd"]
        account = EwsAccount(
            mailbox=user,
            username="svc-syncd",
            password=lambda: password,
            auth_type="basic",
            service_endpoint=ews_double.url,
        )
        connector = EwsContactsConnector("ews-contacts", OPTIONS, account, "contacts")
        yield connector, lambda: ews_double.delete(user, "contacts", contacts[0]["id"])
        connector.close()
