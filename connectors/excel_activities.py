"""Orders, calls and notes kept as rows of a staff workbook, read-only.

Each data row becomes one activity of the configured kind. The row says who the customer
is by name, email and/or phone; the connector passes those on as they are written
(mapping normalizes and matches them) in the hints ``customer-ref``, ``phones`` and
``phone-region``, so a row can be matched again later without reading the sheet.

Rows that cannot be read (no date, a date or amount that is not one) go to the quarantine
naming workbook, sheet, row and column; blank rows and separator rows (one filled cell,
such as a merged "March 2026" title) are passed over. Row keys come from the key columns,
else a hash of the row: then an edited row is a new activity and the old one is removed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote
from zoneinfo import ZoneInfo

from pydantic import Field, model_validator

from syncd.connectors.base import Capabilities, Connector, ConnectorContext, SourceKind
from syncd.connectors.cells import DEFAULT_DATE_FORMATS, CellError, cell_amount, cell_datetime, cell_text
from syncd.connectors.excel_customers import changed_only
from syncd.connectors.sheets import SheetMapping, SheetSettings, check_sheet, file_digest, read_sheet
from syncd.model.errors import SourceUnavailable
from syncd.model.markers import HINT_CUSTOMER_REF
from syncd.model.records import (
    ActivityKind,
    ActivityRecord,
    Batch,
    Participant,
    Problem,
    ReadOptions,
    Role,
    SourceState,
)
from syncd.model.settings import StrictModel

log = logging.getLogger(__name__)
#: A plain number in the date column read as an Excel serial date before this year is no date.
EARLIEST_PLAUSIBLE_YEAR = 1950
_SPLIT_EMAILS = re.compile(r"[;,\s]+")


@dataclass(frozen=True)
class ActivitySheet:
    """How rows of one sheet become activities (from the source's config)."""

    path: Path
    sheet: str | None
    header_row: int | None
    columns: dict[str, str]
    kind: ActivityKind
    key_columns: tuple[str, ...] = ()
    date_formats: tuple[str, ...] = DEFAULT_DATE_FORMATS
    decimal_separator: str = "auto"
    zone: str = "UTC"
    currency: str | None = None
    phone_region: str | None = None


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, default=str, ensure_ascii=False).encode()).hexdigest()[:32]


def row_link(path: Path, sheet: str, row: int) -> str:
    """A hyperlink Excel and LibreOffice follow to the row in the staff workbook."""
    return f"{path.absolute().as_uri()}#{quote(repr(sheet) if ' ' in sheet else sheet, safe=chr(39))}!A{row}"


class ExcelActivitiesConnector(Connector):
    kind = "excel_activities"

    def __init__(self, name: str, options: ReadOptions, mapping: ActivitySheet):
        super().__init__(name, options)
        self.mapping = mapping

    def read(self, state: SourceState) -> Iterator[Batch]:
        path = self.mapping.path
        if not path.is_file():
            raise SourceUnavailable(f"no such workbook: {path}")
        try:
            digest = file_digest(path)
        except OSError as exc:
            raise SourceUnavailable(f"cannot read workbook {path}: {exc.strerror or exc}") from None
        if state.cursors.get("") == digest:
            return
        records, problems = self._read_rows()
        changed = changed_only(records, state.known)
        new_problems = [p for p in problems if state.known.get(p.key) != p.version]
        size = self.options.batch_size
        for start in range(0, max(len(changed), len(new_problems)), size):
            yield Batch(
                records=tuple(changed[start : start + size]), problems=tuple(new_problems[start : start + size])
            )
        listed = {r.key for r in records} | {p.key for p in problems}
        removed = tuple(sorted(k for k in state.known if k not in listed))
        yield Batch(removed=removed, listing_complete=True, listed=len(listed), cursor=digest)

    def _read_rows(self) -> tuple[list[ActivityRecord], list[Problem]]:
        m = self.mapping
        sheet = read_sheet(SheetMapping(m.path, m.sheet, m.header_row, m.columns, m.key_columns))
        zone = ZoneInfo(m.zone)
        records: list[ActivityRecord] = []
        problems: list[Problem] = []
        seen: set[str] = set()
        numbers = 0  # date cells that are plain numbers, not formatted as dates
        index = sheet.index
        for number, row in sheet.data_rows():
            raw = {f: (row[i] if i < len(row) else None) for f, i in index.items()}
            text = {f: cell_text(v) for f, v in raw.items()}
            filled = sum(1 for v in row if v not in (None, ""))
            if filled == 0 or (filled == 1 and not text.get("date")):
                continue  # blank, or a title/separator row
            where = f"{m.path.name}!{sheet.title} row {number}"
            version = _digest(*[cell_text(v) for v in row])
            if m.key_columns:
                key = "row:" + "|".join(text[f"key:{c}"] for c in m.key_columns)
            else:
                key = "row:" + version  # no key columns: the row's content is its identity
            if key in seen:
                key = f"{key}#row{number}"
            seen.add(key)
            unreadable = sheet.cell_problems(number)
            if unreadable:
                problems.append(Problem(key=key, reason=unreadable, where=where, version=version))
                continue
            try:
                record = self._record(key, version, raw, text, zone, sheet.title, number)
            except CellError as exc:
                problems.append(Problem(key=key, reason=str(exc), where=where, version=version))
                continue
            records.append(record)
            if isinstance(raw.get("date"), (int, float)) and not isinstance(raw.get("date"), bool):
                numbers += 1
        if numbers:
            log.warning(
                "source=%s %s!%s: column %r holds %d plain numbers, read as Excel serial dates; format the "
                "column as dates in the workbook to be sure",
                self.name,
                m.path.name,
                sheet.title,
                m.columns["date"],
                numbers,
            )
        return records, problems

    def _record(
        self, key: str, version: str, raw: dict[str, Any], text: dict[str, str], zone: ZoneInfo, title: str, number: int
    ) -> ActivityRecord:
        m = self.mapping
        date_header = m.columns["date"]
        try:
            occurred_at = cell_datetime(raw["date"], zone, m.date_formats)
        except CellError as exc:
            raise CellError(f"column {date_header!r}: {exc}") from None
        if isinstance(raw["date"], (int, float)) and occurred_at.year < EARLIEST_PLAUSIBLE_YEAR:
            raise CellError(
                f"column {date_header!r}: {raw['date']!r} is a number, not a date (as an Excel serial "
                f"date it would be {occurred_at.date()}); is the right column mapped as the date?"
            )
        amount = None
        if text.get("amount"):
            try:
                amount = cell_amount(raw["amount"], m.decimal_separator)
            except CellError as exc:
                raise CellError(f"column {m.columns['amount']!r}: {exc}") from None
        customer = text.get("customer", "")
        emails = [e for e in _SPLIT_EMAILS.split(text.get("email", "")) if "@" in e]
        participants = tuple(Participant(email=e.lower(), name=customer, role=Role.TO) for e in emails)
        hints: list[tuple[str, str]] = []
        if customer:
            hints.append((HINT_CUSTOMER_REF, customer))
        if text.get("phone"):
            hints.append(("phones", text["phone"]))
            if m.phone_region:
                hints.append(("phone-region", m.phone_region))
        currency = text.get("currency") or m.currency or None
        subject = text.get("subject", "")
        if not subject:
            parts = [m.kind.value.capitalize(), customer or (emails[0] if emails else text.get("phone", ""))]
            if amount is not None:
                parts.append(f"{amount} {currency or ''}".strip())
            subject = " ".join(p for p in parts if p)
        return ActivityRecord(
            key=key,
            kind=m.kind,
            occurred_at=occurred_at,
            subject=subject,
            snippet=text.get("details", "")[: self.options.snippet_chars],
            participants=participants,
            mailbox=text.get("staff", ""),
            folder=title,
            link=row_link(m.path, title, number),
            amount=amount,
            currency=currency,
            version=version,
            hints=tuple(hints),
        )


