"""Matching: which customers an activity belongs to, and which activities are not logged.

Pure functions over a ``CustomerIndex`` snapshot and a ``MatchPolicy``; no store, no
protocol. Rules, strongest first, each recorded on the link with its confidence:

* ``manual``: an admin's assignment (config, or learned from the Review sheet) of an
  address, domain, phone or name to a customer (1.0). It wins: an identity a manual rule
  covers is not matched by any other rule;
* ``email``: a participant's address is a customer's identity (1.0);
* ``person-company``: the company of a person matched by address or phone (0.95);
* ``domain``: the address's domain, or a parent of it, is a company's domain (0.9).
  Free-mail and disposable domains never identify a company; nor do our own domains;
* ``phone``: a number on the item (a call row) is a customer's phone, in E.164 (0.95);
* ``name``: the customer name a sheet row gives equals a customer's, once case, accents,
  punctuation and legal forms are set aside (0.9);
* ``fuzzy-name``: that name is close to exactly one customer's (rapidfuzz score at least
  the policy's ``fuzzy_auto_link``, clearly ahead of the next, and not differing by a
  word that is itself part of a customer name: "Elbe Tehnika" is not a typo of "Elbe
  Technika" when both are customers' words); confidence = score.
  Closer calls are only *suggested* on the Review sheet.

Mail whose every participant is internal is not logged (``internal-only``), nor, when the
policy says so, mail from automated senders (``automated``).
"""

from __future__ import annotations

import re
import threading
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from syncd.mapping.fuzzy import NameIndex
from syncd.mapping.normalize import (
    email_domain,
    fold_plus_address,
    normalize_company_name,
    normalize_phone,
    parent_domains,
    plus_foldable,
    registrable_domain,
)
from syncd.mapping.privacy import Suppression, marked_private
from syncd.model.markers import HINT_CUSTOMER_REF
from syncd.model.records import ActivityKind, ActivityRecord, Direction, LinkSpec, Participant, Role

