"""The OneDrive/SharePoint part of the Graph TEST DOUBLE — not a drive server.

Routes and shapes from Microsoft's driveItem pages: get a drive (drive-get), an item by
path (driveitem-get), its content (driveitem-get-content: here 200 with the bytes; Graph
answers 302 to a download URL, which requests follows the same way), simple upload with
``@microsoft.graph.conflictBehavior`` (driveitem-put-content: 409 ``nameAlreadyExists``
with ``fail``), upload sessions (driveitem-createuploadsession: chunks with Content-Range,
202 with ``nextExpectedRanges``, the item with 201 at the end; the upload URL needs no
token; a GET on it tells where to resume), 423 ``resourceLocked`` (``lock``), and
``root/delta`` with ``@odata.deltaLink`` and the ``deleted`` facet (driveitem-delta). As
that page's Remarks say of business drives, delta items carry no ``parentReference.path``
and no ``cTag`` (only ``parentReference.id``): a client must track items by id. Folders are
items too, with ids of their own.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote


@dataclass
class DriveFile:
    id: str
    folder: str
    name: str
    data: bytes
    version: int = 1
    deleted: bool = False

    @property
    def path(self) -> str:
        return f"{self.folder}/{self.name}".strip("/")


@dataclass
class DoubleDrive:
    id: str
    files: dict[str, DriveFile] = field(default_factory=dict)
    log: list[tuple[int, str]] = field(default_factory=list)  # (sequence, item id)
    locked: set[str] = field(default_factory=set)  # paths answering 423


@dataclass
class UploadSession:
    drive: DoubleDrive
    folder: str
    name: str
    replace: str | None  # item id replaced, or None for a new file
    size: int = 0
    received: bytearray = field(default_factory=bytearray)


class DriveDouble:
    def __init__(self, base: str):
        self.base = base
        self.drives: dict[str, DoubleDrive] = {}
        self.user_drives: dict[str, str] = {}  # user -> drive id
        self.sites: dict[str, tuple[str, dict[str, str]]] = {}  # "host:/sites/x" -> (site id, {library: drive id})
        self.sessions: dict[str, UploadSession] = {}
        self.fail_chunks: list[int] = []  # chunk numbers (0-based, per session) answered 500 once
        self.delta_expired = False  # the next delta with a token is answered 410 resyncRequired
        self._seq = 0
        self._chunks_seen: dict[str, int] = {}

    # ---- arranging ---------------------------------------------------------------------

    def user_drive(self, user: str) -> DoubleDrive:
        drive_id = self.user_drives.setdefault(user.lower(), "b!" + uuid.uuid4().hex[:20])
        return self.drives.setdefault(drive_id, DoubleDrive(drive_id))

    def site_drive(self, site: str, library: str = "Documents") -> DoubleDrive:
        site_id, libraries = self.sites.setdefault(site, ("site-" + uuid.uuid4().hex[:12], {}))
        drive_id = libraries.setdefault(library, "b!" + uuid.uuid4().hex[:20])
        return self.drives.setdefault(drive_id, DoubleDrive(drive_id))

    def put_file(self, drive: DoubleDrive, path: str, data: bytes) -> DriveFile:
        folder, _, name = path.strip("/").rpartition("/")
        existing = next((f for f in drive.files.values() if f.path == path.strip("/") and not f.deleted), None)
        if existing is not None:
            existing.data, existing.version = data, existing.version + 1
            self._touch(drive, existing)
            return existing
        item = DriveFile("01" + uuid.uuid4().hex[:30].upper(), folder, name, data)
        drive.files[item.id] = item
        self._touch(drive, item)
        return item

    def rename(self, drive: DoubleDrive, item_id: str, name: str) -> None:
        item = drive.files[item_id]
        item.name = name
        self._touch(drive, item, content=False)

    def move(self, drive: DoubleDrive, item_id: str, folder: str) -> None:
        item = drive.files[item_id]
        item.folder = folder.strip("/")
        self._touch(drive, item, content=False)

    def remove(self, drive: DoubleDrive, item_id: str) -> None:
        drive.files[item_id].deleted = True
        self._touch(drive, drive.files[item_id])

    def _touch(self, drive: DoubleDrive, item: DriveFile, content: bool = True) -> None:
        self._seq += 1
        drive.log.append((self._seq, item.id))

    # ---- shapes ------------------------------------------------------------------------

    @staticmethod
    def folder_id(folder: str) -> str:
        return (
            "ROOT"
            if not folder.strip("/")
            else "F" + hashlib.sha256(folder.strip("/").encode()).hexdigest()[:16].upper()
        )

    def folder_json(self, drive: DoubleDrive, folder: str) -> dict[str, Any]:
        folder = folder.strip("/")
        parent, _, name = folder.rpartition("/")
        if not folder:
            return {"id": "ROOT", "name": "root", "root": {}, "folder": {"childCount": 0}}
        return {
            "id": self.folder_id(folder),
            "name": name,
            "folder": {"childCount": 0},
            "parentReference": {
                "driveId": drive.id,
                "id": self.folder_id(parent),
                "path": f"/drive/root:/{parent}".rstrip("/:") if parent else "/drive/root:",
            },
        }

    def folders_of(self, drive: DoubleDrive) -> list[str]:
        found: set[str] = set()
        for f in drive.files.values():
            parts = f.folder.split("/") if f.folder else []
            for n in range(1, len(parts) + 1):
                found.add("/".join(parts[:n]))
        return sorted(found)

    @classmethod
    def item_json(cls, drive: DoubleDrive, item: DriveFile) -> dict[str, Any]:
        content_tag = hashlib.sha256(item.data).hexdigest()[:16]
        if item.deleted:
            return {"id": item.id, "deleted": {"state": "deleted"}, "parentReference": {"driveId": drive.id}}
        return {
            "id": item.id,
            "name": item.name,
            "size": len(item.data),
            "eTag": f'"{{{item.id}}},{item.version}"',
            "cTag": f'"c:{{{item.id}}},{content_tag}"',
            "file": {"mimeType": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
            "parentReference": {
                "driveId": drive.id,
                "id": cls.folder_id(item.folder),
                "path": f"/drive/root:/{item.folder}" if item.folder else "/drive/root:",
            },
        }

    # ---- dispatch (called by GraphDouble with the path after /v1.0/) --------------------

    def handle(
        self, method: str, rest: str, query: dict[str, str], body: Any, raw: bytes
    ) -> tuple[int, dict[str, str], Any]:
        if m := re.fullmatch(r"users/([^/]+)/drive", rest):
            return 200, {}, {"id": self.user_drive(m.group(1)).id, "driveType": "business"}
        if m := re.fullmatch(r"sites/([^/]+):(/[^:]*)", rest):
            site = f"{m.group(1)}:{m.group(2)}"
            if site not in self.sites:
                return 404, {}, {"error": {"code": "itemNotFound", "message": "Requested site could not be found"}}
            return 200, {}, {"id": self.sites[site][0]}
        if m := re.fullmatch(r"sites/([^/]+)/(drive|drives)", rest):
            site = next((s for s, (i, _l) in self.sites.items() if i == m.group(1)), None)
            if site is None:
                return 404, {}, {"error": {"code": "itemNotFound", "message": "no site"}}
            libraries = self.sites[site][1]
            if m.group(2) == "drive":
                return 200, {}, {"id": libraries.get("Documents") or next(iter(libraries.values()))}
            return 200, {}, {"value": [{"id": i, "name": n} for n, i in libraries.items()]}
        m = re.fullmatch(r"drives/([^/]+)/(.*)", rest)
        if m is None or m.group(1) not in self.drives:
            return 404, {}, {"error": {"code": "itemNotFound", "message": "no such drive"}}
        drive, tail = self.drives[m.group(1)], m.group(2)
        if tail == "root/delta":
            return self._delta(drive, query)
        if pm := re.fullmatch(r"root:/(.+?)(:/content|:/createUploadSession)?", tail):
            path = pm.group(1).rstrip(":")
            action = pm.group(2) or ""
            item = next((f for f in drive.files.values() if f.path == path and not f.deleted), None)
            if path in drive.locked:
                return (
                    423,
                    {},
                    {
                        "error": {
                            "code": "resourceLocked",
                            "message": "The resource you are attempting to access is locked",
                        }
                    },
                )
            if action == ":/content" and method == "PUT":
                if item is not None and query.get("@microsoft.graph.conflictBehavior") == "fail":
                    return (
                        409,
                        {},
                        {"error": {"code": "nameAlreadyExists", "message": "The specified item name already exists."}},
                    )
                return 201, {}, self.item_json(drive, self.put_file(drive, path, raw))
            if action == ":/createUploadSession":
                if item is not None and (body or {}).get("item", {}).get("@microsoft.graph.conflictBehavior") == "fail":
                    return (
                        409,
                        {},
                        {"error": {"code": "nameAlreadyExists", "message": "The specified item name already exists."}},
                    )
                folder, _, name = path.rpartition("/")
                return self._session(drive, folder, name, None)
            if item is None:
                if path.strip("/") in self.folders_of(drive):
                    return 200, {}, self.folder_json(drive, path)
                return 404, {}, {"error": {"code": "itemNotFound", "message": "The resource could not be found."}}
            return 200, {}, self.item_json(drive, item)
        if im := re.fullmatch(r"items/([^/]+)(/content|/createUploadSession)?", tail):
            item = drive.files.get(im.group(1))
            if item is None or item.deleted:
                return 404, {}, {"error": {"code": "itemNotFound", "message": "The resource could not be found."}}
            if item.path in drive.locked:
                return (
                    423,
                    {},
                    {
                        "error": {
                            "code": "resourceLocked",
                            "message": "The resource you are attempting to access is locked",
                        }
                    },
                )
            if im.group(2) == "/content" and method == "GET":
                return 200, {"X-Double-Bytes": "1"}, item.data
            if im.group(2) == "/content" and method == "PUT":
                item.data, item.version = raw, item.version + 1
                self._touch(drive, item)
                return 200, {}, self.item_json(drive, item)
            if im.group(2) == "/createUploadSession":
                return self._session(drive, item.folder, item.name, item.id)
            return 200, {}, self.item_json(drive, item)
        return 404, {}, {"error": {"code": "BadRequest", "message": f"no drive route {method} {tail}"}}

    def _session(
        self, drive: DoubleDrive, folder: str, name: str, replace: str | None
    ) -> tuple[int, dict[str, str], Any]:
        session_id = uuid.uuid4().hex
        self.sessions[session_id] = UploadSession(drive, folder, name, replace)
        return 200, {}, {"uploadUrl": f"{self.base}/upload/{session_id}", "expirationDateTime": "2030-01-01T00:00:00Z"}

    def upload(
        self, method: str, session_id: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, dict[str, str], Any]:
        """The pre-authenticated upload URL: no token wanted (one sent is an error here)."""
        session = self.sessions.get(session_id)
        if session is None:
            return 404, {}, {"error": {"code": "itemNotFound", "message": "upload session not found"}}
        if "Authorization" in headers:
            return 401, {}, {"error": {"code": "unauthenticated", "message": "Do not send Authorization to uploadUrl"}}
        if method == "GET":
            return 200, {}, {"nextExpectedRanges": [f"{len(session.received)}-"]}
        found = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", headers.get("Content-Range", ""))
        if found is None:
            return 400, {}, {"error": {"code": "invalidRange", "message": "Content-Range missing"}}
        start, end, total = (int(g) for g in found.groups())
        number = self._chunks_seen.get(session_id, 0)
        self._chunks_seen[session_id] = number + 1
        if number in self.fail_chunks:
            self.fail_chunks.remove(number)
            return 500, {}, {"error": {"code": "generalException", "message": "An unspecified error has occurred."}}
        if (
            start != len(session.received)
            or end - start + 1 != len(raw)
            or (end - start + 1) % (320 * 1024)
            and end + 1 != total
        ):
            return (
                416,
                {},
                {"error": {"code": "invalidRange", "message": "The uploaded fragment overlaps or is out of order"}},
            )
        session.received.extend(raw)
        if len(session.received) < total:
            return (
                202,
                {},
                {"expirationDateTime": "2030-01-01T00:00:00Z", "nextExpectedRanges": [f"{len(session.received)}-"]},
            )
        data = bytes(session.received)
        del self.sessions[session_id]
        if session.replace:
            item = session.drive.files[session.replace]
            item.data, item.version = data, item.version + 1
            self._touch(session.drive, item)
        else:
            item = self.put_file(session.drive, f"{session.folder}/{session.name}", data)
        return 201, {}, self.item_json(session.drive, item)

    def _delta(self, drive: DoubleDrive, query: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        token = query.get("token")
        if token and self.delta_expired:
            self.delta_expired = False
            return (
                410,
                {},
                {"error": {"code": "resyncRequired", "message": "Resync required. Replace any local items."}},
            )
        since = json.loads(base64.urlsafe_b64decode(token.encode()))["upto"] if token else 0
        changed = {i for seq, i in drive.log if seq > since}
        value = [self.folder_json(drive, "")] + [self.folder_json(drive, f) for f in self.folders_of(drive)]
        for f in drive.files.values():
            if f.id in changed and not (since == 0 and f.deleted):
                entry = self.item_json(drive, f)
                entry.pop("cTag", None)  # business drives omit cTag in delta
                if "parentReference" in entry:
                    entry["parentReference"].pop("path", None)  # and the path: track items by id
                value.append(entry)
        link = base64.urlsafe_b64encode(json.dumps({"upto": self._seq}).encode()).decode()
        return (
            200,
            {},
            {"value": value, "@odata.deltaLink": f"{self.base}/v1.0/drives/{drive.id}/root/delta?token={quote(link)}"},
        )
