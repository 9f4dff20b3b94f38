"""Store behaviour on SQLite and PostgreSQL: idempotence, cross-mailbox identity, atomic batches."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from syncd.model.records import (
    ActivityKind,
    ActivityRecord,
    CustomerKind,
    CustomerRecord,
    Direction,
    LinkSpec,
    Participant,
    Problem,
    Role,
)
from syncd.model.views import LabelState
from syncd.store import Ingest, Skip, Store
from syncd.store.schema import Base

WHEN = datetime(2026, 10, 1, 9, 0, tzinfo=timezone.utc)


def email(
    key: str, msgid: str | None, mailbox: str = "alice@ourco.example", *parts: Participant, subject: str = "Hello"
) -> ActivityRecord:
    participants = parts or (Participant("ivana@adriatic.hr", "Ivana", Role.FROM), Participant(mailbox, "", Role.TO))
    return ActivityRecord(
        key=key,
        kind=ActivityKind.EMAIL,
        occurred_at=WHEN,
        direction=Direction.INBOUND,
        subject=subject,
        participants=participants,
        message_id=msgid,
        mailbox=mailbox,
    )


def link_to(customer_id: int):
    def link(participants, hints):  # type: ignore[no-untyped-def]
        return [LinkSpec(customer_id, "email", 1.0, "test")] if customer_id else []

    return link


def no_links(participants, hints):  # type: ignore[no-untyped-def]
    return []


def test_migrations_build_exactly_the_orm_schema(store: Store) -> None:
    with store.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []


def test_commit_is_idempotent_on_source_and_key(store: Store) -> None:
    source = store.sources.source_id("alice", "maildir")
    batch = Ingest(activities=[email("INBOX/1", "a@x"), email("INBOX/2", "b@x")], cursor="c1")
    first = store.batches.commit(source, batch, no_links)
    second = store.batches.commit(source, batch, no_links)
    assert (first.activities_new, second.activities_new, second.activities_updated) == (2, 0, 0)
    assert store.reads.status().activities == 2
    assert store.sources.sync_state(source).cursors == {"": "c1"}
    assert set(store.sources.sync_state(source).known) == {"INBOX/1", "INBOX/2"}


def test_same_message_in_two_mailboxes_is_one_activity_seen_in_both(store: Store) -> None:
    alice = store.sources.source_id("alice", "maildir")
    bob = store.sources.source_id("bob", "maildir")
    store.batches.commit(alice, Ingest(activities=[email("INBOX/1", "shared@x", "alice@ourco.example")]), no_links)
    bcc = (Participant("ivana@adriatic.hr", "", Role.FROM), Participant("bob@ourco.example", "", Role.BCC))
    store.batches.commit(bob, Ingest(activities=[email("INBOX/9", "shared@x", "bob@ourco.example", *bcc)]), no_links)
    [activity] = store.reads.activities()
    assert {s.mailbox for s in activity.seen_in} == {"alice@ourco.example", "bob@ourco.example"}
    assert {(p.email, p.role.value) for p in activity.participants} == {
        ("ivana@adriatic.hr", "from"),
        ("alice@ourco.example", "to"),
        ("bob@ourco.example", "bcc"),
    }


def test_a_failing_batch_commits_nothing_not_even_its_cursor(store: Store) -> None:
    source = store.sources.source_id("alice", "maildir")
    store.batches.commit(source, Ingest(activities=[email("INBOX/1", "a@x")], cursor="c1"), no_links)

    def exploding(participants, hints):  # type: ignore[no-untyped-def]
        raise RuntimeError("crash in the middle of the batch")

    batch = Ingest(
        activities=[email("INBOX/2", "b@x"), email("INBOX/3", "c@x")],
        cursor="c2",
        problems=[Problem("INBOX/4", "broken")],
    )
    with pytest.raises(RuntimeError):
        store.batches.commit(source, batch, exploding)
    assert store.sources.sync_state(source).cursors == {"": "c1"}
    assert set(store.sources.sync_state(source).known) == {"INBOX/1"}
    assert store.reads.status().quarantined == 0


def test_quarantine_and_skips_are_recorded_and_counted(store: Store) -> None:
    source = store.sources.source_id("alice", "maildir")
    store.batches.commit(
        source,
        Ingest(
            problems=[Problem("INBOX/7", "no valid From/To/Cc address", "file x")],
            skipped=[Skip("INBOX/8", "automated"), Skip("INBOX/9", "internal-only")],
        ),
        no_links,
    )
    status = store.reads.status()
    assert status.quarantined == 1
    [entry] = status.sources
    assert entry.skipped == {"automated": 1, "internal-only": 1}
    assert store.reads.quarantine()[0].reason == "no valid From/To/Cc address"
    assert set(store.sources.sync_state(source).known) == {"INBOX/7", "INBOX/8", "INBOX/9"}


def test_removal_hides_the_activity_only_when_every_copy_is_gone(store: Store) -> None:
    alice = store.sources.source_id("alice", "maildir")
    bob = store.sources.source_id("bob", "maildir")
    store.batches.commit(alice, Ingest(activities=[email("INBOX/1", "shared@x")]), no_links)
    store.batches.commit(bob, Ingest(activities=[email("INBOX/1", "shared@x", "bob@ourco.example")]), no_links)
    store.batches.commit(alice, Ingest(removed=["INBOX/1"]), no_links)
    assert store.reads.status().activities == 1
    store.batches.commit(bob, Ingest(removed=["INBOX/1"]), no_links)
    assert store.reads.status().activities == 0
    store.batches.commit(alice, Ingest(activities=[email("INBOX/1", "shared@x")]), no_links)
    assert store.reads.status().activities == 1


def test_customers_identities_are_unique_and_conflicts_are_quarantined(store: Store) -> None:
    sheet = store.sources.source_id("customers", "excel_customers")
    other = store.sources.source_id("other-sheet", "excel_customers")
    company = CustomerRecord(
        "company:adriatic", CustomerKind.COMPANY, "Adriatic", domains=("adriatic.hr",), version="1"
    )
    person = CustomerRecord(
        "person:ivana@adriatic.hr",
        CustomerKind.PERSON,
        "Ivana",
        emails=("ivana@adriatic.hr",),
        company_key="company:adriatic",
        version="1",
    )
    result = store.batches.commit(sheet, Ingest(customers=[person, company]), no_links)
    assert result.customers_changed == 2
    rows = {name: (cid, company) for cid, _kind, name, company in store.reads.customer_tuples()}
    assert rows["Ivana"][1] == rows["Adriatic"][0]
    clash = CustomerRecord("person:x", CustomerKind.PERSON, "Ivana H.", emails=("ivana@adriatic.hr",), version="1")
    store.batches.commit(other, Ingest(customers=[clash]), no_links)
    [problem] = store.reads.quarantine()
    assert "already on customer" in problem.reason and "Ivana" in problem.reason
    assert sorted(kind for _cid, kind, _v in store.reads.identity_rows()) == ["domain", "email"]
    unchanged = store.batches.commit(sheet, Ingest(customers=[company, person]), no_links)
    assert unchanged.customers_changed == 0
    store.batches.commit(sheet, Ingest(removed=["person:ivana@adriatic.hr"]), no_links)
    assert set(store.reads.customer_names().values()) == {"Adriatic", "Ivana H."}


def test_links_carry_rule_and_rematch_changes_them(store: Store) -> None:
    sheet = store.sources.source_id("customers", "excel_customers")
    store.batches.commit(
        sheet, Ingest(customers=[CustomerRecord("k", CustomerKind.PERSON, "Ivana", version="1")]), no_links
    )
    [customer] = store.reads.customers()
    mail = store.sources.source_id("alice", "maildir")
    store.batches.commit(mail, Ingest(activities=[email("INBOX/1", "a@x")]), no_links)
    assert store.reads.status().unmatched == 1
    assert store.links.rematch(link_to(customer.id)) == 1
    assert store.reads.status().unmatched == 0
    [activity] = store.reads.activities(customer_ids=[customer.id])
    assert activity.customers[0].rule == "email"
    assert store.links.rematch(link_to(customer.id)) == 0


def test_customer_summaries_count_recent_contact(store: Store) -> None:
    sheet = store.sources.source_id("customers", "excel_customers")
    store.batches.commit(
        sheet, Ingest(customers=[CustomerRecord("k", CustomerKind.PERSON, "Ivana", version="1")]), no_links
    )
    [customer] = store.reads.customers()
    mail = store.sources.source_id("alice", "maildir")
    records = [
        ActivityRecord(
            key=f"k{d}",
            kind=ActivityKind.EMAIL,
            occurred_at=WHEN - timedelta(days=d),
            participants=(Participant("i@a.hr", "", Role.FROM),),
        )
        for d in (1, 45, 200)
    ]
    store.batches.commit(mail, Ingest(activities=records), link_to(customer.id))
    [summary] = store.reads.customer_summaries(WHEN)
    assert (summary.count_30, summary.count_90, summary.total) == (1, 2, 3)
    assert summary.last_contact == WHEN - timedelta(days=1)


def test_naive_datetimes_are_refused(store: Store) -> None:
    source = store.sources.source_id("alice", "maildir")
    naive = ActivityRecord(key="k", kind=ActivityKind.NOTE, occurred_at=datetime(2026, 1, 1))
    with pytest.raises((sa.exc.StatementError, ValueError), match="naive datetime"):
        store.batches.commit(source, Ingest(activities=[naive]), no_links)


def test_upgrade_from_the_first_migration_keeps_data(store_url: str) -> None:
    from pathlib import Path

    from alembic import command
    from alembic.config import Config as AlembicConfig

    import syncd.store.store as store_module

    bare = Store.open(store_url, migrate_schema=False)
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(Path(store_module.__file__).parent / "migrations"))
    with bare.engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "0001")
        connection.execute(sa.text("insert into sources (name, kind) values ('old', 'maildir')"))
    bare.close()
    upgraded = Store.open(store_url)
    try:
        [source] = upgraded.reads.status().sources
        assert (source.name, source.consecutive_failures, source.backlog) == ("old", 0, 0)
    finally:
        upgraded.close()


def test_a_message_one_of_us_sent_is_outbound_whichever_copy_came_first(store: Store) -> None:
    alice = store.sources.source_id("alice", "maildir")
    bob = store.sources.source_id("bob", "maildir")
    cc_copy = email("INBOX/1", "sent-by-bob@x", "alice@ourco.example")  # inbound from alice's view
    sent_copy = ActivityRecord(
        key="Sent/1",
        kind=ActivityKind.EMAIL,
        occurred_at=WHEN,
        direction=Direction.OUTBOUND,
        participants=cc_copy.participants,
        message_id="sent-by-bob@x",
        mailbox="bob",
    )
    store.batches.commit(alice, Ingest(activities=[cc_copy]), no_links)
    store.batches.commit(bob, Ingest(activities=[sent_copy]), no_links)
    [activity] = store.reads.activities()
    assert activity.direction == "outbound"


def test_bulk_import_claims_identities_once_and_takes_them_from_gone_customers(store: Store) -> None:
    sheet = store.sources.source_id("customers", "excel_customers")
    first = CustomerRecord("p:1", CustomerKind.PERSON, "Ana", emails=("ana@x.hr",), phones=("+38591111",), version="1")
    twin = CustomerRecord("p:2", CustomerKind.PERSON, "Ana Twin", emails=("ana@x.hr", "twin@x.hr"), version="1")
    result = store.batches.commit(sheet, Ingest(customers=[first, twin]), no_links)
    assert result.customers_changed == 2
    [problem] = store.reads.quarantine()
    assert problem.key == "p:2#email:ana@x.hr" and "already on customer" in problem.reason
    owners = {value: cid for cid, _kind, value in store.reads.identity_rows()}
    names = store.reads.customer_names()
    assert {v: names[c] for v, c in owners.items()} == {"ana@x.hr": "Ana", "+38591111": "Ana", "twin@x.hr": "Ana Twin"}
    store.batches.commit(sheet, Ingest(removed=["p:1"]), no_links)
    other = store.sources.source_id("crm-export", "excel_customers")
    newcomer = CustomerRecord("p:9", CustomerKind.PERSON, "Ana New", emails=("ana@x.hr",), version="1")
    store.batches.commit(other, Ingest(customers=[newcomer]), no_links)
    owners = {value: cid for cid, _kind, value in store.reads.identity_rows()}
    assert store.reads.customer_names()[owners["ana@x.hr"]] == "Ana New"


def test_review_assignments_become_rules_or_stay_pending_with_a_note(store: Store) -> None:
    sheet = store.sources.source_id("customers", "excel_customers")
    store.batches.commit(
        sheet, Ingest(customers=[CustomerRecord("c:1", CustomerKind.COMPANY, "Acme", version="1")]), no_links
    )
    [acme] = store.reads.customers()
    store.review.save_assignment("A1", [], None, "Acmee", "no customer named 'Acmee'; did you mean 'Acme'?")
    assert store.review.pending_assignments() == {"A1": ("Acmee", "no customer named 'Acmee'; did you mean 'Acme'?")}
    assert store.review.manual_rule_rows() == []
    store.review.save_assignment("A1", [("email", "tom@gmail.com"), ("phone", "+38591111")], acme.id, "Acme")
    assert store.review.pending_assignments() == {}
    assert sorted(store.review.manual_rule_rows()) == [
        ("email", "tom@gmail.com", acme.id),
        ("phone", "+38591111", acme.id),
    ]
    store.review.save_assignment("A2", [("email", "tom@gmail.com")], acme.id, "acme")  # the same key again: replaced
    assert len(store.review.manual_rules()) == 2


def test_rematch_since_looks_only_at_what_the_changed_customers_can_affect(store: Store) -> None:
    sheet = store.sources.source_id("customers", "excel_customers")
    mail = store.sources.source_id("mail", "maildir")
    store.batches.commit(
        sheet,
        Ingest(
            customers=[
                CustomerRecord("p:1", CustomerKind.PERSON, "Ana", emails=("ana@old.example",), version="1"),
                CustomerRecord("p:2", CustomerKind.PERSON, "Bo", emails=("bo@other.example",), version="1"),
            ]
        ),
        no_links,
    )
    ids = {c.name: c.id for c in store.reads.customers()}

    def link_known(participants, hints):  # type: ignore[no-untyped-def]
        owners = {"ana@old.example": ids["Ana"], "bo@other.example": ids["Bo"]}
        return [LinkSpec(owners[p.email], "email", 1.0, "") for p in participants if p.email in owners]

    store.batches.commit(
        mail,
        Ingest(
            activities=[
                email("1", "m1", "alice@ourco.example", Participant("x@newco.example", "", Role.FROM)),
                email("2", "m2", "alice@ourco.example", Participant("ana@old.example", "", Role.FROM)),
                email("3", "m3", "alice@ourco.example", Participant("bo@other.example", "", Role.FROM)),
                email("4", "m4", "alice@ourco.example", Participant("y@sub.newco.example", "", Role.FROM)),
            ]
        ),
        link_known,
    )
    since = datetime.now(timezone.utc)
    store.batches.commit(
        sheet,
        Ingest(
            customers=[
                CustomerRecord("p:1", CustomerKind.PERSON, "Ana", emails=("ana@new.example",), version="2"),
                CustomerRecord("c:9", CustomerKind.COMPANY, "Newco", domains=("newco.example",), version="1"),
            ]
        ),
        no_links,
    )
    seen: list[str] = []

    def recording(participants, hints):  # type: ignore[no-untyped-def]
        seen.append(participants[0].email)
        return []

    store.links.rematch(recording, since=since)
    # Unmatched mail (1, 4), mail linked to the changed Ana (2); not Bo's (3).
    assert sorted(seen) == ["ana@old.example", "x@newco.example", "y@sub.newco.example"]
    seen.clear()
    store.links.rematch(recording)  # without since: everything
    assert len(seen) == 4


def test_parallel_sources_writing_in_bulk_get_distinct_ids_and_lose_nothing(store: Store) -> None:
    """Two mailboxes backfilling at once (max_parallel_sources > 1): ids are taken before the
    bulk insert, so a race between the two must end in a retry, never a lost or merged row.
    Some Message-IDs are in both mailboxes, as a cc'd colleague's copy would be."""
    import threading

    sources = {name: store.sources.source_id(name, "imap") for name in ("alice", "bob")}
    errors: list[BaseException] = []

    def backfill(name: str) -> None:
        try:
            for batch in range(30):
                records = [
                    email(
                        f"INBOX/1/{batch * 20 + n}",
                        f"{name if n % 4 else 'shared'}-{batch}-{n}@x",
                        f"{name}@ourco.example",
                    )
                    for n in range(20)
                ]
                store.batches.commit(
                    sources[name], Ingest(activities=records, folder="INBOX", cursor=str(batch)), no_links
                )
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=backfill, args=(name,)) for name in sources]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    with store.engine.connect() as connection:
        activities = connection.execute(sa.text("SELECT count(*), count(DISTINCT message_id) FROM activities")).one()
        occurrences = connection.execute(sa.text("SELECT count(*) FROM occurrences")).scalar_one()
        orphans = connection.execute(
            sa.text(
                "SELECT count(*) FROM occurrences o LEFT JOIN activities a ON a.id = o.activity_id WHERE a.id IS NULL"
            )
        ).scalar_one()
    # 2 x 600 messages, of which 150 Message-IDs are shared: 1,050 activities, 1,200 occurrences.
    assert tuple(activities) == (1050, 1050)
    assert (occurrences, orphans) == (1200, 0)


def test_status_reads_one_state_even_while_a_batch_commits(store: Store) -> None:
    """The metrics endpoint showed a source's items ingested next to an activity count from
    before that batch: status() read each count at a different moment."""
    from syncd.store.engine import one_snapshot as _one_snapshot

    source = store.sources.source_id("alice", "maildir")
    store.batches.commit(source, Ingest(activities=[email("INBOX/1", "a@x")]), no_links)
    count = "SELECT count(*) FROM activities"
    with store.session() as reader:
        _one_snapshot(reader)
        before = reader.execute(sa.text(count)).scalar_one()
        store.batches.commit(source, Ingest(activities=[email("INBOX/2", "b@x")]), no_links)  # another connection
        during = reader.execute(sa.text(count)).scalar_one()
    assert (before, during) == (1, 1)
    assert store.reads.status().activities == 2


def test_removal_impact_counts_what_the_store_would_lose_not_keys(store: Store) -> None:
    """The removal guard's measure: a key re-read under a new name (UIDVALIDITY changed) loses
    nothing; an activity also seen in another mailbox is not lost; customers count too."""
    from dataclasses import replace as _replace

    alice = store.sources.source_id("alice", "imap")
    bob = store.sources.source_id("bob", "imap")
    old = [_replace(email(f"INBOX/1/{n}", f"m{n}@x"), folder="INBOX") for n in range(10)]
    store.batches.commit(alice, Ingest(activities=old, folder="INBOX"), no_links)
    store.batches.commit(bob, Ingest(activities=[email("INBOX/7/1", "m0@x", "bob@ourco.example")]), no_links)
    # Re-read under UIDVALIDITY 2: six of the ten come back with new keys.
    again = [_replace(email(f"INBOX/2/{n}", f"m{n}@x"), folder="INBOX") for n in range(6)]
    store.batches.commit(alice, Ingest(activities=again, folder="INBOX"), no_links)
    impact = store.sources.removal_impact(alice, "INBOX", [r.key for r in old])
    assert (impact.lost, impact.held) == (4, 10)  # m6..m9; m0 is also in Bob's mailbox but re-read anyway
    only_bob_keeps = store.sources.removal_impact(alice, "INBOX", [r.key for r in old] + [r.key for r in again])
    assert only_bob_keeps.lost == 9  # m0 survives in Bob's mailbox
    assert store.sources.removal_impact(alice, "INBOX", ["INBOX/9/9"]).lost == 0


def test_source_notices_are_shown_and_cleared(store: Store) -> None:
    store.sources.source_id("alice", "imap")
    store.sources.set_notice("alice", "IDLE notifications arrive about 60 s after delivery")
    assert store.reads.status().sources[0].notice == "IDLE notifications arrive about 60 s after delivery"
    store.sources.set_notice("alice", None)
    assert store.reads.status().sources[0].notice is None


def test_pending_labels_for_companies_only_or_people_too(store: Store) -> None:
    """Outlook categories are written for companies unless the admin asks for people too."""
    sheet = store.sources.source_id("sheet", "excel_customers")
    mail = store.sources.source_id("mail", "graph")
    store.batches.commit(
        sheet,
        Ingest(
            customers=[
                CustomerRecord("p:1", CustomerKind.PERSON, "Ivana Horvat", emails=("ivana@adriatic.hr",), version="1"),
                CustomerRecord("c:1", CustomerKind.COMPANY, "Adriatic Foods", domains=("adriatic.hr",), version="1"),
            ]
        ),
        no_links,
    )
    ids = {c.name: c.id for c in store.reads.customers()}

    def both(participants, hints):  # type: ignore[no-untyped-def]
        return [LinkSpec(ids["Ivana Horvat"], "email", 1.0, ""), LinkSpec(ids["Adriatic Foods"], "domain", 0.9, "")]

    store.batches.commit(mail, Ingest(activities=[email("inbox/1", "m1")]), both)
    assert store.sources.label_states(mail) == {"inbox/1": LabelState(("Adriatic Foods", "Ivana Horvat"))}
    assert store.sources.label_states(mail, people=False) == {"inbox/1": LabelState(("Adriatic Foods",))}
    store.sources.mark_labels_written(mail, {"inbox/1": ("Adriatic Foods", "Ivana Horvat")})
    assert store.sources.label_states(mail) == {
        "inbox/1": LabelState(("Adriatic Foods", "Ivana Horvat"), ("Adriatic Foods", "Ivana Horvat"))
    }
    # Ivana merged away: the item still carries her label, which is now to be taken off.
    store.review.merge_customers(ids["Ivana Horvat"], ids["Adriatic Foods"])
    assert store.sources.label_states(mail) == {
        "inbox/1": LabelState(("Adriatic Foods",), ("Adriatic Foods", "Ivana Horvat"))
    }
