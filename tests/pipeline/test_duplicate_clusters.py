"""The Review cluster workflow end to end: a customer list with address and birth-date
columns, one cluster suggested with its evidence, a subset accepted, the rest kept apart,
and the answer still holding when the workbook is imported again."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import openpyxl

from support.workbooks import save_like_excel
from syncd.config import parse_config
from syncd.pipeline import Pipeline
from syncd.store import Store

CONFIG = """
[service]
state_dir = "state"
[matching]
internal_domains = ["northwind.example"]
[[sources]]
name = "customers"
kind = "excel_customers"
path = "customers.xlsx"
key_columns = ["No"]
[sources.columns]
person = "Contact"
email = "E-mail"
street = "Street"
postcode = "Postcode"
city = "City"
birth_date = "Born"
"""

HEADER = ["No", "Contact", "E-mail", "Street", "Postcode", "City", "Born"]
ROWS = [
    [1, "Ana Kovač", "ana.kovac@firma.hr", "Ilica 12", "10000", "Zagreb", datetime(1985, 3, 12)],
    [2, "Ana Kovac", "", "Ilica 12", "10000", "Zagreb", "12.03.1985"],  # no accents, a text date
    [3, "Ана Ковач", "", "Ilica 12", "10000", "Zagreb", "19850312"],  # Cyrillic, a compact date
    [4, "Ana Kovač", "", "Savska 3", "10000", "Zagreb", "01.07.1990"],  # a namesake: another person
    [5, "Marko Babić", "", "Korzo 1", "51000", "Rijeka", "31.02.1980"],  # no such day
]


def sheet(path: Path, rows: list[list[object]]) -> None:
    book = openpyxl.Workbook()
    book.active.append(HEADER)
    for row in rows:
        book.active.append(row)
    book.save(path)


def merge_rows(path: Path) -> list[tuple]:
    book = openpyxl.load_workbook(path, read_only=True)
    try:
        rows = [r for r in book["Review"].iter_rows(min_row=2, values_only=True) if len(r) > 5 and r[5]]
    finally:
        book.close()
    return [r for r in rows if str(r[5]).startswith("M")]


def answer(path: Path, ref: str, text: str) -> None:
    book = openpyxl.load_workbook(path)
    review = book["Review"]
    for row in range(2, review.max_row + 1):
        if review.cell(row, 6).value == ref:
            review.cell(row, 8).value = text
    save_like_excel(book, path)


def test_a_cluster_is_suggested_once_a_subset_is_merged_and_the_answer_survives_reimport(tmp_path: Path) -> None:
    sheet(tmp_path / "customers.xlsx", ROWS)
    (tmp_path / "state").mkdir()
    config = parse_config(CONFIG, tmp_path / "syncd.toml")
    store = Store.open(config.store_url)
    Pipeline(config, store).run_pass()
    ids = {c.name: c.id for c in store.reads.customers()}
    by_key = {p.id: p for p in store.reads.customer_profiles()}
    assert by_key[ids["Ана Ковач"]].details.birth_date == by_key[ids["Ana Kovac"]].details.birth_date
    # The impossible date is quarantined naming the cell; Marko is still a customer.
    [problem] = store.reads.quarantine()
    assert "'Born'" in problem.reason and "31.02.1980" in problem.reason and "row 6" in problem.where
    assert "Marko Babić" in ids
    [first] = [cid for cid, p in by_key.items() if p.name == "Ana Kovač" and p.details.street == "Ilica 12"]
    second, third = ids["Ana Kovac"], ids["Ана Ковач"]
    [cluster] = merge_rows(tmp_path / "timeline.xlsx")
    ref = cluster[5]
    assert ref == f"M{third}-{second}-{first}"  # one suggestion for the group, the namesake left out
    assert f"(#{first})" in cluster[1] and f"(#{third})" in cluster[1]
    assert "same" in cluster[2] and "birth date" in cluster[2]
    assert cluster[6] == f"merge #{second} Ana Kovac, #{third} Ана Ковач into #{first} Ana Kovač"
    # The admin merges the Latin spellings and keeps the Cyrillic record apart.
    answer(tmp_path / "timeline.xlsx", ref, f"{first}, {second}")
    result = Pipeline(config, store).run_pass()
    assert result.learned == 1
    live = {c.name for c in store.reads.customers()}
    assert live == {"Ana Kovač", "Ана Ковач", "Marko Babić"} and len(store.reads.customers()) == 4
    assert merge_rows(tmp_path / "timeline.xlsx") == []  # first and third were said to differ
    # Imported again (a changed row, a new one): the merge and the "apart" hold.
    sheet(tmp_path / "customers.xlsx", [*ROWS[:4], [5, "Marko Babić", "", "Korzo 1", "51000", "Rijeka", None]])
    Pipeline(config, store).run_pass()
    assert {c.name for c in store.reads.customers()} == live
    assert merge_rows(tmp_path / "timeline.xlsx") == []
    assert store.reads.quarantine() == []  # the bad date is gone from the sheet, so is its entry
    store.close()


def test_an_answer_naming_a_stranger_is_pending_with_a_note_and_no_merges_nothing(tmp_path: Path) -> None:
    sheet(tmp_path / "customers.xlsx", ROWS[:3])
    (tmp_path / "state").mkdir()
    config = parse_config(CONFIG, tmp_path / "syncd.toml")
    store = Store.open(config.store_url)
    Pipeline(config, store).run_pass()
    [cluster] = merge_rows(tmp_path / "timeline.xlsx")
    answer(tmp_path / "timeline.xlsx", cluster[5], "1, 99")
    Pipeline(config, store).run_pass()
    [cluster] = merge_rows(tmp_path / "timeline.xlsx")
    assert "the IDs to merge" in cluster[8] and len(store.reads.customers()) == 3
    answer(tmp_path / "timeline.xlsx", cluster[5], "no")
    Pipeline(config, store).run_pass()
    assert merge_rows(tmp_path / "timeline.xlsx") == [] and len(store.reads.customers()) == 3
    store.close()
