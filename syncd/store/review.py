"""What admins decided, kept in the store: rules learned on Review, pending answers, dismissed and done merges.

``manual_rules`` rows are of three kinds: a rule (kind email/domain/phone/name -> a
customer), a pending answer (kind "pending": what an admin typed on Review that did not
resolve yet, with why), and a dismissed merge suggestion (kind "nomerge").
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select, update

from syncd.model.views import ManualRuleEntry
from syncd.store.customer_ingest import details_of, set_details
from syncd.store.engine import StoreError, StorePart, utcnow
from syncd.store.schema import CustomerMergeRow, CustomerRow, IdentityRow, LinkRow, ManualRuleRow, QuarantineRow

log = logging.getLogger("syncd.store")


def _count(result: Any) -> int:
    """Rows a DELETE or UPDATE touched (its result is a CursorResult, typed as a plain Result)."""
    return int(cast(CursorResult[Any], result).rowcount)


class ReviewState(StorePart):
    def manual_rule_rows(self) -> list[tuple[str, str, int]]:
        """(kind, normalized value, customer id) of every resolved manual rule, oldest first."""
        with self.session() as s:
            return [
                (kind, value, customer_id)
                for kind, value, customer_id in s.execute(
                    select(ManualRuleRow.kind, ManualRuleRow.value, ManualRuleRow.customer_id)
                    .where(ManualRuleRow.customer_id.is_not(None), ManualRuleRow.kind.not_in(("pending", "nomerge")))
                    .order_by(ManualRuleRow.id)
                )
                if customer_id is not None
            ]

    def manual_rules(self) -> list[ManualRuleEntry]:
        with self.session() as s:
            return [
                ManualRuleEntry(
                    id=r.id,
                    kind=r.kind,
                    value=r.value,
                    customer_id=r.customer_id,
                    customer=r.customer_text,
                    origin=r.origin,
                    note=r.note,
                    created_at=r.created_at,
                )
                for r in s.scalars(select(ManualRuleRow).order_by(ManualRuleRow.id))
            ]

    def pending_assignments(self) -> dict[str, tuple[str, str]]:
        """Activity ref -> (customer name as typed, why it did not resolve)."""
        with self.session() as s:
            return {
                r.value: (r.customer_text, r.note or "")
                for r in s.scalars(select(ManualRuleRow).where(ManualRuleRow.kind == "pending"))
            }

    def save_assignment(
        self, ref: str, keys: Sequence[tuple[str, str]], customer_id: int | None, text: str, note: str | None = None
    ) -> None:
        """Record what an admin typed on Review for activity ``ref``: rules for ``keys`` to
        ``customer_id``, or, when it did not resolve (``customer_id`` None), a pending entry
        with ``note``. A rule for the same key made earlier is replaced."""
        now = utcnow()
        with self.session() as s, s.begin():
            s.execute(delete(ManualRuleRow).where(ManualRuleRow.kind == "pending", ManualRuleRow.value == ref))
            entries = [("pending", ref)] if customer_id is None else list(keys)
            for kind, value in entries:
                s.execute(delete(ManualRuleRow).where(ManualRuleRow.kind == kind, ManualRuleRow.value == value))
                s.add(
                    ManualRuleRow(
                        kind=kind,
                        value=value,
                        customer_id=customer_id,
                        customer_text=text,
                        origin=f"review {ref}",
                        note=note,
                        created_at=now,
                    )
                )

    def dismiss_suggestion(self, ref: str, text: str) -> None:
        """An admin answered "no" to a merge suggestion: do not suggest it again."""
        with self.session() as s, s.begin():
            s.execute(delete(ManualRuleRow).where(ManualRuleRow.kind == "nomerge", ManualRuleRow.value == ref))
            s.add(
                ManualRuleRow(
                    kind="nomerge",
                    value=ref,
                    customer_id=None,
                    customer_text=text,
                    origin=f"review {ref}",
                    note=None,
                    created_at=utcnow(),
                )
            )

    def dismissed_suggestions(self) -> set[str]:
        with self.session() as s:
            return set(s.scalars(select(ManualRuleRow.value).where(ManualRuleRow.kind == "nomerge")))

    def drop_pending(self, ref: str) -> None:
        with self.session() as s, s.begin():
            s.execute(delete(ManualRuleRow).where(ManualRuleRow.kind == "pending", ManualRuleRow.value == ref))

    def delete_manual_rule(self, rule_id: int) -> bool:
        with self.session() as s, s.begin():
            return _count(s.execute(delete(ManualRuleRow).where(ManualRuleRow.id == rule_id))) > 0

    def merge_customers(self, merged_id: int, into_id: int) -> dict[str, int]:
        """Merge customer ``merged_id`` into ``into_id``. Every link, identity, person of a
        merged company and manual rule moves to the survivor; the merged customer leaves
        the lists, and is remembered so that re-reading its sheet row feeds the survivor
        instead of bringing it back. Returns what moved."""
        if merged_id == into_id:
            raise StoreError("a customer cannot be merged into itself")
        now = utcnow()
        with self.session() as s, s.begin():
            merged, into = s.get(CustomerRow, merged_id), s.get(CustomerRow, into_id)
            for label, row, cid in (("merge", merged, merged_id), ("keep", into, into_id)):
                if row is None or row.gone_at is not None:
                    raise StoreError(f"no live customer #{cid} to {label}")
            assert merged is not None and into is not None
            both = select(LinkRow.activity_id).where(LinkRow.customer_id == into_id)
            dropped = _count(
                s.execute(delete(LinkRow).where(LinkRow.customer_id == merged_id, LinkRow.activity_id.in_(both)))
            )
            links = _count(
                s.execute(
                    update(LinkRow)
                    .where(LinkRow.customer_id == merged_id)
                    .values(
                        customer_id=into_id, evidence=LinkRow.evidence + f" (merged from #{merged_id} {merged.name})"
                    )
                )
            )
            identities = _count(
                s.execute(update(IdentityRow).where(IdentityRow.customer_id == merged_id).values(customer_id=into_id))
            )
            people = _count(
                s.execute(update(CustomerRow).where(CustomerRow.company_id == merged_id).values(company_id=into_id))
            )
            s.execute(update(ManualRuleRow).where(ManualRuleRow.customer_id == merged_id).values(customer_id=into_id))
            s.execute(update(CustomerMergeRow).where(CustomerMergeRow.into_id == merged_id).values(into_id=into_id))
            if merged.source_id is not None and merged.source_key:
                s.add(
                    CustomerMergeRow(
                        source_id=merged.source_id,
                        source_key=merged.source_key,
                        into_id=into_id,
                        merged_id=merged_id,
                        created_at=now,
                    )
                )
            into.owner = into.owner or merged.owner
            set_details(into, details_of(into).filled_from(details_of(merged)))
            merged.gone_at = now
            merged.updated_at = now
        log.info("merged customer #%d into #%d links=%d identities=%d", merged_id, into_id, links + dropped, identities)
        return {"links": links + dropped, "identities": identities, "people": people}

    def identity_conflicts(self) -> list[tuple[int, int, str, str]]:
        """(customer, customer holding the identity, kind, value) for each identity a customer
        record could not get because another customer has it: the surest duplicate signal."""
        found: list[tuple[int, int, str, str]] = []
        with self.session() as s:
            rows = s.execute(
                select(QuarantineRow.source_id, QuarantineRow.item_key).where(QuarantineRow.item_key.contains("#"))
            ).all()
            for source_id, item_key in rows:
                key, _, identity = item_key.rpartition("#")
                kind, _, value = identity.partition(":")
                if kind not in ("email", "phone", "domain") or not value:
                    continue
                customer = s.scalar(
                    select(CustomerRow.id).where(
                        CustomerRow.source_id == source_id, CustomerRow.source_key == key, CustomerRow.gone_at.is_(None)
                    )
                )
                holder = s.scalar(
                    select(IdentityRow.customer_id).where(IdentityRow.kind == kind, IdentityRow.value == value)
                )
                if customer is not None and holder is not None and customer != holder:
                    found.append((customer, holder, kind, value))
        return found
