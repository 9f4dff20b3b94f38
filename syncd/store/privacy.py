"""Erasure, retention and the audit log: the store forgetting people and old history, provably.

``forget`` removes a person from every table that can hold them: their customer record,
identities, links, learned rules and merges naming them, correspondents, quarantine
entries mentioning them; activities in which they were the only customer are deleted,
shared ones (another person takes part) are kept for the others with the person's address and name replaced
by a placeholder and the snippet and body dropped. Each deleted item leaves a tombstone
(its source key and version, no content) so incremental reads do not fetch it again, and
each erased address and name a salted digest (``suppressions``) so a full re-sync or a
workbook row does not bring them back. The audit log says when, who and how many.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Text, cast, delete, func, or_, select
from sqlalchemy.orm import Session

from syncd.model.views import AuditEntry, ExportSheet, PersonExport, PrivacyStatus
from syncd.store.bulk import chunks
from syncd.store.engine import StoreError, StorePart, utcnow
from syncd.store.ingest import Skip, record_skip
from syncd.store.schema import (
    ActivityRow,
    AuditRow,
    ConsentRow,
    CorrespondentRow,
    CustomerMergeRow,
    CustomerRow,
    IdentityRow,
    LabelCleanupRow,
    LinkRow,
    ManualRuleRow,
    OccurrenceRow,
    OutputRow,
    QuarantineRow,
    SkippedRow,
    SourceRow,
    StoreSecretRow,
    SuppressionRow,
)
from syncd.store.sources import CONTACT_CLEANUP, RENDERED

log = logging.getLogger("syncd.store")

PLACEHOLDER_EMAIL = "erased@invalid"  # RFC 6761: .invalid never resolves
PLACEHOLDER_NAME = "(erased)"


@dataclass
class Erasure:
    """What ``forget`` did (or would do, in a dry run): counts only."""

    customers: int = 0
    identities: int = 0
    activities_deleted: int = 0
    activities_scrubbed: int = 0
    rules: int = 0
    quarantine: int = 0
    other_rows: int = 0
    suppressions: int = 0

    def counts(self) -> dict[str, int]:
        return asdict(self)


def _tombstone(s: Session, occurrences: Sequence[OccurrenceRow], reason: str, now: datetime) -> None:
    """Deleted items stay known to their source by key and version only, so an incremental
    read does not fetch them again (a full re-sync meets the suppression digests)."""
    for o in occurrences:
        record_skip(s, o.source_id, Skip(o.item_key, reason, o.version), now)


def _take_labels_back(s: Session, occurrences: Sequence[OccurrenceRow]) -> None:
    """Labels syncd wrote on a deleted activity's items are taken off by the next write-back."""
    for o in occurrences:
        if o.labels_written and o.labels_written.startswith(RENDERED) and o.labels_written[1:]:
            s.add(LabelCleanupRow(source_id=o.source_id, item_key=o.item_key, labels=o.labels_written[1:]))


def _take_contacts_back(s: Session, customer_id: int, name: str) -> None:
    """The contacts syncd wrote for the person (``write_customer_contacts``) are deleted by
    each source's next write-back; until then the name waits in ``label_cleanups``."""
    sources = {source_name: source_id for source_id, source_name in s.execute(select(SourceRow.id, SourceRow.name))}
    for path in list(s.scalars(select(OutputRow.path).where(OutputRow.path.startswith("contact:")))):
        _kind, source_name, key = path.split(":", 2)
        if key == str(customer_id) and source_name in sources:
            s.add(LabelCleanupRow(source_id=sources[source_name], item_key=f"{CONTACT_CLEANUP}{key}", labels=name))
            s.execute(delete(OutputRow).where(OutputRow.path == path))


def _mentions(column: Any, needles: Sequence[str]) -> ColumnElement[bool]:
    """Text columns containing any needle, literally (``_`` and ``%`` in an address are not
    wildcards)."""
    return or_(*(func.lower(cast(column, Text)).contains(n.lower(), autoescape=True) for n in needles))


