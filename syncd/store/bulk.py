"""Bulk writing helpers of the store: chunked lookups, multi-row inserts, ids up front, identity claims.

A backfill writes hundreds of thousands of rows, and SQLAlchemy's per-row bookkeeping
costs more than the database's own work at that size; these helpers go to the driver
for the hot paths (measured in the IMAP issue: store 180k -> 161k instructions per
message). Everything else in the store uses SQLAlchemy normally.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from syncd.model.records import Problem
from syncd.store.schema import CustomerRow, IdentityRow

T = TypeVar("T")

#: Values per IN list or multi-row statement: well under SQLite's 32,766 parameters and
#: PostgreSQL's 65,535, small enough that a statement stays cheap to plan.
CHUNK = 500


def chunks(values: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    """``values`` in slices of at most ``size``, in order."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def bound(s: Session, column: Any, value: Any) -> Any:
    """``value`` as the driver stores it in ``column`` (the type's bind processing, done once)."""
    return processor(s, column)(value)


def processor(s: Session, column: Any) -> Callable[[Any], Any]:
    """The bind processing of ``column``'s type for this dialect, as one callable."""
    process = column.type._cached_bind_processor(s.get_bind().dialect)
    return (lambda value: value if value is None else process(value)) if process else (lambda value: value)


def new_ids(s: Session, table: Any, count: int) -> list[int]:
    """``count`` unused primary keys for ``table``, reserved for this transaction.

    PostgreSQL hands them out from the column's sequence. SQLite has one writer at a time
    and assigns max(id) + 1 itself; a batch takes the write lock when it begins (``BEGIN
    IMMEDIATE`` in the ingest), so no other writer can take these ids meanwhile.
    """
    connection = s.connection()
    if connection.dialect.name == "postgresql":
        return list(
            connection.exec_driver_sql(
                f"SELECT nextval(pg_get_serial_sequence('{table.name}', 'id')) FROM generate_series(1, {int(count)})"
            ).scalars()
        )
    highest = connection.exec_driver_sql(f"SELECT coalesce(max(id), 0) FROM {table.name}").scalar_one()
    return list(range(highest + 1, highest + 1 + count))


def marker(connection: Any) -> str:
    """The driver's parameter marker: ``?`` for sqlite3, ``%s`` for psycopg."""
    return "?" if connection.dialect.paramstyle == "qmark" else "%s"


def present(s: Session, query: str, values: Sequence[str], *leading: Any) -> Iterator[str]:
    """The ``values`` that ``query ... IN (...)`` finds, asked a chunk at a time through the
    driver: SQLAlchemy compiles an expanding IN value by value, which cost more per batch
    than the lookups."""
    connection = s.connection()
    mark = marker(connection)
    head = query.replace("{mark}", mark)
    for chunk in chunks(values):
        yield from connection.exec_driver_sql(
            head + "(" + ", ".join(mark for _ in chunk) + ")", (*leading, *chunk)
        ).scalars()


def insert_rows(s: Session, table: Any, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert many plain rows as multi-row ``INSERT ... VALUES (...), (...)`` statements sent
    straight to the driver. For bulk inserts only: values must already be in driver form
    (see ``processor``).

    Why not SQLAlchemy or the driver's executemany: SQLAlchemy's per-value processing is
    most of the cost at 100,000 rows, and sqlite3's executemany releases and re-takes the
    GIL for every row, so while the connector's thread parses mail each row can wait a
    whole thread switch interval (5 ms). One statement per few hundred rows waits once.
    """
    if not rows:
        return
    connection = s.connection()
    mark = marker(connection)
    group = "(" + ", ".join(mark for _ in columns) + ")"
    head = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES "
    per_statement = max(1, min(CHUNK, 30_000 // len(columns)))  # under SQLite's 32,766 parameters
    for chunk in chunks(rows, per_statement):
        connection.exec_driver_sql(
            head + ", ".join(group for _ in chunk), tuple(value for row in chunk for value in row)
        )


@dataclass(frozen=True, slots=True)
class Claim:
    """A customer asking for an identity (an email, phone or domain) read from a record."""

    customer_id: int
    customer_name: str
    kind: str
    value: str
    record_key: str
    where: str
    target: str  # how a refusal names the claimant ("'Acme'", "customer #5, which 'Acme' was merged into")


def claim_identities(s: Session, claims: Sequence[Claim], problems: list[Problem]) -> None:
    """Give each claimed identity to its claimant, the one way every path of the store does it.

    An identity belongs to one customer. A live holder keeps it and the claim becomes a
    ``Problem`` naming the holder (the surest sign of a duplicate customer); an identity
    held by a customer that is gone passes to the claimant; within one batch the first
    claim wins. Holders are looked up a chunk at a time, and new identities inserted in bulk.
    """
    if not claims:
        return
    values_by_kind: dict[str, list[str]] = defaultdict(list)
    for claim in claims:
        values_by_kind[claim.kind].append(claim.value)
    holders: dict[tuple[str, str], tuple[int, int, str, bool]] = {}  # -> (identity id, customer, name, alive)
    for kind, values in values_by_kind.items():
        for chunk in chunks(list(dict.fromkeys(values))):
            for identity_id, value, customer_id, name, gone in s.execute(
                select(
                    IdentityRow.id, IdentityRow.value, IdentityRow.customer_id, CustomerRow.name, CustomerRow.gone_at
                )
                .join(CustomerRow, CustomerRow.id == IdentityRow.customer_id)
                .where(IdentityRow.kind == kind, IdentityRow.value.in_(chunk))
            ):
                holders[(kind, value)] = (identity_id, customer_id, name, gone is None)
    stale: list[int] = []
    claimed: dict[tuple[str, str], tuple[int, str]] = {}
    fresh: list[tuple[int, str, str]] = []
    for claim in claims:
        identity = (claim.kind, claim.value)
        holder = holders.get(identity)
        owner = claimed.get(identity) or ((holder[1], holder[2]) if holder and holder[3] else None)
        if owner is not None:
            if owner[0] != claim.customer_id:
                problems.append(
                    Problem(
                        key=f"{claim.record_key}#{claim.kind}:{claim.value}",
                        where=claim.where,
                        reason=f"{claim.kind} {claim.value} is already on customer #{owner[0]} {owner[1]!r}; "
                        f"not added to {claim.target}",
                    )
                )
            continue
        if holder is not None:
            stale.append(holder[0])  # held by a customer that is gone: the claimant takes it
        claimed[identity] = (claim.customer_id, claim.customer_name)
        fresh.append((claim.customer_id, claim.kind, claim.value))
    for ids in chunks(stale):
        s.execute(delete(IdentityRow).where(IdentityRow.id.in_(ids)))
    insert_rows(s, IdentityRow.__table__, ("customer_id", "kind", "value"), fresh)
