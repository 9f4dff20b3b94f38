"""What the Graph and EWS pipeline tests share: mailboxes, a config around a customer sheet, sync, store reads."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import openpyxl
import sqlalchemy as sa

from support.helpers import run_syncd, write_config

NOW = datetime.now(timezone.utc).replace(microsecond=0)
ALICE = "alice@ourco.example"
BOB = "bob@ourco.example"


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def config(tmp_path: Path, *sources: str) -> Path:
    book = openpyxl.Workbook()
    book.active.append(["Company", "Website"])
    book.active.append(["Adriatic Foods d.o.o.", "adriaticfoods.hr"])
    book.save(tmp_path / "customers.xlsx")
    text = (
        '[service]\nstate_dir = "state"\n[matching]\ninternal_domains = ["ourco.example"]\n'
        '[timeline]\npath = "timeline.xlsx"\n'
        '[[sources]]\nname = "customers"\nkind = "excel_customers"\npath = "customers.xlsx"\n'
        '[sources.columns]\ncompany = "Company"\ndomain = "Website"\n' + "".join(sources)
    )
    return write_config(tmp_path / "syncd.toml", text)


def sync(path: Path, ok: bool = True) -> str:
    result = run_syncd("sync", "--once", "-c", str(path))
    output = result.stdout + result.stderr
    assert (result.returncode == 0) == ok, output
    return output


def rows(root: Path, query: str) -> list[tuple]:
    engine = sa.create_engine(f"sqlite:///{root / 'state' / 'syncd.db'}")
    try:
        with engine.connect() as c:
            return [tuple(r) for r in c.execute(sa.text(query)).all()]
    finally:
        engine.dispose()


def live_activities(root: Path) -> dict[str, tuple[str, str]]:
    """message_id -> (kind, subject) of live activities."""
    return {
        m: (k, s) for m, k, s in rows(root, "select message_id, kind, subject from activities where gone_at is null")
    }


def with_a_person(tmp_path: Path, path: Path) -> None:
    """The customer list of ``config`` with Ivana Horvat as a person at Adriatic Foods."""
    book = openpyxl.Workbook()
    book.active.append(["Company", "Website", "Contact", "E-mail"])
    book.active.append(["Adriatic Foods d.o.o.", "adriaticfoods.hr", "Ivana Horvat", "ivana@adriaticfoods.hr"])
    book.save(tmp_path / "customers.xlsx")
    path.write_text(
        path.read_text().replace('domain = "Website"', 'domain = "Website"\nperson = "Contact"\nemail = "E-mail"')
    )