class ActivityColumns(StrictModel):
    """Which header names hold which activity fields. ``date`` and one of ``customer``,
    ``email`` or ``phone`` are required."""

    date: str = Field(description="When it happened (a date cell, an Excel serial number or text).")
    customer: str | None = Field(
        default=None, description="The customer's name (company or person) as the customer list writes it."
    )
    email: str | None = Field(default=None, description="The customer's email address.")
    phone: str | None = Field(default=None, description="The customer's phone number (calls).")
    subject: str | None = Field(default=None, description="Short title (order number, call topic).")
    details: str | None = Field(default=None, description="Longer text, shown as the snippet.")
    amount: str | None = Field(default=None, description="Amount (orders).")
    currency: str | None = Field(default=None, description="Currency code of the amount.")
    staff: str | None = Field(default=None, description="The staff member who did it.")

    @model_validator(mode="after")
    def _needs_customer(self) -> ActivityColumns:
        if not (self.customer or self.email or self.phone):
            raise ValueError("map at least one of customer, email or phone, so rows can find their customer")
        return self


class ExcelActivitiesSettings(SheetSettings):
    """Orders, calls, notes or anything else with a date and a customer, kept in a staff workbook."""

    kind: Literal["excel_activities"]
    activity: Literal["order", "call", "note", "meeting"] = Field(
        default="order", description="What each row is: order, call, note or meeting."
    )
    currency: str | None = Field(default=None, description="Currency of amounts when no currency column is mapped.")
    columns: ActivityColumns


def activity_sheet(source: ExcelActivitiesSettings, zone: str) -> ActivitySheet:
    """The connector's view of an ``excel_activities`` source's settings."""
    columns = {f: c for f, c in source.columns.model_dump().items() if c}
    return ActivitySheet(
        path=source.path,
        sheet=source.sheet,
        header_row=source.header_row_number,
        columns=columns,
        kind=ActivityKind(source.activity),
        key_columns=tuple(source.key_columns),
        date_formats=tuple(source.date_formats) or DEFAULT_DATE_FORMATS,
        decimal_separator=source.decimal_separator,
        zone=zone,
        currency=source.currency,
        phone_region=source.phone_region,
    )


def _build(settings: ExcelActivitiesSettings, context: ConnectorContext) -> ExcelActivitiesConnector:
    return ExcelActivitiesConnector(settings.name, context.options, activity_sheet(settings, context.timezone))


KIND = SourceKind(
    name="excel_activities",
    settings=ExcelActivitiesSettings,
    build=_build,
    check=lambda s: check_sheet(s, s.columns.model_dump()),
    summary="Orders, calls, notes or meetings kept as rows of a staff workbook, read-only.",
    capabilities=Capabilities(rows=True, watched_file=True),
    tables=(
        (
            "[sources.columns] of an excel_activities source",
            ActivityColumns,
            "Header names for each activity field; the match ignores case and extra spaces.",
        ),
    ),
)
