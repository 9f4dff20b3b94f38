"""Writing the timeline workbook: the service's own file, never a staff workbook.

The file is written to a temporary name in the same folder, flushed to disk and renamed
over the old one, so Excel or a sync client never sees half a workbook. Every string is
treated as untrusted: characters XML forbids are dropped, text is cut to Excel's cell
limit, and text that Excel would take as a formula (``= + - @``, or a leading tab/CR)
is kept as text with Excel's quote-prefix flag, the way typing ``'=`` in Excel does.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from datetime import datetime

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.filters import AutoFilter
from openpyxl.worksheet.table import Table, TableColumn, TableStyleInfo

from syncd.timeline import CUSTOMER_HEADERS, REVIEW_HEADERS, TIMELINE_HEADERS, TimelineView

EXCEL_CELL_LIMIT = 32_767
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
DATE_FORMAT = "yyyy-mm-dd hh:mm"
BOLD = Font(bold=True)


def safe_text(value: str) -> tuple[str, bool]:
    """(text fit for a cell, whether it needs Excel's quote prefix to stay text)."""
    text = ILLEGAL_CHARACTERS_RE.sub("", value)
    if len(text) > EXCEL_CELL_LIMIT:
        text = text[: EXCEL_CELL_LIMIT - 1] + "…"
    return text, text.startswith(FORMULA_PREFIXES)


class TimelineWriteError(Exception):
    """The timeline workbook could not be written; the previous file is left as it was."""


def _fill_sheet(workbook: Workbook, title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]],
                widths: dict[str, int]) -> None:
    """Stream one sheet (write-only mode: memory stays flat however many rows there are)."""
    ws = workbook.create_sheet(title)
    ws.freeze_panes = "A2"
    for index, header in enumerate(headers, start=1):
        ws.column_dimensions[get_column_letter(index)].width = widths.get(header, 16)
    header_cells = []
    for header in headers:
        cell = WriteOnlyCell(ws, header)
        cell.font = BOLD
        header_cells.append(cell)
    ws.append(header_cells)
    for row in rows:
        out: list[Any] = []
        for value in row:
            if isinstance(value, str):
                text, quote = safe_text(value)
                if not quote:
                    out.append(text)  # cannot be taken for a formula: a plain string cell
                    continue
                cell = WriteOnlyCell(ws, text)
                cell.data_type = "s"  # never let openpyxl read '=...' as a formula
                cell.quotePrefix = True
                out.append(cell)
            elif isinstance(value, datetime):
                cell = WriteOnlyCell(ws, value)
                cell.number_format = DATE_FORMAT
                out.append(cell)
            else:
                out.append(value)
        ws.append(out)
    last_row = max(len(rows) + 1, 2)  # a table needs a data row, even an empty one
    if not rows:
        ws.append([None] * len(headers))
    ref = f"A1:{get_column_letter(len(headers))}{last_row}"
    table = Table(displayName=title, ref=ref, autoFilter=AutoFilter(ref=ref))
    table.tableColumns = [TableColumn(id=i, name=h) for i, h in enumerate(headers, start=1)]
    table.tableStyleInfo = TableStyleInfo(name="TableStyleMedium2", showRowStripes=True)
    with warnings.catch_warnings():
        # openpyxl warns in write-only mode that columns must be set by hand: they are, above.
        warnings.simplefilter("ignore", UserWarning)
        ws.add_table(table)


def render_workbook(view: TimelineView) -> Workbook:
    workbook = Workbook(write_only=True)
    _fill_sheet(workbook, "Timeline", TIMELINE_HEADERS, view.timeline,
                {"When": 17, "Customers": 28, "Subject": 40, "Snippet": 60, "From": 28, "To": 36, "Staff": 24})
    _fill_sheet(workbook, "Customers", CUSTOMER_HEADERS, view.customers,
                {"Customer": 28, "Company": 24, "Emails": 36, "Owner": 22, "Last contact": 17})
    _fill_sheet(workbook, "Review", REVIEW_HEADERS, view.review,
                {"When": 17, "Subject": 40, "From": 30, "To": 36, "Staff": 24, "Customer": 28})
    return workbook


def write_atomically(workbook: Workbook, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    temp = Path(temp_name)
    try:
        workbook.save(temp)
        with temp.open("rb+") as stream:
            os.fsync(stream.fileno())
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise TimelineWriteError(f"cannot write timeline workbook {path}: {exc.strerror or exc}") from None
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    try:
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError:
        pass  # some file systems (network shares) cannot fsync a folder; the rename is done


def write_timeline(path: Path, view: TimelineView) -> None:
    write_atomically(render_workbook(view), path)
