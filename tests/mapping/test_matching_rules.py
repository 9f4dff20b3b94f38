"""The rules beyond email and domain, table-driven with real-world shaped values: manual
rules, phones, customer names (exact and fuzzy), and Review suggestions, for customers in
Croatian, Polish, Serbian Cyrillic, Swedish and Persian script, IDN domains and
international phone numbers."""

from __future__ import annotations

import pytest

from support.views import activity as made_activity
from syncd.mapping.freemail import packaged_free_mail_domains
from syncd.mapping.matcher import CustomerIndex, MatchPolicy, link_activity, manual_rule_key, suggest_customers
from syncd.mapping.review import resolve_customer, rule_keys
from syncd.model.records import Participant, Role

POLICY = MatchPolicy(
    internal_domains=frozenset({"ourco.example"}),
    free_mail_domains=packaged_free_mail_domains(),
    default_phone_region="HR",
)
CUSTOMERS = [
    (1, "company", "Čokolada Kraš d.d.", None),
    (2, "person", "Ivana Horvat", 1),
    (3, "company", "Łódzkie Młyny Sp. z o.o.", None),
    (4, "person", "Paweł Wiśniewski", 3),
    (5, "company", "Јадран Храна д.о.о.", None),
    (6, "person", "Милош Петровић", 5),
    (7, "company", "Smörgås Kök AB", None),
    (8, "person", "Åsa Lindqvist", 7),
    (9, "company", "شرکت پارس غذا", None),
    (10, "person", "Müller & Söhne GmbH", None),
]
IDENTITIES = [
    (2, "phone", "+38514567890"),
    (4, "phone", "+48225556677"),
    (6, "phone", "+381112345678"),
    (8, "phone", "+4687654321"),
    (9, "phone", "+982188776655"),
    (10, "domain", "xn--mller-shne-tfb0w.de"),
    (2, "email", "ivana@kras.hr"),
]
RULES = [
    ("email", "tom.jones@gmail.com", 7),
    ("domain", "kras-group.com", 1),
    ("name", "kras", 1),
    ("phone", "+38598000111", 3),
]
INDEX = CustomerIndex.build(IDENTITIES, CUSTOMERS, POLICY, RULES)


def rules_of(participants: tuple[Participant, ...] = (), **hints: str) -> dict[int, str]:
    links = link_activity(participants, {k.replace("_", "-"): v for k, v in hints.items()}, INDEX, POLICY)
    assert all(link.evidence for link in links)
    return {link.customer_id: link.rule for link in links}


@pytest.mark.parametrize(
    ("phones", "region", "expected"),
    [
        ("01 456 7890", None, {2: "phone", 1: "person-company"}),  # Croatian national, default region HR
        ("+385 1 456 7890", None, {2: "phone", 1: "person-company"}),
        ("00385 1 456 78 90", None, {2: "phone", 1: "person-company"}),  # 00 international prefix
        ("22 555 66 77", "PL", {4: "phone", 3: "person-company"}),  # the sheet says Poland
        ("+48 22 555 66 77", None, {4: "phone", 3: "person-company"}),
        ("011 234 5678", "RS", {6: "phone", 5: "person-company"}),  # Belgrade
        ("08-765 43 21", "SE", {8: "phone", 7: "person-company"}),  # Stockholm, Swedish style
        ("+98 21 8877 6655", None, {9: "phone"}),  # Tehran: a company's number
        ("385 98 000 111", None, {3: "manual"}),  # a manual phone rule wins
        ("+1 212 555 0100", None, {}),
        ("n/a", None, {}),
    ],
)
def test_phone_rule(phones: str, region: str | None, expected: dict[int, str]) -> None:
    hints = {"phones": phones} | ({"phone_region": region} if region else {})
    assert rules_of(**hints) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ČOKOLADA KRAŠ", {1: "name"}),  # case, accents and legal form aside
        ("Cokolada Kras d.d.", {1: "name"}),
        ("Lodzkie Mlyny", {3: "name"}),  # Polish without its letters
        ("Łódzkie Młyny spółka z o.o.", {}),  # the legal form written out: not certain
        ("Јадран Храна", {5: "name"}),  # Serbian Cyrillic
        ("Jadran Hrana", {5: "name"}),  # the same name in Serbian Latin
        ("Smorgas Kok", {7: "name"}),  # Swedish
        ("پارس غذا", {9: "name"}),  # Persian, without "sherkat"
        ("Cokolada Krass", {1: "fuzzy-name"}),  # a typo, clear of every other name
        ("Łódzkie Młyn", {3: "fuzzy-name"}),
        ("Kraš", {1: "manual"}),  # a manual name rule
        ("Nordic Mills", {}),
    ],
)
def test_name_rules(name: str, expected: dict[int, str]) -> None:
    assert rules_of(customer_ref=name) == expected


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("tom.jones@gmail.com", {7: "manual"}),  # a free-mail address assigned by hand
        ("buyer@eu.kras-group.com", {1: "manual"}),  # a manual domain rule covers subdomains
        ("ivana@kras.hr", {2: "email", 1: "person-company"}),
        ("info@xn--mller-shne-tfb0w.de", {10: "domain"}),  # IDN domain, punycode
        ("other.person@gmail.com", {}),
    ],
)
def test_manual_and_address_rules(address: str, expected: dict[int, str]) -> None:
    assert rules_of((Participant(address, "", Role.FROM),)) == expected


