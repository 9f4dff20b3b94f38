"""Matching v1, table-driven: exact email, person's company, domain; free mail; internal and automated mail."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from syncd.mapping.freemail import packaged_free_mail_domains
from syncd.mapping.matcher import CustomerIndex, MatchPolicy, link_participants, skip_reason
from syncd.mapping.normalize import normalize_domain, normalize_email, normalize_phone, parent_domains, split_emails
from syncd.model.records import ActivityKind, ActivityRecord, Direction, Participant, Role

POLICY = MatchPolicy(
    internal_domains=frozenset({"ourco.example"}),
    own_addresses=frozenset({"alice@ourco.example"}),
    free_mail_domains=packaged_free_mail_domains(),
)
CUSTOMERS = [
    (1, "company", "Adriatic Foods", None),
    (2, "person", "Ivana Horvat", 1),
    (3, "person", "Marta Kovač", None),
    (4, "company", "Nordic Retail", None),
]
IDENTITIES = [
    (2, "email", "ivana@adriaticfoods.hr"),
    (3, "email", "marta.kovac@gmail.com"),
    (4, "domain", "nordicretail.se"),
]
INDEX = CustomerIndex.build(IDENTITIES, CUSTOMERS, POLICY)


@pytest.mark.parametrize(
    "address, expected",
    [
        ("ivana@adriaticfoods.hr", {2: "email", 1: "person-company"}),
        ("marko@adriaticfoods.hr", {1: "domain"}),  # derived from Ivana's business address
        ("marko@eu.mail.adriaticfoods.hr", {1: "domain"}),  # subdomains belong to the company
        ("erik@nordicretail.se", {4: "domain"}),  # explicit company domain
        ("marta.kovac@gmail.com", {3: "email"}),  # free mail: the person, no company
        ("someone.else@gmail.com", {}),  # free mail never identifies a company
        ("x@mailinator.com", {}),  # nor does disposable mail
        ("colleague@ourco.example", {}),  # we are never our own customer
        ("unknown@elsewhere.example", {}),
    ],
)
def test_rules(address: str, expected: dict[int, str]) -> None:
    links = link_participants([Participant(address, "", Role.FROM)], INDEX, POLICY)
    assert {link.customer_id: link.rule for link in links} == expected
    assert all(link.evidence for link in links)


def test_a_mail_to_two_customers_links_both() -> None:
    links = link_participants(
        [
            Participant("alice@ourco.example", "", Role.FROM),
            Participant("ivana@adriaticfoods.hr", "", Role.TO),
            Participant("erik@nordicretail.se", "", Role.TO),
        ],
        INDEX,
        POLICY,
    )
    assert {link.customer_id for link in links} == {1, 2, 4}


def test_domain_shared_by_two_companies_is_not_guessed() -> None:
    index = CustomerIndex.build(
        [(2, "email", "a@shared.example"), (5, "email", "b@shared.example")],
        [(1, "company", "A", None), (2, "person", "P", 1), (4, "company", "B", None), (5, "person", "Q", 4)],
        POLICY,
    )
    assert link_participants([Participant("c@shared.example", "", Role.FROM)], index, POLICY) == []


def record(*participants: Participant, direction: Direction = Direction.INBOUND, **hints: str) -> ActivityRecord:
    return ActivityRecord(
        key="k",
        kind=ActivityKind.EMAIL,
        occurred_at=datetime(2026, 1, 1, tzinfo=timezone.utc),
        direction=direction,
        participants=participants,
        hints=tuple((k.replace("_", "-"), v) for k, v in hints.items()),
    )


@pytest.mark.parametrize(
    "rec, reason",
    [
        (
            record(Participant("alice@ourco.example", "", Role.FROM), Participant("bob@ourco.example", "", Role.TO)),
            "internal-only",
        ),
        (record(Participant("noreply@shop.example", "", Role.FROM)), "automated"),
        (record(Participant("mailer-daemon@x.example", "", Role.FROM)), "automated"),
        (record(Participant("ivana@adriaticfoods.hr", "", Role.FROM), auto_submitted="auto-replied"), "automated"),
        (record(Participant("ivana@adriaticfoods.hr", "", Role.FROM), precedence="bulk"), "automated"),
        (record(Participant("news@x.example", "", Role.FROM), list_id="<list.x.example>"), "automated"),
        (record(Participant("ivana@adriaticfoods.hr", "", Role.FROM), auto_submitted="no"), None),
        (
            record(
                Participant("ivana@adriaticfoods.hr", "", Role.FROM), Participant("alice@ourco.example", "", Role.TO)
            ),
            None,
        ),
        # We wrote to a no-reply address ourselves: that is still our outbound mail.
        (
            record(
                Participant("alice@ourco.example", "", Role.FROM),
                Participant("noreply@x.example", "", Role.TO),
                direction=Direction.OUTBOUND,
            ),
            None,
        ),
    ],
)
def test_skip_reasons(rec: ActivityRecord, reason: str | None) -> None:
    assert skip_reason(rec, POLICY) == reason


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Ivana <Ivana.Horvat@AdriaticFoods.HR>", "ivana.horvat@adriaticfoods.hr"),
        ("  mailto:X@Y.example ", "x@y.example"),
        ("jürgen@münchen.de", "jürgen@xn--mnchen-3ya.de"),
        ("n/a", None),
        ("@", None),
        ("a@b", None),
        ("two@at@x.example", None),
    ],
)
def test_normalize_email(raw: str, expected: str | None) -> None:
    assert normalize_email(raw) == expected


def test_other_normalizers() -> None:
    assert normalize_domain("WWW.Example.COM.") == "example.com"
    assert parent_domains("a.b.example.com") == ["a.b.example.com", "b.example.com", "example.com"]
    assert split_emails("a@x.example; B@Y.example,\nnot-an-address") == ["a@x.example", "b@y.example"]
    assert normalize_phone("385912345678.0") == "+385912345678"
    assert normalize_phone("+385 91 234 5678") == "+385912345678"
    assert normalize_phone("00 385 91 234 5678") == "+385912345678"
    assert normalize_phone("12") is None
