"""Mapped staff workbooks as sources: messy sheets load right, bad mappings say exactly what
is wrong, and the workbooks are never changed by syncd."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from support.helpers import run_syncd, write_config
from support.workbooks import messy_calls, messy_customers, messy_orders, set_cached_values, sha256
from syncd.connectors.excel_activities import ActivitySheet, ExcelActivitiesConnector
from syncd.model.errors import SourceConfigError
from syncd.model.records import ActivityKind, ReadOptions, SourceState

ORDER_COLUMNS = {
    "date": "Date",
    "customer": "Customer",
    "email": "Customer email",
    "subject": "Order no.",
    "amount": "Amount (EUR)",
    "staff": "Sales rep",
}


def read_orders(path: Path, columns: dict[str, str] = ORDER_COLUMNS):
    connector = ExcelActivitiesConnector(
        "orders",
        ReadOptions(),
        ActivitySheet(
            path=path,
            sheet="Orders",
            header_row=None,
            columns=columns,
            kind=ActivityKind.ORDER,
            key_columns=("Order no.",),
            zone="Europe/Zagreb",
            currency="EUR",
        ),
    )
    batches = list(connector.read(SourceState({}, {})))
    return [r for b in batches for r in b.records], [p for b in batches for p in b.problems], batches


def test_messy_order_sheet_loads_every_row_right(tmp_path: Path) -> None:
    records, problems, batches = read_orders(messy_orders(tmp_path / "orders.xlsx"))
    by_key = {r.key: r for r in records}
    assert sorted(by_key) == [
        "row:2026-101",
        "row:2026-102",
        "row:2026-103",
        "row:2026-104",
        "row:2026-106",
        "row:2026-107",
    ]
    utc = timezone.utc
    assert by_key["row:2026-101"].occurred_at == datetime(2026, 10, 5, 8, 30, tzinfo=utc)  # date cell, CEST
    assert by_key["row:2026-102"].occurred_at == datetime(2026, 10, 5, 22, 0, tzinfo=utc)  # serial 46301 = 6 Oct
    assert by_key["row:2026-103"].occurred_at == datetime(2026, 11, 2, 23, 0, tzinfo=utc)  # "3.11.2026."
    assert by_key["row:2026-104"].occurred_at == datetime(2026, 11, 5, 13, 30, tzinfo=utc)  # "05/11/2026 14:30"
    assert by_key["row:2026-101"].amount == Decimal("1250.5")
    assert by_key["row:2026-102"].amount == Decimal("360")  # the formula's cached value
    assert by_key["row:2026-103"].amount == Decimal("1234.50")  # "1.234,50 €"
    assert by_key["row:2026-101"].participants[0].email == "ivana@adriaticfoods.hr"
    assert by_key["row:2026-103"].hint("customer-ref") == "ADRIATIC FOODS"
    assert by_key["row:2026-101"].mailbox == "alice@northwind.example"
    assert by_key["row:2026-101"].link.endswith("orders.xlsx#Orders!A5")
    assert [(p.key, p.where) for p in problems] == [("row:2026-105", "orders.xlsx!Orders row 11")]
    assert "column 'Date'" in problems[0].reason and "'not a date' is not a date" in problems[0].reason
    assert batches[-1].listing_complete and batches[-1].listed == 7


def test_unchanged_rows_are_not_sent_again_and_deleted_rows_are_removed(tmp_path: Path) -> None:
    import openpyxl

    path = messy_orders(tmp_path / "orders.xlsx")
    connector = ExcelActivitiesConnector(
        "orders",
        ReadOptions(),
        ActivitySheet(
            path=path,
            sheet="Orders",
            header_row=4,
            columns=ORDER_COLUMNS,
            kind=ActivityKind.ORDER,
            key_columns=("Order no.",),
        ),
    )
    first = list(connector.read(SourceState({}, {})))
    known = {r.key: r.version for b in first for r in b.records} | {p.key: p.version for b in first for p in b.problems}
    cursor = first[-1].cursor
    assert list(connector.read(SourceState({"": cursor}, known))) == []  # same file: nothing read
    book = openpyxl.load_workbook(path)
    sheet = book["Orders"]
    sheet["G5"] = "bob@northwind.example"  # edit row 5
    sheet.delete_rows(12)  # delete order 2026-106
    book.save(path)
    set_cached_values(path, 2, {"F6": 360})  # as Excel would keep it (openpyxl drops cached values)
    again = list(connector.read(SourceState({"": cursor}, known)))
    assert [r.key for b in again for r in b.records] == ["row:2026-101"]
    assert again[-1].removed == ("row:2026-106",)


def test_a_misspelled_column_names_workbook_sheet_column_and_the_closest_header(tmp_path: Path) -> None:
    path = messy_orders(tmp_path / "orders.xlsx")
    with pytest.raises(SourceConfigError) as caught:
        read_orders(path, {**ORDER_COLUMNS, "amount": "Amount EUR"})
    assert str(caught.value) == (
        "orders.xlsx!Orders: column 'Amount EUR' (mapped to amount) not found in the first 13 rows "
        "(best guess: row 4); closest header: 'Amount (EUR)'"
    )


CONFIG = """
[service]
state_dir = "state"
timezone = "Europe/Zagreb"

