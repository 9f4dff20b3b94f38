"""`syncd demo` end to end, on the bundled sample, through the real command line."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import openpyxl
import pytest
import sqlalchemy as sa

from support.helpers import run_syncd
from syncd.sample.generate import CONTACTS, QUIET


def tree_digest(root: Path, exclude: set[str]) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.relative_to(root).parts[0] not in exclude
    }


def sheet_values(path: Path) -> dict[str, list[tuple]]:
    workbook = openpyxl.load_workbook(path, read_only=True)
    try:
        return {ws.title: [tuple(r) for r in ws.iter_rows(values_only=True)] for ws in workbook.worksheets}
    finally:
        workbook.close()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("demo") / "syncd-demo"
    result = run_syncd("demo", "--dir", str(target))
    assert result.returncode == 0, result.stderr
    assert "timeline workbook:" in result.stdout
    return target


def db(demo: Path) -> sa.Engine:
    return sa.create_engine(f"sqlite:///{demo / 'state' / 'syncd.db'}")


def linked(engine: sa.Engine, email: str) -> list[tuple[str, str, str]]:
    """(customer name, customer kind, rule) for every link of every activity involving ``email``."""
    with engine.connect() as c:
        rows = c.execute(
            sa.text(
                "select a.participants, cu.name, cu.kind, l.rule from activities a "
                "join links l on l.activity_id = a.id join customers cu on cu.id = l.customer_id"
            )
        ).all()
    return [(name, kind, rule) for parts, name, kind, rule in rows if email in str(parts)]


def test_every_sample_customer_with_mail_has_timeline_rows(demo: Path) -> None:
    values = sheet_values(demo / "timeline.xlsx")
    timeline_customers = " ; ".join(str(row[1]) for row in values["Timeline"][1:])
    for contact in CONTACTS:
        assert (contact.person or contact.company) in timeline_customers, contact
    for contact in QUIET:
        assert contact.person not in timeline_customers
    customers = {row[0]: row for row in values["Customers"][1:]}
    assert customers["Quinn Silent"][5] is None  # no last contact
    assert customers["Adriatic Foods d.o.o."][9] > 0


def test_free_mail_sender_is_a_person_and_never_a_company(demo: Path) -> None:
    engine = db(demo)
    links = linked(engine, "marta.kovac@gmail.com")
    assert links and {(name, kind) for name, kind, _ in links} == {("Marta Kovač", "person")}
    assert linked(engine, "tomjones1987@gmail.com") == []
    with engine.connect() as c:
        names = [n.lower() for (n,) in c.execute(sa.text("select name from customers"))]
    assert not any("gmail" in n for n in names)
    review = sheet_values(demo / "timeline.xlsx")["Review"]
    assert [row[2] for row in review[1:] if not str(row[5]).startswith("M")] == ["tomjones1987@gmail.com"]


def test_the_demo_shows_a_duplicate_cluster_and_consent(demo: Path) -> None:
    values = sheet_values(demo / "timeline.xlsx")
    [cluster] = [row for row in values["Review"][1:] if str(row[5]).startswith("M")]
    assert "Ivana Horvat" in cluster[1] and "birth date" in cluster[2] and "city" in cluster[2]
    header, *rows = values["Customers"]
    column = header.index("Consent")
    consent = [row[column] if len(row) > column else None for row in rows]
    assert "consent" in consent and "contract" in consent and "legitimate interest" in consent


def test_internal_only_thread_and_automated_mail_are_absent(demo: Path) -> None:
    with db(demo).connect() as c:
        subjects = [s for (s,) in c.execute(sa.text("select subject from activities"))]
    assert not any("Team lunch" in s for s in subjects)
    assert "Your order has shipped" not in subjects
    status = json.loads(run_syncd("status", "--json", "-c", str(demo / "syncd.toml")).stdout)
    skipped = {s["name"]: s["skipped"] for s in status["sources"]}
    assert skipped["alice-mail"] == {"internal-only": 3, "automated": 1}


def test_message_to_two_customers_links_both_and_odd_charsets_are_decoded(demo: Path) -> None:
    with db(demo).connect() as c:
        rows = c.execute(
            sa.text(
                "select cu.name from activities a join links l on l.activity_id = a.id "
                "join customers cu on cu.id = l.customer_id where a.subject = 'Joint shipment from Rijeka'"
            )
        ).all()
        subjects = {s for (s,) in c.execute(sa.text("select subject from activities"))}
    assert {"Adriatic Foods d.o.o.", "Nordic Retail AB", "Ivana Horvat", "Erik Johansson"} <= {r[0] for r in rows}
    assert "Ponuda za žitarice i čaj" in subjects
    assert "Zamówienie drewna" in subjects


def test_malformed_message_is_quarantined_with_a_reason(demo: Path) -> None:
    result = run_syncd("quarantine", "--json", "-c", str(demo / "syncd.toml"))
    [item] = json.loads(result.stdout)
    assert item["source"] == "bob-mail" and "no valid From/To/Cc address" in item["reason"]


def test_status_json_agrees_with_the_store(demo: Path) -> None:
    result = run_syncd("status", "--json", "-c", str(demo / "syncd.toml"))
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    with db(demo).connect() as c:

        def count(sql: str) -> int:
            return c.execute(sa.text(sql)).scalar_one()

        assert status["customers"] == count("select count(*) from customers where gone_at is null")
        assert status["activities"] == count("select count(*) from activities where gone_at is null")
        assert status["unmatched"] == count(
            "select count(*) from activities where gone_at is null and id not in (select activity_id from links)"
        )
        assert status["quarantined"] == count("select count(*) from quarantine") == 1
        per_source = dict(
            c.execute(
                sa.text(
                    "select s.name, count(o.id) from sources s join occurrences o on o.source_id = s.id group by s.name"
                )
            ).all()
        )
    for source in status["sources"]:
        assert set(source) >= {"name", "kind", "last_sync", "ingested", "quarantined", "error"}
        if source["kind"] == "maildir":
            assert source["ingested"] == per_source[source["name"]]
        assert source["error"] is None and source["last_sync"]
    assert status["activities"] >= 200 and status["customers"] >= 20


def test_second_run_changes_nothing_and_a_fresh_state_gives_the_same_timeline(demo: Path) -> None:
    config = str(demo / "syncd.toml")
    workbook = demo / "timeline.xlsx"
    before_stat, before_values = workbook.stat(), sheet_values(workbook)
    status_before = run_syncd("status", "--json", "-c", config).stdout
    staff_files = tree_digest(demo, exclude={"state", "timeline.xlsx"})
    result = run_syncd("sync", "--once", "-c", config)
    assert result.returncode == 0, result.stderr
    assert "new=0 updated=0 removed=0" in result.stdout and "(unchanged)" in result.stdout
    assert workbook.stat().st_mtime_ns == before_stat.st_mtime_ns and workbook.stat().st_ino == before_stat.st_ino
    assert (
        json.loads(run_syncd("status", "--json", "-c", config).stdout)["activities"]
        == json.loads(status_before)["activities"]
    )
    shutil.rmtree(demo / "state")
    workbook.unlink()
    result = run_syncd("sync", "--once", "-c", config)
    assert result.returncode == 0, result.stderr
    assert sheet_values(workbook) == before_values
    # The staff's files (customer workbook, mail) are byte-identical after every kind of run.
    assert tree_digest(demo, exclude={"state", "timeline.xlsx"}) == staff_files


def test_timeline_command_shows_one_customers_history_newest_first(demo: Path) -> None:
    result = run_syncd("timeline", "marta.kovac@gmail.com", "--json", "-c", str(demo / "syncd.toml"))
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [c["name"] for c in data["customers"]] == ["Marta Kovač"]
    dates = [a["occurred_at"] for a in data["activities"]]
    assert dates == sorted(dates, reverse=True) and len(dates) >= 2
    missing = run_syncd("timeline", "nobody-like-this", "-c", str(demo / "syncd.toml"))
    assert missing.returncode == 4
