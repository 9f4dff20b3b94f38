"""Probable duplicate customers, as clusters for the Review sheet.

Signals, strongest first: two customer records claiming the same email, phone or domain
(the store keeps an identity on one customer and quarantines the other's claim); two
companies whose names are equal once case, accents, scripts and legal forms are set
aside ("Adriatic Foods d.o.o." in one workbook, "ADRIATIC FOODS" in another, "Јадран" and
"Jadran") or near-identical by the fuzzy rule's own standard; and the record-linkage
step (``mapping.linkage``) comparing names, addresses, birth dates, ids and phones.

Pairs become **clusters**, not chains: pairs are joined strongest first, and two groups
are never joined when any member of one has evidence against any member of the other (a
different birth date, a different tax id, different companies, or an admin's earlier
"no"). A group of five records is one suggestion with its members and the evidence per
pair, and the oldest customer (lowest ID) is proposed as the one to keep. Pure functions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from itertools import combinations

from syncd.mapping.fuzzy import name_score
from syncd.mapping.linkage import link
from syncd.mapping.matcher import CustomerIndex
from syncd.model.views import CustomerProfile

NEAR_IDENTICAL = 0.95
NEIGHBOURS = 3  # names compared after each one, in each sort order
MAX_EVIDENCE = 6  # pairs described on one Review row


@dataclass(frozen=True)
class DuplicateCluster:
    """Customers that are probably one, with why, pair by pair."""

    members: tuple[int, ...]  # ascending: the first is the proposed survivor
    evidence: tuple[tuple[int, int, str], ...]  # (customer, customer, what agrees)

    @property
    def keep_id(self) -> int:
        return self.members[0]

    @property
    def ref(self) -> str:
        """The Review sheet's reference: ``M`` and the IDs, highest first. A cluster of two
        is ``M{merged}-{kept}``, the reference pairs have always had."""
        return "M" + "-".join(str(cid) for cid in sorted(self.members, reverse=True))

    @property
    def reason(self) -> str:
        if len(self.evidence) == 1:
            return self.evidence[0][2]
        shown = [f"#{a} and #{b}: {why}" for a, b, why in self.evidence[:MAX_EVIDENCE]]
        more = len(self.evidence) - MAX_EVIDENCE
        return "; ".join(shown) + (f"; and {more} more" if more > 0 else "")


def parse_merge_ref(ref: str) -> tuple[int, ...] | None:
    """The IDs of a Review merge reference (``M12-7-3``), or None for another reference."""
    if not re.fullmatch(r"M\d+(-\d+)+", ref):
        return None
    ids = tuple(int(part) for part in ref[1:].split("-"))
    return ids if len(set(ids)) == len(ids) else None


def pair_ref(a: int, b: int) -> str:
    """How a "these two are different" answer is kept."""
    return f"M{max(a, b)}-{min(a, b)}"


def dismissed_pairs(dismissed: Iterable[str]) -> set[tuple[int, int]]:
    """(low, high) pairs an admin said are different customers."""
    pairs: set[tuple[int, int]] = set()
    for ref in dismissed:
        pairs.update(combinations(sorted(parse_merge_ref(ref) or ()), 2))
    return pairs


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


def _company_signals(
    profiles: Sequence[CustomerProfile], index: CustomerIndex
) -> Iterator[tuple[int, int, float, str]]:
    names = {p.id: p.name for p in profiles}
    normalized = {p.id: index.fuzzy.names[p.id] for p in profiles if p.kind == "company" and p.id in index.fuzzy.names}
    by_name: dict[str, list[int]] = {}
    for cid, name in normalized.items():
        by_name.setdefault(name, []).append(cid)
    for ids in by_name.values():
        ids.sort()
        for other in ids[1:]:
            yield ids[0], other, 0.99, f"same name: {names[other]!r} and {names[ids[0]]!r}"
    for cid, other, score in near_identical_pairs([(name, cid) for cid, name in normalized.items()]):
        # Two companies, not a typo, when each name differs from the other by a word that is
        # itself part of another customer's name; checked both ways, so the answer does not
        # depend on which name sorts first.
        both_real = index.fuzzy.differs_by_real_words(
            names[cid], other, query_is_customer=True
        ) and index.fuzzy.differs_by_real_words(names[other], cid, query_is_customer=True)
        if not both_real:
            yield cid, other, score, f"near-identical names ({score:.0%}): {names[cid]!r} and {names[other]!r}"


def duplicate_clusters(
    profiles: Sequence[CustomerProfile],
    conflicts: Iterable[tuple[int, int, str, str]],
    index: CustomerIndex,
    dismissed: AbstractSet[str] = frozenset(),
) -> list[DuplicateCluster]:
    """``profiles``: the live customers; ``conflicts``: (customer, holder, kind, value) from
    the store; ``dismissed``: merge references an admin answered "no" to (or left out of a
    merge). One cluster per group of customers that are probably one."""
    live = {p.id: p for p in profiles}
    never = dismissed_pairs(dismissed)
    linkage = link(profiles)
    apart = never | linkage.apart
    signals: list[tuple[float, int, int, str]] = []
    for customer, holder, kind, value in conflicts:
        if customer in live and holder in live and customer != holder:
            signals.append((1.0, customer, holder, f"both have the {kind} {value}"))
    for a, b, strength, why in _company_signals(profiles, index):
        signals.append((strength, a, b, why))
    for pair in linkage.pairs:
        signals.append((pair.probability, pair.a, pair.b, f"{pair.evidence} ({pair.probability:.0%} likely)"))
    signals.sort(key=lambda s: (-s[0], min(s[1], s[2]), max(s[1], s[2])))
    group_of: dict[int, set[int]] = {}
    evidence: dict[frozenset[int], list[tuple[int, int, str]]] = {}
    described: set[tuple[int, int]] = set()
    for _strength, a, b, why in signals:
        if live[a].kind != live[b].kind:
            continue
        low, high = min(a, b), max(a, b)
        if (low, high) in never:
            continue
        first, second = group_of.get(a, {a}), group_of.get(b, {b})
        if first is not second:
            if any((min(x, y), max(x, y)) in apart for x in first for y in second):
                continue  # one member of a group is known to differ from one of the other
            joined = first | second
            pairs = evidence.pop(frozenset(first), []) + evidence.pop(frozenset(second), [])
            for cid in joined:
                group_of[cid] = joined
            first = joined
            evidence[frozenset(joined)] = pairs
        if (low, high) not in described:
            described.add((low, high))
            evidence[frozenset(first)].append((high, low, why))
    clusters = []
    for members, pairs in evidence.items():
        if len(members) > 1 and pairs:
            clusters.append(DuplicateCluster(tuple(sorted(members)), tuple(pairs)))
    clusters.sort(key=lambda c: c.members)
    return [c for c in clusters if c.ref not in dismissed]
