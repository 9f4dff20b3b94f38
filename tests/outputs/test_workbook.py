"""The timeline workbook: untrusted text stays text, writes are atomic, the view is pure."""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl
import pytest

from support.views import activity, customer
from syncd.outputs.cells import EXCEL_CELL_LIMIT, safe_text
from syncd.outputs.view import TIMELINE_HEADERS, build_view
from syncd.outputs.workbook import TimelineWriteError, write_timeline


@pytest.mark.parametrize(
    "raw, text, quoted",
    [
        ('=HYPERLINK("http://evil","x")', '=HYPERLINK("http://evil","x")', True),
        ("+1 555", "+1 555", True),
        ("-2+3", "-2+3", True),
        ("@SUM(A1)", "@SUM(A1)", True),
        ("\tTab", "\tTab", True),
        ("plain", "plain", False),
        ("bell\x07 and nul\x00", "bell and nul", False),
    ],
)
def test_safe_text(raw: str, text: str, quoted: bool) -> None:
    assert safe_text(raw) == (text, quoted)


def test_overlong_text_is_cut_to_the_excel_cell_limit() -> None:
    text, _ = safe_text("x" * 40_000)
    assert len(text) == EXCEL_CELL_LIMIT


def test_formula_like_mail_text_is_stored_as_text_with_quote_prefix(tmp_path: Path) -> None:
    view = build_view([activity("=1+1", ["Adriatic"])], [], date(2026, 11, 3), ZoneInfo("Europe/Zagreb"))
    path = tmp_path / "timeline.xlsx"
    write_timeline(path, view)
    sheet = openpyxl.load_workbook(path)["Timeline"]
    assert [c.value for c in sheet[1]] == list(TIMELINE_HEADERS)
    subject, snippet = sheet["E2"], sheet["F2"]
    assert (subject.value, subject.data_type, subject.quotePrefix) == ("=1+1", "s", True)
    assert (snippet.data_type, snippet.quotePrefix) == ("s", True)
    assert sheet["A2"].value == datetime(2026, 11, 2, 10, 0)  # shown in the configured zone
    assert sheet.freeze_panes == "A2" and "Timeline" in sheet.tables


def test_review_lists_unmatched_and_customers_show_days_since() -> None:
    customers = [
        customer(
            "Adriatic",
            id=7,
            owner="alice",
            last_contact=datetime(2026, 11, 1, 12, tzinfo=timezone.utc),
            count_30=1,
            count_90=1,
            total=1,
        )
    ]
    view = build_view([activity("a", []), activity("b", ["Adriatic"])], customers, date(2026, 11, 11), ZoneInfo("UTC"))
    assert [r[1] for r in view.review] == ["a"]
    assert view.customers[0][6] == 10
    assert (
        view.content_hash()
        == build_view(
            [activity("a", []), activity("b", ["Adriatic"])], customers, date(2026, 11, 11), ZoneInfo("UTC")
        ).content_hash()
    )


def test_a_failed_write_leaves_the_old_workbook_and_no_temp_file(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "timeline.xlsx"
    write_timeline(path, build_view([activity("old", ["A"])], [], date(2026, 11, 3), ZoneInfo("UTC")))
    before = path.read_bytes()

    def disk_full(fd: int) -> None:  # the data did not fit: the flush to disk fails
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("syncd.outputs.workbook.os.fsync", disk_full)
    with pytest.raises(TimelineWriteError, match="No space left"):
        write_timeline(path, build_view([activity("new", ["A"])], [], date(2026, 11, 3), ZoneInfo("UTC")))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["timeline.xlsx"]
