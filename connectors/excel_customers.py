"""A customer list in a staff workbook, read with openpyxl in read-only mode.

The workbook belongs to staff: it is opened read-only and never saved (openpyxl drops
charts, pivots and validation it does not understand when it saves). The file is hashed
first; an unchanged file is not parsed again. A file that is not a complete workbook
(being written, truncated, locked by a sync client) raises ``SourceUnavailable`` and is
retried next pass, so nothing is half-read.

Each row becomes a person (when the person column is mapped and filled) and/or a company
(one per distinct company name). Row keys come from the configured key columns, else the
row's first email, else a hash of the row.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import openpyxl
from openpyxl.utils.exceptions import InvalidFileException

from connectors.base import Connector, SourceConfigError, SourceUnavailable
from syncd.records import Batch, CustomerKind, CustomerRecord, ReadOptions, SourceState

_SPLIT_PHONES = re.compile(r"[;,/\n]+")
_SPLIT_EMAILS = re.compile(r"[;,\s]+")
FIELDS = ("company", "person", "email", "phone", "domain", "owner")


def cell_text(value: Any) -> str:
    """A cell as text: floats that are whole numbers lose their ``.0`` (phones stored as numbers)."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _version(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, default=str, sort_keys=True).encode()).hexdigest()[:32]


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fold(header: str) -> str:
    return " ".join(header.split()).casefold()


