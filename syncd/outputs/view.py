"""The timeline view: what the timeline workbook shows, built from the store's read models.

Pure functions from read models (``syncd.model.views``) to plain rows, so rendering is trivially
testable and the content hash that decides whether to rewrite the workbook depends on
content only (dates are taken at day resolution: a second pass on the same day with no
new data hashes the same).
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from syncd.model.markers import HINT_CUSTOMER_REF
from syncd.model.records import ConsentStatement, Participant, Role
from syncd.model.views import ActivityView, CustomerSummary

TIMELINE_HEADERS = (
    "When",
    "Customers",
    "Kind",
    "Direction",
    "Subject",
    "Snippet",
    "From",
    "To",
    "Staff",
    "Seen in",
    "Link",
    "Activity",
)
CUSTOMER_HEADERS = (
    "Customer",
    "Type",
    "Company",
    "Emails",
    "Owner",
    "Last contact",
    "Days since",
    "Status",
    "Next meeting",
    "Last 30 days",
    "Last 90 days",
    "Total",
    "ID",
    "Consent",
)
# "Customer" is the column admins type into; Review learns it (see mapping.review).
REVIEW_HEADERS = ("When", "Subject", "From", "To", "Staff", "Activity", "Suggested customers", "Customer", "Note")
REVIEW_CUSTOMER_COLUMN = REVIEW_HEADERS.index("Customer")
REVIEW_ACTIVITY_COLUMN = REVIEW_HEADERS.index("Activity")
CONTACT_BUCKETS = (
    ("0-30 days", 30),
    ("31-60 days", 60),
    ("61-90 days", 90),
    ("91-180 days", 180),
    ("over 180 days", None),
)
REPORT_WEEKS = 12
REPORT_MONTHS = 12


@dataclass(frozen=True)
class Reports:
    """The tables behind the Reports sheet's charts."""

    weekly_headers: tuple[str, ...]  # "Week", then one column per staff member
    weekly: list[tuple[Any, ...]]
    monthly_new: list[tuple[str, int]]  # (YYYY-MM, customers first seen that month)
    contact_buckets: list[tuple[str, int]]  # (bucket label, customers)


