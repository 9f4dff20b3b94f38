"""Customer details (street, postcode, city, birth date, tax id, website) in the store, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date

from syncd.model.records import CustomerDetails, CustomerKind, CustomerRecord
from syncd.store import Ingest, Store


def no_links(participants, hints):  # type: ignore[no-untyped-def]
    return []


def person(key: str, name: str, version: str, **details: object) -> CustomerRecord:
    return CustomerRecord(key, CustomerKind.PERSON, name, version=version, details=CustomerDetails(**details))  # type: ignore[arg-type]


def test_details_are_kept_on_both_insert_paths_and_a_merge_fills_what_the_survivor_lacks(store: Store) -> None:
    sheet = store.sources.source_id("customers", "excel_customers")
    first = person("p:1", "Ana Kovač", "1", street="Ilica 1", postcode="10000", birth_date=date(1985, 3, 12))
    second = person("p:2", "Ana Kovac", "1", city="Zagreb", tax_id="HR123", website="ana.example")
    store.batches.commit(sheet, Ingest(customers=[first, second]), no_links)  # the bulk path
    profiles = {p.name: p for p in store.reads.customer_profiles()}
    assert profiles["Ana Kovač"].details == first.details
    assert profiles["Ana Kovac"].details == second.details
    edited = person("p:1", "Ana Kovač", "2", street="Ilica 2", postcode="10000", birth_date=date(1985, 3, 12))
    store.batches.commit(sheet, Ingest(customers=[edited]), no_links)  # the row path
    survivor, merged = profiles["Ana Kovač"].id, profiles["Ana Kovac"].id
    assert {p.id: p for p in store.reads.customer_profiles()}[survivor].details.street == "Ilica 2"
    store.review.merge_customers(merged, survivor)
    [kept] = store.reads.customer_profiles()
    assert kept.details == CustomerDetails(
        street="Ilica 2",
        postcode="10000",
        city="Zagreb",
        birth_date=date(1985, 3, 12),
        tax_id="HR123",
        website="ana.example",
    )
