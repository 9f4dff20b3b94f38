"""Turning the values staff put in cells into text, dates and amounts.

Real sheets hold phone numbers typed as numbers (``385912345678.0``), dates as date cells,
as Excel serial numbers in an unformatted column, or as text in the writer's local style
(``3.11.2026.``, ``03/11/2026 14:30``), and amounts as numbers or as text with currency
signs and either decimal separator. Each parser here is pure and raises ``CellError`` with
a reason an admin can act on; the connector turns that into a quarantine entry naming the
row and column.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

# Day-first formats come before month-first ones: the users this serves write 03.11.2026
# and 03/11/2026 for 3 November. A sheet in US style lists its formats in config.
DEFAULT_DATE_FORMATS = (
    "%Y-%m-%d",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%dT%H:%M:%S",
    "%d.%m.%Y",
    "%d.%m.%Y.",
    "%d.%m.%Y %H:%M",
    "%d.%m.%Y. %H:%M",
    "%d.%m.%Y %H:%M:%S",
    "%d/%m/%Y",
    "%d/%m/%Y %H:%M",
    "%d-%m-%Y",
    "%d-%m-%Y %H:%M",
    "%Y/%m/%d",
    "%Y.%m.%d",
    "%d %b %Y",
    "%d %B %Y",
    "%b %d, %Y",
    "%B %d, %Y",
    "%d. %m. %Y",
    "%d. %m. %Y.",
)
_EXCEL_EPOCH = datetime(1899, 12, 30)
_SERIAL_RANGE = (1.0, 2_958_465.0)  # 1900-01-01 .. 9999-12-31
_AMOUNT_NOISE = re.compile(r"[\s\u00a0\u202f'’]|[A-Za-z€$£¥₺₽zł]+\.?$|^[A-Za-z€$£¥₺₽]+\.?")


class CellError(ValueError):
    """A cell's value cannot be read as what its column is mapped to."""


def cell_text(value: Any) -> str:
    """A cell as text: whole-number floats lose their ``.0`` (phones typed as numbers)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        return repr(value)
    if isinstance(value, datetime):
        return (
            value.isoformat(sep=" ", timespec="minutes") if (value.hour or value.minute) else value.date().isoformat()
        )
    return str(value).strip()


def _to_utc(moment: datetime, zone: ZoneInfo) -> datetime:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(timezone.utc)


def cell_datetime(value: Any, zone: ZoneInfo, formats: tuple[str, ...] = DEFAULT_DATE_FORMATS) -> datetime:
    """A date cell as aware UTC. Times without a zone are read in ``zone``; a date without a
    time is midnight in ``zone``."""
    if isinstance(value, datetime):
        return _to_utc(value, zone)
    if isinstance(value, date):
        return _to_utc(datetime.combine(value, time()), zone)
    if isinstance(value, bool):
        raise CellError(f"{value!r} is not a date")
    if isinstance(value, (int, float)):
        serial = float(value)
        if not _SERIAL_RANGE[0] <= serial <= _SERIAL_RANGE[1]:
            raise CellError(f"{value!r} is not a date (as an Excel serial number it is out of range)")
        if 60 <= serial < 61:
            raise CellError(
                f"{value!r} is 1900-02-29 as an Excel date, a day that never was (Excel's 1900 leap-year bug)"
            )
        if serial < 60:
            serial += 1  # Excel counts that day: its serials before it are one day ahead of the calendar
        moment = _EXCEL_EPOCH + timedelta(days=serial)
        return _to_utc(moment.replace(microsecond=0), zone)
    text = " ".join(str(value or "").split())
    if not text:
        raise CellError("the date is empty")
    for pattern in formats:
        try:
            return _to_utc(datetime.strptime(text, pattern), zone)
        except ValueError:
            continue
    try:
        return _to_utc(datetime.fromisoformat(text), zone)
    except ValueError:
        pass
    raise CellError(f"{text!r} is not a date in any of the formats {', '.join(formats[:6])}…")


_COMPACT_DATE = re.compile(r"^(1[89]|20)\d{2}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])$")
_UTC = ZoneInfo("UTC")


def cell_date(value: Any, formats: tuple[str, ...] = DEFAULT_DATE_FORMATS) -> date:
    """A calendar date (a birth date, a contract date): a date cell, an Excel serial, text in
    the formats ``cell_datetime`` reads, or the compact ``19850312`` some exports write."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = cell_text(value)
    if _COMPACT_DATE.match(text):
        try:
            return datetime.strptime(text, "%Y%m%d").date()
        except ValueError:
            raise CellError(f"{text!r} is not a date") from None
    return cell_datetime(value, _UTC, formats).date()


def cell_amount(value: Any, decimal_separator: str = "auto") -> Decimal:
    """A number cell or text like ``€ 1.234,56`` / ``1,234.56 kn`` as a Decimal.

    ``decimal_separator`` is ``.``, ``,`` or ``auto``: with both marks present the last one
    is the decimal separator; with one mark, it is the decimal separator unless it is
    followed by exactly three digits (``1,234`` is a thousand and more, ``12,5`` is twelve
    and a half).
    """
    if isinstance(value, bool):
        raise CellError(f"{value!r} is not an amount")
    if isinstance(value, (int, float, Decimal)):
        try:
            return Decimal(str(value))
        except InvalidOperation:
            raise CellError(f"{value!r} is not an amount") from None
    text = _AMOUNT_NOISE.sub("", str(value or "").strip())
    if not text:
        raise CellError("the amount is empty")
    negative = text.startswith("(") and text.endswith(")")
    text = text.strip("()")
    separator = decimal_separator
    if separator == "auto":
        last_dot, last_comma = text.rfind("."), text.rfind(",")
        if last_dot >= 0 and last_comma >= 0:
            separator = "." if last_dot > last_comma else ","
        elif last_dot >= 0 or last_comma >= 0:
            mark = "." if last_dot >= 0 else ","
            grouped = text.count(mark) > 1 or len(text.rsplit(mark, 1)[1]) == 3
            separator = "" if grouped else mark
        else:
            separator = ""
    thousands = {".": ",", ",": ".", "": ""}[separator]
    if thousands:
        text = text.replace(thousands, "")
    if separator == ",":
        text = text.replace(",", ".")
    elif separator == "":
        text = text.replace(",", "").replace(".", "")
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise CellError(f"{value!r} is not an amount") from None
    return -amount if negative else amount
