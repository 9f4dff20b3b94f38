"""Contact auto-creation: which outside correspondents become people in the customer list.

Admins choose the policy (``matching.auto_create_contacts``):

* ``none``: only customer sources create customers;
* ``inbound``: anyone who writes to us (a real person, not an automated sender);
* ``both-ways``: only people we have exchanged mail with in both directions: the
  strictest, and the one that keeps newsletters and cold pitches out.

A new person is attached to the company of their mail domain when one is known (never
through a free-mail domain). Pure functions; the pipeline counts and commits.
"""

from __future__ import annotations

from collections.abc import Iterable

from syncd.mapping.matcher import _ROLE_LOCAL, CustomerIndex, MatchPolicy, company_domains
from syncd.mapping.normalize import email_domain
from syncd.model.records import ActivityKind, ActivityRecord, CustomerKind, CustomerRecord, Direction, Role

POLICY_THRESHOLDS = {"inbound": (1, 0), "both-ways": (1, 1)}
AUTO_KEY_PREFIX = "auto:"


def correspondent_counts(records: Iterable[ActivityRecord], policy: MatchPolicy) -> dict[str, tuple[str, int, int]]:
    """address -> (display name, inbound mails from it, outbound mails to it) in ``records``:
    outside, not blocked, not a role or automated address."""
    counts: dict[str, tuple[str, int, int]] = {}
    for record in records:
        if record.kind != ActivityKind.EMAIL or record.direction not in (Direction.INBOUND, Direction.OUTBOUND):
            continue
        inbound = record.direction == Direction.INBOUND
        roles = (Role.FROM,) if inbound else (Role.TO, Role.CC)
        for participant in record.participants:
            email = participant.email
            if participant.role not in roles or policy.is_internal(email) or policy.is_blocked(email):
                continue
            if _ROLE_LOCAL.match(email.split("@", 1)[0]):
                continue
            name, ins, outs = counts.get(email, ("", 0, 0))
            counts[email] = (name or participant.name, ins + inbound, outs + (not inbound))
    return counts


def company_for(email: str, index: CustomerIndex, policy: MatchPolicy) -> int | None:
    """The company a new person joins: the one whose domain the address is at."""
    domain = email_domain(email)
    if policy.is_free_mail(domain):
        return None
    for candidate in company_domains(domain):
        company = index.domain_company.get(candidate)
        if company is not None:
            return company
    return None


def new_contacts(
    candidates: Iterable[tuple[str, str]], index: CustomerIndex, policy: MatchPolicy
) -> list[CustomerRecord]:
    """Person records for (address, display name) candidates no customer holds yet."""
    records = []
    for email, name in candidates:
        if (
            email in index.email_owner
            or policy.is_internal(email)
            or policy.is_blocked(email)
            or policy.suppression.email(email)
        ):
            continue
        shown = name.strip() if name and "@" not in name else email
        company = company_for(email, index, policy)
        records.append(
            CustomerRecord(
                key=AUTO_KEY_PREFIX + email,
                kind=CustomerKind.PERSON,
                name=shown,
                emails=(email,),
                company_id=company,
                version="auto",
                where=f"auto-created from mail with {email}",
            )
        )
    return records
