"""CalDAV servers other than Radicale: a real Xandikos, and Cyrus's discovery through a stand-in.

Named after the server and the quirk. Xandikos runs from PyPI on loopback (see
tests/support/servers/xandikos.py); Cyrus CalDAV's root-URL answers are reproduced by
tests/support/servers/caldav_standin.py.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import pytest

from support.calendars import config, meetings
from support.helpers import run_syncd
from support.ics import NOW, ics
from support.servers.caldav_standin import CaldavStandin
from support.servers.xandikos import Xandikos
from syncd.connectors import caldav_discovery as discovery
from syncd.connectors.caldav_calendar import CaldavAccount, CaldavConnector
from syncd.model.errors import SourceConfigError
from syncd.model.records import ActivityRecord, ReadOptions, SourceState


def caldav_source(url: str, password_file: Path, user: str = "first@ourco.example") -> str:
    password_file.write_text("any")
    os.chmod(password_file, 0o600)
    return (
        '[[sources]]\nname = "calendar"\nkind = "caldav"\n'
        f'url = "{url}"\nusername = "{user}"\nowner = "{user}"\n'
        f'password_secret = {{ file = "{password_file}" }}\n'
    )


def read(url: str, user: str = "alice") -> list[ActivityRecord]:
    account = CaldavAccount(url=url, username=user, password=lambda: "any", owner="first@ourco.example")
    connector = CaldavConnector("calendar", ReadOptions(), account)
    try:
        return [r for b in connector.read(SourceState({}, {})) for r in b.records if isinstance(r, ActivityRecord)]
    finally:
        connector.close()


@pytest.fixture
def xandikos_events(xandikos: Xandikos):  # type: ignore[no-untyped-def]
    calendar = xandikos.calendar()
    for event in calendar.events():
        event.delete()
    saved = [
        calendar.save_event(
            ics(f"x{n}", NOW + timedelta(days=n - 2), f"Review {n}", attendees=("first@ourco.example",))
        )
        for n in range(4)
    ]
    yield xandikos, saved
    for event in calendar.events():
        event.delete()


@pytest.mark.parametrize("path", ["", ".well-known/caldav", "user/"])
def test_xandikos_from_its_root_its_well_known_uri_or_its_principal(xandikos_events, path: str) -> None:
    server, _saved = xandikos_events
    found = read(server.url + path)
    assert sorted(r.subject for r in found) == [f"Review {n}" for n in range(4)]


def test_xandikos_sync_changes_and_deletions_through_the_pipeline(xandikos_events, tmp_path: Path) -> None:
    server, saved = xandikos_events
    path = config(tmp_path, caldav_source(server.url + ".well-known/caldav", tmp_path / "pw"))
    first = run_syncd("sync", "--once", "-c", str(path))
    assert first.returncode == 0, first.stdout + first.stderr
    assert sorted(s for _t, s, _st in meetings(tmp_path).values()) == [f"Review {n}" for n in range(4)]
    saved[0].delete()
    server.calendar().save_event(ics("x9", NOW + timedelta(days=3), "Kickoff", attendees=("first@ourco.example",)))
    second = run_syncd("sync", "--once", "-c", str(path))
    assert second.returncode == 0, second.stdout
    assert sorted(s for _t, s, _st in meetings(tmp_path).values()) == ["Kickoff", "Review 1", "Review 2", "Review 3"]


def test_xandikos_wrong_path_names_the_url_and_the_principal_to_use(xandikos: Xandikos) -> None:
    with pytest.raises(SourceConfigError) as raised:
        read(xandikos.url + "calendars/nobody/")
    message = str(raised.value)
    assert "\n" not in message
    assert f"tried {xandikos.url}calendars/nobody/" in message
    assert f"{xandikos.url.rstrip('/')}/user/" in message


@pytest.mark.parametrize("path", ["", ".well-known/caldav"])
def test_cyrus_root_without_a_principal_is_an_error_not_an_empty_sync(path: str) -> None:
    with CaldavStandin() as server:
        with pytest.raises(SourceConfigError) as raised:
            read(server.url + path, user="alice")
        message = str(raised.value)
        assert "CalDAV discovery found no calendar" in message
        # The well-known redirect (RFC 6764) was followed, and both URLs are named.
        assert f"tried {server.url}.well-known/caldav, {server.url}dav/" in message
        assert f"{server.url}dav/principals/user/alice/" in message
        assert ("GET", "/.well-known/caldav") in server.requests


def test_cyrus_root_url_fails_the_source_in_status(tmp_path: Path) -> None:
    with CaldavStandin() as server:
        path = config(tmp_path, caldav_source(server.url, tmp_path / "pw", user="alice"))
        result = run_syncd("sync", "--once", "-c", str(path))
        assert result.returncode == 1
        assert "CalDAV discovery found no calendar" in result.stdout
        status = json.loads(run_syncd("status", "--json", "-c", str(path)).stdout)
        calendar = next(s for s in status["sources"] if s["name"] == "calendar")
        assert "dav/principals/user/alice/" in calendar["error"]
        assert "Traceback" not in result.stdout + result.stderr


def test_caldav_quirk_table_names_each_server_from_its_server_header() -> None:
    assert discovery.identify("Cyrus-HTTP/3.6.1 Cyrus-SASL/2.1.28").name == "Cyrus CalDAV"
    assert discovery.identify("Python/3.11 aiohttp/3.14.5").name == "Xandikos"
    assert discovery.identify("Radicale/3.9").name == "Radicale"
    assert discovery.identify(None) is discovery.GENERIC
    assert discovery.needs_well_known("https://dav.example/") and discovery.needs_well_known("https://d.example")
    assert discovery.needs_well_known("https://dav.example/.well-known/caldav/")
    assert not discovery.needs_well_known("https://dav.example/dav/principals/user/alice/")