@dataclass(frozen=True)
class TimelineView:
    timeline: list[tuple[Any, ...]]
    customers: list[tuple[Any, ...]]
    review: list[tuple[Any, ...]]
    reports: Reports | None = None

    def content_hash(self) -> str:
        payload = json.dumps(
            [self.timeline, self.customers, self.review, self.reports], default=str, ensure_ascii=False
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def activity_ref(activity: ActivityView) -> str:
    """A stable public reference for an activity: the same after a rebuild from scratch,
    whatever order parallel sources committed in (database ids are not)."""
    if activity.message_id:
        basis = "mid:" + activity.message_id
    elif activity.seen_in:
        basis = f"item:{activity.seen_in[0].source}:{activity.seen_in[0].key}"
    else:
        basis = f"item::{activity.id}"
    return "A" + hashlib.sha1(basis.encode("utf-8")).hexdigest()[:9]


def _local(moment: datetime | None, zone: ZoneInfo) -> datetime | None:
    """Naive local time: Excel cells have no time zone."""
    return None if moment is None else moment.astimezone(zone).replace(tzinfo=None, microsecond=0)


def _addresses(participants: Sequence[Participant], roles: set[Role]) -> str:
    return ", ".join(p.email for p in participants if p.role in roles)


def contact_status(days: int | None, rules: Sequence[tuple[int, str]]) -> str:
    """The Customers sheet Status: the label of the largest threshold passed."""
    if days is None:
        return "no contact yet"
    label = "active"
    for after_days, text in sorted(rules):
        if days >= after_days:
            label = text
    return label


def build_reports(
    activities: Sequence[ActivityView], customers: Sequence[CustomerSummary], today: date, zone: ZoneInfo
) -> Reports:
    """Activities per week per staff member (last 12 weeks), new customers per month (last
    12 months, by first contact), and customers by days since last contact."""
    this_monday = today - timedelta(days=today.weekday())
    weeks = [this_monday - timedelta(weeks=n) for n in range(REPORT_WEEKS - 1, -1, -1)]
    first_week = weeks[0]
    per_week: dict[tuple[date, str], int] = defaultdict(int)
    staff_names: set[str] = set()
    for a in activities:
        local = a.occurred_at.astimezone(zone).date()
        if local < first_week or local > today:
            continue
        staff = next((s.mailbox for s in a.seen_in if s.mailbox), "") or "(no staff)"
        staff_names.add(staff)
        per_week[(local - timedelta(days=local.weekday()), staff)] += 1
    staff_order = sorted(staff_names)
    weekly = [(monday.isoformat(), *[per_week[(monday, st)] for st in staff_order]) for monday in weeks]
    months: list[str] = []
    year, month = today.year, today.month
    for _ in range(REPORT_MONTHS):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    months.reverse()
    new_per_month: dict[str, int] = defaultdict(int)
    buckets: dict[str, int] = defaultdict(int)
    for c in customers:
        # A customer is new in the month of the first contact syncd knows of (the store's own
        # creation date would put every customer in the month syncd was installed).
        created = c.first_contact or c.created_at
        if created is not None:
            new_per_month[created.astimezone(zone).strftime("%Y-%m")] += 1
        last = c.last_contact
        if last is None:
            buckets["never"] += 1
            continue
        days = (today - last.astimezone(zone).date()).days
        for label, limit in CONTACT_BUCKETS:
            if limit is None or days <= limit:
                buckets[label] += 1
                break
    return Reports(
        weekly_headers=("Week", *staff_order),
        weekly=weekly,
        monthly_new=[(m, new_per_month[m]) for m in months],
        contact_buckets=[(label, buckets[label]) for label, _limit in CONTACT_BUCKETS] + [("never", buckets["never"])],
    )


def consent_label(statement: ConsentStatement | None) -> str | None:
    """``consent (marketing) since 2026-03-01``, ``withdrawn 2026-05-02``, or nothing when
    no customer list states a basis."""
    if statement is None:
        return None
    if statement.withdrawn_on is not None:
        return f"withdrawn {statement.withdrawn_on.isoformat()}"
    text = statement.basis.replace("_", " ")
    if statement.scope:
        text += f" ({statement.scope})"
    if statement.given_on is not None:
        text += f" since {statement.given_on.isoformat()}"
    return text


def build_view(
    activities: Sequence[ActivityView],
    customers: Sequence[CustomerSummary],
    today: date,
    zone: ZoneInfo,
    *,
    status_rules: Sequence[tuple[int, str]] = ((60, "no contact in 60 days"), (120, "no contact in 120 days")),
    suggestions: dict[int, list[str]] | None = None,
    pending: dict[str, tuple[str, str]] | None = None,
    reports: bool = False,
    merges: Sequence[tuple[str, str, str, str]] = (),
    review_max_rows: int | None = None,
) -> TimelineView:
    """``suggestions``: activity id -> suggested customer labels for Review; ``pending``:
    activity ref -> (what an admin typed, why it did not resolve yet); ``merges``: probable
    duplicate customers as (ref, title, reason, proposal), listed first on Review."""
    suggestions = suggestions or {}
    pending = pending or {}
    timeline: list[tuple[Any, ...]] = []
    review: list[tuple[Any, ...]] = []
    for ref, title, reason, proposal in merges:
        typed, note = pending.get(ref, (None, None))
        review.append(
            (
                None,
                title,
                reason,
                None,
                None,
                ref,
                proposal,
                typed,
                note
                or "type merge in Customer to merge them (every activity and identity is kept), no to stop "
                "suggesting it, or the IDs to merge, the one to keep first (the others stay apart)",
            )
        )
    refs = {a.id: activity_ref(a) for a in activities}
    ordered = sorted(activities, key=lambda a: (a.occurred_at, refs[a.id]), reverse=True)
    for a in ordered:
        staff = ", ".join(dict.fromkeys(s.mailbox for s in a.seen_in if s.mailbox))
        seen_in = ", ".join(dict.fromkeys(f"{s.source}/{s.folder}" if s.folder else s.source for s in a.seen_in))
        link = next((s.link for s in a.seen_in if s.link), None)
        when = _local(a.occurred_at, zone)
        sender = _addresses(a.participants, {Role.FROM, Role.ORGANIZER})
        recipients = _addresses(a.participants, {Role.TO, Role.CC, Role.ATTENDEE})
        if not sender and not recipients:
            recipients = a.hint(HINT_CUSTOMER_REF) or a.hint("phones") or ""
        names = "; ".join(c.name for c in a.customers)
        kind = f"{a.kind} (cancelled)" if a.cancelled else a.kind
        timeline.append(
            (when, names, kind, a.direction, a.subject, a.snippet, sender, recipients, staff, seen_in, link, refs[a.id])
        )
        if not a.customers and (review_max_rows is None or len(review) - len(merges) < review_max_rows):
            typed, note = pending.get(refs[a.id], (None, None))
            review.append(
                (
                    when,
                    a.subject,
                    sender,
                    recipients,
                    staff,
                    refs[a.id],
                    "; ".join(suggestions.get(a.id, [])) or None,
                    typed,
                    note or None,
                )
            )
    customer_rows: list[tuple[Any, ...]] = []
    for c in customers:
        last_local = _local(c.last_contact, zone)
        days = (today - last_local.date()).days if last_local else None
        customer_rows.append(
            (
                c.name,
                c.kind,
                c.company,
                ", ".join(c.emails),
                c.owner,
                last_local,
                days,
                contact_status(days, status_rules),
                _local(c.next_meeting, zone),
                c.count_30,
                c.count_90,
                c.total,
                c.id,
                consent_label(c.consent),
            )
        )
    return TimelineView(
        timeline=timeline,
        customers=customer_rows,
        review=review,
        reports=build_reports(ordered, customers, today, zone) if reports else None,
    )
