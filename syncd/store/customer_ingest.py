"""Customers of a batch into the store: new ones in bulk, changed ones row by row, merged ones fed to their survivor.

Identities (emails, phones, domains) are claimed through ``bulk.claim_identities`` on
every path, so a live holder always keeps its identity and the newcomer's is quarantined
with a message naming the holder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from syncd.model.records import ConsentStatement, CustomerDetails, CustomerKind, CustomerRecord, Problem
from syncd.store.bulk import Claim, bound, chunks, claim_identities, insert_rows
from syncd.store.schema import ConsentRow, CustomerMergeRow, CustomerRow, IdentityRow


@dataclass(frozen=True)
class KnownCustomer:
    """A customer known by id only (inserted in bulk, or looked up for its id): enough to
    set a person's company."""

    id: int


CustomersByKey = dict[str, "CustomerRow | KnownCustomer"]


DETAIL_COLUMNS = ("street", "postcode", "city", "country", "birth_date", "tax_id", "website")


def detail_values(details: CustomerDetails) -> tuple[str | None, ...]:
    """The details as the bulk insert sends them (empty as NULL, the date as ISO text,
    which SQLite keeps as SQLAlchemy's Date does and PostgreSQL casts)."""
    return tuple(
        (value.isoformat() if hasattr(value, "isoformat") else value) or None
        for value in (getattr(details, name) for name in DETAIL_COLUMNS)
    )


def set_details(row: CustomerRow, details: CustomerDetails) -> None:
    for name in DETAIL_COLUMNS:
        setattr(row, name, getattr(details, name) or None)


def details_of(row: CustomerRow) -> CustomerDetails:
    return CustomerDetails(
        **{name: getattr(row, name) or "" for name in DETAIL_COLUMNS if name != "birth_date"},
        birth_date=row.birth_date,
    )


def record_consent(
    s: Session, customer_id: int, statement: ConsentStatement | None, source_id: int, now: datetime
) -> bool:
    """Append the record's consent statement when it differs from the customer's latest:
    the history is kept, never overwritten. A list that stops stating it records nothing."""
    if statement is None:
        return False
    latest = s.scalar(select(ConsentRow).where(ConsentRow.customer_id == customer_id).order_by(ConsentRow.id.desc()))
    if latest is not None and consent_of(latest) == statement:
        return False
    s.add(
        ConsentRow(
            customer_id=customer_id,
            basis=statement.basis,
            scope=statement.scope,
            given_on=statement.given_on,
            withdrawn_on=statement.withdrawn_on,
            source_id=source_id,
            recorded_at=now,
        )
    )
    return True


def identities_of(record: CustomerRecord) -> list[tuple[str, str]]:
    return (
        [("domain", d) for d in record.domains]
        + [("email", e) for e in record.emails]
        + [("phone", p) for p in record.phones]
    )


def _claims(
    record: CustomerRecord, customer_id: int, identities: Sequence[tuple[str, str]], target: str | None = None
) -> list[Claim]:
    return [
        Claim(customer_id, record.name, kind, value, record.key, record.where, target or repr(record.name))
        for kind, value in identities
    ]


def merged_keys(s: Session, source_id: int, records: Sequence[CustomerRecord]) -> dict[str, int]:
    """Keys of these records (and of their companies) that were merged away -> survivor."""
    keys = list({r.key for r in records} | {r.company_key for r in records if r.company_key})
    merged: dict[str, int] = {}
    for chunk in chunks(keys):
        for key, into_id in s.execute(
            select(CustomerMergeRow.source_key, CustomerMergeRow.into_id).where(
                CustomerMergeRow.source_id == source_id, CustomerMergeRow.source_key.in_(chunk)
            )
        ):
            merged[key] = into_id
    return merged


def feed_survivor(s: Session, record: CustomerRecord, into_id: int, problems: list[Problem]) -> None:
    """A merged record read again: its identities go to the customer it was merged into."""
    claim_identities(
        s,
        _claims(record, into_id, identities_of(record), f"customer #{into_id}, which {record.name!r} was merged into"),
        problems,
    )


