"""Outputs never harm staff files and never carry formulas, whatever the sources hold.

* An output path that is a source (also through a link) is refused by the config;
  a file at the output path that syncd did not write is never replaced.
* Hostile text in every mapped column of every source (customers, orders, calls, mail)
  ends up in no workbook as a formula: every text that could be one is a quoted string.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import openpyxl
import pytest

from support.helpers import make_message, run_syncd, write_config, write_maildir
from syncd.outputs.cells import FORMULA_PREFIXES, plain_text
from syncd.outputs.labels import category_for

HOSTILE = ["=1+1", "+SUM(A1:A3)", "-2+3", "@cmd", '=HYPERLINK("http://evil.example","x")', "\t=tab"]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _text_sheet(path: Path, title: str, rows: list[list[object]]) -> None:
    """A staff workbook whose cells hold these values as text (as a user typing '=1+1 gets)."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = title
    for row in rows:
        sheet.append(row)
    for line in sheet.iter_rows():
        for cell in line:
            if isinstance(cell.value, str):
                cell.data_type = "s"
    book.save(path)


CUSTOMERS = """
[[sources]]
name = "customers"
kind = "excel_customers"
path = "customers.xlsx"
[sources.columns]
company = "Company"
person = "Person"
email = "Email"
phone = "Phone"
domain = "Web"
owner = "Owner"
"""


def test_an_output_that_is_a_source_is_refused_and_the_staff_file_stays_as_it_was(tmp_path: Path) -> None:
    _text_sheet(tmp_path / "customers.xlsx", "Customers", [["Company", "Email"], ["Adriatic", "a@adriatic.hr"]])
    before = _digest(tmp_path / "customers.xlsx")
    (tmp_path / "link.xlsx").symlink_to(tmp_path / "customers.xlsx")
    for target in ("customers.xlsx", "link.xlsx"):
        config = write_config(
            tmp_path / "syncd.toml",
            f'[service]\nstate_dir = "state"\n[timeline]\npath = "{target}"\n'
            '[[sources]]\nname = "customers"\nkind = "excel_customers"\npath = "customers.xlsx"\n'
            '[sources.columns]\ncompany = "Company"\nemail = "Email"\n',
        )
        checked = run_syncd("check-config", "-c", str(config))
        assert checked.returncode == 2, checked.stdout + checked.stderr
        assert "timeline.path" in checked.stderr and "sources[0] (customers).path" in checked.stderr
        assert run_syncd("sync", "--once", "-c", str(config)).returncode == 2
    assert _digest(tmp_path / "customers.xlsx") == before


def test_a_file_syncd_did_not_write_is_never_replaced(tmp_path: Path) -> None:
    write_maildir(tmp_path / "mail", {"1.M1.h": make_message(1)})
    foreign = tmp_path / "timeline.xlsx"
    _text_sheet(foreign, "Budget", [["Quarter", "Amount"], ["Q1", 100]])
    before = _digest(foreign)
    config = write_config(
        tmp_path / "syncd.toml",
        '[service]\nstate_dir = "state"\n[[sources]]\nname = "mail"\n'
        'kind = "maildir"\npath = "mail"\nowner = "alice@ourco.example"\n',
    )
    result = run_syncd("sync", "--once", "-c", str(config))
    assert result.returncode == 1 and "was not written by syncd" in result.stdout, result.stdout + result.stderr
    assert _digest(foreign) == before
    status = run_syncd("status", "-c", str(config))
    assert status.returncode == 1 and "not written by syncd" in status.stdout
    foreign.unlink()  # the admin moved it away
    assert run_syncd("sync", "--once", "-c", str(config)).returncode == 0
    book = openpyxl.load_workbook(foreign, read_only=True)
    assert book.properties.keywords == "syncd-timeline" and book.sheetnames[0] == "Timeline"
    book.close()
    again = run_syncd("sync", "--once", "-c", str(config))  # its own file, replaced as usual
    assert again.returncode == 0, again.stdout


def test_hostile_text_in_every_mapped_column_of_every_source_never_becomes_a_formula(tmp_path: Path) -> None:
    evil = HOSTILE
    _text_sheet(
        tmp_path / "customers.xlsx",
        "Customers",
        [
            ["Company", "Person", "Email", "Phone", "Web", "Owner"],
            [evil[0], evil[1], "ivana@adriatic.hr", "+385 1 234 5678", "adriatic.hr", evil[3]],
            [evil[4], evil[2], "ana@tuscany.it", "-", "tuscany.it", evil[0]],
        ],
    )
    _text_sheet(
        tmp_path / "orders.xlsx",
        "Orders",
        [
            ["No", "Date", "Customer", "Amount", "Details", "Staff", "Currency"],
            [evil[0], "2026-11-02", evil[0], 100, evil[1], evil[4], "EUR"],
            [evil[3], "2026-11-03", evil[4], 200, evil[5], evil[2], "EUR"],
        ],
    )
    _text_sheet(
        tmp_path / "calls.xlsx",
        "Calls",
        [
            ["Date", "Phone", "Topic", "Notes", "Staff"],
            ["2026-11-04", "+385 1 234 5678", evil[2], evil[0], evil[1]],
        ],
    )
    write_maildir(
        tmp_path / "mail",
        {
            "1.M1.h": make_message(1, sender=f'"{evil[0]}" <ivana@adriatic.hr>', subject=evil[4], body=evil[1]),
            "2.M2.h": make_message(2, sender="stranger@unknown.example", subject=evil[3], body=evil[5]),
        },
    )
    text = (
        '[service]\nstate_dir = "state"\n[matching]\ninternal_domains = ["ourco.example"]\n'
        'default_phone_region = "HR"\n[timeline]\npath = "timeline.xlsx"\nper_owner = true\n'
        + CUSTOMERS
        + '[[sources]]\nname = "orders"\nkind = "excel_activities"\npath = "orders.xlsx"\nactivity = "order"\n'
        '[sources.columns]\ndate = "Date"\ncustomer = "Customer"\namount = "Amount"\nsubject = "No"\n'
        'details = "Details"\nstaff = "Staff"\ncurrency = "Currency"\n'
        '[[sources]]\nname = "calls"\nkind = "excel_activities"\npath = "calls.xlsx"\nactivity = "call"\n'
        '[sources.columns]\ndate = "Date"\nphone = "Phone"\nsubject = "Topic"\ndetails = "Notes"\nstaff = "Staff"\n'
        '[[sources]]\nname = "mail"\nkind = "maildir"\npath = "mail"\nowner = "alice@ourco.example"\n'
    )
    config = write_config(tmp_path / "syncd.toml", text)
    result = run_syncd("sync", "--once", "-c", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    workbooks = [tmp_path / "timeline.xlsx", *sorted((tmp_path / "timelines").glob("*.xlsx"))]
    assert len(workbooks) >= 2  # the timeline and at least one owner's
    seen_hostile = 0
    for path in workbooks:
        book = openpyxl.load_workbook(path)  # not read-only: data types and quote prefixes are visible
        for sheet in book.worksheets:
            for row in sheet.iter_rows():
                for cell in row:
                    assert cell.data_type != "f", f"{path.name}!{sheet.title}!{cell.coordinate} holds a formula"
                    if isinstance(cell.value, str) and cell.value.startswith(FORMULA_PREFIXES):
                        seen_hostile += 1
                        assert cell.quotePrefix, f"{path.name}!{sheet.title}!{cell.coordinate} {cell.value!r}"
    assert seen_hostile >= 20  # the hostile text did reach the workbooks, as text
    reports = openpyxl.load_workbook(tmp_path / "timeline.xlsx")["Reports"]
    assert any(c.value == evil[4] for row in reports.iter_rows() for c in row)  # a staff name as a header


@pytest.mark.parametrize("name", HOSTILE)
def test_names_in_categories_and_contacts_are_quoted_where_a_spreadsheet_would_compute_them(name: str) -> None:
    assert not category_for(name).startswith(FORMULA_PREFIXES)
    assert not plain_text(name).startswith(FORMULA_PREFIXES)
    assert plain_text("Adriatic Foods") == "Adriatic Foods" == category_for("Adriatic  Foods")


def test_the_timeline_path_too_long_for_the_file_system_is_a_clear_problem(tmp_path: Path) -> None:
    write_maildir(tmp_path / "mail", {})
    config = write_config(
        tmp_path / "syncd.toml",
        '[service]\nstate_dir = "state"\n[[sources]]\nname = "mail"\n'
        f'kind = "mbox"\npath = "{"x" * 300}.mbox"\nowner = "alice@ourco.example"\n',
    )
    checked = run_syncd("check-config", "-c", str(config))
    assert checked.returncode == 2 and "Traceback" not in checked.stderr, checked.stderr
    assert "File name too long" in checked.stderr and "sources[0] (mail).path" in checked.stderr
