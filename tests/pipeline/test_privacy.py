"""Privacy end to end, on SQLite and PostgreSQL: what is collected, suppression, a person's
export, erasure that holds across a full re-sync, retention, and the audit log."""

from __future__ import annotations

import csv
import json
import os
import shutil
import stat
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import openpyxl
import pytest
import sqlalchemy as sa

from support.environment import require_tool
from support.helpers import make_message, run_syncd, write_config, write_maildir
from syncd.config import load_config
from syncd.store import Store

CONFIG = """
[service]
state_dir = "state"
[store]
url = "{url}"
[matching]
internal_domains = ["ourco.example"]
auto_create_contacts = "{auto}"
[privacy]
{privacy}
[[sources]]
name = "customers"
kind = "excel_customers"
path = "customers.xlsx"
[sources.columns]
company = "Company"
person = "Contact"
email = "E-mail"
[[sources]]
name = "mail"
kind = "maildir"
path = "mail"
owner = "alice@ourco.example"
"""

CUSTOMERS = [
    ["Adriatic Foods", "Ivana Horvat", "ivana@adriaticfoods.hr"],
    ["Adriatic Foods", "Marko Babić", "marko@adriaticfoods.hr"],
    ["Suppressed Ltd", "Ana Skrivena", "ana@suppressed.example"],
]
NOW = datetime.now(timezone.utc).replace(microsecond=0)


def customers_sheet(path: Path, rows: list[list[str]]) -> None:
    book = openpyxl.Workbook()
    book.active.append(["Company", "Contact", "E-mail"])
    for row in rows:
        book.active.append(row)
    book.save(path)


def mail(tmp_path: Path, ages: dict[int, int] | None = None) -> None:
    ages = ages or {}

    def message(n: int, sender: str, cc: str | None = None, body: str = "Hello there.") -> bytes:
        return make_message(
            n,
            sender=sender,
            to="alice@ourco.example",
            cc=cc,
            when=NOW - timedelta(days=ages.get(n, 1), minutes=n),
            body=body,
        )

    write_maildir(
        tmp_path / "mail",
        {
            "1": message(1, "Ivana Horvat <ivana@adriaticfoods.hr>", body="Ivana's private plans"),
            "2": message(2, "Stranger <stranger@unknown.example>"),
            "3": message(3, "Ana <ana@suppressed.example>"),
            "4": message(4, "Ivana Horvat <ivana@adriaticfoods.hr>", cc="marko@adriaticfoods.hr"),
            "5": message(5, "marko@adriaticfoods.hr"),
        },
    )


def setup(tmp_path: Path, url: str, privacy: str = "", auto: str = "none", ages: dict[int, int] | None = None) -> Path:
    customers_sheet(tmp_path / "customers.xlsx", CUSTOMERS)
    mail(tmp_path, ages)
    (tmp_path / "state").mkdir(exist_ok=True)
    return write_config(tmp_path / "syncd.toml", CONFIG.format(url=url, auto=auto, privacy=privacy))


def sync(config: Path) -> None:
    result = run_syncd("sync", "--once", "-c", str(config))
    assert result.returncode == 0, result.stdout + result.stderr


def opened(config: Path) -> Store:
    return Store.open(load_config(config).store_url)


def skipped(store: Store) -> dict[str, int]:
    with store.session() as s:
        return dict(s.execute(sa.text("select reason, count(*) from skipped group by reason")).all())


def everything_stored(store: Store) -> str:
    """Every cell of every table, lower-cased: what "appears in no table" is checked on."""
    text = []
    with store.session() as s:
        for table in sa.inspect(store.engine).get_table_names():
            if table == "alembic_version":
                continue
            for row in s.execute(sa.text(f'select * from "{table}"')):
                text.append(" ".join(str(v) for v in row))
    return "\n".join(text).lower()


def workbook_text(path: Path) -> str:
    book = openpyxl.load_workbook(path, read_only=True)
    try:
        return "\n".join(
            " ".join(str(v) for v in row if v is not None)
            for ws in book.worksheets
            for row in ws.iter_rows(values_only=True)
        ).lower()
    finally:
        book.close()


