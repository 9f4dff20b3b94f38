"""Timeline outputs: debounced writes, per-owner workbooks, statuses and reports."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl

from support.helpers import make_message, write_maildir
from support.views import activity as made_activity
from support.views import customer
from support.workbooks import messy_customers
from syncd.config import parse_config
from syncd.model.views import ActivityView, Sighting
from syncd.outputs.view import build_reports, contact_status
from syncd.pipeline import Pipeline
from syncd.store import Store

CONFIG = """
[service]
state_dir = "state"
[matching]
internal_domains = ["northwind.example"]
[timeline]
min_interval_seconds = {interval}
per_owner = true
[[sources]]
name = "customers"
kind = "excel_customers"
path = "customers.xlsx"
[sources.columns]
company = "Company"
person = "Contact"
email = "E-mail"
owner = "Owner"
[[sources]]
name = "mail"
kind = "maildir"
path = "mail"
owner = "alice@northwind.example"
"""

NOW = datetime.now(timezone.utc)


def setup(tmp_path: Path, interval: int) -> tuple[Pipeline, Store]:
    messy_customers(tmp_path / "customers.xlsx")
    write_maildir(
        tmp_path / "mail",
        {
            "1": make_message(
                1,
                sender="ivana@adriaticfoods.hr",
                to="alice@northwind.example",
                subject="Adriatic mail",
                when=NOW - timedelta(days=1),
            ),
            "2": make_message(
                2,
                sender="marco@tuscanywines.it",
                to="alice@northwind.example",
                subject="Tuscany mail",
                when=NOW - timedelta(days=2),
            ),
        },
    )
    (tmp_path / "state").mkdir()
    config = parse_config(CONFIG.format(interval=interval), tmp_path / "syncd.toml")
    store = Store.open(config.store_url)
    return Pipeline(config, store), store


def subjects(path: Path) -> list[str]:
    book = openpyxl.load_workbook(path, read_only=True)
    try:
        return [row[4] for row in book["Timeline"].iter_rows(min_row=2, values_only=True)]
    finally:
        book.close()


def test_service_writes_are_held_back_until_the_interval_passed(tmp_path: Path) -> None:
    pipeline, store = setup(tmp_path, interval=3600)
    first = pipeline.run_pass(debounce=True)
    assert first.timeline_written and first.timeline_retry_in is None  # no file yet: written at once
    write_maildir(
        tmp_path / "mail",
        {"3": make_message(3, sender="ivana@adriaticfoods.hr", to="alice@northwind.example", subject="Later mail")},
    )
    second = pipeline.run_pass(debounce=True)
    assert not second.timeline_written and 3500 < second.timeline_retry_in <= 3600
    assert "Later mail" not in subjects(tmp_path / "timeline.xlsx")
    third = pipeline.run_pass()  # `syncd sync` (no debounce) writes at once
    assert third.timeline_written and "Later mail" in subjects(tmp_path / "timeline.xlsx")
    unchanged = pipeline.run_pass(debounce=True)
    assert not unchanged.timeline_written and unchanged.timeline_retry_in is None  # nothing to write
    store.close()


def test_per_owner_workbooks_hold_only_that_owners_customers(tmp_path: Path) -> None:
    pipeline, store = setup(tmp_path, interval=0)
    pipeline.run_pass()
    folder = tmp_path / "timelines"
    assert sorted(p.name for p in folder.iterdir()) == [
        "timeline-alice@northwind.example.xlsx",
        "timeline-bob@northwind.example.xlsx",
    ]
    assert subjects(folder / "timeline-alice@northwind.example.xlsx") == ["Adriatic mail"]
    assert subjects(folder / "timeline-bob@northwind.example.xlsx") == ["Tuscany mail"]
    book = openpyxl.load_workbook(folder / "timeline-bob@northwind.example.xlsx", read_only=True)
    names = {row[0] for row in book["Customers"].iter_rows(min_row=2, values_only=True)}
    book.close()
    assert names == {"Tuscany Wines S.r.l.", "Marco Rossi", "Baltic Amber Sp. z o.o.", "Piotr Nowak"}
    store.close()


def test_status_labels_and_report_tables() -> None:
    rules = [(60, "no contact in 60 days"), (120, "no contact in 120 days")]
    assert [contact_status(d, rules) for d in (None, 0, 59, 60, 119, 120, 400)] == [
        "no contact yet",
        "active",
        "active",
        "no contact in 60 days",
        "no contact in 60 days",
        "no contact in 120 days",
        "no contact in 120 days",
    ]
    zone = ZoneInfo("Europe/Zagreb")
    today = date(2026, 11, 25)  # a Wednesday

    def activity(day: date, mailbox: str) -> ActivityView:
        return made_activity(
            "x",
            [],
            occurred_at=datetime(day.year, day.month, day.day, 10, tzinfo=timezone.utc),
            seen_in=(Sighting("s", "k", mailbox, "", None),),
        )

    reports = build_reports(
        [
            activity(date(2026, 11, 23), "alice"),
            activity(date(2026, 11, 24), "bob"),
            activity(date(2026, 11, 16), "alice"),
            activity(date(2026, 1, 1), "alice"),
        ],
        [
            customer(
                "a",
                first_contact=datetime(2026, 11, 2, tzinfo=timezone.utc),
                last_contact=datetime(2026, 11, 20, tzinfo=timezone.utc),
            ),
            customer("b", first_contact=None, created_at=datetime(2026, 10, 2, tzinfo=timezone.utc), last_contact=None),
            customer(
                "c",
                first_contact=datetime(2026, 3, 2, tzinfo=timezone.utc),
                last_contact=datetime(2026, 7, 1, tzinfo=timezone.utc),
            ),
        ],
        today,
        zone,
    )
    assert reports.weekly_headers == ("Week", "alice", "bob")
    assert reports.weekly[-1] == ("2026-11-23", 1, 1) and reports.weekly[-2] == ("2026-11-16", 1, 0)
    assert len(reports.weekly) == 12
    assert dict(reports.monthly_new) == {
        **{m: 0 for m, _ in reports.monthly_new},
        "2026-03": 1,
        "2026-10": 1,
        "2026-11": 1,
    }
    assert dict(reports.contact_buckets) == {
        "0-30 days": 1,
        "31-60 days": 0,
        "61-90 days": 0,
        "91-180 days": 1,
        "over 180 days": 0,
        "never": 1,
    }


def test_review_lists_the_newest_unmatched_up_to_the_cap_and_every_merge_suggestion() -> None:
    from syncd.outputs.view import build_view

    def unmatched(n: int) -> ActivityView:
        return ActivityView(
            id=n,
            kind="email",
            occurred_at=datetime(2026, 11, n, tzinfo=timezone.utc),
            direction="inbound",
            subject=f"s{n}",
            snippet="",
            participants=(),
            message_id=f"m{n}",
        )

    view = build_view(
        [unmatched(n) for n in range(1, 6)],
        [],
        date(2026, 11, 23),
        ZoneInfo("UTC"),
        merges=[("M2-1", "Possible duplicate", "same name", "merge #2 into #1")],
        review_max_rows=2,
    )
    assert [row[1] for row in view.review] == ["Possible duplicate", "s5", "s4"]
    assert len(view.timeline) == 5
