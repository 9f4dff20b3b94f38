"""Record linkage of customers: which two records are one company or one person.

A classic Fellegi–Sunter pipeline, as record-linkage practice has it since 1969:

1. **Blocking** on several keys (name prefixes in either word order, the end of the
   surname, birth date, postcode with house number, tax id, phone, website, email local
   part), so 100,000 customers are compared in a few hundred thousand pairs, not five
   billion, and a typo that breaks one key is caught by another.
2. **Comparison** of each candidate pair field by field into levels (2 agree, 1 close,
   0 disagree, None when either side is empty): Jaro-Winkler for names, streets and
   cities (rapidfuzz), exact or one-edit for postcodes and ids, dates with transposed
   digits and swapped day and month counted as close.
3. **Classification** by Fellegi–Sunter weights whose m and u probabilities are estimated
   from the pairs themselves by expectation-maximisation (no labelled data), with
   pseudo-counts towards sensible defaults so a list of twenty customers behaves.

Evidence against is not outweighed: a different birth date, a different tax id, or two
people at two different companies make a pair two customers whatever else agrees, and a
name alone is never enough for two people (namesakes are common). Pure functions.

Why not recordlinkage or splink: they bring pandas, numpy and scikit-learn (or duckdb)
into a daemon for what is here a few hundred lines; ``bench/duplicates.py`` runs
recordlinkage's classic pipeline beside this one on the same data.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date

from rapidfuzz.distance import JaroWinkler, Levenshtein

from syncd.mapping.fuzzy import name_score
from syncd.mapping.normalize import normalize_company_name, registrable_domain, transliterate
from syncd.model.views import CustomerProfile

AGREE, CLOSE, DISAGREE = 2, 1, 0
MAX_BLOCK = 40  # a block this large ("smith" born anywhere) is skipped: other keys remain
MATCH_PROBABILITY = 0.9  # the posterior a pair needs to be the same customer
PERSON_FIELDS = ("first", "last", "company", "street", "postcode", "city", "birth", "tax", "phone", "email", "web")
COMPANY_FIELDS = ("name", "street", "postcode", "city", "tax", "phone", "web")
NAME_FIELDS = frozenset({"first", "last", "name"})
TOWN_FIELDS = frozenset({"postcode", "city"})  # shared by thousands: never evidence on their own

_TITLES = frozenset({"mr", "mrs", "ms", "dr", "prof", "ing", "mag", "dipl", "sir", "jr", "sr"})
_STREET_WORDS = {
    "street": "st",
    "str": "st",
    "road": "rd",
    "avenue": "ave",
    "av": "ave",
    "drive": "dr",
    "place": "pl",
    "court": "ct",
    "crescent": "cres",
    "ulica": "ul",
    "cesta": "c",
    "gatan": "g",
    "vagen": "v",
    "strasse": "st",
}
_GENERIC_LOCALS = frozenset({"info", "office", "sales", "contact", "kontakt", "mail", "admin", "hello", "ured"})
_DIGITS = re.compile(r"\d+")
_NOT_ALNUM = re.compile(r"[^0-9a-z]+")


@dataclass(frozen=True, slots=True)
class Prepared:
    """A customer's fields, normalized once for comparing."""

    id: int
    kind: str
    name: str
    first: str
    last: str
    company_id: int | None
    street: str
    number: str
    postcode: str
    city: str
    birth: date | None
    birth_digits: str  # "19850312": compared digit by digit
    tax: str
    web: str
    phones: frozenset[str]
    locals: frozenset[str]


def _person_words(name: str) -> list[str]:
    words = [w for w in _NOT_ALNUM.split(transliterate(name)) if w and w not in _TITLES]
    return words


def _street(text: str) -> tuple[str, str]:
    """(street name, house numbers) of ``'94 Smith Street'`` -> ``('smith st', '94')``."""
    folded = transliterate(text)
    numbers = " ".join(_DIGITS.findall(folded))
    words = [_STREET_WORDS.get(w, w) for w in _NOT_ALNUM.split(_DIGITS.sub(" ", folded)) if w]
    return " ".join(words), numbers


