"""A labeled set of customer names with realistic typos, and how the fuzzy-name rule does on it.

The generator makes company names the way a European customer list holds them (Croatian,
Polish, Serbian Cyrillic, Swedish, German, Italian and English words, legal forms such as
d.o.o., Sp. z o.o., AB, GmbH, S.r.l., Ltd) and then, for a share of them, the name as a
sales rep types it into an order or call sheet: a dropped, doubled or swapped letter, a
neighbouring key, accents left out, the legal form left out or written another way, words
in another order, other case. Negatives are names of companies that are *not* customers,
many sharing words with ones that are ("Adriatic Foods" vs "Adriatic Fish").

Each query runs through the real matcher (``link_activity`` with the row's customer name)
and is scored: an auto-link is right when it names the labeled customer; precision is
right auto-links over all auto-links, recall is right auto-links over queries that have a
customer; suggestion recall is how often the right customer is among the Review
suggestions when it was not auto-linked; found recall is the share of typo'd names whose
customer was either auto-linked or suggested.

Run:  python bench/fuzzy_names.py [--customers 20000] [--queries 5000]
Ends with one line of key=value figures. Target: precision >= 0.99.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path

# syncd itself comes from the installed package; only the test support code from the tree.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from syncd.mapping.matcher import CustomerIndex, MatchPolicy, link_activity, suggest_customers
from syncd.mapping.normalize import normalize_company_name

FIRST = [
    "Adriatic",
    "Jadran",
    "Dalmacija",
    "Baltic",
    "Bursztyn",
    "Mazowsze",
    "Wisła",
    "Nordic",
    "Svea",
    "Göta",
    "Alpine",
    "Tuscany",
    "Lombardia",
    "Danube",
    "Dunav",
    "Sava",
    "Drava",
    "Morava",
    "Beograd",
    "Нови Сад",
    "Београд",
    "Зрењанин",
    "Kraków",
    "Gdańsk",
    "Poznań",
    "Łódź",
    "Split",
    "Zagreb",
    "Osijek",
    "Rijeka",
    "Malmö",
    "Göteborg",
    "Uppsala",
    "Västerås",
    "Örebro",
    "Bavaria",
    "Rhein",
    "Elbe",
    "Atlas",
    "Orion",
    "Aurora",
    "Nova",
    "Stella",
    "Helios",
    "Titan",
    "Vega",
    "Sirius",
    "Polaris",
    "Zenit",
    "Borea",
    "Kvarner",
    "Istra",
    "Slavonija",
    "Podravka",
    "Lika",
    "Zagorje",
    "Medimurje",
    "Pomorze",
    "Śląsk",
    "Warmia",
]
SECOND = [
    "Foods",
    "Fish",
    "Wines",
    "Trade",
    "Trading",
    "Logistics",
    "Transport",
    "Ceramics",
    "Textiles",
    "Dairy",
    "Bakery",
    "Pekara",
    "Mlin",
    "Vina",
    "Riba",
    "Drvo",
    "Metal",
    "Metali",
    "Plastika",
    "Energija",
    "Budownictwo",
    "Handel",
    "Usługi",
    "Piekarnia",
    "Mleczarnia",
    "Stal",
    "Trä",
    "Bygg",
    "Livs",
    "Fisk",
    "Handel",
    "Verkstad",
    "Maschinenbau",
    "Holz",
    "Getränke",
    "Vini",
    "Ceramiche",
    "Tessile",
    "Трговина",
    "Превоз",
    "Млекара",
    "Пекара",
    "Grupa",
    "Group",
    "Systems",
    "Solutions",
    "Pharma",
    "Farmacija",
    "Medical",
    "Agro",
    "Agrar",
    "Tehnika",
    "Technika",
    "Elektro",
    "Print",
    "Tisak",
    "Druk",
    "Design",
    "Dizajn",
]
THIRD = [
    "",
    "",
    "",
    "",
    "International",
    "Export",
    "Centar",
    "Polska",
    "Sverige",
    "Hrvatska",
    "Srbija",
    "Nord",
    "Sud",
    "Plus",
    "Pro",
    "& Co",
    "i sinovi",
    "i Partneri",
    "Holding",
    "Service",
]
FOURTH = [
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "Zagreb",
    "Warszawa",
    "Stockholm",
    "Wien",
    "Milano",
    "Београд",
    "Split",
    "Gdynia",
    "Luleå",
    "Graz",
    "Torino",
    "Ниш",
    "Rijeka",
    "Wrocław",
    "Umeå",
    "Linz",
    "Napoli",
    "Нови Сад",
    "Zadar",
    "Lublin",
    "Kalmar",
    "Salzburg",
    "Verona",
]
LEGAL = {
    "hr": ["d.o.o.", "d.d.", "j.d.o.o."],
    "pl": ["Sp. z o.o.", "S.A.", "sp.k."],
    "sr": ["д.о.о.", "доо", "a.d."],
    "se": ["AB", "Aktiebolag", "HB"],
    "de": ["GmbH", "AG", "KG"],
    "it": ["S.r.l.", "S.p.A."],
    "en": ["Ltd", "Limited", "LLC", "Inc."],
}
LEGAL_SWAP = {
    "d.o.o.": "doo",
    "Sp. z o.o.": "sp. z o. o.",
    "GmbH": "Gmbh",
    "S.r.l.": "SRL",
    "Ltd": "Ltd.",
    "AB": "Aktiebolag",
    "д.о.о.": "доо",
    "S.A.": "SA",
    "d.d.": "dd",
}
KEYBOARD = {
    c: n for row in ("qwertyuiop", "asdfghjkl", "zxcvbnm") for c, n in zip(row, row[1:] + row[-2], strict=False)
}


@dataclass(frozen=True)
class Query:
    text: str
    customer_id: int | None  # None: no customer has this name


def company_name(rng: random.Random) -> str:
    words = [rng.choice(FIRST), rng.choice(SECOND)]
    words += [w for w in (rng.choice(THIRD), rng.choice(FOURTH)) if w]
    return " ".join(words) + " " + rng.choice(LEGAL[rng.choice(list(LEGAL))])


def _strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def misspell(name: str, rng: random.Random) -> str:
    """One or two edits a person makes typing a name."""
    words = name.split()
    legal_start = next(
        (
            i
            for i, w in enumerate(words)
            if any(w.startswith(f.split()[0]) for fs in LEGAL.values() for f in fs) and i >= 2
        ),
        len(words),
    )
    core, legal = words[:legal_start], words[legal_start:]
    edits = rng.choice([1, 1, 1, 2])
    for _ in range(edits):
        kind = rng.choice(["drop", "double", "swap", "neighbour", "accents", "legal", "order", "case"])
        target = rng.randrange(len(core))
        word = core[target]
        if kind in ("drop", "double", "swap", "neighbour") and len(word) > 3:
            i = rng.randrange(1, len(word) - 1)
            if kind == "drop":
                word = word[:i] + word[i + 1 :]
            elif kind == "double":
                word = word[:i] + word[i] + word[i:]
            elif kind == "swap":
                word = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
            else:
                word = word[:i] + KEYBOARD.get(word[i].lower(), word[i]) + word[i + 1 :]
            core[target] = word
        elif kind == "accents":
            core = [_strip_accents(w) for w in core]
        elif kind == "legal":
            legal = [] if rng.random() < 0.5 else LEGAL_SWAP.get(" ".join(legal), " ".join(legal)).split()
        elif kind == "order" and len(core) > 1:
            core = core[1:] + core[:1]
        else:
            core = [w.upper() if rng.random() < 0.5 else w.lower() for w in core]
    return " ".join(core + legal)


def generate(customers: int, queries: int, seed: int = 7) -> tuple[list[tuple[int, str]], list[Query]]:
    """(customer id, name) pairs and labeled queries: 70% typos of customers, 30% non-customers."""
    rng = random.Random(seed)
    names: dict[str, int] = {}
    pairs: list[tuple[int, str]] = []
    # Names are distinct once normalized: "Gdańsk Ceramiche Ltd" and "Gdańsk Ceramiche sp.k."
    # are the same company to anyone reading them, so they cannot be two labels.
    attempts = 0
    while len(pairs) < customers:
        attempts += 1
        if attempts > customers * 50:
            raise ValueError(f"cannot make {customers} distinct names from the word lists")
        name = company_name(rng)
        normalized = normalize_company_name(name)
        if normalized not in names:
            names[normalized] = len(pairs)
            pairs.append((len(pairs), name))
    out: list[Query] = []
    while len(out) < queries:
        if rng.random() < 0.7:
            cid, name = rng.choice(pairs)
            out.append(Query(misspell(name, rng), cid))
        else:
            name = company_name(rng)
            if normalize_company_name(name) not in names:
                out.append(Query(name, None))
    return pairs, out


def evaluate(pairs: list[tuple[int, str]], queries: list[Query], policy: MatchPolicy) -> dict[str, float]:
    customers = [(cid, "company", name, None) for cid, name in pairs]
    index = CustomerIndex.build([], customers, policy)
    index.fuzzy  # noqa: B018 - build the name tables before timing
    names = {cid: name for cid, name in pairs}
    linked = right = positives = suggested_right = suggestable = 0
    wrong_examples: list[str] = []
    started = time.perf_counter()
    for query in queries:
        links = link_activity((), {"customer-ref": query.text}, index, policy)
        if query.customer_id is not None:
            positives += 1
        if links:
            linked += 1
            if query.customer_id is not None and links[0].customer_id == query.customer_id:
                right += 1
            elif len(wrong_examples) < 5:
                got = names[links[0].customer_id]
                wrong_examples.append(
                    f"{query.text!r} -> {got!r} (label: "
                    f"{names.get(query.customer_id) if query.customer_id is not None else 'none'})"
                )
        elif query.customer_id is not None:
            suggestable += 1
            found = suggest_customers((), {"customer-ref": query.text}, index, policy, limit=3)
            if any(cid == query.customer_id for cid, _score in found):
                suggested_right += 1
    seconds = time.perf_counter() - started
    for example in wrong_examples:
        print("  wrong auto-link:", example)
    return {
        "precision": right / linked if linked else 1.0,
        "recall": right / positives if positives else 0.0,
        "suggestion_recall": suggested_right / suggestable if suggestable else 1.0,
        "found_recall": (right + suggested_right) / positives if positives else 0.0,
        "auto_linked": linked,
        "queries_per_s": len(queries) / seconds,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=5_000)
    parser.add_argument("--auto-link", type=float, default=MatchPolicy().fuzzy_auto_link)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    pairs, queries = generate(args.customers, args.queries, args.seed)
    policy = MatchPolicy(fuzzy_auto_link=args.auto_link)
    figures = evaluate(pairs, queries, policy)
    print(
        f"customers={args.customers} queries={args.queries} auto_link={args.auto_link} "
        f"precision={figures['precision']:.4f} recall={figures['recall']:.4f} "
        f"suggestion_recall={figures['suggestion_recall']:.4f} found_recall={figures['found_recall']:.4f} "
        f"queries_per_s={figures['queries_per_s']:.0f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
