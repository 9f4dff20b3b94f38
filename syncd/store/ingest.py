"""One batch into the store, in one transaction with its cursor: the whole crash-safety story.

Everything a batch changes (activities, customers, quarantine and skip entries,
removals, correspondent counts) commits together with the source's cursor. After a crash
the store holds either all of a batch and its cursor, or none of it, and re-reading from
the stored cursor repeats nothing. Two mailboxes syncing in parallel may insert the same
Message-ID at once; the loser gets a unique-constraint error and runs its batch again,
and then finds the other's activity and adds its occurrence to it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import cast

from sqlalchemy import Table, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from syncd.model.records import ActivityRecord, CustomerKind, CustomerRecord, Problem
from syncd.store.activity_ingest import insert_new_activities, upsert_activity
from syncd.store.bulk import chunks
from syncd.store.customer_ingest import (
    CustomersByKey,
    KnownCustomer,
    feed_survivor,
    insert_new_customers,
    merged_keys,
    upsert_customer,
)
from syncd.store.engine import StorePart, utcnow
from syncd.store.links import LinkFunction
from syncd.store.schema import (
    ActivityRow,
    CorrespondentRow,
    CursorRow,
    CustomerRow,
    IdentityRow,
    OccurrenceRow,
    QuarantineRow,
    SkippedRow,
    SourceRow,
)

log = logging.getLogger("syncd.store")


@dataclass(frozen=True)
class Skip:
    """An item read but not logged, with why (internal-only, automated, blocked...)."""

    key: str
    reason: str
    version: str = ""


@dataclass
class Ingest:
    """One batch's worth of changes for one source, committed atomically with its cursor."""

    activities: list[ActivityRecord] = field(default_factory=list)
    customers: list[CustomerRecord] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    folder: str = ""
    cursor: str | None = None
    backlog: int | None = None
    # address -> (display name, inbound, outbound) counted in this batch (auto-creation)
    correspondents: dict[str, tuple[str, int, int]] = field(default_factory=dict)


@dataclass
class CommitResult:
    activities_new: int = 0
    activities_updated: int = 0
    customers_changed: int = 0
    removed: int = 0
    quarantined: int = 0
    skipped: int = 0


class Batches(StorePart):
    """Committing batches (and counting correspondents outside a batch)."""

    def commit(self, source_id: int, ingest: Ingest, link: LinkFunction) -> CommitResult:
        """Apply one batch and its cursor in a single transaction. Idempotent.

        Two mailboxes syncing in parallel may insert the same Message-ID at once; the loser
        gets a unique-constraint error, and simply runs its batch again: the second time it
        finds the other's activity and adds its occurrence to it.
        """
        for attempt in range(3):
            try:
                return self._commit_once(source_id, ingest, link)
            except IntegrityError:
                if attempt == 2:
                    raise
                log.info("source_id=%d batch raced another source on a unique key; retrying", source_id)
        raise AssertionError("unreachable")

    def _commit_once(self, source_id: int, ingest: Ingest, link: LinkFunction) -> CommitResult:
        result = CommitResult()
        now = utcnow()
        with self.session() as s, s.begin():
            if s.get_bind().dialect.name == "sqlite":
                # Take the write lock first (waiting on busy_timeout): the batch reads what
                # is stored, then writes, and its new ids count on no other writer between.
                s.connection().exec_driver_sql("BEGIN IMMEDIATE")
            stored_keys = [r.key for r in ingest.customers] + [r.key for r in ingest.activities]
            _clear_other_outcomes(s, source_id, stored_keys)
            customers_by_key: CustomersByKey = {}
            ordered = sorted(ingest.customers, key=lambda r: r.kind != CustomerKind.COMPANY)
            if ordered:
                merged = merged_keys(s, source_id, ordered)
                for key, into_id in merged.items():
                    customers_by_key[key] = KnownCustomer(into_id)  # its people join the survivor
                for record in (r for r in ordered if r.key in merged):
                    feed_survivor(s, record, merged[record.key], ingest.problems)
                ordered = [r for r in ordered if r.key not in merged]
            inserted, ordered = insert_new_customers(s, source_id, ordered, customers_by_key, ingest.problems, now)
            result.customers_changed += inserted
            for customer in ordered:
                if upsert_customer(s, source_id, customer, customers_by_key, ingest.problems, now):
                    result.customers_changed += 1
            remaining = insert_new_activities(s, source_id, ingest.activities, link, now)
            result.activities_new += len(ingest.activities) - len(remaining)
            for activity in remaining:
                outcome = upsert_activity(s, source_id, activity, link, now)
                if outcome == "new":
                    result.activities_new += 1
                elif outcome == "updated":
                    result.activities_updated += 1
            for skip in ingest.skipped:
                record_skip(s, source_id, skip, now)
                result.skipped += 1
            for problem in ingest.problems:
                _record_problem(s, source_id, problem, now)
                result.quarantined += 1
            if ingest.removed:
                result.removed, changed = _apply_removals(s, source_id, ingest.removed, now)
                result.customers_changed += changed
            if ingest.correspondents:
                count_correspondents_in(s, ingest.correspondents, now)
            if ingest.backlog is not None:
                # On the table, not the entity: the ORM would evaluate the WHERE in Python
                # against the session for every batch.
                sources = cast(Table, SourceRow.__table__)
                s.execute(update(sources).where(sources.c.id == source_id).values(backlog=ingest.backlog))
            if ingest.cursor is not None:
                row = s.scalar(
                    select(CursorRow).where(CursorRow.source_id == source_id, CursorRow.folder == ingest.folder)
                )
                if row is None:
                    s.add(CursorRow(source_id=source_id, folder=ingest.folder, value=ingest.cursor, updated_at=now))
                else:
                    row.value = ingest.cursor
                    row.updated_at = now
        return result

    def count_correspondents(self, counts: dict[str, tuple[str, int, int]]) -> None:
        with self.session() as s, s.begin():
            count_correspondents_in(s, counts, utcnow())