def _tax(text: str) -> str:
    """``'HR 12345678901'`` and ``'12345678901'`` alike: letters of a VAT prefix dropped."""
    compact = _NOT_ALNUM.sub("", transliterate(text))
    return compact[2:] if len(compact) > 4 and compact[:2].isalpha() and compact[2:].isdigit() else compact


def _web(text: str) -> str:
    host = transliterate(text).strip()
    host = re.sub(r"^[a-z]+://", "", host).split("/")[0].split("@")[-1]
    host = host.removeprefix("www.")
    return (registrable_domain(host) or host) if "." in host else ""


def _digits(day: date | None) -> str:
    """``19850312``; always eight digits (strftime gives a year 985 three)."""
    return f"{day.year:04d}{day.month:02d}{day.day:02d}" if day else ""


def prepare(profile: CustomerProfile) -> Prepared:
    details = profile.details
    if profile.kind == "person":
        words = _person_words(profile.name)
        name = " ".join(words)
        first, last = (words[0], words[-1]) if len(words) > 1 else ("", words[0] if words else "")
    else:
        name, first, last = normalize_company_name(profile.name) or "", "", ""
    street, number = _street(details.street)
    locals_ = frozenset(
        local
        for local in (e.rpartition("@")[0].split("+")[0].lower() for e in profile.emails)
        if len(local) >= 4 and local not in _GENERIC_LOCALS
    )
    return Prepared(
        id=profile.id,
        kind=profile.kind,
        name=name,
        first=first,
        last=last,
        company_id=profile.company_id,
        street=street,
        number=number,
        postcode=_NOT_ALNUM.sub("", transliterate(details.postcode)),
        city=" ".join(_NOT_ALNUM.split(transliterate(details.city))).strip(),
        birth=details.birth_date,
        birth_digits=_digits(details.birth_date),
        tax=_tax(details.tax_id),
        web=_web(details.website),
        phones=frozenset(p[-9:] for p in (re.sub(r"\D", "", p) for p in profile.phones) if len(p) >= 6),
        locals=locals_,
    )


def block_keys(p: Prepared) -> set[str]:
    """The blocks a customer is filed under; two customers sharing one are compared."""
    keys: set[str] = set()
    if p.kind == "person":
        if p.first and p.last:
            keys.add("n:" + "|".join(sorted((p.first[:3], p.last[:3]))))  # either word order
            keys.add("l:" + p.last[-4:] + p.first[:1])  # a typo at the start of the surname
            keys.add("f:" + p.first[-3:] + p.last[:1] + p.last[-2:])
        elif p.last:
            keys.add("n:" + p.last[:4])
        if p.birth:
            keys.add(f"b:{p.birth.isoformat()}")
    else:
        for word in p.name.split():
            if len(word) >= 3:
                keys.add("w:" + word[:4])
                keys.add("e:" + word[-4:])
    if p.postcode and p.number:
        keys.add(f"a:{p.postcode}|{p.number}")
    if p.tax:
        keys.add("t:" + p.tax)
    keys.update("p:" + phone for phone in p.phones)
    keys.update("m:" + local for local in p.locals)
    if p.web:
        keys.add("d:" + p.web)
    return keys


def candidate_pairs(prepared: Sequence[Prepared]) -> Iterator[tuple[Prepared, Prepared]]:
    """Every pair of the same kind sharing a block, once."""
    blocks: dict[str, list[int]] = defaultdict(list)
    for position, p in enumerate(prepared):
        for key in block_keys(p):
            blocks[f"{p.kind}/{key}"].append(position)
    seen: set[tuple[int, int]] = set()
    for members in blocks.values():
        if len(members) < 2 or len(members) > MAX_BLOCK:
            continue
        for i, a in enumerate(members):
            for b in members[i + 1 :]:
                pair = (a, b) if a < b else (b, a)
                if pair not in seen:
                    seen.add(pair)
                    yield prepared[pair[0]], prepared[pair[1]]


