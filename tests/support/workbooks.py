"""Staff-like workbooks for tests: the mess real sheets have.

Built with openpyxl, then, where a real Excel file would hold a formula's cached value
(openpyxl cannot compute one), the value is put into the file's XML the way Excel stores
it (``<f>…</f><v>…</v>``).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

import openpyxl


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def set_cached_values(path: Path, sheet_index: int, values: dict[str, Any]) -> None:
    """Give formula cells (by reference, e.g. ``"F5"``) the cached value Excel would have saved."""
    member = f"xl/worksheets/sheet{sheet_index}.xml"
    with zipfile.ZipFile(path) as source:
        items = [(info, source.read(info.filename)) for info in source.infolist()]
    out = path.with_suffix(".tmp")
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info, data in items:
            if info.filename == member:
                xml = data.decode("utf-8")
                for ref, value in values.items():
                    xml, count = re.subn(
                        rf'(<c r="{ref}"[^>]*>)(<f>[^<]*</f>)(<v\s*/>|<v></v>)?', rf"\g<1>\g<2><v>{value}</v>", xml
                    )
                    assert count == 1, f"no formula cell {ref} in {member}"
                data = xml.encode("utf-8")
            target.writestr(info, data)
    os.replace(out, path)


def save_like_excel(workbook: openpyxl.Workbook, path: Path) -> None:
    """Save the way Excel does: write a temporary file in the same folder, then rename it
    over the workbook (leaving an owner file ``~$name`` around meanwhile)."""
    owner = path.with_name("~$" + path.name)
    owner.write_bytes(b"\x00owner")
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix="~", suffix=".tmp")
    os.close(handle)
    workbook.save(temp)
    os.replace(temp, path)
    owner.unlink()


def messy_orders(path: Path) -> Path:
    """Orders with a title block, the header on row 4, a merged month row, blank rows,
    dates as cells, serial numbers and text, amounts as numbers, formulas and text, and
    a hidden sheet."""
    wb = openpyxl.Workbook()
    cover = wb.active
    cover.title = "Read me"
    cover["A1"] = "Orders are kept on the hidden sheet."
    ws = wb.create_sheet("Orders")
    ws.sheet_state = "hidden"
    ws["A1"] = "Northwind orders 2026"
    ws.merge_cells("A1:G1")
    ws["A2"] = "exported by Alice"
    ws.append([])
    ws.append(["Order no.", "Date", "Customer", "Customer email", "Qty", "Amount (EUR)", "Sales rep"])  # row 4
    ws.append(
        [
            "2026-101",
            datetime(2026, 10, 5, 10, 30),
            "Adriatic Foods d.o.o.",
            "ivana@adriaticfoods.hr",
            10,
            1250.5,
            "alice@northwind.example",
        ]
    )  # row 5: a date cell
    ws.append(["2026-102", 46301, "Tuscany Wines", None, 3, "=E6*120", "bob@northwind.example"])  # serial, formula
    ws.append([None] * 7)  # row 7: blank
    ws.append(["November"])  # row 8: a separator
    ws.merge_cells("A8:G8")
    ws.append(["2026-103", "3.11.2026.", "ADRIATIC FOODS", None, 1, "1.234,50 €", "alice@northwind.example"])
    ws.append(["2026-104", "05/11/2026 14:30", "Adriatik Foods", None, 2, 99, "bob@northwind.example"])  # typo
    ws.append(["2026-105", "not a date", "Tuscany Wines", None, 1, 10, "bob@northwind.example"])  # row 11: bad
    ws.append(["2026-106", "2026-11-07", "Baltic Amber Sp. z o.o.", None, 1, 10, "bob@northwind.example"])
    ws.append(["2026-107", "2026-11-08", "Adria Foods", None, 1, 10, "alice@northwind.example"])  # too far off
    wb.save(path)
    set_cached_values(path, 2, {"F6": 360})
    return path


def messy_customers(path: Path) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Customers"
    ws.append(["Customer list"])
    ws.append([])
    ws.append(["Company", "Contact", "E-mail", "Phone", "Website", "Owner"])  # row 3
    ws.append(
        [
            "Adriatic Foods d.o.o.",
            "Ivana Horvat",
            "ivana@adriaticfoods.hr",
            385912345678.0,
            "adriaticfoods.hr",
            "alice@northwind.example",
        ]
    )
    ws.append(
        [
            "Tuscany Wines S.r.l.",
            "Marco Rossi",
            "marco@tuscanywines.it; orders@tuscanywines.it",
            "+39 055 123 4567",
            "tuscanywines.it",
            "bob@northwind.example",
        ]
    )
    ws.append([None] * 6)
    ws.append(
        [
            "Baltic Amber Sp. z o.o.",
            "Piotr Nowak",
            "piotr@balticamber.pl",
            "+48 22 555 66 77",
            None,
            "bob@northwind.example",
        ]
    )
    wb.save(path)
    return path


def messy_calls(path: Path) -> Path:
    """A call log: phones typed as numbers or in local style, the date in two columns' worth
    of formats, no customer column (the phone says who it was)."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Calls"
    ws.append(["When", "Number", "Topic", "Notes", "Who"])
    ws.append(
        [
            datetime(2026, 11, 2, 9, 15),
            385912345678.0,
            "Delivery date",
            "Wants it before Friday",
            "alice@northwind.example",
        ]
    )
    ws.append(
        ["06.11.2026 16:00", "22 555 66 77", "Price question", "@Piotr: send the price list", "bob@northwind.example"]
    )
    ws.append(["07.11.2026", "+1 212 555 0100", "Wrong number", "", "bob@northwind.example"])
    wb.save(path)
    return path


def copy_tree(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def set_error_cells(path: Path, sheet_index: int, errors: dict[str, str]) -> None:
    """Turn formula cells (by reference) into what Excel saves for an error result:
    ``<c r=".." t="e"><f>..</f><v>#REF!</v></c>``."""
    member = f"xl/worksheets/sheet{sheet_index}.xml"
    with zipfile.ZipFile(path) as source:
        items = [(info, source.read(info.filename)) for info in source.infolist()]
    out = path.with_suffix(".tmp")
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info, data in items:
            if info.filename == member:
                xml = data.decode("utf-8")
                for ref, error in errors.items():
                    xml, count = re.subn(
                        rf'<c r="{ref}"([^>]*)>(<f>[^<]*</f>)(<v\s*/>|<v></v>)?',
                        rf'<c r="{ref}"\g<1> t="e">\g<2><v>{error}</v>',
                        xml,
                    )
                    assert count == 1, f"no formula cell {ref} in {member}"
                data = xml.encode("utf-8")
            target.writestr(info, data)
    os.replace(out, path)
