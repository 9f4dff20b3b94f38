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
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from syncd.connectors.base import Capabilities, Connector, ConnectorContext, SourceKind
from syncd.connectors.cells import CellError, cell_date, cell_text
from syncd.connectors.sheets import SheetMapping, SheetSettings, check_sheet, file_digest, fold_header, read_sheet
from syncd.model.errors import SourceUnavailable
from syncd.model.records import (
    Batch,
    ConsentStatement,
    CustomerDetails,
    CustomerKind,
    CustomerRecord,
    Problem,
    ReadOptions,
    SourceState,
)
from syncd.model.settings import StrictModel

_SPLIT_PHONES = re.compile(r"[;,/\n]+")
_SPLIT_EMAILS = re.compile(r"[;,\s]+")
#: Detail columns, in CustomerDetails' order; a row's company takes the first filled
#: value of each (but a birth date is a person's).
DETAIL_FIELDS = ("street", "postcode", "city", "country", "birth_date", "tax_id", "website")
COMPANY_DETAILS = ("street", "postcode", "city", "country", "tax_id", "website")
DETAIL_LIMIT, SCOPE_LIMIT = 500, 255  # the store's column widths (PostgreSQL refuses more)
_BASES = {
    "consent": "consent",
    "yes": "consent",
    "y": "consent",
    "x": "consent",
    "da": "consent",
    "tak": "consent",
    "ja": "consent",
    "true": "consent",
    "contract": "contract",
    "ugovor": "contract",
    "umowa": "contract",
    "avtal": "contract",
    "legitimate interest": "legitimate_interest",
    "legitimate_interest": "legitimate_interest",
    "li": "legitimate_interest",
    "none": "none",
    "no": "none",
    "n": "none",
    "ne": "none",
    "nie": "none",
    "nej": "none",
    "false": "none",
}


def _version(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, default=str, sort_keys=True).encode()).hexdigest()[:32]


def _fingerprint(
    kind: str,
    name: str,
    emails: tuple[str, ...],
    phones: tuple[str, ...],
    domains: tuple[str, ...],
    company_key: str | None,
    owner: str,
    details: CustomerDetails = CustomerDetails(),
    consent: ConsentStatement | None = None,
) -> str:
    """A customer record's version: what it says, not where it sits in the sheet (a row that
    merely moved is not an update). Fields joined by separators no cell holds. Details add
    to it only when there are some, so a sheet without detail columns keeps its versions."""
    parts = [kind, name, "\x1e".join(emails), "\x1e".join(phones), "\x1e".join(domains), company_key or "", owner]
    if not details.is_empty():
        parts += [str(getattr(details, f)) if getattr(details, f) else "" for f in DETAIL_FIELDS]
    if consent is not None:
        parts += ["consent", consent.basis, consent.scope, str(consent.given_on), str(consent.withdrawn_on)]
    text = "\x1f".join(parts)
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def changed_only(records: Sequence[Any], known: dict[str, str]) -> list[Any]:
    """Records that are new or whose version differs from what the store holds."""
    return [r for r in records if known.get(r.key) != r.version]


