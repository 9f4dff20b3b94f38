"""OneDrive and SharePoint through the Graph TEST DOUBLE's drive part (tests/support/doubles/drive_double.py).

Upload sessions with a failed chunk resumed, simple uploads, a 423 locked file, a 409 name
conflict, a foreign file left alone, and the timeline published by the real pipeline only
when it changed.
"""

from __future__ import annotations

import io
import json
import os
from datetime import timedelta
from pathlib import Path

import openpyxl
import pytest

from support.doubles.graph_double import GraphDouble
from support.exchange import ALICE, NOW, iso
from support.graph_client import client
from support.helpers import run_syncd, write_config
from syncd.connectors.graph.drive import Drive, DriveLocked, ForeignRemoteFile
from syncd.pipeline.publish import carries_syncd_mark

SITE = "contoso.sharepoint.com:/sites/Sales"


def never_ours(_data: bytes) -> bool:
    return False


def test_a_large_file_goes_up_in_chunks_and_a_failed_chunk_resumes(graph_double: GraphDouble, tmp_path: Path) -> None:
    library = graph_double.drive.site_drive(SITE)
    drive = Drive.of_site(client(graph_double, tmp_path), SITE)
    data = os.urandom(9 * 1024 * 1024 + 12345)
    graph_double.drive.fail_chunks = [1]  # the second chunk is answered 500 once
    item = drive.upload("CRM", "timeline.xlsx", data, None, never_ours)
    stored = library.files[item.id]
    assert stored.data == data and stored.path == "CRM/timeline.xlsx"
    chunks = graph_double.recorded("PUT", "/upload/")
    assert len(chunks) >= 4 and all("Authorization" not in c.headers for c in chunks)
    assert graph_double.recorded("GET", "/upload/"), "the failed chunk was followed by a status request"
    # Replacing it later goes to the same item.
    again = drive.upload("CRM", "timeline.xlsx", data[::-1], item.id, never_ours)
    assert again.id == item.id and library.files[item.id].data == data[::-1]


def test_a_small_file_is_one_put_and_a_foreign_file_is_never_replaced(
    graph_double: GraphDouble, tmp_path: Path
) -> None:
    library = graph_double.drive.site_drive(SITE)
    drive = Drive.of_site(client(graph_double, tmp_path), SITE)
    item = drive.upload("CRM", "timeline.xlsx", b"PK-small", None, never_ours)
    assert library.files[item.id].data == b"PK-small"
    staff = graph_double.drive.put_file(library, "CRM/forecast.xlsx", b"staff's own workbook")
    with pytest.raises(ForeignRemoteFile, match="did not create"):
        drive.upload("CRM", "forecast.xlsx", b"ours", None, never_ours)
    assert library.files[staff.id].data == b"staff's own workbook"
    # A workbook carrying syncd's mark is taken back (the store was lost).
    book = openpyxl.Workbook()
    book.properties.keywords = "syncd-timeline"
    buffer = io.BytesIO()
    book.save(buffer)
    marked = graph_double.drive.put_file(library, "CRM/old-timeline.xlsx", buffer.getvalue())
    taken = drive.upload("CRM", "old-timeline.xlsx", b"new", None, carries_syncd_mark)
    assert taken.id == marked.id and library.files[marked.id].data == b"new"


def test_a_locked_file_and_a_name_that_appears_meanwhile(graph_double: GraphDouble, tmp_path: Path) -> None:
    library = graph_double.drive.site_drive(SITE)
    drive = Drive.of_site(client(graph_double, tmp_path), SITE)
    item = drive.upload("CRM", "timeline.xlsx", b"one", None, never_ours)
    library.locked.add("CRM/timeline.xlsx")
    with pytest.raises(DriveLocked, match="locked"):
        drive.upload("CRM", "timeline.xlsx", b"two", item.id, never_ours)
    library.locked.clear()
    # 409: between our look (nothing there) and our PUT, someone saved a file of that name.
    real_item = drive.item
    drive.item = lambda path: None  # type: ignore[method-assign]
    graph_double.drive.put_file(library, "CRM/race.xlsx", b"theirs")
    with pytest.raises(ForeignRemoteFile, match="409"):
        drive.upload("CRM", "race.xlsx", b"ours", None, never_ours)
    drive.item = real_item  # type: ignore[method-assign]


