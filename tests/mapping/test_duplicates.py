"""Duplicate customers: record linkage over every mapped field, clusters instead of chains,
and what a shared name is evidence of and what it is not."""

from __future__ import annotations

from collections import Counter
from datetime import date

from syncd.mapping.duplicates import DuplicateCluster, dismissed_pairs, duplicate_clusters, parse_merge_ref
from syncd.mapping.linkage import AGREE, CLOSE, DISAGREE, compare, estimate_weights, prepare
from syncd.mapping.matcher import CustomerIndex, MatchPolicy
from syncd.model.records import CustomerDetails
from syncd.model.views import CustomerProfile

POLICY = MatchPolicy()


def person(cid: int, name: str, company: int | None = None, **details: object) -> CustomerProfile:
    emails = tuple(str(e) for e in [details.pop("email")] if e) if "email" in details else ()
    phones = tuple(str(p) for p in [details.pop("phone")] if p) if "phone" in details else ()
    return CustomerProfile(cid, "person", name, company, emails, phones, (), CustomerDetails(**details))  # type: ignore[arg-type]


def company(cid: int, name: str, **details: object) -> CustomerProfile:
    return CustomerProfile(cid, "company", name, None, (), (), (), CustomerDetails(**details))  # type: ignore[arg-type]


def clusters(
    profiles: list[CustomerProfile], dismissed: frozenset[str] = frozenset(), conflicts: tuple = ()
) -> list[DuplicateCluster]:
    index = CustomerIndex.build([], [(p.id, p.kind, p.name, p.company_id) for p in profiles], POLICY)
    return duplicate_clusters(profiles, list(conflicts), index, dismissed)


def groups(profiles: list[CustomerProfile], **kwargs: object) -> set[tuple[int, ...]]:
    return {c.members for c in clusters(profiles, **kwargs)}  # type: ignore[arg-type]


def test_namesakes_at_different_companies_are_not_suggested() -> None:
    """On a list of 2,000 distinct customers all 233 same-name suggestions were wrong."""
    profiles = [
        company(1, "Adriatic Foods"),
        company(2, "Baltic Grain"),
        person(3, "Ivana Horvat", 1),
        person(4, "Ivana Horvat", 2),  # another Ivana Horvat, at another company
        person(5, "Marko Kovač", 1),
        person(6, "Marko Kovač", 1),  # the same person listed twice at the same company
        person(7, "Ana Novak"),
        person(8, "Ana Novak"),  # a name alone: namesakes are common
        person(9, "Petra Babić", street="Ilica 12", postcode="10000"),
        person(10, "Petra Babic", street="Ilica 12", postcode="10000"),  # the same address
    ]
    assert groups(profiles) == {(5, 6), (9, 10)}


def test_a_different_birth_date_or_tax_id_outweighs_a_shared_name_and_address() -> None:
    profiles = [
        person(1, "Luka Marić", street="Vukovarska 5", postcode="21000", birth_date=date(1980, 5, 1)),
        person(2, "Luka Marić", street="Vukovarska 5", postcode="21000", birth_date=date(2008, 9, 30)),  # his son
        company(3, "Adriatic Foods", tax_id="HR11111111111"),
        company(4, "Adriatic Foods", tax_id="HR22222222222"),
        company(5, "Nordic Mills", tax_id="SE556000000001"),
        company(6, "NORDIC MILLS AB", tax_id="556000000001"),  # the same id without the country prefix
    ]
    assert groups(profiles) == {(5, 6)}


def test_swapped_words_are_compared() -> None:
    assert groups([company(1, "Miles Ryleh"), company(2, "Ryleh Miles")]) == {(1, 2)}
    people = [
        person(1, "Horvat Ivana", birth_date=date(1990, 1, 2)),
        person(2, "Ivana Horvat", birth_date=date(1990, 1, 2)),
    ]
    assert groups(people) == {(1, 2)}


def test_the_answer_does_not_depend_on_the_alphabet() -> None:
    """ "Adriatic Fods Export" used to be suggested and "Adriatic Foodz Export" not."""
    for typo in ("Adriatic Fods Export", "Adriatic Foodz Export"):
        found = groups([company(1, "Adriatic Foods Export"), company(2, typo), company(3, "Nordic Foods")])
        assert found == {(1, 2)}, typo


def test_two_real_words_apart_are_two_companies() -> None:
    profiles = [
        company(1, "Elbe Tehnika"),
        company(2, "Elbe Technika"),
        company(3, "Tehnika Zagreb"),
        company(4, "Technika Praha"),
    ]
    assert (1, 2) not in groups(profiles)


def test_transliterated_names_are_one_customer() -> None:
    profiles = [
        company(1, "Јадран Храна д.о.о."),
        company(2, "Jadran Hrana d.o.o."),
        person(3, "Stanisław Wiśniewski", street="Długa 3", postcode="00-238"),
        person(4, "Stanislaw Wisniewski", street="Dluga 3", postcode="00238"),
        person(5, "Милош Ковач", birth_date=date(1975, 3, 4)),
        person(6, "Miloš Kovač", birth_date=date(1975, 3, 4)),
    ]
    assert groups(profiles) == {(1, 2), (3, 4), (5, 6)}