[matching]
internal_domains = ["northwind.example"]
default_phone_region = "HR"

[[sources]]
name = "customers"
kind = "excel_customers"
path = "staff/customers.xlsm"
[sources.columns]
company = "Company"
person = "Contact"
email = "E-mail"
phone = "Phone"
domain = "Website"
owner = "Owner"

[[sources]]
name = "orders"
kind = "excel_activities"
activity = "order"
path = "staff/orders.xlsx"
sheet = "Orders"
key_columns = ["Order no."]
currency = "EUR"
[sources.columns]
date = "Date"
customer = "Customer"
email = "Customer email"
subject = "Order no."
amount = "{amount}"
staff = "Sales rep"

[[sources]]
name = "calls"
kind = "excel_activities"
activity = "call"
path = "staff/calls.xlsx"
phone_region = "PL"
[sources.columns]
date = "When"
phone = "Number"
subject = "Topic"
details = "Notes"
staff = "Who"
"""


def staff_folder(tmp_path: Path) -> dict[Path, str]:
    staff = tmp_path / "staff"
    staff.mkdir()
    messy_customers(staff / "customers.xlsm")
    messy_orders(staff / "orders.xlsx")
    messy_calls(staff / "calls.xlsx")
    return {p: sha256(p) for p in staff.iterdir()}


def test_customers_orders_and_calls_from_config_link_and_staff_files_stay_byte_identical(tmp_path: Path) -> None:
    import openpyxl

    hashes = staff_folder(tmp_path)
    config = write_config(tmp_path / "syncd.toml", CONFIG.format(amount="Amount (EUR)"))
    done = run_syncd("sync", "--once", "-c", str(config))
    assert done.returncode == 0, done.stdout + done.stderr
    assert run_syncd("sync", "--once", "-c", str(config)).returncode == 0  # a second pass changes nothing either
    book = openpyxl.load_workbook(tmp_path / "timeline.xlsx")
    rows = {r[4]: r for r in book["Timeline"].iter_rows(min_row=2, values_only=True)}
    assert rows["2026-101"][1] == "Adriatic Foods d.o.o.; Ivana Horvat"  # by email (person and company)
    assert rows["2026-103"][1] == "Adriatic Foods d.o.o."  # by name, case and legal form aside
    assert rows["2026-104"][1] == "Adriatic Foods d.o.o."  # "Adriatik Foods": fuzzy (0.93), clear of the rest
    assert rows["2026-107"][1] is None  # "Adria Foods" scores 0.88: below fuzzy_auto_link, so Review
    assert rows["2026-102"][1] == "Tuscany Wines S.r.l."
    assert rows["2026-106"][1] == "Baltic Amber Sp. z o.o."
    assert rows["Delivery date"][1] == "Adriatic Foods d.o.o.; Ivana Horvat"  # phone stored as a float
    assert rows["Price question"][1] == "Baltic Amber Sp. z o.o.; Piotr Nowak"  # Polish local number, PL region
    assert rows["Price question"][5] == "@Piotr: send the price list"
    assert rows["Wrong number"][1] is None
    assert rows["2026-101"][2] == "order" and rows["Delivery date"][2] == "call"
    assert rows["2026-101"][10].startswith("file://") and rows["2026-101"][10].endswith("#Orders!A5")
    review = {r[1]: r for r in book["Review"].iter_rows(min_row=2, values_only=True)}
    assert list(review) == ["2026-107", "Wrong number"]
    assert review["2026-107"][6] == "Adriatic Foods d.o.o. (88%)"  # Suggested customers
    assert review["Wrong number"][3] == "+1 212 555 0100"
    status = run_syncd("quarantine", "-c", str(config))
    assert "orders.xlsx!Orders row 11" in status.stdout and "'not a date' is not a date" in status.stdout
    assert {p: sha256(p) for p in hashes} == hashes


def test_bad_header_is_reported_by_check_config_and_status(tmp_path: Path) -> None:
    staff_folder(tmp_path)
    config = write_config(tmp_path / "syncd.toml", CONFIG.format(amount="Amount"))
    checked = run_syncd("check-config", "-c", str(config))
    assert checked.returncode == 2
    assert (
        "sources[1] (orders).columns: orders.xlsx!Orders: column 'Amount' (mapped to amount) not found in the "
        "first 13 rows (best guess: row 4); closest header: 'Amount (EUR)'"
    ) in checked.stdout + checked.stderr
    run_syncd("sync", "--once", "-c", str(config))
    status = run_syncd("status", "-c", str(config))
    assert "column 'Amount' (mapped to amount) not found" in status.stdout


def test_a_workbook_changing_while_read_is_refused_and_read_whole_next_time(tmp_path: Path, monkeypatch) -> None:
    import syncd.connectors.sheets as sheets
    from syncd.model.errors import SourceUnavailable

    path = messy_orders(tmp_path / "orders.xlsx")
    real_stat = sheets._stat
    calls = {"n": 0}

    def stat_during_a_save(p: Path) -> tuple[int, int]:
        calls["n"] += 1
        size, mtime = real_stat(p)
        return (size, mtime + calls["n"])  # a different mtime after the read: a save happened meanwhile

    monkeypatch.setattr(sheets, "_stat", stat_during_a_save)
    with pytest.raises(SourceUnavailable, match="changed while it was being read"):
        read_orders(path)
    monkeypatch.setattr(sheets, "_stat", real_stat)
    records, _problems, _batches = read_orders(path)
    assert len(records) == 6


def test_an_unchanged_save_changes_nothing_and_does_not_rewrite_the_timeline(tmp_path: Path) -> None:
    import openpyxl

    from syncd.config import parse_config
    from syncd.pipeline import Pipeline
    from syncd.store import Store

    staff_folder(tmp_path)
    (tmp_path / "state").mkdir()
    config = parse_config(CONFIG.format(amount="Amount (EUR)"), tmp_path / "syncd.toml")
    store = Store.open(config.store_url)
    Pipeline(config, store).run_pass()
    before = (tmp_path / "timeline.xlsx").stat().st_mtime_ns
    book = openpyxl.load_workbook(tmp_path / "staff" / "calls.xlsx")
    book.save(tmp_path / "staff" / "calls.xlsx")  # Ctrl+S with no edit: new bytes, same content
    result = Pipeline(config, store).run_pass()
    calls = next(s for s in result.sources if s.name == "calls")
    assert (calls.new, calls.updated, calls.removed) == (0, 0, 0)
    assert not result.timeline_written and (tmp_path / "timeline.xlsx").stat().st_mtime_ns == before
    store.close()
