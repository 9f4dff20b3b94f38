"""Cells of an .xlsx sheet that hold no value to read: Excel errors and formulas never calculated.

calamine (how syncd reads workbooks, 20x faster than openpyxl) gives ``""`` for an error
cell (``#N/A``, ``#REF!``, ``#DIV/0!``) and for a formula whose result was never saved, so
a ``#REF!`` customer would read as "no customer". This looks at the sheet's XML for
exactly those cells, so the row can be quarantined with the error named instead.

Only ``.xlsx``/``.xlsm`` (zip of XML) are looked at; the bytes are searched first, and a
sheet without ``t="e"`` or a formula is not parsed at all. The XML shapes are from
ECMA-376 Part 1, 18.3.1.4 (``c``, with ``t="e"`` for errors) and 18.3.1.40 (``f``).
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path, PurePosixPath

_SHEET = re.compile(rb'<(?:\w+:)?sheet\b[^>]*?\bname="([^"]*)"[^>]*?\br:id="([^"]+)"')
_SHEET_ID_FIRST = re.compile(rb'<(?:\w+:)?sheet\b[^>]*?\br:id="([^"]+)"[^>]*?\bname="([^"]*)"')
_RELATION = re.compile(rb'<Relationship\b[^>]*?\bId="([^"]+)"[^>]*?\bTarget="([^"]+)"')
_RELATION_TARGET_FIRST = re.compile(rb'<Relationship\b[^>]*?\bTarget="([^"]+)"[^>]*?\bId="([^"]+)"')
# A cell that is not self-closing: its reference, its attributes and its content.
_CELL = re.compile(rb'<(?:\w+:)?c r="([A-Z]{1,3})([0-9]{1,7})"([^>/]*)>(.*?)</(?:\w+:)?c>', re.S)
_VALUE = re.compile(rb"<(?:\w+:)?v>([^<]*)</(?:\w+:)?v>")
_XML_ENTITIES = {"&amp;": "&", "&lt;": "<", "&gt;": ">", "&quot;": '"', "&apos;": "'"}


def column_index(letters: str) -> int:
    """``A`` -> 0, ``Z`` -> 25, ``AA`` -> 26."""
    index = 0
    for letter in letters:
        index = index * 26 + (ord(letter) - 64)
    return index - 1


def _unescape(text: str) -> str:
    for entity, char in _XML_ENTITIES.items():
        text = text.replace(entity, char)
    return text


def _sheet_member(archive: zipfile.ZipFile, title: str) -> str | None:
    workbook = archive.read("xl/workbook.xml")
    ids = {_unescape(name.decode("utf-8")): rid for name, rid in _SHEET.findall(workbook)}
    ids.update({_unescape(name.decode("utf-8")): rid for rid, name in _SHEET_ID_FIRST.findall(workbook)})
    rid = ids.get(title)
    if rid is None:
        return None
    rels = archive.read("xl/_rels/workbook.xml.rels")
    targets = dict(_RELATION.findall(rels)) | {i: t for t, i in _RELATION_TARGET_FIRST.findall(rels)}
    target = targets.get(rid)
    if target is None:
        return None
    path = target.decode("utf-8")
    return path.lstrip("/") if path.startswith("/") else str(PurePosixPath("xl") / path)


def unreadable_cells(path: Path, title: str) -> dict[tuple[int, int], str]:
    """(1-based row, 0-based column) -> why the cell has no value, for sheet ``title``."""
    if path.suffix.lower() not in (".xlsx", ".xlsm"):
        return {}
    try:
        with zipfile.ZipFile(path) as archive:
            member = _sheet_member(archive, title)
            if member is None or member not in archive.namelist():
                return {}
            xml = archive.read(member)
    except (OSError, zipfile.BadZipFile, KeyError):
        return {}  # calamine read it; what it could not tell us stays unknown
    if b't="e"' not in xml and b"<f" not in xml:
        return {}
    found: dict[tuple[int, int], str] = {}
    for letters, row, attributes, content in _CELL.findall(xml):
        has_formula = b"<f" in content
        if b't="e"' not in attributes and not has_formula:
            continue
        value = _VALUE.search(content)
        key = (int(row), column_index(letters.decode("ascii")))
        if b't="e"' in attributes:
            error = value.group(1).decode("utf-8", "replace") if value else "an error"
            found[key] = f"the cell holds the error {error}"
        elif value is None or (value.group(1) == b"" and b't="str"' not in attributes):
            # (an empty text result is saved as t="str" with an empty value: that one is fine)
            found[key] = "the cell's formula has no saved result (the workbook was never calculated or saved by Excel)"
    return found
