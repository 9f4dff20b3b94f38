"""Excel's edge values: 1900 serial dates, numbers in a date column, error cells, formulas never calculated."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from openpyxl.utils.datetime import from_excel

from support.workbooks import set_error_cells
from syncd.connectors.cells import CellError, cell_datetime
from syncd.connectors.excel_activities import ActivitySheet, ExcelActivitiesConnector
from syncd.connectors.excel_customers import ExcelCustomersConnector
from syncd.model.records import ActivityKind, ReadOptions, SourceState

UTC = ZoneInfo("UTC")


@pytest.mark.parametrize("serial", [1, 2, 31, 59, 59.5, 61, 62, 366, 25569, 45000.25, 2958465])
def test_serial_dates_agree_with_openpyxls_reading_of_excels_calendar(serial: float) -> None:
    expected = from_excel(serial).replace(tzinfo=timezone.utc)  # openpyxl knows the 1900 leap-year bug
    assert cell_datetime(serial, UTC) == expected.replace(microsecond=0)


def test_serial_1_is_the_first_of_january_1900_and_60_is_the_day_that_never_was() -> None:
    assert cell_datetime(1, UTC) == datetime(1900, 1, 1, tzinfo=timezone.utc)
    assert cell_datetime(61, UTC) == datetime(1900, 3, 1, tzinfo=timezone.utc)
    with pytest.raises(CellError, match="never was"):
        cell_datetime(60, UTC)


def _orders(path: Path, rows: list[list[object]]) -> Path:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Orders"
    sheet.append(["No", "Date", "Customer", "Amount"])
    for row in rows:
        sheet.append(row)
    book.save(path)
    return path


def _read(path: Path) -> tuple[dict[str, object], dict[str, str]]:
    columns = {"date": "Date", "customer": "Customer", "amount": "Amount", "subject": "No"}
    connector = ExcelActivitiesConnector(
        "orders",
        ReadOptions(),
        ActivitySheet(
            path=path, sheet="Orders", header_row=1, columns=columns, kind=ActivityKind.ORDER, key_columns=("No",)
        ),
    )
    batches = list(connector.read(SourceState({}, {})))
    records = {r.subject: r for b in batches for r in b.records}
    problems = {p.key: p.reason for b in batches for p in b.problems}
    return records, problems


def test_error_cells_and_formulas_never_calculated_are_quarantined_with_the_cell_named(tmp_path: Path) -> None:
    path = _orders(
        tmp_path / "orders.xlsx",
        [
            ["A-1", "2026-11-02", "Adriatic Foods", 100],
            ["A-2", "2026-11-03", "=VLOOKUP(9,Z1:Z2,1)", 200],  # Excel saved #N/A
            ["A-3", "2026-11-04", "=#REF!+1", 300],  # a reference to a deleted sheet
            ["A-4", "2026-11-05", "Tuscany", "=1/0"],
            ["A-5", "2026-11-06", "=B2", 500],  # openpyxl-made: a formula never calculated
        ],
    )
    set_error_cells(path, 1, {"C3": "#N/A", "C4": "#REF!", "D5": "#DIV/0!"})
    records, problems = _read(path)
    assert set(records) == {"A-1"}
    assert problems["row:A-2"] == "C3 (Customer): the cell holds the error #N/A"
    assert problems["row:A-3"] == "C4 (Customer): the cell holds the error #REF!"
    assert problems["row:A-4"] == "D5 (Amount): the cell holds the error #DIV/0!"
    assert "C6 (Customer): the cell's formula has no saved result" in problems["row:A-5"]


def test_numbers_in_the_date_column_are_refused_when_they_cannot_be_dates_and_warned_about(
    tmp_path: Path, caplog
) -> None:
    path = _orders(tmp_path / "orders.xlsx", [["A-1", 100, "Adriatic", 1], ["A-2", 46000, "Adriatic", 2]])
    with caplog.at_level(logging.WARNING):
        records, problems = _read(path)
    assert "is a number, not a date" in problems["row:A-1"] and "1900-04-09" in problems["row:A-1"]
    assert records["A-2"].occurred_at == datetime(2025, 12, 9, tzinfo=timezone.utc)
    assert "holds 1 plain numbers, read as Excel serial dates" in caplog.text


def test_a_customer_row_with_an_error_cell_is_quarantined_not_read_as_nameless(tmp_path: Path) -> None:
    path = tmp_path / "customers.xlsx"
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Company", "Email"])
    sheet.append(["Adriatic Foods", "ivana@adriatic.hr"])
    sheet.append(["=Sheet9!A1", "marko@kras.hr"])
    book.save(path)
    set_error_cells(path, 1, {"A3": "#REF!"})
    connector = ExcelCustomersConnector(
        "customers",
        ReadOptions(),
        path=path,
        sheet=None,
        header_row=1,
        columns={"company": "Company", "email": "Email"},
    )
    batches = list(connector.read(SourceState({}, {})))
    names = sorted(r.name for b in batches for r in b.records)
    [problem] = [p for b in batches for p in b.problems]
    assert "Adriatic Foods" in names and not any("kras" in n for n in names)
    assert problem.reason == "A3 (Company): the cell holds the error #REF!" and "row 3" in problem.where
    fixed = openpyxl.load_workbook(path)
    fixed.active["A3"] = "Kraš d.d."
    fixed.save(path)
    state = SourceState(
        {},
        {p.key: p.version for b in batches for p in b.problems}
        | {r.key: r.version for b in batches for r in b.records},
    )
    again = list(connector.read(state))
    assert problem.key in [k for b in again for k in b.removed]  # the quarantine entry goes once fixed
    assert "Kraš d.d." in [r.name for b in again for r in b.records]
