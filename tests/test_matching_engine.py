"""The matching engine end to end: re-matching when customers change, contact auto-creation,
duplicate customers and merges."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import openpyxl

from syncd.config import parse_config
from syncd.pipeline import Pipeline
from syncd.store import Store
from tests.helpers import BASE_TIME, make_message, write_maildir

CONFIG = """
[service]
state_dir = "state"
[matching]
internal_domains = ["northwind.example"]
auto_create_contacts = "{policy}"
[[sources]]
name = "customers"
kind = "excel_customers"
path = "customers.xlsx"
[sources.columns]
company = "Company"
person = "Contact"
email = "E-mail"
domain = "Website"
[[sources]]
name = "mail"
kind = "maildir"
path = "mail"
owner = "alice@northwind.example"
"""


def customers_sheet(path: Path, rows: list[list[object]]) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Company", "Contact", "E-mail", "Website"])
    for row in rows:
        sheet.append(row)
    book.save(path)


def pipeline(tmp_path: Path, policy: str = "none") -> tuple[Pipeline, Store]:
    (tmp_path / "state").mkdir(exist_ok=True)
    config = parse_config(CONFIG.format(policy=policy), tmp_path / "syncd.toml")
    store = Store.open(config.store_url)
    return Pipeline(config, store), store


def links(store: Store) -> dict[str, list[str]]:
    return {a["subject"]: sorted(c["name"] for c in a["customers"]) for a in store.activities()}


def mail(n: int, sender: str, to: str = "alice@northwind.example", subject: str | None = None) -> bytes:
    return make_message(n, sender=sender, to=to, subject=subject or f"Mail {n}", when=BASE_TIME + timedelta(hours=n))


def test_a_new_customer_row_links_that_customers_past_mail_without_rereading_mail(tmp_path: Path) -> None:
    customers_sheet(tmp_path / "customers.xlsx", [["Adriatic Foods", "Ivana Horvat", "ivana@adriaticfoods.hr",
                                                   "adriaticfoods.hr"]])
    write_maildir(tmp_path / "mail", {"1": mail(1, "Petra Novak <petra@balticamber.pl>"),
                                      "2": mail(2, "ivana@adriaticfoods.hr")})
    run, store = pipeline(tmp_path)
    run.run_pass()
    assert links(store) == {"Mail 1": [], "Mail 2": ["Adriatic Foods", "Ivana Horvat"]}
    customers_sheet(tmp_path / "customers.xlsx", [["Adriatic Foods", "Ivana Horvat", "ivana@adriaticfoods.hr",
                                                   "adriaticfoods.hr"],
                                                  ["Baltic Amber", None, None, "balticamber.pl"]])
    result = run.run_pass()
    mail_source = next(s for s in result.sources if s.name == "mail")
    assert mail_source.new == 0 and mail_source.updated == 0  # the mailbox was not read again
    assert links(store)["Mail 1"] == ["Baltic Amber"]
    store.close()


def test_auto_creation_both_ways_adds_only_people_we_exchanged_mail_with(tmp_path: Path) -> None:
    customers_sheet(tmp_path / "customers.xlsx", [["Adriatic Foods", None, None, "adriaticfoods.hr"]])
    write_maildir(tmp_path / "mail", {
        "1": mail(1, "Marko Babić <marko@adriaticfoods.hr>"),  # writes, we answer (below): both ways
        "2": mail(2, "Newsletter Person <news.person@promo.example>"),  # writes, never answered
        "3": mail(3, "noreply@adriaticfoods.hr"),  # automated: never a contact
    })
    write_maildir(tmp_path / "mail", {"4": mail(4, "alice@northwind.example", to="marko@adriaticfoods.hr",
                                                subject="Re: Mail 1")}, folder="Sent")
    run, store = pipeline(tmp_path, "both-ways")
    run.run_pass()
    people = {c.name: c for c in store.customer_rows() if c.kind == "person"}
    assert list(people) == ["Marko Babić"]
    company = next(c for c in store.customer_rows() if c.name == "Adriatic Foods")
    assert people["Marko Babić"].company_id == company.id  # joined the company of his domain
    assert links(store)["Mail 1"] == ["Adriatic Foods", "Marko Babić"]
    store.close()


def test_auto_creation_inbound_adds_whoever_writes_but_not_automated_senders(tmp_path: Path) -> None:
    customers_sheet(tmp_path / "customers.xlsx", [["Adriatic Foods", None, None, "adriaticfoods.hr"]])
    write_maildir(tmp_path / "mail", {
        "1": mail(1, "Tom Jones <tomjones1987@gmail.com>"),
        "2": mail(2, "noreply@shop.example"),
    })
    run, store = pipeline(tmp_path, "inbound")
    run.run_pass()
    people = [c for c in store.customer_rows() if c.kind == "person"]
    assert [(p.name, p.company_id) for p in people] == [("Tom Jones", None)]  # free mail: no company
    assert links(store)["Mail 1"] == ["Tom Jones"]
    again = run.run_pass()
    assert again.rematched == 0 and len([c for c in store.customer_rows() if c.kind == "person"]) == 1
    store.close()