def _level(similarity: float, agree: float = 0.94, close: float = 0.84) -> int:
    return AGREE if similarity >= agree else CLOSE if similarity >= close else DISAGREE


def _jw(a: str, b: str) -> float:
    return JaroWinkler.similarity(a, b)


def _exactish(a: str, b: str) -> int | None:
    """Postcodes and ids: equal, one typo apart, or different."""
    if not a or not b:
        return None
    if a == b:
        return AGREE
    return CLOSE if len(a) == len(b) and Levenshtein.distance(a, b, weights=(1, 1, 1)) <= 1 else DISAGREE


def _dates(a: Prepared, b: Prepared) -> int | None:
    """Birth dates equal; one digit mistyped, two digits transposed or day and month
    swapped (close); or different."""
    if a.birth is None or b.birth is None:
        return None
    if a.birth == b.birth:
        return AGREE
    x, y = a.birth_digits, b.birth_digits
    differing = sum(c != d for c, d in zip(x, y, strict=True))
    swapped = a.birth.year == b.birth.year and a.birth.month == b.birth.day and a.birth.day == b.birth.month
    transposed = differing == 2 and sorted(x) == sorted(y)
    return CLOSE if swapped or transposed or differing == 1 else DISAGREE


def _names(a: Prepared, b: Prepared) -> tuple[int | None, int | None]:
    """(first, last) levels, in the word order that fits better (given name and surname
    are swapped in many exports)."""
    if not a.last or not b.last:
        return None, None
    if not a.first or not b.first:
        return None, _level(_jw(a.last, b.last))
    straight = (_jw(a.first, b.first), _jw(a.last, b.last))
    crossed = (_jw(a.first, b.last), _jw(a.last, b.first))
    first, last = straight if sum(straight) >= sum(crossed) else crossed
    first_level = _level(first)
    if first_level == DISAGREE and (a.first[:1] == b.first[:1]) and min(len(a.first), len(b.first)) == 1:
        first_level = CLOSE  # an initial: "A. Kovač" and "Ana Kovač"
    return first_level, _level(last)


def compare(a: Prepared, b: Prepared) -> tuple[int | None, ...]:
    """The comparison vector of a pair, in PERSON_FIELDS or COMPANY_FIELDS order."""
    street: int | None = None
    if a.street and b.street:
        similarity = _jw(a.street, b.street)
        numbers = a.number == b.number if a.number and b.number else None
        street = _level(similarity, 0.92, 0.84)
        if numbers is False:
            street = DISAGREE  # another house on the street is another address
    city = _level(_jw(a.city, b.city), 0.92, 0.84) if a.city and b.city else None
    phone = (AGREE if a.phones & b.phones else DISAGREE) if a.phones and b.phones else None
    web = (AGREE if a.web == b.web else DISAGREE) if a.web and b.web else None
    common = (street, _exactish(a.postcode, b.postcode), city, _exactish(a.tax, b.tax), phone)
    if a.kind == "person":
        first, last = _names(a, b)
        company = (AGREE if a.company_id == b.company_id else DISAGREE) if a.company_id and b.company_id else None
        email = AGREE if a.locals & b.locals else None  # people have several addresses: only agreement counts
        s, pc, c, t, ph = common
        return (first, last, company, s, pc, c, _dates(a, b), t, ph, email, web)
    name = _level(name_score(a.name, b.name), 0.94, 0.84) if a.name and b.name else None
    return (name, *common, web)


