"""A person's export (``syncd export``) as a workbook: one sheet per kind of store row.

Every cell goes through ``outputs.cells``, so a subject such as ``=HYPERLINK(...)`` stays
text. The file holds personal data: it is written 0600, atomically, and never over a file
that exists (an access request is answered with a new file each time).
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Font

from syncd.model.views import PersonExport
from syncd.outputs.cells import sheet_value
from syncd.outputs.workbook import write_atomically

BOLD = Font(bold=True)
TIME_HEADERS = frozenset({"When", "Seen", "Gone", "Created", "Recorded", "First seen", "Last seen", "Last"})


def _naive_utc(value: object) -> object:
    """Excel has no time zones: times are written in UTC (the header row says so)."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def render_export(export: PersonExport) -> Workbook:
    workbook = Workbook(write_only=True)
    for sheet in export.sheets:
        ws = workbook.create_sheet(sheet.title)
        ws.append(
            [sheet_value(ws, f"{header} (UTC)" if header in TIME_HEADERS else header, BOLD) for header in sheet.headers]
        )
        for row in sheet.rows:
            ws.append([sheet_value(ws, _naive_utc(value)) for value in row])
    return workbook


def write_export(export: PersonExport, path: Path) -> None:
    if path.exists():
        raise FileExistsError(f"{path} exists; an export is never written over a file")
    write_atomically(render_export(export), path)
    os.chmod(path, 0o600)