def _app_secret(graph_double: GraphDouble, tmp_path: Path) -> Path:
    """The app's client secret in a private file, and the double knowing the app."""
    secret = tmp_path / "client-secret"
    secret.write_text("Graph-Secret-LEAKCHECK-93c1")
    os.chmod(secret, 0o600)
    graph_double.clients["11111111-2222-3333-4444-555555555555"] = "Graph-Secret-LEAKCHECK-93c1"
    return secret


def _config(graph_double: GraphDouble, tmp_path: Path, publish: str) -> Path:
    secret = _app_secret(graph_double, tmp_path)
    graph_double.mailbox(ALICE)
    book = openpyxl.Workbook()
    book.active.append(["Company", "Website", "Owner"])
    book.active.append(["Adriatic Foods d.o.o.", "adriaticfoods.hr", ALICE])
    book.save(tmp_path / "customers.xlsx")
    return write_config(
        tmp_path / "syncd.toml",
        f"""
[service]
state_dir = "state"
[matching]
internal_domains = ["ourco.example"]
[timeline]
path = "timeline.xlsx"
per_owner = true
[timeline.publish]
{publish}
[[sources]]
name = "customers"
kind = "excel_customers"
path = "customers.xlsx"
[sources.columns]
company = "Company"
domain = "Website"
owner = "Owner"
[[sources]]
name = "alice"
kind = "graph"
tenant_id = "{graph_double.tenant}"
client_id = "11111111-2222-3333-4444-555555555555"
client_secret_secret = {{ file = "{secret}" }}
owner = "{ALICE}"
authority_host = "{graph_double.base}"
graph_url = "{graph_double.graph_url}"
calendar = false
""",
    )


def test_the_timeline_is_published_when_it_changed_and_per_owner_into_each_onedrive(
    graph_double: GraphDouble, tmp_path: Path
) -> None:
    library = graph_double.drive.site_drive(SITE)
    config = _config(graph_double, tmp_path, f'via = "alice"\nsite = "{SITE}"\nfolder = "CRM"\nowners_onedrive = true')
    graph_double.add_message(
        ALICE, "inbox", sender="ivana@adriaticfoods.hr", to=[ALICE], subject="Offer", when=iso(NOW - timedelta(days=1))
    )
    first = run_syncd("sync", "--once", "-c", str(config))
    assert first.returncode == 0, first.stdout + first.stderr
    published = {f.path: f for f in library.files.values()}
    assert set(published) == {"CRM/timeline.xlsx"}
    assert published["CRM/timeline.xlsx"].data == (tmp_path / "timeline.xlsx").read_bytes()
    own = graph_double.drive.user_drive(ALICE)
    assert [f.path for f in own.files.values()] == [f"CRM/timeline-{ALICE}.xlsx"]
    uploads = len(graph_double.recorded("PUT", "/content"))
    second = run_syncd("sync", "--once", "-c", str(config))
    assert second.returncode == 0 and len(graph_double.recorded("PUT", "/content")) == uploads  # unchanged: none
    graph_double.add_message(
        ALICE, "inbox", sender="ivana@adriaticfoods.hr", to=[ALICE], subject="Order", when=iso(NOW - timedelta(hours=2))
    )
    third = run_syncd("sync", "--once", "-c", str(config))
    assert third.returncode == 0, third.stdout
    after = {f.path: f for f in library.files.values()}
    assert after["CRM/timeline.xlsx"].id == published["CRM/timeline.xlsx"].id  # replaced in place
    assert after["CRM/timeline.xlsx"].data == (tmp_path / "timeline.xlsx").read_bytes()


def test_a_foreign_file_at_the_target_is_named_in_status(graph_double: GraphDouble, tmp_path: Path) -> None:
    library = graph_double.drive.site_drive(SITE)
    graph_double.drive.put_file(library, "CRM/timeline.xlsx", b"a staff workbook of the same name")
    config = _config(graph_double, tmp_path, f'via = "alice"\nsite = "{SITE}"\nfolder = "CRM"')
    result = run_syncd("sync", "--once", "-c", str(config))
    assert result.returncode == 1
    status = json.loads(run_syncd("status", "--json", "-c", str(config)).stdout)
    assert any("did not create" in why for why in status["attention"].values()), status["attention"]
    assert next(iter(library.files.values())).data == b"a staff workbook of the same name"
    assert (tmp_path / "timeline.xlsx").exists()  # the local copy is written all the same