def contrary_evidence(fields: Sequence[str], vector: Sequence[int | None]) -> str | None:
    """Why a pair is two customers whatever else agrees, or None.

    Fellegi–Sunter weights assume fields independent; people sharing a household break
    that (one surname, street, postcode and phone), and an estimate without labels then
    takes "same household" for "same person". So what tells people apart is evidence
    against that an address or a phone cannot outweigh: a different given name unless an
    identifier agrees (birth date, tax id, email name), a different birth date unless the
    name fits and the tax id or email name agrees, a different tax id unless the birth date
    agrees, different companies, and a surname only close (Dahlström, Nordström) unless an
    identifier or the phone agrees. A name and a town (postcode, city) alone never link."""
    levels = dict(zip(fields, vector, strict=True))
    if levels.get("company") == DISAGREE:
        return "at different companies"
    identifier = any(levels.get(f) == AGREE for f in ("birth", "tax", "email"))
    if levels.get("first") == DISAGREE and not identifier:
        return "different given names"
    names = [levels.get(f) for f in ("first", "last")]
    name_fits = all(level != DISAGREE for level in names)
    if levels.get("birth") == DISAGREE and not (
        name_fits and (levels.get("tax") == AGREE or levels.get("email") == AGREE)
    ):
        return "different birth dates"  # a household shares a phone and an address, not a tax id
    if levels.get("tax") == DISAGREE and not (levels.get("birth") == AGREE and any(n != DISAGREE for n in names)):
        return "different tax ids"
    if not any(level in (AGREE, CLOSE) for f, level in levels.items() if f not in NAME_FIELDS | TOWN_FIELDS):
        # Namesakes are common, even in one town: a name needs something else to agree.
        # (Companies known by their name alone are compared by name in mapping.duplicates.)
        return "a name alone"
    if levels.get("last") == CLOSE and not any(levels.get(f) == AGREE for f in ("birth", "tax", "phone", "email")):
        return "different surnames"  # Dahlström and Nordström at one address are two people
    return None


@dataclass
class Weights:
    """Fellegi–Sunter m and u probabilities per field and level, and the match share."""

    fields: tuple[str, ...]
    m: list[list[float]]
    u: list[list[float]]
    prior: float

    def posterior(self, vector: Sequence[int | None]) -> float:
        log_odds = math.log(self.prior / (1 - self.prior))
        for f, level in enumerate(vector):
            if level is not None:
                log_odds += math.log(self.m[f][level] / self.u[f][level])
        return 1 / (1 + math.exp(-max(-700.0, min(700.0, log_odds))))


# Defaults the estimate is pulled towards, indexed by level: [disagree, close, agree].
_DEFAULT_M = (0.04, 0.10, 0.86)
_DEFAULT_U = (0.90, 0.08, 0.02)  # two different customers rarely share a birth date, an id or a street
# Fields that agree more often by chance inside a block (a block is a shared name or place).
_LOOSE_U = {
    "city": (0.40, 0.05, 0.55),
    "first": (0.30, 0.15, 0.55),
    "last": (0.35, 0.20, 0.45),
    "name": (0.30, 0.20, 0.50),
    "company": (0.96, 0.01, 0.03),
}
PSEUDO_PAIRS = 20.0
PRIOR_SHARE = 0.1  # of candidate pairs that are one customer, before the data says otherwise