def _person_keys(s: Session, customer_id: int) -> tuple[CustomerRow, list[IdentityRow], list[str], list[str]]:
    """(the customer, their identities, their emails, every text that names them)."""
    person = s.get(CustomerRow, customer_id)
    if person is None:
        raise StoreError(f"no customer #{customer_id}")
    identities = list(s.scalars(select(IdentityRow).where(IdentityRow.customer_id == customer_id)))
    emails = [i.value for i in identities if i.kind == "email"]
    needles = [*emails, *(i.value for i in identities if i.kind == "phone"), person.name]
    return person, identities, emails, needles


class Privacy(StorePart):
    def salt(self) -> bytes:
        """The store's own salt for suppression digests, made once."""
        with self.session() as s, s.begin():
            row = s.get(StoreSecretRow, "suppression-salt")
            if row is None:
                row = StoreSecretRow(name="suppression-salt", value=secrets.token_hex(32))
                s.add(row)
            return bytes.fromhex(row.value)

    def suppression_digests(self) -> frozenset[str]:
        with self.session() as s:
            return frozenset(s.scalars(select(SuppressionRow.digest)))

    def status(self) -> PrivacyStatus:
        """What `syncd status` says of erasure and retention."""
        with self.session() as s:
            audit = list(s.scalars(select(AuditRow)))
            rows = s.scalar(
                select(func.count()).select_from(QuarantineRow).where(QuarantineRow.item_key.startswith("suppressed:"))
            )
        return PrivacyStatus(
            erasures=sum(1 for a in audit if a.action == "forget"),
            purged=sum(int(a.counts.get("activities", 0)) + int(a.counts.get("unmatched", 0)) for a in audit
                       if a.action == "retention"),
            last_purge=max((a.at for a in audit if a.action == "retention"), default=None),
            rows_listing_suppressed=rows or 0,
        )  # fmt: skip

    def merged_names(self, customer_id: int) -> list[str]:
        """Names of the records merged into this customer (the same person, spelt otherwise)."""
        with self.session() as s:
            return list(
                s.scalars(
                    select(CustomerRow.name)
                    .join(CustomerMergeRow, CustomerMergeRow.merged_id == CustomerRow.id)
                    .where(CustomerMergeRow.into_id == customer_id)
                )
            )

    def audit(self) -> list[AuditEntry]:
        with self.session() as s:
            return [
                AuditEntry(id=r.id, at=r.at, action=r.action, actor=r.actor, counts=dict(r.counts))
                for r in s.scalars(select(AuditRow).order_by(AuditRow.id))
            ]

    def record_audit(self, action: str, actor: str, counts: dict[str, int]) -> None:
        with self.session() as s, s.begin():
            s.add(AuditRow(at=utcnow(), action=action, actor=actor, counts=counts))

    def forget(
        self, customer_id: int, digests: Sequence[tuple[str, str]], actor: str, dry_run: bool = False
    ) -> Erasure:
        """Erase customer ``customer_id`` (a person) everywhere in the store; ``digests``:
        (kind, digest) of their addresses and name, kept as suppressions. In a dry run
        nothing changes and the counts say what would go."""
        done = Erasure()
        now = utcnow()
        with self.session() as s, s.begin():
            person, identities, emails, needles = _person_keys(s, customer_id)
            linked = set(s.scalars(select(LinkRow.activity_id).where(LinkRow.customer_id == customer_id)))
            mentioned: set[int] = set()
            for email in emails:
                mentioned.update(
                    s.scalars(select(ActivityRow.id).where(_mentions(ActivityRow.participants, [f'"{email}"'])))
                )
            for chunk in chunks(sorted(linked | mentioned)):
                for activity in s.scalars(select(ActivityRow).where(ActivityRow.id.in_(chunk))):
                    # Shared when another person or another company takes part; a link to their
                    # own company alone does not make it anyone else's mail.
                    others = s.scalar(
                        select(func.count())
                        .select_from(LinkRow)
                        .join(CustomerRow, CustomerRow.id == LinkRow.customer_id)
                        .where(
                            LinkRow.activity_id == activity.id,
                            LinkRow.customer_id != customer_id,
                            or_(CustomerRow.kind == "person", CustomerRow.id != (person.company_id or 0)),
                        )
                    )
                    occurrences = list(s.scalars(select(OccurrenceRow).where(OccurrenceRow.activity_id == activity.id)))
                    if others:
                        done.activities_scrubbed += 1
                        if not dry_run:
                            _scrub(activity, set(emails), person.name)
                            for link in s.scalars(select(LinkRow).where(LinkRow.activity_id == activity.id)):
                                link.evidence = _without(link.evidence, emails, person.name)
                            s.execute(
                                delete(LinkRow).where(
                                    LinkRow.activity_id == activity.id, LinkRow.customer_id == customer_id
                                )
                            )
                    else:
                        done.activities_deleted += 1
                        if not dry_run:
                            _tombstone(s, occurrences, "erased", now)
                            _take_labels_back(s, occurrences)
                            s.delete(activity)
            done.customers, done.identities = 1, len(identities)
            rules = select(ManualRuleRow.id).where(
                or_(ManualRuleRow.customer_id == customer_id, ManualRuleRow.value.in_(emails or [""]))
            )
            done.rules = len(list(s.scalars(rules)))
            quarantine = select(QuarantineRow.id).where(
                or_(
                    _mentions(QuarantineRow.item_key, needles),
                    _mentions(QuarantineRow.reason, needles),
                    _mentions(QuarantineRow.location, needles),
                )
            )
            done.quarantine = len(list(s.scalars(quarantine)))
            done.suppressions = len(digests)
            if dry_run:
                s.rollback()
                return done
            s.execute(delete(ManualRuleRow).where(ManualRuleRow.id.in_(rules.scalar_subquery())))
            s.execute(delete(QuarantineRow).where(QuarantineRow.id.in_(quarantine.scalar_subquery())))
            keys = [f"person:{e}" for e in emails]
            for model, column, values in (
                (CorrespondentRow, CorrespondentRow.address, emails),
                (SkippedRow, SkippedRow.item_key, keys),
                (CustomerMergeRow, CustomerMergeRow.source_key, keys),
            ):
                if values:
                    gone = s.execute(delete(model).where(column.in_(values)))
                    done.other_rows += int(getattr(gone, "rowcount", 0) or 0)
            # Records merged into the person are the same person: they go too.
            merged = list(s.scalars(select(CustomerMergeRow.merged_id).where(CustomerMergeRow.into_id == customer_id)))
            if merged:
                s.execute(delete(CustomerMergeRow).where(CustomerMergeRow.into_id == customer_id))
                s.execute(delete(CustomerRow).where(CustomerRow.id.in_(merged), CustomerRow.gone_at.is_not(None)))
                done.customers += len(merged)
            _take_contacts_back(s, customer_id, person.name)
            s.execute(delete(CustomerMergeRow).where(CustomerMergeRow.merged_id == customer_id))
            s.execute(delete(IdentityRow).where(IdentityRow.customer_id == customer_id))
            s.execute(delete(LinkRow).where(LinkRow.customer_id == customer_id))
            s.delete(person)
            for kind, value in digests:
                if s.scalar(
                    select(SuppressionRow.id).where(SuppressionRow.kind == kind, SuppressionRow.digest == value)
                ):
                    continue
                s.add(SuppressionRow(kind=kind, digest=value, origin="forget", created_at=now))
            s.add(AuditRow(at=now, action="forget", actor=actor, counts=done.counts()))
        log.info("erased a customer: %s", " ".join(f"{k}={v}" for k, v in done.counts().items()))
        return done

    def person_export(self, customer_id: int) -> PersonExport:
        """Every row that mentions customer ``customer_id``: the record, identities, every
        activity they take part in (linked, or their address among its participants) with
        its links and rules, learned rules, merges, consent history, quarantine entries and
        correspondent counts."""
        with self.session() as s:
            person, identities, emails, needles = _person_keys(s, customer_id)
            company = s.get(CustomerRow, person.company_id) if person.company_id else None
            record = (
                ("id", person.id),
                ("kind", person.kind),
                ("name", person.name),
                ("company", company.name if company else None),
                ("owner", person.owner),
                ("street", person.street),
                ("postcode", person.postcode),
                ("city", person.city),
                ("country", person.country),
                ("birth date", person.birth_date.isoformat() if person.birth_date else None),
                ("tax id", person.tax_id),
                ("website", person.website),
                ("created", person.created_at),
                ("updated", person.updated_at),
                ("removed from its list", person.gone_at),
            )
            activity_ids = set(s.scalars(select(LinkRow.activity_id).where(LinkRow.customer_id == customer_id)))
            for email in emails:
                activity_ids.update(
                    s.scalars(select(ActivityRow.id).where(_mentions(ActivityRow.participants, [f'"{email}"'])))
                )
            names: dict[int, str] = {cid: name for cid, name in s.execute(select(CustomerRow.id, CustomerRow.name))}
            activities, links, seen = [], [], []
            for chunk in chunks(sorted(activity_ids)):
                for a in s.scalars(select(ActivityRow).where(ActivityRow.id.in_(chunk)).order_by(ActivityRow.id)):
                    people = "; ".join(
                        f"{p.get('role', '')}: {p.get('name', '')} <{p.get('email', '')}>" for p in a.participants or []
                    )
                    activities.append(
                        (
                            a.id,
                            a.occurred_at,
                            a.kind,
                            a.direction,
                            a.subject,
                            a.snippet,
                            people,
                            a.message_id,
                            a.gone_at,
                        )
                    )
                for link in s.scalars(select(LinkRow).where(LinkRow.activity_id.in_(chunk))):
                    links.append(
                        (link.activity_id, link.customer_id, names.get(link.customer_id), link.rule, link.confidence,
                         link.evidence)
                    )  # fmt: skip
                for o in s.scalars(select(OccurrenceRow).where(OccurrenceRow.activity_id.in_(chunk))):
                    seen.append((o.activity_id, o.mailbox, o.folder, o.item_key, o.seen_at, o.gone_at))
            rules = [
                (r.kind, r.value, r.customer_text, r.origin, r.note, r.created_at)
                for r in s.scalars(
                    select(ManualRuleRow).where(
                        or_(ManualRuleRow.customer_id == customer_id, ManualRuleRow.value.in_(emails or [""]))
                    )
                )
            ]
            merges = [
                (m.merged_id, m.source_key, m.created_at)
                for m in s.scalars(select(CustomerMergeRow).where(CustomerMergeRow.into_id == customer_id))
            ]
            history = select(ConsentRow).where(ConsentRow.customer_id == customer_id).order_by(ConsentRow.id)
            consent = [
                (c.basis, c.scope, c.given_on.isoformat() if c.given_on else None,
                 c.withdrawn_on.isoformat() if c.withdrawn_on else None, c.recorded_at)
                for c in s.scalars(history)
            ]  # fmt: skip
            quarantine = [
                (q.item_key, q.reason, q.location, q.first_seen_at, q.last_seen_at)
                for q in s.scalars(
                    select(QuarantineRow).where(
                        or_(
                            _mentions(QuarantineRow.item_key, needles),
                            _mentions(QuarantineRow.reason, needles),
                            _mentions(QuarantineRow.location, needles),
                        )
                    )
                )
            ]
            correspondents = [
                (c.address, c.name, c.inbound, c.outbound, c.last_seen_at)
                for c in s.scalars(select(CorrespondentRow).where(CorrespondentRow.address.in_(emails or [""])))
            ]
        sheets = (
            ExportSheet("Customer", ("Field", "Value"), tuple(record)),
            ExportSheet("Identities", ("Kind", "Value"), tuple((i.kind, i.value) for i in identities)),
            ExportSheet(
                "Activities",
                ("Activity", "When", "Kind", "Direction", "Subject", "Snippet", "Participants", "Message-ID", "Gone"),
                tuple(activities),
            ),
            ExportSheet("Links", ("Activity", "Customer", "Name", "Rule", "Confidence", "Evidence"), tuple(links)),
            ExportSheet("Seen in", ("Activity", "Mailbox", "Folder", "Item", "Seen", "Gone"), tuple(seen)),
            ExportSheet("Rules", ("Kind", "Value", "Typed", "Origin", "Note", "Created"), tuple(rules)),
            ExportSheet("Merges", ("Merged customer", "Its key", "When"), tuple(merges)),
            ExportSheet("Consent", ("Basis", "Scope", "Given", "Withdrawn", "Recorded"), tuple(consent)),
            ExportSheet("Quarantine", ("Item", "Reason", "Where", "First seen", "Last seen"), tuple(quarantine)),
            ExportSheet("Correspondence", ("Address", "Name", "Inbound", "Outbound", "Last"), tuple(correspondents)),
        )
        return PersonExport(customer_id=customer_id, name=person.name, sheets=sheets)

    def purge(
        self, before: datetime | None, unmatched_before: datetime | None, quarantine_before: datetime | None
    ) -> dict[str, int]:
        """Retention: activities that happened before ``before``, activities matching no
        customer before ``unmatched_before``, quarantine entries last seen before
        ``quarantine_before`` are deleted (tombstones kept). Audited when anything went."""
        counts = {"activities": 0, "unmatched": 0, "quarantine": 0}
        now = utcnow()
        with self.session() as s, s.begin():
            for label, cutoff, only_unmatched in (("activities", before, False), ("unmatched", unmatched_before, True)):
                if cutoff is None:
                    continue
                query = select(ActivityRow.id).where(ActivityRow.occurred_at < cutoff)
                if only_unmatched:
                    query = query.where(
                        ~select(LinkRow.activity_id).where(LinkRow.activity_id == ActivityRow.id).exists()
                    )
                ids = list(s.scalars(query))
                for chunk in chunks(ids):
                    _tombstone(
                        s,
                        list(s.scalars(select(OccurrenceRow).where(OccurrenceRow.activity_id.in_(chunk)))),
                        "retention",
                        now,
                    )
                    s.execute(delete(ActivityRow).where(ActivityRow.id.in_(chunk)))
                counts[label] = len(ids)
            if quarantine_before is not None:
                gone = s.execute(delete(QuarantineRow).where(QuarantineRow.last_seen_at < quarantine_before))
                counts["quarantine"] = int(getattr(gone, "rowcount", 0) or 0)
            if any(counts.values()):
                s.add(AuditRow(at=now, action="retention", actor="syncd", counts=counts))
        return counts


def _without(text: str, emails: Sequence[str], name: str) -> str:
    """``text`` with the erased addresses and name replaced by the placeholders."""
    for email in emails:
        text = re.sub(re.escape(email), PLACEHOLDER_EMAIL, text, flags=re.IGNORECASE)
    return re.sub(re.escape(name), PLACEHOLDER_NAME, text, flags=re.IGNORECASE) if name else text


def _scrub(activity: ActivityRow, emails: set[str], name: str) -> None:
    """A shared activity kept for the other customers, without the erased person."""
    activity.participants = [
        {**p, "email": PLACEHOLDER_EMAIL, "name": PLACEHOLDER_NAME} if p.get("email", "").lower() in emails else p
        for p in activity.participants or []
    ]
    activity.snippet = ""
    activity.body = None
    if name and activity.subject and name.lower() in activity.subject.lower():
        activity.subject = PLACEHOLDER_NAME
    activity.hints = {k: v for k, v in (activity.hints or {}).items() if not any(e in v.lower() for e in emails)}
