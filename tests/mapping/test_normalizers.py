"""Normalizers and the rules built on them, table-driven with real-world shaped values,
plus properties (hypothesis) that hold for any input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.mapping.matcher import CustomerIndex, MatchPolicy, company_domains, link_participants, skip_reason
from syncd.mapping.normalize import (
    fold_plus_address,
    normalize_company_name,
    normalize_domain,
    normalize_email,
    normalize_phone,
    registrable_domain,
)
from syncd.model.records import ActivityKind, ActivityRecord, Participant, Role


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+385 91 456 7890", None, "+385914567890"),  # Croatia, international
        ("091 456 7890", "HR", "+385914567890"),  # Croatia, national with region
        ("091 456 7890", None, None),  # national without region: not guessed
        ("385914567890.0", None, "+385914567890"),  # went through a float in a sheet
        ("0048 22 123 45 67", None, "+48221234567"),  # Poland, 00 prefix
        ("22 123-45-67", "PL", "+48221234567"),  # Poland (no trunk 0 since 2005), punctuation
        ("+46 8 123 456 78", None, "+46812345678"),  # Sweden
        ("08-123 456 78", "SE", "+46812345678"),
        ("+381 11 3456789", None, "+381113456789"),  # Serbia
        ("+98 21 1234 5678", None, "+982112345678"),  # Iran
        ("+1 (212) 555-0188", None, "+12125550188"),  # United States
        ("n/a", "HR", None),
        ("12", "HR", None),
        ("", None, None),
    ],
)
def test_normalize_phone(raw: str, region: str | None, expected: str | None) -> None:
    assert normalize_phone(raw, region) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Adriatic Foods d.o.o.", "adriatic foods"),
        ("ADRIATIC FOODS D.O.O", "adriatic foods"),
        ("Čokolada Kraš d.d.", "cokolada kras"),  # Croatian, accents
        ("Baltic Grain Sp. z o.o.", "baltic grain"),  # Polish
        ("Łódzkie Młyny S.A.", "lodzkie mlyny"),
        ("Јадран Храна д.о.о.", "jadran hrana"),  # Serbian Cyrillic, transliterated as Serbian Latin writes it
        ("Ковач Трговина", "kovac trgovina"),  # ч is č in Serbian Latin, not "ch"
        ("Nordic Mills AB", "nordic mills"),  # Swedish
        ("Svenska Kvarn Aktiebolag", "svenska kvarn"),
        ("Smörgås & Co", "smorgas"),
        ("شرکت پارس غذا", "prs ghdh"),  # Persian: "sherkat" (company) prefix gone, then anyascii
        ("Müller & Söhne GmbH", "muller and sohne"),
        ("ACME, Inc.", "acme"),
        ("Ltd", "ltd"),  # a legal form alone stays a name
        ("  ", None),
    ],
)
def test_normalize_company_name(raw: str, expected: str | None) -> None:
    assert normalize_company_name(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("www.AdriaticFoods.HR", "adriaticfoods.hr"),
        ("münchen.de", "xn--mnchen-3ya.de"),  # IDN to punycode
        ("пример.срб", "xn--e1afmkfd.xn--90a3ac"),  # Serbian Cyrillic IDN
        ("not a domain", None),
        ("localhost", None),
    ],
)
def test_normalize_domain(raw: str, expected: str | None) -> None:
    assert normalize_domain(raw) == expected


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        ("eu.mail.acme.co.uk", "acme.co.uk"),
        ("acme.com.hr", "acme.com.hr"),
        ("firma.hr", "firma.hr"),
        ("co.uk", None),
        ("com.pl", None),
    ],
)
def test_registrable_domain_uses_the_public_suffix_list(domain: str, expected: str | None) -> None:
    assert registrable_domain(domain) == expected


def test_company_domains_never_reach_a_public_suffix() -> None:
    assert company_domains("eu.mail.acme.co.uk") == ("eu.mail.acme.co.uk", "mail.acme.co.uk", "acme.co.uk")
    assert company_domains("co.uk") == ()


def test_plus_address_folding() -> None:
    assert fold_plus_address("ana+offers@firma.hr") == "ana@firma.hr"
    assert fold_plus_address("+weird@firma.hr") == "+weird@firma.hr"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_normalizers_never_raise_and_are_idempotent(text: str) -> None:
    for normalize in (normalize_email, normalize_domain, normalize_company_name):
        once = normalize(text)
        assert once is None or normalize(once) == once
    phone = normalize_phone(text, "HR")
    assert phone is None or (phone.startswith("+") and normalize_phone(phone) == phone)


@settings(max_examples=200, deadline=None)
@given(
    st.from_regex(r"[a-z][a-z0-9.]{0,10}@[a-z]{2,10}\.(com|hr|pl|se)", fullmatch=True),
    st.sampled_from(["", " ", "\t"]),
    st.booleans(),
)
def test_email_case_and_whitespace_do_not_matter(address: str, pad: str, upper: bool) -> None:
    raw = pad + (address.upper() if upper else address) + pad
    assert normalize_email(raw) == normalize_email(address) == address


ADRIATIC, BALTIC = 1, 2
INDEX = CustomerIndex.build(
    [(ADRIATIC, "domain", "adriaticfoods.hr"), (BALTIC, "email", "kasia@balticgrain.pl")],
    [(ADRIATIC, "company", "Adriatic Foods d.o.o.", None), (BALTIC, "company", "Baltic Grain", None)],
    MatchPolicy(),
)


def record(*emails: str, kind: ActivityKind = ActivityKind.EMAIL) -> ActivityRecord:
    from datetime import datetime, timezone

    return ActivityRecord(
        key="k",
        kind=kind,
        occurred_at=datetime(2026, 11, 2, tzinfo=timezone.utc),
        participants=tuple(Participant(e, "", Role.TO) for e in emails),
    )


@pytest.mark.parametrize(
    ("policy", "emails", "reason", "linked"),
    [
        (
            MatchPolicy(blocked_domains=frozenset({"adriaticfoods.hr"})),
            ("eu.ivana@sales.adriaticfoods.hr",),
            "blocked",
            [],
        ),
        (
            MatchPolicy(blocked_addresses=frozenset({"spam@adriaticfoods.hr"}), block_whole_item=False),
            ("spam@adriaticfoods.hr", "kasia@balticgrain.pl"),
            None,
            [(BALTIC, "email")],
        ),
        (
            MatchPolicy(blocked_domains=frozenset({"ourco.example"}), internal_domains=frozenset({"ourco.example"})),
            ("me@ourco.example", "kasia@balticgrain.pl"),
            None,
            [(BALTIC, "email")],
        ),  # own domain never blocked
        (MatchPolicy(fold_plus_addresses="all"), ("kasia+orders@balticgrain.pl",), None, [(BALTIC, "email")]),
        # By default only providers known to deliver +tag mail fold: a business domain's + may be a real address.
        (MatchPolicy(), ("kasia+orders@balticgrain.pl",), None, [(BALTIC, "domain")]),
        (MatchPolicy(), ("ivana@mail.adriaticfoods.hr",), None, [(ADRIATIC, "domain")]),  # a company's subdomain
    ],
)
def test_blocklist_and_plus_addresses(
    policy: MatchPolicy, emails: tuple[str, ...], reason: str | None, linked: list[tuple[int, str]]
) -> None:
    item = record(*emails)
    assert skip_reason(item, policy) == reason
    if reason is None:
        assert [(s.customer_id, s.rule) for s in link_participants(item.participants, INDEX, policy)] == linked


def test_private_and_internal_meetings_are_excluded() -> None:
    policy = MatchPolicy(internal_domains=frozenset({"ourco.example"}))
    private = record("ivana@adriaticfoods.hr", kind=ActivityKind.MEETING)
    private = type(private)(
        **{**{f: getattr(private, f) for f in private.__slots__}, "hints": (("sensitivity", "private"),)}
    )
    assert skip_reason(private, policy) == "private"
    assert (
        skip_reason(record("a@ourco.example", "b@ourco.example", kind=ActivityKind.MEETING), policy) == "internal-only"
    )