class ExcelCustomersConnector(Connector):
    kind = "excel_customers"

    def __init__(
        self,
        name: str,
        options: ReadOptions,
        *,
        path: Path,
        sheet: str | None,
        header_row: int | None,
        columns: dict[str, str | None],
        key_columns: Sequence[str] = (),
    ):
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
        records, problems = self._records()
        changed = changed_only(records, state.known)
        fresh_problems = [p for p in problems if state.known.get(p.key) != p.version]
        size = self.options.batch_size
        for start in range(0, max(len(changed), len(fresh_problems)), size):
            yield Batch(
                records=tuple(changed[start : start + size]), problems=tuple(fresh_problems[start : start + size])
            )
        listed = {r.key for r in records} | {p.key for p in problems}
        removed = tuple(sorted(k for k in state.known if k not in listed))
        yield Batch(removed=removed, listing_complete=True, listed=len(listed), cursor=digest)

    def _records(self) -> tuple[list[CustomerRecord], list[Problem]]:
        sheet = read_sheet(SheetMapping(self.path, self.sheet, self.header_row, self.columns, self.key_columns))
        problems: list[Problem] = []
        records = self._rows_to_records(sheet.title, sheet.data_rows(), sheet.index, sheet.cell_problems, problems)
        return records, problems

    def _rows_to_records(
        self,
        sheet_title: str,
        rows: Iterator[tuple[int, list[Any]]],
        index: dict[str, int],
        unreadable: Callable[[int], str | None] = lambda number: None,
        problems: list[Problem] | None = None,
    ) -> list[CustomerRecord]:
        # Companies gather domains, emails and phones over their rows; each record is built
        # once, with its version, at the end (this loop runs 100,000 times on a large sheet).
        companies: dict[str, dict[str, Any]] = {}
        people: list[CustomerRecord] = []
        seen_keys: set[str] = set()
        prefix = f"{self.path.name}!{sheet_title} row "
        fields = list(index.items())
        for row_number, row in rows:
            width = len(row)
            values = {f: cell_text(row[i]) if i < width else "" for f, i in fields}
            if not any(values.values()) and unreadable(row_number) is None:
                continue  # blank row
            why = unreadable(row_number)
            if why is not None:
                # An error cell (#REF!, #N/A) or a formula never calculated: the row would read
                # as a customer without its name or address. Quarantined, naming the cell.
                if problems is not None:
                    problems.append(
                        Problem(
                            key=f"unreadable:{sheet_title}!{row_number}",
                            reason=why,
                            where=prefix + str(row_number),
                            version=_version(*values.values()),
                        )
                    )
                continue
            details = self._details(values, row, index, sheet_title, row_number, problems)
            consent = self._consent(values, row, index, sheet_title, row_number, problems)
            emails = tuple(e for e in _SPLIT_EMAILS.split(values.get("email", "")) if e)
            phones = tuple(p.strip() for p in _SPLIT_PHONES.split(values.get("phone", "")) if p.strip())
            company_name, person_name = values.get("company", ""), values.get("person", "")
            owner = values.get("owner", "")
            company_key = None
            if company_name:
                company_key = "company:" + fold_header(company_name)
                entry = companies.get(company_key)
                if entry is None:
                    entry = companies[company_key] = {
                        "name": company_name,
                        "domains": {},
                        "emails": {},
                        "phones": {},
                        "owner": owner,
                        "where": prefix + str(row_number),
                        "details": {},
                    }
                for detail in COMPANY_DETAILS:
                    if values.get(detail) and detail not in entry["details"]:
                        entry["details"][detail] = values[detail][:DETAIL_LIMIT]
                for domain in _SPLIT_EMAILS.split(values.get("domain", "")):
                    if domain:
                        entry["domains"][domain] = None
                if not person_name:
                    entry["emails"].update(dict.fromkeys(emails))
                    entry["phones"].update(dict.fromkeys(phones))
                entry["owner"] = entry["owner"] or owner
            if not person_name and not (emails and not company_name):
                continue
            key = self._row_key(values, emails, row)
            if key in seen_keys:
                key = f"{key}#row{row_number}"
            seen_keys.add(key)
            name = person_name or emails[0]
            people.append(
                CustomerRecord(
                    key=key,
                    kind=CustomerKind.PERSON,
                    name=name,
                    emails=emails,
                    phones=phones,
                    company_key=company_key,
                    owner=owner,
                    where=prefix + str(row_number),
                    version=_fingerprint("person", name, emails, phones, (), company_key, owner, details, consent),
                    details=details,
                    consent=consent,
                )
            )
        records = []
        for key, entry in companies.items():
            domains, emails, phones = tuple(entry["domains"]), tuple(entry["emails"]), tuple(entry["phones"])
            details = CustomerDetails(**entry["details"])
            records.append(
                CustomerRecord(
                    key=key,
                    kind=CustomerKind.COMPANY,
                    name=entry["name"],
                    domains=domains,
                    emails=emails,
                    phones=phones,
                    owner=entry["owner"],
                    where=entry["where"],
                    version=_fingerprint(
                        "company", entry["name"], emails, phones, domains, None, entry["owner"], details
                    ),
                    details=details,
                )
            )
        return records + people

    def _details(
        self,
        values: dict[str, str],
        row: list[Any],
        index: dict[str, int],
        sheet_title: str,
        row_number: int,
        problems: list[Problem] | None,
    ) -> CustomerDetails:
        """The row's detail columns. A birth date that is not a date is left out and
        quarantined on its own, naming the cell: the customer is still read."""
        birth_date = None
        if values.get("birth_date"):
            position = index["birth_date"]
            try:
                birth_date = cell_date(row[position])
            except CellError as exc:
                if problems is not None:
                    header = self.columns["birth_date"]
                    problems.append(
                        Problem(
                            key=f"birth_date:{sheet_title}!{row_number}",
                            reason=f"column {header!r}: {exc}; the customer is kept without a birth date",
                            where=f"{self.path.name}!{sheet_title} row {row_number}",
                            version=_version(values["birth_date"]),
                        )
                    )
        return CustomerDetails(
            **{f: values.get(f, "")[:DETAIL_LIMIT] for f in DETAIL_FIELDS if f != "birth_date"}, birth_date=birth_date
        )

    def _consent(
        self,
        values: dict[str, str],
        row: list[Any],
        index: dict[str, int],
        sheet_title: str,
        row_number: int,
        problems: list[Problem] | None,
    ) -> ConsentStatement | None:
        """The row's consent columns; an unknown basis or date is quarantined naming the
        cell, and the customer is read without a statement (no basis assumed)."""
        if "consent" not in self.columns:
            return None
        where = f"{self.path.name}!{sheet_title} row {row_number}"
        text = " ".join(values.get("consent", "").lower().split())
        if not text:
            return None  # not stated is not "none": nothing is recorded
        basis = _BASES.get(text, "")
        dates: dict[str, Any] = {}
        reason = None if basis else f"column {self.columns['consent']!r}: {text!r} is no legal basis"
        for field in ("consent_date", "consent_withdrawn"):
            if reason is None and values.get(field):
                try:
                    dates[field] = cell_date(row[index[field]])
                except CellError as exc:
                    reason = f"column {self.columns[field]!r}: {exc}"
        if reason is not None:
            if problems is not None:
                problems.append(
                    Problem(
                        key=f"consent:{sheet_title}!{row_number}",
                        reason=reason + "; the customer is kept without a consent statement",
                        where=where,
                        version=_version(
                            *(values.get(f, "") for f in ("consent", "consent_date", "consent_withdrawn"))
                        ),
                    )
                )
            return None
        return ConsentStatement(
            basis=basis,
            scope=values.get("consent_scope", "")[:SCOPE_LIMIT],
            given_on=dates.get("consent_date"),
            withdrawn_on=dates.get("consent_withdrawn"),
        )

    def _row_key(self, values: dict[str, str], emails: tuple[str, ...], row: list[Any]) -> str:
        if self.key_columns:
            return "row:" + "|".join(values[f"key:{c}"] for c in self.key_columns)
        if emails:
            return "person:" + emails[0].lower()
        return "row:" + _version(*[cell_text(v) for v in row])


