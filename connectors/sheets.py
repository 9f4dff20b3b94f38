"""Reading one mapped sheet of a staff workbook: find the header, map the columns, yield rows.

Staff workbooks are read with python-calamine: a reader only (it cannot save, so a staff
file cannot be written by accident), about fifteen times faster than openpyxl's read-only
mode, and it reads .xlsx, .xlsm, .xlsb, .xls and .ods alike. Formula cells give the value
Excel cached when it last saved; hidden sheets are read like visible ones.

A file is read only when complete and steady: its size and modification time are taken
before and after parsing, and a file that changed meanwhile (Excel or a sync client was
writing it) raises ``SourceUnavailable`` so the pass retries it later instead of reading
half a save.
"""

from __future__ import annotations

import difflib
import hashlib
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import python_calamine

from syncd.connectors.base import SourceConfigError, SourceUnavailable
from syncd.connectors.cells import cell_text

HEADER_SEARCH_ROWS = 50


def fold_header(header: str) -> str:
    return " ".join(header.split()).casefold()


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_excel_side_file(name: str) -> bool:
    """Excel's owner/lock files (``~$book.xlsx``) and the temporary names it saves through."""
    return name.startswith(("~$", ".~lock.", "~")) or name.endswith((".tmp", ".TMP")) or name.startswith(".")


@dataclass(frozen=True)
class SheetMapping:
    """Which sheet, where its header is, and which header names the fields are under."""

    path: Path
    sheet: str | None
    header_row: int | None  # None: find the first row holding every mapped header
    columns: Mapping[str, str]  # field -> header name
    key_columns: Sequence[str] = ()


@dataclass(frozen=True)
class SheetRows:
    """A located sheet: ``index`` maps field (and ``key:HEADER``) to a 0-based column."""

    title: str
    header_row: int
    index: dict[str, int]
    rows: list[list[Any]]  # every row of the sheet, row 1 first

    def data_rows(self) -> Iterator[tuple[int, list[Any]]]:
        """(1-based row number, cells) of every row below the header."""
        for number in range(self.header_row + 1, len(self.rows) + 1):
            yield number, self.rows[number - 1]


def _stat(path: Path) -> tuple[int, int]:
    info = os.stat(path)
    return info.st_size, info.st_mtime_ns


def read_sheet(mapping: SheetMapping) -> SheetRows:
    """The mapped sheet's rows; ``SourceUnavailable`` when the file cannot be read now,
    ``SourceConfigError`` when the mapping does not fit what is in it."""
    path = mapping.path
    try:
        before = _stat(path)
    except FileNotFoundError:
        raise SourceUnavailable(f"no such workbook: {path}") from None
    except OSError as exc:
        raise SourceUnavailable(f"cannot read workbook {path}: {exc.strerror or exc}") from None
    try:
        workbook = python_calamine.CalamineWorkbook.from_path(str(path))
    except python_calamine.PasswordError:
        raise SourceConfigError(f"{path.name} is password-protected; syncd cannot read it") from None
    except (python_calamine.CalamineError, python_calamine.ZipError, python_calamine.XmlError, ValueError) as exc:
        raise SourceUnavailable(
            f"{path} is not a complete workbook (being saved, truncated or another format?): {exc}"
        ) from None
    except OSError as exc:
        raise SourceUnavailable(f"cannot open workbook {path}: {exc.strerror or exc}") from None
    try:
        names = list(workbook.sheet_names)
        if mapping.sheet is None:
            title = names[0]
        elif mapping.sheet in names:
            title = mapping.sheet
        else:
            close = difflib.get_close_matches(mapping.sheet, names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; sheets: {names}"
            raise SourceConfigError(f"{path.name}: no sheet {mapping.sheet!r}{hint}")
        try:
            rows = workbook.get_sheet_by_name(title).to_python(skip_empty_area=False)
        except (python_calamine.CalamineError, python_calamine.XmlError, ValueError) as exc:
            raise SourceUnavailable(f"{path.name}!{title} cannot be read (being saved or damaged?): {exc}") from None
    finally:
        workbook.close()
    try:
        after = _stat(path)
    except OSError as exc:
        raise SourceUnavailable(f"workbook {path} vanished while being read: {exc.strerror or exc}") from None
    if after != before:
        raise SourceUnavailable(f"{path.name} changed while it was being read (being saved); read again later")
    header_row, index = locate_columns(path.name, title, rows, mapping)
    return SheetRows(title=title, header_row=header_row, index=index, rows=rows)


def locate_columns(
    file_name: str, title: str, rows: list[list[Any]], mapping: SheetMapping
) -> tuple[int, dict[str, int]]:
    """The header row number and each mapped field's column, or an error naming the
    workbook, sheet and column with the closest header there is."""
    wanted = [(f, c) for f, c in mapping.columns.items()] + [(f"key:{c}", c) for c in mapping.key_columns]
    if mapping.header_row is not None:
        if mapping.header_row > len(rows):
            raise SourceConfigError(f"{file_name}!{title}: no header row at row {mapping.header_row} "
                                    f"(the sheet has {len(rows)} rows)")
        candidates = [mapping.header_row]
    else:
        candidates = list(range(1, min(len(rows), HEADER_SEARCH_ROWS) + 1))
        if not candidates:
            raise SourceConfigError(f"{file_name}!{title}: the sheet is empty; no header row found")
    best: tuple[int, int, list[str]] | None = None  # (found, row number, headers)
    for number in candidates:
        header = [cell_text(v) for v in rows[number - 1]]
        folded = {fold_header(h): i for i, h in enumerate(header) if h}
        found = sum(1 for _f, c in wanted if fold_header(c) in folded)
        if found == len(wanted):
            return number, {f: folded[fold_header(c)] for f, c in wanted}
        if best is None or found > best[0]:
            best = (found, number, header)
    assert best is not None
    _found, number, header = best
    folded = {fold_header(h) for h in header if h}
    missing = [(f, c) for f, c in wanted if fold_header(c) not in folded]
    present = [h for h in header if h]
    problems = []
    for field_name, column in missing:
        close = difflib.get_close_matches(column, present, n=1, cutoff=0.5)
        hint = f"; closest header: {close[0]!r}" if close else f"; headers: {present}"
        where = f"header row {number}" if mapping.header_row is not None else \
            f"the first {len(candidates)} rows (best guess: row {number})"
        problems.append(f"{file_name}!{title}: column {column!r} (mapped to {field_name.removeprefix('key:')}) "
                        f"not found in {where}{hint}")
    raise SourceConfigError("; ".join(problems))