def test_a_group_is_one_cluster_not_a_chain() -> None:
    """k same records used to be k-1 suggestions to the oldest; accepting them all merged
    everything. Now one cluster with the evidence per pair."""
    profiles = [
        person(1, "Ana Kovač", street="Ilica 1", postcode="10000", birth_date=date(1985, 3, 12)),
        person(2, "Ana Kovac", street="Ilica 1", postcode="10000", birth_date=date(1985, 3, 12)),
        person(3, "Ana Kovač", street="Ilica 1", postcode="10000", birth_date=date(1985, 12, 3)),  # day/month
        person(4, "A. Kovač", street="Ilica 1", postcode="10000", birth_date=date(1985, 3, 12)),
    ]
    [cluster] = clusters(profiles)
    assert cluster.members == (1, 2, 3, 4) and cluster.keep_id == 1
    assert cluster.ref == "M4-3-2-1" and parse_merge_ref(cluster.ref) == (4, 3, 2, 1)
    assert len(cluster.evidence) >= 3 and "#2 and #1: same" in cluster.reason


def test_clusters_are_not_chained_across_contrary_evidence() -> None:
    """A ~ B and B ~ C, but A and C have different birth dates: not one group."""
    profiles = [
        person(1, "Ivan Perić", street="Korzo 4", postcode="51000", birth_date=date(1970, 1, 1)),
        person(2, "Ivan Perić", street="Korzo 4", postcode="51000"),  # no birth date
        person(3, "Ivan Perić", street="Korzo 4", postcode="51000", birth_date=date(1999, 6, 6)),
    ]
    found = groups(profiles)
    assert len(found) == 1 and not any({1, 3} <= set(g) for g in found)


def test_an_admins_no_keeps_a_pair_apart_in_every_later_cluster() -> None:
    profiles = [person(i, "Ana Kovač", street="Ilica 1", postcode="10000") for i in (1, 2, 3)]
    assert groups(profiles) == {(1, 2, 3)}
    assert dismissed_pairs({"M3-2-1"}) == {(1, 2), (1, 3), (2, 3)}
    assert groups(profiles, dismissed=frozenset({"M3-1"})) == {(1, 2)} or groups(
        profiles, dismissed=frozenset({"M3-1"})
    ) == {(2, 3)}
    assert groups(profiles, dismissed=frozenset({"M2-1", "M3-1", "M3-2"})) == set()


def test_a_shared_identity_is_the_surest_signal() -> None:
    profiles = [person(1, "Ivana Horvat"), person(2, "Ivana H.")]
    [cluster] = clusters(profiles, conflicts=((2, 1, "email", "ivana@adriaticfoods.hr"),))
    assert cluster.ref == "M2-1" and cluster.reason == "both have the email ivana@adriaticfoods.hr"


def test_dates_with_transposed_digits_are_close_and_other_dates_differ() -> None:
    base = prepare(person(1, "Ana Kovač", birth_date=date(1985, 3, 12)))

    def birth_level(other: date) -> int | None:
        return compare(base, prepare(person(2, "Ana Kovač", birth_date=other)))[6]

    assert birth_level(date(1985, 3, 12)) == AGREE
    assert birth_level(date(1985, 12, 3)) == CLOSE  # day and month swapped
    assert birth_level(date(1958, 3, 12)) == CLOSE  # two digits transposed
    assert birth_level(date(1985, 3, 13)) == CLOSE  # one digit
    assert birth_level(date(1990, 7, 1)) == DISAGREE


def test_em_recovers_known_weights_without_labels() -> None:
    """Comparison vectors drawn from known m, u and match share: the estimate finds them
    (the reason the classifier needs no labelled data)."""
    import random

    rng = random.Random(7)
    true_m = [(0.05, 0.10, 0.85), (0.02, 0.08, 0.90), (0.10, 0.10, 0.80)]
    true_u = [(0.70, 0.20, 0.10), (0.85, 0.10, 0.05), (0.60, 0.10, 0.30)]
    share = 0.15
    patterns: Counter[tuple[int | None, ...]] = Counter()
    for _ in range(40_000):
        table = true_m if rng.random() < share else true_u
        patterns[tuple(rng.choices((0, 1, 2), weights=row)[0] for row in table)] += 1
    weights = estimate_weights(("first", "birth", "street"), patterns, iterations=200)
    assert abs(weights.prior - share) < 0.02
    for field in range(3):
        for level in range(3):
            assert abs(weights.m[field][level] - true_m[field][level]) < 0.04
            assert abs(weights.u[field][level] - true_u[field][level]) < 0.04


def test_two_thousand_distinct_customers_give_no_suggestion() -> None:
    """The list where all 233 same-name suggestions were wrong: 2,000 different people,
    namesakes (one name, one town, another street or birth date) and families (one
    surname and address) among them."""
    import random

    from support.helpers import load_bench

    bench = load_bench("duplicates")
    rng = random.Random(11)
    entities = bench.make_entities(rng, 2000)
    rows = [bench.noisy_row(rng, n, entity, first=True) for n, entity in enumerate(entities)]
    names = [r.name for r in rows]
    assert len(names) - len(set(names)) > 100  # namesakes are there to be mistaken
    assert clusters(bench.profiles_of(rows)) == []


def test_a_birth_year_typed_with_three_digits_is_compared_not_a_crash() -> None:
    profiles = [
        person(1, "Ana Kovač", street="Ilica 1", postcode="10000", birth_date=date(985, 3, 12)),
        person(2, "Ana Kovač", street="Ilica 1", postcode="10000", birth_date=date(1985, 3, 12)),
    ]
    assert groups(profiles) == {(1, 2)}  # one digit apart: close, and the address agrees
