"""The one escaping every cell syncd writes goes through, in every sheet and every workbook.

Every string is untrusted: mail subjects, sheet cells staff typed, customer names, staff
names from a call log. Characters XML forbids are dropped, text is cut to Excel's cell
limit, and text that Excel (or LibreOffice) would take as a formula (``= + - @``, or a
leading tab/CR) is marked to stay text with Excel's quote-prefix flag, the way typing
``'=`` in Excel does.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font

EXCEL_CELL_LIMIT = 32_767
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
DATE_FORMAT = "yyyy-mm-dd hh:mm"


def safe_text(value: str) -> tuple[str, bool]:
    """(text fit for a cell, whether it needs Excel's quote prefix to stay text)."""
    text: str = ILLEGAL_CHARACTERS_RE.sub("", value)
    if len(text) > EXCEL_CELL_LIMIT:
        text = text[: EXCEL_CELL_LIMIT - 1] + "…"
    return text, text.startswith(FORMULA_PREFIXES)


def sheet_value(ws: Any, value: Any, font: Font | None = None) -> Any:
    """``value`` as it goes into a write-only sheet ``ws``: the one path every cell takes.

    Text that could be taken for a formula becomes a string cell with the quote prefix
    (openpyxl would otherwise store ``=...`` as a formula); dates get a date format.
    """
    if isinstance(value, str):
        text, quote = safe_text(value)
        if not quote and font is None:
            return text  # cannot be taken for a formula: a plain string cell
        cell = WriteOnlyCell(ws, text)
        cell.data_type = "s"  # never let openpyxl read '=...' as a formula
        if quote:
            cell.quotePrefix = True
        if font is not None:
            cell.font = font
        return cell
    if isinstance(value, datetime) or font is not None:
        cell = WriteOnlyCell(ws, value)
        if isinstance(value, datetime):
            cell.number_format = DATE_FORMAT
        if font is not None:
            cell.font = font
        return cell
    return value


def plain_text(value: str) -> str:
    """Text for outputs that are not cells but may end up in one (an Outlook contact's name,
    a category: both are exported to spreadsheets): a leading formula character is
    quoted the way a spreadsheet quotes it, so it stays text there too."""
    text: str = ILLEGAL_CHARACTERS_RE.sub("", value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text