def estimate_weights(fields: Sequence[str], patterns: Counter[tuple[int | None, ...]], iterations: int = 60) -> Weights:
    """m, u and the match share by EM over the comparison patterns (each counted once per
    pair), with ``PSEUDO_PAIRS`` worth of the defaults mixed in. Works on distinct patterns,
    so its cost does not grow with the number of pairs."""
    n = len(fields)
    m = [list(_DEFAULT_M) for _ in fields]
    u = [list(_LOOSE_U.get(f, _DEFAULT_U)) for f in fields]
    m_prior = [row[:] for row in m]
    u_prior = [row[:] for row in u]
    prior = PRIOR_SHARE
    items = list(patterns.items())
    total = float(sum(patterns.values())) or 1.0
    for _ in range(iterations):
        weights = Weights(tuple(fields), m, u, prior)
        m_counts = [[PSEUDO_PAIRS * x for x in m_prior[f]] for f in range(n)]
        u_counts = [[PSEUDO_PAIRS * x for x in u_prior[f]] for f in range(n)]
        matched = 0.0
        for vector, count in items:
            g = weights.posterior(vector)
            matched += g * count
            for f, level in enumerate(vector):
                if level is not None:
                    m_counts[f][level] += g * count
                    u_counts[f][level] += (1 - g) * count
        new_prior = min(0.99, max(1e-4, (matched + PSEUDO_PAIRS * PRIOR_SHARE) / (total + PSEUDO_PAIRS)))
        m = [[c / sum(row) for c in row] for row in m_counts]
        u = [[c / sum(row) for c in row] for row in u_counts]
        converged = abs(new_prior - prior) < 1e-7
        prior = new_prior
        if converged:
            break
    return Weights(tuple(fields), m, u, prior)


@dataclass(frozen=True, slots=True)
class LinkedPair:
    """Two customers found to be one, with the probability and what agreed."""

    a: int
    b: int
    probability: float
    evidence: str


@dataclass
class Linkage:
    """The outcome of one run: linked pairs, and pairs that must never be put together."""

    pairs: list[LinkedPair] = field(default_factory=list)
    apart: set[tuple[int, int]] = field(default_factory=set)  # (low id, high id)


_LABELS = {
    "first": "given name",
    "last": "surname",
    "name": "name",
    "company": "company",
    "street": "street",
    "postcode": "postcode",
    "city": "city",
    "birth": "birth date",
    "tax": "tax id",
    "phone": "phone",
    "email": "email name",
    "web": "website",
}


def describe(fields: Sequence[str], vector: Sequence[int | None]) -> str:
    """``'same surname, birth date and postcode; close given name'``."""
    same = [_LABELS[f] for f, level in zip(fields, vector, strict=True) if level == AGREE]
    close = [_LABELS[f] for f, level in zip(fields, vector, strict=True) if level == CLOSE]
    parts = []
    if same:
        parts.append("same " + (", ".join(same[:-1]) + " and " + same[-1] if len(same) > 1 else same[0]))
    if close:
        parts.append("close " + (", ".join(close[:-1]) + " and " + close[-1] if len(close) > 1 else close[0]))
    return "; ".join(parts)


def link(profiles: Iterable[CustomerProfile], threshold: float = MATCH_PROBABILITY) -> Linkage:
    """Find the pairs of customers that are one, per kind, by blocking, comparison and
    Fellegi–Sunter weights estimated from the data."""
    outcome = Linkage()
    prepared = [prepare(p) for p in profiles]
    for kind, fields in (("person", PERSON_FIELDS), ("company", COMPANY_FIELDS)):
        group = [p for p in prepared if p.kind == kind]
        compared = []
        verdicts: dict[tuple[int | None, ...], str | None] = {}  # a pure function of the vector
        for a, b in candidate_pairs(group):
            vector = compare(a, b)
            if vector in verdicts:
                against = verdicts[vector]
            else:
                against = verdicts[vector] = contrary_evidence(fields, vector)
            if against is None:
                compared.append((a, b, vector))
            elif against != "a name alone":
                outcome.apart.add((a.id, b.id) if a.id < b.id else (b.id, a.id))
        if not compared:
            continue
        # Estimated on the pairs without evidence against, so the latent class is "same
        # customer" and not "same household".
        weights = estimate_weights(fields, Counter(vector for _a, _b, vector in compared))
        posteriors: dict[tuple[int | None, ...], float] = {}
        for a, b, vector in compared:
            probability = posteriors.get(vector)
            if probability is None:
                probability = posteriors[vector] = weights.posterior(vector)
            if probability >= threshold:
                low, high = (a.id, b.id) if a.id < b.id else (b.id, a.id)
                outcome.pairs.append(LinkedPair(low, high, probability, describe(fields, vector)))
    return outcome
