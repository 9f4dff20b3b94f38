"""The customer workbook source: mapping errors name workbook, sheet and column; bad files are retried."""

from __future__ import annotations

from pathlib import Path

import openpyxl
import pytest

from syncd.connectors.excel_customers import ExcelCustomersConnector
from syncd.model.errors import SourceConfigError, SourceUnavailable
from syncd.model.records import CustomerKind, ReadOptions, SourceState

COLUMNS = {"company": "Company", "person": "Contact", "email": "E-mail", "phone": "Phone", "owner": "Owner"}


def workbook(path: Path, header: list[str], rows: list[list[object]], header_row: int = 1) -> Path:
    wb = openpyxl.Workbook()
    sheet = wb.active
    sheet.title = "Kunden"
    for _ in range(header_row - 1):
        sheet.append(["Customer list, exported 2026"])
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    wb.save(path)
    return path


def read(path: Path, columns: dict[str, str] = COLUMNS, header_row: int = 1, sheet: str | None = "Kunden"):
    connector = ExcelCustomersConnector(
        "c", ReadOptions(), path=path, sheet=sheet, header_row=header_row, columns=columns
    )
    return [r for b in connector.read(SourceState({}, {})) for r in b.records]


def test_rows_become_companies_and_people(tmp_path: Path) -> None:
    path = workbook(
        tmp_path / "c.xlsx",
        ["Company", "Contact", "E-mail", "Phone", "Owner"],
        [
            ["Adriatic Foods", "Ivana Horvat", "ivana@adriatic.hr; i.horvat@adriatic.hr", 385912345678.0, "alice"],
            [None, None, None, None, None],
            ["Adriatic Foods", "Marko Babić", "marko@adriatic.hr", "+385 1 234 567 / +385 91 111 2222", "alice"],
            ["Tuscany Wines", None, "info@tuscany.it", None, "bob"],
        ],
        header_row=3,
    )
    records = read(path, header_row=3)
    companies = [r for r in records if r.kind == CustomerKind.COMPANY]
    people = [r for r in records if r.kind == CustomerKind.PERSON]
    assert [c.name for c in companies] == ["Adriatic Foods", "Tuscany Wines"]
    assert companies[1].emails == ("info@tuscany.it",)
    assert [p.name for p in people] == ["Ivana Horvat", "Marko Babić"]
    assert people[0].emails == ("ivana@adriatic.hr", "i.horvat@adriatic.hr")
    assert people[0].phones == ("385912345678",)
    assert people[1].phones == ("+385 1 234 567", "+385 91 111 2222")
    assert people[0].company_key == companies[0].key
    assert "c.xlsx!Kunden row 4" == people[0].where


def test_misspelled_column_names_workbook_sheet_column_and_closest_header(tmp_path: Path) -> None:
    path = workbook(tmp_path / "c.xlsx", ["Company", "Contact", "Email", "Phone", "Owner"], [])
    with pytest.raises(SourceConfigError) as caught:
        read(path)
    message = str(caught.value)
    assert "c.xlsx!Kunden: column 'E-mail' (mapped to email) not found in header row 1" in message
    assert "closest header: 'Email'" in message


def test_missing_sheet_offers_the_closest_name(tmp_path: Path) -> None:
    path = workbook(tmp_path / "c.xlsx", ["Company"], [])
    with pytest.raises(SourceConfigError, match="no sheet 'Kunde'; did you mean 'Kunden'"):
        read(path, {"company": "Company"}, sheet="Kunde")


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated", b"not a zip at all"])
def test_truncated_or_mid_write_workbook_is_unavailable_not_half_read(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "c.xlsx"
    path.write_bytes(content)
    with pytest.raises(SourceUnavailable, match="not a complete"):
        read(path)


def test_half_of_a_real_workbook_is_unavailable(tmp_path: Path) -> None:
    path = workbook(tmp_path / "c.xlsx", ["Company", "Contact", "E-mail"], [["A", "B", "b@a.example"]] * 50)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SourceUnavailable):
        read(path, {"company": "Company", "person": "Contact", "email": "E-mail"})


def test_unchanged_file_is_not_parsed_again(tmp_path: Path) -> None:
    path = workbook(tmp_path / "c.xlsx", ["Company"], [["A"]])
    connector = ExcelCustomersConnector(
        "c", ReadOptions(), path=path, sheet=None, header_row=1, columns={"company": "Company"}
    )
    batches = list(connector.read(SourceState({}, {})))
    cursor = batches[-1].cursor
    assert cursor and list(connector.read(SourceState({"": cursor}, {"company:a": "x"}))) == []
