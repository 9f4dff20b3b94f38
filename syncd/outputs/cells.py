"""The one escaping every cell syncd writes goes through, in every sheet and every workbook.

Every string is untrusted: mail subjects, sheet cells staff typed, customer names, staff
names from a call log. Characters XML forbids are dropped, text is cut to Excel's cell
limit, and text that Excel (or LibreOffice) would take as a formula (``= + - @``, or a
leading tab/CR) is marked to stay text with Excel's quote-prefix flag, the way typing
``'=`` in Excel does.
"""

from __future__ import annotations

from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

EXCEL_CELL_LIMIT = 32_767
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def safe_text(value: str) -> tuple[str, bool]:
    """(text fit for a cell, whether it needs Excel's quote prefix to stay text)."""
    text = ILLEGAL_CHARACTERS_RE.sub("", value)
    if len(text) > EXCEL_CELL_LIMIT:
        text = text[: EXCEL_CELL_LIMIT - 1] + "…"
    return text, text.startswith(FORMULA_PREFIXES)
