"""Fuzzy customer names: close-but-not-equal names found fast, scored with rapidfuzz.

Comparing a name against 100,000 customers one by one is slow and finds nonsense, so
names are *blocked*: each normalized name is filed under the first three and the last
three letters of each of its words, and a query is scored only against names sharing
such a block with it. A typo rarely touches both ends of a word, so a misspelled name
still meets its customer. Scores are ``0..1``: the better of rapidfuzz's plain ratio and
its token-sort ratio over normalized names (word order and legal forms do not count).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from rapidfuzz import fuzz, process

from syncd.mapping.normalize import normalize_company_name

MIN_BLOCK_WORD = 3
MAX_BLOCK_SIZE = 2_000  # a block this common ("the", "foods") says nothing; it is skipped


def block_keys(normalized: str) -> set[str]:
    keys: set[str] = set()
    for word in normalized.split():
        if len(word) >= MIN_BLOCK_WORD:
            keys.add("<" + word[:3])
            keys.add(word[-3:] + ">")
    return keys


def name_score(a: str, b: str) -> float:
    """Similarity of two normalized names, 0..1."""
    return max(fuzz.ratio(a, b), fuzz.token_sort_ratio(a, b)) / 100.0


@dataclass
class NameIndex:
    """Normalized customer names, blocked for fast fuzzy lookup."""

    names: dict[int, str] = field(default_factory=dict)  # customer id -> normalized name
    blocks: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    words: Counter[str] = field(default_factory=Counter)  # word -> how many customer names have it

    @classmethod
    def build(cls, customers: Iterable[tuple[int, str]], normalized_names: bool = False) -> NameIndex:
        """``customers``: (id, name), or (id, normalized name) with ``normalized_names``."""
        index = cls()
        for cid, name in customers:
            normalized = name if normalized_names else normalize_company_name(name)
            if not normalized:
                continue
            index.names[cid] = normalized
            index.words.update(set(normalized.split()))
            for key in block_keys(normalized):
                index.blocks[key].append(cid)
        return index

    def closest(self, query: str, limit: int = 3, min_score: float = 0.75) -> list[tuple[int, float]]:
        """Up to ``limit`` (customer id, score) at or above ``min_score``, best first."""
        normalized = normalize_company_name(query)
        if not normalized:
            return []
        keys = block_keys(normalized)
        shared: Counter[int] = Counter()
        for key in keys:
            block = self.blocks.get(key)
            if block and len(block) <= MAX_BLOCK_SIZE:
                shared.update(block)
        if not shared:
            return []
        # A name with a typo still shares most of its blocks with the right one; a name that
        # shares a single block ("foods") with the query is rarely worth scoring.
        needed = 2 if len(keys) >= 4 else 1
        ids = [cid for cid, count in shared.items() if count >= needed] or list(shared)
        choices = [self.names[cid] for cid in ids]
        cutoff = min_score * 100
        best: dict[int, float] = {}
        # rapidfuzz scores the whole block in C; two scorers, the better one counts.
        for scorer in (fuzz.ratio, fuzz.token_sort_ratio):
            for _choice, score, position in process.extract(
                normalized, choices, scorer=scorer, limit=limit + 2, score_cutoff=cutoff
            ):
                cid = ids[position]
                best[cid] = max(best.get(cid, 0.0), score / 100.0)
        scored = sorted(best.items(), key=lambda item: (-item[1], item[0]))
        return scored[:limit]

    def differs_by_real_words(self, query: str, customer_id: int, query_is_customer: bool = False) -> bool:
        """Whether the query differs from the customer's name by a word that is itself in
        some customer's name ("Elbe Tehnika" vs "Elbe Technika" when both words are known):
        that is two companies, not a typo, however close the letters are. When the query is
        a customer's own name, its own words do not count."""
        normalized = normalize_company_name(query) or ""
        theirs = set(self.names.get(customer_id, "").split())
        needed = 2 if query_is_customer else 1
        return any(self.words[word] >= needed for word in set(normalized.split()) if word not in theirs)