def test_publish_via_must_name_an_app_graph_source(tmp_path: Path) -> None:
    path = write_config(tmp_path / "syncd.toml", '[timeline.publish]\nvia = "nobody"\nuser = "alice@ourco.example"\n')
    result = run_syncd("check-config", "-c", str(path))
    assert result.returncode == 2 and "timeline.publish.via" in result.stderr + result.stdout


def _workbook(rows: list[tuple[str, str]]) -> bytes:
    book = openpyxl.Workbook()
    book.active.append(["Company", "Website"])
    for row in rows:
        book.active.append(list(row))
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _drive_config(graph_double: GraphDouble, tmp_path: Path, where: str) -> Path:
    secret = _app_secret(graph_double, tmp_path)
    return write_config(
        tmp_path / "syncd.toml",
        f"""
[service]
state_dir = "state"
[timeline]
path = "timeline.xlsx"
[[sources]]
name = "team-customers"
kind = "drive_customers"
tenant_id = "{graph_double.tenant}"
client_id = "11111111-2222-3333-4444-555555555555"
client_secret_secret = {{ file = "{secret}" }}
authority_host = "{graph_double.base}"
graph_url = "{graph_double.graph_url}"
site = "{SITE}"
{where}
[sources.columns]
company = "Company"
domain = "Website"
""",
    )


def _customers(tmp_path: Path) -> list[str]:
    status = json.loads(run_syncd("status", "--json", "-c", str(tmp_path / "syncd.toml")).stdout)
    return [status["customers"]]


def test_a_workbook_in_sharepoint_is_downloaded_only_when_its_content_changed(
    graph_double: GraphDouble, tmp_path: Path
) -> None:
    library = graph_double.drive.site_drive(SITE)
    item = graph_double.drive.put_file(library, "Sales/Customers.xlsx", _workbook([("Adriatic Foods", "adriatic.hr")]))
    config = _drive_config(graph_double, tmp_path, 'path = "Sales/Customers.xlsx"')
    first = run_syncd("sync", "--once", "-c", str(config))
    assert first.returncode == 0, first.stdout + first.stderr
    assert _customers(tmp_path) == [1]
    downloads = len(graph_double.recorded("GET", "/content"))
    assert downloads == 1
    assert run_syncd("sync", "--once", "-c", str(config)).returncode == 0
    assert len(graph_double.recorded("GET", "/content")) == downloads  # cTag unchanged: not downloaded
    graph_double.drive.put_file(
        library, "Sales/Customers.xlsx", _workbook([("Adriatic Foods", "adriatic.hr"), ("Nordic Retail", "nordic.se")])
    )
    assert run_syncd("sync", "--once", "-c", str(config)).returncode == 0
    assert _customers(tmp_path) == [2] and len(graph_double.recorded("GET", "/content")) == downloads + 1
    # Locked while someone edits it: an error this pass, read next pass; nothing half-read.
    library.locked.add(item.path)
    graph_double.drive.put_file(library, "Sales/Customers.xlsx", _workbook([("Adriatic Foods", "adriatic.hr")]))
    locked = run_syncd("sync", "--once", "-c", str(config))
    assert locked.returncode == 1 and "locked" in locked.stdout
    assert _customers(tmp_path) == [2]
    library.locked.clear()
    assert run_syncd("sync", "--once", "-c", str(config)).returncode == 0
    assert _customers(tmp_path) == [1]


def test_a_folder_followed_by_delta_rename_keeps_deleted_goes(graph_double: GraphDouble, tmp_path: Path) -> None:
    library = graph_double.drive.site_drive(SITE)
    big = graph_double.drive.put_file(
        library, "Sales/Regions/North.xlsx", _workbook([(f"North {n}", f"north{n}.example") for n in range(10)])
    )
    small = graph_double.drive.put_file(library, "Sales/South.xlsx", _workbook([("South 1", "south1.example")]))
    graph_double.drive.put_file(library, "Elsewhere/Other.xlsx", _workbook([("Other", "other.example")]))
    config = _drive_config(graph_double, tmp_path, 'folder = "Sales"')
    assert run_syncd("sync", "--once", "-c", str(config)).returncode == 0
    assert _customers(tmp_path) == [11]
    downloads = len(graph_double.recorded("GET", "/content"))
    graph_double.drive.rename(library, big.id, "North (old).xlsx")
    assert run_syncd("sync", "--once", "-c", str(config)).returncode == 0
    assert _customers(tmp_path) == [11] and len(graph_double.recorded("GET", "/content")) == downloads
    graph_double.drive.remove(library, small.id)
    assert run_syncd("sync", "--once", "-c", str(config)).returncode == 0
    assert _customers(tmp_path) == [10]