def test_customers_only_stores_no_strangers_mail_and_suppression_holds_in_mail_and_workbooks(
    tmp_path: Path, store_url: str
) -> None:
    config = setup(
        tmp_path, store_url, 'collect = "customers_only"\nkeep_snippets = false\nsuppress = ["@suppressed.example"]'
    )
    sync(config)
    store = opened(config)
    try:
        activities = store.reads.activities()
        assert sorted(a.subject for a in activities) == ["Message 1", "Message 4", "Message 5"]
        assert all(a.snippet == "" for a in activities)
        assert skipped(store) == {"no-customer": 1, "suppressed": 1}
        people = {c.name for c in store.reads.customers() if c.kind == "person"}
        assert people == {"Ivana Horvat", "Marko Babić"}
        # The row naming the suppressed person is quarantined by its place, not by who it is.
        [row] = [q for q in store.reads.quarantine() if q.key.startswith("suppressed:")]
        assert "row 4" in row.where and "ana" not in row.reason.lower() and "suppressed.example" not in row.reason
    finally:
        store.close()
    status = run_syncd("status", "-c", str(config))
    assert "quarantined=1" in status.stdout
    # The workbook changes twice more: the row's entry stays, it is not cleared by the listing.
    for extra in (
        ["Baltic Ltd", "Piotr Nowak", "piotr@baltic.example"],
        ["Nordic AB", "Erik Berg", "erik@nordic.example"],
    ):
        CUSTOMERS.append(extra)
        try:
            customers_sheet(tmp_path / "customers.xlsx", CUSTOMERS)
        finally:
            CUSTOMERS.pop()
        sync(config)
        store = opened(config)
        try:
            assert len([q for q in store.reads.quarantine() if q.key.startswith("suppressed:")]) == 1
            assert store.privacy.status().rows_listing_suppressed == 1
        finally:
            store.close()


def test_suppressed_people_are_never_auto_created_as_contacts(tmp_path: Path, store_url: str) -> None:
    config = setup(tmp_path, store_url, 'suppress = ["ana@suppressed.example"]', auto="inbound")
    customers_sheet(tmp_path / "customers.xlsx", CUSTOMERS[:2])
    sync(config)
    store = opened(config)
    try:
        names = {c.name for c in store.reads.customers()}
        assert "Stranger" in names  # auto-created: the policy works
        assert "Ana" not in names and "ana@suppressed.example" not in names
        assert "ana@suppressed.example" not in everything_stored(store)
    finally:
        store.close()


