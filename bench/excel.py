"""Excel benchmark: reading a 100,000-row customer sheet, writing the timeline, one-row updates.

In one run, on the same generated workbook:

* ``raw_read_s``: a plain openpyxl read-only pass over every row (values only), the
  baseline any Python tool reading .xlsx starts from;
* ``ingest_s``: syncd's full ingest of that sheet as a source (read, parse, normalize,
  store in SQLite), from an empty store;
* ``timeline_write_s``: building and writing a timeline workbook of 100,000 activities;
* ``one_row_update_s``: after one row of the sheet changed, the pass that brings the store
  up to date (re-read, diff, commit of the one changed customer, re-match).

Run:  python bench/excel.py [--rows 100000]
Ends with one line of key=value figures. Target: ingest_ratio <= 1.5.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

# syncd itself comes from the installed package; only the test support code from the tree.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import openpyxl
from openpyxl import Workbook

from syncd.config import parse_config
from syncd.model.records import Participant, Role
from syncd.model.views import ActivityView, LinkedCustomer, Sighting
from syncd.outputs.view import build_view
from syncd.outputs.workbook import write_timeline
from syncd.pipeline import IndexCache, Pipeline, peak_rss_mb
from syncd.store import Store

HEADER = ["Company", "Contact", "Email", "Phone", "Website", "Owner"]


def write_sheet(path: Path, rows: int, changed_row: int | None = None) -> None:
    book = Workbook(write_only=True)
    sheet = book.create_sheet("Customers")
    sheet.append(HEADER)
    for n in range(rows):
        contact = f"Person {n}" if n != changed_row else f"Person {n} (renamed)"
        sheet.append(
            [
                f"Company {n} d.o.o.",
                contact,
                f"person{n}@company{n}.example",
                385912000000 + n,
                f"company{n}.example",
                f"owner{n % 20}@ourco.example",
            ]
        )
    book.save(path)


def raw_read(path: Path) -> tuple[float, int]:
    started = time.perf_counter()
    book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    count = sum(1 for _row in book["Customers"].iter_rows(values_only=True))
    book.close()
    return time.perf_counter() - started, count


CONFIG = """
[service]
state_dir = "{state}"
batch_size = 2000
[matching]
internal_domains = ["ourco.example"]
default_phone_region = "HR"
[timeline]
path = "{state}/timeline.xlsx"
[[sources]]
name = "customers"
kind = "excel_customers"
path = "{sheet}"
sheet = "Customers"
header_row = 1
[sources.columns]
company = "Company"
person = "Contact"
email = "Email"
phone = "Phone"
domain = "Website"
owner = "Owner"
"""


def synthetic_activities(count: int) -> list[ActivityView]:
    start = datetime(2026, 11, 20, 12, tzinfo=timezone.utc)
    return [
        ActivityView(
            id=n,
            kind="email",
            occurred_at=start - timedelta(minutes=7 * n),
            direction="inbound",
            subject=f"Re: order {n} for next week",
            snippet="Thank you for the offer, we would like to " * 3,
            participants=(
                Participant(f"person{n}@company{n}.example", f"Person {n}", Role.FROM),
                Participant("alice@ourco.example", "Alice", Role.TO),
            ),
            message_id=f"m{n}@company{n}.example",
            customers=(LinkedCustomer(n, f"Company {n} d.o.o.", "company", "domain", 0.9, ""),),
            seen_in=(Sighting("alice-mail", str(n), "alice@ourco.example", "INBOX", None),),
        )
        for n in range(count)
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="syncd-bench-excel-") as temp:
        root = Path(temp)
        sheet = root / "customers.xlsx"
        write_sheet(sheet, args.rows)
        raw_s, count = raw_read(sheet)
        print(f"raw openpyxl read-only pass: {count} rows in {raw_s:.2f} s")

        config = parse_config(CONFIG.format(state=root / "state", sheet=sheet), root / "syncd.toml")
        (root / "state").mkdir()
        store = Store.open(config.store_url)
        cache = IndexCache()  # as the service keeps it between passes
        pipeline = Pipeline(config, store, index_cache=cache)
        started = time.perf_counter()
        result = pipeline.sync_source(config.sources[0])
        ingest_s = time.perf_counter() - started
        assert result.ok, result.error
        customers = len(store.reads.customers())
        print(
            f"syncd ingest: {customers} customers (companies and people) in {ingest_s:.2f} s "
            f"({ingest_s / raw_s:.2f}x the raw read)"
        )

        activities = synthetic_activities(args.rows)
        started = time.perf_counter()
        view = build_view(activities, [], date(2026, 11, 23), ZoneInfo("Europe/Zagreb"), reports=True)
        write_timeline(root / "timeline-100k.xlsx", view)
        timeline_s = time.perf_counter() - started
        print(
            f"timeline workbook of {len(activities)} activities written in {timeline_s:.2f} s "
            f"({(root / 'timeline-100k.xlsx').stat().st_size / 2**20:.1f} MB)"
        )

        write_sheet(sheet, args.rows, changed_row=args.rows // 2)
        pipeline = Pipeline(config, store, index_cache=cache)
        started = time.perf_counter()
        pipeline.refresh_index()
        result = pipeline.sync_source(config.sources[0])
        if result.customers_changed:
            store.links.rematch(pipeline.link)
        update_s = time.perf_counter() - started
        assert result.ok and result.updated + result.customers_changed >= 1, result
        print(f"one changed row: customers_changed={result.customers_changed} in {update_s:.2f} s")
        store.close()
    print(
        f"rows={args.rows} raw_read_s={raw_s:.2f} ingest_s={ingest_s:.2f} ingest_ratio={ingest_s / raw_s:.2f} "
        f"timeline_write_s={timeline_s:.2f} one_row_update_s={update_s:.2f} peak_rss_mb={peak_rss_mb()}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