def test_a_mapping_error_names_the_workbook_as_staff_know_it(graph_double: GraphDouble, tmp_path: Path) -> None:
    library = graph_double.drive.site_drive(SITE)
    book = openpyxl.Workbook()
    book.active.append(["Firma", "Web"])  # not the headers the mapping names
    buffer = io.BytesIO()
    book.save(buffer)
    graph_double.drive.put_file(library, "Sales/Customers.xlsx", buffer.getvalue())
    config = _drive_config(graph_double, tmp_path, 'path = "Sales/Customers.xlsx"')
    result = run_syncd("sync", "--once", "-c", str(config))
    assert result.returncode == 1
    assert "Sales/Customers.xlsx (in the drive)" in result.stdout and "drive-cache" not in result.stdout


def test_moved_out_renamed_away_and_an_expired_delta(graph_double: GraphDouble, tmp_path: Path) -> None:
    """driveitem-delta: items carry no path (tracked by id); a 410 means list again and drop what is gone."""
    library = graph_double.drive.site_drive(SITE)
    files = [
        graph_double.drive.put_file(
            library, f"Sales/Team{n}.xlsx", _workbook([(f"Team{n} Co {m}", f"t{n}m{m}.example") for m in range(3)])
        )
        for n in range(6)
    ]
    config = _drive_config(graph_double, tmp_path, 'folder = "Sales"')
    assert run_syncd("sync", "--once", "-c", str(config)).returncode == 0
    assert _customers(tmp_path) == [18]
    graph_double.drive.move(library, files[0].id, "Archive")  # moved out of the followed folder
    graph_double.drive.rename(library, files[1].id, "Team1.txt")  # no longer a workbook
    assert run_syncd("sync", "--once", "-c", str(config)).returncode == 0
    assert _customers(tmp_path) == [12]
    graph_double.drive.remove(library, files[2].id)
    graph_double.drive.delta_expired = True
    assert run_syncd("sync", "--once", "-c", str(config)).returncode == 0
    assert _customers(tmp_path) == [9]


def test_a_held_drive_removal_is_kept_until_confirmed(graph_double: GraphDouble, tmp_path: Path) -> None:
    """The removal guard holds a deleted workbook that was most of the source, and the delta
    link does not move past it, so the removal is still there to confirm."""
    library = graph_double.drive.site_drive(SITE)
    big = graph_double.drive.put_file(
        library, "Sales/Big.xlsx", _workbook([(f"Big {n}", f"big{n}.example") for n in range(12)])
    )
    graph_double.drive.put_file(library, "Sales/Small.xlsx", _workbook([("Small", "small.example")]))
    config = _drive_config(graph_double, tmp_path, 'folder = "Sales"')
    assert run_syncd("sync", "--once", "-c", str(config)).returncode == 0
    graph_double.drive.remove(library, big.id)
    for _attempt in range(2):
        held = run_syncd("sync", "--once", "-c", str(config))
        assert "removals held" in held.stdout, held.stdout
        assert _customers(tmp_path) == [13]
    confirmed = run_syncd("sync", "--once", "--confirm-removals", "team-customers", "-c", str(config))
    assert confirmed.returncode == 0, confirmed.stdout
    assert _customers(tmp_path) == [1]


def test_publishing_to_an_owner_without_a_onedrive_is_an_output_error_not_a_crash(
    graph_double: GraphDouble, tmp_path: Path
) -> None:
    graph_double.drive.site_drive(SITE)
    config = _config(graph_double, tmp_path, f'via = "alice"\nsite = "{SITE}"\nfolder = "CRM"\nowners_onedrive = true')
    original = graph_double.drive.handle

    def no_onedrive_for_alice(method, rest, query, body, raw):  # type: ignore[no-untyped-def]
        if rest == f"users/{ALICE}/drive":
            return 404, {}, {"error": {"code": "ResourceNotFound", "message": "User's mysite not found."}}
        return original(method, rest, query, body, raw)

    graph_double.drive.handle = no_onedrive_for_alice  # type: ignore[method-assign]
    result = run_syncd("sync", "--once", "-c", str(config))
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr
    status = json.loads(run_syncd("status", "--json", "-c", str(config)).stdout)
    assert any("mysite not found" in why for why in status["attention"].values()), status["attention"]
