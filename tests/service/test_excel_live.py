"""The running service follows staff workbooks live and learns what admins type on Review."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import openpyxl

from support.helpers import make_message, run_syncd, wait_for, write_config, write_maildir
from support.workbooks import messy_customers, save_like_excel, sha256

CONFIG = """
[service]
state_dir = "state"
interval_seconds = 3600
timezone = "Europe/Zagreb"

[matching]
internal_domains = ["northwind.example"]

[timeline]
min_interval_seconds = 0

[[sources]]
name = "customers"
kind = "excel_customers"
path = "staff/customers.xlsx"
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
path = "staff/orders.xlsx"
key_columns = ["No"]
[sources.columns]
date = "Date"
customer = "Customer"
subject = "No"
amount = "Amount"

[[sources]]
name = "mail"
kind = "maildir"
path = "mail"
owner = "alice@northwind.example"
"""


def orders_book(rows: list[list[object]]) -> openpyxl.Workbook:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Orders"
    sheet.append(["No", "Date", "Customer", "Amount"])
    for row in rows:
        sheet.append(row)
    return book


def timeline_rows(root: Path, sheet: str = "Timeline") -> dict[str, tuple]:
    try:
        book = openpyxl.load_workbook(root / "timeline.xlsx", read_only=True)
    except Exception:  # noqa: BLE001 - not written yet, or being replaced
        return {}
    try:
        return {
            str(r[4] if sheet == "Timeline" else r[1]): r for r in book[sheet].iter_rows(min_row=2, values_only=True)
        }
    finally:
        book.close()


def test_edits_in_a_watched_workbook_reach_the_timeline_within_five_seconds(tmp_path: Path) -> None:
    staff = tmp_path / "staff"
    staff.mkdir()
    messy_customers(staff / "customers.xlsx")
    orders = staff / "orders.xlsx"
    orders_book([["A-1", "2026-11-02", "Adriatic Foods", 100], ["A-2", "2026-11-03", "Tuscany Wines", 200]]).save(
        orders
    )
    write_maildir(tmp_path / "mail", {})
    config = write_config(tmp_path / "syncd.toml", CONFIG)
    log = open(tmp_path / "log", "w")  # noqa: SIM115 - the child writes it until it is stopped
    process = subprocess.Popen(
        [sys.executable, "-m", "syncd", "run", "-c", str(config)], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=log
    )
    try:
        wait_for(lambda: {"A-1", "A-2"} <= set(timeline_rows(tmp_path)), timeout=60, what="first pass")
        customers_hash = sha256(staff / "customers.xlsx")
        # Edit a row (customer changes), add a row, then delete a row; each saved the way Excel saves.
        save_like_excel(
            orders_book([["A-1", "2026-11-02", "Tuscany Wines", 100], ["A-2", "2026-11-03", "Tuscany Wines", 200]]),
            orders,
        )
        wait_for(
            lambda: timeline_rows(tmp_path).get("A-1", (None, None))[1] == "Tuscany Wines S.r.l.",
            timeout=5,
            interval=0.1,
            what="edited row in the timeline",
        )
        save_like_excel(
            orders_book(
                [
                    ["A-1", "2026-11-02", "Tuscany Wines", 100],
                    ["A-2", "2026-11-03", "Tuscany Wines", 200],
                    ["A-3", "2026-11-04", "Baltic Amber", 300],
                ]
            ),
            orders,
        )
        wait_for(lambda: "A-3" in timeline_rows(tmp_path), timeout=5, interval=0.1, what="added row")
        save_like_excel(
            orders_book([["A-1", "2026-11-02", "Tuscany Wines", 100], ["A-3", "2026-11-04", "Baltic Amber", 300]]),
            orders,
        )
        wait_for(
            lambda: "A-2" not in timeline_rows(tmp_path) and "A-3" in timeline_rows(tmp_path),
            timeout=5,
            interval=0.1,
            what="deleted row gone from the timeline",
        )
        assert sha256(staff / "customers.xlsx") == customers_hash
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        log.close()
    text = (tmp_path / "log").read_text()
    assert process.returncode == 0, text[-3000:]
    assert "~$orders.xlsx" not in text  # Excel's owner file is never taken for the workbook


def test_a_review_assignment_is_learned_and_applied_to_later_mail(tmp_path: Path) -> None:
    staff = tmp_path / "staff"
    staff.mkdir()
    messy_customers(staff / "customers.xlsx")
    orders_book([["A-1", "2026-11-02", "Adriatic Foods", 100]]).save(staff / "orders.xlsx")
    write_maildir(
        tmp_path / "mail",
        {
            "1": make_message(
                1,
                sender="Tom Jones <tomjones1987@gmail.com>",
                to="alice@northwind.example",
                subject="Question from a gmail address",
            ),
            "2": make_message(
                2, sender="someone@unknown-shop.example", to="alice@northwind.example", subject="Who is this"
            ),
        },
    )
    config = write_config(tmp_path / "syncd.toml", CONFIG)
    assert run_syncd("sync", "--once", "-c", str(config)).returncode == 0
    review = timeline_rows(tmp_path, "Review")
    assert set(review) == {"Question from a gmail address", "Who is this"}
    # The admin types customers into the Customer column of Review and saves in Excel.
    book = openpyxl.load_workbook(tmp_path / "timeline.xlsx")
    sheet = book["Review"]
    header = [c.value for c in sheet[1]]
    customer_column = header.index("Customer") + 1
    for row in range(2, sheet.max_row + 1):
        subject = sheet.cell(row, 2).value
        sheet.cell(row, customer_column).value = {
            "Question from a gmail address": "tuscany wines",
            "Who is this": "Nonexistent Shop",
        }[subject]
    save_like_excel(book, tmp_path / "timeline.xlsx")
    assert run_syncd("sync", "--once", "-c", str(config)).returncode == 0
    timeline = timeline_rows(tmp_path)
    assert timeline["Question from a gmail address"][1] == "Tuscany Wines S.r.l."
    review = timeline_rows(tmp_path, "Review")
    assert list(review) == ["Who is this"]  # the learned row left Review; the unresolved one stays
    kept = review["Who is this"]
    assert kept[7] == "Nonexistent Shop"  # what the admin typed is kept...
    assert "no customer named 'Nonexistent Shop'" in kept[8]  # ...with why it did not apply
    # Later mail from the same address links by the learned rule, without anyone typing.
    write_maildir(
        tmp_path / "mail",
        {"3": make_message(3, sender="tomjones1987@gmail.com", to="alice@northwind.example", subject="Follow-up")},
    )
    assert run_syncd("sync", "--once", "-c", str(config)).returncode == 0
    assert timeline_rows(tmp_path)["Follow-up"][1] == "Tuscany Wines S.r.l."
    explained = run_syncd("explain", "<m3@test.example>", "-c", str(config))
    assert "manual" in explained.stdout and "tomjones1987@gmail.com" in explained.stdout
    listed = run_syncd("rules", "-c", str(config)).stdout
    assert "email=tomjones1987@gmail.com -> Tuscany Wines S.r.l." in listed
    assert "'Nonexistent Shop' not applied: no customer named" in listed
    rule_id = next(line.split()[0] for line in listed.splitlines() if "tomjones1987" in line)
    assert run_syncd("rules", "--delete", rule_id, "-c", str(config)).returncode == 0
    assert "tomjones1987" not in run_syncd("rules", "-c", str(config)).stdout
    assert timeline_rows(tmp_path)["Follow-up"][1] is None  # matched again without the rule