def _ids_by_key(s: Session, source_id: int, keys: Sequence[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for chunk in chunks(keys):
        for customer_id, key in s.execute(
            select(CustomerRow.id, CustomerRow.source_key).where(
                CustomerRow.source_id == source_id, CustomerRow.source_key.in_(chunk)
            )
        ):
            if key is not None:
                found[key] = customer_id
    return found


def insert_new_customers(
    s: Session,
    source_id: int,
    records: Sequence[CustomerRecord],
    by_key: CustomersByKey,
    problems: list[Problem],
    now: datetime,
) -> tuple[int, list[CustomerRecord]]:
    """Insert the customers the store has never held, in bulk: a first import of a large
    sheet is a few multi-row INSERTs instead of several queries per row. Returns how many
    were inserted and the records left for the row-by-row path (those the store holds)."""
    if not records:
        return 0, []
    keys = list(dict.fromkeys([r.key for r in records] + [r.company_key for r in records if r.company_key]))
    stored = _ids_by_key(s, source_id, keys)
    for key, customer_id in stored.items():
        by_key.setdefault(key, KnownCustomer(customer_id))
    held = [r for r in records if r.key in stored]
    unique: list[CustomerRecord] = []
    seen: set[str] = set()
    for record in (r for r in records if r.key not in stored):
        if record.key in seen:
            held.append(record)  # the same key twice in a batch: the row path updates it
            continue
        seen.add(record.key)
        unique.append(record)
    if not unique:
        return 0, held
    ids: dict[str, int] = {}
    table = CustomerRow.__table__
    stamp = bound(s, table.c.created_at, now)

    def company_id(record: CustomerRecord) -> int | None:
        if not record.company_key:
            return record.company_id
        known = by_key.get(record.company_key)
        return ids.get(record.company_key) or (known.id if known is not None else None)

    for kind in (CustomerKind.COMPANY, CustomerKind.PERSON):  # companies first: people point at them
        group = [r for r in unique if r.kind == kind]
        if not group:
            continue
        insert_rows(
            s,
            table,
            (
                "kind",
                "name",
                "owner",
                "version",
                "source_id",
                "source_key",
                "created_at",
                "updated_at",
                "company_id",
                *DETAIL_COLUMNS,
            ),
            [
                (
                    r.kind.value,
                    r.name,
                    r.owner,
                    r.version,
                    source_id,
                    r.key,
                    stamp,
                    stamp,
                    company_id(r),
                    *detail_values(r.details),
                )
                for r in group
            ],
        )
        ids.update(_ids_by_key(s, source_id, [r.key for r in group]))
    for key, customer_id in ids.items():
        by_key[key] = KnownCustomer(customer_id)
    claim_identities(s, [claim for r in unique for claim in _claims(r, ids[r.key], identities_of(r))], problems)
    for record in unique:
        record_consent(s, ids[record.key], record.consent, source_id, now)
    return len(ids), held


def upsert_customer(
    s: Session, source_id: int, record: CustomerRecord, by_key: CustomersByKey, problems: list[Problem], now: datetime
) -> bool:
    """Update (or insert) one customer the store already knows by key; True when it changed."""
    known = by_key.get(record.key)
    row = (
        known
        if isinstance(known, CustomerRow)
        else s.scalar(
            select(CustomerRow).where(CustomerRow.source_id == source_id, CustomerRow.source_key == record.key)
        )
    )
    if row is not None and row.version == record.version and row.gone_at is None and record.version:
        by_key[record.key] = row
        return False
    company_id = record.company_id
    if record.company_key:
        company = by_key.get(record.company_key) or s.scalar(
            select(CustomerRow).where(CustomerRow.source_id == source_id, CustomerRow.source_key == record.company_key)
        )
        company_id = company.id if company is not None else None
    if row is None:
        row = CustomerRow(
            source_id=source_id, source_key=record.key, created_at=now, kind=record.kind.value, name=record.name
        )
        s.add(row)
    row.kind = record.kind.value
    row.name = record.name
    row.company_id = company_id
    row.owner = record.owner
    row.version = record.version
    set_details(row, record.details)
    row.updated_at = now
    row.gone_at = None
    s.flush()
    by_key[record.key] = row
    wanted = set(identities_of(record))
    current = {
        (kind, value): identity_id
        for identity_id, kind, value in s.execute(
            select(IdentityRow.id, IdentityRow.kind, IdentityRow.value).where(IdentityRow.customer_id == row.id)
        )
    }
    dropped = [identity_id for identity, identity_id in current.items() if identity not in wanted]
    for chunk in chunks(dropped):
        s.execute(delete(IdentityRow).where(IdentityRow.id.in_(chunk)))
    claim_identities(s, _claims(record, row.id, sorted(wanted - current.keys())), problems)
    record_consent(s, row.id, record.consent, source_id, now)
    return True


def latest_consent(s: Session) -> dict[int, ConsentStatement]:
    """Each customer's latest consent statement."""
    found: dict[int, ConsentStatement] = {}
    for row in s.scalars(select(ConsentRow).order_by(ConsentRow.id)):
        found[row.customer_id] = consent_of(row)
    return found


def consent_of(row: ConsentRow) -> ConsentStatement:
    return ConsentStatement(row.basis, row.scope, row.given_on, row.withdrawn_on)
