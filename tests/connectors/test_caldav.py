"""The CalDAV connector against a real Radicale: first sync, changes, series, zones, tokens, outages."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import openpyxl
import sqlalchemy as sa

from support.calendars import config, meetings
from support.helpers import make_message, run_syncd, write_config, write_maildir
from support.ics import NOW, ics, stamp
from support.servers.radicale import Radicale


def source(radicale: Radicale, user: str, password_file: Path, name: str = "calendar", **extra: object) -> str:
    password_file.write_text(radicale.users[user])
    os.chmod(password_file, 0o600)
    lines = [
        f'name = "{name}"',
        'kind = "caldav"',
        f'url = "{radicale.url}"',
        f'username = "{user}"',
        f'owner = "{user}"',
        f'password_secret = {{ file = "{password_file}" }}',
    ]
    lines += [f"{k} = {json.dumps(v)}" for k, v in extra.items()]
    return "[[sources]]\n" + "\n".join(lines) + "\n"


def sync(path: Path) -> str:
    result = run_syncd("sync", "--once", "-c", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_first_sync_then_add_move_cancel_delete_give_exactly_the_expected_meetings(radicale, tmp_path: Path) -> None:
    user = "changes@ourco.example"
    calendar = radicale.calendar(user, "Work")
    tomorrow = NOW + timedelta(days=1)
    calendar.save_event(ics("keep", tomorrow, "Offer review", attendees=(user,)))
    moved = calendar.save_event(ics("move", tomorrow + timedelta(hours=3), "Tasting", attendees=(user,)))
    cancelled = calendar.save_event(ics("cancel", NOW - timedelta(days=3), "Visit", attendees=(user,)))
    deleted = calendar.save_event(ics("delete", NOW - timedelta(days=5), "Call", attendees=(user,)))
    calendar.save_event(ics("private", tomorrow, "Dentist", attendees=(user,), extra="CLASS:PRIVATE"))
    calendar.save_event(ics("internal", tomorrow, "Team sync", organizer=user, attendees=("boss@ourco.example",)))
    path = config(tmp_path, source(radicale, user, tmp_path / "pw"))
    output = sync(path)
    first = meetings(tmp_path)
    assert set(first) == {"ical:keep#", "ical:move#", "ical:cancel#", "ical:delete#"}, output
    assert first["ical:keep#"][0] == tomorrow
    # Changes on the server: one added, one moved, one cancelled, one deleted.
    calendar.save_event(ics("added", NOW + timedelta(days=2), "Contract", attendees=(user,)))
    moved.data = ics("move", tomorrow + timedelta(hours=5), "Tasting (moved)", attendees=(user,))
    moved.save()
    cancelled.data = ics("cancel", NOW - timedelta(days=3), "Visit", attendees=(user,), extra="STATUS:CANCELLED")
    cancelled.save()
    deleted.delete()
    sync(path)
    after = meetings(tmp_path)
    assert set(after) == {"ical:keep#", "ical:move#", "ical:cancel#", "ical:added#"}
    assert after["ical:move#"][:2] == (tomorrow + timedelta(hours=5), "Tasting (moved)")
    assert after["ical:cancel#"][2] == "cancelled"
    assert after["ical:added#"][0] == NOW + timedelta(days=2)
    # The workbook: the cancelled meeting says so; the customer's next meeting is the soonest live one.
    book = openpyxl.load_workbook(tmp_path / "timeline.xlsx", read_only=True)
    kinds = {row[4]: row[2] for row in book["Timeline"].iter_rows(min_row=2, values_only=True)}
    assert kinds["Visit"] == "meeting (cancelled)" and kinds["Offer review"] == "meeting"
    header, *rows = list(book["Customers"].iter_rows(values_only=True))
    adriatic = dict(zip(header, next(r for r in rows if r[0] == "Adriatic Foods d.o.o."), strict=False))
    assert adriatic["Next meeting"] == tomorrow.replace(tzinfo=None)
    assert adriatic["Last contact"] is None  # the only past meeting was cancelled; the other was deleted
    # Nothing changed: the sync-token delta is empty and nothing is rewritten.
    assert "new=0 updated=0 removed=0" in sync(path)


def test_recurring_series_with_a_moved_occurrence(radicale, tmp_path: Path) -> None:
    user = "recurring@ourco.example"
    calendar = radicale.calendar(user, "Work")
    first = (NOW + timedelta(days=1)).replace(hour=9, minute=0)
    second = first + timedelta(days=7)
    override = "\r\n".join(
        [
            "BEGIN:VEVENT",
            "UID:weekly",
            f"DTSTAMP:{stamp(NOW)}",
            f"RECURRENCE-ID:{stamp(second)}",
            f"DTSTART:{stamp(second + timedelta(days=1, hours=5))}",
            f"DTEND:{stamp(second + timedelta(days=1, hours=6))}",
            "SUMMARY:Weekly call (moved)",
            "ORGANIZER:mailto:ivana@adriaticfoods.hr",
            f"ATTENDEE:mailto:{user}",
            "END:VEVENT",
        ]
    )
    calendar.save_event(
        ics(
            "weekly",
            first,
            "Weekly call",
            attendees=(user,),
            extra=f"RRULE:FREQ=WEEKLY;COUNT=4\r\nEXDATE:{stamp(first + timedelta(days=21))}",
            overrides=override,
        )
    )
    path = config(tmp_path, source(radicale, user, tmp_path / "pw"))
    sync(path)
    found = meetings(tmp_path)
    assert found == {
        f"ical:weekly#{stamp(first)}": (first, "Weekly call", ""),
        f"ical:weekly#{stamp(second)}": (second + timedelta(days=1, hours=5), "Weekly call (moved)", ""),
        f"ical:weekly#{stamp(first + timedelta(days=14))}": (first + timedelta(days=14), "Weekly call", ""),
    }  # the fourth is excluded by EXDATE


VTIMEZONE_NEW_YORK = """
BEGIN:VTIMEZONE
TZID:America/New_York
BEGIN:STANDARD
DTSTART:19701101T020000
RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU
TZOFFSETFROM:-0400
TZOFFSETTO:-0500
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:19700308T020000
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU
TZOFFSETFROM:-0500
TZOFFSETTO:-0400
END:DAYLIGHT
END:VTIMEZONE
"""


def test_zoned_all_day_and_floating_times_land_at_the_right_utc_moment(radicale, tmp_path: Path) -> None:
    user = "zones@ourco.example"
    calendar = radicale.calendar(user, "Work")
    day = (NOW + timedelta(days=10)).date()
    january = date(day.year + 1, 1, 15) if day.month > 6 else date(day.year, 1, 15) + timedelta(days=365)
    if (january - NOW.date()).days > 170:
        january = day  # keep it inside the 180-day window
    local = january.strftime("%Y%m%d")
    calendar.save_event(
        ics(
            "ny",
            f"DTSTART;TZID=America/New_York:{local}T090000",
            "New York call",
            timezone_block=VTIMEZONE_NEW_YORK,
            attendees=(user,),
        )
    )
    calendar.save_event(ics("allday", f"DTSTART;VALUE=DATE:{day.strftime('%Y%m%d')}", "Trade fair", attendees=(user,)))
    calendar.save_event(ics("floating", f"DTSTART:{day.strftime('%Y%m%d')}T140000", "Lunch", attendees=(user,)))
    path = config(tmp_path, source(radicale, user, tmp_path / "pw"), zone="Europe/Zagreb")
    sync(path)
    found = meetings(tmp_path)
    from zoneinfo import ZoneInfo

    expected_ny = datetime.combine(january, datetime.min.time().replace(hour=9), tzinfo=ZoneInfo("America/New_York"))
    assert found["ical:ny#"][0] == expected_ny.astimezone(timezone.utc)
    assert found["ical:allday#"][0] == datetime.combine(day, datetime.min.time(), tzinfo=timezone.utc)
    floating = datetime.combine(day, datetime.min.time().replace(hour=14), tzinfo=ZoneInfo("Europe/Zagreb"))
    assert found["ical:floating#"][0] == floating.astimezone(timezone.utc)


def test_an_invalidated_sync_token_resyncs_without_duplicates(radicale, tmp_path: Path) -> None:
    user = "token@ourco.example"
    calendar = radicale.calendar(user, "Work")
    for n in range(3):
        calendar.save_event(ics(f"t{n}", NOW + timedelta(days=n + 1), f"Meeting {n}", attendees=(user,)))
    path = config(tmp_path, source(radicale, user, tmp_path / "pw"))
    sync(path)
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'state' / 'syncd.db'}")
    with engine.begin() as c:
        value = json.loads(c.execute(sa.text("select value from cursors where folder = 'Work'")).scalar_one())
        value["token"] = "http://radicale.org/ns/sync/" + "0" * 64  # a token the server never issued
        c.execute(sa.text("update cursors set value = :v where folder = 'Work'"), {"v": json.dumps(value)})
    calendar.save_event(ics("t3", NOW + timedelta(days=9), "Meeting 3", attendees=(user,)))
    output = sync(path)
    assert "sync token rejected" in output
    with engine.connect() as c:
        assert c.execute(sa.text("select count(*) from activities where kind = 'meeting'")).scalar_one() == 4
        assert c.execute(sa.text("select count(*) from occurrences")).scalar_one() == 4
    engine.dispose()
    assert set(meetings(tmp_path)) == {f"ical:t{n}#" for n in range(4)}


def test_etag_mode_sees_additions_changes_and_deletions(radicale, tmp_path: Path) -> None:
    user = "etag@ourco.example"
    calendar = radicale.calendar(user, "Work")
    changing = calendar.save_event(ics("e1", NOW + timedelta(days=1), "First", attendees=(user,)))
    going = calendar.save_event(ics("e2", NOW + timedelta(days=2), "Second", attendees=(user,)))
    path = config(tmp_path, source(radicale, user, tmp_path / "pw", sync_method="etag"))
    sync(path)
    assert set(meetings(tmp_path)) == {"ical:e1#", "ical:e2#"}
    changing.data = ics("e1", NOW + timedelta(days=1), "First, renamed", attendees=(user,))
    changing.save()
    going.delete()
    calendar.save_event(ics("e3", NOW + timedelta(days=3), "Third", attendees=(user,)))
    output = sync(path)
    assert "new=1 updated=1 removed=1" in output
    found = meetings(tmp_path)
    assert set(found) == {"ical:e1#", "ical:e3#"} and found["ical:e1#"][1] == "First, renamed"


def test_a_stopped_server_shows_in_status_and_other_sources_still_sync(tmp_path: Path) -> None:
    root = Path(tempfile.mkdtemp(prefix="syncd-radicale-down-"))
    server = Radicale(root).start()
    try:
        user = "down@ourco.example"
        server.calendar(user, "Work").save_event(ics("d1", NOW + timedelta(days=1), "Visit", attendees=(user,)))
        write_maildir(tmp_path / "mail", {f"m{n}": make_message(n, to="down@ourco.example") for n in range(3)})
        mail = '[[sources]]\nname = "mail"\nkind = "maildir"\npath = "mail"\nowner = "down@ourco.example"\n'
        path = config(tmp_path, source(server, user, tmp_path / "pw"), mail)
        sync(path)
        assert set(meetings(tmp_path)) == {"ical:d1#"}
        server.stop()
        write_maildir(tmp_path / "mail", {"m9": make_message(9, to="down@ourco.example")})
        result = run_syncd("sync", "--once", "-c", str(path))
        assert result.returncode != 0  # a failing source is a failed pass
        status = run_syncd("status", "-c", str(path))
        calendar_line = next(line for line in status.stdout.splitlines() if "calendar" in line)
        assert "ERROR" in calendar_line and "cannot reach" in calendar_line, status.stdout
        mail_line = next(line for line in status.stdout.splitlines() if line.lstrip().startswith("mail"))
        assert "ERROR" not in mail_line
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'state' / 'syncd.db'}")
        with engine.connect() as c:
            assert c.execute(sa.text("select count(*) from activities where kind = 'email'")).scalar_one() == 4
        engine.dispose()
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_calendars_are_discovered_or_chosen_by_name_and_a_wrong_name_says_what_exists(radicale, tmp_path: Path) -> None:
    user = "first@ourco.example"
    radicale.calendar(user, "Work").save_event(ics("w1", NOW + timedelta(days=1), "Work meeting", attendees=(user,)))
    radicale.calendar(user, "Fairs").save_event(ics("f1", NOW + timedelta(days=2), "Fair", attendees=(user,)))
    everything = tmp_path / "all"
    everything.mkdir()
    sync(config(everything, source(radicale, user, everything / "pw")))
    assert set(meetings(everything)) == {"ical:w1#", "ical:f1#"}
    chosen = tmp_path / "chosen"
    chosen.mkdir()
    sync(config(chosen, source(radicale, user, chosen / "pw", calendars=["Fairs"])))
    assert set(meetings(chosen)) == {"ical:f1#"}
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    result = run_syncd(
        "sync", "--once", "-c", str(config(wrong, source(radicale, user, wrong / "pw", calendars=["Fares"])))
    )
    assert result.returncode != 0
    assert "no calendar named 'Fares'" in result.stderr and "Fairs" in result.stderr


def test_plain_http_to_another_host_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("x")
    os.chmod(tmp_path / "pw", 0o600)
    path = write_config(
        tmp_path / "syncd.toml",
        (
            '[[sources]]\nname = "cal"\nkind = "caldav"\nurl = "http://dav.example.com/"\nusername = "u"\n'
            f'owner = "u@ourco.example"\npassword_secret = {{ file = "{tmp_path / "pw"}" }}\n'
        ),
    )
    result = run_syncd("check-config", "-c", str(path))
    assert result.returncode != 0
    assert "sources[0] (cal).url" in result.stdout + result.stderr and "https://" in result.stdout + result.stderr
