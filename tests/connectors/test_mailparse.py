"""Broken and odd mail becomes an activity where it can, and a reasoned Problem where not."""

from __future__ import annotations

from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.connectors.mailparse import _plain_date, parse_message
from syncd.model.records import ActivityRecord, Direction, Problem, Role

OWNER = frozenset({"alice@ourco.example"})


def parse(raw: bytes, fallback: datetime | None = None) -> ActivityRecord | Problem:
    return parse_message(
        raw,
        key="INBOX/1",
        mailbox="alice@ourco.example",
        folder="INBOX",
        owner_addresses=OWNER,
        snippet_chars=80,
        fallback_date=(lambda: fallback) if fallback else None,
    )


def test_rfc2047_subject_and_latin2_body_are_decoded() -> None:
    raw = (
        b"From: =?iso-8859-2?q?Ivana_Horvat?= <Ivana.Horvat@Adriatic.HR>\r\nTo: alice@ourco.example\r\n"
        b"Subject: =?iso-8859-2?q?Ponuda_za_=BEitarice?=\r\nDate: Mon, 02 Nov 2026 10:00:00 +0100\r\n"
        b"Message-ID: <abc@adriatic.hr>\r\nContent-Type: text/plain; charset=iso-8859-2\r\n\r\n"
        + "Poštovana, šaljemo ponudu.\r\n".encode("iso-8859-2")
    )
    record = parse(raw)
    assert isinstance(record, ActivityRecord)
    assert record.subject == "Ponuda za žitarice"
    assert record.snippet == "Poštovana, šaljemo ponudu."
    assert record.participants[0] == type(record.participants[0])("ivana.horvat@adriatic.hr", "Ivana Horvat", Role.FROM)
    assert record.occurred_at == datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)
    assert record.message_id == "abc@adriatic.hr" and record.direction == Direction.INBOUND


def test_unknown_charset_still_gives_a_snippet() -> None:
    raw = (
        b"From: k@baltic.pl\r\nTo: alice@ourco.example\r\nDate: Mon, 02 Nov 2026 10:00:00 +0000\r\n"
        b"Content-Type: text/plain; charset=x-no-such-charset\r\n\r\nDzie\xf1 dobry\r\n"
    )
    record = parse(raw)
    assert isinstance(record, ActivityRecord)
    assert record.snippet.startswith("Dzie")


def test_missing_date_uses_delivery_date_and_says_so() -> None:
    raw = b"From: k@baltic.pl\r\nTo: alice@ourco.example\r\nSubject: no date\r\n\r\nbody\r\n"
    delivered = datetime(2026, 11, 1, tzinfo=timezone.utc)
    record = parse(raw, delivered)
    assert isinstance(record, ActivityRecord)
    assert record.occurred_at == delivered and record.hint("x-syncd-date-source") == "delivery"
    problem = parse(raw)
    assert isinstance(problem, Problem) and "Date" in problem.reason


def test_unparseable_date_falls_back_instead_of_crashing() -> None:
    raw = b"From: k@baltic.pl\r\nTo: a@ourco.example\r\nDate: the day after tomorrow\r\n\r\nx\r\n"
    record = parse(raw, datetime(2026, 1, 1, tzinfo=timezone.utc))
    assert isinstance(record, ActivityRecord) and record.occurred_at.year == 2026


def test_message_without_addresses_is_a_problem_with_a_reason() -> None:
    problem = parse(b"\x00\x01this is not a message\r\n\xff garbage\r\n")
    assert isinstance(problem, Problem) and "address" in problem.reason
    assert isinstance(parse(b"   \r\n"), Problem)


def test_broken_address_header_keeps_the_good_addresses() -> None:
    raw = (
        b'From: "Unclosed <ivana@adriatic.hr>\r\nTo: alice@ourco.example, <<<>>>, bob@@x\r\n'
        b"Date: Mon, 02 Nov 2026 10:00:00 +0000\r\n\r\nhi\r\n"
    )
    record = parse(raw)
    assert isinstance(record, ActivityRecord)
    assert "alice@ourco.example" in {p.email for p in record.participants}