class CustomerColumns(StrictModel):
    """Which header names hold which customer fields. Unmapped fields are left empty."""

    company: str | None = Field(default=None, description="Company name.")
    person: str | None = Field(default=None, description="Contact person's full name.")
    email: str | None = Field(default=None, description="Email address(es); several separated by , ; or space.")
    phone: str | None = Field(default=None, description="Phone number(s).")
    domain: str | None = Field(default=None, description="Company web or mail domain.")
    owner: str | None = Field(default=None, description="Staff member who owns the customer.")
    street: str | None = Field(default=None, description="Street and house number; compared to find duplicates.")
    postcode: str | None = Field(default=None, description="Postal code; compared to find duplicates.")
    city: str | None = Field(default=None, description="City or town; compared to find duplicates.")
    country: str | None = Field(default=None, description="Country.")
    birth_date: str | None = Field(
        default=None,
        description="A person's date of birth (a date cell, 12.03.1985, 1985-03-12 or 19850312); "
        "compared to find duplicates. A cell that is no date is quarantined, the person kept.",
    )
    tax_id: str | None = Field(
        default=None, description="VAT number, company registration or personal tax id; compared to find duplicates."
    )
    website: str | None = Field(default=None, description="Web address; compared to find duplicates.")
    consent: str | None = Field(
        default=None,
        description="The legal basis for keeping the customer: consent (also yes, da, tak, ja, x), contract, "
        "legitimate interest, or none (no, ne, nie, nej). Each change is kept as history.",
    )
    consent_scope: str | None = Field(
        default=None, description="What the basis covers, e.g. marketing, history (empty: everything)."
    )
    consent_date: str | None = Field(default=None, description="When it was given.")
    consent_withdrawn: str | None = Field(default=None, description="When it was withdrawn (a date ends it).")

    @model_validator(mode="after")
    def _needs_name(self) -> CustomerColumns:
        if not self.company and not self.person:
            raise ValueError("map at least one of company or person")
        return self


class ExcelCustomersSettings(SheetSettings):
    """A customer list kept in a staff workbook: companies and people."""

    kind: Literal["excel_customers"]
    columns: CustomerColumns


def _build(settings: ExcelCustomersSettings, context: ConnectorContext) -> ExcelCustomersConnector:
    return ExcelCustomersConnector(
        settings.name,
        context.options,
        path=settings.path,
        sheet=settings.sheet,
        header_row=settings.header_row_number,
        columns=settings.columns.model_dump(),
        key_columns=settings.key_columns,
    )


KIND = SourceKind(
    name="excel_customers",
    settings=ExcelCustomersSettings,
    build=_build,
    check=lambda s: check_sheet(s, s.columns.model_dump()),
    summary="A customer list in a staff workbook, read-only.",
    capabilities=Capabilities(customers=True, watched_file=True),
    tables=(
        (
            "[sources.columns] of an excel_customers source",
            CustomerColumns,
            "Header names for each customer field; the match ignores case and extra spaces.",
        ),
    ),
)
