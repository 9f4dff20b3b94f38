"""The suppression list: addresses, domains with their subdomains, and erased people's digests."""

from __future__ import annotations

from syncd.mapping.privacy import Suppression, digest
from syncd.model.records import CustomerKind, CustomerRecord

SALT = b"s" * 32


def person(name: str, *emails: str) -> CustomerRecord:
    return CustomerRecord(f"p:{name}", CustomerKind.PERSON, name, emails=emails)


def test_addresses_domains_and_subdomains_are_suppressed() -> None:
    listed = Suppression(addresses=frozenset({"ana@example.com"}), domains=frozenset({"example.org"}))
    assert listed.email("Ana@Example.com") and listed.email("x@example.org") and listed.email("x@eu.mail.example.org")
    assert not listed.email("ana@example.net") and not listed.email("x@notexample.org")


def test_an_erased_person_is_known_by_digest_only_and_a_namesake_with_an_address_is_not_held_back() -> None:
    erased = Suppression(
        digests=frozenset({digest(SALT, "email", "ivana@adriatic.hr"), digest(SALT, "name", "Ivana Horvat")}),
        salt=SALT,
    )
    assert erased.email("IVANA@adriatic.hr") and not erased.email("marko@adriatic.hr")
    assert erased.customer(person("Ivana Horvat", "ivana@adriatic.hr"))
    assert erased.customer(person("Ivana Horvat"))  # her row without an address
    assert erased.customer(person("IVANA HORVAT"))  # the name as normalized
    assert not erased.customer(person("Ivana Horvat", "ivana.horvat@other.example"))  # another Ivana Horvat
    assert not Suppression(digests=erased.digests, salt=b"t" * 32).email("ivana@adriatic.hr")  # another store's salt
