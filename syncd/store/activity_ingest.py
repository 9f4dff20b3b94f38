"""Activities of a batch into the store: new ones in bulk, the rest (edits, other mailboxes' copies) row by row.

``activities.message_id`` is unique: the same mail in several mailboxes is one activity
with one occurrence per mailbox, its participants merged (a Bcc shows only in one copy).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from syncd.model.records import ActivityRecord, Direction, Participant
from syncd.store.bulk import bound, insert_rows, new_ids, present, processor
from syncd.store.links import LinkFunction, participants_from_json, set_links
from syncd.store.schema import ActivityRow, LinkRow, OccurrenceRow


def participants_to_json(participants: Iterable[Participant]) -> list[dict[str, str]]:
    return [{"email": p.email, "name": p.name, "role": p.role.value} for p in participants]


def merge_participants(old: list[dict[str, str]], new: list[dict[str, str]]) -> list[dict[str, str]]:
    seen = {(p["email"], p["role"]) for p in old}
    merged = list(old)
    for p in new:
        if (p["email"], p["role"]) not in seen:
            merged.append(p)
            seen.add((p["email"], p["role"]))
    return merged


def insert_new_activities(
    s: Session, source_id: int, records: Sequence[ActivityRecord], link: LinkFunction, now: datetime
) -> list[ActivityRecord]:
    """Insert, in bulk, the records that are new everywhere (the whole of a backfill).

    A record is new everywhere when its source has no item with its key and no stored
    activity has its Message-ID. Everything else (an edited sheet row, the second
    mailbox's copy of a message, a Message-ID seen twice in this batch) is returned for
    the row-by-row path, which merges. Returns those records, in order.
    """
    if not records:
        return []
    keys = [r.key for r in records]
    message_ids = [r.message_id for r in records if r.message_id]
    existing_keys = set(
        present(s, "SELECT item_key FROM occurrences WHERE source_id = {mark} AND item_key IN ", keys, source_id)
    )
    existing_ids = set(present(s, "SELECT message_id FROM activities WHERE message_id IN ", message_ids))
    fresh: list[ActivityRecord] = []
    rest: list[ActivityRecord] = []
    claimed: set[str] = set()
    for record in records:
        if record.key in existing_keys or (
            record.message_id and (record.message_id in existing_ids or record.message_id in claimed)
        ):
            rest.append(record)
            continue
        if record.message_id:
            claimed.add(record.message_id)
        fresh.append(record)
    if not fresh:
        return rest
    # Straight through the driver: SQLAlchemy's per-row bookkeeping costs more than
    # the database's own insert.
    ids = insert_activity_rows(s, fresh, now)
    occurrences = OccurrenceRow.__table__
    stamp = bound(s, occurrences.c.seen_at, now)
    insert_rows(
        s,
        occurrences,
        ("activity_id", "source_id", "item_key", "folder", "mailbox", "link", "version", "seen_at"),
        [
            (activity_id, source_id, r.key, r.folder, r.mailbox, r.link, r.version, stamp)
            for activity_id, r in zip(ids, fresh, strict=True)
        ],
    )
    links = [
        (activity_id, spec.customer_id, spec.rule, spec.confidence, spec.evidence)
        for activity_id, r in zip(ids, fresh, strict=True)
        for spec in link(r.participants, dict(r.hints))
    ]
    if links:
        insert_rows(s, LinkRow.__table__, ("activity_id", "customer_id", "rule", "confidence", "evidence"), links)
    return rest


def insert_activity_rows(s: Session, records: Sequence[ActivityRecord], now: datetime) -> list[int]:
    """Insert activity rows; their ids, in the order of ``records``.

    The ids are taken first (see ``_new_ids``) and the rows go in as multi-row INSERTs
    (``_executemany``): no row is read back, because on SQLite reading rows back also
    costs a thread switch per row while a connector thread is parsing.
    """
    table = ActivityRow.__table__
    ids = new_ids(s, table, len(records))
    stamp = bound(s, table.c.created_at, now)
    to_json = processor(s, table.c.participants)
    hints_json = processor(s, table.c.hints)
    when = processor(s, table.c.occurred_at)
    amount = processor(s, table.c.amount)
    insert_rows(
        s,
        table,
        (
            "id",
            "kind",
            "occurred_at",
            "direction",
            "subject",
            "snippet",
            "body",
            "participants",
            "hints",
            "message_id",
            "thread_key",
            "amount",
            "currency",
            "created_at",
            "updated_at",
        ),
        [
            (
                row_id,
                r.kind.value,
                when(r.occurred_at),
                r.direction.value,
                r.subject,
                r.snippet,
                r.body,
                to_json(r.participants),
                hints_json(dict(r.hints)),
                r.message_id,
                r.thread_key,
                amount(r.amount),
                r.currency,
                stamp,
                stamp,
            )
            for row_id, r in zip(ids, records, strict=True)
        ],
    )
    return ids


def upsert_activity(s: Session, source_id: int, record: ActivityRecord, link: LinkFunction, now: datetime) -> str:
    occurrence = s.scalar(
        select(OccurrenceRow).where(OccurrenceRow.source_id == source_id, OccurrenceRow.item_key == record.key)
    )
    if occurrence is not None and occurrence.version == record.version and occurrence.gone_at is None:
        return "unchanged"
    participants = participants_to_json(record.participants)
    activity = None
    if occurrence is not None:
        activity = s.get(ActivityRow, occurrence.activity_id)
    if activity is None and record.message_id:
        activity = s.scalar(select(ActivityRow).where(ActivityRow.message_id == record.message_id))
    outcome = "updated"
    if activity is None:
        outcome = "new"
        activity = ActivityRow(
            kind=record.kind.value,
            occurred_at=record.occurred_at,
            direction=record.direction.value,
            message_id=record.message_id,
            participants=participants,
            hints=dict(record.hints),
            created_at=now,
        )
        s.add(activity)
    elif occurrence is None:
        # The same message from another mailbox: keep the first copy's fields, add what
        # this copy shows (a Bcc is only visible in the sender's copy). A message one of
        # us sent is outbound, whichever mailbox was read first (a colleague's cc'd copy
        # would say inbound).
        activity.participants = merge_participants(activity.participants, participants)
        if record.direction == Direction.OUTBOUND:
            activity.direction = Direction.OUTBOUND.value
    else:
        activity.participants = participants
        activity.hints = dict(record.hints)
    if outcome == "new" or occurrence is not None:
        activity.kind = record.kind.value
        activity.occurred_at = record.occurred_at
        activity.direction = record.direction.value
        activity.subject = record.subject
        activity.snippet = record.snippet
        activity.body = record.body
        activity.thread_key = record.thread_key
        activity.amount = record.amount
        activity.currency = record.currency
    activity.updated_at = now
    activity.gone_at = None
    s.flush()
    if occurrence is None:
        occurrence = OccurrenceRow(activity_id=activity.id, source_id=source_id, item_key=record.key, seen_at=now)
        s.add(occurrence)
    occurrence.folder = record.folder
    occurrence.mailbox = record.mailbox
    occurrence.link = record.link
    occurrence.version = record.version
    occurrence.gone_at = None
    set_links(s, activity.id, link(participants_from_json(activity.participants), activity.hints))
    return outcome
