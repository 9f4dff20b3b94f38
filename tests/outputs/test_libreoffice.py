"""The written timeline workbook opens in a real spreadsheet program (LibreOffice headless)."""

from __future__ import annotations

import csv
import shutil
import subprocess
from pathlib import Path

import pytest

from support.environment import require_tool
from support.helpers import run_syncd

SOFFICE = shutil.which("soffice") or shutil.which("libreoffice")
# Export every sheet to its own CSV (the final -1), UTF-8 (76), comma-separated (44).
CSV_ALL_SHEETS = "csv:Text - txt - csv (StarCalc):44,34,76,1,,0,false,true,false,false,false,-1"


@pytest.fixture
def soffice() -> str:
    return require_tool(SOFFICE, "LibreOffice is not installed (scripts/test-setup installs libreoffice-calc-nogui)")


@pytest.mark.libreoffice
def test_timeline_workbook_round_trips_through_libreoffice(tmp_path: Path, soffice: str) -> None:
    demo = tmp_path / "demo"
    assert run_syncd("demo", "--dir", str(demo)).returncode == 0
    out = tmp_path / "csv"
    profile = tmp_path / "lo-profile"
    result = subprocess.run(
        [
            soffice,
            f"-env:UserInstallation=file://{profile}",
            "--headless",
            "--convert-to",
            CSV_ALL_SHEETS,
            "--outdir",
            str(out),
            str(demo / "timeline.xlsx"),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    sheets = {p.stem.split("-", 1)[1]: list(csv.reader(p.open(encoding="utf-8"))) for p in out.glob("*.csv")}
    assert set(sheets) == {"Timeline", "Customers", "Review", "Reports"}
    timeline = sheets["Timeline"]
    assert timeline[0][:5] == ["When", "Customers", "Kind", "Direction", "Subject"]
    assert len(timeline) - 1 >= 200
    assert any(row[4] == "Ponuda za žitarice i čaj" for row in timeline[1:])
    assert any("Marta Kovač" == row[1] for row in timeline[1:])
    customers = {row[0]: row for row in sheets["Customers"][1:]}
    assert customers["Adriatic Foods d.o.o."][1] == "company"
    assert [row[2] for row in sheets["Review"][1:] if not row[5].startswith("M")] == ["tomjones1987@gmail.com"]


@pytest.mark.libreoffice
def test_formula_text_from_mail_stays_text_in_libreoffice(tmp_path: Path, soffice: str) -> None:
    from datetime import date
    from zoneinfo import ZoneInfo

    from support.views import activity
    from syncd.outputs.view import build_view
    from syncd.outputs.workbook import write_timeline

    path = tmp_path / "t.xlsx"
    write_timeline(path, build_view([activity("=1+1", ["A"])], [], date(2026, 11, 3), ZoneInfo("UTC")))
    result = subprocess.run(
        [
            soffice,
            f"-env:UserInstallation=file://{tmp_path / 'p'}",
            "--headless",
            "--convert-to",
            CSV_ALL_SHEETS,
            "--outdir",
            str(tmp_path),
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    rows = list(csv.reader((tmp_path / "t-Timeline.csv").open(encoding="utf-8")))
    assert rows[1][4] == "=1+1"  # not 2
    assert rows[1][5] == "=cmd|' /C calc'!A0"


@pytest.mark.libreoffice
def test_libreoffice_keeps_sheets_tables_and_charts_when_it_resaves_the_workbook(tmp_path: Path, soffice: str) -> None:
    """LibreOffice opens the workbook and saves it again as .xlsx: the four sheets, the three
    tables with their data and the three Reports charts (bar charts over the Reports tables)
    are all still there."""
    import re
    import zipfile

    import openpyxl

    demo = tmp_path / "demo"
    assert run_syncd("demo", "--dir", str(demo)).returncode == 0
    out = tmp_path / "resaved"
    result = subprocess.run(
        [
            soffice,
            f"-env:UserInstallation=file://{tmp_path / 'lo-profile'}",
            "--headless",
            "--convert-to",
            "xlsx",
            "--outdir",
            str(out),
            str(demo / "timeline.xlsx"),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    resaved = out / "timeline.xlsx"
    with zipfile.ZipFile(resaved) as archive:
        charts = [archive.read(n).decode() for n in archive.namelist() if re.match(r"xl/charts/chart\d+\.xml$", n)]
        tables = [archive.read(n).decode() for n in archive.namelist() if re.match(r"xl/tables/table\d+\.xml$", n)]
    assert len(charts) == 3 and all("<c:barChart>" in c for c in charts)
    assert all("Reports!" in c for c in charts)  # each chart still plots the Reports tables
    assert sorted(re.search(r'displayName="(\w+)"', t).group(1) for t in tables) == ["Customers", "Review", "Timeline"]
    original = openpyxl.load_workbook(demo / "timeline.xlsx", read_only=True)
    copy = openpyxl.load_workbook(resaved, read_only=True)
    assert copy.sheetnames == original.sheetnames == ["Timeline", "Customers", "Review", "Reports"]

    def rows(book: openpyxl.Workbook, name: str) -> list[tuple]:
        trimmed = [tuple(row[:5]) + (None,) * (5 - len(row[:5])) for row in book[name].iter_rows(values_only=True)]
        return [r for r in trimmed if any(v is not None for v in r)]

    for name in ("Timeline", "Reports"):
        assert rows(copy, name) == rows(original, name)
