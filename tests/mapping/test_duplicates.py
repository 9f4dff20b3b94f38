"""Duplicate customers: what a shared name is evidence of, and what it is not."""

from __future__ import annotations

from syncd.mapping.duplicates import duplicate_suggestions
from syncd.mapping.matcher import CustomerIndex, MatchPolicy

POLICY = MatchPolicy()


def suggestions(customers: list[tuple[int, str, str, int | None]]) -> set[tuple[int, int]]:
    index = CustomerIndex.build([], customers, POLICY)
    found = duplicate_suggestions([(c, k, n) for c, k, n, _company in customers], [], index)
    return {(s.merge_id, s.keep_id) for s in found}


def test_namesakes_at_different_companies_are_not_suggested() -> None:
    customers = [
        (1, "company", "Adriatic Foods", None),
        (2, "company", "Baltic Grain", None),
        (3, "person", "Ivana Horvat", 1),
        (4, "person", "Ivana Horvat", 2),  # another Ivana Horvat, at another company
        (5, "person", "Marko Kovač", 1),
        (6, "person", "Marko Kovač", 1),  # the same person listed twice at the same company
        (7, "person", "Ana Novak", None),
        (8, "person", "Ana Novak", None),  # nothing against it: still suggested
    ]
    assert suggestions(customers) == {(6, 5), (8, 7)}


def test_swapped_words_are_compared() -> None:
    assert suggestions([(1, "company", "Miles Ryleh", None), (2, "company", "Ryleh Miles", None)]) == {(2, 1)}


def test_the_answer_does_not_depend_on_the_alphabet() -> None:
    """ "Adriatic Fods Export" used to be suggested and "Adriatic Foodz Export" not."""
    for typo in ("Adriatic Fods Export", "Adriatic Foodz Export"):
        customers = [
            (1, "company", "Adriatic Foods Export", None),
            (2, "company", typo, None),
            (3, "company", "Nordic Foods", None),
        ]
        assert suggestions(customers) == {(2, 1)}, typo


def test_two_real_words_apart_are_two_companies() -> None:
    customers = [
        (1, "company", "Elbe Tehnika", None),
        (2, "company", "Elbe Technika", None),
        (3, "company", "Tehnika Zagreb", None),
        (4, "company", "Technika Praha", None),
    ]
    assert (2, 1) not in suggestions(customers)
