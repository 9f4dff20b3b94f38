"""Learning from the Review sheet: what an admin typed becomes manual rules.

An admin types a customer into the Customer column of an unmatched activity on Review.
That says "whoever this item is with belongs to that customer", so the rules learned are
about the item's counterparts, not the one item: its external addresses, the phone
numbers and the customer name a sheet row carries. Later mail from the same address then
links without anyone typing again. Pure functions: the pipeline reads the sheet and the
store, this module decides.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from syncd.mapping.matcher import CustomerIndex, MatchPolicy, activity_phones, manual_rule_key
from syncd.mapping.normalize import normalize_company_name
from syncd.model.markers import HINT_CUSTOMER_REF
from syncd.model.records import Role
from syncd.model.views import ActivityView

RESOLVE_FUZZY = 0.9  # a typed name this close to exactly one customer's is taken as that customer


@dataclass(frozen=True)
class Resolution:
    customer_id: int | None
    note: str | None = None


def resolve_customer(text: str, index: CustomerIndex) -> Resolution:
    """The customer an admin means by ``text``: an ID (``12`` or ``#12``), an exact name,
    a name equal once case, accents and legal forms are set aside, or a near-certain typo of
    one. Otherwise a note saying what went wrong and what comes close."""
    typed = text.strip()
    digits = typed.lstrip("#")
    if digits.isdigit() and int(digits) in index.names:
        return Resolution(int(digits))
    exact = [cid for cid, name in index.names.items() if name.casefold() == typed.casefold()]
    if len(exact) == 1:
        return Resolution(exact[0])
    if len(exact) > 1:
        ids = ", ".join(str(c) for c in sorted(exact))
        return Resolution(None, f"{len(exact)} customers are named {typed!r}; type the ID instead (one of {ids})")
    normalized = normalize_company_name(typed)
    if normalized and normalized in index.name_owner:
        owner = index.name_owner[normalized]
        if owner is not None:
            return Resolution(owner)
    close = index.fuzzy.closest(typed, limit=2, min_score=0.6)
    if close and close[0][1] >= RESOLVE_FUZZY and (len(close) == 1 or close[0][1] - close[1][1] >= 0.05):
        return Resolution(close[0][0])
    if close:
        hint = " or ".join(repr(index.names[cid]) for cid, _score in close)
        return Resolution(None, f"no customer named {typed!r}; did you mean {hint}?")
    return Resolution(None, f"no customer named {typed!r}; type a name from the Customers sheet or its ID")


def rule_keys(activity: ActivityView, policy: MatchPolicy) -> list[tuple[str, str]]:
    """The identities of an activity's counterparts, as manual rule keys: external
    addresses (the sender of inbound mail, the recipients of outbound), phones and the
    customer name of a sheet row."""
    hints = dict(activity.hints)
    external = [p for p in activity.participants if not policy.is_internal(p.email)]
    if activity.direction == "inbound":
        senders = [p for p in external if p.role in (Role.FROM, Role.ORGANIZER)]
        external = senders or external
    keys: list[tuple[str, str]] = []
    for participant in external:
        key = manual_rule_key("email", participant.email)
        if key and key not in keys:
            keys.append(key)
    for number in activity_phones(hints, policy):
        keys.append(("phone", number))
    if hints.get(HINT_CUSTOMER_REF):
        key = manual_rule_key("name", hints[HINT_CUSTOMER_REF])
        if key and key not in keys:
            keys.append(key)
    return keys


def config_rules(
    rules: Iterable[Any], index: CustomerIndex, region: str | None
) -> tuple[list[tuple[str, str, int]], list[str]]:
    """The config's ``[[matching.rules]]`` as (kind, value, customer id), and a problem per
    rule whose customer or value does not resolve (logged and shown by `syncd status`)."""
    resolved: list[tuple[str, str, int]] = []
    problems: list[str] = []
    for number, rule in enumerate(rules):
        kind = next(k for k in ("email", "domain", "phone", "name") if getattr(rule, k))
        key = manual_rule_key(kind, getattr(rule, kind), region)
        if key is None:
            problems.append(f"matching.rules[{number}]: {getattr(rule, kind)!r} is not a valid {kind}")
            continue
        target = resolve_customer(rule.customer, index)
        if target.customer_id is None:
            problems.append(f"matching.rules[{number}]: {target.note}")
            continue
        resolved.append((key[0], key[1], target.customer_id))
    return resolved, problems
