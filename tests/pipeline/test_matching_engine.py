"""The matching engine end to end: re-matching when customers change, contact auto-creation,
duplicate customers and merges."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import openpyxl

from support.helpers import BASE_TIME, make_message, write_maildir
from syncd.config import parse_config
from syncd.pipeline import Pipeline
from syncd.store import Store

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
    return {a.subject: sorted(c.name for c in a.customers) for a in store.reads.activities()}


def mail(n: int, sender: str, to: str = "alice@northwind.example", subject: str | None = None) -> bytes:
    return make_message(n, sender=sender, to=to, subject=subject or f"Mail {n}", when=BASE_TIME + timedelta(hours=n))


def test_a_new_customer_row_links_that_customers_past_mail_without_rereading_mail(tmp_path: Path) -> None:
    customers_sheet(
        tmp_path / "customers.xlsx", [["Adriatic Foods", "Ivana Horvat", "ivana@adriaticfoods.hr", "adriaticfoods.hr"]]
    )
    write_maildir(
        tmp_path / "mail", {"1": mail(1, "Petra Novak <petra@balticamber.pl>"), "2": mail(2, "ivana@adriaticfoods.hr")}
    )
    run, store = pipeline(tmp_path)
    run.run_pass()
    assert links(store) == {"Mail 1": [], "Mail 2": ["Adriatic Foods", "Ivana Horvat"]}
    customers_sheet(
        tmp_path / "customers.xlsx",
        [
            ["Adriatic Foods", "Ivana Horvat", "ivana@adriaticfoods.hr", "adriaticfoods.hr"],
            ["Baltic Amber", None, None, "balticamber.pl"],
        ],
    )
    result = run.run_pass()
    mail_source = next(s for s in result.sources if s.name == "mail")
    assert mail_source.new == 0 and mail_source.updated == 0  # the mailbox was not read again
    assert links(store)["Mail 1"] == ["Baltic Amber"]
    store.close()


def test_auto_creation_both_ways_adds_only_people_we_exchanged_mail_with(tmp_path: Path) -> None:
    customers_sheet(tmp_path / "customers.xlsx", [["Adriatic Foods", None, None, "adriaticfoods.hr"]])
    write_maildir(
        tmp_path / "mail",
        {
            "1": mail(1, "Marko Babić <marko@adriaticfoods.hr>"),  # writes, we answer (below): both ways
            "2": mail(2, "Newsletter Person <news.person@promo.example>"),  # writes, never answered
            "3": mail(3, "noreply@adriaticfoods.hr"),  # automated: never a contact
        },
    )
    write_maildir(
        tmp_path / "mail",
        {"4": mail(4, "alice@northwind.example", to="marko@adriaticfoods.hr", subject="Re: Mail 1")},
        folder="Sent",
    )
    run, store = pipeline(tmp_path, "both-ways")
    run.run_pass()
    people = {c.name: c for c in store.reads.customers() if c.kind == "person"}
    assert list(people) == ["Marko Babić"]
    company = next(c for c in store.reads.customers() if c.name == "Adriatic Foods")
    assert people["Marko Babić"].company_id == company.id  # joined the company of his domain
    assert links(store)["Mail 1"] == ["Adriatic Foods", "Marko Babić"]
    store.close()


def test_auto_creation_inbound_adds_whoever_writes_but_not_automated_senders(tmp_path: Path) -> None:
    customers_sheet(tmp_path / "customers.xlsx", [["Adriatic Foods", None, None, "adriaticfoods.hr"]])
    write_maildir(
        tmp_path / "mail",
        {
            "1": mail(1, "Tom Jones <tomjones1987@gmail.com>"),
            "2": mail(2, "noreply@shop.example"),
        },
    )
    run, store = pipeline(tmp_path, "inbound")
    run.run_pass()
    people = [c for c in store.reads.customers() if c.kind == "person"]
    assert [(p.name, p.company_id) for p in people] == [("Tom Jones", None)]  # free mail: no company
    assert links(store)["Mail 1"] == ["Tom Jones"]
    again = run.run_pass()
    assert again.rematched == 0 and len([c for c in store.reads.customers() if c.kind == "person"]) == 1
    store.close()


TWO_SHEETS = CONFIG.replace(
    '''[[sources]]
name = "mail"''',
    '''[[sources]]
name = "crm-export"
kind = "excel_customers"
path = "export.xlsx"
[sources.columns]
company = "Company"
person = "Contact"
email = "E-mail"
domain = "Website"

[[sources]]
name = "mail"''',
)


def review_rows(path: Path) -> list[tuple]:
    book = openpyxl.load_workbook(path, read_only=True)
    try:
        return [r for r in book["Review"].iter_rows(min_row=2, values_only=True) if len(r) > 5 and r[5]]
    finally:
        book.close()


def answer_review(path: Path, answers: dict[str, str]) -> None:
    from support.workbooks import save_like_excel

    book = openpyxl.load_workbook(path)
    sheet = book["Review"]
    for row in range(2, sheet.max_row + 1):
        ref = sheet.cell(row, 6).value
        if ref in answers:
            sheet.cell(row, 8).value = answers[ref]
    save_like_excel(book, path)


def test_duplicates_across_workbooks_are_suggested_on_review_and_a_merge_keeps_everything(tmp_path: Path) -> None:
    customers_sheet(
        tmp_path / "customers.xlsx",
        [["Adriatic Foods d.o.o.", "Ivana Horvat", "ivana@adriaticfoods.hr", "adriaticfoods.hr"]],
    )
    customers_sheet(
        tmp_path / "export.xlsx",
        [
            ["ADRIATIC FOODS", "Ivana H.", "ivana@adriaticfoods.hr; ivana.h@gmail.com", None],
            ["Baltic Amber", None, None, "balticamber.pl"],
        ],
    )
    write_maildir(tmp_path / "mail", {"1": mail(1, "ivana.h@gmail.com"), "2": mail(2, "ivana@adriaticfoods.hr")})
    (tmp_path / "state").mkdir()
    config = parse_config(TWO_SHEETS.format(policy="none"), tmp_path / "syncd.toml")
    store = Store.open(config.store_url)
    run = Pipeline(config, store)
    run.run_pass()
    ids = {c.name: c.id for c in store.reads.customers()}
    suggestions = {r[5]: r for r in review_rows(tmp_path / "timeline.xlsx") if r[5].startswith("M")}
    company_ref = f"M{ids['ADRIATIC FOODS']}-{ids['Adriatic Foods d.o.o.']}"
    person_ref = f"M{ids['Ivana H.']}-{ids['Ivana Horvat']}"
    assert set(suggestions) == {company_ref, person_ref}
    assert "both have the email ivana@adriaticfoods.hr" == suggestions[person_ref][2]
    assert "same name" in suggestions[company_ref][2]
    assert links(store)["Mail 1"] == ["ADRIATIC FOODS", "Ivana H."]  # by the export's gmail address
    answer_review(tmp_path / "timeline.xlsx", {company_ref: "merge", person_ref: "yes"})
    run = Pipeline(config, store)
    result = run.run_pass()
    assert result.learned == 2
    live = {c.name for c in store.reads.customers()}
    assert live == {"Adriatic Foods d.o.o.", "Ivana Horvat", "Baltic Amber"}
    # Every activity and identity is kept, on the survivors.
    assert links(store) == {
        "Mail 1": ["Adriatic Foods d.o.o.", "Ivana Horvat"],
        "Mail 2": ["Adriatic Foods d.o.o.", "Ivana Horvat"],
    }
    emails = {v for cid, kind, v in store.reads.identity_rows() if cid == ids["Ivana Horvat"]}
    assert emails == {"ivana@adriaticfoods.hr", "ivana.h@gmail.com"}
    assert not [r for r in review_rows(tmp_path / "timeline.xlsx") if r[5].startswith("M")]
    # The merged rows are read again unchanged, and again after an edit: they stay merged.
    customers_sheet(
        tmp_path / "export.xlsx",
        [
            ["ADRIATIC FOODS", "Ivana H.", "ivana@adriaticfoods.hr; ivana.h@gmail.com; ih@adriaticfoods.hr", None],
            ["Baltic Amber", None, None, "balticamber.pl"],
        ],
    )
    Pipeline(config, store).run_pass()
    assert {c.name for c in store.reads.customers()} == live
    emails = {v for cid, kind, v in store.reads.identity_rows() if cid == ids["Ivana Horvat"]}
    assert "ih@adriaticfoods.hr" in emails
    store.close()


def test_no_dismisses_a_suggestion_and_syncd_merge_merges_from_the_command_line(tmp_path: Path) -> None:
    from support.helpers import run_syncd, write_config

    customers_sheet(tmp_path / "customers.xlsx", [["Adriatic Foods d.o.o.", None, None, "adriaticfoods.hr"]])
    customers_sheet(tmp_path / "export.xlsx", [["Adriatic Food", None, None, "adriatic-food.hr"]])
    write_maildir(tmp_path / "mail", {"1": mail(1, "info@adriatic-food.hr")})
    config = write_config(tmp_path / "syncd.toml", TWO_SHEETS.format(policy="none"))
    assert run_syncd("sync", "--once", "-c", str(config)).returncode == 0
    [suggestion] = [r for r in review_rows(tmp_path / "timeline.xlsx") if r[5].startswith("M")]
    assert suggestion[2].startswith("near-identical names")
    answer_review(tmp_path / "timeline.xlsx", {suggestion[5]: "no"})
    assert run_syncd("sync", "--once", "-c", str(config)).returncode == 0
    assert not [r for r in review_rows(tmp_path / "timeline.xlsx") if r[5].startswith("M")]
    merged = run_syncd("merge", "Adriatic Food", "Adriatic Foods d.o.o.", "-c", str(config))
    assert merged.returncode == 0, merged.stderr
    assert "merged #2 Adriatic Food into #1 Adriatic Foods d.o.o.: 1 links, 1 identities" in merged.stdout
    timeline = openpyxl.load_workbook(tmp_path / "timeline.xlsx", read_only=True)
    [row] = list(timeline["Timeline"].iter_rows(min_row=2, values_only=True))
    assert row[1] == "Adriatic Foods d.o.o."
    missing = run_syncd("merge", "Nobody Ltd", "1", "-c", str(config))
    assert missing.returncode != 0 and "no customer named 'Nobody Ltd'" in missing.stderr


def test_the_service_reuses_the_matcher_index_until_customers_change(tmp_path: Path) -> None:
    from syncd.pipeline import IndexCache

    customers_sheet(tmp_path / "customers.xlsx", [["Adriatic Foods", None, None, "adriaticfoods.hr"]])
    write_maildir(tmp_path / "mail", {"1": mail(1, "ivana@adriaticfoods.hr")})
    (tmp_path / "state").mkdir()
    config = parse_config(CONFIG.format(policy="none"), tmp_path / "syncd.toml")
    store = Store.open(config.store_url)
    cache = IndexCache()
    Pipeline(config, store, index_cache=cache).run_pass()
    built = cache.index
    Pipeline(config, store, index_cache=cache).run_pass()
    assert cache.index is built  # nothing changed: not rebuilt
    customers_sheet(
        tmp_path / "customers.xlsx",
        [["Adriatic Foods", None, None, "adriaticfoods.hr"], ["Baltic Amber", None, None, "balticamber.pl"]],
    )
    Pipeline(config, store, index_cache=cache).run_pass()
    assert cache.index is not built and "Baltic Amber" in cache.index.names.values()
    store.close()


def test_turning_auto_creation_on_later_counts_the_mail_already_stored(tmp_path: Path) -> None:
    customers_sheet(tmp_path / "customers.xlsx", [["Adriatic Foods", None, None, "adriaticfoods.hr"]])
    write_maildir(tmp_path / "mail", {"1": mail(1, "Marko Babić <marko@adriaticfoods.hr>")})
    run, store = pipeline(tmp_path, "none")
    run.run_pass()
    assert [c.kind for c in store.reads.customers()] == ["company"]
    store.close()
    (tmp_path / "syncd.toml").unlink(missing_ok=True)
    run, store = pipeline(tmp_path, "inbound")
    run.run_pass()  # no new mail in this pass
    assert [c.name for c in store.reads.customers() if c.kind == "person"] == ["Marko Babić"]
    store.close()


def test_a_new_config_rule_applies_to_stored_mail_on_a_full_rematch(tmp_path: Path) -> None:
    customers_sheet(tmp_path / "customers.xlsx", [["Adriatic Foods", None, None, "adriaticfoods.hr"]])
    write_maildir(tmp_path / "mail", {"1": mail(1, "Tom <tomjones1987@gmail.com>")})
    run, store = pipeline(tmp_path)
    run.run_pass()
    assert links(store)["Mail 1"] == []
    (tmp_path / "state").mkdir(exist_ok=True)
    text = CONFIG.format(policy="none").replace(
        'auto_create_contacts = "none"',
        '''auto_create_contacts = "none"
[[matching.rules]]
email = "tomjones1987@gmail.com"
customer = "Adriatic Foods"''',
    )
    config = parse_config(text, tmp_path / "syncd.toml")  # what the service reloads
    assert run.run_pass().rematched == 0  # the old config: nothing changes
    result = Pipeline(config, store).run_pass(rematch_all=True)
    assert result.rematched == 1 and links(store)["Mail 1"] == ["Adriatic Foods"]
    store.close()
