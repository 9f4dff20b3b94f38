"""Normalizers for the values customers are matched on. Pure functions, no I/O.

A normalizer returns ``None`` for a value that cannot be an identity at all, so callers
never match on garbage such as ``"n/a"`` or ``"@"``.
"""

from __future__ import annotations

import re
import unicodedata
from email.utils import getaddresses
from functools import lru_cache

from anyascii import anyascii

_LOCAL_OK = re.compile(r"^[^\s@<>()\[\],;:\"]+$")
_LABEL_OK = re.compile(r"^[a-z0-9_-]+$")


def normalize_domain(raw: str) -> str | None:
    """Lower-case ASCII (IDNA/punycode) form of a domain, or None when it is not one."""
    domain = unicodedata.normalize("NFC", raw.strip().strip(".").lower())
    if domain.startswith("www."):
        domain = domain[4:]
    if not domain or "." not in domain or any(c.isspace() for c in domain):
        return None
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    labels = ascii_domain.split(".")
    if any(not label or len(label) > 63 or not _LABEL_OK.match(label) for label in labels):
        return None
    return ascii_domain


def normalize_email(raw: str) -> str | None:
    """``'Ana <ANA@Firma.HR> '`` -> ``'ana@firma.hr'``; None when it is not an address."""
    candidate = raw.strip()
    if "<" in candidate or '"' in candidate:
        parsed = getaddresses([candidate])
        candidate = parsed[0][1] if parsed else ""
    candidate = candidate.strip().strip("<>").strip()
    if candidate.lower().startswith("mailto:"):
        candidate = candidate[7:]
    if candidate.count("@") != 1:
        return None
    local, domain = candidate.rsplit("@", 1)
    if not local or not _LOCAL_OK.match(local):
        return None
    normalized_domain = normalize_domain(domain)
    if normalized_domain is None:
        return None
    return f"{local.lower()}@{normalized_domain}"


def email_domain(email: str) -> str:
    return email.rsplit("@", 1)[-1]


def parent_domains(domain: str) -> list[str]:
    """``'eu.mail.acme.com'`` -> ``['eu.mail.acme.com', 'mail.acme.com', 'acme.com']`` (never a bare TLD)."""
    labels = domain.split(".")
    return [".".join(labels[i:]) for i in range(len(labels) - 1)]


_SPLIT = re.compile(r"[,;\s]+")


def split_emails(cell: str) -> list[str]:
    """Every address in a free-text cell such as ``'a@x.com; b@y.com'``, normalized, in order."""
    found: list[str] = []
    for part in _SPLIT.split(cell.replace("<", " ").replace(">", " ")):
        email = normalize_email(part) if part else None
        if email and email not in found:
            found.append(email)
    return found


def normalize_phone(raw: str, default_region: str | None = None) -> str | None:
    """E.164 (``+38514567890``) via phonenumbers, reading national numbers in ``default_region``
    (ISO 3166 code such as ``HR``); None when it is not a possible phone number.

    A value that went through a float in a sheet (``385914567890.0``) is read as digits.
    Without a region, a number with no country code cannot be placed and is None: a
    wrong guess would link one customer's calls to another.
    """
    import phonenumbers

    text = raw.strip()
    if text.endswith(".0") and text[:-2].replace("+", "").isdigit():
        text = text[:-2]
    if text.startswith("00"):
        text = "+" + text[2:]
    elif default_region is None and text.isdigit() and len(text) > 10:
        text = "+" + text  # a float-mangled international number lost its "+"
    # Digits only and no trunk 0: perhaps an international number whose "+" a spreadsheet
    # dropped (385912345678.0). Too long for a national number: try that first; shorter:
    # only when it is no valid number of the region.
    bare = text.isdigit() and not text.startswith("0") and len(text) >= 8
    if bare and len(text) > 10:
        international = _valid_international(text)
        if international:
            return international
    try:
        number = phonenumbers.parse(text, None if text.startswith("+") else default_region)
    except phonenumbers.NumberParseException:
        number = None
    if bare and len(text) <= 10 and (number is None or not phonenumbers.is_valid_number(number)):
        international = _valid_international(text)
        if international:
            return international
    if number is None or not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _valid_international(digits: str) -> str | None:
    import phonenumbers

    try:
        number = phonenumbers.parse("+" + digits, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


#: Providers documented to deliver ``name+tag@`` to ``name@`` (RFC 5233 sub-addressing):
#: Gmail, Outlook.com, iCloud, Fastmail, Proton, Zoho, Yandex, Mail.ru. On any other
#: domain ``+`` may be part of a real, different address, so it is folded only with
#: ``fold_plus_addresses = "all"``.
PLUS_ADDRESSING_DOMAINS = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "msn.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "fastmail.com",
        "fastmail.fm",
        "proton.me",
        "protonmail.com",
        "pm.me",
        "zoho.com",
        "yandex.ru",
        "yandex.com",
        "mail.ru",
    }
)


