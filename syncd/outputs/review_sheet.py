"""What admins typed into the Review sheet of the timeline workbook, read back.

The Review sheet is the one place staff write to syncd's own workbook: a customer typed
into its Customer column is learned as an assignment. The file is read as saved (perhaps
by Excel), before syncd writes it again, so nothing typed is lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from syncd.outputs.view import REVIEW_ACTIVITY_COLUMN, REVIEW_CUSTOMER_COLUMN, REVIEW_HEADERS


@dataclass(frozen=True)
class ReviewEntry:
    """A row of the Review sheet as an admin left it."""

    ref: str
    customer_text: str
    row: int


class ReviewUnreadable(Exception):
    """The timeline workbook exists but cannot be read (mid-save, damaged): what an admin
    typed on Review cannot be learned, so the file must not be overwritten blindly."""


def read_review_entries(path: Path) -> list[ReviewEntry]:
    """Every Review row with its Customer cell, read from the timeline workbook as saved
    (perhaps by an admin in Excel). Empty when there is no file yet; ``ReviewUnreadable``
    when there is one that cannot be read."""
    import python_calamine

    if not path.exists():
        return []
    try:
        workbook = python_calamine.CalamineWorkbook.from_path(str(path))
    except Exception as exc:  # noqa: BLE001 - calamine raises several types for a bad file
        raise ReviewUnreadable(f"{path} cannot be read: {exc}") from None
    try:
        if "Review" not in workbook.sheet_names:
            return []
        rows = workbook.get_sheet_by_name("Review").to_python(skip_empty_area=False)
    except Exception as exc:  # noqa: BLE001 - the sheet's rows
        raise ReviewUnreadable(f"{path} Review sheet cannot be read: {exc}") from None
    finally:
        workbook.close()
    if not rows:
        return []
    header = [str(h).strip() for h in rows[0]]
    try:
        ref_column = header.index(REVIEW_HEADERS[REVIEW_ACTIVITY_COLUMN])
        customer_column = header.index(REVIEW_HEADERS[REVIEW_CUSTOMER_COLUMN])
    except ValueError:
        return []  # an older layout, or renamed headers: nothing can be read reliably
    entries = []
    for number, row in enumerate(rows[1:], start=2):
        ref = str(row[ref_column]).strip() if ref_column < len(row) and row[ref_column] is not None else ""
        if not ref:
            continue
        value = row[customer_column] if customer_column < len(row) else ""
        text = (
            ""
            if value is None
            else (str(int(value)) if isinstance(value, float) and value.is_integer() else str(value).strip())
        )
        entries.append(ReviewEntry(ref=ref, customer_text=text, row=number))
    return entries
