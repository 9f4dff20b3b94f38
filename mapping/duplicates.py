"""Probable duplicate customers, for merge suggestions on the Review sheet.

Signals, strongest first: two customer records claiming the same email, phone or domain
(the store keeps an identity on one customer and quarantines the other's claim); two
customers of the same kind whose names are equal once case, accents and legal forms are
set aside ("Adriatic Foods d.o.o." in one workbook, "ADRIATIC FOODS" in another); and
companies whose names are near-identical by the fuzzy rule's own standard. The older
customer (lower ID) is suggested as the one to keep. Pure functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from syncd.mapping.fuzzy import name_score
from syncd.mapping.matcher import CustomerIndex

NEAR_IDENTICAL = 0.95
NEIGHBOURS = 3  # names compared after each one, in each sort order


@dataclass(frozen=True)
class DuplicateSuggestion:
    merge_id: int  # the customer that would go
    keep_id: int  # the customer that would stay
    reason: str

    @property
    def ref(self) -> str:
        """The Review sheet's reference for this suggestion."""
        return f"M{self.merge_id}-{self.keep_id}"


def parse_merge_ref(ref: str) -> tuple[int, int] | None:
    if not ref.startswith("M") or "-" not in ref:
        return None
    first, _, second = ref[1:].partition("-")
    return (int(first), int(second)) if first.isdigit() and second.isdigit() else None


def near_identical_pairs(names: list[tuple[str, int]], window: int = NEIGHBOURS) -> Iterator[tuple[int, int, float]]:
    """(id, id, score) of normalized names scoring at least NEAR_IDENTICAL, found by the
    sorted-neighbourhood method: near-identical names sort close together, by their start,
    by their end (when the difference is at the start), or by their words in order (when
    words are swapped: "Miles Ryleh" and "Ryleh Miles"). Comparing each name with its few
    neighbours in the three orders is O(n log n), where comparing every name with its fuzzy
    candidates took minutes at 20,000 companies."""
    orders = (
        sorted(names),
        sorted(names, key=lambda item: item[0][::-1]),
        sorted(names, key=lambda item: " ".join(sorted(item[0].split()))),
    )
    seen: set[tuple[int, int]] = set()
    for order in orders:
        for position, (name, cid) in enumerate(order):
            for other_name, other in order[position + 1 : position + 1 + window]:
                pair = (min(cid, other), max(cid, other))
                if other != cid and name != other_name and pair not in seen:
                    seen.add(pair)
                    score = name_score(name, other_name)
                    if score >= NEAR_IDENTICAL:
                        yield cid, other, score


def duplicate_suggestions(
    customers: Iterable[tuple[int, str, str]],
    conflicts: Iterable[tuple[int, int, str, str]],
    index: CustomerIndex,
    dismissed: AbstractSet[str] = frozenset(),
) -> list[DuplicateSuggestion]:
    """``customers``: (id, kind, name) of live customers; ``conflicts``: (customer, holder,
    kind, value) from the store. One suggestion per pair, strongest reason."""
    kinds = {cid: kind for cid, kind, _name in customers}
    names = {cid: name for cid, _kind, name in customers}
    found: dict[tuple[int, int], str] = {}

    def add(a: int, b: int, reason: str) -> None:
        if a == b or a not in kinds or b not in kinds:
            return
        pair = (max(a, b), min(a, b))
        found.setdefault(pair, reason)

    for customer, holder, kind, value in conflicts:
        add(customer, holder, f"both have the {kind} {value}")
    by_name: dict[tuple[str, str], list[int]] = {}
    for cid, name in index.fuzzy.names.items():
        if cid in kinds:
            by_name.setdefault((kinds[cid], name), []).append(cid)
    for (kind, _name), ids in by_name.items():
        ids.sort()
        for other in ids[1:]:
            # A shared name is no evidence against contrary evidence: two people called the
            # same at different companies are two people.
            theirs, first = index.company_of.get(other), index.company_of.get(ids[0])
            if kind == "person" and theirs is not None and first is not None and theirs != first:
                continue
            add(other, ids[0], f"same name: {names[other]!r} and {names[ids[0]]!r}")
    companies = [(name, cid) for cid, name in index.fuzzy.names.items() if kinds.get(cid) == "company"]
    for cid, other, score in near_identical_pairs(companies):
        # Two companies, not a typo, when each name differs from the other by a word that is
        # itself part of another customer's name; checked both ways, so the answer does not
        # depend on which name sorts first.
        both_real = index.fuzzy.differs_by_real_words(
            names[cid], other, query_is_customer=True
        ) and index.fuzzy.differs_by_real_words(names[other], cid, query_is_customer=True)
        if not both_real:
            add(cid, other, f"near-identical names ({score:.0%}): {names[cid]!r} and {names[other]!r}")
    suggestions = [DuplicateSuggestion(merge, keep, reason) for (merge, keep), reason in sorted(found.items())]
    return [s for s in suggestions if s.ref not in dismissed]
