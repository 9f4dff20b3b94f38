"""A config with one customer and a calendar source, and the meetings a run stored: for the CalDAV tests."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import openpyxl
import sqlalchemy as sa

from support.helpers import write_config

CUSTOMERS = (
    '[[sources]]\nname = "customers"\nkind = "excel_customers"\npath = "customers.xlsx"\n'
    '[sources.columns]\ncompany = "Company"\ndomain = "Website"\n'
)


def config(tmp_path: Path, *sources: str, zone: str = "UTC") -> Path:
    book = openpyxl.Workbook()
    book.active.append(["Company", "Website"])
    book.active.append(["Adriatic Foods d.o.o.", "adriaticfoods.hr"])
    book.save(tmp_path / "customers.xlsx")
    text = (
        f'[service]\nstate_dir = "state"\ntimezone = "{zone}"\n[matching]\ninternal_domains = ["ourco.example"]\n'
        f'[timeline]\npath = "timeline.xlsx"\n' + CUSTOMERS + "".join(sources)
    )
    return write_config(tmp_path / "syncd.toml", text)


def meetings(root: Path) -> dict[str, tuple[datetime, str, str]]:
    """message_id -> (UTC start, subject, status) of the live meeting activities."""
    engine = sa.create_engine(f"sqlite:///{root / 'state' / 'syncd.db'}")
    try:
        with engine.connect() as c:
            rows = c.execute(
                sa.text(
                    "select message_id, occurred_at, subject, hints from activities "
                    "where gone_at is null and kind = 'meeting'"
                )
            ).all()
    finally:
        engine.dispose()
    found = {}
    for message_id, occurred_at, subject, hints in rows:
        moment = occurred_at if isinstance(occurred_at, datetime) else datetime.fromisoformat(str(occurred_at))
        found[message_id] = (
            moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment,
            subject,
            json.loads(hints or "{}").get("status", ""),
        )
    return found
