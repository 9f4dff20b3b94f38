"""Each source's state in the store: its row, cursors, what it holds, its health, and write-back state."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update

from syncd.model.records import SourceState
from syncd.model.views import LabelState
from syncd.store.bulk import chunks
from syncd.store.engine import StorePart, utcnow
from syncd.store.schema import (
    CursorRow,
    CustomerRow,
    LabelCleanupRow,
    LinkRow,
    OccurrenceRow,
    QuarantineRow,
    SkippedRow,
    SourceRow,
)

#: Marks labels_written as rendered labels (keywords, categories); older rows hold names.
RENDERED = "\x01"
#: label_cleanups rows with this key prefix are contacts to delete, not labels to take off.
CONTACT_CLEANUP = "contact:"


@dataclass(frozen=True)
class RemovalImpact:
    """What removing some keys of a source would take out of the timeline and Customers.

    ``lost`` counts activities left with no live occurrence anywhere plus customer rows that
    would go; ``held`` what the source holds in the same scope (a folder, else the source).
    A key re-read under a new name (an IMAP folder whose UIDVALIDITY changed) loses nothing.
    """

    lost: int
    held: int


class SourceStates(StorePart):
    def source_id(self, name: str, kind: str) -> int:
        with self.session() as s, s.begin():
            row = s.scalar(select(SourceRow).where(SourceRow.name == name))
            if row is None:
                row = SourceRow(name=name, kind=kind)
                s.add(row)
                s.flush()
            elif row.kind != kind:
                row.kind = kind
            return row.id

    def sync_state(self, source_id: int) -> SourceState:
        with self.session() as s:
            cursors = dict(
                s.execute(select(CursorRow.folder, CursorRow.value).where(CursorRow.source_id == source_id)).all()
            )
            known: dict[str, str] = {}
            for model in (SkippedRow, QuarantineRow):
                known.update(s.execute(select(model.item_key, model.version).where(model.source_id == source_id)).all())
            known.update(
                s.execute(
                    select(OccurrenceRow.item_key, OccurrenceRow.version).where(
                        OccurrenceRow.source_id == source_id, OccurrenceRow.gone_at.is_(None)
                    )
                ).all()
            )
            for key, version in s.execute(
                select(CustomerRow.source_key, CustomerRow.version).where(
                    CustomerRow.source_id == source_id, CustomerRow.gone_at.is_(None)
                )
            ):
                if key is not None:  # customers without a source (none today) hold no key
                    known[key] = version
        return SourceState(cursors=cursors, known=known)

    def removal_impact(self, source_id: int, folder: str, keys: Sequence[str]) -> RemovalImpact:
        """Measured before removals are applied, whatever the connector says of its listing."""
        wanted = set(keys)
        with self.session() as s:
            lost_activities: set[int] = set()
            candidates: set[int] = set()
            for chunk in chunks(sorted(wanted)):
                candidates.update(
                    s.scalars(
                        select(OccurrenceRow.activity_id).where(
                            OccurrenceRow.source_id == source_id,
                            OccurrenceRow.item_key.in_(chunk),
                            OccurrenceRow.gone_at.is_(None),
                        )
                    )
                )
            for ids in chunks(sorted(candidates)):
                surviving = s.execute(
                    select(OccurrenceRow.activity_id, OccurrenceRow.source_id, OccurrenceRow.item_key).where(
                        OccurrenceRow.activity_id.in_(ids), OccurrenceRow.gone_at.is_(None)
                    )
                ).all()
                alive = {a for a, src, key in surviving if src != source_id or key not in wanted}
                lost_activities.update(a for a in ids if a not in alive)
            lost_customers = 0
            for chunk in chunks(sorted(wanted)):
                lost_customers += (
                    s.scalar(
                        select(func.count())
                        .select_from(CustomerRow)
                        .where(
                            CustomerRow.source_id == source_id,
                            CustomerRow.source_key.in_(chunk),
                            CustomerRow.gone_at.is_(None),
                        )
                    )
                    or 0
                )
            in_scope = [OccurrenceRow.source_id == source_id, OccurrenceRow.gone_at.is_(None)]
            held = s.scalar(
                select(func.count(func.distinct(OccurrenceRow.activity_id))).where(
                    *in_scope, OccurrenceRow.folder == folder
                )
            )
            if not held:
                held = s.scalar(select(func.count(func.distinct(OccurrenceRow.activity_id))).where(*in_scope))
            held_customers = s.scalar(
                select(func.count())
                .select_from(CustomerRow)
                .where(CustomerRow.source_id == source_id, CustomerRow.gone_at.is_(None))
            )
        return RemovalImpact(lost=len(lost_activities) + lost_customers, held=(held or 0) + (held_customers or 0))

    def reset_cursors(self, source_id: int) -> None:
        with self.session() as s, s.begin():
            s.execute(delete(CursorRow).where(CursorRow.source_id == source_id))

    def set_notice(self, name: str, notice: str | None) -> None:
        """Advice about a source that is not an error; ``None`` clears it."""
        with self.session() as s, s.begin():
            s.execute(update(SourceRow).where(SourceRow.name == name).values(notice=notice))

    def mark_attempt(self, source_id: int) -> None:
        with self.session() as s, s.begin():
            s.execute(update(SourceRow).where(SourceRow.id == source_id).values(last_attempt_at=utcnow()))

    def mark_success(self, source_id: int, suspect_reason: str | None = None, complete: bool = True) -> None:
        values: dict[str, Any] = dict(
            last_success_at=utcnow(),
            last_error=None,
            failing_since=None,
            suspect_reason=suspect_reason,
            consecutive_failures=0,
            next_attempt_at=None,
        )
        if complete:
            values["backlog"] = 0
        with self.session() as s, s.begin():
            s.execute(update(SourceRow).where(SourceRow.id == source_id).values(**values))

    def mark_failure(self, source_id: int, error: str, next_attempt: Callable[[int], datetime] | None = None) -> int:
        """Record a failed pass; ``next_attempt(failures)`` schedules the retry. Returns the failure count."""
        with self.session() as s, s.begin():
            row = s.get(SourceRow, source_id)
            assert row is not None
            row.last_error = error
            row.consecutive_failures = (row.consecutive_failures or 0) + 1
            if row.failing_since is None:
                row.failing_since = utcnow()
            row.next_attempt_at = next_attempt(row.consecutive_failures) if next_attempt else None
            return row.consecutive_failures

    def next_attempts(self) -> dict[str, datetime | None]:
        """When each known source may be tried again (None: whenever its schedule says)."""
        with self.session() as s:
            return dict(s.execute(select(SourceRow.name, SourceRow.next_attempt_at)).all())

    def customer_names(self) -> list[tuple[int, str]]:
        """(id, name) of every live customer: what collision-safe labels are assigned over."""
        with self.session() as s:
            return [
                (customer_id, name)
                for customer_id, name in s.execute(
                    select(CustomerRow.id, CustomerRow.name).where(CustomerRow.gone_at.is_(None))
                )
            ]

    def label_states(self, source_id: int, people: bool = True) -> dict[str, LabelState]:
        """Items of a source that have customers or carry labels syncd wrote: what they are
        linked to now and what was written (``people=False``: companies only). Items of
        deleted activities whose labels are still to be taken back come too, linked to none."""
        wanted: dict[int, list[str]] = defaultdict(list)
        states: dict[str, LabelState] = {}
        with self.session() as s:
            occurrences = {
                o.id: o
                for o in s.scalars(
                    select(OccurrenceRow).where(OccurrenceRow.source_id == source_id, OccurrenceRow.gone_at.is_(None))
                )
            }
            for occurrence_id, name in s.execute(
                select(OccurrenceRow.id, CustomerRow.name)
                .join(LinkRow, LinkRow.activity_id == OccurrenceRow.activity_id)
                .join(CustomerRow, CustomerRow.id == LinkRow.customer_id)
                .where(
                    OccurrenceRow.source_id == source_id,
                    OccurrenceRow.gone_at.is_(None),
                    CustomerRow.gone_at.is_(None),
                    *(() if people else (CustomerRow.kind == "company",)),
                )
            ):
                wanted[occurrence_id].append(name)
            for cleanup in s.scalars(select(LabelCleanupRow).where(LabelCleanupRow.source_id == source_id)):
                if not cleanup.item_key.startswith(CONTACT_CLEANUP):
                    states[cleanup.item_key] = LabelState((), tuple(cleanup.labels.split("\n")))
        for occurrence_id, occurrence in occurrences.items():
            names = tuple(sorted(set(wanted.get(occurrence_id, ()))))
            written = occurrence.labels_written
            if not names and not written:
                continue
            if not written:
                states[occurrence.item_key] = LabelState(names)
            elif written.startswith(RENDERED):
                states[occurrence.item_key] = LabelState(names, tuple(x for x in written[1:].split("\n") if x))
            else:
                states[occurrence.item_key] = LabelState(names, tuple(written.split("\n")), legacy=True)
        return states

    def mark_labels_written(self, source_id: int, written: dict[str, tuple[str, ...]]) -> None:
        """``written``: item key -> the rendered labels now on it."""
        with self.session() as s, s.begin():
            for key, labels in written.items():
                s.execute(
                    update(OccurrenceRow)
                    .where(OccurrenceRow.source_id == source_id, OccurrenceRow.item_key == key)
                    .values(labels_written=RENDERED + "\n".join(labels))
                )
                s.execute(
                    delete(LabelCleanupRow).where(
                        LabelCleanupRow.source_id == source_id, LabelCleanupRow.item_key == key
                    )
                )

    def contacts_to_delete(self, source_id: int) -> dict[str, str]:
        """Contacts syncd wrote for erased people: customer key -> the contact's display name."""
        with self.session() as s:
            return {
                row.item_key.removeprefix(CONTACT_CLEANUP): row.labels
                for row in s.scalars(
                    select(LabelCleanupRow).where(
                        LabelCleanupRow.source_id == source_id, LabelCleanupRow.item_key.startswith(CONTACT_CLEANUP)
                    )
                )
            }

    def contacts_deleted(self, source_id: int, keys: Sequence[str]) -> None:
        with self.session() as s, s.begin():
            for key in keys:
                s.execute(
                    delete(LabelCleanupRow).where(
                        LabelCleanupRow.source_id == source_id, LabelCleanupRow.item_key == CONTACT_CLEANUP + key
                    )
                )
