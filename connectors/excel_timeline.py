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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.table import Table, TableStyleInfo
from openpyxl.worksheet.worksheet import Worksheet

from syncd.timeline import CUSTOMER_HEADERS, REVIEW_HEADERS, TIMELINE_HEADERS, TimelineView

EXCEL_CELL_LIMIT = 32_767
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
DATE_FORMAT = "yyyy-mm-dd hh:mm"


def safe_text(value: str) -> tuple[str, bool]:
    """(text fit for a cell, whether it needs Excel's quote prefix to stay text)."""
    text = ILLEGAL_CHARACTERS_RE.sub("", value)
    if len(text) > EXCEL_CELL_LIMIT:
        text = text[: EXCEL_CELL_LIMIT - 1] + "…"
    return text, text.startswith(FORMULA_PREFIXES)


class TimelineWriteError(Exception):
    """The timeline workbook could not be written; the previous file is left as it was."""


def _fill_sheet(ws: Worksheet, headers: Sequence[str], rows: Sequence[Sequence[Any]], table_name: str,
                widths: dict[str, int]) -> None:
    ws.append(list(headers))
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for row_index, row in enumerate(rows, start=2):
        for column, value in enumerate(row, start=1):
            if value is None:
                continue
            cell = ws.cell(row=row_index, column=column)
            if isinstance(value, str):
                text, quote = safe_text(value)
                cell.value = text
                cell.data_type = "s"  # never let openpyxl read '=...' as a formula
                if quote:
                    cell.quotePrefix = True
            else:
                cell.value = value
                if hasattr(value, "year") and hasattr(value, "hour"):
                    cell.number_format = DATE_FORMAT
    last_row = max(len(rows) + 1, 2)  # a table needs a data row, even an empty one
    ref = f"A1:{get_column_letter(len(headers))}{last_row}"
    table = Table(displayName=table_name, ref=ref)
    table.tableStyleInfo = TableStyleInfo(name="TableStyleMedium2", showRowStripes=True)
    ws.add_table(table)
    ws.freeze_panes = "A2"
    for index, header in enumerate(headers, start=1):
        ws.column_dimensions[get_column_letter(index)].width = widths.get(header, 16)


def render_workbook(view: TimelineView) -> Workbook:
    workbook = Workbook()
    timeline = workbook.active
    timeline.title = "Timeline"
    _fill_sheet(timeline, TIMELINE_HEADERS, view.timeline, "Timeline",
                {"When": 17, "Customers": 28, "Subject": 40, "Snippet": 60, "From": 28, "To": 36, "Staff": 24})
    _fill_sheet(workbook.create_sheet("Customers"), CUSTOMER_HEADERS, view.customers, "Customers",
                {"Customer": 28, "Company": 24, "Emails": 36, "Owner": 22, "Last contact": 17})
    _fill_sheet(workbook.create_sheet("Review"), REVIEW_HEADERS, view.review, "Review",
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
