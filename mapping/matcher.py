"""Matching v1: which customers an activity belongs to, and which activities are not logged.

Pure functions over a ``CustomerIndex`` snapshot and a ``MatchPolicy``; no store, no
protocol. Rules, strongest first, each recorded on the link:

* ``email``: a participant's address is a customer's identity (confidence 1.0);
* ``person-company``: the company of a person matched by ``email`` (0.95);
* ``domain``: the address's domain, or a parent of it, is a company's domain (0.9).
  Free-mail and disposable domains never identify a company; nor do our own domains.

Mail whose every participant is internal is not logged (``internal-only``), nor, when the
policy says so, mail from automated senders (``automated``).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

from mapping.normalize import email_domain, fold_plus_address, parent_domains, registrable_domain
from syncd.records import ActivityKind, ActivityRecord, Direction, LinkSpec, Participant, Role

RULE_CONFIDENCE = {"manual": 1.0, "email": 1.0, "person-company": 0.95, "domain": 0.9}

_ROLE_LOCAL = re.compile(
    r"^(no[-_.]?reply|do[-_.]?not[-_.]?reply|mailer[-_.]?daemon|postmaster|bounces?|notifications?|"
    r"alerts?|newsletter|news|marketing|automated|auto[-_.]?confirm)([-+_.].*)?$"
)


def _within(domain: str, domains: frozenset[str]) -> bool:
    """``domain`` is one of ``domains`` or a subdomain of one (no list built: this runs per address)."""
    if not domains:
        return False
    while True:
        if domain in domains:
            return True
        dot = domain.find(".")
        if dot < 0:
            return False
        domain = domain[dot + 1 :]


@dataclass(frozen=True)
class MatchPolicy:
    internal_domains: frozenset[str] = frozenset()
    own_addresses: frozenset[str] = frozenset()
    free_mail_domains: frozenset[str] = frozenset()
    exclude_automated: bool = True
    blocked_addresses: frozenset[str] = frozenset()
    blocked_domains: frozenset[str] = frozenset()  # a domain blocks its subdomains too
    block_whole_item: bool = True  # False: only the blocked party is ignored
    fold_plus_addresses: bool = False

    def is_internal(self, email: str) -> bool:
        if email in self.own_addresses:
            return True
        return _within(email_domain(email), self.internal_domains)

    def is_blocked(self, email: str) -> bool:
        """On the admin's blocklist (an exact address, or a domain and its subdomains);
        our own addresses never are."""
        if not self.blocked_addresses and not self.blocked_domains:
            return False
        if self.is_internal(email):
            return False
        return email in self.blocked_addresses or _within(email_domain(email), self.blocked_domains)

    def is_free_mail(self, domain: str) -> bool:
        return domain in self.free_mail_domains


@dataclass(frozen=True)
class CustomerIndex:
    """Lookup tables built once per pass from the store's identities."""

    email_owner: dict[str, int] = field(default_factory=dict)
    domain_company: dict[str, int] = field(default_factory=dict)
    company_of: dict[int, int] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        identities: Iterable[tuple[int, str, str]],
        customers: Iterable[tuple[int, str, str, int | None]],
        policy: MatchPolicy,
    ) -> "CustomerIndex":
        """``identities``: (customer id, kind, value); ``customers``: (id, kind, name, company id).

        A company's domains are its explicit ones plus the business domains its people's
        addresses use; a derived domain that points at two companies is dropped, since a
        guess there would show one customer another's mail.
        """
        customers = list(customers)
        names = {cid: name for cid, _kind, name, _company in customers}
        kinds = {cid: kind for cid, kind, _name, _company in customers}
        company_of = {cid: company for cid, _kind, _name, company in customers if company is not None}
        email_owner: dict[str, int] = {}
        domain_company: dict[str, int] = {}
        derived: dict[str, set[int]] = defaultdict(set)
        for cid, kind, value in identities:
            if kind == "email":
                email_owner[value] = cid
                domain = email_domain(value)
                company = cid if kinds.get(cid) == "company" else company_of.get(cid)
                if company is not None and not policy.is_free_mail(domain) and not policy.is_internal(value):
                    derived[domain].add(company)
            elif kind == "domain" and not policy.is_free_mail(value):
                domain_company[value] = cid
        for domain, companies in derived.items():
            if len(companies) == 1 and domain not in domain_company:
                domain_company[domain] = next(iter(companies))
        return cls(email_owner=email_owner, domain_company=domain_company, company_of=company_of, names=names)


@lru_cache(maxsize=65536)
def company_domains(domain: str) -> tuple[str, ...]:
    """The domain and its parents down to the registrable one, never a public suffix:
    ``eu.mail.acme.co.uk`` -> ``(eu.mail.acme.co.uk, mail.acme.co.uk, acme.co.uk)``.
    Cached: mail repeats a few thousand domains, and the suffix lookup is the costly part."""
    registrable = registrable_domain(domain)
    if registrable is None:
        return ()
    return tuple(c for c in parent_domains(domain) if c == registrable or c.endswith("." + registrable))