def test_export_holds_every_row_that_mentions_the_person_and_opens_in_libreoffice(
    tmp_path: Path, store_url: str
) -> None:
    config = setup(tmp_path, store_url)
    sync(config)
    result = run_syncd("export", "ivana@adriaticfoods.hr", "--json", "-c", str(config))
    assert result.returncode == 0, result.stderr
    exported = json.loads(result.stdout)
    store = opened(config)
    try:
        [ivana] = [c for c in store.reads.customers() if c.name == "Ivana Horvat"]
        with store.session() as s:
            mentioning = {
                row[0]
                for row in s.execute(sa.text("select id, participants from activities"))
                if "ivana@adriaticfoods.hr" in str(row[1])
            }
            linked = {r[0] for r in s.execute(sa.text(f"select activity_id from links where customer_id = {ivana.id}"))}
    finally:
        store.close()
    assert {a["Activity"] for a in exported["Activities"]} == mentioning | linked == mentioning
    assert {(i["Kind"], i["Value"]) for i in exported["Identities"]} == {("email", "ivana@adriaticfoods.hr")}
    assert {row["Field"]: row["Value"] for row in exported["Customer"]}["name"] == "Ivana Horvat"
    assert {link["Activity"] for link in exported["Links"]} >= mentioning
    target = tmp_path / "export.xlsx"
    assert run_syncd("export", str(ivana.id), "-o", str(target), "-c", str(config)).returncode == 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    again = run_syncd("export", str(ivana.id), "-o", str(target), "-c", str(config))
    assert again.returncode != 0 and "exists" in again.stderr  # never written over
    assert run_syncd("export", "nobody@nowhere.example", "--json", "-c", str(config)).returncode == 4
    soffice = require_tool(shutil.which("soffice") or shutil.which("libreoffice"), "LibreOffice is not installed")
    out = tmp_path / "csv"
    converted = subprocess.run(
        [
            soffice,
            f"-env:UserInstallation=file://{tmp_path / 'lo'}",
            "--headless",
            "--convert-to",
            "csv:Text - txt - csv (StarCalc):44,34,76,1,,0,false,true,false,false,false,-1",
            "--outdir",
            str(out),
            str(target),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert converted.returncode == 0, converted.stderr
    sheets = {p.stem.split("-", 1)[1]: list(csv.reader(p.open(encoding="utf-8"))) for p in out.glob("*.csv")}
    assert len(sheets["Activities"]) - 1 == len(mentioning)


def test_forget_erases_everywhere_survives_a_full_resync_and_is_audited(tmp_path: Path, store_url: str) -> None:
    config = setup(tmp_path, store_url)
    sync(config)
    dry = run_syncd("forget", "Ivana", "-c", str(config))
    assert dry.returncode == 0 and "would erase" in dry.stdout and "activities deleted 1" in dry.stdout
    store = opened(config)
    try:
        assert "ivana" in everything_stored(store)  # a dry run changes nothing
    finally:
        store.close()
    done = run_syncd("forget", "Ivana", "--yes", "-c", str(config))
    assert done.returncode == 0, done.stderr
    assert "activities deleted 1" in done.stdout and "activities scrubbed 1" in done.stdout
    sync(config)  # outputs rewritten; the sheet still lists her and is read again
    store = opened(config)
    try:
        stored = everything_stored(store)
        assert "ivana" not in stored and "horvat" not in stored and "private plans" not in stored
        subjects = sorted(a.subject for a in store.reads.activities())
        assert "Message 1" not in subjects and "Message 4" in subjects  # the shared one stays, for Marko
        [shared] = [a for a in store.reads.activities() if a.subject == "Message 4"]
        assert sorted(c.name for c in shared.customers) == ["Adriatic Foods", "Marko Babić"]
        # A full re-sync: every cursor and tombstone gone, every source read from scratch.
        with store.session() as s, s.begin():
            s.execute(sa.text("delete from cursors"))
            s.execute(sa.text("delete from skipped"))
    finally:
        store.close()
    sync(config)
    store = opened(config)
    try:
        assert "ivana" not in everything_stored(store).replace("suppressed:", "")
        assert "Message 1" not in {a.subject for a in store.reads.activities()}
        [row] = [q for q in store.reads.quarantine() if q.key.startswith("suppressed:")]
        assert "row 2" in row.where  # status names the staff workbook row that still lists her
        [entry] = store.privacy.audit()
        assert entry.action == "forget" and entry.counts["activities_deleted"] == 1
        assert "ivana" not in json.dumps(entry.counts).lower()
    finally:
        store.close()
    assert "ivana" not in workbook_text(tmp_path / "timeline.xlsx")
    audit = run_syncd("audit", "-c", str(config))
    assert audit.returncode == 0 and "forget" in audit.stdout
    status = run_syncd("status", "-c", str(config)).stdout
    assert "erasures=1" in status and "WORKBOOK ROWS STILL LIST 1 suppressed or erased people" in status


def test_retention_purges_exactly_what_is_past_the_limit_and_it_does_not_come_back(
    tmp_path: Path, store_url: str
) -> None:
    config = setup(tmp_path, store_url, "retention_days = 365", ages={1: 400, 2: 366, 5: 364})
    sync(config)
    store = opened(config)
    try:
        assert sorted(a.subject for a in store.reads.activities()) == ["Message 3", "Message 4", "Message 5"]
        assert [e.action for e in store.privacy.audit()] == ["retention"]
        assert store.privacy.audit()[0].counts["activities"] == 2
    finally:
        store.close()
    sync(config)  # read again: the purged items are known by their tombstones, not re-stored
    store = opened(config)
    try:
        assert len(store.reads.activities()) == 3 and len(store.privacy.audit()) == 1
    finally:
        store.close()
    status = run_syncd("status", "--json", "-c", str(config))
    shown = json.loads(status.stdout)
    assert shown["privacy"]["purged"] == 2
    assert {s["name"]: s["skipped"] for s in shown["sources"]}["mail"].get("retention") == 2


def test_a_store_syncd_creates_is_private_whatever_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        store = Store.open(f"sqlite:///{tmp_path / 'new' / 'state' / 'syncd.db'}")
        store.close()
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "new" / "state").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "new" / "state" / "syncd.db").stat().st_mode) == 0o600