RULE_CONFIDENCE = {"manual": 1.0, "email": 1.0, "person-company": 0.95, "domain": 0.9, "phone": 0.95, "name": 0.9}
FUZZY_MARGIN = 0.03  # the best fuzzy name must lead the next customer's by this to be linked

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
    fold_plus_addresses: str = "known"  # "known" providers, "all" domains, or "none"
    default_phone_region: str | None = None
    fuzzy_auto_link: float = 0.92
    fuzzy_suggest: float = 0.75
    suppression: Suppression = Suppression()  # people never collected ([privacy] suppress, syncd forget)
    private_marks: frozenset[str] = frozenset()  # categories / keywords (case-folded) that make an item private

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
    """Lookup tables built once per pass from the store's identities and manual rules."""

    email_owner: dict[str, int] = field(default_factory=dict)
    domain_company: dict[str, int] = field(default_factory=dict)
    company_of: dict[int, int] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)
    phone_owner: dict[str, int] = field(default_factory=dict)
    manual: dict[tuple[str, str], int] = field(default_factory=dict)  # (kind, normalized value) -> customer
    # The name tables are built on first use: most passes match mail only, and normalizing
    # 100,000 names for nothing would cost a large sheet's import a second.
    _name_tables: list[Any] = field(default_factory=list, compare=False, repr=False)
    _name_lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)

    def _names(self) -> tuple[dict[str, int | None], NameIndex]:
        with self._name_lock:
            if not self._name_tables:
                name_owner: dict[str, int | None] = {}
                normalized_names: list[tuple[int, str]] = []
                for cid, name in self.names.items():
                    normalized = normalize_company_name(name)
                    if normalized:
                        name_owner[normalized] = None if name_owner.get(normalized, cid) != cid else cid
                        normalized_names.append((cid, normalized))
                self._name_tables.extend([name_owner, NameIndex.build(normalized_names, normalized_names=True)])
            return self._name_tables[0], self._name_tables[1]

    @property
    def name_owner(self) -> dict[str, int | None]:
        """Normalized name -> customer; None where two customers share the name."""
        return self._names()[0]

    @property
    def fuzzy(self) -> NameIndex:
        return self._names()[1]

    @classmethod
    def build(
        cls,
        identities: Iterable[tuple[int, str, str]],
        customers: Iterable[tuple[int, str, str, int | None]],
        policy: MatchPolicy,
        rules: Iterable[tuple[str, str, int]] = (),
    ) -> CustomerIndex:
        """``identities``: (customer id, kind, value); ``customers``: (id, kind, name, company id);
        ``rules``: manual (kind, normalized value, customer id), later ones winning.

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
        phone_owner: dict[str, int] = {}
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
            elif kind == "phone":
                phone_owner[value] = cid
        for domain, companies in derived.items():
            if len(companies) == 1 and domain not in domain_company:
                domain_company[domain] = next(iter(companies))
        # A list address with a sub-address (name+orders@gmail.com) also owns the plain one,
        # unless another customer holds it: mail from name@gmail.com is theirs then.
        for value, cid in list(email_owner.items()):
            if plus_foldable(value, policy.fold_plus_addresses):
                email_owner.setdefault(fold_plus_address(value), cid)
        manual = {(kind, value): cid for kind, value, cid in rules if cid in names}
        return cls(
            email_owner=email_owner,
            domain_company=domain_company,
            company_of=company_of,
            names=names,
            phone_owner=phone_owner,
            manual=manual,
        )


def manual_rule_key(kind: str, value: str, region: str | None = None) -> tuple[str, str] | None:
    """The normalized (kind, value) a manual rule is filed under, or None when the value
    cannot be one (an unparsable phone, an empty name)."""
    from syncd.mapping.normalize import normalize_domain, normalize_email

    normalized: str | None
    if kind == "email":
        normalized = normalize_email(value)
    elif kind == "domain":
        normalized = normalize_domain(value.lstrip("@"))
    elif kind == "phone":
        normalized = normalize_phone(value, region)
    elif kind == "name":
        normalized = normalize_company_name(value)
    else:
        raise ValueError(f"unknown manual rule kind {kind!r}")
    return (kind, normalized) if normalized else None


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
    if policy.suppression and any(policy.suppression.email(p.email) for p in record.participants):
        return "suppressed"
    if (record.hint("sensitivity") or "").lower() in ("private", "confidential", "personal"):
        return "private"
    if policy.private_marks and marked_private(record, policy.private_marks):
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


def link_participants(participants: Iterable[Participant], index: CustomerIndex, policy: MatchPolicy) -> list[LinkSpec]:
    """The customers these participants belong to; the strongest rule per customer wins."""
    return link_activity(participants, {}, index, policy)


_PHONE_SPLIT = re.compile(r"[;,/\n]+")


def activity_phones(hints: dict[str, str], policy: MatchPolicy) -> list[str]:
    """The E.164 numbers a record carries in its ``phones`` hint (a call row's number)."""
    raw = hints.get("phones") or ""
    region = hints.get("phone-region") or policy.default_phone_region
    found = []
    for part in _PHONE_SPLIT.split(raw):
        number = normalize_phone(part, region) if part.strip() else None
        if number and number not in found:
            found.append(number)
    return found


def link_activity(
    participants: Iterable[Participant],
    hints: dict[str, str],
    index: CustomerIndex,
    policy: MatchPolicy,
    trace: list[str] | None = None,
) -> list[LinkSpec]:
    """Every customer an activity belongs to, by its participants and the phones and
    customer name it carries (``hints``); the strongest rule per customer wins."""
    best: dict[int, LinkSpec] = {}

    def add(found: Iterable[tuple[int, str, str]], confidence: float | None = None) -> None:
        for customer_id, rule, evidence in found:
            spec = LinkSpec(
                customer_id, rule, confidence if confidence is not None else RULE_CONFIDENCE[rule], evidence
            )
            current = best.get(customer_id)
            if current is None or spec.confidence > current.confidence:
                best[customer_id] = spec

    for participant in participants:
        add(_match_participant(participant, index, policy, trace))
    for number in activity_phones(hints, policy):
        add(_match_phone(number, index, trace))
    customer_ref = hints.get(HINT_CUSTOMER_REF)
    if customer_ref:
        for cid, rule, evidence, confidence in _match_name(customer_ref, index, policy, trace):
            add([(cid, rule, evidence)], confidence)
    return sorted(best.values(), key=lambda s: s.customer_id)


def _with_company(
    owner: int, rule: str, evidence: str, identity: str, index: CustomerIndex
) -> list[tuple[int, str, str]]:
    """The customer an identity belongs to, and the company of that customer when it is a person."""
    found = [(owner, rule, evidence)]
    company = index.company_of.get(owner)
    if company is not None:
        found.append((company, "person-company", f"{identity} is a contact of {index.names.get(company, company)}"))
    return found


def _match_phone(number: str, index: CustomerIndex, trace: list[str] | None) -> list[tuple[int, str, str]]:
    manual = index.manual.get(("phone", number))
    if manual is not None:
        if trace is not None:
            trace.append(f"phone {number}: rule manual matched: #{manual}")
        return [(manual, "manual", f"phone {number} is assigned to {index.names.get(manual, manual)}")]
    owner = index.phone_owner.get(number)
    if owner is None:
        if trace is not None:
            trace.append(f"phone {number}: rule phone failed: no customer has this number")
        return []
    found = _with_company(
        owner, "phone", f"phone {number} is a number of {index.names.get(owner, owner)}", number, index
    )
    if trace is not None:
        trace.extend(f"phone {number}: rule {rule} matched: #{cid}, {evidence}" for cid, rule, evidence in found)
    return found


def _match_name(
    text: str, index: CustomerIndex, policy: MatchPolicy, trace: list[str] | None
) -> list[tuple[int, str, str, float]]:
    normalized = normalize_company_name(text)
    if not normalized:
        return []
    manual = index.manual.get(("name", normalized))
    if manual is not None:
        if trace is not None:
            trace.append(f"name {text!r}: rule manual matched: #{manual}")
        return [(manual, "manual", f"name {text!r} is assigned to {index.names.get(manual, manual)}", 1.0)]
    if normalized in index.name_owner:
        owner = index.name_owner[normalized]
        if owner is not None:
            if trace is not None:
                trace.append(f"name {text!r}: rule name matched: #{owner}, {index.names.get(owner)}")
            return [(owner, "name", f"name {text!r} is {index.names.get(owner, owner)}", RULE_CONFIDENCE["name"])]
        if trace is not None:
            trace.append(f"name {text!r}: rule name failed: two or more customers have this name")
        return []
    close = index.fuzzy.closest(text, limit=2, min_score=policy.fuzzy_suggest)
    if (
        close
        and close[0][1] >= policy.fuzzy_auto_link
        and (len(close) == 1 or close[0][1] - close[1][1] >= FUZZY_MARGIN)
        and not index.fuzzy.differs_by_real_words(text, close[0][0])
    ):
        cid, score = close[0]
        if trace is not None:
            trace.append(f"name {text!r}: rule fuzzy-name matched: #{cid}, {index.names.get(cid)} ({score:.2f})")
        return [(cid, "fuzzy-name", f"name {text!r} is close to {index.names.get(cid, cid)} ({score:.2f})", score)]
    if trace is not None:
        shown = ", ".join(f"{index.names.get(c)} ({sc:.2f})" for c, sc in close) or "none close"
        trace.append(
            f"name {text!r}: rule fuzzy-name failed: below {policy.fuzzy_auto_link:.2f}, not clear "
            f"of the next, or differing by a word another customer's name has; candidates: {shown}"
        )
    return []


def suggest_customers(
    participants: Iterable[Participant],
    hints: dict[str, str],
    index: CustomerIndex,
    policy: MatchPolicy,
    limit: int = 3,
    related: frozenset[int] = frozenset(),
) -> list[tuple[int, float]]:
    """Customers an unmatched activity may belong to, for the Review sheet: names close to
    the row's customer name, or the name in its mail domain (``adriatic-foods.hr`` ->
    "adriatic foods"), and a participant's display name only with evidence beside it.

    A display name alone is no evidence: of 800 unknown free-mail senders, 787 got a
    suggestion from a similar name. It counts when the customer (or its company) is also
    ``related`` (linked to another message of the same conversation), or when a sender's
    business domain belongs to the customer's company.
    """
    queries: list[str] = []
    name_queries: list[str] = []
    if hints.get(HINT_CUSTOMER_REF):
        queries.append(hints[HINT_CUSTOMER_REF])
    domain_companies: set[int] = set()
    for p in participants:
        if policy.is_internal(p.email):
            continue
        if p.name and "@" not in p.name:
            name_queries.append(p.name)
        domain = email_domain(p.email)
        if not policy.is_free_mail(domain):
            registrable = registrable_domain(domain) or domain
            queries.append(registrable.split(".")[0].replace("-", " ").replace("_", " "))
            for candidate in parent_domains(domain):
                if candidate in index.domain_company:
                    domain_companies.add(index.domain_company[candidate])

    def supported(cid: int) -> bool:
        company = index.company_of.get(cid, cid)  # a person's company, or the company itself
        return cid in related or company in related or company in domain_companies

    scores: dict[int, float] = {}
    for query in dict.fromkeys(queries):
        for cid, score in index.fuzzy.closest(query, limit=limit, min_score=policy.fuzzy_suggest):
            scores[cid] = max(score, scores.get(cid, 0.0))
    for query in dict.fromkeys(name_queries):
        for cid, score in index.fuzzy.closest(query, limit=limit, min_score=policy.fuzzy_suggest):
            if supported(cid):
                scores[cid] = max(score, scores.get(cid, 0.0))
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:limit]