def test_manual_rules_win_over_the_email_rule() -> None:
    index = CustomerIndex.build(IDENTITIES, CUSTOMERS, POLICY, [("email", "ivana@kras.hr", 7)])
    links = link_activity((Participant("ivana@kras.hr", "", Role.FROM),), {}, index, POLICY)
    assert [(link.customer_id, link.rule, link.confidence) for link in links] == [(7, "manual", 1.0)]


@pytest.mark.parametrize(
    ("participants", "hints", "first"),
    [
        ((), {"customer-ref": "Cokolada Kras Zagreb"}, 1),
        ((Participant("nabava@lodzkiemlyny.pl", "Zakup", Role.FROM),), {}, 3),  # the name in the mail domain
    ],
)
def test_review_suggestions(participants: tuple[Participant, ...], hints: dict[str, str], first: int) -> None:
    found = suggest_customers(participants, hints, INDEX, POLICY)
    assert found and found[0][0] == first


def test_a_display_name_alone_suggests_nothing_but_with_a_shared_conversation_it_does() -> None:
    """787 of 800 unknown free-mail senders used to get a suggestion from a similar name."""
    stranger = (Participant("x@gmail.com", "Smörgås Kök", Role.FROM),)
    assert suggest_customers(stranger, {}, INDEX, POLICY) == []
    found = suggest_customers(stranger, {}, INDEX, POLICY, related=frozenset({7}))
    assert found and found[0][0] == 7


@pytest.mark.parametrize(
    ("typed", "customer", "note"),
    [
        ("Čokolada Kraš d.d.", 1, None),
        ("cokolada kras", 1, None),
        ("#9", 9, None),
        ("5", 5, None),
        ("Cokolada Kraz", 1, None),  # an obvious typo is accepted
        ("Kraš Group", None, "no customer named 'Kraš Group'"),
    ],
)
def test_what_admins_type_on_review(typed: str, customer: int | None, note: str | None) -> None:
    resolved = resolve_customer(typed, INDEX)
    assert resolved.customer_id == customer
    assert (resolved.note or "").startswith(note or "")


def test_review_learns_the_counterpart_not_us() -> None:
    activity = made_activity(
        "x",
        [],
        hints={"phones": "+385 91 111 2222", "customer-ref": "Kraš"},
        participants=(Participant("tom@gmail.com", "", Role.FROM), Participant("alice@ourco.example", "", Role.TO)),
    )
    assert rule_keys(activity, POLICY) == [("email", "tom@gmail.com"), ("phone", "+385911112222"), ("name", "kras")]
    assert manual_rule_key("domain", "@Kras-Group.COM") == ("domain", "kras-group.com")
    assert manual_rule_key("phone", "n/a") is None


def _links(identities: list[tuple[int, str, str]], customers: list, sender: str, policy: MatchPolicy = POLICY) -> dict:  # type: ignore[type-arg]
    index = CustomerIndex.build(identities, customers, policy)
    return {
        (link.customer_id, link.rule)
        for link in link_activity((Participant(sender, "", Role.FROM),), {}, index, policy)
    }


def test_plus_addresses_fold_both_ways_by_default_on_known_providers() -> None:
    people = [(1, "person", "Kasia Nowak", None)]
    # The list holds the sub-address; the mail comes from the plain address.
    assert _links([(1, "email", "kasia+orders@gmail.com")], people, "kasia@gmail.com") == {(1, "email")}
    # The list holds the plain address; the mail comes from a sub-address.
    assert _links([(1, "email", "kasia@gmail.com")], people, "kasia+offers@gmail.com") == {(1, "email")}
    # On a business domain a + may be part of a different real address: not folded unless asked.
    assert _links([(1, "email", "kasia@balticgrain.pl")], people, "kasia+x@balticgrain.pl") == set()
    everywhere = MatchPolicy(free_mail_domains=POLICY.free_mail_domains, fold_plus_addresses="all")
    assert _links([(1, "email", "kasia@balticgrain.pl")], people, "kasia+x@balticgrain.pl", everywhere) == {
        (1, "email")
    }
    never = MatchPolicy(free_mail_domains=POLICY.free_mail_domains, fold_plus_addresses="none")
    assert _links([(1, "email", "kasia@gmail.com")], people, "kasia+offers@gmail.com", never) == set()
    # A plain address another customer holds stays theirs.
    two = [(1, "person", "Kasia", None), (2, "person", "Other Kasia", None)]
    found = _links([(1, "email", "kasia+orders@gmail.com"), (2, "email", "kasia@gmail.com")], two, "kasia@gmail.com")
    assert found == {(2, "email")}


@pytest.mark.parametrize(
    "domain", ["net.hr", "t-com.hr", "zg.t-com.hr", "inet.hr", "tlen.pl", "eunet.rs", "telia.com", "bredband.net"]
)
def test_regional_mail_providers_never_identify_a_company(domain: str) -> None:
    """One company whose people use such a domain must not claim every stranger writing from it."""
    assert domain in packaged_free_mail_domains()
    customers = [(1, "company", "Adriatic Foods", None), (2, "person", "Ivana", 1)]
    found = _links([(2, "email", f"ivana@{domain}")], customers, f"stranger@{domain}")
    assert found == set()


def test_config_reads_old_booleans_for_plus_folding() -> None:
    from syncd.config_tables import MatchingConfig

    assert MatchingConfig().fold_plus_addresses == "known"
    assert MatchingConfig(fold_plus_addresses=True).fold_plus_addresses == "all"
    assert MatchingConfig(fold_plus_addresses=False).fold_plus_addresses == "none"
