"""Customer names as the labels a mail system can hold: IMAP keywords, Exchange categories.

Pure functions; the connector writes what it is handed. A label names a customer so staff
can search and filter by customer in their own mail client.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping

from anyascii import anyascii

from syncd.model.settings import LabelWriting
from syncd.outputs.cells import plain_text


def keyword_for(name: str, prefix: str) -> str:
    """A valid IMAP atom for a customer: ``Łukasz Nowak`` -> ``$crm_lukasz_nowak``.

    Letters are transliterated (anyascii: Ł -> L, ß -> ss, Cyrillic, Greek, CJK), never
    dropped: unicode decomposition alone turned "Łukasz" into "ukasz". Distinct names can
    still meet in one atom ("Müller" and "Muller"): ``assign_keywords`` keeps them apart.
    """
    slug = re.sub(r"[^a-z0-9]+", "_", anyascii(name).lower()).strip("_")[:48].rstrip("_")
    if len(slug) < 3:
        # Nothing readable left (symbols only): a stable hash keeps such names apart.
        slug = "c" + _short_hash(name, 10)
    return prefix + slug


def assign_keywords(customers: Iterable[tuple[int, str]], prefix: str) -> dict[str, str]:
    """Keywords for every customer name, collision-safe and stable as customers are added.

    ``customers`` are (id, name) of every live customer. Names whose atoms collide share it
    no longer: the name of the oldest customer (lowest id) keeps the plain atom, each other
    gets a suffix from a hash of its own name, so no keyword changes when a newer customer
    with a colliding name appears.
    """
    oldest: dict[str, int] = {}
    for customer_id, name in customers:
        if name not in oldest or customer_id < oldest[name]:
            oldest[name] = customer_id
    by_atom: dict[str, list[tuple[int, str]]] = {}
    for name, customer_id in oldest.items():
        by_atom.setdefault(keyword_for(name, prefix), []).append((customer_id, name))
    assigned: dict[str, str] = {}
    for atom, holders in by_atom.items():
        holders.sort()
        assigned[holders[0][1]] = atom
        for _id, name in holders[1:]:
            assigned[name] = f"{atom[:58]}_{_short_hash(name, 5)}"
    return assigned


def _short_hash(name: str, length: int) -> str:
    return hashlib.sha256(name.encode("utf-8")).hexdigest()[:length]


def category_for(name: str) -> str:
    """An Outlook category for a customer: the name itself, on one line, within Exchange's
    255-character limit, quoted where a spreadsheet would take it for a formula (Outlook
    exports categories to CSV and Excel)."""
    return plain_text(" ".join(name.split()))[:255]


def render_labels(
    names: Iterable[str], writing: LabelWriting, keywords: Mapping[str, str] | None = None
) -> tuple[str, ...]:
    """The labels for one item's customers, each once, in a stable order.

    ``keywords`` is ``assign_keywords`` over all customers; a name it lacks gets its plain atom.
    """
    if writing.style == "keyword":
        book = keywords or {}
        rendered = {book.get(name) or keyword_for(name, writing.prefix) for name in names}
    else:
        rendered = {category_for(name) for name in names}
    return tuple(sorted(rendered))