def _clear_other_outcomes(s: Session, source_id: int, keys: Sequence[str]) -> None:
    """An item now stored is no longer skipped or quarantined (e.g. a fixed sheet row)."""
    if not keys:
        return
    held = (
        s.scalar(select(SkippedRow.id).where(SkippedRow.source_id == source_id).limit(1)) is not None
        or s.scalar(select(QuarantineRow.id).where(QuarantineRow.source_id == source_id).limit(1)) is not None
    )
    if not held:
        return  # nothing to clear (a first backfill): skip the large IN lists
    for chunk in chunks(keys):
        s.execute(delete(SkippedRow).where(SkippedRow.source_id == source_id, SkippedRow.item_key.in_(chunk)))
        s.execute(delete(QuarantineRow).where(QuarantineRow.source_id == source_id, QuarantineRow.item_key.in_(chunk)))


def record_skip(s: Session, source_id: int, skip: Skip, now: datetime) -> None:
    row = s.scalar(select(SkippedRow).where(SkippedRow.source_id == source_id, SkippedRow.item_key == skip.key))
    if row is None:
        s.add(SkippedRow(source_id=source_id, item_key=skip.key, reason=skip.reason, version=skip.version, at=now))
    else:
        row.reason, row.version, row.at = skip.reason, skip.version, now


def _record_problem(s: Session, source_id: int, problem: Problem, now: datetime) -> None:
    row = s.scalar(
        select(QuarantineRow).where(QuarantineRow.source_id == source_id, QuarantineRow.item_key == problem.key)
    )
    if row is None:
        s.add(
            QuarantineRow(
                source_id=source_id,
                item_key=problem.key,
                reason=problem.reason,
                location=problem.where,
                version=problem.version,
                first_seen_at=now,
                last_seen_at=now,
            )
        )
    else:
        row.reason, row.location, row.version, row.last_seen_at = (problem.reason, problem.where, problem.version, now)


def _apply_removals(s: Session, source_id: int, keys: Sequence[str], now: datetime) -> tuple[int, int]:
    removed = customers = 0
    for key in keys:
        occurrence = s.scalar(
            select(OccurrenceRow).where(OccurrenceRow.source_id == source_id, OccurrenceRow.item_key == key)
        )
        if occurrence is not None and occurrence.gone_at is None:
            occurrence.gone_at = now
            s.flush()
            alive = s.scalar(
                select(func.count())
                .select_from(OccurrenceRow)
                .where(OccurrenceRow.activity_id == occurrence.activity_id, OccurrenceRow.gone_at.is_(None))
            )
            if not alive:
                s.execute(update(ActivityRow).where(ActivityRow.id == occurrence.activity_id).values(gone_at=now))
            removed += 1
        customer = s.scalar(
            select(CustomerRow).where(CustomerRow.source_id == source_id, CustomerRow.source_key == key)
        )
        if customer is not None and customer.gone_at is None:
            customer.gone_at = customer.updated_at = now
            s.execute(delete(IdentityRow).where(IdentityRow.customer_id == customer.id))
            removed += 1
            customers += 1
        s.execute(delete(SkippedRow).where(SkippedRow.source_id == source_id, SkippedRow.item_key == key))
        s.execute(delete(QuarantineRow).where(QuarantineRow.source_id == source_id, QuarantineRow.item_key == key))
    return removed, customers


def count_correspondents_in(s: Session, counts: dict[str, tuple[str, int, int]], now: datetime) -> None:
    addresses = sorted(counts)
    held: dict[str, CorrespondentRow] = {}
    for chunk in chunks(addresses):
        for row in s.scalars(select(CorrespondentRow).where(CorrespondentRow.address.in_(chunk))):
            held[row.address] = row
    for address in addresses:
        name, inbound, outbound = counts[address]
        known = held.get(address)
        if known is None:
            s.add(
                CorrespondentRow(address=address, name=name[:500], inbound=inbound, outbound=outbound, last_seen_at=now)
            )
        else:
            known.inbound += inbound
            known.outbound += outbound
            known.name = known.name or name[:500]
            known.last_seen_at = now