def is_automated(record: ActivityRecord) -> bool:
    """Bulk, auto-replies, bounces and role senders: not conversations with a person."""
    auto_submitted = (record.hint("auto-submitted") or "").strip().lower()
    if auto_submitted and auto_submitted != "no":
        return True
    if (record.hint("precedence") or "").strip().lower() in {"bulk", "list", "junk", "auto_reply"}:
        return True
    if record.hint("list-id") or record.hint("list-unsubscribe"):
        return True
    if (record.hint("content-type") or "").lower().startswith("multipart/report"):
        return True
    senders = [p for p in record.participants if p.role == Role.FROM]
    return any(_ROLE_LOCAL.match(p.email.split("@", 1)[0]) for p in senders)


def skip_reason(record: ActivityRecord, policy: MatchPolicy) -> str | None:
    """Why this record is not logged at all, or None to log it."""
    if (record.hint("sensitivity") or "").lower() in ("private", "confidential", "personal"):
        return "private"
    if policy.block_whole_item and any(policy.is_blocked(p.email) for p in record.participants):
        return "blocked"
    if record.kind == ActivityKind.MEETING:
        if record.participants and all(policy.is_internal(p.email) for p in record.participants):
            return "internal-only"
    if record.kind == ActivityKind.EMAIL:
        if record.participants and all(policy.is_internal(p.email) for p in record.participants):
            return "internal-only"
        if policy.exclude_automated and record.direction != Direction.OUTBOUND and is_automated(record):
            return "automated"
    return None


def link_participants(
    participants: Iterable[Participant], index: CustomerIndex, policy: MatchPolicy
) -> list[LinkSpec]:
    """The customers these participants belong to; the strongest rule per customer wins."""
    best: dict[int, LinkSpec] = {}
    for participant in participants:
        for customer_id, rule, evidence in _match_participant(participant, index, policy):
            spec = LinkSpec(customer_id, rule, RULE_CONFIDENCE[rule], evidence)
            current = best.get(customer_id)
            if current is None or spec.confidence > current.confidence:
                best[customer_id] = spec
    return sorted(best.values(), key=lambda s: s.customer_id)


def explain_participant(participant: Participant, index: CustomerIndex, policy: MatchPolicy) -> list[str]:
    """Each rule tried for one participant, in the order ``link_participants`` tries them,
    and what it found or why it did not apply. For ``syncd explain``."""
    trace: list[str] = []
    _match_participant(participant, index, policy, trace)
    return trace


def _match_participant(participant: Participant, index: CustomerIndex, policy: MatchPolicy,
                       trace: list[str] | None = None) -> list[tuple[int, str, str]]:
    """(customer id, rule, evidence) for one participant, rules in order. With ``trace``,
    also says what each rule found or why it did not apply (only ``syncd explain`` asks,
    so the matching hot path builds no such text)."""
    email = participant.email
    found: list[tuple[int, str, str]] = []
    if policy.is_internal(email):
        if trace is not None:
            trace.append(f"{email}: internal (our own address or domain): never identifies a customer")
        return found
    if policy.is_blocked(email):
        if trace is not None:
            trace.append(f"{email}: on the blocklist: ignored")
        return found
    owner = index.email_owner.get(email)
    if owner is None and policy.fold_plus_addresses and "+" in email:
        folded = fold_plus_address(email)
        owner = index.email_owner.get(folded)
        if trace is not None:
            trace.append(f"{email}: plus-address folded to {folded}")
    if owner is not None:
        found.append((owner, "email", f"{participant.role.value} {email} is an address of "
                                      f"{index.names.get(owner, owner)}"))
        company = index.company_of.get(owner)
        if company is not None:
            found.append((company, "person-company", f"{email} is a contact of {index.names.get(company, company)}"))
        if trace is not None:
            trace.extend(f"{email}: rule {rule} matched: #{cid}, {evidence}" for cid, rule, evidence in found)
        return found
    if trace is not None:
        trace.append(f"{email}: rule email failed: no customer has this address")
    domain = email_domain(email)
    if policy.is_free_mail(domain):
        if trace is not None:
            trace.append(f"{email}: rule domain skipped: {domain} is a free-mail or disposable domain")
        return found
    candidates = company_domains(domain)
    for candidate in candidates:
        company = index.domain_company.get(candidate)
        if company is not None:
            found.append((company, "domain", f"{participant.role.value} {email} is at {candidate}, "
                                             f"the domain of {index.names.get(company, company)}"))
            if trace is not None:
                trace.append(f"{email}: rule domain matched: #{company}, {found[-1][2]}")
            return found
    if trace is not None:
        trace.append(f"{email}: rule domain skipped: {domain} is a public suffix" if not candidates
                     else f"{email}: rule domain failed: no company has {' or '.join(candidates)}")
    return found