class ExcelCustomersConnector(Connector):
    kind = "excel_customers"

    def __init__(self, name: str, options: ReadOptions, *, path: Path, sheet: str | None, header_row: int,
                 columns: dict[str, str | None], key_columns: Sequence[str] = ()):
        super().__init__(name, options)
        self.path = Path(path)
        self.sheet = sheet
        self.header_row = header_row
        self.columns = {f: c for f, c in columns.items() if c}
        self.key_columns = list(key_columns)

    def read(self, state: SourceState) -> Iterator[Batch]:
        if not self.path.is_file():
            raise SourceUnavailable(f"no such workbook: {self.path}")
        try:
            digest = file_digest(self.path)
        except OSError as exc:
            raise SourceUnavailable(f"cannot read workbook {self.path}: {exc.strerror or exc}") from None
        if state.cursors.get("") == digest:
            return  # unchanged since the last pass
        records = self._records()
        size = self.options.batch_size
        for start in range(0, len(records), size):
            yield Batch(records=tuple(records[start : start + size]))
        listed = {r.key for r in records}
        removed = tuple(sorted(k for k in state.known if k not in listed))
        yield Batch(removed=removed, listing_complete=True, listed=len(listed), cursor=digest)

    def _open(self) -> Any:
        try:
            return openpyxl.load_workbook(self.path, read_only=True, data_only=True, keep_links=False)
        except (zipfile.BadZipFile, InvalidFileException, KeyError, EOFError) as exc:
            raise SourceUnavailable(
                f"{self.path} is not a complete .xlsx/.xlsm workbook (being saved, truncated or "
                f"another format?): {exc}"
            ) from None
        except OSError as exc:
            raise SourceUnavailable(f"cannot open workbook {self.path}: {exc.strerror or exc}") from None

    def _records(self) -> list[CustomerRecord]:
        workbook = self._open()
        try:
            if self.sheet is None:
                sheet = workbook.worksheets[0]
            elif self.sheet in workbook.sheetnames:
                sheet = workbook[self.sheet]
            else:
                close = difflib.get_close_matches(self.sheet, workbook.sheetnames, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; sheets: {workbook.sheetnames}"
                raise SourceConfigError(f"{self.path.name}: no sheet {self.sheet!r}{hint}")
            rows = sheet.iter_rows(min_row=self.header_row, values_only=True)
            header = next(rows, None)
            if header is None:
                raise SourceConfigError(f"{self.path.name}!{sheet.title}: no header row at row {self.header_row}")
            index = self._column_index(sheet.title, [cell_text(h) for h in header])
            return self._rows_to_records(sheet.title, rows, index)
        finally:
            workbook.close()

    def _column_index(self, sheet_title: str, header: list[str]) -> dict[str, int]:
        folded = {_fold(h): i for i, h in enumerate(header) if h}
        index: dict[str, int] = {}
        wanted = [(f, c) for f, c in self.columns.items()] + [(f"key:{c}", c) for c in self.key_columns]
        for field_name, column in wanted:
            position = folded.get(_fold(column))
            if position is None:
                present = [h for h in header if h]
                close = difflib.get_close_matches(column, present, n=1, cutoff=0.5)
                hint = f"; closest header: {close[0]!r}" if close else f"; headers: {present}"
                raise SourceConfigError(
                    f"{self.path.name}!{sheet_title}: column {column!r} (mapped to {field_name.removeprefix('key:')}) "
                    f"not found in header row {self.header_row}{hint}"
                )
            index[field_name] = position
        return index

    def _rows_to_records(self, sheet_title: str, rows: Iterator[tuple[Any, ...]], index: dict[str, int]) -> list[CustomerRecord]:
        companies: dict[str, CustomerRecord] = {}
        people: list[CustomerRecord] = []
        seen_keys: set[str] = set()
        for offset, row in enumerate(rows, start=1):
            row_number = self.header_row + offset
            values = {f: cell_text(row[i]) if i < len(row) else "" for f, i in index.items()}
            if not any(values.values()):
                continue  # blank row
            where = f"{self.path.name}!{sheet_title} row {row_number}"
            emails = tuple(e for e in _SPLIT_EMAILS.split(values.get("email", "")) if e)
            phones = tuple(p.strip() for p in _SPLIT_PHONES.split(values.get("phone", "")) if p.strip())
            company_name, person_name = values.get("company", ""), values.get("person", "")
            owner = values.get("owner", "")
            company_key = None
            if company_name:
                company_key = "company:" + _fold(company_name)
                existing = companies.get(company_key)
                domains = tuple(d for d in _SPLIT_EMAILS.split(values.get("domain", "")) if d)
                own_emails = emails if not person_name else ()
                own_phones = phones if not person_name else ()
                if existing is None:
                    companies[company_key] = CustomerRecord(
                        key=company_key, kind=CustomerKind.COMPANY, name=company_name, domains=domains,
                        emails=own_emails, phones=own_phones, owner=owner, where=where,
                    )
                else:
                    companies[company_key] = CustomerRecord(
                        key=company_key, kind=CustomerKind.COMPANY, name=existing.name,
                        domains=tuple(dict.fromkeys(existing.domains + domains)),
                        emails=tuple(dict.fromkeys(existing.emails + own_emails)),
                        phones=tuple(dict.fromkeys(existing.phones + own_phones)),
                        owner=existing.owner or owner, where=existing.where,
                    )
            if not person_name and not (emails and not company_name):
                continue
            key = self._row_key(values, emails, row)
            if key in seen_keys:
                key = f"{key}#row{row_number}"
            seen_keys.add(key)
            people.append(
                CustomerRecord(
                    key=key, kind=CustomerKind.PERSON, name=person_name or emails[0], emails=emails, phones=phones,
                    company_key=company_key, owner=owner, where=where,
                )
            )
        records = [self._versioned(r) for r in companies.values()] + [self._versioned(r) for r in people]
        return records

    def _row_key(self, values: dict[str, str], emails: tuple[str, ...], row: tuple[Any, ...]) -> str:
        if self.key_columns:
            return "row:" + "|".join(values[f"key:{c}"] for c in self.key_columns)
        if emails:
            return "person:" + emails[0].lower()
        return "row:" + _version(*[cell_text(v) for v in row])

    @staticmethod
    def _versioned(record: CustomerRecord) -> CustomerRecord:
        version = _version(record.kind.value, record.name, record.emails, record.phones, record.domains,
                           record.company_key, record.owner)
        return CustomerRecord(
            key=record.key, kind=record.kind, name=record.name, emails=record.emails, phones=record.phones,
            domains=record.domains, company_key=record.company_key, owner=record.owner, version=version,
            where=record.where,
        )
