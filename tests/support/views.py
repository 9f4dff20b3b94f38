"""Read models as the store hands them to the outputs, built by hand for output tests."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from syncd.model.records import Participant, Role
from syncd.model.views import ActivityView, CustomerSummary, LinkedCustomer, Sighting


def activity(subject: str, customers: list[str], **changes: Any) -> ActivityView:
    fields: dict[str, Any] = dict(
        id=1,
        kind="email",
        message_id=f"{subject}@test.example",
        occurred_at=datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc),
        direction="inbound",
        subject=subject,
        snippet="=cmd|' /C calc'!A0",
        participants=(Participant("ivana@adriatic.hr", "", Role.FROM), Participant("alice@ourco.example", "", Role.TO)),
        customers=tuple(LinkedCustomer(n, name, "company", "email", 1.0, "") for n, name in enumerate(customers)),
        seen_in=(Sighting("alice-mail", "INBOX/1", "alice@ourco.example", "INBOX", None),),
    )
    fields.update(changes)
    return ActivityView(**fields)


def customer(name: str, **changes: Any) -> CustomerSummary:
    fields: dict[str, Any] = dict(
        id=1,
        kind="company",
        name=name,
        company=None,
        owner="",
        created_at=None,
        first_contact=None,
        emails=(),
        last_contact=None,
        next_meeting=None,
        count_30=0,
        count_90=0,
        total=0,
    )
    fields.update(changes)
    return CustomerSummary(**fields)