def test_outbound_direction_thread_key_and_quoted_text_dropped() -> None:
    raw = (
        b"From: Alice <ALICE@ourco.example>\r\nTo: ivana@adriatic.hr\r\nDate: Mon, 02 Nov 2026 10:00:00 +0000\r\n"
        b"Message-ID: <r2@ourco.example>\r\nIn-Reply-To: <r1@adriatic.hr>\r\n"
        b"References: <r0@adriatic.hr> <r1@adriatic.hr>\r\n"
        b"\r\nThanks, confirmed.\r\n\r\nOn Mon, Ivana wrote:\r\n> please confirm\r\n"
    )
    record = parse(raw)
    assert isinstance(record, ActivityRecord)
    assert record.direction == Direction.OUTBOUND
    assert record.thread_key == "r0@adriatic.hr"
    assert record.snippet == "Thanks, confirmed."


def test_html_only_mail_snippet_has_no_tags_and_no_body_is_kept_by_default() -> None:
    raw = (
        b"From: a@b.example\r\nTo: alice@ourco.example\r\nDate: Mon, 02 Nov 2026 10:00:00 +0000\r\n"
        b"Content-Type: text/html; charset=utf-8\r\n\r\n<html><style>p{}</style><p>Hello <b>there</b></p></html>\r\n"
    )
    record = parse(raw)
    assert isinstance(record, ActivityRecord)
    assert record.snippet == "Hello there" and record.body is None


def test_automation_headers_are_passed_as_hints() -> None:
    raw = (
        b"From: noreply@shop.example\r\nTo: alice@ourco.example\r\nDate: Mon, 02 Nov 2026 10:00:00 +0000\r\n"
        b"Auto-Submitted: auto-generated\r\nPrecedence: bulk\r\n\r\nx\r\n"
    )
    record = parse(raw)
    assert isinstance(record, ActivityRecord)
    assert record.hint("auto-submitted") == "auto-generated" and record.hint("precedence") == "bulk"


def test_raw_8bit_headers_are_read_as_utf8_or_the_declared_charset() -> None:
    for charset in ("utf-8", "iso-8859-2"):
        raw = (
            "From: Željko Šimić <z@firma.hr>\r\nTo: alice@ourco.example\r\nSubject: Čaj i kava\r\n"
            "Date: Mon, 02 Nov 2026 10:00:00 +0000\r\n"
            f"Content-Type: text/plain; charset={charset}\r\n\r\nbody\r\n"
        ).encode(charset)
        record = parse(raw)
        assert isinstance(record, ActivityRecord)
        assert record.subject == "Čaj i kava"
        assert record.participants[0].name == "Željko Šimić"


@settings(max_examples=500, deadline=None)
@given(
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2099, 12, 31)),
    st.integers(-14 * 60, 14 * 60),
    st.booleans(),
    st.booleans(),
    st.sampled_from(["", " (CET)", "  "]),
    st.sampled_from(["%b", "%b", "X"]),
)
def test_plain_dates_are_read_exactly_as_email_utils_reads_them(
    when, offset_minutes, weekday, seconds, comment, month
) -> None:  # type: ignore[no-untyped-def]
    sign = "-" if offset_minutes < 0 else "+"
    zone = f"{sign}{abs(offset_minutes) // 60:02d}{abs(offset_minutes) % 60:02d}"
    month_name = when.strftime("%b") if month == "%b" else "Xyz"
    text = (
        f"{when.strftime('%a') + ', ' if weekday else ''}{when.day} {month_name} {when.year} "
        f"{when.strftime('%H:%M')}{when.strftime(':%S') if seconds else ''} {zone}{comment}"
    )
    try:
        expected = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        expected = None
    if expected is not None:
        expected = (expected if expected.tzinfo else expected.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)
    plain = _plain_date(text)
    assert plain is None or plain == expected  # a shape it does not take is left to email.utils
    if month == "%b":
        assert plain == expected  # every well-formed date takes the fast path