def fold_plus_address(email: str) -> str:
    """``ana+offers@firma.hr`` -> ``ana@firma.hr`` (sub-addressing, RFC 5233)."""
    local, _, domain = email.partition("@")
    base = local.split("+", 1)[0]
    return f"{base}@{domain}" if base else email


def plus_foldable(email: str, mode: str) -> bool:
    """Whether ``email``'s ``+tag`` is a sub-address under ``mode`` ("known", "all", "none")."""
    if "+" not in email or mode == "none":
        return False
    return mode == "all" or email.rpartition("@")[2] in PLUS_ADDRESSING_DOMAINS


@lru_cache(maxsize=1)
def _public_suffix_list():  # type: ignore[no-untyped-def]
    from publicsuffixlist import PublicSuffixList

    return PublicSuffixList()  # the list shipped in the package, parsed once on first use


def registrable_domain(domain: str) -> str | None:
    """The domain a company registers: ``mail.acme.co.uk`` -> ``acme.co.uk``; None for a bare
    public suffix (``co.uk``). Uses the public-suffix list shipped in ``publicsuffixlist``,
    never fetched at run time."""
    found = _public_suffix_list().privatesuffix(domain.lower().strip("."))
    return found if isinstance(found, str) else None


# Legal-form words, compared after lower-casing and removing accents and dots:
# Ltd, GmbH, d.o.o., Sp. z o.o., AB, AS, Oy, ... and their Cyrillic forms.
_LEGAL_FORMS = {
    "ltd",
    "limited",
    "llc",
    "inc",
    "incorporated",
    "corp",
    "corporation",
    "co",
    "company",
    "plc",
    "llp",
    "lp",
    "gmbh",
    "ag",
    "kg",
    "ug",
    "mbh",
    "ohg",
    "ev",
    "se",
    "sa",
    "sas",
    "sarl",
    "srl",
    "spa",
    "sl",
    "slu",
    "bv",
    "nv",
    "ab",
    "as",
    "asa",
    "aps",
    "oy",
    "oyj",
    "kft",
    "zrt",
    "nyrt",
    "sro",
    "doo",
    "dd",
    "ad",
    "jsc",
    "ooo",
    "zao",
    "oao",
    "pjsc",
    "spzoo",
    "sp",
    "zoo",
    "ska",
    "sc",
    "sk",
    "dooel",
    "ltda",
    "pty",
    "pvt",
    "kk",
    "tov",
    "aktiebolag",
    "hb",
    "kb",
    "jdoo",
    "spk",
    "aksjeselskap",
    "osakeyhtio",
    "пао",
    "ооо",
    "доо",
    "дд",
    "ад",
    "ао",
    "зао",
    "тов",
}
# Words that open a name as its legal form: Persian "sherkat" (company), "Firma".
_LEADING_FORMS = {"شرکت", "firma"}
_MULTIWORD_FORMS: tuple[tuple[str, ...], ...] = (
    ("sp", "z", "oo"),
    ("sp", "z", "o", "o"),
    ("sp", "k"),
    ("s", "r", "o"),
    ("s", "r", "l"),
    ("s", "p", "a"),
    ("and", "co"),
    ("i", "sinovi"),
    ("s", "a", "s"),
    ("s", "l"),
    ("s", "a", "r", "l"),
    ("l", "t", "d", "a"),
    ("j", "d", "o", "o"),
    ("a", "d"),
    ("s", "p", "k"),
    ("k", "d"),
    ("o", "d"),
    ("a", "b"),
    ("h", "b"),
    ("a", "g"),
    ("k", "g"),
    ("d", "o", "o"),
    ("d", "d"),
    ("a", "s"),
    ("s", "a"),
    ("b", "v"),
    ("n", "v"),
    ("д", "о", "о"),
    ("д", "д"),
    ("о", "о", "о"),
    ("co", "ltd"),
    ("pty", "ltd"),
    ("pvt", "ltd"),
)
_WORD = re.compile(r"\w+", re.UNICODE)


