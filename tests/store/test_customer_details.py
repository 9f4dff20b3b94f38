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


def test_forget_matches_addresses_literally_and_takes_records_merged_into_the_person(store: Store) -> None:
    """``john_doe`` is not a pattern that matches ``john.doe``; a duplicate merged into the
    erased person is the same person and goes too."""
    from syncd.model.records import ActivityKind, ActivityRecord, LinkSpec, Participant

    sheet = store.sources.source_id("customers", "excel_customers")
    mail = store.sources.source_id("mail", "maildir")
    people = [
        CustomerRecord("p:1", CustomerKind.PERSON, "John Doe", emails=("john_doe@x.example",), version="1"),
        CustomerRecord("p:2", CustomerKind.PERSON, "Jon Doe", version="1"),
        CustomerRecord("p:3", CustomerKind.PERSON, "John Dee", emails=("john.doe@x.example",), version="1"),
    ]
    store.batches.commit(sheet, Ingest(customers=people), no_links)
    ids = {c.name: c.id for c in store.reads.customers()}
    store.review.merge_customers(ids["Jon Doe"], ids["John Doe"])

    def by_address(participants, hints):  # type: ignore[no-untyped-def]
        owner = {"john_doe@x.example": ids["John Doe"], "john.doe@x.example": ids["John Dee"]}
        return [LinkSpec(owner[p.email], "email", 1.0, "") for p in participants if p.email in owner]

    from datetime import datetime, timezone

    mails = [
        ActivityRecord(
            key=str(n),
            kind=ActivityKind.EMAIL,
            occurred_at=datetime(2026, 11, 1, tzinfo=timezone.utc),
            subject=f"Mail {n}",
            participants=(Participant(address),),
            message_id=f"m{n}@x.example",
        )
        for n, address in ((1, "john_doe@x.example"), (2, "john.doe@x.example"))
    ]
    store.batches.commit(mail, Ingest(activities=mails), by_address)
    exported = store.privacy.person_export(ids["John Doe"]).as_plain()
    assert [a["Subject"] for a in exported["Activities"]] == ["Mail 1"]
    erased = store.privacy.forget(ids["John Doe"], [], "test")
    assert erased.activities_deleted == 1 and erased.customers == 2
    assert [a.subject for a in store.reads.activities()] == ["Mail 2"]
    with store.session() as s:
        from sqlalchemy import text

        names = {n for (n,) in s.execute(text("select name from customers"))}
    assert names == {"John Dee"}
