"""Reading the store for the outputs, the matcher, status and the CLI, as typed read models.

Nothing here writes. Rows never leave this module: what leaves it are the dataclasses of
``syncd.model.views`` (or plain tuples for the matcher's index).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from syncd.model.records import ActivityKind, ActivityRecord, ConsentStatement, Direction
from syncd.model.views import (
    ActivityView,
    CustomerProfile,
    CustomerRef,
    CustomerSummary,
    CustomerTimeline,
    LinkedCustomer,
    NoteActivity,
    OutputHealth,
    QuarantineEntry,
    Sighting,
    SourceHealth,
    StoreStatus,
)
from syncd.store.bulk import chunks
from syncd.store.customer_ingest import consent_of, details_of, latest_consent
from syncd.store.engine import StorePart, one_snapshot, utcnow
from syncd.store.links import participants_from_json
from syncd.store.schema import (
    ActivityRow,
    ConsentRow,
    CorrespondentRow,
    CustomerRow,
    IdentityRow,
    LinkRow,
    ManualRuleRow,
    OccurrenceRow,
    OutputRow,
    QuarantineRow,
    SkippedRow,
    SourceRow,
)


class Reads(StorePart):
    # ---- the timeline -------------------------------------------------------------

    def activities(
        self, limit: int | None = None, customer_ids: Iterable[int] | None = None, unmatched_only: bool = False
    ) -> list[ActivityView]:
        """Live activities newest first, each with its linked customers and where it was seen
        (``unmatched_only``: those no customer is linked to, as the Review sheet lists them)."""
        with self.session() as s:
            query = select(ActivityRow).where(ActivityRow.gone_at.is_(None))
            if unmatched_only:
                query = query.where(ActivityRow.id.not_in(select(LinkRow.activity_id)))
            if customer_ids is not None:
                wanted = list(customer_ids)
                query = query.where(
                    ActivityRow.id.in_(select(LinkRow.activity_id).where(LinkRow.customer_id.in_(wanted)))
                )
            query = query.order_by(ActivityRow.occurred_at.desc(), ActivityRow.id.desc())
            if limit is not None:
                query = query.limit(limit)
            rows = list(s.scalars(query))
            links: dict[int, list[LinkedCustomer]] = defaultdict(list)
            seen: dict[int, list[Sighting]] = defaultdict(list)
            for chunk in chunks([r.id for r in rows]):
                for link_row, name, kind in s.execute(
                    select(LinkRow, CustomerRow.name, CustomerRow.kind)
                    .join(CustomerRow, CustomerRow.id == LinkRow.customer_id)
                    .where(LinkRow.activity_id.in_(chunk))
                    .order_by(CustomerRow.kind, CustomerRow.name)
                ):
                    links[link_row.activity_id].append(
                        LinkedCustomer(
                            customer_id=link_row.customer_id,
                            name=name,
                            kind=kind,
                            rule=link_row.rule,
                            confidence=link_row.confidence,
                            evidence=link_row.evidence,
                        )
                    )
                for occurrence, source_name in s.execute(
                    select(OccurrenceRow, SourceRow.name)
                    .join(SourceRow, SourceRow.id == OccurrenceRow.source_id)
                    .where(OccurrenceRow.activity_id.in_(chunk), OccurrenceRow.gone_at.is_(None))
                    .order_by(SourceRow.name, OccurrenceRow.item_key)
                ):
                    seen[occurrence.activity_id].append(
                        Sighting(
                            source=source_name,
                            key=occurrence.item_key,
                            mailbox=occurrence.mailbox,
                            folder=occurrence.folder,
                            link=occurrence.link,
                        )
                    )
        return [
            ActivityView(
                id=r.id,
                kind=r.kind,
                occurred_at=r.occurred_at,
                direction=r.direction,
                subject=r.subject,
                snippet=r.snippet,
                participants=participants_from_json(r.participants),
                message_id=r.message_id,
                thread_key=r.thread_key,
                amount=r.amount,
                currency=r.currency,
                hints=dict(r.hints or {}),
                customers=tuple(links.get(r.id, ())),
                seen_in=tuple(seen.get(r.id, ())),
            )
            for r in rows
        ]

    def customer_summaries(self, now: datetime) -> list[CustomerSummary]:
        """One row per live customer: last contact and the next meeting (cancelled meetings are
        neither), 30/90-day counts of past activities, owner, company."""
        since_30, since_90 = now - timedelta(days=30), now - timedelta(days=90)
        with self.session() as s:
            customers = list(s.scalars(select(CustomerRow).where(CustomerRow.gone_at.is_(None))))
            names = {c.id: c.name for c in customers}
            stats: dict[int, dict[str, Any]] = {
                c.id: {"first": None, "last": None, "next": None, "n30": 0, "n90": 0, "total": 0} for c in customers
            }
            for customer_id, occurred_at, kind, hints in s.execute(
                select(LinkRow.customer_id, ActivityRow.occurred_at, ActivityRow.kind, ActivityRow.hints)
                .join(ActivityRow, ActivityRow.id == LinkRow.activity_id)
                .where(ActivityRow.gone_at.is_(None))
            ):
                entry = stats.get(customer_id)
                if entry is None:
                    continue
                if (hints or {}).get("status") == "cancelled":
                    continue  # a meeting that did not happen is no contact
                if occurred_at > now:
                    # Only meetings lie ahead; the soonest is what staff want to see.
                    if kind == "meeting" and (entry["next"] is None or occurred_at < entry["next"]):
                        entry["next"] = occurred_at
                    continue
                entry["total"] += 1
                if entry["last"] is None or occurred_at > entry["last"]:
                    entry["last"] = occurred_at
                if entry["first"] is None or occurred_at < entry["first"]:
                    entry["first"] = occurred_at
                if occurred_at >= since_90:
                    entry["n90"] += 1
                    if occurred_at >= since_30:
                        entry["n30"] += 1
            emails = self._emails(s)
            consent = latest_consent(s)
        return [
            CustomerSummary(
                id=c.id,
                kind=c.kind,
                name=c.name,
                company=names.get(c.company_id) if c.company_id else None,
                owner=c.owner,
                created_at=c.created_at,
                first_contact=stats[c.id]["first"],
                emails=tuple(emails.get(c.id, ())),
                last_contact=stats[c.id]["last"],
                next_meeting=stats[c.id]["next"],
                count_30=stats[c.id]["n30"],
                count_90=stats[c.id]["n90"],
                total=stats[c.id]["total"],
                consent=consent.get(c.id),
            )
            for c in sorted(customers, key=lambda c: (c.name.lower(), c.id))
        ]

    def consent_history(self, customer_id: int) -> list[ConsentStatement]:
        """Every statement of the customer's basis, oldest first."""
        with self.session() as s:
            history = select(ConsentRow).where(ConsentRow.customer_id == customer_id).order_by(ConsentRow.id)
            return [consent_of(r) for r in s.scalars(history)]

    @staticmethod
    def _emails(s: Any, customer_ids: list[int] | None = None) -> dict[int, list[str]]:
        emails: dict[int, list[str]] = defaultdict(list)
        query = select(IdentityRow.customer_id, IdentityRow.value).where(IdentityRow.kind == "email")
        if customer_ids is not None:
            query = query.where(IdentityRow.customer_id.in_(customer_ids))
        for customer_id, value in s.execute(query.order_by(IdentityRow.value)):
            emails[customer_id].append(value)
        return emails

    def customer_timelines(self, source_id: int, per_customer: int, all_sources: bool = True) -> list[CustomerTimeline]:
        """Customers linked to this source's live items, each with its newest activities
        (from every source, or only this one), newest first: for contact write-back."""
        found: list[CustomerTimeline] = []
        with self.session() as s:
            ids = sorted(
                set(
                    s.scalars(
                        select(LinkRow.customer_id)
                        .join(OccurrenceRow, OccurrenceRow.activity_id == LinkRow.activity_id)
                        .join(CustomerRow, CustomerRow.id == LinkRow.customer_id)
                        .where(
                            OccurrenceRow.source_id == source_id,
                            OccurrenceRow.gone_at.is_(None),
                            CustomerRow.gone_at.is_(None),
                        )
                    )
                )
            )
            for chunk in chunks(ids):
                customers = {c.id: c for c in s.scalars(select(CustomerRow).where(CustomerRow.id.in_(chunk)))}
                companies = {
                    c.id: c.name
                    for c in s.scalars(
                        select(CustomerRow).where(
                            CustomerRow.id.in_({c.company_id for c in customers.values() if c.company_id})
                        )
                    )
                }
                emails = self._emails(s, list(chunk))
                query = (
                    select(LinkRow.customer_id, ActivityRow)
                    .join(ActivityRow, ActivityRow.id == LinkRow.activity_id)
                    .where(LinkRow.customer_id.in_(chunk), ActivityRow.gone_at.is_(None))
                    .order_by(LinkRow.customer_id, ActivityRow.occurred_at.desc(), ActivityRow.id.desc())
                )
                if not all_sources:
                    query = query.where(
                        ActivityRow.id.in_(
                            select(OccurrenceRow.activity_id).where(
                                OccurrenceRow.source_id == source_id, OccurrenceRow.gone_at.is_(None)
                            )
                        )
                    )
                recent: dict[int, list[NoteActivity]] = defaultdict(list)
                for customer_id, activity in s.execute(query):
                    if len(recent[customer_id]) < per_customer:
                        recent[customer_id].append(
                            NoteActivity(
                                occurred_at=activity.occurred_at,
                                kind=activity.kind,
                                direction=activity.direction,
                                subject=activity.subject,
                                cancelled=(activity.hints or {}).get("status") == "cancelled",
                            )
                        )
                for customer_id in chunk:
                    customer = customers[customer_id]
                    found.append(
                        CustomerTimeline(
                            id=customer_id,
                            name=customer.name,
                            kind=customer.kind,
                            company=companies.get(customer.company_id) if customer.company_id else None,
                            emails=tuple(emails.get(customer_id, ())),
                            activities=tuple(recent.get(customer_id, ())),
                        )
                    )
        return found

    def find_customers(self, query: str) -> list[CustomerRef]:
        """A customer by id, exact identity (email/domain), or name (case-insensitive substring)."""
        with self.session() as s:
            live = select(CustomerRow).where(CustomerRow.gone_at.is_(None))
            if query.isdigit():
                rows = list(s.scalars(live.where(CustomerRow.id == int(query))))
            else:
                needle = query.strip().lower()
                rows = list(
                    s.scalars(
                        live.join(IdentityRow, IdentityRow.customer_id == CustomerRow.id).where(
                            IdentityRow.value == needle
                        )
                    )
                )
                if not rows:
                    rows = list(
                        s.scalars(live.where(func.lower(CustomerRow.name).contains(needle)).order_by(CustomerRow.name))
                    )
            return [CustomerRef(id=r.id, name=r.name, kind=r.kind, company_id=r.company_id) for r in rows]

    def customers(self) -> list[CustomerRef]:
        """Every live customer, by id."""
        with self.session() as s:
            return [
                CustomerRef(id=cid, name=name, kind=kind, company_id=company)
                for cid, name, kind, company in s.execute(
                    select(CustomerRow.id, CustomerRow.name, CustomerRow.kind, CustomerRow.company_id)
                    .where(CustomerRow.gone_at.is_(None))
                    .order_by(CustomerRow.id)
                )
            ]

    def customer_names(self) -> dict[int, str]:
        """Id -> name of every live customer."""
        with self.session() as s:
            return dict(s.execute(select(CustomerRow.id, CustomerRow.name).where(CustomerRow.gone_at.is_(None))).all())

    # ---- what the matcher indexes ------------------------------------------------------

    def identity_rows(self) -> list[tuple[int, str, str]]:
        """(customer id, kind, value) of every live customer's identities."""
        with self.session() as s:
            return [
                (cid, kind, value)
                for cid, kind, value in s.execute(
                    select(IdentityRow.customer_id, IdentityRow.kind, IdentityRow.value)
                    .join(CustomerRow, CustomerRow.id == IdentityRow.customer_id)
                    .where(CustomerRow.gone_at.is_(None))
                )
            ]

    def customers_signature(self) -> tuple[Any, ...]:
        """Changes whenever anything the matcher indexes changes: customers (added, edited,
        gone, merged), identities or manual rules. Cheap: a few aggregates."""
        with self.session() as s:
            customers = s.execute(
                select(func.count(), func.max(CustomerRow.id), func.max(CustomerRow.updated_at)).select_from(
                    CustomerRow
                )
            ).one()
            identities = s.execute(select(func.count(), func.max(IdentityRow.id)).select_from(IdentityRow)).one()
            rules = s.execute(select(func.count(), func.max(ManualRuleRow.id)).select_from(ManualRuleRow)).one()
        return (*customers, *identities, *rules)

    def customer_tuples(self) -> list[tuple[int, str, str, int | None]]:
        """(id, kind, name, company id) of every live customer: what the matcher indexes."""
        with self.session() as s:
            return [
                (cid, kind, name, company)
                for cid, kind, name, company in s.execute(
                    select(CustomerRow.id, CustomerRow.kind, CustomerRow.name, CustomerRow.company_id)
                    .where(CustomerRow.gone_at.is_(None))
                    .order_by(CustomerRow.id)
                )
            ]

    def customer_profiles(self) -> list[CustomerProfile]:
        """Every live customer with its identities and details, for duplicate detection."""
        identities: dict[int, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        with self.session() as s:
            one_snapshot(s)
            for customer_id, kind, value in s.execute(
                select(IdentityRow.customer_id, IdentityRow.kind, IdentityRow.value).order_by(IdentityRow.id)
            ):
                identities[customer_id][kind].append(value)
            rows = s.scalars(select(CustomerRow).where(CustomerRow.gone_at.is_(None)).order_by(CustomerRow.id)).all()
            profiles = []
            for row in rows:
                held = identities.get(row.id, {})
                profiles.append(
                    CustomerProfile(
                        id=row.id,
                        kind=row.kind,
                        name=row.name,
                        company_id=row.company_id,
                        emails=tuple(held.get("email", ())),
                        phones=tuple(held.get("phone", ())),
                        domains=tuple(held.get("domain", ())),
                        details=details_of(row),
                    )
                )
        return profiles

    def stored_mail(self) -> Iterator[ActivityRecord]:
        """Every live stored email with its direction and participants (nothing else), for
        counting correspondents when auto-creation is turned on after mail was read."""
        with self.session() as s:
            for activity_id, direction, participants in s.execute(
                select(ActivityRow.id, ActivityRow.direction, ActivityRow.participants).where(
                    ActivityRow.gone_at.is_(None), ActivityRow.kind == "email"
                )
            ).yield_per(2000):
                yield ActivityRecord(
                    key=str(activity_id),
                    kind=ActivityKind.EMAIL,
                    occurred_at=utcnow(),
                    direction=Direction(direction),
                    participants=participants_from_json(participants),
                )

    def correspondents(self, min_inbound: int, min_outbound: int) -> list[tuple[str, str]]:
        """(address, display name) of outside correspondents with at least that much mail
        each way and no customer identity yet."""
        with self.session() as s:
            taken = select(IdentityRow.value).where(IdentityRow.kind == "email")
            return [
                (address, name)
                for address, name in s.execute(
                    select(CorrespondentRow.address, CorrespondentRow.name)
                    .where(
                        CorrespondentRow.inbound >= min_inbound,
                        CorrespondentRow.outbound >= min_outbound,
                        CorrespondentRow.address.not_in(taken),
                    )
                    .order_by(CorrespondentRow.address)
                )
            ]

    # ---- status ------------------------------------------------------------------------

    def status(self) -> StoreStatus:
        with self.session() as s:
            one_snapshot(s)  # the counts must agree with each other while a batch commits
            customers = s.scalar(select(func.count()).select_from(CustomerRow).where(CustomerRow.gone_at.is_(None)))
            activities = s.scalar(select(func.count()).select_from(ActivityRow).where(ActivityRow.gone_at.is_(None)))
            unmatched = s.scalar(
                select(func.count())
                .select_from(ActivityRow)
                .where(ActivityRow.gone_at.is_(None), ~ActivityRow.id.in_(select(LinkRow.activity_id)))
            )
            quarantined = s.scalar(select(func.count()).select_from(QuarantineRow))
            sources = {row.id: row for row in s.scalars(select(SourceRow).order_by(SourceRow.name))}
            ingested: dict[int, int] = defaultdict(int)
            for source_id, count in s.execute(
                select(OccurrenceRow.source_id, func.count())
                .where(OccurrenceRow.gone_at.is_(None))
                .group_by(OccurrenceRow.source_id)
            ):
                ingested[source_id] += count
            for owning_source, count in s.execute(
                select(CustomerRow.source_id, func.count())
                .where(CustomerRow.gone_at.is_(None), CustomerRow.source_id.is_not(None))
                .group_by(CustomerRow.source_id)
            ):
                if owning_source is not None:
                    ingested[owning_source] += count
            held = dict(
                s.execute(select(QuarantineRow.source_id, func.count()).group_by(QuarantineRow.source_id)).all()
            )
            outputs = tuple(
                OutputHealth(
                    path=row.path, written_at=row.written_at, error=row.last_error, failing_since=row.failing_since
                )
                for row in s.scalars(
                    select(OutputRow).where(~OutputRow.path.startswith("contact:")).order_by(OutputRow.path)
                )
            )
            skipped: dict[int, dict[str, int]] = defaultdict(dict)
            for source_id, reason, count in s.execute(
                select(SkippedRow.source_id, SkippedRow.reason, func.count()).group_by(
                    SkippedRow.source_id, SkippedRow.reason
                )
            ):
                skipped[source_id][reason] = count
        return StoreStatus(
            customers=customers or 0,
            activities=activities or 0,
            unmatched=unmatched or 0,
            quarantined=quarantined or 0,
            sources=tuple(
                SourceHealth(
                    name=row.name,
                    kind=row.kind,
                    last_sync=row.last_success_at,
                    last_attempt=row.last_attempt_at,
                    ingested=ingested.get(source_id, 0),
                    quarantined=held.get(source_id, 0),
                    skipped=skipped.get(source_id, {}),
                    error=row.last_error,
                    failing_since=row.failing_since,
                    consecutive_failures=row.consecutive_failures or 0,
                    next_retry=row.next_attempt_at,
                    backlog=row.backlog or 0,
                    suspect=row.suspect_reason,
                    notice=row.notice,
                )
                for source_id, row in sources.items()
            ),
            outputs=outputs,
        )

    def quarantine(self) -> list[QuarantineEntry]:
        with self.session() as s:
            return [
                QuarantineEntry(
                    source=name, key=q.item_key, reason=q.reason, where=q.location, first_seen=q.first_seen_at
                )
                for q, name in s.execute(
                    select(QuarantineRow, SourceRow.name)
                    .join(SourceRow, SourceRow.id == QuarantineRow.source_id)
                    .order_by(SourceRow.name, QuarantineRow.item_key)
                )
            ]