def _fold(text: str) -> str:
    """Lower case without accents (č -> c, ø -> o); letters of other scripts are kept as they are."""
    decomposed = unicodedata.normalize("NFKD", text).casefold()
    folded = "".join(c for c in decomposed if not unicodedata.combining(c))
    return folded.replace("ø", "o").replace("ł", "l").replace("đ", "d").replace("ß", "ss").replace("æ", "ae")


# Serbian and Macedonian Cyrillic as their own Latin alphabets write it (Ковач -> Kovač,
# not the English "Kovach"): the same people and firms are written in both scripts.
_SERBIAN_LATIN = str.maketrans(
    {
        "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "ђ": "đ", "е": "e", "ж": "ž", "з": "z",
        "и": "i", "ј": "j", "к": "k", "л": "l", "љ": "lj", "м": "m", "н": "n", "њ": "nj", "о": "o",
        "п": "p", "р": "r", "с": "s", "т": "t", "ћ": "ć", "у": "u", "ф": "f", "х": "h", "ц": "c",
        "ч": "č", "џ": "dž", "ш": "š", "ѓ": "ǵ", "ќ": "ḱ", "ѕ": "dz",
    }
)  # fmt: skip


def transliterate(text: str) -> str:
    """Lower-case Latin letters for any script: ``Јадран`` -> ``jadran``, ``Wiśniewski`` ->
    ``wisniewski``, ``Ковач`` -> ``kovac``. Serbian and Macedonian Cyrillic by their own
    Latin alphabets, everything else (Russian, Greek, CJK) by anyascii."""
    folded = _fold(text.casefold().translate(_SERBIAN_LATIN))
    return folded if folded.isascii() else anyascii(folded).lower()


# Names are transliterated before their legal forms are looked up: the forms as Latin
# letters ("д.о.о." is "d.o.o.", "شرکت" is "shrkt").
_LEGAL_FORMS = {transliterate(form) for form in _LEGAL_FORMS}
_LEADING_FORMS = {transliterate(form) for form in _LEADING_FORMS}
_MULTIWORD_FORMS = tuple(dict.fromkeys(tuple(transliterate(w) for w in form) for form in _MULTIWORD_FORMS))


def normalize_company_name(raw: str) -> str | None:
    """``'Adriatic Foods d.o.o.'`` -> ``'adriatic foods'``: case, accents, punctuation and legal
    forms removed and other scripts transliterated (``'Јадран Храна д.о.о.'`` -> ``'jadran
    hrana'``), for comparing names across workbooks and scripts. None when nothing is left."""
    words = _WORD.findall(transliterate(raw).replace("&", " and "))
    # Multi-word legal forms written with dots or spaces (d.o.o., Sp. z o.o., s.r.o.) at the end.
    changed = True
    while changed and words:
        changed = False
        for form in _MULTIWORD_FORMS:
            if len(words) > len(form) and tuple(words[-len(form) :]) == form:
                words = words[: -len(form)]
                changed = True
        if len(words) > 1 and words[-1] in _LEGAL_FORMS:
            words = words[:-1]
            changed = True
        if len(words) > 1 and words[-1] == "and":  # what "& Co." leaves once the forms are gone
            words = words[:-1]
            changed = True
    if len(words) > 1 and words[0] in _LEADING_FORMS:
        words = words[1:]
    name = " ".join(words)
    return name or None