@pytest.mark.parametrize("mark", ["Private", "privatno"])
def test_a_private_category_keeps_an_item_out(mark: str) -> None:
    from syncd.config import parse_config
    from syncd.mapping.matcher import skip_reason
    from syncd.model.records import ActivityKind, ActivityRecord, Participant
    from syncd.pipeline.wiring import match_policy

    policy = match_policy(parse_config('[privacy]\nprivate_categories = ["Privatno", "Private"]', Path("x.toml")))
    record = ActivityRecord(
        key="1",
        kind=ActivityKind.EMAIL,
        occurred_at=NOW,
        participants=(Participant("a@customer.example"),),
        hints=(("categories", f"Blue; {mark}"),),
    )
    assert skip_reason(record, policy) == "private"
    assert skip_reason(ActivityRecord(key="2", kind=ActivityKind.EMAIL, occurred_at=NOW), policy) is None


CONSENT_CONFIG = """
[service]
state_dir = "state"
[store]
url = "{url}"
[[sources]]
name = "customers"
kind = "excel_customers"
path = "customers.xlsx"
[sources.columns]
person = "Contact"
email = "E-mail"
consent = "Consent"
consent_scope = "Scope"
consent_date = "Given"
consent_withdrawn = "Withdrawn"
"""


def consent_sheet(path: Path, rows: list[list[object]]) -> None:
    book = openpyxl.Workbook()
    book.active.append(["Contact", "E-mail", "Consent", "Scope", "Given", "Withdrawn"])
    for row in rows:
        book.active.append(row)
    book.save(path)


def customers_column(path: Path, header: str) -> dict[str, object]:
    book = openpyxl.load_workbook(path, read_only=True)
    try:
        rows = list(book["Customers"].iter_rows(values_only=True))
    finally:
        book.close()
    column = rows[0].index(header)
    return {row[0]: row[column] if len(row) > column else None for row in rows[1:]}


def test_consent_changes_are_kept_as_history_and_shown_on_customers(tmp_path: Path, store_url: str) -> None:
    from syncd.model.records import ConsentStatement

    (tmp_path / "state").mkdir()
    config = write_config(tmp_path / "syncd.toml", CONSENT_CONFIG.format(url=store_url))
    sheet = tmp_path / "customers.xlsx"
    consent_sheet(
        sheet,
        [
            ["Ivana Horvat", "ivana@adriaticfoods.hr", "da", "marketing, history", "01.03.2026", None],
            ["Marko Babić", "marko@adriaticfoods.hr", "maybe", None, None, None],  # no basis we know
            ["Petra Kovač", "petra@kovac.hr", None, None, None, None],
        ],
    )
    sync(config)
    store = opened(config)
    try:
        ids = {c.name: c.id for c in store.reads.customers()}
        given = ConsentStatement("consent", "marketing, history", datetime(2026, 3, 1).date())
        assert store.reads.consent_history(ids["Ivana Horvat"]) == [given]
        assert given.allows("marketing") and not ConsentStatement("consent", "history").allows("marketing")
        [problem] = store.reads.quarantine()
        assert "'Consent'" in problem.reason and "'maybe' is no legal basis" in problem.reason
        assert "Marko Babić" in ids and store.reads.consent_history(ids["Marko Babić"]) == []
        assert store.reads.consent_history(ids["Petra Kovač"]) == []  # an empty cell states nothing
    finally:
        store.close()
    shown = customers_column(tmp_path / "timeline.xlsx", "Consent")
    assert shown["Ivana Horvat"] == "consent (marketing, history) since 2026-03-01"
    consent_sheet(
        sheet,
        [
            ["Ivana Horvat", "ivana@adriaticfoods.hr", "da", "marketing, history", "01.03.2026", "02.05.2026"],
            ["Marko Babić", "marko@adriaticfoods.hr", "contract", None, None, None],
            ["Petra Kovač", "petra@kovac.hr", None, None, None, None],
        ],
    )
    sync(config)
    sync(config)  # unchanged: no new history
    store = opened(config)
    try:
        history = store.reads.consent_history(ids["Ivana Horvat"])
        assert history == [
            given,
            ConsentStatement("consent", "marketing, history", given.given_on, datetime(2026, 5, 2).date()),
        ]
        assert not history[-1].allows("history")
        assert store.reads.consent_history(ids["Marko Babić"]) == [ConsentStatement("contract")]
        assert store.reads.quarantine() == []
        exported = store.privacy.person_export(ids["Ivana Horvat"]).as_plain()
        assert [row["Withdrawn"] for row in exported["Consent"]] == [None, "2026-05-02"]
    finally:
        store.close()
    assert customers_column(tmp_path / "timeline.xlsx", "Consent")["Ivana Horvat"] == "withdrawn 2026-05-02"
