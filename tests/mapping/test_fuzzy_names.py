"""The fuzzy-name rule on a labeled synthetic set with realistic typos (bench/fuzzy_names.py)."""

from __future__ import annotations

import pytest

from support.helpers import load_bench
from syncd.mapping.fuzzy import NameIndex
from syncd.mapping.matcher import MatchPolicy

_bench = load_bench("fuzzy_names")
evaluate, generate, misspell = _bench.evaluate, _bench.generate, _bench.misspell


@pytest.mark.parametrize("seed", [3, 11])
def test_auto_links_are_at_least_99_percent_precise_and_most_typos_link(seed: int) -> None:
    pairs, queries = generate(customers=5000, queries=1500, seed=seed)
    assert sum(q.customer_id is None for q in queries) > 300  # a real share of non-customers
    figures = evaluate(pairs, queries, MatchPolicy())
    assert figures["precision"] >= 0.99
    assert figures["recall"] >= 0.85
    assert figures["found_recall"] >= 0.97  # typos not auto-linked are mostly suggested on Review


def test_typos_are_realistic_edits() -> None:
    import random

    rng = random.Random(1)
    variants = {misspell("Jadran Pekara d.o.o.", rng) for _ in range(40)}
    assert "Jadran Pekara d.o.o." not in variants or len(variants) > 10
    assert any(v.lower().startswith("jadran pekara") and "d.o.o." not in v for v in variants)  # legal form dropped


def test_a_word_of_another_customer_is_not_taken_for_a_typo() -> None:
    index = NameIndex.build([(1, "Elbe Technika Export Ltd"), (2, "Sava Tehnika d.o.o.")])
    assert index.differs_by_real_words("Elbe Tehnika Export", 1)  # "tehnika" is customer 2's word
    assert not index.differs_by_real_words("Elbe Tecnika Export", 1)  # a typo: no customer has "tecnika"


def test_near_identical_names_are_found_by_their_start_or_their_end() -> None:
    from syncd.mapping.duplicates import near_identical_pairs

    names = [
        ("adriatic foods zagreb", 1),
        ("adriatic fods zagreb", 2),
        ("xdriatic foods zagreb", 3),
        ("baltic amber", 4),
        ("nordic mills", 5),
    ]
    found = {frozenset((a, b)) for a, b, _score in near_identical_pairs(names)}
    assert found >= {frozenset((1, 2)), frozenset((1, 3))}
    assert not any(4 in pair or 5 in pair for pair in found)
