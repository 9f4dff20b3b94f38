"""Writing the timeline workbook: the service's own file, never a staff workbook.

The file is written to a temporary name in the same folder, flushed to disk and renamed
over the old one, so Excel or a sync client never sees half a workbook. Every string goes
through ``syncd.outputs.cells`` (untrusted text never becomes a formula).
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from openpyxl import Workbook
from openpyxl.chart import BarChart, Reference
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.filters import AutoFilter
from openpyxl.worksheet.table import Table, TableColumn, TableStyleInfo

from syncd.outputs.cells import safe_text, sheet_value
from syncd.outputs.view import (
    CUSTOMER_HEADERS,
    REVIEW_HEADERS,
    TIMELINE_HEADERS,
    Reports,
    TimelineView,
)

BOLD = Font(bold=True)
LINK_SCHEMES = ("https://", "http://", "file://")
LINK_FONT = Font(color="0563C1", underline="single")


OWN_MARK = "syncd-timeline"  # the keywords of every workbook syncd writes (docProps/core.xml)
OWN_SHEETS = ("Timeline", "Customers", "Review")


class TimelineWriteError(Exception):
    """The timeline workbook could not be written; the previous file is left as it was."""


class ForeignFileError(TimelineWriteError):
    """The file at the output path was not written by syncd: it is never replaced."""


def written_by_syncd(path: Path | IO[bytes]) -> bool:
    """Whether the workbook at ``path`` (or in a binary file, e.g. one downloaded from a drive)
    is one syncd wrote: its mark in the document properties (kept when staff save it in
    Excel or LibreOffice), or, for workbooks written before the mark existed, exactly
    syncd's sheets."""
    import re
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "docProps/core.xml" in names and OWN_MARK in archive.read("docProps/core.xml").decode(
                "utf-8", "replace"
            ):
                return True
            workbook = archive.read("xl/workbook.xml").decode("utf-8", "replace") if "xl/workbook.xml" in names else ""
    except (OSError, zipfile.BadZipFile, KeyError):
        return False
    sheets = re.findall(r'<(?:\w+:)?sheet [^>]*name="([^"]+)"', workbook)
    return tuple(sheets[:3]) == OWN_SHEETS and set(sheets) <= {*OWN_SHEETS, "Reports"}


def _fill_sheet(
    workbook: Workbook,
    title: str,
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    widths: dict[str, int],
    link_column: int | None = None,
) -> None:
    """Stream one sheet (write-only mode: memory stays flat however many rows there are)."""
    ws = workbook.create_sheet(title)
    ws.freeze_panes = "A2"
    for index, header in enumerate(headers, start=1):
        ws.column_dimensions[get_column_letter(index)].width = widths.get(header, 16)
    ws.append([sheet_value(ws, header, BOLD) for header in headers])
    for row in rows:
        out: list[Any] = []
        for position, value in enumerate(row):
            if position == link_column and isinstance(value, str) and value.startswith(LINK_SCHEMES):
                if len(value) <= 2000 and safe_text(value)[0] == value:  # Excel refuses longer link targets
                    cell = sheet_value(ws, value, LINK_FONT)
                    cell.hyperlink = value
                    out.append(cell)
                else:
                    out.append(sheet_value(ws, value))
                continue
            out.append(sheet_value(ws, value))
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


def _fill_reports(workbook: Workbook, reports: Reports) -> None:
    """The Reports sheet: three small tables, each with a native bar chart beside it."""
    ws = workbook.create_sheet("Reports")
    ws.column_dimensions["A"].width = 18
    row = 1

    def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> tuple[int, int]:
        nonlocal row
        ws.append([sheet_value(ws, title, Font(bold=True, size=13))])
        ws.append([sheet_value(ws, header, BOLD) for header in headers])  # staff names among them
        for values in rows:
            ws.append([sheet_value(ws, v) for v in values])
        header_row = row + 1
        row += 2 + len(rows) + 1
        ws.append([])
        return header_row, header_row + len(rows)

    def chart(
        title: str, header_row: int, last_row: int, columns: int, anchor_row: int, y_title: str, stacked: bool = False
    ) -> None:
        bar = BarChart()
        bar.type = "col"
        bar.title = title
        bar.y_axis.title = y_title
        if stacked:
            bar.grouping = "stacked"
            bar.overlap = 100
        data = Reference(ws, min_col=2, max_col=max(2, columns), min_row=header_row, max_row=last_row)
        labels = Reference(ws, min_col=1, min_row=header_row + 1, max_row=last_row)
        bar.add_data(data, titles_from_data=True)
        bar.set_categories(labels)
        bar.height, bar.width = 7.5, 18
        ws.add_chart(bar, f"H{anchor_row}")

    weekly_top = row
    first, last = table("Activities per week per staff member", reports.weekly_headers, reports.weekly)
    chart("Activities per week", first, last, len(reports.weekly_headers), weekly_top, "activities", stacked=True)
    monthly_top = row
    first, last = table("New customers per month (by first contact)", ("Month", "New customers"), reports.monthly_new)
    chart("New customers per month", first, last, 2, max(monthly_top, weekly_top + 16), "customers")
    buckets_top = row
    first, last = table(
        "Customers by days since last contact", ("Days since last contact", "Customers"), reports.contact_buckets
    )
    chart("Customers by days since last contact", first, last, 2, max(buckets_top, weekly_top + 32), "customers")


def render_workbook(view: TimelineView) -> Workbook:
    workbook = Workbook(write_only=True)
    workbook.properties.creator = "syncd"
    workbook.properties.keywords = OWN_MARK
    workbook.properties.title = "Customer timeline (written by syncd; the Review sheet's Customer column is yours)"
    _fill_sheet(
        workbook,
        "Timeline",
        TIMELINE_HEADERS,
        view.timeline,
        {"When": 17, "Customers": 28, "Subject": 40, "Snippet": 60, "From": 28, "To": 36, "Staff": 24, "Link": 30},
        link_column=TIMELINE_HEADERS.index("Link"),
    )
    _fill_sheet(
        workbook,
        "Customers",
        CUSTOMER_HEADERS,
        view.customers,
        {"Customer": 28, "Company": 24, "Emails": 36, "Owner": 22, "Last contact": 17, "Status": 22},
    )
    _fill_sheet(
        workbook,
        "Review",
        REVIEW_HEADERS,
        view.review,
        {
            "When": 17,
            "Subject": 40,
            "From": 30,
            "To": 36,
            "Staff": 24,
            "Suggested customers": 40,
            "Customer": 28,
            "Note": 50,
        },
    )
    if view.reports is not None:
        _fill_reports(workbook, view.reports)
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
    """Write ``view`` to ``path``, never over a file syncd did not write (a staff workbook
    configured as the output by mistake stays byte for byte as it is)."""
    if path.exists() and not written_by_syncd(path):
        raise ForeignFileError(
            f"{path} exists and was not written by syncd: it is not replaced (move it away, or "
            "point timeline.path elsewhere)"
        )
    write_atomically(render_workbook(view), path)
