"""The timeline view: what the timeline workbook shows, built from store rows.

Pure functions from store query results to plain rows, so rendering is trivially
testable and the content hash that decides whether to rewrite the workbook depends on
content only (dates are taken at day resolution: a second pass on the same day with no
new data hashes the same).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

TIMELINE_HEADERS = (
    "When", "Customers", "Kind", "Direction", "Subject", "Snippet", "From", "To", "Staff", "Seen in", "Link",
    "Activity",
)
CUSTOMER_HEADERS = (
    "Customer", "Type", "Company", "Emails", "Owner", "Last contact", "Days since", "Next meeting", "Last 30 days",
    "Last 90 days", "Total", "ID",
)
REVIEW_HEADERS = ("When", "Subject", "From", "To", "Staff", "Activity", "Customer")


@dataclass(frozen=True)
class TimelineView:
    timeline: list[tuple[Any, ...]]
    customers: list[tuple[Any, ...]]
    review: list[tuple[Any, ...]]

    def content_hash(self) -> str:
        payload = json.dumps([self.timeline, self.customers, self.review], default=str, ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def activity_ref(activity: dict[str, Any]) -> str:
    """A stable public reference for an activity: the same after a rebuild from scratch,
    whatever order parallel sources committed in (database ids are not)."""
    if activity.get("message_id"):
        basis = "mid:" + activity["message_id"]
    else:
        first = activity["seen_in"][0] if activity["seen_in"] else {"source": "", "key": str(activity["id"])}
        basis = f"item:{first['source']}:{first['key']}"
    return "A" + hashlib.sha1(basis.encode("utf-8")).hexdigest()[:9]


def _local(moment: datetime | None, zone: ZoneInfo) -> datetime | None:
    """Naive local time: Excel cells have no time zone."""
    return None if moment is None else moment.astimezone(zone).replace(tzinfo=None, microsecond=0)


def _addresses(participants: list[dict[str, str]], roles: set[str]) -> str:
    return ", ".join(p["email"] for p in participants if p["role"] in roles)


def build_view(
    activities: list[dict[str, Any]], customers: list[dict[str, Any]], today: date, zone: ZoneInfo
) -> TimelineView:
    timeline: list[tuple[Any, ...]] = []
    review: list[tuple[Any, ...]] = []
    refs = {a["id"]: activity_ref(a) for a in activities}
    activities = sorted(activities, key=lambda a: (a["occurred_at"], refs[a["id"]]), reverse=True)
    for a in activities:
        staff = ", ".join(dict.fromkeys(s["mailbox"] for s in a["seen_in"] if s["mailbox"]))
        seen_in = ", ".join(dict.fromkeys(f"{s['source']}/{s['folder']}" if s["folder"] else s["source"]
                                          for s in a["seen_in"]))
        link = next((s["link"] for s in a["seen_in"] if s["link"]), None)
        when = _local(a["occurred_at"], zone)
        sender = _addresses(a["participants"], {"from", "organizer"})
        recipients = _addresses(a["participants"], {"to", "cc", "attendee"})
        names = "; ".join(c["name"] for c in a["customers"])
        kind = a["kind"]
        if (a.get("hints") or {}).get("status") == "cancelled":
            kind = f"{kind} (cancelled)"
        timeline.append((when, names, kind, a["direction"], a["subject"], a["snippet"], sender, recipients,
                         staff, seen_in, link, refs[a["id"]]))
        if not a["customers"]:
            review.append((when, a["subject"], sender, recipients, staff, refs[a["id"]], None))
    customer_rows: list[tuple[Any, ...]] = []
    for c in customers:
        last = c["last_contact"]
        last_local = _local(last, zone)
        days = (today - last_local.date()).days if last_local else None
        customer_rows.append((c["name"], c["kind"], c["company"], ", ".join(c["emails"]), c["owner"], last_local,
                              days, _local(c.get("next_meeting"), zone), c["count_30"], c["count_90"], c["total"],
                              c["id"]))
    return TimelineView(timeline=timeline, customers=customer_rows, review=review)
