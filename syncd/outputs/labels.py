"""Customer names as the labels a mail system can hold: IMAP keywords, Exchange categories.

Pure functions; the connector writes what it is handed. A label names a customer so staff
can search and filter by customer in their own mail client.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable

from syncd.model.settings import LabelWriting
from syncd.outputs.cells import plain_text


def keyword_for(name: str, prefix: str) -> str:
    """A valid IMAP atom for a customer: ``Adriatic Foods d.o.o.`` -> ``$crm_adriatic_foods_d_o_o``."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "_", ascii_name.lower()).strip("_")[:48]
    if len(slug) < 3:
        # Names in Cyrillic, Persian... leave nothing ASCII: a stable hash keeps them apart.
        slug = "c" + hashlib.sha256(name.encode("utf-8")).hexdigest()[:10]
    return prefix + slug


def category_for(name: str) -> str:
    """An Outlook category for a customer: the name itself, on one line, within Exchange's
    255-character limit, quoted where a spreadsheet would take it for a formula (Outlook
    exports categories to CSV and Excel)."""
    return plain_text(" ".join(name.split()))[:255]


def render_labels(names: Iterable[str], writing: LabelWriting) -> tuple[str, ...]:
    """The labels for one item's customers, each once, in a stable order."""
    if writing.style == "keyword":
        rendered = {keyword_for(name, writing.prefix) for name in names}
    else:
        rendered = {category_for(name) for name in names}
    return tuple(sorted(rendered))
