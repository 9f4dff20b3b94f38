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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import python_calamine
from pydantic import Field, field_validator

from syncd.connectors.cells import cell_text
from syncd.connectors.xlsx_cells import unreadable_cells
from syncd.model.errors import SourceConfigError, SourceUnavailable
from syncd.model.settings import ConfigPath, InputPath, SourceSettings, phone_region

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
    headers: dict[str, str] = field(default_factory=dict)  # field -> header as the sheet writes it
    unreadable: dict[tuple[int, int], str] = field(default_factory=dict)  # (row, column) -> why (xlsx_cells)

    def cell_problems(self, number: int) -> str | None:
        """Why a mapped cell of row ``number`` has no value to read (an error, a formula
        never calculated), naming each cell and its column; None when all can be read."""
        if not self.unreadable:
            return None
        said = []
        for field_name, column in self.index.items():
            reason = self.unreadable.get((number, column))
            if reason:
                header = self.headers.get(field_name, field_name)
                said.append(f"{_column_letters(column)}{number} ({header}): {reason}")
        return "; ".join(said) or None

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
    headers = {f: cell_text(rows[header_row - 1][i]) for f, i in index.items() if i < len(rows[header_row - 1])}
    return SheetRows(
        title=title,
        header_row=header_row,
        index=index,
        rows=rows,
        headers=headers,
        unreadable=unreadable_cells(path, title),
    )


def _column_letters(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(65 + remainder) + letters
    return letters


def locate_columns(
    file_name: str, title: str, rows: list[list[Any]], mapping: SheetMapping
) -> tuple[int, dict[str, int]]:
    """The header row number and each mapped field's column, or an error naming the
    workbook, sheet and column with the closest header there is."""
    wanted = [(f, c) for f, c in mapping.columns.items()] + [(f"key:{c}", c) for c in mapping.key_columns]
    if mapping.header_row is not None:
        if mapping.header_row > len(rows):
            raise SourceConfigError(
                f"{file_name}!{title}: no header row at row {mapping.header_row} (the sheet has {len(rows)} rows)"
            )
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
    headers = {fold_header(h) for h in header if h}
    missing = [(f, c) for f, c in wanted if fold_header(c) not in headers]
    present = [h for h in header if h]
    problems = []
    for field_name, column in missing:
        close = difflib.get_close_matches(column, present, n=1, cutoff=0.5)
        hint = f"; closest header: {close[0]!r}" if close else f"; headers: {present}"
        where = (
            f"header row {number}"
            if mapping.header_row is not None
            else f"the first {len(candidates)} rows (best guess: row {number})"
        )
        problems.append(
            f"{file_name}!{title}: column {column!r} (mapped to {field_name.removeprefix('key:')}) "
            f"not found in {where}{hint}"
        )
    raise SourceConfigError("; ".join(problems))


class SheetSettings(SourceSettings):
    """What every mapped sheet says: which workbook and sheet, where the header is, how its
    cells are written. Staff workbooks are read-only to syncd: it never writes to them."""

    path: ConfigPath = Field(description="The workbook (.xlsx, .xlsm, .xlsb, .xls or .ods).")
    sheet: str | None = Field(default=None, description="Sheet name (hidden sheets too). Default: the first sheet.")
    header_row: int | Literal["auto"] = Field(
        default="auto",
        description='Row number of the header, or "auto": the first of the top 50 rows that holds every mapped header.',
    )
    key_columns: list[str] = Field(
        default_factory=list,
        description="Headers whose values identify a row, so an edited row updates its record. Default: the "
        "email column for people; otherwise a hash of the row (an edited row then replaces the old one).",
    )
    date_formats: list[str] = Field(
        default_factory=list,
        description='strptime formats for dates written as text, tried in order (e.g. "%m/%d/%Y" for US '
        "sheets). Default: ISO, then day-first formats (31.12.2026, 31/12/2026...). Date cells and Excel "
        "serial numbers are always understood.",
    )
    decimal_separator: Literal["auto", ".", ","] = Field(
        default="auto", description="Decimal mark of amounts written as text (1.234,56 or 1,234.56)."
    )
    phone_region: str | None = Field(
        default=None,
        description="Country (ISO code) for phone numbers in this sheet written without a country code. "
        "Default: matching.default_phone_region.",
    )

    @field_validator("phone_region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        return phone_region(value)

    @field_validator("date_formats")
    @classmethod
    def _formats(cls, value: list[str]) -> list[str]:
        from datetime import datetime as _dt

        for pattern in value:
            if "%" not in pattern:
                raise ValueError(f'{pattern!r} is not a strptime format (e.g. "%d.%m.%Y")')
            try:
                _dt(2026, 1, 2, 3, 4).strftime(pattern)
            except ValueError as exc:
                raise ValueError(f"{pattern!r} is not a valid format: {exc}") from None
        return value

    @property
    def header_row_number(self) -> int | None:
        return None if self.header_row == "auto" else self.header_row

    def input_paths(self) -> tuple[InputPath, ...]:
        return (InputPath("path", self.path),)

    def watched_files(self) -> tuple[Path, ...]:
        return (self.path,)

    def sheet_mapping(self, columns: Mapping[str, str | None]) -> SheetMapping:
        return SheetMapping(
            self.path,
            self.sheet,
            self.header_row_number,
            {f: c for f, c in columns.items() if c},
            tuple(self.key_columns),
        )


def check_sheet(settings: SheetSettings, columns: Mapping[str, str | None]) -> list[tuple[str, str]]:
    """Does the mapping fit the workbook: the sheet exists, every mapped header is there."""
    try:
        read_sheet(settings.sheet_mapping(columns))
    except SourceConfigError as exc:
        return [("columns", str(exc))]
    except SourceUnavailable as exc:
        return [("path", str(exc))]
    return []
