"""Microsoft Graph as Microsoft documents it, against the Graph TEST DOUBLE.

Each test follows a documented behaviour, cited in its docstring; the double
(tests/support/doubles/graph_double.py) answers as the page says, not as syncd expects.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest

from support.doubles.graph_double import GraphDouble
from support.exchange import ALICE, NOW, iso
from support.graph_client import Sleeps, client
from syncd.connectors.budget import MailboxBudget
from syncd.connectors.graph.auth import graph_scope
from syncd.connectors.graph.connector import GraphConnector, GraphMailbox
from syncd.model.errors import SourceAuthError, SourceUnavailable
from syncd.model.records import ActivityRecord, Batch, LabelChange, ReadOptions, SourceState
from syncd.model.settings import LabelWriting

TODAY = NOW.date()


def connector(
    double: GraphDouble, tmp_path: Path, *, keep_bodies: bool = False, batch: int = 500, **mailbox: object
) -> GraphConnector:
    double.mailbox(ALICE)
    account = GraphMailbox(mailbox=ALICE, owner=ALICE, **mailbox)  # type: ignore[arg-type]
    options = ReadOptions(batch_size=batch, keep_bodies=keep_bodies)
    return GraphConnector("alice", options, account, client(double, tmp_path), today=lambda: TODAY)


def drain(reader: GraphConnector, state: SourceState | None = None) -> tuple[list[Batch], SourceState]:
    state = state or SourceState({}, {})
    batches = list(reader.read(state))
    known = dict(state.known)
    cursors = dict(state.cursors)
    for batch in batches:
        known.update({r.key: r.version for r in batch.records})
        known.update({p.key: p.version for p in batch.problems})
        for key in batch.removed:
            known.pop(key, None)
        if batch.cursor is not None:
            cursors[batch.folder] = batch.cursor
    return batches, SourceState(cursors, known)


def records(batches: list[Batch]) -> list[ActivityRecord]:
    return [r for b in batches for r in b.records if isinstance(r, ActivityRecord)]


def mail(double: GraphDouble, n: int, days_ago: float = 1, folder: str = "inbox") -> dict:
    return double.add_message(
        ALICE,
        folder,
        sender="ivana@adriaticfoods.hr",
        to=[ALICE],
        subject=f"Order {n}",
        when=iso(NOW - timedelta(days=days_ago, minutes=n)),
        message_id=f"m{n}@adriaticfoods.hr",
    )


# ---- 1. 401 with app-only sign-in ---------------------------------------------------------


def test_a_revoked_app_token_is_dropped_renewed_and_the_request_retried_once(
    graph_double: GraphDouble, tmp_path: Path
) -> None:
    """Access tokens can be revoked before they expire (Entra ID access tokens, "Token
    revocation"); msal refuses force_refresh for client credentials, so the cached token is
    removed and a new one acquired."""
    api = client(graph_double, tmp_path)
    graph_double.mailbox(ALICE)
    api.get(f"users/{ALICE}/mailFolders")
    first = graph_double.recorded("GET", "/mailFolders")[-1].headers["Authorization"]
    graph_double.revoke_tokens()
    api.get(f"users/{ALICE}/mailFolders")  # 401, new token, retried: no error
    second = graph_double.recorded("GET", "/mailFolders")[-1].headers["Authorization"]
    assert first != second
    grants = [r.body["grant_type"] for r in graph_double.recorded("POST", "/oauth2/v2.0/token")]
    assert grants == ["client_credentials", "client_credentials"]


def test_a_persistent_401_is_an_auth_error_not_cannot_reach(graph_double: GraphDouble, tmp_path: Path) -> None:
    api = client(graph_double, tmp_path)
    graph_double.mailbox(ALICE)
    original = graph_double._token

    def refused_everywhere(form):  # type: ignore[no-untyped-def]
        status, headers, payload = original(form)
        graph_double.tokens.clear()  # every token Graph is handed is revoked at once
        return status, headers, payload

    graph_double._token = refused_everywhere  # type: ignore[method-assign]
    with pytest.raises(SourceAuthError, match="Graph refused access"):
        api.get(f"users/{ALICE}/mailFolders")
    assert len(graph_double.recorded("GET", "/mailFolders")) == 2  # tried once more, then held back


# ---- 2. expired delta tokens as 400 -----------------------------------------------------


@pytest.mark.parametrize(
    "status,code", [(410, "syncStateNotFound"), (400, "syncStateNotFound"), (400, "resyncRequired")]
)
def test_an_expired_delta_token_of_any_40x_restarts_the_folder_without_duplicates(
    graph_double: GraphDouble, tmp_path: Path, status: int, code: str
) -> None:
    """Delta query overview, "Token duration": an expired token is "a 40X-series error with
    error codes such as syncStateNotFound"."""
    for n in range(6):
        mail(graph_double, n)
    reader = connector(graph_double, tmp_path, calendar=False, folders=("inbox",))
    first, state = drain(reader)
    assert len(records(first)) == 6
    deleted = next(iter(graph_double.mailbox(ALICE).folders["inbox"].items))
    graph_double.delete(ALICE, "inbox", deleted)
    graph_double.expire(ALICE, "inbox", status=status, code=code)
    again, state = drain(reader, state)
    assert len(records(again)) == 5  # re-listed (same keys: no duplicates in the store)
    removed = [k for b in again for k in b.removed]
    assert removed == [f"inbox/{deleted}"]
    assert again[-1].removed == tuple(removed) and again[-1].listing_complete  # at the end of the round
    assert len([k for k in state.known if k.startswith("inbox/")]) == 5


# ---- 3. the 5,000 cap of $filter in delta ------------------------------------------------


def test_twelve_thousand_messages_in_a_folder_are_all_read(graph_double: GraphDouble, tmp_path: Path) -> None:
    """message-delta, "Remarks": "Applying $filter in a delta query returns only up to 5,000
    messages." The double caps a filtered delta at 5,000; syncd sends no $filter."""
    for n in range(12_000):
        mail(graph_double, n, days_ago=1 + n / 2000)
    for n in range(12_000, 12_010):
        mail(graph_double, n, days_ago=500)  # before the 365-day window
    reader = connector(graph_double, tmp_path, calendar=False, folders=("inbox",))
    batches, _state = drain(reader)
    assert len(records(batches)) == 12_000
    assert sum(b.outside_window for b in batches) == 10
    assert all("$filter" not in r.query for r in graph_double.recorded("GET", "/messages/delta"))


# ---- 4. national clouds -------------------------------------------------------------------


def test_the_token_scope_is_the_root_of_the_configured_graph_url(graph_double: GraphDouble, tmp_path: Path) -> None:
    """National cloud deployments: each has its own Graph root, and tokens are asked for it."""
    assert graph_scope("https://graph.microsoft.us/v1.0") == "https://graph.microsoft.us/.default"
    assert (
        graph_scope("https://microsoftgraph.chinacloudapi.cn/v1.0")
        == "https://microsoftgraph.chinacloudapi.cn/.default"
    )
    assert graph_scope("https://graph.microsoft.com/beta") == "https://graph.microsoft.com/.default"
    api = client(graph_double, tmp_path)
    graph_double.mailbox(ALICE)
    api.get(f"users/{ALICE}/mailFolders")
    token_request = graph_double.recorded("POST", "/oauth2/v2.0/token")[-1]
    assert token_request.body["scope"] == f"{graph_double.base}/.default"


# ---- 5. throttling ------------------------------------------------------------------------


def test_503_without_retry_after_backs_off_exponentially_with_jitter(graph_double: GraphDouble, tmp_path: Path) -> None:
    """Throttling guidance: without Retry-After, back off exponentially."""
    runs = []
    for attempt in range(3):
        sleeps = Sleeps()
        api = client(graph_double, tmp_path / str(attempt), sleeps, attempts=5)
        graph_double.mailbox(ALICE)
        graph_double.unavailable(ALICE, 4)
        api.get(f"users/{ALICE}/mailFolders")
        runs.append(list(sleeps))
    assert all(len(run) == 4 for run in runs)
    for run in runs:
        assert all(0.1 <= wait <= 0.1 + 2**n for n, wait in enumerate(run, start=1))
    assert len({tuple(run) for run in runs}) > 1, "with jitter the waits differ between runs"
    assert max(max(run) for run in runs) > 1.0, "the ceiling grows with each attempt"


def test_retry_after_is_honoured_as_given(graph_double: GraphDouble, tmp_path: Path) -> None:
    sleeps = Sleeps()
    api = client(graph_double, tmp_path, sleeps)
    graph_double.mailbox(ALICE)
    graph_double.throttle(ALICE, 7, 3)
    api.get(f"users/{ALICE}/mailFolders")
    assert list(sleeps) == [7.0, 3.0]


def test_a_mailbox_budget_holds_concurrency_and_the_ten_minute_window(
    graph_double: GraphDouble, tmp_path: Path
) -> None:
    """Outlook service limits: 4 concurrent requests and 10,000 per 10 minutes, per app and mailbox."""
    budget = MailboxBudget()
    graph_double.mailbox(ALICE)
    graph_double.latency = 0.05
    clients = [client(graph_double, tmp_path / f"c{n}", budget=budget) for n in range(8)]
    threads = [
        threading.Thread(target=lambda c=c: [c.get(f"users/{ALICE}/mailFolders") for _ in range(5)]) for c in clients
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(graph_double.recorded("GET", "/mailFolders")) == 40
    assert graph_double.peak_in_flight[ALICE] <= 4 and budget.peak_concurrent <= 4
    # The window: a fake clock shows the 11th request of a 10-per-window budget waiting.
    now = [0.0]
    waits: list[float] = []
    small = MailboxBudget(
        per_window=10,
        window_seconds=600,
        clock=lambda: now[0],
        sleep=lambda s: (waits.append(s), now.__setitem__(0, now[0] + s)),
    )
    for _ in range(11):
        with small.slot():
            pass
    assert waits == [600.0] and small.waited == 600.0


# ---- 6. bodies only with keep_bodies ------------------------------------------------------


@pytest.mark.parametrize("keep", [False, True])
def test_bodies_are_asked_for_only_with_keep_bodies(graph_double: GraphDouble, tmp_path: Path, keep: bool) -> None:
    mail(graph_double, 1)
    reader = connector(graph_double, tmp_path, keep_bodies=keep, calendar=False, folders=("inbox",))
    batches, _ = drain(reader)
    asked = graph_double.recorded("GET", "/messages/delta")[0]
    assert ("body" in asked.query["$select"].split(",")) is keep
    assert ('outlook.body-content-type="text"' in asked.headers["Prefer"]) is keep
    assert records(batches)[0].body == ("Full text of Order 1." if keep else None)


# ---- 7. calendar @removed by date range ------------------------------------------------


def test_an_aged_out_meeting_edited_later_stays_and_a_deleted_one_goes(
    graph_double: GraphDouble, tmp_path: Path
) -> None:
    """event-delta: @removed may mean "moved out of the range"; filter by the range needed."""
    old = graph_double.add_event(
        ALICE,
        subject="Old review",
        start=iso(NOW - timedelta(days=30))[:19],
        end=iso(NOW - timedelta(days=30, hours=-1))[:19],
        organizer="ivana@adriaticfoods.hr",
    )
    soon = graph_double.add_event(
        ALICE,
        subject="Tasting",
        start=iso(NOW + timedelta(days=3))[:19],
        end=iso(NOW + timedelta(days=3, hours=-1))[:19],
        organizer="ivana@adriaticfoods.hr",
    )
    reader = connector(graph_double, tmp_path, folders=(), past_days=60)
    _batches, state = drain(reader)
    assert {k.split("/", 1)[1] for k in state.known} == {old["id"], soon["id"]}
    # The window moves on (today is 45 days later, past_days 60 -> the old meeting is 75 days
    # back, out of the window); it is edited, so the delta reports it @removed.
    later = GraphConnector(
        "alice",
        ReadOptions(),
        GraphMailbox(mailbox=ALICE, owner=ALICE, folders=(), past_days=20),
        reader.client,
        today=lambda: TODAY,
    )
    graph_double.change(ALICE, "calendar", old["id"], bodyPreview="Minutes added.")
    graph_double.delete(ALICE, "calendar", soon["id"])
    batches, _ = drain(later, state)
    removed = {k for b in batches for k in b.removed}
    assert f"calendar/{soon['id']}" in removed
    assert f"calendar/{old['id']}" not in removed  # history, kept


# ---- 8. malformed data ---------------------------------------------------------------------


def test_a_bad_item_is_quarantined_and_the_rest_stored(graph_double: GraphDouble, tmp_path: Path) -> None:
    good = [mail(graph_double, n) for n in range(3)]
    bad = mail(graph_double, 9)
    graph_double.change(ALICE, "inbox", bad["id"], **{"from": "ivana@adriaticfoods.hr"})  # a string, not an object
    year_one = mail(graph_double, 10)
    graph_double.change(ALICE, "inbox", year_one["id"], sentDateTime="0001-01-01T00:00:00Z")
    batches, _ = drain(connector(graph_double, tmp_path, calendar=False, folders=("inbox",)))
    stored = {r.key.split("/", 1)[1]: r for r in records(batches)}
    assert set(stored) == {g["id"] for g in good} | {year_one["id"]}
    assert (
        stored[year_one["id"]].occurred_at.year == NOW.year or stored[year_one["id"]].occurred_at.year == NOW.year - 1
    )
    problems = [p for b in batches for p in b.problems]
    assert [p.key for p in problems] == [f"inbox/{bad['id']}"]
    assert "malformed Graph item" in problems[0].reason and "from" in problems[0].reason


@pytest.mark.parametrize("how,said", [("no-links", "neither @odata.nextLink")])
def test_a_broken_page_is_an_error_and_the_cursor_stays(
    graph_double: GraphDouble, tmp_path: Path, how: str, said: str
) -> None:
    mail(graph_double, 1)
    reader = connector(graph_double, tmp_path, calendar=False, folders=("inbox",))
    graph_double.break_next_page(ALICE, how)
    with pytest.raises(SourceUnavailable, match=said):
        list(reader.read(SourceState({}, {})))
    batches, _ = drain(reader)  # the next pass reads it whole
    assert len(records(batches)) == 1


@pytest.mark.parametrize("how,said", [("not-json", "not JSON"), ("list", "JSON list")])
def test_a_page_that_is_not_a_json_object_is_retried_then_an_error(
    graph_double: GraphDouble, tmp_path: Path, how: str, said: str
) -> None:
    """A proxy's HTML page with 200 usually passes: retried with backoff; five in a row end the pass."""
    mail(graph_double, 1)
    reader = connector(graph_double, tmp_path, calendar=False, folders=("inbox",))
    graph_double.break_next_page(ALICE, how)
    batches, _ = drain(reader)
    assert len(records(batches)) == 1
    graph_double.break_next_page(ALICE, *[how] * 5)
    with pytest.raises(SourceUnavailable, match=said):
        list(connector(graph_double, tmp_path / "again", calendar=False, folders=("inbox",)).read(SourceState({}, {})))


# ---- 9. write-back without clobbering ---------------------------------------------------


def test_a_category_the_user_adds_between_read_and_write_is_kept(graph_double: GraphDouble, tmp_path: Path) -> None:
    """If-Match with the item's etag; 412 ErrorIrresolvableConflict when it changed meanwhile."""
    item = mail(graph_double, 1)
    reader = connector(graph_double, tmp_path, calendar=False, folders=("inbox",))
    drain(reader)
    graph_double.mailbox(ALICE).categories.append({"id": "c1", "displayName": "Adriatic Foods d.o.o."})
    done = []

    def user_edits_first_time(mailbox: str, found: dict) -> None:
        if not done:
            done.append(True)
            graph_double.change(ALICE, "inbox", found["id"], categories=[*found["categories"], "Urgent"])

    graph_double.before_patch = user_edits_first_time
    written = reader.write_back({f"inbox/{item['id']}": LabelChange(add=("Adriatic Foods d.o.o.",))})
    assert written == {f"inbox/{item['id']}"}
    final = graph_double.mailbox(ALICE).folders["inbox"].items[item["id"]]["categories"]
    assert final == ["Urgent", "Adriatic Foods d.o.o."]
    patches = graph_double.recorded("PATCH", "/messages/")
    assert len(patches) == 2 and all(p.headers.get("If-Match", "").startswith('W/"') for p in patches)
    # The customer is erased (or merged away): syncd takes back its own category, the user's stays.
    reader.write_back({f"inbox/{item['id']}": LabelChange(remove=("Adriatic Foods d.o.o.",))})
    assert graph_double.mailbox(ALICE).folders["inbox"].items[item["id"]]["categories"] == ["Urgent"]


def test_person_categories_are_a_config_choice_default_companies_only() -> None:
    from syncd.connectors.graph.kind import GraphSettings

    base = dict(name="a", kind="graph", tenant_id="t", client_id="c", owner="a@ourco.example", write_categories=True)
    secret = {"client_secret_secret": {"env": "X"}}
    assert GraphSettings(**base, **secret).label_writing() == LabelWriting("category", people=False)
    assert GraphSettings(**base, **secret, category_people=True).label_writing() == LabelWriting(
        "category", people=True
    )


# ---- reach: all calendars ------------------------------------------------------------------


def test_named_and_all_calendars_are_read_each_with_its_own_cursor(graph_double: GraphDouble, tmp_path: Path) -> None:
    team = graph_double.add_calendar(ALICE, "Sales team")
    graph_double.add_calendar(ALICE, "Birthdays")
    graph_double.add_event_to(
        ALICE,
        team,
        subject="Pipeline review",
        start=iso(NOW + timedelta(days=1))[:19],
        end=iso(NOW + timedelta(days=1, hours=-1))[:19],
        organizer=ALICE,
    )
    batches, state = drain(connector(graph_double, tmp_path, folders=(), calendars=("Sales team",)))
    assert {r.folder for r in records(batches)} == {"calendar:Sales team"}
    assert set(state.cursors) == {"calendar", "calendar:Sales team"}
    every, state = drain(connector(graph_double, tmp_path, folders=(), calendars=("*",)))
    assert set(state.cursors) == {"calendar", "calendar:Birthdays", "calendar:Sales team"}
    with pytest.raises(Exception, match="no calendar named 'Holidays'"):
        drain(connector(graph_double, tmp_path, folders=(), calendars=("Holidays",)))


# ---- reach: shared mailboxes -----------------------------------------------------------------


def test_a_shared_mailbox_is_read_with_the_app_and_its_team_owns_it(graph_double: GraphDouble, tmp_path: Path) -> None:
    """A shared mailbox (sales@) is a mailbox without a licence; application permission reads it
    like any other (Graph: "users/{id | userPrincipalName}" works for shared mailboxes)."""
    sales = "sales@ourco.example"
    graph_double.add_message(
        sales, "inbox", sender="ivana@adriaticfoods.hr", to=[sales], subject="Quote?", when=iso(NOW - timedelta(days=1))
    )
    graph_double.add_message(
        sales,
        "sentitems",
        sender=sales,
        to=["ivana@adriaticfoods.hr"],
        subject="RE: Quote?",
        when=iso(NOW - timedelta(hours=5)),
    )
    account = GraphMailbox(
        mailbox=sales, owner="sales-team@ourco.example", owner_addresses=frozenset({sales}), calendar=False
    )
    reader = GraphConnector("sales", ReadOptions(), account, client(graph_double, tmp_path), today=lambda: TODAY)
    batches, _ = drain(reader)
    found = {r.subject: r for r in records(batches)}
    assert found["RE: Quote?"].direction.value == "outbound" and found["Quote?"].direction.value == "inbound"
    assert {r.mailbox for r in found.values()} == {sales}
    assert all(f"/users/{sales}/" in r.path for r in graph_double.recorded("GET", "/messages/delta"))


def test_an_event_without_an_organizer_is_a_meeting_not_a_quarantine_entry() -> None:
    from syncd.connectors.graph.records import event_record
    from syncd.model.records import Direction

    item = {
        "id": "AAMkHoliday",
        "subject": "Public holiday",
        "start": {"dateTime": "2026-12-25T00:00:00"},
        "organizer": None,
    }
    record = event_record(item, mailbox=ALICE, owners=frozenset({ALICE}), snippet_chars=100)
    assert isinstance(record, ActivityRecord) and record.direction == Direction.UNKNOWN


def test_calendar_removed_entries_are_filtered_by_the_window(graph_double: GraphDouble, tmp_path: Path) -> None:
    """A delta round that reports @removed for a meeting we hold with a start before the window
    (aged out, then edited) keeps it; one for a meeting inside the window applies."""
    inside = graph_double.add_event(
        ALICE,
        subject="Soon",
        start=iso(NOW + timedelta(days=2))[:19],
        end=iso(NOW + timedelta(days=2, hours=-1))[:19],
        organizer=ALICE,
    )
    reader = connector(graph_double, tmp_path, folders=())
    _batches, state = drain(reader)
    aged = "calendar/AAMkAged"
    known = {**state.known, aged: "20240101T090000Z|ck"}  # held from long ago, before the window
    graph_double.delete(ALICE, "calendar", inside["id"])
    collection = graph_double.mailbox(ALICE).calendar
    collection.log.append((graph_double._next(), "AAMkAged"))  # Graph reports it @removed (out of range)
    batches, _ = drain(reader, SourceState(state.cursors, known))
    removed = {k for b in batches for k in b.removed}
    assert removed == {f"calendar/{inside['id']}"}


# ---- 10. Outlook's Sensitivity on mail ----------------------------------------------------


def test_a_message_marked_private_in_outlook_is_kept_out_until_the_mark_is_removed(
    graph_double: GraphDouble, tmp_path: Path
) -> None:
    """Graph v1.0 has no message sensitivity property: it is PidTagSensitivity (0x0036),
    read with $expand=singleValueExtendedProperties($filter=id eq 'Integer 0x0036') ("Get
    singleValueLegacyExtendedProperty"); 2 is Private. A mark removed later lets it in."""
    from syncd.mapping.matcher import MatchPolicy, skip_reason

    private = mail(graph_double, 1)
    mail(graph_double, 2)
    graph_double.change(ALICE, "inbox", private["id"], _pid_tag_sensitivity=2)
    reader = connector(graph_double, tmp_path, calendar=False, folders=("inbox",))
    batches, state = drain(reader)
    records = {r.subject: r for b in batches for r in b.records if isinstance(r, ActivityRecord)}
    assert {s: skip_reason(r, MatchPolicy()) for s, r in records.items()} == {"Order 1": "private", "Order 2": None}
    [request] = graph_double.recorded("GET", "/messages/delta")[:1]
    assert "singleValueExtendedProperties($filter=id eq 'Integer 0x0036')" in request.query.get("$expand", "")
    graph_double.change(ALICE, "inbox", private["id"], _pid_tag_sensitivity=0)  # the user makes it Normal
    batches, _ = drain(reader, state)
    [again] = [r for b in batches for r in b.records if isinstance(r, ActivityRecord)]
    assert again.subject == "Order 1" and skip_reason(again, MatchPolicy()) is None
