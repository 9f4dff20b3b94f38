"""A customer list in a staff workbook: companies and people, read-only.

The workbook belongs to staff: it is only ever read (``connectors.sheets``), never saved.
The file is hashed first; an unchanged file is not parsed again, and of a changed one
only records whose content changed go to the store. A file that is not a complete
workbook (being written, truncated, locked by a sync client) raises ``SourceUnavailable``
and is retried next pass, so nothing is half-read.

Each row becomes a person (when the person column is mapped and filled) and/or a company
(one per distinct company name). Row keys come from the configured key columns, else the
row's first email, else a hash of the row.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from connectors.base import Connector, SourceUnavailable
from connectors.cells import cell_text
from connectors.sheets import SheetMapping, file_digest, fold_header, read_sheet
from syncd.records import Batch, CustomerKind, CustomerRecord, ReadOptions, SourceState

_SPLIT_PHONES = re.compile(r"[;,/\n]+")
_SPLIT_EMAILS = re.compile(r"[;,\s]+")
FIELDS = ("company", "person", "email", "phone", "domain", "owner")


def _version(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, default=str, sort_keys=True).encode()).hexdigest()[:32]


def _fold(header: str) -> str:
    return fold_header(header)


def changed_only(records: Sequence[Any], known: dict[str, str]) -> list[Any]:
    """Records that are new or whose version differs from what the store holds."""
    return [r for r in records if known.get(r.key) != r.version]


class ExcelCustomersConnector(Connector):
    kind = "excel_customers"

    def __init__(self, name: str, options: ReadOptions, *, path: Path, sheet: str | None, header_row: int | None,
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
        changed = changed_only(records, state.known)
        size = self.options.batch_size
        for start in range(0, len(changed), size):
            yield Batch(records=tuple(changed[start : start + size]))
        listed = {r.key for r in records}
        removed = tuple(sorted(k for k in state.known if k not in listed))
        yield Batch(removed=removed, listing_complete=True, listed=len(listed), cursor=digest)

    def _records(self) -> list[CustomerRecord]:
        sheet = read_sheet(SheetMapping(self.path, self.sheet, self.header_row, self.columns, self.key_columns))
        return self._rows_to_records(sheet.title, sheet.data_rows(), sheet.index)

    def _rows_to_records(self, sheet_title: str, rows: Iterator[tuple[int, list[Any]]],
                         index: dict[str, int]) -> list[CustomerRecord]:
        companies: dict[str, CustomerRecord] = {}
        people: list[CustomerRecord] = []
        seen_keys: set[str] = set()
        for row_number, row in rows:
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

    def _row_key(self, values: dict[str, str], emails: tuple[str, ...], row: list[Any]) -> str:
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