def _match_participant(
    participant: Participant, index: CustomerIndex, policy: MatchPolicy, trace: list[str] | None = None
) -> list[tuple[int, str, str]]:
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
    if index.manual:
        manual = index.manual.get(("email", email))
        rule_value = email
        if manual is None:
            for candidate in parent_domains(email_domain(email)):
                manual = index.manual.get(("domain", candidate))
                if manual is not None:
                    rule_value = "@" + candidate
                    break
        if manual is not None:
            found.append(
                (
                    manual,
                    "manual",
                    f"{email} is assigned to {index.names.get(manual, manual)} by a manual rule ({rule_value})",
                )
            )
            if trace is not None:
                trace.append(f"{email}: rule manual matched: #{manual} ({rule_value}); other rules not tried")
            return found
    owner = index.email_owner.get(email)
    if owner is None and plus_foldable(email, policy.fold_plus_addresses):
        folded = fold_plus_address(email)
        owner = index.email_owner.get(folded)
        if trace is not None:
            trace.append(f"{email}: plus-address folded to {folded}")
    if owner is not None:
        found.extend(
            _with_company(
                owner,
                "email",
                f"{participant.role.value} {email} is an address of {index.names.get(owner, owner)}",
                email,
                index,
            )
        )
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
            found.append(
                (
                    company,
                    "domain",
                    f"{participant.role.value} {email} is at {candidate}, "
                    f"the domain of {index.names.get(company, company)}",
                )
            )
            if trace is not None:
                trace.append(f"{email}: rule domain matched: #{company}, {found[-1][2]}")
            return found
    if trace is not None:
        trace.append(
            f"{email}: rule domain skipped: {domain} is a public suffix"
            if not candidates
            else f"{email}: rule domain failed: no company has {' or '.join(candidates)}"
        )
    return found
